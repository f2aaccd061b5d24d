#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The archive work airlockd does for a sandbox is the sandbox's: a
snapshot's workspace and layer archives ran in airlockd's own cgroups,
outside every limit of the sandbox (persist already ran in its cgroups),
and neither a persist nor a snapshot stopped when its client hung up: a
model's harness that gave up still had the host write the whole archive,
and a snapshot nobody waited for was stored.

The sandboxes here have a tenth of a CPU: a helper in their cgroups is slow
enough to be seen at work, and the work is long enough to hang up during."""

import json
import os
import socket
import time

import security_test as st

# Many small files in the workspace and in the writable layer: seconds of
# archive work at 0.1 CPU.
FILL = ("import os\n"
        "for d in ('/workspace/many', '/var/tmp/many'):\n"
        "    os.makedirs(d, exist_ok=True)\n"
        "    for i in range(3000):\n"
        "        with open('%s/f%d' % (d, i), 'w') as f: f.write('x' * 512)\n")


def parents(pid, depth):
    """The parent, grandparent... of pid, depth of them."""
    out = []
    for _ in range(depth):
        with open("/proc/%d/stat" % pid) as f:
            pid = int(f.read().rsplit(")", 1)[1].split()[1])
        out.append(pid)
    return out


def cgroup_lines(pid):
    """{controllers: path} of /proc/PID/cgroup."""
    with open("/proc/%d/cgroup" % pid) as f:
        return dict(line.rstrip("\n").split(":", 2)[1:] for line in f if line.strip())


def procs_file(init_pid):
    """The cgroup.procs of the sandbox's memory cgroup (v1), or of its one
    cgroup2 group."""
    lines = cgroup_lines(init_pid)
    for ctrl, path in lines.items():
        if "memory" in ctrl.split(","):
            return "/sys/fs/cgroup/memory%s/cgroup.procs" % path
    return "/sys/fs/cgroup%s/cgroup.procs" % lines[""]


class ArchiveWork(st.SecurityTestCase):
    daemon_args = ("--debug",)  # a line for every request, with its status

    def slow_sandbox(self):
        sb = self.sandbox(limits={"cpus": 0.1, "memory": "1G", "disk": "512M"})
        self.assertExit(self.client.exec(sb["id"], ["python3", "-c", FILL],
                                         timeout_ms=120000), 0)
        return sb

    def helpers_in(self, sb):
        """airlockd's helpers in the sandbox's cgroups now: {pid: (in the
        sandbox's user namespace, /proc/PID/cgroup)}."""
        found = {}
        userns = os.readlink("/proc/%d/ns/user" % sb["init_pid"])
        try:
            with open(procs_file(sb["init_pid"])) as f:
                pids = [int(x) for x in f.read().split()]
        except OSError:
            return found
        for pid in pids:
            try:
                # Forked by airlockd (the worker of a helper in the sandbox's
                # pid namespace by the helper), not by the sandbox's PID 1.
                up = parents(pid, 2)
                if pid == sb["init_pid"] or sb["init_pid"] in up or \
                        self.daemon.proc.pid not in up:
                    continue
                found[pid] = (os.readlink("/proc/%d/ns/user" % pid) == userns,
                              cgroup_lines(pid))
            except OSError:
                continue
        return found

    def raw_request(self, method, path, body=None):
        """A request on a connection of our own, left open: the socket."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.daemon.socket_path)
        data = json.dumps(body).encode() if body is not None else b""
        s.sendall(("%s %s HTTP/1.1\r\nHost: airlock\r\nContent-Type: application/json\r\n"
                   "Content-Length: %d\r\n\r\n" % (method, path, len(data))).encode() + data)
        return s

    def logged(self, method, path, timeout=60, final=False):
        """The status airlockd logged for the request, once it did.  final:
        the line of its end, not the 200 a persist is logged with as its
        archive begins (an archive cut short gets a second line); the last
        status logged if none came in time."""
        end = time.monotonic() + timeout
        needle = "%s %s -> " % (method, path)
        last = None
        while time.monotonic() < end:
            for line in reversed(self.daemon.log().splitlines()):
                if needle in line:
                    last = int(line.split(needle, 1)[1].split()[0].strip('"'))
                    break
            if last is not None and (not final or last != 200):
                return last
            time.sleep(0.05)
        if last is None:
            self.fail("airlockd never logged %s %s" % (method, path))
        return last

    def wait_helper(self, sb, sock=None, timeout=30):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            found = self.helpers_in(sb)
            if found:
                return found
            time.sleep(0.01)
        return {}

    def test_snapshot_archives_are_charged_to_the_sandbox(self):
        sb = self.slow_sandbox()
        sandbox_cg = cgroup_lines(sb["init_pid"])
        for processes in (False, True):
            s = self.raw_request("POST", "/v1/sandboxes/%s/snapshots" % sb["id"],
                                 {"processes": processes})
            seen = {}  # pid: [(inside, cgroups) sampled]
            try:
                end = time.monotonic() + 120
                s.setblocking(False)
                answer = b""
                while time.monotonic() < end:
                    for pid, sample in self.helpers_in(sb).items():
                        seen.setdefault(pid, []).append(sample)
                    try:
                        got = s.recv(65536)
                        answer += got
                        if not got or b"\r\n\r\n" in answer:
                            break
                    except BlockingIOError:
                        time.sleep(0.01)
            finally:
                s.close()
            self.assertIn(b" 201 ", answer.split(b"\r\n")[0], answer[:300])
            snap = json.loads(answer.split(b"\r\n\r\n", 1)[1] or b"{}").get("id")
            if snap:
                self.client.request("DELETE", "/v1/snapshots/%s" % snap)
            # A helper's cgroups once it joined them all: memory, CPU and
            # pids are the sandbox's; a snapshot with processes keeps out of
            # its frozen freezer group.
            def charged(cg):
                for ctrl, path in sandbox_cg.items():
                    if ("memory" in ctrl or "pids" in ctrl or "cpu" in ctrl.split(",")) and \
                            cg.get(ctrl) != path:
                        return False
                    if "freezer" in ctrl and processes and cg.get(ctrl) == path:
                        return False
                return True
            # (The workspace's worker enters the sandbox's user namespace
            # after it joined the cgroups.)
            kinds = {("workspace" if any(inside for inside, _ in samples) else "layer")
                     for samples in seen.values() if any(charged(cg) for _, cg in samples)}
            self.attack_ok("snapshot (processes %s) archives outside the sandbox's cgroups"
                           % processes, kinds == {"workspace", "layer"},
                           "helpers seen in its cgroups: %s (of %d helper processes)"
                           % (sorted(kinds), len(seen)))

    def hang_up_during(self, method, path, body=None, mid_stream=False):
        sb = self.slow_sandbox()
        before = os.listdir(os.path.join(self.daemon.state_dir, "snapshots"))
        s = self.raw_request(method, path % sb["id"], body)
        try:
            seen = self.wait_helper(sb)
            if mid_stream:  # once the answer has begun: its 200 is logged
                s.settimeout(60)
                self.assertIn(b" 200 ", s.recv(4096).split(b"\r\n")[0])
        finally:
            s.close()
        self.assertTrue(seen, "never saw the archive helper")
        hung_up = time.monotonic()
        status = self.logged(method, path % sb["id"], timeout=10, final=True)
        took = time.monotonic() - hung_up
        while set(self.helpers_in(sb)) & set(seen) and time.monotonic() < hung_up + 10:
            time.sleep(0.01)
        gone = not set(self.helpers_in(sb)) & set(seen)
        after = os.listdir(os.path.join(self.daemon.state_dir, "snapshots"))
        return status, took, gone, sorted(set(after) - set(before))

    def test_persist_stops_when_its_client_hangs_up(self):
        status, took, gone, left = self.hang_up_during("GET", "/v1/sandboxes/%s/workspace")
        self.attack_ok("persist goes on after its client hung up", status == 499 and gone,
                       "logged %d %.1f s after the hang-up, helper gone: %s" % (status, took, gone))
        self.assertEqual(left, [])

    def test_persist_cut_mid_stream_is_logged(self):
        # A persist is answered 200 as its archive begins; one whose client
        # left during the archive was logged as a success.
        status, took, gone, left = self.hang_up_during("GET", "/v1/sandboxes/%s/workspace",
                                                       mid_stream=True)
        self.attack_ok("persist cut mid-stream logged as done", status == 499 and gone,
                       "logged %d %.1f s after the hang-up, helper gone: %s" % (status, took, gone))

    def test_snapshot_stops_when_its_client_hangs_up(self):
        status, took, gone, left = self.hang_up_during(
            "POST", "/v1/sandboxes/%s/snapshots", {"processes": False})
        self.attack_ok("snapshot goes on after its client hung up", status == 499 and gone,
                       "logged %d %.1f s after the hang-up, helper gone: %s" % (status, took, gone))
        # Nothing of it is left in the store: no snapshot, no .tmp- directory.
        self.assertEqual(left, [], "left in the store: %s" % left)
        listed = self.client.expect(200, "GET", "/v1/snapshots").json["snapshots"]
        self.assertEqual(listed, [])

    def criu_of_daemon(self):
        """Pids of the criu processes airlockd runs now."""
        found = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    stat = f.read()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if comm == "criu" and ppid == self.daemon.proc.pid:
                found.append(int(d))
        return found

    def test_criu_dump_stops_when_its_client_hangs_up(self):
        # CRIU's dump of a sandbox holding 2 GiB of pages takes seconds, all
        # of them host root's work on disk; a client that hung up had it
        # finish all the same (the hang-up was only seen after the dump).
        if not self.client.info().get("criu"):
            self.skipTest("CRIU is not installed")
        sb = self.sandbox(limits={"memory": "3G", "disk": "256M"})
        sid = sb["id"]
        self.client.exec(sid, command="python3 -c \"import time\n"
                         "b = bytes(range(256)) * (2048 << 12)\n"
                         "while True:\n"
                         "    open('/tmp/tick', 'w').write(str(time.time()))\n"
                         "    time.sleep(0.05)\n\"", yield_ms=10)
        end = time.monotonic() + 60
        while self.client.exec(sid, ["test", "-e", "/tmp/tick"])["exit_code"] != 0:
            self.assertLess(time.monotonic(), end, "the memory holder never started")
            time.sleep(0.2)
        before = os.listdir(os.path.join(self.daemon.state_dir, "snapshots"))
        path = "/v1/sandboxes/%s/snapshots" % sid
        s = self.raw_request("POST", path, {"processes": True})
        try:
            end = time.monotonic() + 30
            while not self.criu_of_daemon() and time.monotonic() < end:
                time.sleep(0.005)
            criu = self.criu_of_daemon()
            time.sleep(0.3)  # into the dump: tasks seized, pages being written
        finally:
            s.close()
        self.assertTrue(criu, "never saw criu")
        hung_up = time.monotonic()
        while any(os.path.exists("/proc/%d" % p) for p in criu) and \
                time.monotonic() < hung_up + 60:
            time.sleep(0.005)
        criu_lived = time.monotonic() - hung_up
        status = self.logged("POST", path)
        self.attack_ok("criu dump goes on after its client hung up",
                       status == 499 and criu_lived < 1.0,
                       "criu ended %.2f s after the hang-up, logged %d" % (criu_lived, status))
        # Nothing of it in the store, and the sandbox runs on, thawed.
        after = os.listdir(os.path.join(self.daemon.state_dir, "snapshots"))
        self.assertEqual(sorted(set(after) - set(before)), [])
        self.assertEqual(self.client.expect(200, "GET", "/v1/snapshots").json["snapshots"], [])
        for ctrl, cg in cgroup_lines(sb["init_pid"]).items():
            if "freezer" in ctrl.split(","):
                with open("/sys/fs/cgroup/freezer%s/freezer.state" % cg) as f:
                    self.assertEqual(f.read().strip(), "THAWED")
        tick = float(self.out(sid, "cat /tmp/tick"))
        time.sleep(0.5)
        self.assertGreater(float(self.out(sid, "cat /tmp/tick")), tick,
                           "the sandbox's process stopped after the cancelled dump")
        # And a snapshot with processes still works.
        r = self.client.request("POST", path, {"processes": True})
        self.assertEqual(r.status, 201, r)
        self.client.request("DELETE", "/v1/snapshots/%s" % r.json["id"])

    def memory_usage(self, init_pid):
        """Bytes the sandbox's memory cgroup is charged now."""
        lines = cgroup_lines(init_pid)
        for ctrl, path in lines.items():
            if "memory" in ctrl.split(","):
                with open("/sys/fs/cgroup/memory%s/memory.usage_in_bytes" % path) as f:
                    return int(f.read())
        with open("/sys/fs/cgroup%s/memory.current" % lines[""]) as f:
            return int(f.read())

    def test_file_api_writes_are_charged_to_the_sandbox(self):
        # A file written through the API lands on the sandbox's tmpfs, whose
        # pages belong to the memory cgroup of whoever wrote them: that was
        # airlockd's (the file server and the upload helper ran in its
        # cgroups), so a sandbox's files written through the API were
        # outside its memory limit and grew airlockd's.
        sb = self.sandbox(limits={"memory": "256M", "disk": "128M"})
        sid = sb["id"]
        mib = 1 << 20
        for how, files, size in (("streamed", 1, 32 * mib), ("file server", 32, mib // 2)):
            before = self.memory_usage(sb["init_pid"])
            for i in range(files):
                r = self.client.write_file(sid, "/workspace/%s-%d" % (how.split()[0], i),
                                           b"\x01" * size)
                self.assertEqual(r.status, 200, r)
            grew = self.memory_usage(sb["init_pid"]) - before
            self.attack_ok("file API writes (%s) outside the sandbox's memory cgroup" % how,
                           grew >= 0.8 * files * size,
                           "its memory cgroup grew by %.1f MiB for %.1f MiB written"
                           % (grew / mib, files * size / mib))
        # Within its limit: with 200 MiB held by a process of its own, a
        # 100 MiB file through the API does not fit in 256 MiB.  Something
        # of the sandbox gives (the write fails, or its OOM killer ends the
        # holder); before, both succeeded, the file charged to airlockd.
        self.assertExit(self.client.exec(sid, ["sh", "-c", "rm -rf /workspace/*"]), 0)
        self.client.exec(sid, command="python3 -c \"import os, time\n"
                         "b = b'x' * (200 << 20)\n"
                         "open('/tmp/held', 'w').write(str(os.getpid()))\n"
                         "time.sleep(600)\n\"", yield_ms=10)
        end = time.monotonic() + 60
        while self.client.exec(sid, ["test", "-s", "/tmp/held"])["exit_code"] != 0:
            self.assertLess(time.monotonic(), end, "the memory holder never started")
            time.sleep(0.2)
        r = self.client.write_file(sid, "/workspace/big", b"\x02" * (100 * mib))
        alive = self.client.exec(sid, ["sh", "-c", "kill -0 $(cat /tmp/held)"])["exit_code"] == 0
        self.attack_ok("file API write beyond the sandbox's memory limit",
                       not (r.status == 200 and alive),
                       "write answered %d, the 200 MiB holder %s"
                       % (r.status, "still alive" if alive else "OOM-killed"))

if __name__ == "__main__":
    st.main()
