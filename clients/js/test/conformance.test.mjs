// SPDX-License-Identifier: Apache-2.0
// AirlockSandboxClient/Session held to the cases the SDK's hosted clients
// are: exec exit codes and streams, files text and binary, errors,
// persist/hydrate round trip, snapshots, session state, delete; and a
// hostile archive given to hydrateWorkspace refused with nothing changed.

import { test, after } from 'node:test';
import { applyDiff } from '@openai/agents-core';
import { Manifest, SandboxApplyPatchFileNotFoundError, SandboxWorkspaceReadNotFoundError, SandboxArchiveError, SandboxUnsupportedFeatureError } from '@openai/agents-core/sandbox';
import { AirlockSandboxClient, AirlockSandboxSession, AIRLOCK_SNAPSHOT_MAGIC } from '../dist/index.js';
import { api, assert, sandboxIds, socketPath, tar, text } from './helpers.mjs';

const client = new AirlockSandboxClient({ socketPath });
const open = [];

async function session(manifestInit = {}, options = {}) {
  const s = await client.create({ manifest: new Manifest(manifestInit), options });
  open.push(s);
  return s;
}

after(async () => {
  for (const s of open) await s.delete();
});

test('create from a manifest: text, binary and nested entries, environment', async () => {
  const s = await session({
    entries: {
      'hello.txt': { type: 'file', content: 'hi\n' },
      'bin.dat': { type: 'file', content: new Uint8Array([0, 1, 254, 255]) },
      src: { type: 'dir', children: { 'main.py': { type: 'file', content: 'print(1)\n' } } },
      'run.sh': { type: 'file', content: '#!/bin/sh\necho ran\n', permissions: 0o755 },
    },
    environment: { GREETING: 'hello' },
  });
  assert.ok(s instanceof AirlockSandboxSession);
  assert.equal(await s.running(), true);
  assert.equal(text(await s.readFile({ path: 'hello.txt' })), 'hi\n');
  assert.deepEqual([...(await s.readFile({ path: '/workspace/bin.dat' }))], [0, 1, 254, 255]);
  assert.equal(text(await s.readFile({ path: 'src/main.py' })), 'print(1)\n');
  const r = await s.exec({ cmd: 'echo $GREETING; ./run.sh' });
  assert.equal(r.stdout, 'hello\nran\n');
  const names = (await s.listDir({ path: '/workspace' })).map((e) => `${e.name}:${e.type}`).sort();
  assert.deepEqual(names, ['bin.dat:file', 'hello.txt:file', 'run.sh:file', 'src:dir']);
  assert.equal(await s.pathExists('src/main.py'), true);
  assert.equal(await s.directoryExists('src'), true);
  assert.equal(await s.directoryExists('hello.txt'), false);
  assert.equal(await s.pathExists('nope'), false);
});

test('exec: exit codes, separate streams, workdir, shell, truncation', async () => {
  const s = await session();
  let r = await s.exec({ cmd: 'echo out; echo err >&2; exit 3' });
  assert.equal(r.exitCode, 3);
  assert.equal(r.stdout, 'out\n');
  assert.equal(r.stderr, 'err\n');
  assert.match(r.output, /out/);
  assert.equal(r.sessionId, undefined);
  r = await s.exec({ cmd: 'mkdir -p sub && cd sub && pwd' });
  assert.equal(r.stdout, '/workspace/sub\n');
  r = await s.exec({ cmd: 'pwd', workdir: 'sub' });
  assert.equal(r.stdout, '/workspace/sub\n');
  r = await s.exec({ cmd: 'echo $0', shell: '/bin/bash', login: false });
  assert.equal(r.stdout, '/bin/bash\n');
  r = await s.exec({ cmd: 'kill -9 $$' });
  assert.equal(r.exitCode, 137);
  r = await s.exec({ cmd: 'no-such-command-here' });
  assert.equal(r.exitCode, 127);
  const formatted = await s.execCommand({ cmd: 'seq 1 5000', maxOutputTokens: 20 });
  assert.match(formatted, /Process exited with code 0/);
  assert.ok(formatted.length < 2000, formatted.length);
  await assert.rejects(() => s.exec({ cmd: 'id', runAs: 'nobody' }), SandboxUnsupportedFeatureError);
});

