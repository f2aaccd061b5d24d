#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Workspace archives: GET/PUT /v1/sandboxes/{id}/workspace, airlock persist/hydrate.

Every hostile archive must be refused with a clear error and leave the
workspace exactly as it was (and no staging directory behind)."""

import io
import os
import subprocess
import tarfile
import tempfile

from airlock_test import AIRLOCK_CLI, AirlockTestCase, main


def tar_bytes(members):
    """A tar from (TarInfo, data or None) pairs."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
            else:
                t.addfile(info)
    return buf.getvalue()


def member(name, kind=tarfile.REGTYPE, mode=0o644, link=None):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    if link is not None:
        ti.linkname = link
    return ti


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

    def test_refuses_symlink_escape(self):
        # A symlink to / and a member written through it.
        self.assertRefused(tar_bytes([(member("escape", tarfile.SYMTYPE, link="/"), None),
                                      (member("escape/etc/evil"), b"x")]), "leaves the root")
        self.assertRefused(tar_bytes([(member("d/up", tarfile.SYMTYPE, link="../../.."), None)]),
                           "leaves the root")
        # An in-root symlink is fine, but nothing may be extracted through it.
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
        # The SDK's default limit is 100 000 members: one more is refused from
        # the headers alone, before anything is written.
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
