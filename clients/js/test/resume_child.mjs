// SPDX-License-Identifier: Apache-2.0
// The second half of the interrupted run, in a process of its own (so the
// SDK cannot reuse the first process's live session and must resume from
// the serialized state through AirlockSandboxClient.resume): approve the
// pending `deploy`, run on, and print what the model saw as JSON.
// argv: STATE_FILE

import fs from 'node:fs';
import { RunState } from '@openai/agents';
import { AirlockSandboxClient } from '../dist/index.js';
import { ScriptedModel, assistantMessage, makeAgent, modelResponder, runner, seen, sh } from './agent.mjs';

const observed = {};
const model = new ScriptedModel([
  modelResponder((call) => {
    observed.afterApproval = seen(call);
    return [sh('cat progress.txt; echo step2 >> progress.txt; cat progress.txt', 'r1')];
  }),
  modelResponder((call) => {
    observed.final = seen(call);
    return [assistantMessage('resumed and finished')];
  }),
]);
const agent = makeAgent(model);
const state = await RunState.fromString(agent, fs.readFileSync(process.argv[2], 'utf8'));
const pending = state.getInterruptions();
for (const item of pending) state.approve(item);
const client = new AirlockSandboxClient({ socketPath: process.env.AIRLOCK_SOCKET });
const result = await runner.run(agent, state, { sandbox: { client } });
model.assertComplete();
process.stdout.write(
  JSON.stringify({ pending: pending.length, finalOutput: result.finalOutput, observed }) + '\n',
);
