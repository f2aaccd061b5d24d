#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Sandbox lifecycle: create, list, inspect, destroy without leftovers;
refused creates leave nothing; many concurrent clients; malformed HTTP;
sandboxes outliving an airlockd killed with SIGKILL or SIGTERM."""

import os
import re
import signal
import socket
import threading
import time

import airlock_test as at


def host_processes_of(sid):
    """[(pid, start time, comm)] of the host processes in sandbox sid's cgroup."""
    out = []
    for pid in at.processes_of([sid]):
        start = at.process_start(pid)
        if start is not None:
            out.append((pid, start, (at.read_text("/proc/%d/comm" % pid) or "").strip()))
    return out


def host_processes_with(sid, comm, count, timeout=5):
    """host_processes_of(sid) once count of them run comm: a shell's `cmd &`
    has forked when the shell exits, but the fork may not have exec'd yet."""
    deadline = time.monotonic() + timeout
    while True:
        procs = host_processes_of(sid)
        if sum(c == comm for _, _, c in procs) >= count or time.monotonic() > deadline:
            return procs
        time.sleep(0.02)


def raw_exchange(path, data, timeout=15, shutdown=False):
    """Send raw bytes on a new connection; return what comes back until close or timeout."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    got = b""
    try:
        try:
            s.sendall(data)
            if shutdown:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer before reading all of it
        while b"\r\n\r\n" not in got:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except (socket.timeout, ConnectionResetError, BrokenPipeError):
        pass
    finally:
        s.close()
    return got


def status_of(raw):
    parts = raw.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        return None
    return int(parts[1])


class LifecycleTest(at.AirlockTestCase):
    def snapshot_host(self):
        """What exists now: sandboxes, cgroups under airlock/, mounts of the state dir, state entries."""
        # Other airlockds (other test files, a developer's) make cgroups
        # meanwhile, under roots of their own: only this daemon's count (a
        # filter on empty cgroups let another daemon's teardown in).
        cgroups = set()
        for root in at.cgroup_roots(self.daemon.state_dir):
            for d in os.listdir(root):
                if os.path.isdir(os.path.join(root, d)):
                    cgroups.add(os.path.join(root, d))
        sbdir = os.path.join(self.daemon.state_dir, "sandboxes")
        return {
            "sandboxes": sorted(sb["id"] for sb in self.client.list()),
            "cgroups": sorted(cgroups),
            "mounts": sorted(at.mounts_mentioning(self.daemon.state_dir)),
            "state": sorted(os.listdir(sbdir)) if os.path.isdir(sbdir) else [],
        }

    def test_create_list_inspect_destroy(self):
        sb = self.client.create(name="lc-box")
        sid = sb["id"]
        self.assertTrue(re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", sid))
        self.assertEqual(sb["name"], "lc-box")
        self.assertEqual(sb["state"], "running")
        listed = {s["id"]: s for s in self.client.list()}
        self.assertIn(sid, listed)
        for key in ("name", "state", "created", "rootfs"):
            self.assertIn(key, listed[sid])
        self.assertEqual(listed[sid]["rootfs"], self.rootfs)
        info = self.client.inspect(sid)
        self.assertEqual(info["id"], sid)
        self.assertTrue(at.alive(info["init_pid"], at.process_start(info["init_pid"])))
        self.assertEqual(set(info["namespaces"]), set(at.NAMESPACES))
        self.assertTrue(info["uid_map"])
        self.assertTrue(info["cgroup"]["paths"])
        for p in info["cgroup"]["paths"].values():
            self.assertTrue(os.path.isdir(p), p)
        self.assertEqual(info["seccomp"]["profile"], "default")
        self.assertEqual(info["seccomp"]["mode"], 2)
        self.assertIs(info["no_new_privs"], True)
        self.assertNotIn("cap_sys_admin", info["capabilities"]["bounding"])
        self.assertTrue(any(" / " in m or m.startswith("overlay") for m in info["mounts"]))
        self.assertEqual(info["network"]["mode"], "loopback")

        self.assertEqual(self.client.destroy(sid), {"id": sid, "deleted": True})
        self.assertEqual(self.client.request("GET", "/v1/sandboxes/" + sid).status, 404)
        self.assertNotIn(sid, [s["id"] for s in self.client.list()])
        self.assertEqual(self.client.request("DELETE", "/v1/sandboxes/" + sid).status, 404)

    def test_destroy_leaves_nothing(self):
        sb = self.client.create(manifest={"version": 1, "entries": {"f": {"type": "file", "content": "x"}}})
        sid = sb["id"]
        self.out(sid, "sleep 1000 </dev/null >/dev/null 2>&1 & sleep 1001 </dev/null >/dev/null 2>&1 &")
        running = self.client.exec(sid, ["sleep", "1002"], yield_ms=100)
        self.assertTrue(running["running"])
        info = self.client.inspect(sid)
        procs = host_processes_with(sid, "sleep", 3)
        comms = [c for _, _, c in procs]
        self.assertGreaterEqual(comms.count("sleep"), 3, procs)
        self.assertIn(info["init_pid"], [p for p, _, _ in procs])
        cgroups = list(info["cgroup"]["paths"].values())
        self.client.destroy(sid)
        time.sleep(0.2)
        for pid, start, comm in procs:
            self.assertFalse(at.alive(pid, start), "process %d (%s) survived destroy" % (pid, comm))
        for p in cgroups:
            self.assertFalse(os.path.exists(p), "cgroup %s survived destroy" % p)
        self.assertEqual(at.leftovers(self.daemon.state_dir, [sid], daemon_running=True), [])
        self.assertEqual(self.client.poll(sid, running["process_id"]).status, 404)

    def test_bad_creates_are_refused_and_leave_nothing(self):
        big = "x" * (17 << 20)
        bad = [
            {"manifest": {"version": 1, "entries": {"/etc/passwd": {"type": "file", "content": "x"}}}},
            {"manifest": {"version": 1, "entries": {"../up": {"type": "file", "content": "x"}}}},
            {"manifest": {"version": 1, "entries": {"a/../../up": {"type": "dir"}}}},
            {"manifest": {"version": 1, "entries": {"x": {"type": "no_such_type"}}}},
            {"manifest": {"version": 1, "entries": {"x": {"type": "local_file",
                                                          "src": "/nonexistent/airlock-it"}}}},
            {"manifest": {"version": 1, "entries": {"x": {"type": "file", "content": big}}}},
            {"manifest": "not an object"},
            {"rootfs": "/nonexistent/rootfs"},
            {"seccomp_profile": "no-such-profile"},
            {"seccomp_profile": "../../etc/passwd"},
            {"network": "host"},
            {"name": "bad name/with slash"},
        ]
        before = self.snapshot_host()
        for body in bad:
            with self.subTest(body=str(body)[:120]):
                try:
                    r = self.client.request("POST", "/v1/sandboxes", body)
                except (BrokenPipeError, ConnectionResetError):
                    # Refused before the body was read: check the answer on a raw socket.
                    data = at.json.dumps(body).encode()
                    got = raw_exchange(self.daemon.socket_path,
                                       b"POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nContent-Length: %d"
                                       b"\r\n\r\n" % len(data) + data)
                    self.assertIn(status_of(got), (400, 413), got[:300])
                    continue
                if r.status == 201:
                    self.client.created.add(r.json["id"])
                    self.client.destroy(r.json["id"])
                self.assertIn(r.status, (400, 413), r)
                err = r.json["error"]
                self.assertTrue(err["code"] and err["message"], r)
        self.assertEqual(self.snapshot_host(), before)

    def test_concurrent_creates_and_execs(self):
        errors, ids = [], []
        lock = threading.Lock()

        def worker(i):
            c = at.Client(self.daemon.socket_path, self.created)
            try:
                sb = c.create(name="conc-%d" % i)
                with lock:
                    ids.append(sb["id"])
                for j in range(3):
                    r = c.exec(sb["id"], command="echo %d-%d; hostname" % (i, j))
                    if r.get("exit_code") != 0 or r["stdout"] != "%d-%d\nconc-%d\n" % (i, j, i):
                        raise AssertionError("worker %d: %r" % (i, r))
                c.destroy(sb["id"])
            except Exception as e:
                with lock:
                    errors.append("worker %d: %r" % (i, e))
            finally:
                c.close()

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        self.assertEqual(errors, [])
        self.assertEqual(len(ids), 20)
        self.assertEqual(len(set(ids)), 20)
        self.assertEqual(at.leftovers(self.daemon.state_dir, ids, daemon_running=True), [])

    def test_destroy_answers_before_teardown_and_teardown_completes(self):
        """With ?wait=0 DELETE answers once the sandbox is killed; the
        sandbox is gone from the API at once, its name is free at once, and
        the reaper removes every trace of it shortly after."""
        sb = self.client.create(name="reap-me")
        sid = sb["id"]
        procs = host_processes_of(sid)
        self.assertTrue(procs)
        self.assertEqual(self.client.destroy(sid, wait=False), {"id": sid, "deleted": True})
        self.assertEqual(self.client.request("GET", "/v1/sandboxes/" + sid).status, 404)
        self.assertEqual(self.client.request("GET", "/v1/sandboxes/reap-me").status, 404)
        self.assertNotIn(sid, [s["id"] for s in self.client.list()])
        self.assertEqual(self.client.request("DELETE", "/v1/sandboxes/" + sid).status, 404)
        # The name can be taken again while the first one may still be torn down.
        again = self.client.create(name="reap-me")
        self.assertNotEqual(again["id"], sid)
        self.assertEqual(self.client.inspect("reap-me")["id"], again["id"])
        deadline = time.monotonic() + 10
        while self.client.info()["reaping"] and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(self.client.info()["reaping"], 0)
        for pid, start, comm in procs:
            self.assertFalse(at.alive(pid, start), "process %d (%s) survived destroy" % (pid, comm))
        self.assertEqual(at.leftovers(self.daemon.state_dir, [sid], daemon_running=True), [])
        self.client.destroy(again["id"])
        self.assertEqual(at.leftovers(self.daemon.state_dir, [again["id"]], daemon_running=True), [])

    def test_daemon_stop_finishes_pending_teardowns(self):
        """SIGTERM right after a burst of unwaited destroys: airlockd tears
        them all down before it exits."""
        ids = [self.client.create()["id"] for _ in range(5)]
        for sid in ids:
            self.client.destroy(sid, wait=False)
        self.client.close()
        self.daemon.stop()
        self.assertEqual(at.leftovers(self.daemon.state_dir, ids), [])
        self.daemon.start()

    def test_daemon_stop_does_not_wait_for_a_blocking_exec(self):
        """An exec that waits for its command's end (no yield) does not hold
        up SIGTERM: it is answered as still running and airlockd exits; the
        command runs on and the next airlockd knows its sandbox."""
        sid = self.client.create()["id"]
        t, answer = at.request_in_background(self.daemon.socket_path, "POST",
                                             "/v1/sandboxes/%s/exec" % sid, {"command": "sleep 60"})
        time.sleep(0.5)
        self.client.close()
        start = time.monotonic()
        self.assertIn(self.daemon.stop(), (0, -signal.SIGTERM))
        self.assertLess(time.monotonic() - start, 5)
        t.join(10)
        self.assertFalse(t.is_alive())
        if "r" in answer:
            self.assertEqual(answer["r"].status, 200, answer["r"])
            self.assertTrue(answer["r"].json["running"], answer["r"].json)
        self.daemon.start()
        self.assertIn(sid, [s["id"] for s in self.client.list()])
        self.assertEqual(self.out(sid, "pidof sleep >/dev/null && echo found"), "found\n")
        self.client.destroy(sid)

    def test_unwaited_destroy_then_airlockd_sigkill(self):
        """A sandbox destroyed with ?wait=0 and not yet torn down when
        airlockd is killed is not reattached by the next airlockd: it is
        removed, with everything it had on the host."""
        sid = self.client.create()["id"]
        self.out(sid, "sleep 1000 </dev/null >/dev/null 2>&1 &")
        procs = host_processes_with(sid, "sleep", 1)
        self.client.destroy(sid, wait=False)
        self.client.close()
        self.daemon.stop(signal.SIGKILL)
        self.daemon.start()
        self.assertNotIn(sid, [s["id"] for s in self.client.list()])
        for pid, start, comm in procs:
            self.assertFalse(at.alive(pid, start), "process %d (%s) survived" % (pid, comm))
        self.assertEqual(at.leftovers(self.daemon.state_dir, [sid], daemon_running=True), [])

    def test_sigkill_during_creates_leaves_no_half_made_child_nor_hung_client(self):
        """airlockd killed while creates are in flight: every client gets
        an answer or an error at once, no half-made sandbox runs on (before
        its exec it is a clone of airlockd, as host root, holding copies of
        every daemon fd), and the next airlockd keeps only finished ones."""
        self.client.close()
        for delay in (0.002, 0.005, 0.01, 0.02, 0.04, 0.08):
            pending = [at.request_in_background(self.daemon.socket_path, "POST",
                                                "/v1/sandboxes", {}) for _ in range(10)]
            time.sleep(delay)
            self.daemon.stop(signal.SIGKILL)
            for t, answer in pending:
                t.join(10)
                self.assertFalse(t.is_alive(), "a client hung after airlockd's SIGKILL "
                                 "(%.3f s into the creates)" % delay)
                if "r" in answer and answer["r"].status == 201:
                    self.created.add(answer["r"].json["id"])
            # Before its exec a half-made sandbox is a clone of airlockd (the
            # same command line); after it, airlock-init dies with airlockd
            # until it reports ready.
            deadline = time.monotonic() + 3
            while True:
                clones = [pid for pid in at.pids()
                          if self.daemon.socket_path in (at.read_text("/proc/%d/cmdline" % pid)
                                                         or "")]
                if not clones or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            self.assertEqual(clones, [], "clones of the killed airlockd still run "
                             "(%.3f s into the creates)" % delay)
            # One that reported ready but has no state.json yet is the next
            # airlockd's to remove, before it serves.
            sbdir = os.path.join(self.daemon.state_dir, "sandboxes")
            half = [i for i in os.listdir(sbdir)
                    if not os.path.exists(os.path.join(sbdir, i, "state.json"))]
            self.daemon.start()
            if half:
                self.assertEqual(at.processes_of(half), [], "half-made sandboxes still run")
            # And creating works (a create that always failed would pass the above).
            self.created.add(self.client.create()["id"])
        for sb in self.client.list():
            self.assertEqual(self.client.inspect(sb["id"])["state"], "running")

    def test_a_sandbox_whose_pid1_died_is_reported_kept_and_readable(self):
        # It used to vanish without a word: no event, its files unreadable,
        # and the next airlockd deleted it.
        sid = self.client.create()["id"]
        self.assertEqual(self.client.write_file(sid, "/workspace/keep.txt", b"precious").status, 200)
        os.kill(self.client.inspect(sid)["init_pid"], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while True:
            events = self.client.expect(200, "GET", "/v1/sandboxes/%s/events" % sid).json
            if [e for e in events["events"] if e["type"] == "pid1_exited"]:
                break
            self.assertLess(time.monotonic(), deadline, "no pid1_exited event: %r" % events)
            time.sleep(0.2)
        self.assertEqual(self.client.inspect(sid)["state"], "stopped")
        self.assertEqual(self.client.read_file(sid, "/workspace/keep.txt").body, b"precious")
        r = self.client.write_file(sid, "/workspace/new.txt", b"x")
        self.assertEqual(r.status, 503, r)
        self.assertIn("stopped", r.json["error"]["message"])
        # The next airlockd keeps it too, for its user to remove.
        self.client.close()
        self.daemon.stop(signal.SIGTERM)
        self.daemon.start()
        listed = {s["id"]: s for s in self.client.list()}
        self.assertEqual(listed[sid]["state"], "stopped")
        self.assertEqual(self.client.read_file(sid, "/workspace/keep.txt").body, b"precious")
        self.client.destroy(sid)
        self.assertEqual(at.leftovers(self.daemon.state_dir, [sid], daemon_running=True), [])

    def test_32_clients_at_once(self):
        """32 clients create, exec in, snapshot-free-destroy sandboxes for a
        while, all at once: every request answered correctly, nothing left,
        airlockd's threads and fds back where they were."""
        pid = self.daemon.proc.pid
        fds_before = len(os.listdir("/proc/%d/fd" % pid))
        errors = []
        stop = time.monotonic() + 8

        def client(n):
            c = at.Client(self.daemon.socket_path, self.created)
            try:
                while time.monotonic() < stop:
                    sid = c.create()["id"]
                    r = c.exec(sid, command="echo %d" % n)
                    if r["stdout"] != "%d\n" % n:
                        errors.append((n, r))
                    c.destroy(sid, wait=bool(n % 2))
            except Exception as e:  # noqa: BLE001  (reported below)
                errors.append((n, repr(e)))
            finally:
                c.close()
        threads = [threading.Thread(target=client, args=(n,)) for n in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(errors, [])
        self.assertFalse(any(t.is_alive() for t in threads), "a client hung")
        # Unwaited destroys finish in the background.
        deadline = time.monotonic() + 20
        while self.client.info()["reaping"] and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(self.client.list(), [])
        self.assertLessEqual(len(os.listdir("/proc/%d/fd" % pid)), fds_before + 8)

    def test_concurrent_execs_in_one_sandbox(self):
        sid = self.sandbox()["id"]
        errors = []

        def worker(i):
            c = at.Client(self.daemon.socket_path)
            try:
                r = c.exec(sid, command="sleep 0.$((%d %% 5)); echo %d" % (i, i))
                if r.get("stdout") != "%d\n" % i:
                    errors.append("exec %d: %r" % (i, r))
            except Exception as e:
                errors.append("exec %d: %r" % (i, e))
            finally:
                c.close()

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(errors, [])

    def test_malformed_http_gets_4xx_and_the_daemon_keeps_serving(self):
        sock = self.daemon.socket_path
        # HTTP-shaped requests that are wrong must get a 4xx.
        cases = [
            ("huge content-length", b"POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\n"
                                    b"Content-Type: application/json\r\n"
                                    b"Content-Length: 999999999999\r\n\r\n{}"),
            ("bad header", b"GET /v1/info HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n"),
        ]
        for name, data in cases:
            with self.subTest(case=name):
                got = raw_exchange(sock, data)
                st = status_of(got)
                self.assertIsNotNone(st, "%s: no HTTP answer: %r" % (name, got[:200]))
                self.assertTrue(400 <= st < 500, "%s: %r" % (name, got[:300]))
                self.assertEqual(self.client.request("GET", "/v1/info").status, 200)
        # Bytes that are not HTTP at all: libmicrohttpd 0.9.75 (Debian 12)
        # drops such a connection without an answer (it has no request line
        # to answer).  Whatever happens, it must never be a success or a
        # server error, and the daemon must keep serving.
        for name, data in [("garbage", b"\x00\xff\xfegarbage garbage\r\n\r\n"),
                           ("bad request line", b"GET\r\n\r\n")]:
            with self.subTest(case=name):
                got = raw_exchange(sock, data, timeout=2, shutdown=True)
                st = status_of(got)
                self.assertTrue(st is None or 400 <= st < 500, "%s: %r" % (name, got[:300]))
                self.assertEqual(self.client.request("GET", "/v1/info").status, 200)
        # A body shorter than announced, then a hang-up.
        raw_exchange(sock, b"POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"na",
                     timeout=2, shutdown=True)
        # A connection that says nothing and goes away.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock)
        s.close()

        c = self.client
        self.assertEqual(c.request("POST", "/v1/sandboxes", b"{not json",
                                   headers={"Content-Type": "application/json"}).status, 400)
        r = c.request("POST", "/v1/sandboxes", b"[1, 2]", headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.json["error"]["code"], "invalid_argument")
        self.assertEqual(c.request("POST", "/v1/sandboxes", {"limits": "lots"}).status, 400)
        r = c.request("PATCH", "/v1/sandboxes")
        self.assertEqual(r.status, 405, r)
        self.assertEqual(r.json["error"]["code"], "method_not_allowed")
        self.assertEqual(c.request("DELETE", "/v1/info").status, 405)
        r = c.request("GET", "/v1/no/such/path")
        self.assertEqual(r.status, 404, r)
        self.assertEqual(r.json["error"]["code"], "not_found")
        self.assertEqual(c.request("GET", "/nope").status, 404)
        self.assertEqual(c.request("GET", "/v1/sandboxes/%2e%2e%2f%2e%2e").status, 404)
        big = b"{" + b" " * (17 << 20) + b"}"
        got = raw_exchange(sock, b"POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\n"
                           b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(big)
                           + big)
        self.assertEqual(status_of(got), 413, got[:300])

        # Still fully working.
        self.assertEqual(c.request("GET", "/v1/info").status, 200)
        sid = self.sandbox()["id"]
        self.assertEqual(self.out(sid, "echo ok"), "ok\n")

    def check_survives_daemon_death(self, sig):
        sb = self.client.create(name="survivor")
        sid = sb["id"]
        self.out(sid, "sleep 1000 </dev/null >/dev/null 2>&1 &")
        info = self.client.inspect(sid)
        init_pid, init_start = info["init_pid"], at.process_start(info["init_pid"])
        sleeps = [(p, s) for p, s, c in host_processes_with(sid, "sleep", 1) if c == "sleep"]
        self.assertEqual(len(sleeps), 1, host_processes_of(sid))
        self.client.close()

        status = self.daemon.stop(sig)
        if sig == signal.SIGTERM:
            self.assertIn(status, (0, -signal.SIGTERM), "airlockd exit status on SIGTERM")
        time.sleep(0.5)
        self.assertTrue(at.alive(init_pid, init_start), "airlock-init died with airlockd (%s)" % sig.name)
        self.assertTrue(at.alive(*sleeps[0]), "the sleep inside died with airlockd (%s)" % sig.name)

        self.daemon.start()
        listed = {s["id"]: s for s in self.client.list()}
        self.assertIn(sid, listed, "restarted airlockd does not list the sandbox")
        self.assertEqual(listed[sid]["state"], "running")
        self.assertEqual(self.client.inspect(sid)["init_pid"], init_pid)
        self.assertEqual(self.out(sid, "hostname; pidof sleep >/dev/null && echo found"),
                         "survivor\nfound\n")
        self.assertEqual(self.client.destroy(sid)["deleted"], True)
        time.sleep(0.2)
        self.assertFalse(at.alive(init_pid, init_start))
        self.assertFalse(at.alive(*sleeps[0]))
        self.assertEqual(at.leftovers(self.daemon.state_dir, [sid], daemon_running=True), [])

    def test_sandbox_survives_airlockd_sigkill(self):
        self.check_survives_daemon_death(signal.SIGKILL)

    def test_sandbox_survives_airlockd_sigterm(self):
        self.check_survives_daemon_death(signal.SIGTERM)

    def test_socket_is_private(self):
        st = os.stat(self.daemon.socket_path)
        self.assertEqual(st.st_mode & 0o777, 0o660)


if __name__ == "__main__":
    at.main()
