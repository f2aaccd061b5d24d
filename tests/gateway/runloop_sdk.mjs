// SPDX-License-Identifier: Apache-2.0
// The official `@runloop/api-client` (pinned in tests/package-lock.json) against
// airlock-gateway, over its default transport (cleartext HTTP/2 to an http:// URL) and,
// for a second devbox, over HTTP/1.1 (`http2: false`).
// Environment: RUNLOOP_BASE_URL (the gateway), RUNLOOP_API_KEY (tenant A), GW_KEY_B
// (tenant B).  Every check throws on failure; the last line is a JSON summary.
import { RunloopSDK, APIError, AuthenticationError, NotFoundError } from '@runloop/api-client';
import { randomBytes } from 'node:crypto';
import { sha, check, rejects } from './checks.mjs';

const summary = {};

async function exercise(sdk, label, full) {
  const devbox = await sdk.devbox.create({ name: `gw-${label}`, environment_variables: { GW_CREATE_ENV: 'from-create' } });
  const info = await devbox.getInfo();
  check(info.status === 'running' && info.name === `gw-${label}`, `${label}: running`, info);
  summary[`${label}Devbox`] = devbox.id;
  try {
    // Commands: stdout and stderr apart, exit codes, env, the home as working directory.
    let r = await devbox.cmd.exec('echo out-line; echo err-line >&2');
    check(r.exitCode === 0 && (await r.stdout()) === 'out-line\n' && (await r.stderr()) === 'err-line\n', `${label}: output`);
    r = await devbox.cmd.exec('echo partial; exit 3');
    check(r.exitCode === 3 && (await r.stdout()) === 'partial\n' && !r.success, `${label}: exit code`, r.exitCode);
    r = await devbox.cmd.exec('echo "$GW_CREATE_ENV"; pwd');
    check((await r.stdout()) === 'from-create\n/home/user\n', `${label}: env and cwd`, await r.stdout());
    if (!full)
      return;
    // A command that outlasts the execute call's hold: the SDK long-polls
    // wait_for_status (408 "keep waiting") until it ends.
    const started = Date.now();
    r = await devbox.cmd.exec('sleep 27; echo late; exit 4');
    check(r.exitCode === 4 && (await r.stdout()) === 'late\n', 'long command', r.exitCode);
    summary.longCommandSeconds = (Date.now() - started) / 1000;
    // Async execution, then its result.
    const ex = await devbox.cmd.execAsync('sleep 1; echo async-done');
    const res = await ex.result();
    check(res.exitCode === 0 && (await res.stdout()) === 'async-done\n', 'async execution', res.exitCode);
    // A large output comes whole.
    r = await devbox.cmd.exec('seq 1 50000');
    const lines = (await r.stdout()).split('\n');
    check(lines.length === 50001 && lines[49999] === '50000', 'large output', lines.length);

    // Files: text, binary from 1 byte to 10 MiB, relative paths in the home.
    await devbox.file.write({ file_path: 'notes/hello.txt', contents: 'hello runloop\n' });
    check((await devbox.file.read({ file_path: '/home/user/notes/hello.txt' })) === 'hello runloop\n', 'text round trip');
    r = await devbox.cmd.exec('cat notes/hello.txt');
    check((await r.stdout()) === 'hello runloop\n', 'text seen inside');
    for (const size of [1, 4096, 10 * 1024 * 1024]) {
      const data = randomBytes(size);
      await devbox.file.upload({ path: `/tmp/bin-${size}`, file: new File([data], `bin-${size}`) });
      const resp = await devbox.file.download({ path: `/tmp/bin-${size}` });
      const back = Buffer.from(await resp.arrayBuffer());
      check(back.length === size && sha(back) === sha(data), `binary round trip of ${size} bytes`, back.length);
      r = await devbox.cmd.exec(`sha256sum /tmp/bin-${size}`);
      check((await r.stdout()).startsWith(sha(data)), `binary seen inside (${size})`);
    }
    await rejects(devbox.file.read({ file_path: '/no/such/file' }), NotFoundError, 'reading a missing file');

    // What airlockd cannot give is refused as such, not as a missing devbox.
    const tunnel = await rejects(devbox.net.enableTunnel({ auth_mode: 'open' }), APIError, 'tunnel');
    check(tunnel.status === 400 && /not supported/.test(tunnel.message), 'tunnel refusal', tunnel.message);

    // Another tenant sees nothing of it.
    const other = new RunloopSDK({ bearerToken: process.env.GW_KEY_B });
    await rejects(other.devbox.fromId(devbox.id).getInfo(), NotFoundError, "another tenant's devbox");

    // A disk snapshot, and a devbox made from it.
    const snap = await devbox.snapshotDisk({ name: 'gw-snap', metadata: { k: 'v' } });
    const status = await snap.queryStatus();
    check(status.status === 'complete' && status.snapshot.source_devbox_id === devbox.id, 'snapshot status', status);
    const restored = await sdk.devbox.createFromSnapshot(snap.id, { name: 'gw-restored' });
    try {
      r = await restored.cmd.exec('cat /home/user/notes/hello.txt');
      check((await r.stdout()) === 'hello runloop\n', 'file in the restored devbox');
    } finally {
      await restored.shutdown();
    }
    await snap.delete();
    await rejects(snap.queryStatus(), NotFoundError, 'deleted snapshot');

    // Suspend and resume keep the files.
    await devbox.suspend();
    check((await devbox.getInfo()).status === 'suspended', 'suspended');
    await devbox.resume();
    check((await devbox.getInfo()).status === 'running', 'resumed');
    r = await devbox.cmd.exec('cat /home/user/notes/hello.txt');
    check((await r.stdout()) === 'hello runloop\n', 'file after resume');
  } finally {
    await devbox.shutdown();
  }
  await rejects(devbox.getInfo(), NotFoundError, `${label}: shut down devbox`);
}

// The default client: HTTP/2 (h2c) to the http:// base URL.
await exercise(new RunloopSDK(), 'h2', true);
// The same API over HTTP/1.1.
await exercise(new RunloopSDK({ http2: false }), 'h1', false);

// A wrong key is refused.
const wrong = new RunloopSDK({ bearerToken: 'not-a-key-of-this-gateway', maxRetries: 0 });
await rejects(wrong.devbox.create({}), AuthenticationError, 'wrong key');

summary.ok = true;
console.log(JSON.stringify(summary));
