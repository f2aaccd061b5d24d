# SPDX-License-Identifier: Apache-2.0
"""One conformance suite for every provider of the harness (conformance.c runs
the cases through the provider table): `local` against a private airlockd, and
`e2b`, `daytona`, `cloudflare`, `blaxel`, `runloop`, `vercel` and `modal` against
airlock-gateway in front of one.  Their keys reach
the providers the harness's way, through the variables their SDKs read
(E2B_API_KEY, DAYTONA_API_KEY, CLOUDFLARE_SANDBOX_API_KEY, BL_API_KEY,
RUNLOOP_API_KEY, VERCEL_TOKEN)."""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "gateway"))
import gateway_test as gt  # noqa: E402
from gateway_test import at  # noqa: E402

CONFORMANCE = os.path.join(at.BUILD_DIR, "tests", "providers", "test-provider-conformance")


def run_conformance(case, provider, env):
    workdir = case.workdir
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    e.update(env)
    p = subprocess.run([CONFORMANCE, __import__("json").dumps(provider), workdir], env=e,
                       capture_output=True, timeout=600)
    out, err = p.stdout.decode(), p.stderr.decode()
    case.assertEqual(p.returncode, 0, "conformance of %s failed:\n%s\n%s" % (provider["type"], out, err))
    case.assertIn("all cases passed", out)


class LocalConformance(at.AirlockTestCase):
    def test_local(self):
        before = {sb["id"] for sb in self.client.list()}
        run_conformance(self, {"type": "local", "socket": self.daemon.socket_path}, {})
        self.assertEqual({sb["id"] for sb in self.client.list()} - before, set())


class E2BConformance(gt.GatewayTestCase):
    def test_e2b_through_the_gateway(self):
        before = {sb["id"] for sb in self.client.list()}
        run_conformance(self, {"type": "e2b", "api_url": self.gateway.url,
                               "sandbox_url": self.gateway.url},
                        {"E2B_API_KEY": self.key_a})
        self.assertEqual({sb["id"] for sb in self.client.list()} - before, set())

    def test_e2b_without_a_key(self):
        p = subprocess.run([CONFORMANCE, '{"type": "e2b", "api_url": "%s"}' % self.gateway.url,
                            self.workdir], env={"PATH": "/usr/bin:/bin"}, capture_output=True,
                           timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"needs a key", p.stderr)

    def test_e2b_wrong_key(self):
        p = subprocess.run([CONFORMANCE, '{"type": "e2b", "api_url": "%s", "sandbox_url": "%s"}'
                            % (self.gateway.url, self.gateway.url), self.workdir],
                           env={"PATH": "/usr/bin:/bin", "E2B_API_KEY": "wrong-key-0123456789"},
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"HTTP 401", p.stderr)
        self.assertNotIn(b"wrong-key-0123456789", p.stdout + p.stderr)


class DaytonaConformance(gt.GatewayTestCase):
    def test_daytona_through_the_gateway(self):
        before = {sb["id"] for sb in self.client.list()}
        run_conformance(self, {"type": "daytona", "api_url": self.gateway.url + "/daytona/api"},
                        {"DAYTONA_API_KEY": self.key_a})
        self.assertEqual({sb["id"] for sb in self.client.list()} - before, set())


class CloudflareConformance(gt.GatewayTestCase):
    def test_cloudflare_bridge_through_the_gateway(self):
        before = {sb["id"] for sb in self.client.list()}
        run_conformance(self, {"type": "cloudflare", "worker_url": self.gateway.url + "/cloudflare"},
                        {"CLOUDFLARE_SANDBOX_API_KEY": self.key_a})
        self.assertEqual({sb["id"] for sb in self.client.list()} - before, set())


class BlaxelConformance(gt.GatewayTestCase):
    def test_blaxel_through_the_gateway(self):
        before = {sb["id"] for sb in self.client.list()}
        run_conformance(self, {"type": "blaxel", "api_url": self.gateway.url + "/blaxel/v0",
                               "workspace": "airlock"},
                        {"BL_API_KEY": self.key_a})
        self.assertEqual({sb["id"] for sb in self.client.list()} - before, set())


class RunloopConformance(gt.GatewayTestCase):
    def test_runloop_through_the_gateway(self):
        before = {sb["id"] for sb in self.client.list()}
        run_conformance(self, {"type": "runloop", "base_url": self.gateway.url},
                        {"RUNLOOP_API_KEY": self.key_a})
        self.assertEqual({sb["id"] for sb in self.client.list()} - before, set())

    def test_runloop_wrong_key(self):
        p = subprocess.run([CONFORMANCE, '{"type": "runloop", "base_url": "%s"}' % self.gateway.url,
                            self.workdir],
                           env={"PATH": "/usr/bin:/bin", "RUNLOOP_API_KEY": "wrong-key-0123456789"},
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"HTTP 401", p.stderr)
        self.assertNotIn(b"wrong-key-0123456789", p.stdout + p.stderr)


class VercelConformance(gt.GatewayTestCase):
    def test_vercel_through_the_gateway(self):
        before = {sb["id"] for sb in self.client.list()}
        run_conformance(self, {"type": "vercel", "api_url": self.gateway.url + "/vercel/api",
                               "team_id": "team_airlock", "project_id": "prj_airlock"},
                        {"VERCEL_TOKEN": self.key_a})
        self.assertEqual({sb["id"] for sb in self.client.list()} - before, set())

    def test_vercel_needs_a_team_and_a_project(self):
        p = subprocess.run([CONFORMANCE, '{"type": "vercel", "api_url": "%s/vercel/api"}'
                            % self.gateway.url, self.workdir],
                           env={"PATH": "/usr/bin:/bin", "VERCEL_TOKEN": self.key_a},
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"team_id and project_id", p.stderr)


class ModalConformance(gt.GatewayTestCase):
    def test_modal_through_the_gateway(self):
        # gRPC over cleartext HTTP/2 from libcurl, a connection per call.
        before = {sb["id"] for sb in self.client.list()}
        run_conformance(self, {"type": "modal", "server_url": self.gateway.url},
                        {"MODAL_TOKEN_ID": "ak-airlock", "MODAL_TOKEN_SECRET": self.key_a})
        self.assertEqual({sb["id"] for sb in self.client.list()} - before, set())

    def test_modal_wrong_key(self):
        p = subprocess.run([CONFORMANCE, '{"type": "modal", "server_url": "%s"}' % self.gateway.url,
                            self.workdir],
                           env={"PATH": "/usr/bin:/bin", "MODAL_TOKEN_ID": "ak-airlock",
                                "MODAL_TOKEN_SECRET": "wrong-key-0123456789"},
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"gRPC status 16", p.stderr)
        self.assertNotIn(b"wrong-key-0123456789", p.stdout + p.stderr)


if __name__ == "__main__":
    at.main()
