# SPDX-License-Identifier: Apache-2.0
"""The official `@vercel/sandbox` against airlock-gateway backed by a real
airlockd, through a preloaded fetch that sends the SDK's requests to the gateway
(vercel_fetch.cjs: the SDK has no base-URL option): commands (NDJSON), their
logs, detached commands, kill, files of 1 byte to 10 MiB as gzip tars,
directories, snapshots, stop, tenants and keys (vercel_sdk.mjs)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_test as gt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def vercel_env(gateway, key):
    return {"GW_VERCEL_URL": gateway.url + "/vercel/api", "VERCEL_TOKEN": key,
            "VERCEL_TEAM_ID": "team_airlock", "VERCEL_PROJECT_ID": "prj_airlock",
            "NODE_OPTIONS": "--require " + os.path.join(HERE, "vercel_fetch.cjs")}


class VercelSDKTest(gt.GatewayTestCase):

    def test_official_sdk(self):
        before = {sb["id"] for sb in self.client.list()}
        env = vercel_env(self.gateway, self.key_a)
        env["GW_KEY_B"] = self.key_b
        summary = self.node("vercel_sdk.mjs", env)
        self.assertTrue(summary.get("ok"), summary)
        self.assertEqual({sb["id"] for sb in self.client.list()} - before, set())

    def test_no_key_is_refused_in_vercel_shape(self):
        for headers in ({}, {"Authorization": "Bearer not-a-key-of-this-gateway"}):
            body = self.refused("/vercel/api/v1/sandboxes?teamId=t", headers)
            self.assertIn("code", body["error"])


if __name__ == "__main__":
    gt.main()
