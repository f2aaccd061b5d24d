// SPDX-License-Identifier: Apache-2.0
// The official `@daytonaio/sdk` (pinned in tests/package-lock.json) against airlock-gateway.
// Environment: DAYTONA_API_URL (the gateway's /daytona/api), DAYTONA_API_KEY (tenant A),
// GW_KEY_B (tenant B).  Every check throws on failure; the last line is a JSON summary.
import { Daytona, DaytonaNotFoundError, DaytonaAuthenticationError, DaytonaError } from '@daytonaio/sdk';
import { randomBytes } from 'node:crypto';
import { sha, check, rejects } from './checks.mjs';

const summary = {};
const daytona = new Daytona({ target: 'airlock' });
const sbx = await daytona.create({ envVars: { GW_CREATE_ENV: 'from-create' } });
summary.sandboxId = sbx.id;
try {
  check(sbx.state === 'started', 'started', sbx.state);
  // Commands: output, exit codes, env, cwd, a failing command.
  let r = await sbx.process.executeCommand('echo out-line; echo err-line >&2');
  check(r.exitCode === 0 && r.result === 'out-line\nerr-line\n', 'output', r);
  r = await sbx.process.executeCommand('echo "$GW_CREATE_ENV $GW_RUN_ENV"', undefined, { GW_RUN_ENV: 'from-run' });
  check(r.result === 'from-create from-run\n', 'env', r);
  r = await sbx.process.executeCommand('pwd', '/tmp');
  check(r.result === '/tmp\n', 'cwd', r);
  // The toolbox's directories: the home and working directory, where a command without
  // a cwd starts and relative paths land (the Agents SDK's workspace goes below it).
  check(await sbx.getUserHomeDir() === '/home/daytona', 'user home dir');
  check(await sbx.getWorkDir() === '/home/daytona', 'work dir');
  r = await sbx.process.executeCommand('pwd');
  check(r.result === '/home/daytona\n', 'default cwd', r);
  await sbx.fs.uploadFile(Buffer.from('relative\n'), 'rel/r.txt');
  check((await sbx.fs.downloadFile('rel/r.txt')).toString() === 'relative\n', 'relative path round trip');
  r = await sbx.process.executeCommand('cat /home/daytona/rel/r.txt', 'rel');
  check(r.result === 'relative\n', 'relative upload lands in the work dir', r);
  r = await sbx.process.executeCommand('pwd', 'rel');
  check(r.result === '/home/daytona/rel\n', 'relative cwd', r);
  r = await sbx.process.executeCommand('echo partial; exit 3');
  check(r.exitCode === 3 && r.result === 'partial\n', 'failing command', r);

  // Files: text, binary from 1 byte to 10 MiB, folders, listing, errors.
  await sbx.fs.uploadFile(Buffer.from('hello gateway\n'), '/workspace/hello.txt');
  check((await sbx.fs.downloadFile('/workspace/hello.txt')).toString() === 'hello gateway\n', 'text round trip');
  for (const size of [1, 4096, 10 * 1024 * 1024]) {
    const data = randomBytes(size);
    await sbx.fs.uploadFile(data, `/workspace/bin-${size}`);
    const back = await sbx.fs.downloadFile(`/workspace/bin-${size}`);
    check(back.length === size && sha(back) === sha(data), `binary round trip of ${size} bytes`);
    r = await sbx.process.executeCommand(`sha256sum /workspace/bin-${size}`);
    check(r.result.startsWith(sha(data)), `binary seen inside the sandbox (${size})`, r.result);
  }
  await sbx.fs.createFolder('/workspace/d1/d2', '755');
  await sbx.fs.uploadFile(Buffer.from('x'), '/workspace/d1/d2/f.txt');
  const files = await sbx.fs.listFiles('/workspace/d1/d2');
  check(files.length === 1 && files[0].name === 'f.txt' && !files[0].isDir && files[0].size === 1, 'list', files);
  const info = await sbx.fs.getFileDetails('/workspace/d1');
  check(info.isDir === true, 'file info', info);
  await sbx.fs.deleteFile('/workspace/d1', true);
  await rejects(sbx.fs.getFileDetails('/workspace/d1'), DaytonaNotFoundError, 'deleted folder');
  await rejects(sbx.fs.downloadFile('/workspace/no-such-file'), DaytonaNotFoundError, 'reading a missing file');

  // What airlockd cannot give is refused as such, not as a missing sandbox.
  const noPorts = await rejects(sbx.getSignedPreviewUrl(8080, 60), DaytonaError, 'signed preview URL');
  check(!(noPorts instanceof DaytonaNotFoundError) && /not supported/.test(noPorts.message), 'preview URL refusal', noPorts.message);

  // Stop keeps the files; start brings the sandbox back.
  await sbx.stop();
  check(sbx.state === 'stopped', 'stopped', sbx.state);
  await sbx.start();
  check(sbx.state === 'started', 'started again', sbx.state);
  r = await sbx.process.executeCommand('cat /workspace/hello.txt');
  check(r.result === 'hello gateway\n', 'files after stop and start', r);

  // Tenants and keys.
  const other = new Daytona({ apiKey: process.env.GW_KEY_B, target: 'airlock' });
  await rejects(other.get(sbx.id), DaytonaNotFoundError, "another tenant's sandbox");
  const wrong = new Daytona({ apiKey: 'wrong-key-000000000000', target: 'airlock' });
  await rejects(wrong.create(), DaytonaAuthenticationError, 'wrong key');
  const again = await daytona.get(sbx.id);
  r = await again.process.executeCommand('cat /workspace/hello.txt');
  check(r.result === 'hello gateway\n', 'get', r);
} finally {
  await sbx.delete();
}
await rejects(daytona.get(sbx.id), DaytonaNotFoundError, 'deleted sandbox');
summary.ok = true;
console.log(JSON.stringify(summary));
