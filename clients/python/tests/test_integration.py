#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""airlock_client against a real airlockd: every route, through the client.

The daemon is the integration tests' private one (tests/integration/airlock_test.py):
its own socket, state directory and cgroup root, checked for leftovers at the end.
"""

import io
import os
import sys
import tarfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(SOURCE_ROOT, "tests", "integration"))
sys.path.insert(0, os.path.dirname(HERE))

import airlock_test as at  # noqa: E402
from airlock_client import (AirlockClient, ExecResult, InvalidArgument, MethodNotAllowed,  # noqa: E402
                            NotFound, TooLarge)


def tar_of(members):
    """A tar from (name, data or None for a directory, TarInfo tweaks) triples."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data, tweak in members:
            ti = tarfile.TarInfo(name)
            if data is None:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            else:
                ti.size, ti.mode = len(data), 0o644
            for k, v in (tweak or {}).items():
                setattr(ti, k, v)
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


class ClientTest(at.AirlockTestCase):
    def setUp(self):
        self.api = AirlockClient(self.daemon.socket_path, timeout=60)
        self.addCleanup(self.api.close)

    def new_sandbox(self, **fields):
        sb = self.api.create_sandbox(**fields)
        self.created.add(sb.id)
        self.addCleanup(self._destroy_quietly, sb.id)
        return sb

    # ---- daemon and sandboxes ----

    def test_info_list_inspect_delete(self):
        info = self.api.info()
        self.assertEqual(info["userns"], True)
        self.assertIn(info["cgroup_mode"], ("v1", "v2", "hybrid"))
        sb = self.new_sandbox(name="py-client", env={"GREETING": "hello"},
                              limits={"memory": "128M", "pids": 64})
        self.assertEqual(sb.info["name"], "py-client")
        self.assertIn(sb.id, [s["id"] for s in self.api.list()])
        ins = sb.inspect()
        self.assertEqual(ins["state"], "running")
        self.assertEqual(ins["cgroup"]["limits"]["pids"], 64)
        self.assertIn("GREETING=hello", ins["env"])
        self.assertEqual(self.api.info()["sandboxes"], info["sandboxes"] + 1)
        self.assertEqual(sb.delete(), {"id": sb.id, "deleted": True})
        with self.assertRaises(NotFound) as cm:
            self.api.inspect(sb.id)
        self.assertEqual(cm.exception.status, 404)
        self.assertEqual(cm.exception.code, "not_found")
        self.assertIn(sb.id, cm.exception.message)

    def test_create_summary_and_one_shot_exec(self):
        s = self.api.create(summary=True)
        self.created.add(s["id"])
        self.addCleanup(self._destroy_quietly, s["id"])
        self.assertEqual(set(s), {"id", "name", "state", "created", "rootfs", "image"})
        r = self.api.create(exec={"command": "echo one-shot; exit 3"}, remove=True)
        self.created.add(r["id"])
        self.assertTrue(r["removed"])
        self.assertEqual(r["state"], "removed")
        self.assertEqual(ExecResult.from_json(r["exec"], False).stdout, "one-shot\n")
        self.assertEqual(r["exec"]["exit_code"], 3)
        self.assertNotIn(r["id"], [x["id"] for x in self.api.list()])

    def test_network_and_ports_are_passed(self):
        sb = self.api.create(network={"allow": ["10.214.0.0/16:80"]}, ports=["0:8000"])
        self.created.add(sb["id"])
        self.addCleanup(self._destroy_quietly, sb["id"])
        self.assertEqual(sb["network"]["mode"], "allowlist")
        self.assertEqual(sb["network"]["allow"], ["10.214.0.0/16:80"])
        self.assertGreater(sb["ports"][0]["host_port"], 0)
        with self.assertRaises(InvalidArgument):
            self.api.create(network={"allow": ["10.214.0.1/8"]})

    def test_manifest_and_bad_requests(self):
        sb = self.new_sandbox(manifest={"version": 1, "root": "/workspace", "entries": {
            "hello.txt": {"type": "file", "content": "hi\n"},
            "src": {"type": "dir", "children": {"main.py": {"type": "file", "content": "x=1\n"}}}}})
        self.assertEqual(sb.read_file("hello.txt"), b"hi\n")
        self.assertEqual(sb.read_file("/workspace/src/main.py"), b"x=1\n")
        with self.assertRaises(InvalidArgument) as cm:
            self.api.create(manifest={"entries": {"/etc/passwd": {"type": "file", "content": ""}}})
        self.assertIn("/etc/passwd", cm.exception.message)
        with self.assertRaises(InvalidArgument):
            self.api.create(seccomp_profile="no-such-profile")
        with self.assertRaises(MethodNotAllowed):
            self.api.call("PUT", "/v1/info")
        with self.assertRaises(NotFound):
            self.api.call("GET", "/v1/nowhere")
        # Refused by the client before anything is sent.
        with self.assertRaises(ValueError):
            sb.exec(["a"], command="b")
        with self.assertRaises(ValueError):
            self.api.inspect("../info")
        with self.assertRaises(ValueError):
            self.api.kill(sb.id, "p1", "STOP")

    # ---- exec ----

    def test_exec_streams_exit_codes_and_stdin(self):
        sb = self.new_sandbox()
        r = sb.exec(command="echo out; echo err >&2; exit 7")
        self.assertEqual((r.running, r.exit_code, r.stdout, r.stderr), (False, 7, "out\n", "err\n"))
        self.assertFalse(r.ok)
        self.assertTrue(sb.exec(["true"]).ok)
        r = sb.exec(["cat"], stdin="text in\n")
        self.assertEqual(r.stdout, "text in\n")
        blob = bytes(range(256))
        r = sb.exec(["cat"], stdin=blob, binary=True)
        self.assertEqual(r.stdout, blob)
        r = sb.exec(["sh", "-c", "pwd; echo $K"], cwd="/tmp", env={"K": "v"})
        self.assertEqual(r.stdout, "/tmp\nv\n")
        r = sb.exec(["/no/such/program"])
        self.assertEqual(r.exit_code, 127)
        self.assertTrue(r.stderr)
        r = sb.exec(command="sleep 30", timeout_ms=200)
        self.assertTrue(r.timed_out)
        self.assertEqual(r.signal, 9)
        r = sb.exec(command="head -c 5000 /dev/zero | tr '\\0' a", max_output_bytes=100)
        self.assertTrue(r.stdout_truncated)
        self.assertEqual(r.stdout, "a" * 100)
        # The bound is on the answer's text: a byte that is not text (a NUL
        # here) comes as U+FFFD, 3 bytes of it (docs/api.md).
        r = sb.exec(command="head -c 5000 /dev/zero", max_output_bytes=100)
        self.assertTrue(r.stdout_truncated)
        self.assertEqual(r.stdout, "\ufffd" * 33)

    def test_yield_poll_stream_and_kill(self):
        sb = self.new_sandbox()
        r = sb.exec(command="echo first; sleep 1; echo second", yield_ms=200)
        self.assertTrue(r.running)
        self.assertIsNone(r.exit_code)
        self.assertEqual(r.stdout, "first\n")
        final = self.api.poll(sb.id, r.process_id, yield_ms=5000)
        self.assertEqual((final.running, final.exit_code, final.stdout), (False, 0, "second\n"))
        with self.assertRaises(NotFound):  # a delivered result is forgotten
            self.api.poll(sb.id, r.process_id)

        p = sb.start(command="for i in 1 2 3; do echo line$i; sleep 0.2; done; echo bye >&2")
        chunks = list(p.stream(slice_ms=300))
        self.assertEqual("".join(c for n, c in chunks if n == "stdout"), "line1\nline2\nline3\n")
        self.assertEqual("".join(c for n, c in chunks if n == "stderr"), "bye\n")
        self.assertEqual(p.result.exit_code, 0)

        p = sb.start(command="sleep 60")
        self.assertTrue(p.running)
        p.kill("TERM")
        res = p.wait(deadline_s=10)
        self.assertEqual(res.signal, 15)

    def test_interactive_stdin(self):
        sb = self.new_sandbox()
        p = sb.start(["sh", "-c", "while read l; do echo got:$l; done; echo done"])
        r = p.write("a\n", yield_ms=300)
        self.assertEqual(r.stdout, "got:a\n")
        r = p.write(b"b\xff\n", yield_ms=300)
        self.assertEqual(r.stdout, "got:b\ufffd\n")
        p.close_stdin()
        res = p.wait(deadline_s=10)
        self.assertEqual((res.exit_code, res.stdout), (0, "done\n"))

    def test_terminal_and_user(self):
        sb = self.new_sandbox()
        p = sb.start(command="stty size; test -t 0 && echo on-a-tty; "
                     "while read l; do echo got:$l; done", tty=True, rows=30, cols=100,
                     yield_ms=500)
        self.assertEqual(p.first.stdout, "30 100\r\non-a-tty\r\n")
        r = p.write("a\n", yield_ms=300)
        # The terminal echoes what is typed, then the loop answers.
        self.assertEqual(r.stdout, "a\r\ngot:a\r\n")
        p.resize(40, 120)
        r = p.write("\x03", yield_ms=2000)  # Ctrl-C, typed into the terminal
        res = p.wait(deadline_s=10) if r.running else r
        self.assertEqual(res.exit_code, 130)
        r = sb.exec(command="id -u; id -g", user="1000:1001")
        self.assertEqual((r.exit_code, r.stdout), (0, "1000\n1001\n"))

    # ---- files ----

    def test_files_and_dirs(self):
        sb = self.new_sandbox()
        blob = os.urandom(70000)
        self.assertEqual(sb.write_file("d/e/blob.bin", blob, parents=True),
                         {"path": "d/e/blob.bin", "size": len(blob)})
        self.assertEqual(sb.read_file("d/e/blob.bin"), blob)
        sb.write_file("run.sh", io.BytesIO(b"#!/bin/sh\necho ran\n"), mode=0o755)
        self.assertEqual(sb.exec(["./run.sh"]).stdout, "ran\n")
        listing = sb.list_dir(".")
        by_name = {e["name"]: e for e in listing["entries"]}
        self.assertEqual(by_name["run.sh"]["mode"], "0755")
        self.assertEqual(by_name["d"]["type"], "dir")
        self.assertEqual(sb.make_dir("x/y", parents=True), "x/y")
        self.assertEqual(sb.exec(command="test -d /workspace/x/y && echo yes").stdout, "yes\n")
        sb.delete_file("d", recursive=True)
        with self.assertRaises(NotFound):
            sb.read_file("d/e/blob.bin")
        with self.assertRaises(InvalidArgument):
            sb.delete_file("x")  # a non-empty directory without recursive
        with self.assertRaises(ValueError):
            sb.write_file("f", "x", mode=0o10000)

    # ---- workspace archives ----

    def test_persist_hydrate_round_trip_and_hostile_archive(self):
        a = self.new_sandbox(manifest={"entries": {"keep.txt": {"type": "file", "content": "kept\n"}}})
        a.exec(command="mkdir -p sub && printf 'bin\\0ary' > sub/b.dat && ln -s keep.txt link")
        tar = a.persist_workspace()
        names = tarfile.open(fileobj=io.BytesIO(tar)).getnames()
        self.assertIn("sub/b.dat", names)
        self.assertFalse([n for n in names if n.startswith("/")])
        b = self.new_sandbox()
        h = b.hydrate_workspace(tar)
        self.assertTrue(h["hydrated"])
        self.assertEqual(b.read_file("sub/b.dat"), b"bin\0ary")
        self.assertEqual(b.exec(command="readlink link; cat link").stdout, "keep.txt\nkept\n")
        for hostile in (tar_of([("../escape.txt", b"x", None)]),
                        tar_of([("evil", b"", {"type": tarfile.SYMTYPE, "linkname": "/etc"}),
                                ("evil/passwd", b"x", None)])):
            with self.assertRaises(InvalidArgument):
                b.hydrate_workspace(hostile)
        self.assertEqual(b.read_file("keep.txt"), b"kept\n")  # unchanged
        with self.assertRaises(TooLarge):
            b.hydrate_workspace(tar, max_members=1)

    # ---- snapshots and events ----

    def test_snapshot_restore_and_events(self):
        sb = self.new_sandbox(env={"FROM": "snap"})
        sb.write_file("state.txt", "before\n")
        snap = sb.snapshot(processes=False)
        self.assertEqual((snap["provider"], snap["processes"]), ("airlock", False))
        self.assertIn(snap["id"], [s["id"] for s in self.api.snapshots()])
        restored = self.api.restore(snap["id"], name="restored")
        self.created.add(restored["id"])
        self.addCleanup(self._destroy_quietly, restored["id"])
        self.assertEqual(self.api.read_file(restored["id"], "state.txt"), b"before\n")
        self.assertEqual(self.api.exec(restored["id"], command="echo $FROM").stdout, "snap\n")
        self.assertEqual(self.api.delete_snapshot(snap["id"]), {"id": snap["id"], "deleted": True})
        with self.assertRaises(NotFound):
            self.api.delete_snapshot(snap["id"])

        ev = sb.events()
        self.assertEqual((ev["id"], ev["events"]), (sb.id, []))
        # Hitting the pids limit is an event (read from the cgroup, not from audit).
        small = self.new_sandbox(limits={"pids": 8})
        small.exec(command="for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 1 & done 2>/dev/null; wait",
                   timeout_ms=10000)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not small.events()["events"]:
            time.sleep(0.2)
        found = [e for e in small.events()["events"] if e["type"] == "pids_max"]
        self.assertTrue(found, small.events())
        self.assertEqual(small.events(since=found[-1]["seq"])["events"], [])
        with self.assertRaises(ValueError):
            sb.events(since=-1)


if __name__ == "__main__":
    at.main()
