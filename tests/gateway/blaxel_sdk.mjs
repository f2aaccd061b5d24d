// SPDX-License-Identifier: Apache-2.0
// The official `@blaxel/core` SDK (pinned in tests/package-lock.json) against
// airlock-gateway.  Environment: BL_API_URL (the gateway's /blaxel/v0), BL_API_KEY
// (tenant A), BL_WORKSPACE, BL_DISABLE_H2=true, GW_KEY_B (tenant B).  Every check throws
// on failure; the last line printed is a JSON summary.
import { SandboxInstance, settings } from '@blaxel/core';
import { randomBytes } from 'node:crypto';
import { sha, check, fails } from './checks.mjs';

const summary = {};
const name = `gw-${randomBytes(4).toString('hex')}`;
const sbx = await SandboxInstance.create({ name, envs: [{ name: 'GW_CREATE_ENV', value: 'from-create' }] });
summary.name = sbx.metadata.name;
try {
  check(sbx.metadata.name === name, 'name', sbx.metadata);
  // Commands: streams, exit codes, env, cwd, a failing command.
  let r = await sbx.process.exec({ command: 'echo out-line; echo err-line >&2', waitForCompletion: true });
  check(r.exitCode === 0 && r.stdout === 'out-line\n' && r.stderr === 'err-line\n', 'streams', r);
  r = await sbx.process.exec({ command: 'echo "$GW_CREATE_ENV $GW_RUN_ENV"', env: { GW_RUN_ENV: 'from-run' }, waitForCompletion: true });
  check(r.stdout === 'from-create from-run\n', 'env', r);
  r = await sbx.process.exec({ command: 'pwd', workingDir: '/tmp', waitForCompletion: true });
  check(r.stdout === '/tmp\n', 'cwd', r);
  r = await sbx.process.exec({ command: 'echo partial; exit 3', waitForCompletion: true });
  check(r.exitCode === 3 && r.stdout === 'partial\n' && r.status === 'failed', 'failing command', r);

  // Files: text, binary from 1 byte to 10 MiB (the last by the multipart protocol).
  await sbx.fs.write('/workspace/hello.txt', 'hello gateway\n');
  check(await sbx.fs.read('/workspace/hello.txt') === 'hello gateway\n', 'text round trip');
  for (const size of [1, 4096, 10 * 1024 * 1024]) {
    const data = randomBytes(size);
    await sbx.fs.writeBinary(`/workspace/bin-${size}`, data);
    const back = Buffer.from(await (await sbx.fs.readBinary(`/workspace/bin-${size}`)).arrayBuffer());
    check(back.length === size && sha(back) === sha(data), `binary round trip of ${size} bytes`);
    r = await sbx.process.exec({ command: `sha256sum /workspace/bin-${size}`, waitForCompletion: true });
    check(r.stdout.startsWith(sha(data)), `binary seen inside the sandbox (${size})`, r.stdout);
  }
  await sbx.fs.mkdir('/workspace/d1/d2');
  await sbx.fs.write('/workspace/d1/d2/f.txt', 'x');
  const dir = await sbx.fs.ls('/workspace/d1');
  check(dir.subdirectories.length === 1 && dir.subdirectories[0].name === 'd2', 'ls subdirectories', dir);
  const inner = await sbx.fs.ls('/workspace/d1/d2');
  check(inner.files.length === 1 && inner.files[0].name === 'f.txt' && inner.files[0].size === 1, 'ls files', inner);
  await sbx.fs.rm('/workspace/d1', true);
  await fails(sbx.fs.ls('/workspace/d1'), 'removed directory', /not found/i);
  await fails(sbx.fs.read('/workspace/no-such-file'), 'reading a missing file', /not found/i);
  // Previews (exposed ports) are refused as such: not a 404, which createIfNotExists
  // would answer with a create.
  await fails(sbx.previews.createIfNotExists({ metadata: { name: 'port-8080' }, spec: { port: 8080, public: false } }),
    'a preview', /PREVIEWS_NOT_SUPPORTED|not supported/);

  // Tenants and keys.
  const again = await SandboxInstance.get(name);
  r = await again.process.exec({ command: 'cat /workspace/hello.txt', waitForCompletion: true });
  check(r.stdout === 'hello gateway\n', 'get', r);
  await fails(SandboxInstance.create({ name }), 'a second sandbox of the same name', /409|already exists/i);
  const workspace = process.env.BL_WORKSPACE;
  settings.setConfig({ apiKey: process.env.GW_KEY_B, workspace });
  await fails(SandboxInstance.get(name), "another tenant's sandbox", /404|not found/i);
  settings.setConfig({ apiKey: 'wrong-key-000000000000', workspace });
  await fails(SandboxInstance.get(name), 'wrong key', /401|unauthori/i);
  settings.setConfig({ apiKey: process.env.BL_API_KEY, workspace });
} finally {
  await sbx.delete();
}
await fails(SandboxInstance.get(name), 'deleted sandbox', /404|not found/i);
summary.ok = true;
console.log(JSON.stringify(summary));
