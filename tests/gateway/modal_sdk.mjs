// SPDX-License-Identifier: Apache-2.0
// The official `modal` SDK (0.7.6, pinned in tests/package-lock.json; `modal@latest` on
// npm is another package) against airlock-gateway: gRPC over cleartext HTTP/2, the
// control plane at MODAL_SERVER_URL and the task command router at the https:// URL the
// gateway gives (plaintext, the SDK's rule for a loopback control plane).
// Environment: MODAL_SERVER_URL, MODAL_TOKEN_ID, MODAL_TOKEN_SECRET (tenant A's key),
// GW_KEY_B (tenant B's).  Every check throws on failure; the last line is a JSON summary.
import {
  ModalClient,
  NotFoundError,
  SandboxFilesystemNotFoundError,
  SandboxFilesystemDirectoryNotEmptyError,
} from 'modal';
import grpc from '@grpc/grpc-js';
import { createHash, randomBytes } from 'node:crypto';

const sha = (b) => createHash('sha256').update(b).digest('hex');
function check(cond, what, detail) {
  if (!cond) throw new Error(`${what}${detail === undefined ? '' : ': ' + JSON.stringify(detail)}`);
}
async function rejects(promise, cls, what) {
  try {
    await promise;
  } catch (e) {
    check(e instanceof cls, `${what}: expected ${cls.name}, got ${e && e.constructor && e.constructor.name}`, String(e));
    return e;
  }
  throw new Error(`${what}: expected ${cls.name}, but it succeeded`);
}
async function run(sb, argv, opts) {
  const p = await sb.exec(argv, opts);
  const [out, err] = await Promise.all([p.stdout.readText(), p.stderr.readText()]);
  return { code: await p.wait(), out, err };
}

// A raw gRPC call (grpc-js, what the SDK itself runs on): its status code and details.
function rawCall(path, metadata, message = Buffer.alloc(0)) {
  const url = new URL(process.env.MODAL_SERVER_URL);
  const client = new grpc.Client(url.host, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(metadata)) md.set(k, v);
  return new Promise((resolve) => {
    client.makeUnaryRequest(path, (x) => x, (x) => x, message, md, (err) => {
      client.close();
      resolve(err ? { code: err.code, details: err.details } : { code: 0 });
    });
  });
}

