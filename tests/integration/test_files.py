#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The file API works inside the sandbox and nothing reaches host files:
not through '..', absolute paths or symlinks made inside; and host files
outside the grants are invisible to commands."""

import hashlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import airlock_test as at


class FilesTest(at.AirlockTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # A host directory with a canary that nothing in a sandbox may reach.
        cls.host_dir = tempfile.mkdtemp(prefix="airlock-it-host-")
        cls.addClassCleanup(shutil.rmtree, cls.host_dir, ignore_errors=True)
        os.chmod(cls.host_dir, 0o755)
        cls.canary = "canary-" + secrets.token_hex(16)
        with open(os.path.join(cls.host_dir, "canary"), "w") as f:
            f.write(cls.canary)
        with open(os.path.join(cls.host_dir, "granted.txt"), "w") as f:
            f.write("granted content\n")
        cls.sb = cls.client.create(manifest={
            "version": 1, "root": "/workspace",
            "entries": {"granted.txt": {"type": "local_file",
                                        "src": os.path.join(cls.host_dir, "granted.txt")},
                        "hello.txt": {"type": "file", "content": "hi\n"}}})
        cls.sid = cls.sb["id"]

    def host_rel(self, name=""):
        """The host temp dir as a relative path from / ('tmp/airlock-it-host-…/name')."""
        return os.path.join(self.host_dir, name).lstrip("/")

    def assertNotCanary(self, resp, what):
        self.assertFalse(resp.status == 200 and self.canary.encode() in resp.body,
                         "%s reached the host canary: %r" % (what, resp))

    def assertNoHostFile(self, name, what):
        self.assertFalse(os.path.exists(os.path.join(self.host_dir, name)),
                         "%s created a host file %s" % (what, name))

    # ---- the API itself ----

    def test_write_read_roundtrip_binary(self):
        data = bytes(range(256)) + b"\n\x00end"
        put = self.client.write_file(self.sid, "bin.dat", data)
        self.assertEqual(put.status, 200, put)
        self.assertEqual(put.json["size"], len(data))
        got = self.client.read_file(self.sid, "bin.dat")
        self.assertEqual(got.status, 200)
        self.assertEqual(got.body, data)
        # The same file, seen by a command, at /workspace.
        r = self.client.exec(self.sid, ["cat", "/workspace/bin.dat"], encoding="base64")
        self.assertEqual(at.unb64(r["stdout"]), data)
        # Files written through the API belong to the sandbox's root.
        self.assertEqual(self.out(self.sid, "stat -c %u /workspace/bin.dat").strip(), "0")

    def test_manifest_entries_are_materialized(self):
        self.assertEqual(self.client.read_file(self.sid, "hello.txt").body, b"hi\n")
        self.assertEqual(self.out(self.sid, "cat /workspace/granted.txt"), "granted content\n")

    def test_absolute_paths_inside_the_sandbox(self):
        put = self.client.write_file(self.sid, "/tmp/abs.txt", b"abs")
        self.assertEqual(put.status, 200, put)
        self.assertEqual(self.out(self.sid, "cat /tmp/abs.txt"), "abs")
        self.assertEqual(self.client.read_file(self.sid, "/tmp/abs.txt").body, b"abs")

    def test_parents_and_listing(self):
        self.assertGreaterEqual(self.client.write_file(self.sid, "nodir/x.txt", b"x").status, 400)
        put = self.client.write_file(self.sid, "a/b/c.txt", b"abc", parents=1, mode="0755")
        self.assertEqual(put.status, 200, put)
        ls = self.client.request("GET", self.client.files_path(self.sid, "a", "dirs"))
        self.assertEqual(ls.status, 200, ls)
        self.assertEqual([(e["name"], e["type"]) for e in ls.json["entries"]], [("b", "dir")])
        ls = self.client.request("GET", self.client.files_path(self.sid, "a/b", "dirs")).json
        entry = {e["name"]: e for e in ls["entries"]}["c.txt"]
        self.assertEqual((entry["type"], entry["size"], entry["mode"]), ("file", 3, "0755"))
        self.assertExit(self.sh(self.sid, "test -x /workspace/a/b/c.txt"), 0)

    def test_mkdir_and_remove(self):
        mk = self.client.request("POST", self.client.files_path(self.sid, "newdir/sub", "dirs",
                                                                parents=1))
        self.assertEqual(mk.status, 201, mk)
        self.assertExit(self.sh(self.sid, "test -d /workspace/newdir/sub"), 0)
        self.assertEqual(self.client.write_file(self.sid, "newdir/sub/f", b"1").status, 200)
        rm = self.client.request("DELETE", self.client.files_path(self.sid, "newdir/sub/f"))
        self.assertEqual(rm.status, 200, rm)
        self.assertEqual(self.client.read_file(self.sid, "newdir/sub/f").status, 404)
        rm = self.client.request("DELETE", self.client.files_path(self.sid, "newdir",
                                                                  recursive=1))
        self.assertEqual(rm.status, 200, rm)
        self.assertExit(self.sh(self.sid, "test -e /workspace/newdir"), 1)

    def test_uploads_do_not_grow_airlockd(self):
        # An upload goes to disk, not into airlockd's heap (eight 256 MiB
        # uploads at once took 2.2 GB of it).
        sid = self.client.create(limits={"memory": "2G", "disk": "1G"})["id"]
        data = b"z" * (64 << 20)
        before = at.rss_kib(self.daemon.proc.pid)
        peak = [before]
        done = threading.Event()

        def watch():
            while not done.is_set():
                peak[0] = max(peak[0], at.rss_kib(self.daemon.proc.pid))
                time.sleep(0.02)
        w = threading.Thread(target=watch)
        w.start()
        pending = [at.request_in_background(self.daemon.socket_path, "PUT",
                                            self.client.files_path(sid, "/workspace/u%d" % i),
                                            data) for i in range(4)]
        for t, answer in pending:
            t.join(120)
            self.assertEqual(answer["r"].status, 200, answer)
        done.set()
        w.join()
        self.assertEqual(self.out(sid, "wc -c < /workspace/u3").strip(), str(64 << 20))
        self.assertLess(peak[0] - before, 48 << 10, "airlockd grew by %d KiB for 256 MiB of "
                        "uploads" % (peak[0] - before))
        self.client.destroy(sid)

    def test_downloads_are_sent_by_the_kernel_at_any_size(self):
        # A file on the sandbox's tmpfs goes to the client with sendfile from
        # the fd its file server opened: past the 256 MiB of a buffered
        # answer, and without airlockd holding it.
        sid = self.client.create(limits={"memory": "2G", "disk": "1G"})["id"]
        size = 300 << 20
        digest = self.out(sid, "yes 0123456789abcdef | head -c %d > /workspace/big && "
                          "sha256sum < /workspace/big" % size).split()[0]
        before = at.rss_kib(self.daemon.proc.pid)
        curl = subprocess.Popen(
            ["curl", "-sS", "--fail", "--unix-socket", self.daemon.socket_path,
             "http://airlock" + self.client.files_path(sid, "/workspace/big")],
            stdout=subprocess.PIPE)
        h, got, peak = hashlib.sha256(), 0, before
        while True:
            chunk = curl.stdout.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)
            got += len(chunk)
            peak = max(peak, at.rss_kib(self.daemon.proc.pid))
        self.assertEqual(curl.wait(60), 0)
        self.assertEqual((got, h.hexdigest()), (size, digest))
        self.assertLess(peak - before, 48 << 10, "airlockd grew by %d KiB sending 300 MiB"
                        % (peak - before))
        # /proc's files say nothing true of their size: read, not sent by size.
        r = self.client.read_file(sid, "/proc/meminfo")
        self.assertEqual(r.status, 200, r)
        self.assertIn(b"MemTotal:", r.body)
        self.client.destroy(sid)

    def test_large_uploads_stream_into_the_sandbox(self):
        # Announced as 1 MiB or more, an upload goes straight into the sandbox
        # as it arrives: past the 256 MiB a spooled one may have, bounded by
        # the sandbox's disk instead.
        sid = self.client.create(limits={"memory": "2G", "disk": "1G"})["id"]
        src = os.path.join(self.host_dir, "big-upload")
        self.addCleanup(os.unlink, src)
        with open(src, "wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(300):
                f.write(block)
        url = "http://airlock" + self.client.files_path(sid, "/workspace/up.bin", mode="0600")
        before = at.rss_kib(self.daemon.proc.pid)
        r = subprocess.run(["curl", "-sS", "--fail-with-body", "--unix-socket",
                            self.daemon.socket_path, "-T", src, url],
                           capture_output=True, timeout=120)
        self.assertEqual(r.returncode, 0, r)
        self.assertLess(at.rss_kib(self.daemon.proc.pid) - before, 48 << 10)
        with open(src, "rb") as f:
            want = hashlib.sha256(f.read()).hexdigest()
        self.assertEqual(self.out(sid, "sha256sum < /workspace/up.bin | cut -c1-64; stat -c %a "
                                  "/workspace/up.bin").split(), [want, "600"])
        # The disk fills midway: 507 naming the file, the old content kept, no
        # temp file left; and a client that goes away midway changes nothing.
        small = self.client.create(limits={"disk": "8M"})["id"]
        self.sh(small, "head -c 5000000 /dev/zero > /workspace/fill; echo old > /workspace/f")
        r = self.client.write_file(small, "/workspace/f", b"n" * (4 << 20))
        self.assertEqual(r.status, 507, r)
        self.assertIn("/workspace/f", r.json["error"]["message"])
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.daemon.socket_path)
        s.sendall(b"PUT %s HTTP/1.1\r\nHost: airlock\r\nContent-Length: %d\r\n\r\n"
                  % (self.client.files_path(small, "/workspace/f").encode(), 2 << 20))
        s.sendall(b"x" * (1 << 20))
        s.close()
        end = time.monotonic() + 10  # its helper reads the end, removes its temp file
        while (self.out(small, "cat /workspace/f; ls -A /workspace") != "old\nf\nfill\n"
               and time.monotonic() < end):
            time.sleep(0.1)
        self.assertEqual(self.out(small, "cat /workspace/f; ls -A /workspace"), "old\nf\nfill\n")
        self.client.destroy(small)
        self.client.destroy(sid)

    def test_full_disk_is_507_and_names_the_file(self):
        sid = self.client.create(limits={"disk": "2M"})["id"]
        r = self.client.write_file(sid, "/workspace/big", b"x" * (4 << 20))
        self.assertEqual(r.status, 507, r)
        self.assertEqual(r.json["error"]["code"], "no_space")
        self.assertIn("big", r.json["error"]["message"])
        self.client.destroy(sid)

    def test_missing_file_is_404(self):
        self.assertEqual(self.client.read_file(self.sid, "does/not/exist").status, 404)
        self.assertEqual(self.client.read_file("nosuchsandbox", "x").status, 404)

    def test_fifo_and_device_are_refused(self):
        self.out(self.sid, "mkfifo /workspace/fifo")
        self.assertEqual(self.client.read_file(self.sid, "fifo").status, 400)
        self.assertEqual(self.client.write_file(self.sid, "fifo", b"x").status, 400)
        self.assertEqual(self.client.read_file(self.sid, "/dev/zero").status, 400)

    # ---- escapes ----

    def test_dotdot_does_not_leave_the_sandbox(self):
        up = "../" * 20
        self.assertNotCanary(self.client.read_file(self.sid, up + self.host_rel("canary")), "..")
        self.assertNotCanary(self.client.read_file(self.sid, "/workspace/" + up + self.host_rel("canary")),
                             "/workspace/..")
        self.client.write_file(self.sid, up + self.host_rel("dotdot-created"), b"x", parents=1)
        self.assertNoHostFile("dotdot-created", "..")
        self.client.request("DELETE", self.client.files_path(self.sid, up + self.host_rel("canary")))
        self.assertTrue(os.path.exists(os.path.join(self.host_dir, "canary")), "DELETE with .. removed a host file")
        # Listing '..' from the workspace lists the sandbox's root, not the host's.
        ls = self.client.request("GET", self.client.files_path(self.sid, up, "dirs"))
        self.assertEqual(ls.status, 200, ls)
        inside = set(self.out(self.sid, "ls -a /").split()) - {".", ".."}
        self.assertEqual({e["name"] for e in ls.json["entries"]} - {".", ".."}, inside)

    def test_absolute_host_paths_do_not_reach_the_host(self):
        path = os.path.join(self.host_dir, "canary")
        self.assertNotCanary(self.client.read_file(self.sid, path), "absolute path")
        self.client.write_file(self.sid, os.path.join(self.host_dir, "abs-created"), b"x", parents=1)
        self.assertNoHostFile("abs-created", "absolute path")

    def test_symlinks_made_inside_do_not_reach_the_host(self):
        self.out(self.sid, "ln -sf / /workspace/rootlink; ln -sf /etc /workspace/etclink; "
                 "ln -sf %s /workspace/dirlink; ln -sf %s/canary /workspace/filelink; "
                 "ln -sf ../../../../../.. /workspace/uplink"
                 % (self.host_dir, self.host_dir))
        for path in ("rootlink/" + self.host_rel("canary"), "dirlink/canary", "filelink",
                     "uplink/" + self.host_rel("canary"), "etclink/../" + self.host_rel("canary")):
            with self.subTest(path=path):
                self.assertNotCanary(self.client.read_file(self.sid, path), "symlink " + path)
        for i, path in enumerate(("rootlink/" + self.host_rel("sym-created0"),
                                  "dirlink/sym-created1", "uplink/" + self.host_rel("sym-created2"))):
            with self.subTest(path=path):
                self.client.write_file(self.sid, path, b"x", parents=1)
                self.assertNoHostFile("sym-created%d" % i, "symlink " + path)
        # Writing through /etc link changes the sandbox's /etc, never the host's.
        before = at.read_text("/etc/hostname")
        self.client.write_file(self.sid, "etclink/hostname", b"sandbox-written\n")
        self.assertEqual(at.read_text("/etc/hostname"), before)
        # Writing to a symlink that points at a host path must not follow it to the host.
        self.client.write_file(self.sid, "filelink", b"overwritten")
        with open(os.path.join(self.host_dir, "canary")) as f:
            self.assertEqual(f.read(), self.canary)

    # ---- what commands see ----

    def test_host_files_outside_the_grants_are_invisible(self):
        # A fresh sandbox: the escape tests above create these paths inside self.sid.
        sid = self.sandbox(manifest={"version": 1, "entries": {"granted.txt": {
            "type": "local_file", "src": os.path.join(self.host_dir, "granted.txt")}}})["id"]
        self.assertEqual(self.out(sid, "cat /workspace/granted.txt"), "granted content\n")
        for path in (os.path.join(self.host_dir, "canary"), self.host_dir, self.daemon.state_dir,
                     self.daemon.socket_path, self.workdir, at.SOURCE_ROOT):
            with self.subTest(path=path):
                r = self.sh(sid, "test -e '%s'" % path)
                self.assertEqual(r["exit_code"], 1, "%s is visible inside: %r" % (path, r))
        # Not /proc: the grep's own command line holds the canary.
        r = self.sh(sid, "grep -rs %s /workspace /tmp /etc /root /home /mnt /opt /srv /var "
                    "/run 2>/dev/null | head -1" % self.canary, timeout_ms=60000)
        self.assertNotIn(self.canary, r["stdout"])

    def test_host_root_home_is_invisible(self):
        host = set(os.listdir("/root"))
        in_rootfs = set(os.listdir(os.path.join(self.rootfs, "root"))) \
            if os.path.isdir(os.path.join(self.rootfs, "root")) else set()
        r = self.sh(self.sid, "ls -a /root")
        inside = set(r["stdout"].split()) - {".", ".."}
        leaked = (host - in_rootfs) & inside
        self.assertFalse(leaked, "host /root entries visible inside: %s" % sorted(leaked))

    def test_base_rootfs_is_not_changed_by_a_sandbox(self):
        self.out(self.sid, "echo changed > /bin/written-by-sandbox || true; rm -f /bin/sh.bak")
        self.assertFalse(os.path.exists(os.path.join(self.rootfs, "bin", "written-by-sandbox")))
        self.client.write_file(self.sid, "/etc/api-written", b"x")
        self.assertFalse(os.path.exists(os.path.join(self.rootfs, "etc", "api-written")))


if __name__ == "__main__":
    at.main()
