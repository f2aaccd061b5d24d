#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Resource exhaustion stays inside its sandbox: a fork bomb, a memory bomb,
fd exhaustion and a CPU hog each leave airlockd answering and the other
sandboxes running, the offender is named in its events, and exec latency in
an idle neighbour stays within 3x of its unloaded value."""

import http.client
import os
import statistics
import time
import unittest

import security_test as st
import airlock_test as at  # noqa: E402  (security_test puts it on the path)

MIB = 1 << 20

FORK_BOMB = ("import os, time\n"
             "end = time.time() + %d\n"
             "while time.time() < end:\n"
             "    try:\n"
             "        if os.fork() == 0:\n"
             "            while time.time() < end: pass\n"
             "            os._exit(0)\n"
             "    except OSError:\n"
             "        pass\n")

CPU_HOG = ("import os, time\n"
           "end = time.time() + %d\n"
           "for i in range(3):\n"
           "    if os.fork() == 0: break\n"
           "while time.time() < end: pass\n")


class Exhaustion(st.SecurityTestCase):
    def daemon_answers(self, within_s=2.0):
        c = self.new_client()
        t = time.monotonic()
        ok = c.request("GET", "/v1/info", timeout=within_s * 5).status == 200
        return ok and time.monotonic() - t < within_s, time.monotonic() - t

    def wait_event(self, sid, kind, timeout=10.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            found = [e for e in self.events(sid)["events"] if e["type"] == kind]
            if found:
                return found
            time.sleep(0.2)
        return []

    def test_fork_bomb(self):
        bomb = self.sandbox(limits={"pids": 128})["id"]
        other = self.sandbox()["id"]
        r = self.client.exec(bomb, ["python3", "-c", FORK_BOMB % 5], timeout_ms=30000, yield_ms=1500)
        answers, took = self.daemon_answers()
        neighbour = self.out(other, "echo alive")
        if r.get("running"):
            self.client.wait_process(bomb, r, 60)
        pids = self.client.inspect(bomb)["cgroup"]["usage"]["pids"]
        self.attack_ok("fork bomb: airlockd stalls", answers, "GET /v1/info in %.0f ms" % (took * 1000))
        self.attack_ok("fork bomb: neighbour stalls", neighbour == "alive\n", neighbour.strip())
        self.attack_ok("fork bomb: pids limit", pids is not None and pids <= 128, "pids now %s" % pids)
        ev = self.wait_event(bomb, "pids_max")
        self.assertTrue(ev, "no pids_max event: %r" % self.events(bomb))
        self.assertGreater(ev[0]["count"], 0)

    def test_a_sandbox_stopping_its_spawns_does_not_wedge_airlockd(self):
        """kill(-1, SIGSTOP) in a loop stops every process of the sandbox it
        may signal, the children PID 1 makes for execs among them.  A vfork
        PID 1 then blocked for good in its vfork, and every exec into the
        sandbox hung, each holding an airlockd thread."""
        wedge = self.sandbox()["id"]
        other = self.sandbox()["id"]
        threads_before = len(os.listdir("/proc/%d/task" % self.daemon.proc.pid))
        self.client.exec(wedge, command="while :; do kill -STOP -1; done", yield_ms=100)
        # A second loop makes the stops more frequent; its own spawn may
        # be stopped by the first (then it is refused after the bound).
        r = self.client.exec_raw(wedge, command="while :; do kill -STOP -1; done", yield_ms=100)
        self.assertIn(r.status, (200, 504), r)
        pending = [at.request_in_background(self.daemon.socket_path, "POST",
                                            "/v1/sandboxes/%s/exec" % wedge,
                                            {"argv": ["true"], "timeout_ms": 1000})
                   for _ in range(20)]
        answers, took = self.daemon_answers()
        self.attack_ok("stopped spawns: airlockd stalls", answers, "GET /v1/info in %.0f ms"
                       % (took * 1000))
        # Every exec is answered: run (its child escaped the stop), killed
        # by its timeout, or refused once PID 1's answer takes too long.
        start = time.monotonic()
        for t, _ in pending:
            t.join(max(1, 30 - (time.monotonic() - start)))
        hung = sum(t.is_alive() for t, _ in pending)
        self.attack_ok("stopped spawns: execs hang", hung == 0, "%d of 20 unanswered after %.0f s"
                       % (hung, time.monotonic() - start))
        self.attack_ok("stopped spawns: neighbour stalls",
                       self.out(other, "echo alive") == "alive\n", "exec in another sandbox")
        # Removing the sandbox works and leaves the daemon serving everyone.
        self.client.destroy(wedge)
        answers, took = self.daemon_answers()
        self.attack_ok("stopped spawns: airlockd after rm", answers, "GET /v1/info in %.0f ms"
                       % (took * 1000))
        threads_after = len(os.listdir("/proc/%d/task" % self.daemon.proc.pid))
        self.attack_ok("stopped spawns: threads held", threads_after <= threads_before + 4,
                       "%d threads, %d before" % (threads_after, threads_before))

    def test_memory_bomb(self):
        sid = self.sandbox(limits={"memory_bytes": 64 * MIB})["id"]
        r = self.client.exec(sid, ["python3", "-c", "b = []\nwhile True: b.append(bytearray(1 << 20))"],
                             timeout_ms=60000)
        self.attack_ok("memory bomb", st.at.killed_by(r, 9) and not r["timed_out"],
                       "signal %s exit %s" % (r.get("signal"), r.get("exit_code")))
        self.attack_ok("memory bomb: airlockd stalls", self.daemon_answers()[0], "GET /v1/info")
        self.assertEqual(self.out(sid, "echo alive"), "alive\n")
        ev = self.wait_event(sid, "oom_kill")
        self.assertTrue(ev, "no oom_kill event: %r" % self.events(sid))

    def test_fd_exhaustion(self):
        sid = self.sandbox()["id"]
        with open("/proc/sys/fs/file-nr") as f:
            before = int(f.read().split()[0])
        r = self.py(sid, "import os, resource\n"
                         "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
                         "resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))\n"
                         "n = 0\n"
                         "try:\n"
                         "    while True: os.open('/dev/null', os.O_RDONLY); n += 1\n"
                         "except OSError as e: print(n, hard, e.strerror)\n")
        self.assertExit(r, 0, r)
        n, hard = (int(x) for x in r["stdout"].split()[:2])
        self.attack_ok("fd exhaustion", n <= hard and "Too many open files" in r["stdout"],
                       r["stdout"].strip())
        with open("/proc/sys/fs/file-nr") as f:
            after = int(f.read().split()[0])
        self.attack_ok("fd exhaustion: host fds", after - before < hard + 1000,
                       "host file-nr %d -> %d" % (before, after))
        self.attack_ok("fd exhaustion: airlockd stalls", self.daemon_answers()[0], "GET /v1/info")

    def test_disk_fill(self):
        host_before = os.statvfs("/")
        sb = self.sandbox(limits={"disk": "64M", "memory": "256M"})
        sid = sb["id"]
        info = self.client.inspect(sid)
        self.assertEqual(info["disk"]["limit_bytes"], 64 << 20, info["disk"])
        r = self.client.exec(sid, ["sh", "-c", "dd if=/dev/zero of=/workspace/fill bs=1M count=200; "
                                   "echo rc=$?; ls -l /workspace/fill"], timeout_ms=60000)
        self.assertIn("No space left on device", r["stderr"], r)
        size = int(r["stdout"].split()[-5]) if "fill" in r["stdout"] else 0
        self.attack_ok("disk fill: capped at the sandbox's limit", size <= 64 << 20, "%d bytes" % size)
        # Inodes are capped too: many empty files end in ENOSPC, not in host inode exhaustion.
        r2 = self.client.exec(sid, ["sh", "-c", "rm -f /workspace/fill; mkdir /workspace/i && cd /workspace/i "
                                    "&& i=0; while touch f$i 2>/dev/null; do i=$((i+1)); done; echo $i"],
                              timeout_ms=120000)
        made = int(r2["stdout"].split()[-1])
        self.attack_ok("inode fill: capped", made <= info["disk"]["limit_inodes"], "%d files" % made)
        host_after = os.statvfs("/")
        lost = (host_before.f_bavail - host_after.f_bavail) * host_after.f_frsize
        self.attack_ok("disk fill: host disk untouched", lost < 32 << 20, "%d bytes" % lost)
        self.attack_ok("disk fill: airlockd stalls", self.daemon_answers()[0], "GET /v1/info")
        self.assertEqual(self.out(sid, "echo alive"), "alive\n")

    def exec_latency(self, sid, n=30):
        times = []
        for _ in range(n):
            t = time.monotonic()
            self.client.exec(sid, ["true"])
            times.append(time.monotonic() - t)
        return statistics.median(times)

    def loaded_latency(self, idle):
        """Exec latency in idle before and while a fresh attacker sandbox
        runs a CPU hog and a fork bomb; the attacker is destroyed after."""
        unloaded = self.exec_latency(idle)
        attacker = self.sandbox(limits={"pids": 256})["id"]
        self.client.exec(attacker, ["python3", "-c", CPU_HOG % 20], timeout_ms=60000, yield_ms=10)
        self.client.exec(attacker, ["python3", "-c", FORK_BOMB % 20], timeout_ms=60000,
                         yield_ms=1000)
        loaded = self.exec_latency(idle)
        # The load must be real for the figure to mean anything.
        busy = self.client.inspect(attacker)["cgroup"]["usage"]["pids"]
        self.assertGreater(busy or 0, 64, "the fork bomb is not running")
        answers, took = self.daemon_answers()
        self.client.destroy(attacker)
        return unloaded, loaded, answers, took

    def test_archives_are_bounded_by_the_sandbox_disk(self):
        # persist and snapshot expanded sparse files and copied hard links:
        # a 16 MiB sandbox made persist write 4 GB and a snapshot 3.8 GB.
        host_before = os.statvfs("/")
        sb = self.sandbox(limits={"disk": "16M", "memory": "128M"})
        sid = sb["id"]
        self.out(sid, "dd if=/dev/zero of=/workspace/one bs=1M count=4 2>/dev/null; "
                      "i=0; while [ $i -lt 200 ]; do ln /workspace/one /workspace/l$i; "
                      "i=$((i+1)); done; echo ok")
        r = self.client.request("GET", "/v1/sandboxes/%s/workspace" % sid, timeout=120)
        self.assertEqual(r.status, 200, r.body[:200])
        self.attack_ok("persist: 200 hard links copied", len(r.body) < 8 * MIB,
                       "%d bytes" % len(r.body))
        resp = self.client.request("POST", "/v1/sandboxes/%s/snapshots" % sid,
                                   {"processes": False}, timeout=300)
        self.assertEqual(resp.status, 201, resp.body[:300])
        snap = resp.json
        self.addCleanup(self.client.request, "DELETE", "/v1/snapshots/" + snap["id"])
        self.attack_ok("snapshot: 200 hard links copied",
                       snap["sizes"]["total"] < 16 * MIB, snap["sizes"])
        # A clean copy comes back with its links.
        new = self.client.create(snapshot=snap["id"])["id"]
        self.addCleanup(self.client.destroy, new)
        self.assertEqual(self.out(new, "stat -c %h /workspace/one"), "201\n")

        self.out(sid, "rm -f /workspace/l* && truncate -s 8G /workspace/sparse && echo ok")
        # A persist streams its tar as it is made, so the hole budget runs out
        # after the answer began: the transfer is cut (never a complete 200),
        # having sent about the disk cap, and airlockd says why in its log.
        c = at.Client(self.daemon.socket_path)
        self.addCleanup(c.close)
        try:
            r = c.request("GET", "/v1/sandboxes/%s/workspace" % sid, timeout=300)
            how = "HTTP %d, %d bytes %r" % (r.status, len(r.body), r.body[:120])
            refused = r.status == 413 and b"sparse" in r.body
        except http.client.IncompleteRead as e:
            how = "cut after %d bytes" % len(e.partial)
            refused = len(e.partial) < 64 * MIB and "sparse" in self.daemon.log()
        self.attack_ok("persist of an 8 GB sparse file in a 16 MiB sandbox", refused, how)
        r = self.client.request("POST", "/v1/sandboxes/%s/snapshots" % sid,
                                {"processes": False}, timeout=300)
        if r.status == 201:
            self.client.request("DELETE", "/v1/snapshots/" + r.json["id"])
        self.attack_ok("snapshot of an 8 GB sparse file in a 16 MiB sandbox",
                       r.status == 413 and b"sparse" in r.body,
                       "HTTP %d %r" % (r.status, r.body[:160]))
        host_after = os.statvfs("/")
        lost = (host_before.f_bavail - host_after.f_bavail) * host_after.f_frsize
        self.attack_ok("archives: host disk", lost < 64 * MIB, "%d bytes" % lost)
        self.out(sid, "rm /workspace/sparse; echo ok")
        r = self.client.request("GET", "/v1/sandboxes/%s/workspace" % sid, timeout=120)
        self.assertEqual(r.status, 200, r.body[:200])

    def test_cpu_hog_and_fork_bomb_leave_neighbour_latency_within_3x(self):
        """Best of three rounds: other work on the host (this test shares it
        with whatever else runs there) moves both figures of a round, while a
        neighbour that is not protected from the attacker fails every one."""
        idle = self.sandbox()["id"]
        self.exec_latency(idle, 5)  # warm up
        ratios = []
        for _ in range(3):
            unloaded, loaded, answers, took = self.loaded_latency(idle)
            ratios.append(loaded / unloaded)
            print("neighbour exec latency: unloaded %.2f ms, loaded %.2f ms, ratio %.2f"
                  % (unloaded * 1000, loaded * 1000, ratios[-1]), flush=True)
            self.attack_ok("CPU hog + fork bomb: airlockd stalls", answers, "%.0f ms" % (took * 1000))
            if ratios[-1] <= 3.0:
                break
        self.attack_ok("CPU hog + fork bomb: neighbour latency", min(ratios) <= 3.0,
                       "ratios %s" % ", ".join("%.2f" % r for r in ratios))


if __name__ == "__main__":
    st.main()
