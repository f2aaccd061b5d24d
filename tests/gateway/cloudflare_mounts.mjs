// SPDX-License-Identifier: Apache-2.0
// Bucket mounts of the Cloudflare Sandbox bridge through airlock-gateway, driven by the
// Agents SDK's own client (@openai/agents-extensions' CloudflareSandboxClient): a manifest
// with s3_mount entries and the CloudflareBucketMountStrategy, which the client mounts
// with POST /v1/sandbox/{id}/mount {bucket, mountPath, options: {endpoint, provider,
// prefix, readOnly, credentials}}.  The store is S3 on loopback, checked with the official
// @aws-sdk/client-s3.
// Environment: GW_WORKER_URL, CLOUDFLARE_SANDBOX_API_KEY, S3_ENDPOINT, S3_BUCKET,
// S3_KEY_ID, S3_SECRET (the canary), S3_PREFIX.  The last line is a JSON summary.
import { Manifest } from '@openai/agents-core/sandbox';
import { CloudflareSandboxClient, CloudflareBucketMountStrategy } from '@openai/agents-extensions/sandbox/cloudflare';
import { S3Client, PutObjectCommand, GetObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { check } from './checks.mjs';

const env = process.env;
const secret = env.S3_SECRET;
const prefix = env.S3_PREFIX;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const s3 = new S3Client({
  endpoint: env.S3_ENDPOINT, region: 'us-east-1', forcePathStyle: true,
  credentials: { accessKeyId: env.S3_KEY_ID, secretAccessKey: secret },
});
await s3.send(new PutObjectCommand({
  Bucket: env.S3_BUCKET, Key: `${prefix}/from-client.txt`, Body: 'hello from the client\n' }));

const mountEntry = (readOnly) => ({
  type: 's3_mount', bucket: env.S3_BUCKET, endpointUrl: env.S3_ENDPOINT, prefix,
  accessKeyId: env.S3_KEY_ID, secretAccessKey: secret, readOnly,
  mountStrategy: new CloudflareBucketMountStrategy(),
});
const c = new CloudflareSandboxClient({ workerUrl: env.GW_WORKER_URL });
const session = await c.create({ manifest: new Manifest({
  root: '/workspace',
  entries: {
    'README.md': { type: 'file', content: 'plain file\n' },
    data: mountEntry(false),
    ro: mountEntry(true),
  },
}) });
const summary = {};
try {
  // 1. What the official client put is read inside, on both mounts.
  let out;
  for (let i = 0; i < 30; i++) {
    out = await session.execCommand({ cmd: 'cat data/from-client.txt ro/from-client.txt && echo READ-OK' });
    if (out.includes('READ-OK')) break;
    await sleep(500);
  }
  check(out.includes('hello from the client\nhello from the client\nREAD-OK'), 'object read inside', out);

  // 2. What the sandbox writes is read by the official client.
  out = await session.execCommand({ cmd: 'echo written inside > data/from-sandbox.txt && echo W-OK' });
  check(out.includes('W-OK'), 'write inside', out);
  let body;
  for (let i = 0; i < 40 && body === undefined; i++) {
    try {
      const got = await s3.send(new GetObjectCommand({ Bucket: env.S3_BUCKET, Key: `${prefix}/from-sandbox.txt` }));
      body = await got.Body.transformToString();
    } catch {
      await sleep(500);
    }
  }
  check(body === 'written inside\n', 'written inside, read by the official client', body);

  // 3. The read-only mount refuses writes.
  out = await session.execCommand({ cmd: 'echo no > ro/refused.txt && echo WROTE; true' });
  check(!out.includes('WROTE'), 'a write to the read-only mount fails', out);
  let reached = true;
  try {
    await s3.send(new HeadObjectCommand({ Bucket: env.S3_BUCKET, Key: `${prefix}/refused.txt` }));
  } catch {
    reached = false;
  }
  check(!reached, 'the refused write is not in the bucket');

  // 4. The keys are nowhere inside: every process's environment and command line, the
  //    mount table (searched here, so the secret does not go in with the command) ...
  out = await session.execCommand({
    cmd: "cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline /proc/self/mountinfo | tr '\\0' '\\n'",
    maxOutputTokens: 200000 });
  check(!out.includes(secret), 'the secret is not in environ, cmdline or mountinfo');
  check(/ \/workspace\/data /.test(out) && / \/workspace\/ro /.test(out), 'both mounts in mountinfo', out.slice(-3000));
  summary.mountinfo = out.split('\n').filter((l) => l.includes('/workspace/data ') && l.includes('fuse'))[0];
  //    ... nor in any file (this command holds it, but /proc is not searched).
  out = await session.execCommand({
    cmd: `grep -r -l -F -e '${secret}' / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev ` +
      '--exclude-dir=data --exclude-dir=ro 2>/dev/null | head -5; echo SEARCHED' });
  check(out.trim().endsWith('SEARCHED') && !out.includes('/'), 'the secret is in no file inside', out);

  // 5. The session's unmountBucket (the bridge's /unmount): the read-only mount goes, the
  //    other stays; a second unmount of the same path is refused.
  await session.unmountBucket('ro');
  out = await session.execCommand({ cmd: "grep fuse /proc/self/mountinfo; ls -A ro | wc -l" });
  check(!/ \/workspace\/ro /.test(out) && / \/workspace\/data /.test(out) && out.trim().endsWith('0'),
        'after unmountBucket: only the other mount, an empty directory left', out);
  let again;
  try {
    await session.unmountBucket('ro');
  } catch (e) {
    again = e.details; // the SDK's SandboxMountError: the bridge's status and error
  }
  check(again && again.status === 400 && String(again.reason).includes('no bucket is mounted'),
        'a second unmount is refused', again);
  summary.unmounted = true;
} finally {
  await session.delete();
}
summary.ok = true;
console.log(JSON.stringify(summary));