const summary = {};
const modal = new ModalClient();
const app = await modal.apps.fromName('gw-modal-test', { createIfMissing: true });
const image = modal.images.fromRegistry('debian:bookworm-slim');
const sb = await modal.sandboxes.create(app, image, { env: { GW_CREATE_ENV: 'from-create' }, workdir: '/workspace' });
summary.sandbox = sb.sandboxId;
const extra = [];
try {
  check(/^sb-[0-9A-Za-z]{22}$/.test(sb.sandboxId), 'sandbox id shape', sb.sandboxId);
  check((await sb.poll()) === null, 'running');

  // Commands: stdout and stderr apart, exit codes, env (create's and the command's), cwd.
  let r = await run(sb, ['sh', '-c', 'echo out-line; echo err-line >&2']);
  check(r.code === 0 && r.out === 'out-line\n' && r.err === 'err-line\n', 'output', r);
  r = await run(sb, ['sh', '-c', 'echo partial; exit 3']);
  check(r.code === 3 && r.out === 'partial\n', 'exit code 3', r);
  r = await run(sb, ['sh', '-c', 'kill -TERM $$']);
  check(r.code === 128 + 15, 'killed by a signal', r);
  r = await run(sb, ['sh', '-c', 'echo "$GW_CREATE_ENV $GW_CMD_ENV"; pwd'], { env: { GW_CMD_ENV: 'from-exec' } });
  check(r.out === 'from-create from-exec\n/workspace\n', 'env and cwd', r);
  r = await run(sb, ['pwd'], { workdir: '/tmp' });
  check(r.out === '/tmp\n', 'workdir of a command', r);
  r = await run(sb, ['seq', '1', '200000']);
  const lines = r.out.split('\n');
  check(r.code === 0 && lines.length === 200001 && lines[199999] === '200000', 'large output', lines.length);
  // Output that comes while the command runs (a stream read, not only at its end).
  const slow = await sb.exec(['sh', '-c', 'echo first; sleep 3; echo second']);
  const reader = slow.stdout.getReader();
  const t0 = Date.now();
  const first = (await reader.read()).value; // text mode: strings
  summary.firstChunkMs = Date.now() - t0;
  check(first === 'first\n' && summary.firstChunkMs < 2900, 'streamed output', { first, ms: summary.firstChunkMs });
  reader.releaseLock();
  check((await slow.wait()) === 0, 'slow command ends');
  // stdin
  const cat = await sb.exec(['sh', '-c', 'cat; echo done >&2']);
  await cat.stdin.writeText('typed ');
  await cat.stdin.writeText('in');
  await cat.stdin.close();
  const [catOut, catErr] = await Promise.all([cat.stdout.readText(), cat.stderr.readText()]);
  check(catOut === 'typed in' && catErr === 'done\n', 'stdin', { catOut, catErr });
  check((await cat.wait()) === 0, 'stdin command exit');
  // binary output
  const bin = await sb.exec(['sh', '-c', 'printf "\\000\\377\\001"'], { mode: 'binary' });
  const bout = await bin.stdout.readBytes();
  check(bout.length === 3 && bout[0] === 0 && bout[1] === 255 && bout[2] === 1, 'binary output', [...bout]);

  // The SDK's file tool command with JSON that is not {"Tool": {...}} (an
  // array's member has no name): refused as Modal's tool would, and the
  // gateway serves on (it read the member's NULL name before).
  r = await run(sb, ['/__modal/.bin/modal-sandbox-fs-tools', '[{"path":"/x"}]']);
  check(r.code === 1 && /InvalidArgument/.test(r.err), 'a tool command that is not an object', r);
  r = await run(sb, ['sh', '-c', 'echo alive']);
  check(r.out === 'alive\n', 'the gateway serves after it', r);

  // Figures: a command's round trip (start, both streams, wait) through both services;
  // 80 of them, past the 64 finished commands the gateway keeps per sandbox.
  const trips = [];
  for (let i = 0; i < 80; i++) {
    const t = Date.now();
    await run(sb, ['true']);
    trips.push(Date.now() - t);
  }
  summary.execRoundTripMsMedian = trips.sort((a, b) => a - b)[40];

  // Files: text, binary from 1 byte to 10 MiB, directories.
  await sb.filesystem.writeText('hello modal\n', '/workspace/notes/hello.txt');
  check((await sb.filesystem.readText('/workspace/notes/hello.txt')) === 'hello modal\n', 'text round trip');
  r = await run(sb, ['cat', 'notes/hello.txt']);
  check(r.out === 'hello modal\n', 'text seen inside', r);
  for (const size of [1, 65536, 10 * 1024 * 1024]) {
    const data = randomBytes(size);
    let t = Date.now();
    await sb.filesystem.writeBytes(data, `/workspace/bin-${size}`);
    summary[`writeMs${size}`] = Date.now() - t;
    t = Date.now();
    const back = await sb.filesystem.readBytes(`/workspace/bin-${size}`);
    summary[`readMs${size}`] = Date.now() - t;
    check(back.length === size && sha(back) === sha(data), `binary ${size}`, back.length);
    r = await run(sb, ['sh', '-c', `sha256sum /workspace/bin-${size} | cut -d' ' -f1`]);
    check(r.out.trim() === sha(data), `binary ${size} inside`, r);
  }
  await sb.filesystem.makeDirectory('/workspace/d1/d2');
  await sb.filesystem.writeText('x', '/workspace/d1/d2/f.txt');
  const listing = await sb.filesystem.listFiles('/workspace/d1/d2');
  check(listing.length === 1 && listing[0].name === 'f.txt' && listing[0].type === 'file' && listing[0].size === 1, 'listFiles', listing);
  const st = await sb.filesystem.stat('/workspace/d1');
  check(st.type === 'directory' && st.name === 'd1', 'stat', st);
  await rejects(sb.filesystem.remove('/workspace/d1'), SandboxFilesystemDirectoryNotEmptyError, 'remove a full directory');
  await sb.filesystem.remove('/workspace/d1', { recursive: true });
  await rejects(sb.filesystem.readText('/workspace/d1/d2/f.txt'), SandboxFilesystemNotFoundError, 'read a removed file');
  await rejects(sb.filesystem.stat('/workspace/nope'), SandboxFilesystemNotFoundError, 'stat a missing file');

  // Directory snapshot, mounted in another place.
  const dirImage = await sb.snapshotDirectory('/workspace/notes');
  await sb.mountImage('/restored-notes', dirImage);
  r = await run(sb, ['cat', '/restored-notes/hello.txt']);
  check(r.out === 'hello modal\n', 'directory snapshot mounted', r);
  await modal.images.delete(dirImage.imageId);

  // Filesystem snapshot, and a sandbox made from it.
  const fsImage = await sb.snapshotFilesystem();
  summary.image = fsImage.imageId;
  const restored = await modal.sandboxes.create(app, fsImage, { workdir: '/workspace' });
  extra.push(restored);
  check((await restored.filesystem.readText('/workspace/notes/hello.txt')) === 'hello modal\n', 'restored file');
  const big = await restored.filesystem.readBytes('/workspace/bin-10485760');
  check(big.length === 10 * 1024 * 1024, 'restored 10 MiB file', big.length);
  const again = await modal.images.fromId(fsImage.imageId);
  check(again.imageId === fsImage.imageId, 'image from id');

  // Tenants: B sees nothing of A's.
  const modalB = new ModalClient({ tokenId: 'ak-b', tokenSecret: process.env.GW_KEY_B });
  await rejects(modalB.sandboxes.fromId(sb.sandboxId), NotFoundError, 'tenant B and A\'s sandbox');
  modalB.close();
  // Errors: an unknown method, a wrong key.
  const unknown = await rawCall('/modal.client.ModalClient/NoSuchMethod', {
    'x-modal-token-id': 'ak-a', 'x-modal-token-secret': process.env.MODAL_TOKEN_SECRET });
  check(unknown.code === 12 && /NoSuchMethod/.test(unknown.details), 'unknown method', unknown);
  const badKey = await rawCall('/modal.client.ModalClient/AuthTokenGet', {
    'x-modal-token-id': 'ak-a', 'x-modal-token-secret': 'not-a-key-of-this-gateway' });
  check(badKey.code === 16, 'wrong key', badKey);
  // The router wants the token given for the task (the gateway's task id is the
  // sandbox's with "ta-"; the request is TaskExecWaitRequest{task_id = 1}).
  const taskId = Buffer.from('ta-' + sb.sandboxId.slice(3));
  const badRouter = await rawCall('/modal.task_command_router.TaskCommandRouter/TaskExecWait',
    { authorization: 'Bearer not-the-router-token' }, Buffer.concat([Buffer.from([0x0a, taskId.length]), taskId]));
  check(badRouter.code === 16, 'wrong router token', badRouter);
  summary.unknownMethod = unknown;
} finally {
  for (const s of extra) await s.terminate();
  await sb.terminate();
}
// terminate() detaches the object: a fresh one sees the end (137, as Modal reports it).
const ended = await modal.sandboxes.fromId(sb.sandboxId);
check((await ended.poll()) === 137, 'terminated');
modal.close();
summary.ok = true;
console.log(JSON.stringify(summary));