test('tty sessions on a pseudo-terminal: yield, writeStdin, Ctrl-C', async () => {
  const s = await session();
  assert.equal(s.supportsPty(), true);
  const r = await s.exec({ cmd: 'stty size; while read l; do echo got:$l; done', tty: true, yieldTimeMs: 300 });
  assert.equal(typeof r.sessionId, 'number');
  assert.equal(r.exitCode, undefined);
  assert.match(r.stdout, /^24 80\r\n/);
  let out = await s.writeStdin({ sessionId: r.sessionId, chars: 'one\n', yieldTimeMs: 300 });
  // The terminal echoes what is typed, then the loop's answer.
  assert.match(out, /one\r\ngot:one\r\n/);
  assert.match(out, /Process running with session ID/);
  out = await s.writeStdin({ sessionId: r.sessionId, chars: '\u0003', yieldTimeMs: 2000 });
  assert.match(out, /exited with code 130/);
  out = await s.writeStdin({ sessionId: r.sessionId, chars: 'x' });
  assert.match(out, /session not found/);
  const quick = await s.exec({ cmd: 'test -t 0 && test -t 1 && echo done', tty: true, yieldTimeMs: 5000 });
  assert.equal(quick.exitCode, 0);
  assert.equal(quick.stdout, 'done\r\n');
  const piped = await s.exec({ cmd: 'test -t 0 || echo pipe' });
  assert.equal(piped.stdout, 'pipe\n');
});

test('files: errors, editor (apply_patch), text and binary round trips', async () => {
  const s = await session();
  await assert.rejects(() => s.readFile({ path: 'missing.txt' }), (e) => e instanceof SandboxWorkspaceReadNotFoundError && /missing\.txt/.test(e.message));
  await assert.rejects(() => s.listDir({ path: 'missing' }), /missing/);
  const ed = s.createEditor();
  // The content is what the SDK's own applyDiff makes of the diff, written in the sandbox.
  await ed.createFile({ type: 'create_file', path: 'notes/a.md', diff: '+line one\n+line two\n' });
  let want = applyDiff('', '+line one\n+line two\n', 'create');
  assert.equal(text(await s.readFile({ path: 'notes/a.md' })), want);
  assert.match(want, /^line one\nline two/);
  const d1 = '@@\n line one\n-line two\n+line 2\n';
  await ed.updateFile({ type: 'update_file', path: 'notes/a.md', diff: d1 });
  want = applyDiff(want, d1);
  assert.match(want, /^line one\nline 2/);
  assert.equal(text(await s.readFile({ path: 'notes/a.md' })), want);
  const d2 = '@@\n-line one\n+line 1\n line 2\n';
  await ed.updateFile({ type: 'update_file', path: 'notes/a.md', moveTo: 'notes/b.md', diff: d2 });
  assert.equal(await s.pathExists('notes/a.md'), false);
  assert.equal(text(await s.readFile({ path: 'notes/b.md' })), applyDiff(want, d2));
  await assert.rejects(() => ed.updateFile({ type: 'update_file', path: 'notes/b.md', diff: '@@\n-no such line\n+x\n' }));
  await assert.rejects(() => ed.updateFile({ type: 'update_file', path: 'nope.md', diff: '@@\n-a\n+b\n' }), SandboxApplyPatchFileNotFoundError);
  await ed.deleteFile({ type: 'delete_file', path: 'notes/b.md' });
  assert.equal(await s.pathExists('notes/b.md'), false);
  await s.materializeEntry({ path: 'm/x.bin', entry: { type: 'file', content: new Uint8Array([9, 8, 7]) } });
  assert.deepEqual([...(await s.readFile({ path: 'm/x.bin' }))], [9, 8, 7]);
  await assert.rejects(() => s.readFile({ path: 'm/x.bin', maxBytes: 2 }), /larger than 2 bytes/);
  // A 1x1 PNG, shown to the model through the SDK's view_image path.
  const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==', 'base64');
  await s.materializeEntry({ path: 'img/dot.png', entry: { type: 'file', content: new Uint8Array(png) } });
  const image = await s.viewImage({ path: 'img/dot.png' });
  assert.match(JSON.stringify(image), /image\/png/);
});

