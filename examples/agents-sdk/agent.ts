// SPDX-License-Identifier: Apache-2.0
// An OpenAI Agents SDK agent whose shell and file edits run in an Airlock
// sandbox.  Offline (no OPENAI_API_KEY) a scripted model plays the model's
// part; with a key the SDK's default OpenAI model does, same code otherwise.
//
//   examples/agents-sdk/run.sh            # needs a running airlockd ($AIRLOCK_SOCKET)

import { Runner, type Model } from '@openai/agents';
import { Manifest, SandboxAgent, filesystem, shell } from '@openai/agents-core/sandbox';
import { ScriptedModel, assistantMessage, functionCall, modelResponder } from '@openai/agents-core/testing';
import { AirlockSandboxClient } from '@airlock/agents-sandbox';

function offlineModel(): Model {
  // What a model would answer, turn by turn: write a script, run it, report.
  return new ScriptedModel([
    [
      {
        type: 'apply_patch_call',
        callId: 'call-1',
        status: 'completed',
        operation: {
          type: 'create_file',
          path: 'fizzbuzz.sh',
          diff: '+for i in $(seq 1 15); do\n+  out=""\n+  [ $((i % 3)) -eq 0 ] && out=Fizz\n+  [ $((i % 5)) -eq 0 ] && out="${out}Buzz"\n+  echo "${out:-$i}"\n+done\n',
        },
      },
    ],
    [functionCall('exec_command', { cmd: 'sh fizzbuzz.sh | tail -n 5' }, { callId: 'call-2' })],
    modelResponder((call: { request: { input: unknown } }) => {
      const sawOutput = JSON.stringify(call.request.input).includes('FizzBuzz');
      return [assistantMessage(sawOutput ? 'fizzbuzz.sh works: the 15th line is FizzBuzz.' : 'The script did not print FizzBuzz.')];
    }),
  ]);
}

const online = Boolean(process.env.OPENAI_API_KEY);
const agent = new SandboxAgent({
  name: 'airlock-example',
  instructions: 'You work in a sandbox. Write fizzbuzz.sh (1..15, POSIX sh) with apply_patch, run it, and report.',
  ...(online ? { model: process.env.AIRLOCK_EXAMPLE_MODEL ?? 'gpt-5-mini' } : { model: offlineModel() }),
  capabilities: [shell(), filesystem()],
});

async function main(): Promise<void> {
  const client = new AirlockSandboxClient({
    socketPath: process.env.AIRLOCK_SOCKET,
    limits: { memory: '512M', pids: 256 },
  });
  const session = await client.create({
    manifest: new Manifest({ entries: { 'README.md': { type: 'file', content: '# scratch space\n' } } }),
  });
  try {
    const result = await new Runner({ tracingDisabled: !online }).run(agent, 'Please write and test fizzbuzz.sh.', {
      sandbox: { session },
    });
    console.log(`model: ${online ? 'OpenAI' : 'scripted (offline)'}; sandbox ${session.state.sandboxId}`);
    console.log(`agent: ${result.finalOutput}`);
    const files = await session.listDir({ path: '.' });
    console.log(`workspace: ${files.map((f) => f.name).sort().join(' ')}`);
  } finally {
    await session.delete();
  }
}

main().catch((e: unknown) => {
  console.error(`example: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
