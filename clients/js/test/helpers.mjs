// SPDX-License-Identifier: Apache-2.0
// Shared by the node tests: the airlockd that test/run_with_airlockd.py
// started (AIRLOCK_SOCKET), and tars for the archive cases.

import assert from 'node:assert/strict';
import { AirlockApi } from '../dist/index.js';

export const socketPath = process.env.AIRLOCK_SOCKET;
if (!socketPath) {
  throw new Error('AIRLOCK_SOCKET is not set: run these through test/run_with_airlockd.py (meson test js-client)');
}
export const api = new AirlockApi({ socketPath });

/** The sandboxes airlockd has now, as ids. */
export async function sandboxIds() {
  const r = await api.request('GET', '/v1/sandboxes');
  return JSON.parse(r.body.toString()).sandboxes.map((s) => s.id);
}

/** A ustar archive from [{name, data?, type?: '0'|'2'|'5', linkname?}], written here to stay dependency-free. */
export function tar(members) {
  const blocks = [];
  for (const m of members) {
    const data = Buffer.from(m.data ?? '');
    const h = Buffer.alloc(512);
    const put = (s, off, len) => h.write(s, off, Math.min(len, Buffer.byteLength(s)), 'utf8');
    const oct = (n, len) => n.toString(8).padStart(len - 1, '0') + '\0';
    put(m.name, 0, 100);
    put(oct(m.mode ?? 0o644, 8), 100, 8);
    put(oct(0, 8), 108, 8);
    put(oct(0, 8), 116, 8);
    put(oct(m.type === '0' || !m.type ? data.length : 0, 12), 124, 12);
    put(oct(0, 12), 136, 12);
    h.fill(' ', 148, 156);
    put(m.type ?? '0', 156, 1);
    put(m.linkname ?? '', 157, 100);
    put('ustar\0', 257, 6);
    put('00', 263, 2);
    let sum = 0;
    for (const b of h) sum += b;
    put(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8);
    blocks.push(h);
    if (!m.type || m.type === '0') {
      blocks.push(data, Buffer.alloc((512 - (data.length % 512)) % 512));
    }
  }
  blocks.push(Buffer.alloc(1024));
  return new Uint8Array(Buffer.concat(blocks));
}

export function text(bytes) {
  return Buffer.from(bytes).toString('utf8');
}

export { assert };
