// SPDX-License-Identifier: Apache-2.0
// The official `e2b` SDK (pinned in tests/package-lock.json) against airlock-gateway.
// Environment: E2B_API_URL, E2B_SANDBOX_URL (the gateway), E2B_API_KEY (tenant A),
// GW_KEY_B (tenant B).  Every check throws on failure; the last line printed is a JSON
// summary that gateway_test.py checks again.
import { Sandbox, CommandExitError, AuthenticationError, NotFoundError } from 'e2b';
import { randomBytes } from 'node:crypto';
import { sha, check, rejects } from './checks.mjs';

const summary = {};
const sbx = await Sandbox.create({ envs: { GW_CREATE_ENV: 'from-create' }, timeoutMs: 600_000 });
summary.sandboxId = sbx.sandboxId;
try {
  // Commands: streams, exit codes, env, cwd, a failing command.
  let r = await sbx.commands.run('echo out-line; echo err-line >&2');
  check(r.exitCode === 0 && r.stdout === 'out-line\n' && r.stderr === 'err-line\n', 'streams', r);
  r = await sbx.commands.run('echo "$GW_CREATE_ENV $GW_RUN_ENV"', { envs: { GW_RUN_ENV: 'from-run' } });
  check(r.stdout === 'from-create from-run\n', 'env', r);
  r = await sbx.commands.run('pwd', { cwd: '/tmp' });
  check(r.stdout === '/tmp\n', 'cwd', r);
  const fail = await rejects(sbx.commands.run('echo partial; exit 3'), CommandExitError, 'failing command');
  check(fail.exitCode === 3 && fail.stdout === 'partial\n', 'failing command result', { exitCode: fail.exitCode, stdout: fail.stdout });
  const streamed = [];
  r = await sbx.commands.run('for i in 1 2 3; do echo tick$i; sleep 0.3; done', { onStdout: (d) => streamed.push(d) });
  check(r.stdout === 'tick1\ntick2\ntick3\n' && streamed.join('') === r.stdout, 'streamed output', { r, streamed });
  summary.streamedChunks = streamed.length;

  // A background process: stdin, then kill.
  const h = await sbx.commands.run('cat', { background: true, stdin: true });
  await sbx.commands.sendStdin(h.pid, 'fed through stdin\n');
  for (let i = 0; i < 50 && !h.stdout.includes('fed'); i++) await new Promise((ok) => setTimeout(ok, 100));
  check(h.stdout === 'fed through stdin\n', 'stdin echo', h.stdout);
  const listed = await sbx.commands.list();
  check(listed.some((p) => p.pid === h.pid), 'process list', listed);
  check(await h.kill() === true, 'kill');
  const killed = await h.wait().then(() => null, (e) => e);
  check(killed instanceof CommandExitError, 'killed process ends with an error', String(killed));

  // A PTY: bash -i -l on airlockd's terminal; typed input, resize, exit status.
  const screen = [];
  const term = await sbx.pty.create({ cols: 100, rows: 30, onData: (d) => screen.push(Buffer.from(d).toString()) });
  const seen = async (re, what) => {
    for (let i = 0; i < 100 && !re.test(screen.join('')); i++) await new Promise((ok) => setTimeout(ok, 100));
    check(re.test(screen.join('')), what, screen.join(''));
  };
  await sbx.pty.sendInput(term.pid, new TextEncoder().encode('stty size; tty; echo "t$((6*7))"\n'));
  await seen(/30 100\r\n\/dev\/pts\/\d+\r\nt42\r\n/, 'pty: size, terminal and echo');
  await sbx.pty.resize(term.pid, { cols: 120, rows: 40 });
  await sbx.pty.sendInput(term.pid, new TextEncoder().encode('stty size\n'));
  await seen(/40 120\r\n/, 'pty: resized');
  await sbx.pty.sendInput(term.pid, new TextEncoder().encode('exit 7\n'));
  const ended = await term.wait().then((x) => x, (e) => e);
  check(ended.exitCode === 7, 'pty: exit status', { exitCode: ended.exitCode, error: String(ended) });
  summary.ptyBytes = screen.join('').length;

  // Files: text, binary from 1 byte to 10 MiB, directories, errors.
  await sbx.files.write('/workspace/hello.txt', 'hello gateway\n');
  check(await sbx.files.read('/workspace/hello.txt') === 'hello gateway\n', 'text read');
  for (const size of [1, 4096, 10 * 1024 * 1024]) {
    const data = randomBytes(size);
    const info = await sbx.files.write(`/workspace/bin-${size}`, data);
    check(info.path === `/workspace/bin-${size}`, 'write info', info);
    const back = await sbx.files.read(`/workspace/bin-${size}`, { format: 'bytes' });
    check(back.length === size && sha(back) === sha(data), `binary round trip of ${size} bytes`);
    r = await sbx.commands.run(`sha256sum /workspace/bin-${size}`);
    check(r.stdout.startsWith(sha(data)), `binary seen inside the sandbox (${size})`, r.stdout);
  }
  check(await sbx.files.makeDir('/workspace/d1/d2') === true, 'makeDir');
  check(await sbx.files.makeDir('/workspace/d1/d2') === false, 'makeDir of an existing dir');
  await sbx.files.write('/workspace/d1/d2/f.txt', 'x');
  const entries = await sbx.files.list('/workspace/d1/d2');
  check(entries.length === 1 && entries[0].name === 'f.txt' && entries[0].type === 'file', 'list', entries);
  check(await sbx.files.exists('/workspace/d1/d2/f.txt') === true, 'exists');
  await sbx.files.remove('/workspace/d1');
  check(await sbx.files.exists('/workspace/d1/d2/f.txt') === false, 'removed');
  await rejects(sbx.files.read('/workspace/no-such-file'), NotFoundError, 'reading a missing file');

  // Snapshot, and a sandbox made from it.
  const snap = await sbx.createSnapshot();
  check(typeof snap.snapshotId === 'string' && snap.snapshotId.length > 0, 'snapshot id', snap);
  const copy = await Sandbox.create(snap.snapshotId, { timeoutMs: 600_000 });
  try {
    check(await copy.files.read('/workspace/hello.txt') === 'hello gateway\n', 'file in the snapshot copy');
  } finally {
    await copy.kill();
  }
  check(await Sandbox.deleteSnapshot(snap.snapshotId) === true, 'delete snapshot');
  check(await Sandbox.deleteSnapshot(snap.snapshotId) === false, 'delete a deleted snapshot');

  // Tenants: B cannot see A's sandbox; a wrong key is refused in E2B's own shape.
  await rejects(Sandbox.connect(sbx.sandboxId, { apiKey: process.env.GW_KEY_B }), NotFoundError, "another tenant's sandbox");
  await rejects(Sandbox.create({ apiKey: 'e2b_wrong_key_0000000000000' }), AuthenticationError, 'wrong key');
  const again = await Sandbox.connect(sbx.sandboxId);
  r = await again.commands.run('cat /workspace/hello.txt');
  check(r.stdout === 'hello gateway\n', 'connect', r);

  // Pause, then connect brings it back with its files.
  check(await sbx.pause() === true, 'pause');
  check(await sbx.pause() === false, 'pause of a paused sandbox');
  const info = await Sandbox.getInfo(sbx.sandboxId);
  check(info.state === 'paused', 'paused state', info);
  const resumed = await Sandbox.connect(sbx.sandboxId);
  r = await resumed.commands.run('cat /workspace/hello.txt');
  check(r.stdout === 'hello gateway\n', 'files after pause and connect', r);
} finally {
  summary.killed = await sbx.kill();
}
// Gone: its envd answers no more.
await rejects(sbx.commands.run('true'), Error, 'command in a killed sandbox');
summary.ok = true;
console.log(JSON.stringify(summary));