test('persist and hydrate: round trip into a fresh sandbox; hostile archives refused', async () => {
  const a = await session({ entries: { 'keep.txt': { type: 'file', content: 'kept\n' } } });
  await a.exec({ cmd: "mkdir -p d && printf 'x\\000y' > d/bin && ln -s keep.txt link" });
  const archive = await a.persistWorkspace();
  assert.ok(archive.byteLength > 1024);
  const b = await session();
  await b.hydrateWorkspace(archive);
  assert.equal(text(await b.readFile({ path: 'keep.txt' })), 'kept\n');
  assert.deepEqual([...(await b.readFile({ path: 'd/bin' }))], [0x78, 0, 0x79]);
  assert.equal((await b.exec({ cmd: 'readlink link' })).stdout, 'keep.txt\n');
  for (const hostile of [
    tar([{ name: '../escape.txt', data: 'x' }]),
    tar([{ name: '/etc/evil', data: 'x' }]),
    tar([{ name: 'ln', type: '2', linkname: '/etc' }, { name: 'ln/passwd', data: 'x' }]),
    // (A symlink alone, whatever its target, is kept: the sandbox resolves
    // it inside its own root; only writing through one is refused.)
  ]) {
    await assert.rejects(() => b.hydrateWorkspace(hostile), SandboxArchiveError);
  }
  assert.equal(text(await b.readFile({ path: 'keep.txt' })), 'kept\n', 'a refused archive changed the workspace');
  await assert.rejects(
    () => b.hydrateWorkspace(archive, { archiveLimits: { maxMembers: 1 } }),
    (e) => e instanceof SandboxArchiveError && /too_large|limit/.test(e.message),
  );
  await assert.rejects(() => b.hydrateWorkspace(`${AIRLOCK_SNAPSHOT_MAGIC}\nnot json`), SandboxArchiveError);
});

test('Airlock snapshots as the native persisted-workspace reference', async () => {
  const a = await session({ entries: { 'state.txt': { type: 'file', content: 'v1\n' } } }, { workspacePersistence: 'snapshot' });
  await a.exec({ cmd: 'echo v2 >> state.txt' });
  const ref = await a.persistWorkspace();
  assert.ok(text(ref).startsWith(`${AIRLOCK_SNAPSHOT_MAGIC}\n`), text(ref));
  const snapshotId = JSON.parse(text(ref).split('\n')[1]).snapshot_id;
  const b = await session();
  const before = b.state.sandboxId;
  await b.hydrateWorkspace(ref);
  assert.notEqual(b.state.sandboxId, before, 'hydrating a snapshot moves the session to the restored sandbox');
  assert.ok(!(await sandboxIds()).includes(before), 'the sandbox left behind is deleted');
  assert.equal(text(await b.readFile({ path: 'state.txt' })), 'v1\nv2\n');
  await api.deleteSnapshot(snapshotId);
});

test('snapshots with processes: a running process comes back in the restored sandbox', async () => {
  const c = new AirlockSandboxClient({ socketPath, workspacePersistence: 'snapshot', snapshotProcesses: true });
  const a = await c.create({ manifest: new Manifest() });
  open.push(a);
  // A counter that only a live process keeps advancing.
  await a.exec({ cmd: `nohup sh -c 'i=0; while true; do i=$((i+1)); echo $i > count.tmp; mv count.tmp count; sleep 0.1; done' >/dev/null 2>&1 &` });
  await new Promise((r) => setTimeout(r, 500));
  const ref = await a.persistWorkspace();
  const snapshotId = JSON.parse(text(ref).split('\n')[1]).snapshot_id;
  // A process snapshot restores into the uid range it was taken in: its source must be gone.
  await a.delete();
  const b = await session();
  await b.hydrateWorkspace(ref);
  const first = Number(text(await b.readFile({ path: 'count' })));
  await new Promise((r) => setTimeout(r, 600));
  const later = Number(text(await b.readFile({ path: 'count' })));
  assert.ok(first > 0 && later > first, `the counter did not advance after the restore (${first} -> ${later})`);
  await api.deleteSnapshot(snapshotId);
});

