// SPDX-License-Identifier: Apache-2.0
// The official `@vercel/sandbox` (pinned in tests/package-lock.json) against
// airlock-gateway, reached through vercel_fetch.cjs (preloaded: the SDK has no base-URL
// option).  Environment: GW_VERCEL_URL, VERCEL_TOKEN (tenant A), VERCEL_TEAM_ID,
// VERCEL_PROJECT_ID, GW_KEY_B (tenant B).  Every check throws on failure; the last line
// is a JSON summary.
import { Sandbox, Snapshot } from '@vercel/sandbox';
import { randomBytes } from 'node:crypto';
import { sha, check, fails } from './checks.mjs';

const creds = { teamId: process.env.VERCEL_TEAM_ID, projectId: process.env.VERCEL_PROJECT_ID, token: process.env.VERCEL_TOKEN };
const summary = {};
const sbx = await Sandbox.create({ ...creds, env: { GW_CREATE_ENV: 'from-create' }, timeout: 600_000 });
summary.sandboxId = sbx.sandboxId;
let restored;
try {
  check(sbx.status === 'running', 'running', sbx.status);
  // Commands: stdout and stderr apart and merged, exit codes, env, cwd.
  let r = await sbx.runCommand({ cmd: '/bin/sh', args: ['-c', 'echo out-line; echo err-line >&2'] });
  check(r.exitCode === 0 && (await r.stdout()) === 'out-line\n' && (await r.stderr()) === 'err-line\n', 'output', r.exitCode);
  check((await r.output('both')).includes('out-line') && (await r.output('both')).includes('err-line'), 'both streams');
  r = await sbx.runCommand({ cmd: '/bin/sh', args: ['-c', 'echo partial; exit 3'] });
  check(r.exitCode === 3 && (await r.stdout()) === 'partial\n', 'exit code', r.exitCode);
  r = await sbx.runCommand({ cmd: '/bin/sh', args: ['-c', 'echo "$GW_CREATE_ENV $GW_RUN_ENV"; pwd'], env: { GW_RUN_ENV: 'from-run' } });
  check((await r.stdout()) === 'from-create from-run\n/vercel/sandbox\n', 'env and cwd', await r.stdout());
  r = await sbx.runCommand({ cmd: 'pwd', cwd: '/tmp' });
  check((await r.stdout()) === '/tmp\n', 'cwd', await r.stdout());
  // A detached command: wait, and kill.
  const slow = await sbx.runCommand({ cmd: '/bin/sh', args: ['-c', 'sleep 1; echo detached-done'], detached: true });
  const done = await slow.wait();
  check(done.exitCode === 0 && (await done.stdout()) === 'detached-done\n', 'detached command', done.exitCode);
  const forever = await sbx.runCommand({ cmd: 'sleep', args: ['600'], detached: true });
  await forever.kill('SIGKILL');
  const killed = await forever.wait();
  check(killed.exitCode === 137, 'killed command', killed.exitCode);

  // Files: text and binary up to 10 MiB through the gzip tar writes, directories.
  await sbx.writeFiles([{ path: 'notes/hello.txt', content: Buffer.from('hello vercel\n') }]);
  check((await sbx.readFileToBuffer({ path: '/vercel/sandbox/notes/hello.txt' })).toString() === 'hello vercel\n', 'text round trip');
  for (const size of [1, 4096, 10 * 1024 * 1024]) {
    const data = randomBytes(size);
    await sbx.writeFiles([{ path: `/tmp/bin-${size}`, content: data }]);
    const back = await sbx.readFileToBuffer({ path: `/tmp/bin-${size}` });
    check(back && back.length === size && sha(back) === sha(data), `binary round trip of ${size} bytes`);
    r = await sbx.runCommand({ cmd: 'sha256sum', args: [`/tmp/bin-${size}`] });
    check((await r.stdout()).startsWith(sha(data)), `binary seen inside (${size})`);
  }
  await sbx.mkDir('d1');
  const exists = await fails(sbx.mkDir('d1'), 'mkdir of an existing directory');
  check(/File exists/.test(String(exists.message) + JSON.stringify(exists.json ?? {})), 'mkdir error', String(exists));
  check((await sbx.readFileToBuffer({ path: '/no/such/file' })) === null, 'a missing file reads as null');

  // Another tenant sees nothing of it.
  await fails(Sandbox.get({ ...creds, token: process.env.GW_KEY_B, sandboxId: sbx.sandboxId }), "another tenant's sandbox");
  const again = await Sandbox.get({ ...creds, sandboxId: sbx.sandboxId });
  check(again.sandboxId === sbx.sandboxId && again.status === 'running', 'get');

  // A snapshot stops the sandbox; a new sandbox is made from it.
  const snap = await sbx.snapshot();
  summary.snapshotId = snap.snapshotId;
  check((await Sandbox.get({ ...creds, sandboxId: sbx.sandboxId })).status === 'stopped', 'stopped by its snapshot');
  restored = await Sandbox.create({ ...creds, source: { type: 'snapshot', snapshotId: snap.snapshotId } });
  r = await restored.runCommand({ cmd: 'cat', args: ['notes/hello.txt'] });
  check((await r.stdout()) === 'hello vercel\n', 'file in the sandbox made from the snapshot');
  await (await Snapshot.get({ ...creds, snapshotId: snap.snapshotId })).delete();
  await fails(Snapshot.get({ ...creds, snapshotId: snap.snapshotId }), 'deleted snapshot');
} finally {
  if (restored) await restored.stop();
  await sbx.stop();
}
check((await Sandbox.get({ ...creds, sandboxId: sbx.sandboxId })).status === 'stopped', 'stopped');
await fails(Sandbox.create({ ...creds, token: 'not-a-key-of-this-gateway' }), 'wrong key');
summary.ok = true;
console.log(JSON.stringify(summary));
