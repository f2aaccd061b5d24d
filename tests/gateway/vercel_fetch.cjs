// SPDX-License-Identifier: Apache-2.0
// Preloaded (node --require) by the Vercel tests: `@vercel/sandbox` has its API's URL
// built in and no option or variable to change it, and the Agents SDK's Vercel client
// passes no fetch of its own.  This replaces globalThis.fetch with one that sends the
// SDK's requests to airlock-gateway instead (GW_VERCEL_URL, e.g.
// http://127.0.0.1:8049/vercel/api) and drops the SDK's undici dispatcher (made for
// TLS to the real host).  Anything else is fetched as it was.
'use strict';
const SDK_BASE = 'https://vercel.com/api';
const target = process.env.GW_VERCEL_URL;
if (!target) throw new Error('vercel_fetch.cjs: GW_VERCEL_URL is not set');
const realFetch = globalThis.fetch;
globalThis.fetch = function gatewayFetch(input, init) {
  const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
  if (typeof url === 'string' && url.startsWith(SDK_BASE + '/')) {
    const rest = url.slice(SDK_BASE.length);
    const { dispatcher, ...kept } = init || {};
    if (typeof input === 'object' && !(input instanceof URL))
      return realFetch(new Request(target + rest, input), kept);
    return realFetch(target + rest, kept);
  }
  return realFetch(input, init);
};