test('session state: serialize, deserialize, resume the same sandbox; a gone one is made again', async () => {
  const s = await session({ entries: { 'a.txt': { type: 'file', content: 'A\n' } }, environment: { K: 'v' } });
  await s.exec({ cmd: 'echo live > live.txt' });
  const record = await client.serializeSessionState(s.state);
  assert.equal(record.sandboxId, s.state.sandboxId);
  const json = JSON.parse(JSON.stringify({ ...record, manifest: undefined }));
  const other = new AirlockSandboxClient({ socketPath });
  const state = await other.deserializeSessionState({ ...json, manifest: s.state.manifest });
  const resumed = await other.resume(state);
  assert.equal(resumed.state.sandboxId, s.state.sandboxId);
  assert.equal(text(await resumed.readFile({ path: 'live.txt' })), 'live\n');
  assert.equal((await resumed.exec({ cmd: 'echo $K' })).stdout, 'v\n');

  await other.delete(state);
  assert.equal(await s.running(), false);
  const remade = await other.resume(state);
  open.push(remade);
  assert.notEqual(remade.state.sandboxId, state.sandboxId);
  assert.equal(text(await remade.readFile({ path: 'a.txt' })), 'A\n');
  assert.equal(await remade.pathExists('live.txt'), false);
  await assert.rejects(() => other.deserializeSessionState({ sandboxId: '../x', manifest: s.state.manifest }), /sandboxId/);
});

test('delete leaves nothing; unsupported features get clear errors', async () => {
  const s = await client.create({ manifest: new Manifest() });
  const id = s.state.sandboxId;
  assert.ok((await sandboxIds()).includes(id));
  await s.delete();
  assert.ok(!(await sandboxIds()).includes(id));
  assert.equal(await s.running(), false);
  await assert.rejects(() => s.exec({ cmd: 'true' }), /deleted/);
  await assert.rejects(
    () => client.create({ manifest: new Manifest({ entries: { repo: { type: 'git_repo', repo: 'openai/x' } } }) }),
    SandboxUnsupportedFeatureError,
  );
  await assert.rejects(() => client.create({ manifest: new Manifest(), snapshot: { type: 'local' } }), SandboxUnsupportedFeatureError);
  assert.throws(() => new AirlockSandboxClient({ workspacePersistence: 'zip' }), /workspacePersistence/);
  const t = await session();
  await assert.rejects(() => t.resolveExposedPort(8080), SandboxUnsupportedFeatureError);
  assert.throws(() => new AirlockSandboxClient({ exposedPorts: [0] }), /exposedPorts/);
  await assert.rejects(() => new AirlockSandboxClient({ socketPath: '/nonexistent/airlockd.sock' }).create(), /cannot connect to airlockd/);
});

test('exposed ports: relayed from the host loopback, where resolveExposedPort says', async () => {
  const s = await session({}, { exposedPorts: [8000] });
  // Started, then waited for inside: node's fetch never settles on a
  // connection closed before any answer (as the relay closes it while
  // nothing listens in the sandbox yet), whatever the server.
  const r = await s.exec({
    cmd: "mkdir -p /tmp/www && echo exposed > /tmp/www/index.html && " +
      "(cd /tmp/www && nohup python3 -m http.server 8000 --bind 127.0.0.1 >/dev/null 2>&1 &) && " +
      "python3 -c \"import socket, time\nfor _ in range(100):\n  try: socket.create_connection(('127.0.0.1', 8000)).close(); break\n  except OSError: time.sleep(0.1)\"",
  });
  assert.equal(r.exitCode, 0, r.output);
  const ep = await s.resolveExposedPort(8000);
  assert.equal(ep.host, '127.0.0.1');
  assert.ok(ep.port > 0);
  assert.equal(ep.url, `http://127.0.0.1:${ep.port}`);
  assert.equal(await (await fetch(`${ep.url}/index.html`)).text(), 'exposed\n');
  await assert.rejects(() => s.resolveExposedPort(8001), SandboxUnsupportedFeatureError);
});
