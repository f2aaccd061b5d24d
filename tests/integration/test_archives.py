#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Workspace archives: GET/PUT /v1/sandboxes/{id}/workspace, airlock persist/hydrate.

Every hostile archive must be refused with a clear error and leave the
workspace exactly as it was (and no staging directory behind)."""

import io
import os
import signal
import subprocess
import tarfile
import tempfile
import time

from airlock_test import (AIRLOCK_CLI, AirlockTestCase, main, pids, read_text,
                          request_in_background, tar_bytes)
from airlock_test import tar_member as member


class ArchiveTest(AirlockTestCase):
    def setUp(self):
        self.sb = self.sandbox()
        self.sid = self.sb["id"]
        self.out(self.sid, "mkdir -p /workspace/src && echo original > /workspace/src/keep.txt"
                           " && echo top > /workspace/top.txt")

    def put(self, data, **query):
        q = "&".join("%s=%s" % kv for kv in query.items())
        return self.client.request("PUT", "/v1/sandboxes/%s/workspace%s" % (self.sid, "?" + q if q else ""),
                                   data, headers={"Content-Type": "application/x-tar"})

    def get(self):
        r = self.client.expect(200, "GET", "/v1/sandboxes/%s/workspace" % self.sid)
        return r.body

    def snapshot_of_workspace(self):
        """(name, type, content) of every member: what 'unchanged' means."""
        with tarfile.open(fileobj=io.BytesIO(self.get())) as t:
            return sorted((m.name, m.type, t.extractfile(m).read() if m.isfile() else m.linkname)
                          for m in t.getmembers())

    def assertRefused(self, data, fragment, status=(400,), **query):
        before = self.snapshot_of_workspace()
        r = self.put(data, **query)
        self.assertIn(r.status, status, r)
        msg = r.json["error"]["message"]
        self.assertIn(fragment, msg)
        self.assertEqual(self.snapshot_of_workspace(), before, "a refused archive changed the workspace")
        # No staging directory left next to the workspace, nothing written outside it.
        listing = self.out(self.sid, "ls -a /")
        self.assertNotIn(".airlock-hydrate", listing)
        return msg

    # ---- persist ----

    def test_persist_paths_are_relative(self):
        self.out(self.sid, "ln -s src/keep.txt /workspace/link && mkfifo /workspace/fifo")
        with tarfile.open(fileobj=io.BytesIO(self.get())) as t:
            names = {m.name: m for m in t.getmembers()}
        self.assertIn("src/keep.txt", names)
        self.assertIn("top.txt", names)
        self.assertTrue(names["link"].issym())
        self.assertEqual(names["link"].linkname, "src/keep.txt")
        self.assertNotIn("fifo", names, "FIFOs are not workspace content")
        for n in names:
            self.assertFalse(n.startswith("/") or n.startswith("./") or ".." in n.split("/"), n)
        # Owners as the sandbox sees them: root inside is 0, not the host uid.
        self.assertEqual(names["top.txt"].uid, 0)

    def test_persist_leaves_out_ephemeral_entries(self):
        manifest = {"version": 1, "root": "/workspace", "entries": {
            "kept.txt": {"type": "file", "content": "k"},
            "scratch": {"type": "dir", "ephemeral": True,
                        "children": {"tmp.txt": {"type": "file", "content": "t"}}}}}
        sb = self.sandbox(manifest=manifest)
        r = self.client.expect(200, "GET", "/v1/sandboxes/%s/workspace" % sb["id"])
        with tarfile.open(fileobj=io.BytesIO(r.body)) as t:
            names = t.getnames()
        self.assertIn("kept.txt", names)
        self.assertFalse([n for n in names if n.startswith("scratch")], names)

    # ---- hydrate ----

    def test_hydrate_replaces_workspace(self):
        data = tar_bytes([(member("new/", tarfile.DIRTYPE, 0o755), None),
                          (member("new/file.txt", mode=0o600), b"hydrated\n"),
                          (member("ln", tarfile.SYMTYPE, link="new/file.txt"), None),
                          (member("hard", tarfile.LNKTYPE, link="new/file.txt"), None)])
        r = self.put(data)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.out(self.sid, "cat /workspace/ln /workspace/hard"), "hydrated\nhydrated\n")
        self.assertEqual(self.out(self.sid, "stat -c '%a %u' /workspace/new/file.txt"), "600 0\n")
        self.assertEqual(self.out(self.sid, "ls /workspace"), "hard\nln\nnew\n", "old content must be gone")

    def test_hydrate_swaps_the_workspace_whole(self):
        # The new workspace replaces the old in one rename: its owner and
        # mode stay, and a process that holds the old one open sees it whole.
        self.out(self.sid, "chmod 0751 /workspace")
        before = self.out(self.sid, "stat -c %i /workspace")
        data = tar_bytes([(member("a.txt"), b"new\n")])
        self.assertEqual(self.put(data).status, 200)
        self.assertEqual(self.out(self.sid, "stat -c '%a %u' /workspace; ls /workspace"),
                         "751 0\na.txt\n")
        # Another directory: swapped in, not refilled entry by entry.
        self.assertNotEqual(self.out(self.sid, "stat -c %i /workspace"), before)

    def wait_for_helper(self, timeout):
        """The pid of airlockd's archive helper once it runs as a sandbox's
        root (a host uid of the sandbox ranges), or None."""
        daemon = self.daemon.proc.pid
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for pid in pids():
                status = read_text("/proc/%d/status" % pid) or ""
                fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
                if fields.get("PPid", "").strip() != str(daemon):
                    continue
                if int(fields.get("Uid", "0").split()[1]) >= 1000000000:
                    return pid
            time.sleep(0.005)
        return None

    def test_hydrate_killed_with_airlockd_is_all_or_nothing(self):
        # The extraction helper died with airlockd only until it became the
        # sandbox's root (a change of credentials clears the parent-death
        # signal): it went on and committed what its client was told failed.
        # Many small files: a second of extraction to be killed in.
        data = tar_bytes([(member("f%05d" % i), b"x" * 512) for i in range(20000)])
        for delay in (0.0, 0.1, 0.3):
            sid = self.client.create(limits={"memory": "2G", "disk": "1G"})["id"]
            self.created.add(sid)
            self.out(sid, "echo old > /workspace/marker")
            t, answer = request_in_background(self.daemon.socket_path, "PUT",
                                              "/v1/sandboxes/%s/workspace" % sid, data)
            # Killed once the helper extracts as the sandbox's root (and
            # delay later): its host uid is the sandbox's.
            helper = self.wait_for_helper(timeout=20)
            self.assertIsNotNone(helper, "no extraction helper seen")
            time.sleep(delay)
            self.daemon.stop(signal.SIGKILL)
            t.join(30)
            self.assertFalse(t.is_alive())
            deadline = time.monotonic() + 3
            while True:
                clones = [pid for pid in pids()
                          if self.daemon.socket_path in (read_text("/proc/%d/cmdline" % pid) or "")]
                if not clones or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            self.assertEqual(clones, [], "the hydrate helper outlived airlockd (%.2f s)" % delay)
            self.daemon.start()
            listing = self.out(sid, "ls /workspace | wc -l; cat /workspace/marker 2>/dev/null || "
                                    "echo none").split()
            # Old whole (the marker alone) or new whole (all files, no marker),
            # and so it stays; and new only if the client was told so (the
            # kill comes well before the extraction's end).
            self.assertIn(listing, (["1", "old"], ["20000", "none"]), "delay %.2f s" % delay)
            told_ok = "r" in answer and answer["r"].status == 200
            if not told_ok:
                self.assertEqual(listing, ["1", "old"], "a hydrate its client was told failed "
                                 "changed the workspace (delay %.2f s)" % delay)
            time.sleep(0.5)
            self.assertEqual(self.out(sid, "ls /workspace | wc -l; cat /workspace/marker "
                                           "2>/dev/null || echo none").split(), listing)
            self.client.destroy(sid)

    def test_roundtrip_through_cli(self):
        env = dict(os.environ, AIRLOCK_SOCKET=self.daemon.socket_path)
        ws = subprocess.run([AIRLOCK_CLI, "persist", self.sid], env=env, capture_output=True,
                            timeout=60)
        self.assertEqual(ws.returncode, 0, ws.stderr)
        other = self.sandbox()["id"]
        h = subprocess.run([AIRLOCK_CLI, "hydrate", other], input=ws.stdout, env=env,
                           capture_output=True, timeout=60)
        self.assertEqual(h.returncode, 0, h.stderr)
        self.assertEqual(self.out(other, "cat /workspace/src/keep.txt /workspace/top.txt"),
                         "original\ntop\n")
        bad = tar_bytes([(member("../../etc/passwd"), b"x\n")])
        h = subprocess.run([AIRLOCK_CLI, "hydrate", other], input=bad, env=env,
                           capture_output=True, timeout=60)
        self.assertNotEqual(h.returncode, 0)
        self.assertIn(b"'..'", h.stderr)

    # ---- hostile archives ----

    def test_refuses_dotdot(self):
        self.assertRefused(tar_bytes([(member("../../etc/passwd"), b"root::0:0::/:/bin/sh\n")]), "'..'")
        self.assertRefused(tar_bytes([(member("a/../../x"), b"x")]), "'..'")

    def test_refuses_absolute(self):
        self.assertRefused(tar_bytes([(member("/etc/evil"), b"x")]), "absolute")

    def test_refuses_writing_through_a_symlink(self):
        # A symlink to / and a member written through it.
        self.assertRefused(tar_bytes([(member("escape", tarfile.SYMTYPE, link="/"), None),
                                      (member("escape/etc/evil"), b"x")]), "escape")
        # Nothing may be extracted through any symlink.
        self.assertRefused(tar_bytes([(member("real/", tarfile.DIRTYPE, 0o755), None),
                                      (member("alias", tarfile.SYMTYPE, link="real"), None),
                                      (member("alias/f"), b"x")]), "alias")
        self.assertEqual(self.sh(self.sid, "test -e /etc/evil")["exit_code"], 1)

    def test_refuses_hardlink_to_host_file(self):
        self.assertRefused(tar_bytes([(member("hl", tarfile.LNKTYPE, link="/etc/passwd"), None)]),
                           "absolute")
        self.assertRefused(tar_bytes([(member("hl", tarfile.LNKTYPE, link="../../../etc/shadow"), None)]),
                           "'..'")
        self.assertRefused(tar_bytes([(member("hl", tarfile.LNKTYPE, link="not/extracted"), None)]),
                           "not a file extracted from this archive")

    def test_refuses_device_fifo_setuid(self):
        dev = member("null", tarfile.CHRTYPE)
        dev.devmajor, dev.devminor = 1, 3
        self.assertRefused(tar_bytes([(dev, None)]), "device nodes")
        blk = member("sda", tarfile.BLKTYPE)
        blk.devmajor, blk.devminor = 8, 0
        self.assertRefused(tar_bytes([(blk, None)]), "device nodes")
        self.assertRefused(tar_bytes([(member("fifo", tarfile.FIFOTYPE), None)]), "FIFOs")
        self.assertRefused(tar_bytes([(member("suid", mode=0o4755), b"#!/bin/sh\n")]), "setuid")
        self.assertRefused(tar_bytes([(member("sgid", mode=0o2755), b"#!/bin/sh\n")]), "setgid")

    def test_refuses_sparse_bomb(self):
        # 1 GB of holes: a few KiB of tar.  GNU tar writes the sparse member.
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "bomb"), "wb") as f:
                f.truncate(1 << 30)
            out = os.path.join(d, "bomb.tar")
            subprocess.run(["tar", "-S", "-C", d, "-cf", out, "bomb"], check=True)
            with open(out, "rb") as f:
                data = f.read()
        self.assertLess(len(data), 1 << 20)
        self.assertRefused(data, "sparse")
        # Even as a plain member, its logical size counts against the limit.
        plain = tar_bytes([(member("big"), b"x" * 4096)])
        self.assertRefused(plain, "extracted size exceeds", status=(413,), max_extracted_bytes=1024)

    def test_refuses_too_many_members(self):
        # The SDK's default limit is 100 000 members: one more is refused.
        # The body is extracted as it comes, so the members before it are
        # written (to the staging directory, then removed): the sandbox
        # gets inodes for all of them, or its disk would refuse first.
        self.sb = self.sandbox(limits={"memory": "4G", "disk": "2G"})
        self.sid = self.sb["id"]
        self.out(self.sid, "mkdir -p /workspace/src && echo original > /workspace/src/keep.txt"
                           " && echo top > /workspace/top.txt")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
            t.addfile(member("many/", tarfile.DIRTYPE, 0o755))
            for i in range(100000):
                t.addfile(member("many/%d" % i))
        self.assertRefused(buf.getvalue(), "more than the limit of 100000 members", status=(413,))

    def test_refuses_over_input_limit(self):
        data = tar_bytes([(member("f"), b"y" * 100000)])
        self.assertRefused(data, "exceeds the limit", status=(413,), max_input_bytes=10000)

    def test_refuses_garbage(self):
        self.assertRefused(b"this is not a tar archive at all" * 100, "tar")


if __name__ == "__main__":
    main()
