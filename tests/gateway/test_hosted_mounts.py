# SPDX-License-Identifier: Apache-2.0
"""Bucket mounts of hosted services through airlock-gateway, with a real S3 store on
loopback: s3rver (npm) behind
tests/harness/s3_sigv4_proxy.py, which checks every request's SigV4 signature against a
secret unique to this run.  The gateway turns the SDK's CloudBucketMount (its keys in a
Modal secret, not in the sandbox's env) into an airlockd bucket mount, which rclone makes
on the host: an object put by @aws-sdk/client-s3 is read inside, one written inside is
read by it, a read-only mount refuses writes, the secret is visible nowhere inside
(modal_mounts.mjs does the SDK's side, then the Agents SDK's ModalSandboxClient with an
s3_mount entry), and terminate leaves no rclone or mount behind.

The Cloudflare Sandbox bridge's POST /v1/sandbox/{id}/mount the same way, driven by the
Agents SDK's CloudflareSandboxClient (@openai/agents-extensions) with s3_mount entries
and its CloudflareBucketMountStrategy (cloudflare_mounts.mjs): the gateway has airlockd
mount the bucket into the running sandbox (POST /v1/sandboxes/{id}/mounts)."""

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_test as gt  # noqa: E402
import airlock_test as at  # noqa: E402
import test_bucket_mounts as tbm  # noqa: E402  (its s3rver helpers)


class HostedMountsTest(gt.GatewayTestCase):

    @classmethod
    def setUpClass(cls):
        if not shutil.which("rclone"):
            raise AssertionError("rclone is missing: scripts/setup.sh installs it")
        for pkg in ("s3rver", "@aws-sdk/client-s3", "modal"):
            if not os.path.isdir(os.path.join(gt.NODE_MODULES, pkg)):
                raise AssertionError("npm package %s is missing: cd tests && npm ci" % pkg)
        super().setUpClass()
        cls.srv = tempfile.mkdtemp(prefix="airlock-gw-buckets-")
        cls.addClassCleanup(shutil.rmtree, cls.srv, ignore_errors=True)
        cls.procs = []
        cls.addClassCleanup(cls.stop_servers)
        cls.s3_secret = "canary-s3-" + secrets.token_hex(16)
        s3_port, s3rver_port = tbm.free_port(), tbm.free_port()
        cls.start_server("s3rver", [os.path.join(gt.NODE_MODULES, ".bin", "s3rver"), "-d",
                                    os.path.join(cls.srv, "s3"), "-a", "127.0.0.1",
                                    "-p", str(s3rver_port), "--configure-bucket", "bkt"],
                         s3rver_port)
        cls.start_server("s3-sigv4-proxy", [sys.executable, tbm.S3_PROXY, str(s3_port),
                                            str(s3rver_port),
                                            "%s:%s" % (tbm.S3_KEY_ID, cls.s3_secret)], s3_port)
        cls.s3_ep = "http://127.0.0.1:%d" % s3_port

    @classmethod
    def start_server(cls, name, argv, port):
        log = os.path.join(cls.srv, name + ".log")
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                    start_new_session=True, cwd=cls.srv)
        cls.procs.append(proc)
        tbm.wait_port(port, proc, log)

    @classmethod
    def stop_servers(cls):
        for p in cls.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()

    def test_cloud_bucket_mounts(self):
        before = {sb["id"] for sb in self.client.list()}
        summary = self.node("modal_mounts.mjs", {
            "MODAL_SERVER_URL": self.gateway.url,
            "MODAL_TOKEN_ID": "ak-tenant-a", "MODAL_TOKEN_SECRET": self.key_a,
            "S3_ENDPOINT": self.s3_ep, "S3_BUCKET": "bkt", "S3_KEY_ID": tbm.S3_KEY_ID,
            "S3_SECRET": self.s3_secret, "S3_PREFIX": "run-" + secrets.token_hex(4)})
        self.assertTrue(summary.get("ok"), summary)
        self.assertTrue(summary.get("snapshotImage"), summary)
        print("mountinfo inside:", summary.get("mountinfo"))
        self.check_host_side(before, summary)

    def test_cloudflare_bridge_mounts(self):
        before = {sb["id"] for sb in self.client.list()}
        summary = self.node("cloudflare_mounts.mjs", {
            "GW_WORKER_URL": self.gateway.url + "/cloudflare",
            "CLOUDFLARE_SANDBOX_API_KEY": self.key_a,
            "S3_ENDPOINT": self.s3_ep, "S3_BUCKET": "bkt", "S3_KEY_ID": tbm.S3_KEY_ID,
            "S3_SECRET": self.s3_secret, "S3_PREFIX": "cf-" + secrets.token_hex(4)})
        self.assertTrue(summary.get("ok"), summary)
        self.assertTrue(summary.get("unmounted"), summary)
        print("mountinfo inside:", summary.get("mountinfo"))
        self.check_host_side(before, summary)

    def check_host_side(self, before, summary):
        # The mount inside is airlockd's rclone (FUSE), made on the host; nothing of the
        # secret in the gateway's or airlockd's logs.
        self.assertIn("fuse", summary.get("mountinfo") or "")
        self.assertNotIn(self.s3_secret, self.gateway.log())
        self.assertNotIn(self.s3_secret, self.daemon.log())
        # Terminated: every sandbox is gone from airlockd, with its rclone and mounts.
        self.assertEqual({sb["id"] for sb in self.client.list()} - before, set())
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            procs = [c for c in tbm.rclone_processes().values()
                     if self.daemon.state_dir in c]
            mounts = at.mounts_mentioning(self.daemon.state_dir)
            if not procs and not mounts:
                break
            time.sleep(0.2)
        self.assertEqual(procs, [])
        self.assertEqual(mounts, [])


if __name__ == "__main__":
    gt.main()
