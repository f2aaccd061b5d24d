// SPDX-License-Identifier: Apache-2.0
// The official SDKs across a restart of airlock-gateway with --state-dir
// (test_restart.py runs it twice).  `create`: an E2B (`e2b`), a Daytona
// (`@daytonaio/sdk`), a Blaxel (`@blaxel/core`) sandbox, a Runloop
// (`@runloop/api-client`) devbox and a Vercel (`@vercel/sandbox`, through
// vercel_fetch.cjs) sandbox and a Modal (`modal`) sandbox, each with a file written through
// the SDK, a disk snapshot of the devbox, a snapshot of a second Vercel sandbox and a
// filesystem snapshot of the Modal sandbox; prints their ids.  `reconnect IDS_JSON` (after the
// restart): the same SDKs find them again by id or name, run a command that reads
// the file, then delete them.  Environment: each SDK's own variables for tenant A
// (as the other gateway tests), GW_KEY_B (tenant B, which must not see them).
import { Sandbox, NotFoundError } from 'e2b';
import { Daytona, DaytonaNotFoundError } from '@daytonaio/sdk';
import { SandboxInstance } from '@blaxel/core';
import { RunloopSDK, NotFoundError as RunloopNotFoundError } from '@runloop/api-client';
import { Sandbox as VercelSandbox, Snapshot as VercelSnapshot } from '@vercel/sandbox';
import { ModalClient, NotFoundError as ModalNotFoundError } from 'modal';

const vercelCreds = { teamId: process.env.VERCEL_TEAM_ID, projectId: process.env.VERCEL_PROJECT_ID, token: process.env.VERCEL_TOKEN };
import { randomBytes } from 'node:crypto';
import { check, rejects } from './checks.mjs';

