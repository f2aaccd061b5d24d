# SPDX-License-Identifier: Apache-2.0
"""airlock-gateway confines itself (docs/gateway.md): started as root it runs as
nobody with only airlockd's socket group, no capabilities in any set,
no_new_privs and a seccomp filter on every thread, in a mount namespace of its
own whose read-only root holds nothing but the socket's directory; and it still
serves (the other gateway tests run it so, through the official SDKs).  A socket
that admits root only, and --user root, are refused with a clear error."""

import base64
import grp
import json
import os
import pwd
import socket
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_test as gt  # noqa: E402


def status_fields(path):
    fields = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    return fields


class ConfinementTest(gt.GatewayTestCase):

    def test_process_is_confined(self):
        pid = self.gateway.proc.pid
        nobody = pwd.getpwnam(gt.GATEWAY_USER)
        socket_gid = grp.getgrnam(gt.DAEMON_ARGS[1]).gr_gid
        tasks = os.listdir("/proc/%d/task" % pid)
        self.assertGreater(len(tasks), 1, "the gateway's threads")
        for tid in tasks:
            st = status_fields("/proc/%d/task/%s/status" % (pid, tid))
            what = "thread %s: %r" % (tid, st)
            self.assertEqual(st["Uid"].split(), [str(nobody.pw_uid)] * 4, what)
            self.assertEqual(st["Gid"].split(), [str(nobody.pw_gid)] * 4, what)
            self.assertEqual(st["Groups"].split(), [str(socket_gid)], what)
            for caps in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
                self.assertEqual(int(st[caps], 16), 0, caps + " of " + what)
            self.assertEqual(st["NoNewPrivs"], "1", what)
            self.assertEqual(st["Seccomp"], "2", what)

    def test_own_read_only_root(self):
        pid = self.gateway.proc.pid
        self.assertNotEqual(os.readlink("/proc/%d/ns/mnt" % pid), os.readlink("/proc/self/ns/mnt"))
        root_opts = None
        with open("/proc/%d/mountinfo" % pid) as f:
            mounts = [line.split() for line in f]
        for m in mounts:
            if m[4] == "/":
                root_opts = m[5].split(",")
        self.assertIn("ro", root_opts, mounts)
        # Nothing of the host but the socket's directory (read-only) is there.
        sock_dir = os.path.dirname(os.path.realpath(self.daemon.socket_path))
        seen = {m[4]: m[5].split(",") for m in mounts}
        self.assertEqual(set(seen), {"/", sock_dir}, mounts)
        self.assertIn("ro", seen[sock_dir])
        self.assertEqual(os.listdir("/proc/%d/root/" % pid), [sock_dir.split("/")[1]])
        self.assertFalse(os.path.exists("/proc/%d/root/etc/passwd" % pid))

    def test_serves_while_confined(self):
        def call(method, path, body=None):
            req = urllib.request.Request(
                self.gateway.url + "/cloudflare/v1/sandbox" + path,
                data=None if body is None else json.dumps(body).encode(),
                headers={"Authorization": "Bearer " + self.key_a,
                         "Content-Type": "application/json"}, method=method)
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.read()
        sid = json.loads(call("POST", "", {}))["id"]
        try:
            events = call("POST", "/%s/exec" % sid, {"argv": ["/bin/sh", "-c", "id -u; echo hi"]})
            out = b"".join(base64.b64decode(l[6:]) for l in events.decode().splitlines()
                           if l.startswith("data: ") and not l.startswith("data: {"))
            # The sandbox is airlockd's as ever: root inside it, whoever the gateway is.
            self.assertEqual(out, b"0\nhi\n")
        finally:
            call("DELETE", "/" + sid)

    def test_relative_paths_still_work_confined(self):
        """The confined gateway's working directory is its own root: relative --socket
        and --state-dir given at start must still name the same files."""
        p = subprocess.Popen([gt.GATEWAY, "--keys", self.gateway.keys_path, "--socket",
                              os.path.basename(self.daemon.socket_path), "--state-dir", "rel-state",
                              "--listen", "127.0.0.1:0"], cwd=os.path.dirname(self.daemon.socket_path),
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            line = p.stdout.readline().decode()
            self.assertIn("listening on", line)
            url = "http://" + line.split("listening on ", 1)[1].strip() + "/cloudflare/v1/sandbox"
            req = urllib.request.Request(url, data=b"{}", method="POST",
                                         headers={"Authorization": "Bearer " + self.key_a,
                                                  "Content-Type": "application/json"})
            sid = json.loads(urllib.request.urlopen(req, timeout=120).read())["id"]
            with open(os.path.join(self.workdir, "rel-state", "cloudflare.json")) as f:
                self.assertEqual([sb["id"] for sb in json.load(f)["sandboxes"]], [sid])
            urllib.request.urlopen(urllib.request.Request(url + "/" + sid, method="DELETE",
                                   headers={"Authorization": "Bearer " + self.key_a}), timeout=120)
        finally:
            p.terminate()
            self.assertEqual(p.wait(60), 0, p.stderr.read())
            p.stdout.close()
            p.stderr.close()

    def test_root_only_socket_is_refused(self):
        path = os.path.join(self.workdir, "root-only.sock")
        s = socket.socket(socket.AF_UNIX)
        s.bind(path)
        os.chmod(path, 0o600)
        try:
            p = subprocess.run([gt.GATEWAY, "--keys", self.gateway.keys_path, "--socket", path,
                                "--listen", "127.0.0.1:0"], capture_output=True, timeout=30)
        finally:
            s.close()
            os.unlink(path)
        self.assertEqual(p.returncode, 1, p)
        self.assertIn(b"admits root only", p.stderr)
        self.assertIn(b"--group", p.stderr)

    def test_user_root_is_refused(self):
        p = subprocess.run(self.gateway.args[:-2] + ["--listen", "127.0.0.1:0", "--user", "root"],
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 1, p)
        self.assertIn(b"does not run as root", p.stderr)


if __name__ == "__main__":
    gt.main()
