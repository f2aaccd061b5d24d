# SPDX-License-Identifier: Apache-2.0
"""The official `modal` SDK (0.7.6) against airlock-gateway backed by a real
airlockd, over gRPC on cleartext HTTP/2 (both of Modal's services: the control
plane and the task command router): sandboxes, commands (stdout and stderr
streams, exit codes, signals, stdin), files from 1 byte to 10 MiB, directories,
directory and filesystem snapshots, a sandbox restored from one, tenants, an
unknown method, terminate (modal_sdk.mjs does the SDK's side)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_test as gt  # noqa: E402


class ModalSDKTest(gt.GatewayTestCase):

    def test_official_sdk(self):
        before = {sb["id"] for sb in self.client.list()}
        summary = self.node("modal_sdk.mjs", {
            "MODAL_SERVER_URL": self.gateway.url,
            "MODAL_TOKEN_ID": "ak-tenant-a", "MODAL_TOKEN_SECRET": self.key_a,
            "GW_KEY_B": self.key_b})
        self.assertTrue(summary.get("ok"), summary)
        print("figures:", {k: v for k, v in summary.items() if "Ms" in k})
        # The SDK reached the gateway over HTTP/2, and the unknown method was answered
        # UNIMPLEMENTED by name.
        self.assertIn("an HTTP/2 (h2c) connection", self.gateway.log())
        self.assertEqual(summary["unknownMethod"]["code"], 12)
        # Every sandbox, the restored one too, is gone from airlockd.
        self.assertEqual({sb["id"] for sb in self.client.list()} - before, set())


if __name__ == "__main__":
    gt.main()
