// SPDX-License-Identifier: Apache-2.0
// Modal's cloud bucket mounts through airlock-gateway, driven by the official `modal` SDK
// (0.7.6): `secrets.fromObject` with the bucket's keys, `cloudBucketMounts.create`, and
// `sandboxes.create({cloudBucketMounts})`, as the Agents SDK's ModalSandboxClient does for
// an s3_mount with the modal_cloud_bucket strategy.  The store is S3 on loopback, checked
// with the official @aws-sdk/client-s3.
// Environment: MODAL_SERVER_URL, MODAL_TOKEN_ID, MODAL_TOKEN_SECRET, S3_ENDPOINT, S3_BUCKET,
// S3_KEY_ID, S3_SECRET (the canary: it must not be visible inside), S3_PREFIX.
// Then the same through the Agents SDK's own ModalSandboxClient (@openai/agents-extensions):
// a manifest s3_mount with its ModalCloudBucketMountStrategy.
// Every check throws on failure; the last line is a JSON summary.
import { ModalClient } from 'modal';
import { Manifest } from '@openai/agents-core/sandbox';
import { ModalSandboxClient, ModalCloudBucketMountStrategy } from '@openai/agents-extensions/sandbox/modal';
import { S3Client, PutObjectCommand, GetObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';

function check(cond, what, detail) {
  if (!cond) throw new Error(`${what}${detail === undefined ? '' : ': ' + JSON.stringify(detail)}`);
}
async function run(sb, argv, opts) {
  const p = await sb.exec(argv, opts);
  const [out, err] = await Promise.all([p.stdout.readText(), p.stderr.readText()]);
  return { code: await p.wait(), out, err };
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const env = process.env;
const secret = env.S3_SECRET;
const prefix = env.S3_PREFIX;
const s3 = new S3Client({
  endpoint: env.S3_ENDPOINT, region: 'us-east-1', forcePathStyle: true,
  credentials: { accessKeyId: env.S3_KEY_ID, secretAccessKey: secret },
});
const summary = {};
const modal = new ModalClient();
const app = await modal.apps.fromName('gw-modal-mounts', { createIfMissing: true });
const image = modal.images.fromRegistry('debian:bookworm-slim');

// Put by the official client before the sandbox exists: the mount shows it.
await s3.send(new PutObjectCommand({
  Bucket: env.S3_BUCKET, Key: `${prefix}/from-client.txt`, Body: 'hello from the client\n' }));

const keys = await modal.secrets.fromObject({
  AWS_ACCESS_KEY_ID: env.S3_KEY_ID, AWS_SECRET_ACCESS_KEY: secret });
const rw = modal.cloudBucketMounts.create(env.S3_BUCKET, {
  secret: keys, bucketEndpointUrl: env.S3_ENDPOINT, keyPrefix: `${prefix}/`, readOnly: false });
const ro = modal.cloudBucketMounts.create(env.S3_BUCKET, {
  secret: keys, bucketEndpointUrl: env.S3_ENDPOINT, keyPrefix: `${prefix}/`, readOnly: true });
const sb = await modal.sandboxes.create(app, image, {
  env: { GW_PLAIN: 'plain' }, workdir: '/workspace',
  cloudBucketMounts: { '/workspace/data': rw, '/mnt/ro': ro } });
summary.sandbox = sb.sandboxId;
try {
  // 1. What the official client put is read inside.
  let r;
  for (let i = 0; i < 30; i++) {
    r = await run(sb, ['cat', '/workspace/data/from-client.txt']);
    if (r.code === 0) break;
    await sleep(500);
  }
  check(r.code === 0 && r.out === 'hello from the client\n', 'object read inside', r);
  r = await run(sb, ['cat', '/mnt/ro/from-client.txt']);
  check(r.code === 0 && r.out === 'hello from the client\n', 'object read on the read-only mount', r);

  // 2. What the sandbox writes is read by the official client.
  r = await run(sb, ['sh', '-c', 'echo written inside > /workspace/data/from-sandbox.txt']);
  check(r.code === 0, 'write inside', r);
  let body;
  for (let i = 0; i < 40 && body === undefined; i++) {
    try {
      const got = await s3.send(new GetObjectCommand({
        Bucket: env.S3_BUCKET, Key: `${prefix}/from-sandbox.txt` }));
      body = await got.Body.transformToString();
    } catch {
      await sleep(500);
    }
  }
  check(body === 'written inside\n', 'object written inside read by the official client', body);

  // 3. The read-only mount refuses writes, and nothing reaches the bucket.
  r = await run(sb, ['sh', '-c', 'echo no > /mnt/ro/refused.txt']);
  check(r.code !== 0, 'a write to the read-only mount fails', r);
  let reached = true;
  try {
    await s3.send(new HeadObjectCommand({ Bucket: env.S3_BUCKET, Key: `${prefix}/refused.txt` }));
  } catch {
    reached = false;
  }
  check(!reached, 'the refused write is not in the bucket');

  // 4. The keys are nowhere inside: not in the environment of any process, their command
  //    lines, the mount table; the search is done here, so the secret never goes in.
  r = await run(sb, ['sh', '-c',
    'cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline /proc/self/mountinfo /proc/mounts 2>/dev/null; env; true']);
  check(r.code === 0, 'proc dump', r);
  check(!r.out.includes(secret), 'the secret is not visible in environ, cmdline or mountinfo');
  check(!r.out.includes('AWS_SECRET_ACCESS_KEY'), 'no AWS_ variable inside');
  check(r.out.includes('GW_PLAIN=plain'), 'the sandbox env is there', r.out.slice(0, 2000));
  check(/ \/workspace\/data /.test(r.out) && / \/mnt\/ro /.test(r.out), 'both mounts are in mountinfo');
  summary.mountinfo = r.out.split('\n').filter((l) => l.includes('/workspace/data') && l.includes('fuse'))[0];
  //    Nor in any file of the sandbox: grep takes the secret on its stdin (a pipe).
  const p = await sb.exec(['sh', '-c',
    'grep -r -l -F -f /dev/stdin / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev ' +
    '--exclude-dir=data --exclude-dir=ro 2>/dev/null | head -5; true']);
  await p.stdin.writeText(secret + '\n');
  await p.stdin.close();
  const found = await p.stdout.readText();
  check((await p.wait()) === 0 && found === '', 'the secret is in no file inside', found);

  // 5. A sandbox made from a filesystem snapshot of this one has its own definition's
  //    mounts, as on Modal: the snapshot's files, not its mounts (nor their keys).
  r = await run(sb, ['sh', '-c', 'echo local > /workspace/local.txt']);
  check(r.code === 0, 'a local file', r);
  const snap = await sb.snapshotFilesystem();
  const again = await modal.sandboxes.create(app, snap, {
    workdir: '/workspace', cloudBucketMounts: { '/mnt/again': ro } });
  try {
    for (let i = 0; i < 30; i++) {
      r = await run(again, ['cat', '/workspace/local.txt', '/mnt/again/from-client.txt']);
      if (r.code === 0) break;
      await sleep(500);
    }
    check(r.code === 0 && r.out === 'local\nhello from the client\n',
          'from a snapshot image: its files and the new mount', r);
    r = await run(again, ['sh', '-c', 'grep fuse /proc/self/mountinfo']);
    check(/ \/mnt\/again /.test(r.out) && !/ \/workspace\/data /.test(r.out) && r.out.trim().split('\n').length === 1,
          'from a snapshot image: only the new mount', r.out);
    r = await run(again, ['sh', '-c', 'echo no > /mnt/again/refused.txt']);
    check(r.code !== 0, 'from a snapshot image: the new mount is read-only', r);
  } finally {
    await again.terminate();
  }
  const bare = await modal.sandboxes.create(app, snap, { workdir: '/workspace' });
  try {
    r = await run(bare, ['sh', '-c', 'cat /workspace/local.txt; grep -c fuse /proc/self/mountinfo']);
    check(r.out === 'local\n0\n', 'from a snapshot image without mounts: none', r);
  } finally {
    await bare.terminate();
  }
  summary.snapshotImage = true;
} finally {
  await sb.terminate();
}

// 6. A secret the tenant does not have is refused by name.
let refused;
try {
  const other = modal.cloudBucketMounts.create(env.S3_BUCKET, {
    secret: { secretId: 'st-doesnotexist' }, bucketEndpointUrl: env.S3_ENDPOINT });
  const bad = await modal.sandboxes.create(app, image, { cloudBucketMounts: { '/mnt/x': other } });
  await bad.terminate();
} catch (e) {
  refused = String(e);
}
check(refused && refused.includes("st-doesnotexist"), 'an unknown secret is refused', refused);
summary.unknownSecret = refused;

// 7. The Agents SDK's ModalSandboxClient: the manifest's s3_mount (keys in the entry, as the
//    SDK takes them) becomes the same cloud bucket mount, its keys a secret of their own.
const agents = new ModalSandboxClient({ appName: 'gw-modal-mounts-agents' });
const session = await agents.create({ manifest: new Manifest({
  root: '/workspace',
  entries: {
    'README.md': { type: 'file', content: 'plain\n' },
    data: {
      type: 's3_mount', bucket: env.S3_BUCKET, endpointUrl: env.S3_ENDPOINT,
      prefix: `${prefix}/`, accessKeyId: env.S3_KEY_ID, secretAccessKey: secret,
      readOnly: false, mountPath: '/mnt/agents-data',
      mountStrategy: new ModalCloudBucketMountStrategy(),
    },
  },
}) });
try {
  let out;
  for (let i = 0; i < 30; i++) {
    out = await session.execCommand({ cmd: 'cat /mnt/agents-data/from-sandbox.txt && echo READ-OK' });
    if (out.includes('READ-OK')) break;
    await sleep(500);
  }
  check(out.includes('written inside\nREAD-OK'), 'the Agents SDK client: object read inside', out);
  out = await session.execCommand({
    cmd: "cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline /proc/self/mountinfo | tr '\\0' '\\n'; env",
    maxOutputTokens: 200000 });
  check(!out.includes(secret), 'the Agents SDK client: the secret is not visible inside');
  check(/ \/mnt\/agents-data .* fuse\.rclone /.test(out), 'the Agents SDK client: the mount', out.slice(-2000));
} finally {
  await session.delete();
}
summary.agentsSdk = true;
summary.ok = true;
console.log(JSON.stringify(summary));
