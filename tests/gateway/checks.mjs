// SPDX-License-Identifier: Apache-2.0
// What every SDK driver of tests/gateway checks with: a failed check throws (the driver
// then exits non-zero and test_*.py reports the message), and an expected failure must
// fail the way the SDK says it does.
import { createHash } from 'node:crypto';

export const sha = (b) => createHash('sha256').update(b).digest('hex');

export function check(cond, what, detail) {
  if (!cond) throw new Error(`${what}${detail === undefined ? '' : ': ' + JSON.stringify(detail)}`);
}

// promise must reject with the SDK's error class cls; the error is returned.
export async function rejects(promise, cls, what) {
  try {
    await promise;
  } catch (e) {
    check(e instanceof cls, `${what}: expected ${cls.name}, got ${e && e.constructor && e.constructor.name}`, String(e));
    return e;
  }
  throw new Error(`${what}: expected ${cls.name}, but it succeeded`);
}

// promise must reject, and (pattern given) its message or body must match pattern: for
// SDKs without an error class per status (Blaxel's, Vercel's).  The error is returned.
export async function fails(promise, what, pattern) {
  try {
    await promise;
  } catch (e) {
    if (pattern) {
      const text = `${e && e.message} ${JSON.stringify(e)}`;
      check(pattern.test(text), `${what}: unexpected error`, text);
    }
    return e;
  }
  throw new Error(`${what}: expected an error, but it succeeded`);
}
