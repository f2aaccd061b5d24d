# SPDX-License-Identifier: Apache-2.0
"""The official `@blaxel/core` SDK against airlock-gateway backed by a real
airlockd: processes (streams, exit codes, env, cwd), files from 1 byte to
10 MiB (the SDK's multipart upload beyond 5 MiB), directories, a name taken
twice, tenants and keys (blaxel_sdk.mjs does the SDK's side)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_test as gt  # noqa: E402


def blaxel_env(gateway, key, other=None):
    env = {"BL_API_URL": gateway.url + "/blaxel/v0", "BL_API_KEY": key,
           "BL_WORKSPACE": "airlock", "BL_DISABLE_H2": "true", "DO_NOT_TRACK": "true"}
    if other:
        env["GW_KEY_B"] = other
    return env


class BlaxelSDKTest(gt.GatewayTestCase):

    def test_official_sdk(self):
        before = {sb["id"] for sb in self.client.list()}
        summary = self.node("blaxel_sdk.mjs", blaxel_env(self.gateway, self.key_a, self.key_b))
        self.assertTrue(summary.get("ok"), summary)
        self.assertEqual({sb["id"] for sb in self.client.list()} - before, set())


if __name__ == "__main__":
    gt.main()
