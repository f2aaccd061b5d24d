#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A task whose manifest mounts a bucket (s3_mount): the harness takes the
mount's credentials from its credentials file ("mounts", keyed by entry) and
sends them to airlockd in the create request; the agent reads its input from
the mounted bucket and writes its result back, and the official S3 client
reads the result.  The secret (unique to the run) is nowhere in the run
directory.  s3rver (npm) behind tests/harness/s3_sigv4_proxy.py, which checks
every request's SigV4 signature.

The same task on the modal provider, through airlock-gateway in front of this
class's airlockd: the harness sends the mount as a Modal cloud bucket mount
(its keys in a Modal secret of their own, not in the sandbox's env), which the
gateway has airlockd make on the host; and on the cloudflare provider, through
the bridge's POST /v1/sandbox/{id}/mount (credentialProxy), which the gateway
has airlockd mount into the running sandbox.  What the agent saw inside (every
process's environment and command line, the mount table) holds no secret."""

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "gateway"))
import fake_model as fm  # noqa: E402
import harness_test as ht  # noqa: E402
from harness_test import at  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_MODULES = os.path.join(os.path.dirname(HERE), "node_modules")
CLIENT = os.path.join(HERE, "store_client.js")
S3_PROXY = os.path.join(HERE, "s3_sigv4_proxy.py")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError("server exited %s" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("server on port %d did not come up" % port)


class MountTaskTest(ht.HarnessTestCase):
    # The gateway (for the modal case) runs as nobody and reaches airlockd through its
    # socket's group (gateway_test.DAEMON_ARGS).
    daemon_args = ("--group", "nogroup")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        import gateway_test as gt
        cls.gw_key = "mounts-gw-" + secrets.token_hex(16)
        cls.gateway = gt.Gateway(cls.workdir, cls.daemon.socket_path, cls.rootfs,
                                 {cls.gw_key: "mounts"})
        cls.gateway.start()
        cls.addClassCleanup(cls.gateway.stop)
        for pkg in ("s3rver", "@aws-sdk/client-s3"):
            if not os.path.isdir(os.path.join(NODE_MODULES, pkg)):
                raise AssertionError("npm package %s is missing: cd tests && npm ci" % pkg)
        cls.procs = []
        cls.addClassCleanup(cls.stop_servers)
        cls.srv = os.path.join(cls.workdir, "servers")
        os.makedirs(cls.srv)
        cls.secret = "canary-mount-" + secrets.token_hex(16)
        port, upstream = free_port(), free_port()
        for argv, p in (([os.path.join(NODE_MODULES, ".bin", "s3rver"), "-d",
                          os.path.join(cls.srv, "s3"), "-a", "127.0.0.1", "-p", str(upstream),
                          "--configure-bucket", "inputs"], upstream),
                        ([sys.executable, S3_PROXY, str(port), str(upstream),
                          "S3RVER:" + cls.secret], port)):
            with open(os.path.join(cls.srv, os.path.basename(argv[0]) + ".log"), "wb") as out:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                        start_new_session=True, cwd=cls.srv)
            cls.procs.append(proc)
            wait_port(p, proc)
        cls.endpoint = "http://127.0.0.1:%d" % port
        cls.client_cfg = os.path.join(cls.srv, "client.json")
        with open(cls.client_cfg, "w") as f:
            json.dump({"type": "s3", "endpoint": cls.endpoint, "bucket": "inputs",
                       "region": "us-east-1", "access_key_id": "S3RVER",
                       "secret_access_key": cls.secret}, f)

    @classmethod
    def stop_servers(cls):
        for p in cls.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(15)

    def official(self, *args):
        proc = subprocess.run(["node", CLIENT, self.client_cfg] + list(args), capture_output=True,
                              text=True, timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])

    def test_task_reads_and_writes_a_mounted_bucket(self):
        self.read_and_write()

    def test_a_mount_nested_in_a_dir_gets_its_credentials_by_full_path(self):
        self.read_and_write(nested=True)

    def test_modal_task_reads_and_writes_through_a_cloud_bucket_mount(self):
        for nested in (False, True):
            self.read_and_write(nested, hosted="modal")

    def test_cloudflare_task_reads_and_writes_through_the_bridge_mount(self):
        for nested in (False, True):
            self.read_and_write(nested, hosted="cloudflare")

    def read_and_write(self, nested=False, hosted=None):
        # each case its own objects
        prefix = (hosted + "-" if hosted else "") + ("job-nested" if nested else "job")
        src = os.path.join(self.srv, "in.txt")
        with open(src, "w") as f:
            f.write("3 4\n")
        self.official("put", prefix + "/in.txt", src)
        creds = os.path.join(self.srv, "credentials-%s-%s.json" % (nested, hosted))
        key, where = ("in/bucket", "/workspace/in/bucket") if nested else \
            ("bucket", "/workspace/bucket")
        fd = os.open(creds, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"mounts": {key: {"accessKeyId": "S3RVER",
                                        "secretAccessKey": self.secret}}}, f)
        entry = {"type": "s3_mount", "bucket": "inputs", "prefix": prefix,
                 "endpointUrl": self.endpoint, "region": "us-east-1"}
        entries = {"in": {"type": "dir", "children": {"bucket": entry}}} if nested else \
            {"bucket": entry}
        manifest = {"version": 1, "root": "/workspace", "entries": entries}
        cmd = ("read a b < {w}/in.txt && echo $((a*b)) > {w}/out.txt"
               " && sync && cat {w}/out.txt").format(w=where)
        # What a process inside can see: every environment and command line, the mounts.
        look = ("cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline /proc/self/mountinfo"
                " | tr '\\0' '\\n'; env")
        extra, env = {}, None
        if hosted == "modal":
            extra["provider"] = {"type": "modal", "server_url": self.gateway.url,
                                 "token_id": "ak-mounts"}
            env = {"MODAL_TOKEN_SECRET": self.gw_key}
        elif hosted == "cloudflare":
            extra["provider"] = {"type": "cloudflare",
                                 "worker_url": self.gateway.url + "/cloudflare"}
            env = {"CLOUDFLARE_SANDBOX_API_KEY": self.gw_key}
        task = self.replay_task([
            fm.calls_response([ht.exec_call("call_1", cmd)], "resp_1"),
            fm.calls_response([ht.exec_call("call_2", look)], "resp_2"),
            fm.text_response("done", "resp_3")], manifest=manifest, **extra)
        res = self.run_task(task, env=env, args=["--credentials", creds])
        self.assertEqual(res.returncode, 0, res)
        out = os.path.join(self.srv, "out.txt")
        deadline = time.monotonic() + 20
        while True:
            proc = subprocess.run(["node", CLIENT, self.client_cfg, "get", prefix + "/out.txt", out],
                                  capture_output=True, text=True, timeout=120)
            if proc.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.assertEqual(proc.returncode, 0, (proc.stderr[-1500:], res.stdout[-3000:]))
        with open(out) as f:
            self.assertEqual(f.read(), "12\n")
        # The look inside ran and saw the mount (the run directory has its output).
        seen = str(ht.recorded_results(ht.load_state(res.run_dir)).get("call_2"))
        self.assertIn(" %s " % where, seen)
        self.assertIn("fuse.rclone", seen)
        # The secret is in no file of the run (so not in what was seen inside either),
        # nor in the harness's output.
        self.assertNotIn(self.secret, res.stdout + res.stderr)
        for root, _, files in os.walk(res.run_dir):
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    self.assertNotIn(self.secret.encode(), f.read(), name)


if __name__ == "__main__":
    at.main()
