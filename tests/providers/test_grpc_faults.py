# SPDX-License-Identifier: Apache-2.0
"""How the harness's modal provider reports a gRPC call that goes wrong: a non-zero
grpc-status (its message percent-decoded), DEADLINE_EXCEEDED, a message cut short, a
stream reset mid-message, an answer without a status, and a server that never answers
(the provider's request_timeout_ms).  The server is grpc_faults.mjs (node:http2); the
official `modal` SDK is run against the same server first and must read each answer as
the gRPC failure it is (grpc_faults_sdk.mjs), so the faults are ones a real gRPC server
can produce, not artefacts of a server only our client understands."""

import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import airlock_test as at  # noqa: E402

CONFORMANCE = os.path.join(at.BUILD_DIR, "tests", "providers", "test-provider-conformance")
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "MODAL_TOKEN_ID": "ak-faults",
       "MODAL_TOKEN_SECRET": "as-faults-secret"}


class FaultServer:
    def __init__(self, mode):
        self.proc = subprocess.Popen(["node", os.path.join(HERE, "grpc_faults.mjs"), mode],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(10)
            raise AssertionError("grpc_faults.mjs %s did not start: %s"
                                 % (mode, self.proc.stderr.read().decode()))
        self.url = "http://127.0.0.1:%d" % json.loads(line)["port"]

    def stop(self):
        """Stop it; the paths it was asked for."""
        self.proc.terminate()
        _, err = self.proc.communicate(timeout=10)
        for line in err.decode().splitlines():
            if line.startswith("calls: "):
                return json.loads(line[len("calls: "):])
        return []


class GrpcFaults(unittest.TestCase):
    def fault(self, mode):
        """(the SDK's reading, the harness's stderr, seconds the harness took, calls seen)."""
        server = FaultServer(mode)
        try:
            with tempfile.TemporaryDirectory(prefix="airlock-grpc-faults-") as work:
                sdk = {}
                if mode != "hang":  # the SDK retries a silent server for minutes
                    p = subprocess.run(["node", os.path.join(HERE, "grpc_faults_sdk.mjs")],
                                       env=dict(ENV, MODAL_SERVER_URL=server.url, HOME=work),
                                       cwd=HERE, capture_output=True, timeout=120)
                    self.assertEqual(p.returncode, 0, p.stderr.decode())
                    sdk = json.loads(p.stdout.decode().splitlines()[-1])
                provider = {"type": "modal", "server_url": server.url,
                            "request_timeout_ms": 1500}
                started = time.monotonic()
                p = subprocess.run([CONFORMANCE, json.dumps(provider), work], env=ENV,
                                   capture_output=True, timeout=120)
                took = time.monotonic() - started
        finally:
            calls = server.stop()
        self.assertEqual(p.returncode, 1, p.stdout.decode())
        err = p.stderr.decode()
        self.assertNotIn("as-faults-secret", err + p.stdout.decode())
        return sdk, err, took, calls

    def test_status_and_message(self):
        sdk, err, _, calls = self.fault("status")
        self.assertEqual(sdk.get("name"), "NotFoundError", sdk)
        self.assertIn('create: Modal auth token: gRPC status 5: no app "airlock" here', err)
        self.assertIn("/modal.client.ModalClient/AuthTokenGet", calls)

    def test_deadline_exceeded(self):
        sdk, err, _, _ = self.fault("deadline")
        self.assertEqual((sdk.get("code"), sdk.get("details")), (4, "deadline passed after 1 s"))
        self.assertIn("gRPC status 4: deadline passed after 1 s", err)

    def test_message_cut_short(self):
        sdk, err, _, _ = self.fault("short")
        self.assertIsInstance(sdk.get("code"), int, sdk)
        self.assertNotEqual(sdk["code"], 0, sdk)
        self.assertIn("Modal auth token: a message cut short", err)

    def test_stream_reset_mid_message(self):
        sdk, err, _, _ = self.fault("reset")
        self.assertEqual(sdk.get("code"), 13, sdk)  # INTERNAL
        self.assertIn("RST_STREAM with code 2", sdk.get("details", ""))
        self.assertIn("Modal auth token: HTTP/2 stream 1 was not closed cleanly: INTERNAL_ERROR",
                      err)

    def test_answer_without_status(self):
        sdk, err, _, _ = self.fault("nostatus")
        self.assertEqual(sdk.get("code"), 13, sdk)
        self.assertIn("Modal auth token: the answer ended without a gRPC status", err)

    def test_no_answer_within_request_timeout(self):
        _, err, took, calls = self.fault("hang")
        self.assertIn("Modal auth token: no answer in time from %s" % "http://127.0.0.1:", err)
        # Two creates (the first case's and the delete case's), each one AuthTokenGet
        # that waited its 1.5 s and was not sent again.
        self.assertEqual(len(calls), 2, calls)
        self.assertGreaterEqual(took, 2 * 1.4, err)
        self.assertLess(took, 2 * 1.5 + 5, err)

    def test_request_timeout_below_a_second_refused(self):
        p = subprocess.run([CONFORMANCE, json.dumps({"type": "modal", "server_url": "http://127.0.0.1:9",
                                                     "request_timeout_ms": 10}), "/nonexistent"],
                           env=ENV, capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"provider.request_timeout_ms must be a number of at least 1000", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
