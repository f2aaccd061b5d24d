// SPDX-License-Identifier: Apache-2.0
// The OpenAI Agents SDK's own sandbox clients (@openai/agents-extensions with
// @openai/agents-core, pinned in tests/package-lock.json) against airlock-gateway:
// materialise a manifest, exec, persistWorkspace, hydrateWorkspace into a fresh sandbox,
// delete.  argv[2] names the client: e2b, daytona (their SDKs read the same variables
// as in e2b_sdk.mjs / daytona_sdk.mjs) cloudflare (GW_WORKER_URL, and the key in
// CLOUDFLARE_SANDBOX_API_KEY), blaxel (as in blaxel_sdk.mjs) or runloop (RUNLOOP_BASE_URL,
// RUNLOOP_API_KEY; its persistence is a native disk snapshot reference, or a tar when argv[3]
// is "tar": an ephemeral manifest entry makes the client fall back to one).  The last line
// printed is a JSON summary.  vercel: as in vercel_sdk.mjs (through vercel_fetch.cjs); its
// persistence is a tar, or a native snapshot when argv[3] is "snapshot".  modal: as in
// modal_sdk.mjs (MODAL_SERVER_URL, MODAL_TOKEN_ID, MODAL_TOKEN_SECRET); its persistence is
// argv[3]: tar (the default), snapshot_filesystem or snapshot_directory.
import { Manifest } from '@openai/agents-core/sandbox';
import { check } from './checks.mjs';

const which = process.argv[2];

async function client() {
  if (which === 'e2b') {
    const { E2BSandboxClient } = await import('@openai/agents-extensions/sandbox/e2b');
    return new E2BSandboxClient({ timeout: 600 });
  }
  if (which === 'daytona') {
    const { DaytonaSandboxClient } = await import('@openai/agents-extensions/sandbox/daytona');
    return new DaytonaSandboxClient({ target: 'airlock' });
  }
  if (which === 'cloudflare') {
    const { CloudflareSandboxClient } = await import('@openai/agents-extensions/sandbox/cloudflare');
    return new CloudflareSandboxClient({ workerUrl: process.env.GW_WORKER_URL });
  }
  if (which === 'blaxel') {
    const { BlaxelSandboxClient } = await import('@openai/agents-extensions/sandbox/blaxel');
    return new BlaxelSandboxClient({});
  }
  if (which === 'vercel') {
    // Reached through vercel_fetch.cjs, preloaded: the SDK has no base-URL option.
    const { VercelSandboxClient } = await import('@openai/agents-extensions/sandbox/vercel');
    return new VercelSandboxClient(process.argv[3] === 'snapshot' ? { workspacePersistence: 'snapshot' } : {});
  }
  if (which === 'runloop') {
    const { RunloopSandboxClient } = await import('@openai/agents-extensions/sandbox/runloop');
    return new RunloopSandboxClient({});
  }
  if (which === 'modal') {
    const { ModalSandboxClient } = await import('@openai/agents-extensions/sandbox/modal');
    return new ModalSandboxClient({ appName: 'gw-agents', workspacePersistence: process.argv[3] || 'tar' });
  }
  throw new Error(`unknown client ${which}`);
}
const tarForced = process.argv[3] === 'tar';

const c = await client();
const manifest = new Manifest({
  root: '/workspace',
  entries: {
    'README.md': { type: 'file', content: '# from the manifest\n' },
    src: { type: 'dir', children: { 'main.py': { type: 'file', content: 'print("hi")\n' } } },
    ...(tarForced ? { 'scratch.txt': { type: 'file', content: 'not kept\n', ephemeral: true } } : {}),
  },
});
const summary = { client: which };
const first = await c.create({ manifest });
let second;
try {
  // Relative paths: each client puts the manifest's root where its provider wants it
  // (Daytona's is /home/daytona/workspace).
  const out = await first.execCommand({ cmd: 'cat README.md src/main.py; echo made-by-exec > made.txt; ls' });
  check(out.includes('# from the manifest') && out.includes('print("hi")'), 'manifest materialised and exec ran', out);
  const failed = await first.execCommand({ cmd: 'echo to-stderr >&2; exit 4' });
  check(failed.includes('to-stderr') && /\b4\b/.test(failed), 'a failing command: its stderr and exit code', failed);
  summary.failedCommand = failed;
  const tar = await first.persistWorkspace();
  const head = new TextDecoder().decode(tar.slice(0, 64));
  summary.persisted = head.startsWith('RUNLOOP_SANDBOX_SNAPSHOT_V1') ? 'runloop-snapshot'
    : head.startsWith('UC_VERCEL_SNAPSHOT_V1') ? 'vercel-snapshot'
    : head.startsWith('MODAL_SANDBOX_FS_SNAPSHOT_V1') ? 'modal-fs-snapshot'
    : head.startsWith('MODAL_SANDBOX_DIR_SNAPSHOT_V1') ? 'modal-dir-snapshot' : 'tar';
  if (summary.persisted === 'tar')
    check(tar instanceof Uint8Array && tar.length > 512, 'persisted a tar', tar && tar.length);
  summary.tarBytes = tar.length;
  second = await c.create({ manifest: new Manifest({ root: '/workspace', entries: {} }) });
  await second.hydrateWorkspace(tar);
  const back = await second.execCommand({ cmd: 'cat made.txt src/main.py' });
  check(back.includes('made-by-exec') && back.includes('print("hi")'), 'hydrated into a fresh sandbox', back);
  const text = await second.readFile({ path: 'README.md' });
  const s = typeof text === 'string' ? text : new TextDecoder().decode(text);
  check(s === '# from the manifest\n', 'readFile after hydrate', s);
} finally {
  if (second) await second.delete();
  await first.delete();
}
summary.ok = true;
console.log(JSON.stringify(summary));
