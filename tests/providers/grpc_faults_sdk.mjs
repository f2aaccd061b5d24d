// SPDX-License-Identifier: Apache-2.0
// The official `modal` SDK (0.7.6) against grpc_faults.mjs: its first call to the
// control plane at MODAL_SERVER_URL, and the gRPC code and details it reports.  That the
// SDK reads the fault server's answers as gRPC (a status and message from its trailers,
// a cut stream as an error of its own) is what makes that server an honest stand-in.
// Prints {"code": N, "details": "..."} or {"ok": true}.
import { ModalClient } from 'modal';

const modal = new ModalClient();
const deadline = new Promise((_, reject) =>
  setTimeout(() => reject(Object.assign(new Error('no answer in 20 s'), { code: -1 })), 20000));
try {
  await Promise.race([modal.apps.fromName('airlock', { createIfMissing: true }), deadline]);
  console.log(JSON.stringify({ ok: true }));
} catch (e) {
  // The SDK wraps some codes in classes of its own; the gRPC code stays on the cause.
  const g = e.cause && typeof e.cause.code === 'number' ? e.cause : e;
  console.log(JSON.stringify({ code: g.code, details: g.details ?? g.message, name: e.constructor.name }));
}
process.exit(0);
