# SPDX-License-Identifier: Apache-2.0
"""The OpenAI Agents SDK's own sandbox clients (@openai/agents-extensions
0.18.0 with @openai/agents-core 0.18.0) for E2B, Daytona, the Cloudflare
bridge, Blaxel, Runloop, Vercel and Modal (native snapshot and tar persistence) against airlock-gateway backed by a real airlockd: materialise a manifest, exec, persistWorkspace, then
hydrateWorkspace into a fresh sandbox, delete (agents_sdk.mjs)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_test as gt  # noqa: E402


class AgentsSDKTest(gt.GatewayTestCase):

    def run_client(self, name, env, args=()):
        before = {sb["id"] for sb in self.client.list()}
        summary = self.node("agents_sdk.mjs", env, args=[name] + list(args))
        self.assertTrue(summary.get("ok"), summary)
        self.assertEqual({sb["id"] for sb in self.client.list()} - before, set())
        return summary

    def test_e2b_client(self):
        self.run_client("e2b", {"E2B_API_URL": self.gateway.url, "E2B_SANDBOX_URL": self.gateway.url,
                                "E2B_API_KEY": self.key_a})

    def test_daytona_client(self):
        self.run_client("daytona", {"DAYTONA_API_URL": self.gateway.url + "/daytona/api",
                                    "DAYTONA_API_KEY": self.key_a})


    def test_cloudflare_client(self):
        self.run_client("cloudflare", {"GW_WORKER_URL": self.gateway.url + "/cloudflare",
                                       "CLOUDFLARE_SANDBOX_API_KEY": self.key_a})

    def test_blaxel_client(self):
        from test_blaxel_sdk import blaxel_env
        self.run_client("blaxel", blaxel_env(self.gateway, self.key_a))

    def test_runloop_client_native_snapshot(self):
        # The client's default persistence: a Runloop disk snapshot, hydrated by
        # creating a devbox from it.
        summary = self.run_client("runloop", {"RUNLOOP_BASE_URL": self.gateway.url,
                                              "RUNLOOP_API_KEY": self.key_a})
        self.assertEqual(summary["persisted"], "runloop-snapshot")

    def test_runloop_client_tar(self):
        summary = self.run_client("runloop", {"RUNLOOP_BASE_URL": self.gateway.url,
                                              "RUNLOOP_API_KEY": self.key_a}, args=["tar"])
        self.assertEqual(summary["persisted"], "tar")

    def test_vercel_client_tar(self):
        from test_vercel_sdk import vercel_env
        summary = self.run_client("vercel", vercel_env(self.gateway, self.key_a))
        self.assertEqual(summary["persisted"], "tar")

    def test_vercel_client_native_snapshot(self):
        from test_vercel_sdk import vercel_env
        summary = self.run_client("vercel", vercel_env(self.gateway, self.key_a), args=["snapshot"])
        self.assertEqual(summary["persisted"], "vercel-snapshot")

    def modal_env(self):
        return {"MODAL_SERVER_URL": self.gateway.url, "MODAL_TOKEN_ID": "ak-tenant-a",
                "MODAL_TOKEN_SECRET": self.key_a}

    def test_modal_client_tar(self):
        summary = self.run_client("modal", self.modal_env(), args=["tar"])
        self.assertEqual(summary["persisted"], "tar")

    def test_modal_client_snapshot_filesystem(self):
        summary = self.run_client("modal", self.modal_env(), args=["snapshot_filesystem"])
        self.assertEqual(summary["persisted"], "modal-fs-snapshot")

    def test_modal_client_snapshot_directory(self):
        summary = self.run_client("modal", self.modal_env(), args=["snapshot_directory"])
        self.assertEqual(summary["persisted"], "modal-dir-snapshot")

    def test_cloudflare_bridge_wants_a_key(self):
        body = self.refused("/cloudflare/v1/sandbox",
                            {"Authorization": "Bearer wrong-key-00000000"})
        self.assertEqual(body["code"], "unauthorized")


if __name__ == "__main__":
    gt.main()