const phase = process.argv[2];
if (phase === 'create') {
  const e2b = await Sandbox.create({ metadata: { purpose: 'restart' }, timeoutMs: 600_000 });
  await e2b.files.write('/workspace/kept.txt', 'e2b kept\n');
  const daytona = await new Daytona({ target: 'airlock' }).create({ name: `gw-restart-${randomBytes(3).toString('hex')}`, labels: { purpose: 'restart' } });
  await daytona.fs.uploadFile(Buffer.from('daytona kept\n'), '/workspace/kept.txt');
  const blaxelName = `gw-restart-${randomBytes(3).toString('hex')}`;
  const blaxel = await SandboxInstance.create({ name: blaxelName });
  await blaxel.fs.write('/workspace/kept.txt', 'blaxel kept\n');
  const devbox = await new RunloopSDK().devbox.create({ name: 'gw-restart' });
  await devbox.file.write({ file_path: 'kept.txt', contents: 'runloop kept\n' });
  const snap = await devbox.snapshotDisk({ name: 'gw-restart' });
  const vercel = await VercelSandbox.create({ ...vercelCreds });
  await vercel.writeFiles([{ path: 'kept.txt', content: Buffer.from('vercel kept\n') }]);
  const vercelSource = await VercelSandbox.create({ ...vercelCreds });
  await vercelSource.writeFiles([{ path: 'snapped.txt', content: Buffer.from('vercel snapped\n') }]);
  const vercelSnap = await vercelSource.snapshot();
  const modal = new ModalClient();
  const app = await modal.apps.fromName('gw-restart', { createIfMissing: true });
  const msb = await modal.sandboxes.create(app, modal.images.fromRegistry('debian:bookworm-slim'), { workdir: '/workspace' });
  await msb.filesystem.writeText('modal kept\n', '/workspace/kept.txt');
  const modalImage = await msb.snapshotFilesystem();
  modal.close();
  console.log(JSON.stringify({ ok: true, e2b: e2b.sandboxId, daytona: daytona.id, daytonaName: daytona.name, blaxel: blaxelName,
                               runloop: devbox.id, runloopSnapshot: snap.id, vercel: vercel.sandboxId,
                               vercelSnapshot: vercelSnap.snapshotId, modal: msb.sandboxId,
                               modalImage: modalImage.imageId }));
} else if (phase === 'reconnect') {
  const ids = JSON.parse(process.argv[3]);
  const keyB = process.env.GW_KEY_B;
  // E2B: the id, the same metadata, and a command in the sandbox the first gateway made.
  const listed = await Sandbox.list().nextItems();
  check(listed.some((s) => s.sandboxId === ids.e2b && s.metadata.purpose === 'restart'), 'e2b list after the restart', listed);
  await rejects(Sandbox.connect(ids.e2b, { apiKey: keyB }), NotFoundError, 'e2b: tenant B connects to A\'s sandbox');
  const e2b = await Sandbox.connect(ids.e2b);
  const r1 = await e2b.commands.run('cat /workspace/kept.txt');
  check(r1.exitCode === 0 && r1.stdout === 'e2b kept\n', 'e2b command after the restart', r1);
  await e2b.kill();
  // Daytona: by id and by name.
  const daytona = new Daytona({ target: 'airlock' });
  await rejects(new Daytona({ target: 'airlock', apiKey: keyB }).get(ids.daytona), DaytonaNotFoundError, 'daytona: tenant B gets A\'s sandbox');
  const byName = await daytona.get(ids.daytonaName);
  check(byName.id === ids.daytona && byName.labels.purpose === 'restart', 'daytona by name after the restart', { id: byName.id, labels: byName.labels });
  const r2 = await byName.process.executeCommand('cat /workspace/kept.txt');
  check(r2.exitCode === 0 && r2.result === 'daytona kept\n', 'daytona command after the restart', r2);
  await byName.delete();
  // Blaxel: by name.
  const blaxel = await SandboxInstance.get(ids.blaxel);
  const r3 = await blaxel.process.exec({ command: 'cat /workspace/kept.txt', waitForCompletion: true });
  check(r3.exitCode === 0 && r3.stdout === 'blaxel kept\n', 'blaxel command after the restart', r3);
  await SandboxInstance.delete(ids.blaxel);
  // Runloop: the devbox by id, and a devbox made from the snapshot taken before.
  const runloop = new RunloopSDK();
  await rejects(new RunloopSDK({ bearerToken: keyB }).devbox.fromId(ids.runloop).getInfo(), RunloopNotFoundError, 'runloop: tenant B gets A\'s devbox');
  const devbox = runloop.devbox.fromId(ids.runloop);
  check((await devbox.getInfo()).name === 'gw-restart', 'runloop devbox after the restart');
  const r4 = await devbox.cmd.exec('cat /home/user/kept.txt');
  check(r4.exitCode === 0 && (await r4.stdout()) === 'runloop kept\n', 'runloop command after the restart', r4.exitCode);
  const restored = await runloop.devbox.createFromSnapshot(ids.runloopSnapshot);
  const r5 = await restored.cmd.exec('cat /home/user/kept.txt');
  check((await r5.stdout()) === 'runloop kept\n', 'runloop devbox from a snapshot taken before the restart');
  await restored.shutdown();
  await devbox.shutdown();
  await runloop.snapshot.fromId(ids.runloopSnapshot).delete();
  // Vercel: the sandbox by id, and a sandbox made from the snapshot taken before.
  const vercel = await VercelSandbox.get({ ...vercelCreds, sandboxId: ids.vercel });
  const r6 = await vercel.runCommand({ cmd: 'cat', args: ['kept.txt'] });
  check(r6.exitCode === 0 && (await r6.stdout()) === 'vercel kept\n', 'vercel command after the restart', r6.exitCode);
  const fromSnap = await VercelSandbox.create({ ...vercelCreds, source: { type: 'snapshot', snapshotId: ids.vercelSnapshot } });
  const r7 = await fromSnap.runCommand({ cmd: 'cat', args: ['snapped.txt'] });
  check((await r7.stdout()) === 'vercel snapped\n', 'vercel sandbox from a snapshot taken before the restart');
  await fromSnap.stop();
  await vercel.stop();
  await (await VercelSnapshot.get({ ...vercelCreds, snapshotId: ids.vercelSnapshot })).delete();
  // Modal: the sandbox by id (its task and router token kept), and a sandbox made from the
  // filesystem snapshot taken before.
  const modal = new ModalClient();
  const modalB = new ModalClient({ tokenId: 'ak-b', tokenSecret: keyB });
  await rejects(modalB.sandboxes.fromId(ids.modal), ModalNotFoundError, 'modal: tenant B gets A\'s sandbox');
  modalB.close();
  const msb = await modal.sandboxes.fromId(ids.modal);
  const p8 = await msb.exec(['cat', '/workspace/kept.txt']);
  check((await p8.stdout.readText()) === 'modal kept\n' && (await p8.wait()) === 0, 'modal command after the restart');
  const app = await modal.apps.fromName('gw-restart', { createIfMissing: true });
  const fromImage = await modal.sandboxes.create(app, await modal.images.fromId(ids.modalImage));
  check((await fromImage.filesystem.readText('/workspace/kept.txt')) === 'modal kept\n', 'modal sandbox from a snapshot taken before the restart');
  await fromImage.terminate();
  await msb.terminate();
  await modal.images.delete(ids.modalImage);
  modal.close();
  console.log(JSON.stringify({ ok: true }));
} else {
  throw new Error(`unknown phase ${phase}`);
}
