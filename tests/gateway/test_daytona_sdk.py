# SPDX-License-Identifier: Apache-2.0
"""The official `@daytonaio/sdk` against airlock-gateway backed by a real
airlockd: commands (output, exit codes, env, cwd), files from 1 byte to
10 MiB through bulk upload and download, folders, listing, stop and start,
tenants and keys (daytona_sdk.mjs does the SDK's side)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_test as gt  # noqa: E402


class DaytonaSDKTest(gt.GatewayTestCase):

    def test_official_sdk(self):
        before = {sb["id"] for sb in self.client.list()}
        summary = self.node("daytona_sdk.mjs", {
            "DAYTONA_API_URL": self.gateway.url + "/daytona/api",
            "DAYTONA_API_KEY": self.key_a, "GW_KEY_B": self.key_b})
        self.assertTrue(summary.get("ok"), summary)
        self.assertEqual({sb["id"] for sb in self.client.list()} - before, set())

    def test_no_key_is_refused_in_daytona_shape(self):
        for headers in ({}, {"Authorization": "Bearer not-a-key-of-this-gateway"}):
            body = self.refused("/daytona/api/sandbox", headers)
            self.assertEqual(body["statusCode"], 401)


if __name__ == "__main__":
    gt.main()
