# SPDX-License-Identifier: Apache-2.0
"""airlock-gateway with --state-dir across a restart: sandboxes made through the
official E2B, Daytona and Blaxel SDKs (and the Cloudflare bridge contract) before
the restart are served again, to the same tenants only, by the restarted gateway
(restart_sdk.mjs does the SDKs' side).  The registry files are private and
replaced whole; stopping a gateway that keeps its state deletes nothing; a
damaged registry is refused with a clear error."""

import base64
import json
import os
import stat
import subprocess
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_test as gt  # noqa: E402
from test_blaxel_sdk import blaxel_env  # noqa: E402
from test_vercel_sdk import vercel_env  # noqa: E402


def bridge(gateway, key, method, path, body=None):
    req = urllib.request.Request(gateway.url + "/cloudflare/v1/sandbox" + path,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": "Bearer " + key,
                                          "Content-Type": "application/json"}, method=method)
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.status, r.read()


def bridge_exec(gateway, key, sid, script):
    """The bridge's exec: stdout (decoded) and the exit code from its event stream."""
    _, body = bridge(gateway, key, "POST", "/%s/exec" % sid, {"argv": ["/bin/sh", "-c", script]})
    out, code, event = b"", None, None
    for line in body.decode().splitlines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == "stdout":
            out += base64.b64decode(line[6:])
        elif line.startswith("data: ") and event == "exit":
            code = json.loads(line[6:])["exit_code"]
    return out.decode(), code


