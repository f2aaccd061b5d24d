# SPDX-License-Identifier: Apache-2.0
"""The OpenAI Agents SDK's own sandbox clients (@openai/agents-extensions
0.18.0 with @openai/agents-core 0.18.0) against airlock-gateway backed by a
real airlockd: materialise a manifest, exec, persistWorkspace, then
hydrateWorkspace into a fresh sandbox, delete (agents_sdk.mjs)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_test as gt  # noqa: E402


class AgentsSDKTest(gt.GatewayTestCase):

    def run_client(self, name, env):
        before = {sb["id"] for sb in self.client.list()}
        summary = self.node("agents_sdk.mjs", env, args=[name])
        self.assertTrue(summary.get("ok"), summary)
        self.assertEqual({sb["id"] for sb in self.client.list()} - before, set())

    def test_e2b_client(self):
        self.run_client("e2b", {"E2B_API_URL": self.gateway.url, "E2B_SANDBOX_URL": self.gateway.url,
                                "E2B_API_KEY": self.key_a})

    def test_daytona_client(self):
        self.run_client("daytona", {"DAYTONA_API_URL": self.gateway.url + "/daytona/api",
                                    "DAYTONA_API_KEY": self.key_a})


if __name__ == "__main__":
    gt.main()
