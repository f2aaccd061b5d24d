// SPDX-License-Identifier: Apache-2.0
// The SDK's real Runner with its own sandbox tools (exec_command, apply_patch)
// and a scripted model (no network) against a real airlockd through
// AirlockSandboxClient: the tools run in the Airlock sandbox, the workspace
// changes, the run finishes; then a run interrupted and resumed in another
// process from its serialized RunState; then one resumed from a persisted
// workspace (tar, and an Airlock snapshot) in a fresh sandbox.

import { test } from 'node:test';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Manifest } from '@openai/agents-core/sandbox';
import { AirlockSandboxClient } from '../dist/index.js';
import { api, assert, sandboxIds, socketPath, text } from './helpers.mjs';
import { ScriptedModel, assistantMessage, functionCall, makeAgent, modelResponder, patch, runner, seen, sh } from './agent.mjs';

const client = new AirlockSandboxClient({ socketPath });
const manifest = () => new Manifest({ entries: { 'README.md': { type: 'file', content: '# project\n' } } });

test('a SandboxAgent run: shell and patch calls run in the Airlock sandbox', async () => {
  const inside = {};
  const model = new ScriptedModel([
    [sh('echo hello > greeting.txt && cat greeting.txt README.md', 'c1')],
    modelResponder(async (call) => {
      inside.afterShell = seen(call);
      // The sandbox the SDK made through the client, seen from airlockd.
      inside.ids = await sandboxIds();
      inside.greeting = text(await api.readFile(inside.ids[0], 'greeting.txt'));
      return [patch({ type: 'create_file', path: 'app.py', diff: '+print("hi from airlock")\n' }, 'c2')];
    }),
    [patch({ type: 'update_file', path: 'greeting.txt', diff: '@@\n-hello\n+hello, airlock\n' }, 'c3')],
    [sh('cat greeting.txt app.py && python3 app.py', 'c4')],
    modelResponder((call) => {
      inside.last = seen(call);
      return [assistantMessage('all done')];
    }),
  ]);
  const before = await sandboxIds();
  const result = await runner.run(makeAgent(model), 'Make the greeting and an app.', {
    sandbox: { client, manifest: manifest() },
  });
  model.assertComplete();
  assert.equal(result.finalOutput, 'all done');
  assert.equal(inside.ids.length, before.length + 1, 'the run made one sandbox in airlockd');
  assert.equal(inside.greeting, 'hello\n');
  assert.match(inside.afterShell, /hello\\n# project/);
  assert.match(inside.last, /hello, airlock/);
  assert.match(inside.last, /hi from airlock/);
  assert.match(inside.last, /exited with code 0/);
  assert.deepEqual(await sandboxIds(), before, 'the runtime deleted its sandbox at the end');
});

test('interrupted run resumed from serialized RunState in another process', async (t) => {
  const model = new ScriptedModel([
    [sh('echo step1 > progress.txt', 'i1')],
    [functionCall('deploy', {}, { callId: 'i2' })],
  ]);
  const agent = makeAgent(model);
  const result = await runner.run(agent, 'Record progress, then deploy.', {
    sandbox: { client, manifest: manifest() },
  });
  assert.equal(result.interruptions.length, 1, 'deploy waits for approval');
  const serialized = result.state.toString();
  const sandboxState = JSON.parse(serialized).sandbox;
  assert.equal(sandboxState.backendId, 'airlock');
  const sid = sandboxState.sessionState.providerState.sandboxId;
  assert.ok((await sandboxIds()).includes(sid), 'the interrupted run keeps its sandbox');
  t.after(async () => {
    await api.delete(sid).catch(() => undefined);
  });

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'airlock-js-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'state.json');
  fs.writeFileSync(file, serialized);
  const { stdout } = await promisify(execFile)(process.execPath, [fileURLToPath(new URL('./resume_child.mjs', import.meta.url)), file], {
    env: process.env,
    timeout: 120_000,
  });
  const child = JSON.parse(stdout.trim().split('\n').pop());
  assert.equal(child.pending, 1);
  assert.equal(child.finalOutput, 'resumed and finished');
  assert.match(child.observed.afterApproval, /deployed/, 'the approved tool ran');
  assert.match(child.observed.final, /step1\\nstep1\\nstep2/, 'the resumed run saw the first half\'s workspace');
  assert.ok(!(await sandboxIds()).includes(sid), 'the resumed run deleted the sandbox at its end');
});

for (const persistence of ['tar', 'snapshot']) {
  test(`resume from a persisted workspace (${persistence}) into a fresh sandbox`, async (t) => {
    const c = new AirlockSandboxClient({ socketPath, workspacePersistence: persistence });
    const first = await c.create({ manifest: manifest() });
    t.after(() => first.delete());
    const m1 = new ScriptedModel([
      [sh('mkdir -p notes && echo "first run" > notes/log.txt', 'p1')],
      [patch({ type: 'update_file', path: 'README.md', diff: '@@\n-# project\n+# project (edited)\n' }, 'p2')],
      [assistantMessage('saved')],
    ]);
    const r1 = await runner.run(makeAgent(m1), 'Write notes.', { sandbox: { session: first } });
    assert.equal(r1.finalOutput, 'saved');
    const persisted = await first.persistWorkspace();
    await first.delete();
    if (persistence === 'snapshot') {
      assert.match(text(persisted.subarray(0, 40)), /^AIRLOCK_SANDBOX_SNAPSHOT_V1\n/);
    }

    const second = await c.create({ manifest: new Manifest() });
    t.after(() => second.delete());
    const freshId = second.state.sandboxId;
    await second.hydrateWorkspace(persisted);
    const seenBy = {};
    const m2 = new ScriptedModel([
      [sh('cat notes/log.txt README.md; echo "second run" >> notes/log.txt', 'q1')],
      modelResponder((call) => {
        seenBy.model = seen(call);
        return [assistantMessage('continued')];
      }),
    ]);
    const r2 = await runner.run(makeAgent(m2), 'Continue.', { sandbox: { session: second } });
    assert.equal(r2.finalOutput, 'continued');
    assert.match(seenBy.model, /first run\\n# project \(edited\)/);
    assert.equal(text(await second.readFile({ path: 'notes/log.txt' })), 'first run\nsecond run\n');
    if (persistence === 'snapshot') {
      assert.notEqual(second.state.sandboxId, freshId, 'restored from the snapshot into a new sandbox');
      const snapshotId = JSON.parse(text(persisted).split('\n')[1]).snapshot_id;
      await api.deleteSnapshot(snapshotId);
    }
  });
}
