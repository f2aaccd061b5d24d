# SPDX-License-Identifier: Apache-2.0
"""The official `@runloop/api-client` against airlock-gateway backed by a real
airlockd, over cleartext HTTP/2 (the SDK's default transport) and HTTP/1.1:
devboxes, commands (stdout and stderr, exit codes, a command that outlasts the
long poll), files from 1 byte to 10 MiB, disk snapshots, suspend and resume,
tenants and keys (runloop_sdk.mjs does the SDK's side)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_test as gt  # noqa: E402


class RunloopSDKTest(gt.GatewayTestCase):

    def test_official_sdk(self):
        before = {sb["id"] for sb in self.client.list()}
        summary = self.node("runloop_sdk.mjs", {
            "RUNLOOP_BASE_URL": self.gateway.url,
            "RUNLOOP_API_KEY": self.key_a, "GW_KEY_B": self.key_b})
        self.assertTrue(summary.get("ok"), summary)
        # The command outlasted one hold of the long poll (25 s) and was waited for.
        self.assertGreater(summary["longCommandSeconds"], 26)
        # The SDK's default transport reached the gateway as HTTP/2.
        self.assertIn("an HTTP/2 (h2c) connection", self.gateway.log())
        # Every devbox, the restored one too, is gone from airlockd.
        self.assertEqual({sb["id"] for sb in self.client.list()} - before, set())

    def test_no_key_is_refused_in_runloop_shape(self):
        for headers in ({}, {"Authorization": "Bearer not-a-key-of-this-gateway"}):
            body = self.refused("/v1/devboxes", headers)
            self.assertIn("API key", body["message"])


if __name__ == "__main__":
    gt.main()
