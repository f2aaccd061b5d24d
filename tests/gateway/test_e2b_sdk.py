# SPDX-License-Identifier: Apache-2.0
"""The official `e2b` npm SDK against airlock-gateway backed by a real airlockd:
commands (streams, exit codes, env, cwd, a failing command, streaming, stdin,
kill), files from 1 byte to 10 MiB, directories, snapshots, tenants and keys
(e2b_sdk.mjs does the SDK's side).  Then the gateway's own refusals, checked
from here: a key file that others can read, and requests without a key."""

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_test as gt  # noqa: E402


class E2BSDKTest(gt.GatewayTestCase):

    def test_official_sdk(self):
        before = {sb["id"] for sb in self.client.list()}
        summary = self.node("e2b_sdk.mjs", {
            "E2B_API_URL": self.gateway.url, "E2B_SANDBOX_URL": self.gateway.url,
            "E2B_API_KEY": self.key_a, "GW_KEY_B": self.key_b})
        self.assertTrue(summary.get("ok"), summary)
        self.assertGreaterEqual(summary["streamedChunks"], 2, "output arrived while the command ran")
        self.assertGreater(summary["ptyBytes"], 0, "the PTY sent its screen")
        # Everything the SDK made was airlockd's and is gone again.
        self.assertEqual({sb["id"] for sb in self.client.list()} - before, set())

    def test_no_key_is_refused_in_e2b_shape(self):
        for headers in ({}, {"X-API-KEY": "not-a-key-of-this-gateway"}):
            body = self.refused("/v2/sandboxes", headers)
            self.assertEqual(body["code"], 401)
            self.assertIn("message", body)

    def test_envd_needs_the_sandbox_token(self):
        req = urllib.request.Request(self.gateway.url + "/v2/sandboxes",
                                     data=json.dumps({"templateID": "base", "timeout": 60}).encode(),
                                     headers={"Content-Type": "application/json",
                                              "X-API-KEY": self.key_a}, method="POST")
        sb = json.loads(urllib.request.urlopen(req, timeout=60).read())
        try:
            self.assertTrue(sb["envdAccessToken"])
            rpc = urllib.request.Request(self.gateway.url + "/filesystem.Filesystem/ListDir",
                                         data=b'{"path": "/"}',
                                         headers={"Content-Type": "application/json",
                                                  "E2b-Sandbox-Id": sb["sandboxID"],
                                                  "X-Access-Token": "wrong"}, method="POST")
            with self.assertRaises(urllib.error.HTTPError) as cm:
                urllib.request.urlopen(rpc, timeout=30)
            self.assertEqual(cm.exception.code, 401)
            self.assertEqual(json.loads(cm.exception.read())["code"], "unauthenticated")
        finally:
            urllib.request.urlopen(urllib.request.Request(
                self.gateway.url + "/sandboxes/" + sb["sandboxID"],
                headers={"X-API-KEY": self.key_a}, method="DELETE"), timeout=60)

    def test_keys_file_must_be_private(self):
        path = os.path.join(self.workdir, "loose-keys.json")
        with open(path, "w") as f:
            json.dump({"k" * 20: "t"}, f)
        os.chmod(path, 0o644)
        p = subprocess.run([gt.GATEWAY, "--keys", path, "--socket", self.daemon.socket_path,
                            "--listen", "127.0.0.1:0"], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"must be 0600", p.stderr)


if __name__ == "__main__":
    gt.main()