class RestartTest(gt.GatewayTestCase):

    @classmethod
    def restart_with_state(cls):
        """The class's gateway again, now keeping its registry in the work dir (once)."""
        if "--state-dir" in cls.gateway.base_args:
            return
        cls.gateway.stop()
        cls.state_dir = os.path.join(cls.workdir, "gateway-state")
        cls.gateway.base_args += ["--state-dir", cls.state_dir]
        cls.gateway.start()

    def sdk_env(self):
        env = {"E2B_API_URL": self.gateway.url, "E2B_SANDBOX_URL": self.gateway.url,
               "E2B_API_KEY": self.key_a, "GW_KEY_B": self.key_b,
               "DAYTONA_API_URL": self.gateway.url + "/daytona/api", "DAYTONA_API_KEY": self.key_a,
               "RUNLOOP_BASE_URL": self.gateway.url, "RUNLOOP_API_KEY": self.key_a,
               "MODAL_SERVER_URL": self.gateway.url, "MODAL_TOKEN_ID": "ak-tenant-a",
               "MODAL_TOKEN_SECRET": self.key_a}
        env.update(blaxel_env(self.gateway, self.key_a))
        env.update(vercel_env(self.gateway, self.key_a))
        return env

    def test_restart_keeps_sandboxes(self):
        self.restart_with_state()
        ids = self.node("restart_sdk.mjs", self.sdk_env(), args=["create"])
        self.assertTrue(ids.get("ok"), ids)
        status, body = bridge(self.gateway, self.key_a, "POST", "", {})
        cf = json.loads(body)["id"]
        self.assertEqual(bridge_exec(self.gateway, self.key_a, cf, "echo cf kept > /workspace/kept.txt; echo ok"), ("ok\n", 0))
        made = {sb["id"] for sb in self.client.list()}
        self.assertGreaterEqual(len(made), 7, made)

        # The registry: a private directory of private files, one per service.
        st = os.stat(self.state_dir)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o700)
        self.assertEqual(st.st_uid, self.gateway_uid())
        for name in ("e2b.json", "daytona.json", "cloudflare.json", "blaxel.json", "runloop.json",
                     "vercel.json", "modal.json"):
            path = os.path.join(self.state_dir, name)
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600, name)
            with open(path) as f:
                doc = json.load(f)
            # Vercel's second sandbox is listed too, stopped by its snapshot.
            self.assertEqual(len(doc["sandboxes"]), 2 if name == "vercel.json" else 1, (name, doc))
            self.assertEqual(doc["sandboxes"][0]["tenant"], "tenant-a")
        with open(os.path.join(self.state_dir, "runloop.json")) as f:
            self.assertEqual([s["id"] for s in json.load(f)["snapshots"]], [ids["runloopSnapshot"]])
        with open(os.path.join(self.state_dir, "modal.json")) as f:
            self.assertEqual([i["id"] for i in json.load(f)["images"]], [ids["modalImage"]])
        self.assertEqual([n for n in os.listdir(self.state_dir) if ".tmp" in n], [])

        # Stopping deletes nothing: airlockd still has every sandbox.
        self.assertEqual(self.gateway.stop(), 0)
        self.assertEqual({sb["id"] for sb in self.client.list()} & made, made)
        self.gateway.start()

        # Cloudflare's bridge: the same id answers, to tenant A only.
        status, body = bridge(self.gateway, self.key_a, "GET", "/%s/running" % cf)
        self.assertEqual(json.loads(body), {"running": True})
        with self.assertRaises(urllib.error.HTTPError) as cm:
            bridge(self.gateway, self.key_b, "GET", "/%s/file/workspace/kept.txt" % cf)
        self.assertEqual(cm.exception.code, 404)
        self.assertEqual(bridge_exec(self.gateway, self.key_a, cf, "cat /workspace/kept.txt"), ("cf kept\n", 0))
        self.assertEqual(bridge(self.gateway, self.key_a, "DELETE", "/" + cf)[0], 204)

        # The SDKs find theirs again, run a command in each, and delete them.
        done = self.node("restart_sdk.mjs", self.sdk_env(), args=["reconnect", json.dumps(ids)])
        self.assertTrue(done.get("ok"), done)
        self.assertEqual({sb["id"] for sb in self.client.list()} & made, set())
        for name in ("e2b.json", "daytona.json", "cloudflare.json", "blaxel.json", "runloop.json"):
            with open(os.path.join(self.state_dir, name)) as f:
                self.assertEqual(json.load(f)["sandboxes"], [], name)
        # Stopped Vercel sandboxes stay listed (as Vercel lists them), with no airlockd
        # sandbox behind them; the snapshot is gone.
        with open(os.path.join(self.state_dir, "vercel.json")) as f:
            doc = json.load(f)
        self.assertTrue(all("backend_id" not in s for s in doc["sandboxes"]), doc)
        self.assertEqual(doc["snapshots"], [])
        with open(os.path.join(self.state_dir, "runloop.json")) as f:
            self.assertEqual(json.load(f)["snapshots"], [])
        # Terminated Modal sandboxes stay listed (SandboxWait reports their end), with
        # their airlockd sandboxes gone; the filesystem snapshot is gone.
        with open(os.path.join(self.state_dir, "modal.json")) as f:
            doc = json.load(f)
        self.assertTrue(all(s["terminated"] for s in doc["sandboxes"]), doc)
        self.assertEqual(doc["images"], [])

    def test_cloudflare_client_resumes_after_restart(self):
        self.restart_with_state()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.workdir,
               "NODE_PATH": gt.NODE_MODULES, "GW_WORKER_URL": self.gateway.url + "/cloudflare",
               "CLOUDFLARE_SANDBOX_API_KEY": self.key_a}
        p = subprocess.Popen(["node", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                   "cloudflare_resume.mjs")],
                             env=env, cwd=gt.TESTS_DIR, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            ready = json.loads(p.stdout.readline() or b"{}")
            self.assertIn("ready", ready, p.stderr.read().decode() if p.poll() is not None else "")
            self.assertEqual(self.gateway.stop(), 0)
            self.gateway.start()
            out, err = p.communicate(b"go\n", timeout=300)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 0, (out, err, self.gateway.log()[-3000:]))
        self.assertEqual(json.loads(out.decode().splitlines()[-1]), {"ok": True})

    def test_malformed_bridge_id_is_refused(self):
        for sid in ("UPPER", "has-dash", "x" * 129):
            with self.assertRaises(urllib.error.HTTPError) as cm:
                bridge(self.gateway, self.key_a, "GET", "/%s/running" % sid)
            self.assertEqual(cm.exception.code, 400, sid)
            self.assertEqual(json.loads(cm.exception.read())["code"], "invalid_request")
        # Deleting what is not there is done (204), as the bridge answers.
        self.assertEqual(bridge(self.gateway, self.key_a, "DELETE", "/abcdefgh")[0], 204)

    def test_bridge_mount_requests_refused_as_such(self):
        """What the bridge's mount routes refuse here, in its shape (the mounts themselves:
        test_hosted_mounts.py): no endpoint, an R2 binding (no Worker bindings), a
        relative path, an unmount of a path where nothing is mounted."""
        sid = json.loads(bridge(self.gateway, self.key_a, "POST", "", {})[1])["id"]
        try:
            for route, body, why in (
                    ("/mount", {"bucket": "b", "mountPath": "/workspace/b", "options": {}},
                     "options.endpoint must be given"),
                    ("/mount", {"binding": "B", "mountPath": "/workspace/b", "options": {}},
                     "R2 binding mounts are not supported"),
                    ("/mount", {"bucket": "b", "mountPath": "workspace/b",
                                "options": {"endpoint": "http://127.0.0.1:9"}},
                     "mountPath must be an absolute path"),
                    ("/unmount", {"mountPath": "workspace/b"}, "mountPath must be an absolute path"),
                    ("/unmount", {"mountPath": "/workspace/b"},
                     "no bucket is mounted at /workspace/b")):
                with self.assertRaises(urllib.error.HTTPError) as cm:
                    bridge(self.gateway, self.key_a, "POST", "/" + sid + route, body)
                self.assertEqual(cm.exception.code, 400, route)
                err = json.loads(cm.exception.read())
                self.assertEqual(err["code"], "invalid_request")
                self.assertIn(why, err["error"])
        finally:
            bridge(self.gateway, self.key_a, "DELETE", "/" + sid)

    def gateway_uid(self):
        import pwd
        return pwd.getpwnam(gt.GATEWAY_USER).pw_uid

    def test_damaged_registry_is_refused(self):
        bad = os.path.join(self.workdir, "bad-state")
        os.mkdir(bad, 0o700)
        with open(os.path.join(bad, "daytona.json"), "w") as f:
            f.write("[not a registry")
        p = subprocess.run(self.gateway.base_args + ["--listen", "127.0.0.1:0", "--state-dir", bad],
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 1, p)
        self.assertIn(b"daytona.json: not a JSON object", p.stderr)

    def test_state_dir_of_another_user_is_refused(self):
        other = os.path.join(self.workdir, "others-state")
        os.mkdir(other, 0o700)
        os.chown(other, 4242, 4242)
        p = subprocess.run(self.gateway.base_args + ["--listen", "127.0.0.1:0", "--state-dir", other],
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 1, p)
        self.assertIn(b"belongs to uid 4242", p.stderr)


if __name__ == "__main__":
    gt.main()
