// SPDX-License-Identifier: Apache-2.0
// @openai/agents-extensions' CloudflareSandboxClient finds its sandbox again by id
// across a restart of airlock-gateway (test_restart.py): create a session, write a file,
// print {"ready": id}, wait for a line on stdin (the gateway restarts meanwhile), then
// resume(state) (the client's own lookup: GET /v1/sandbox/{id}/running), read the file
// back by exec, delete; a second resume must then fail.  Environment: GW_WORKER_URL,
// CLOUDFLARE_SANDBOX_API_KEY.  The last line printed is a JSON summary.
import { Manifest } from '@openai/agents-core/sandbox';
import { CloudflareSandboxClient } from '@openai/agents-extensions/sandbox/cloudflare';
import { createInterface } from 'node:readline';
import { check } from './checks.mjs';

const client = new CloudflareSandboxClient({ workerUrl: process.env.GW_WORKER_URL });
const session = await client.create({ manifest: new Manifest({ root: '/workspace', entries: {} }) });
await session.execCommand({ cmd: 'echo cloudflare kept > kept.txt' });
console.log(JSON.stringify({ ready: session.state.sandboxId }));
const lines = createInterface({ input: process.stdin });
for await (const _ of lines) break;

const again = await client.resume(session.state);
check(again.state.sandboxId === session.state.sandboxId, 'same id', again.state.sandboxId);
const out = await again.execCommand({ cmd: 'cat kept.txt' });
check(out.includes('cloudflare kept'), 'the file after the restart', out);
await again.delete();
let refused = false;
try {
  await client.resume(session.state);
} catch (e) {
  refused = /no longer running/.test(String(e));
}
check(refused, 'resume of the deleted sandbox is refused');
console.log(JSON.stringify({ ok: true }));
