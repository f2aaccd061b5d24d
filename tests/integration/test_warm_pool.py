#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The warm pool (airlockd --warm-pool N): plain creates are served from
sandboxes made ahead, which are complete and private to their claimer;
requests the pool cannot serve are made the normal way; pooled sandboxes
never show in the API; none outlives its airlockd (SIGTERM destroys them, a
restart after SIGKILL removes them)."""

import calendar
import glob
import json
import os
import signal
import threading
import time

import airlock_test as at

POOL = 2


class WarmPoolTest(at.AirlockTestCase):
    daemon_args = ("--warm-pool", str(POOL))

    def pool(self):
        return self.client.info()["warm_pool"]

    def wait_full(self, timeout=30):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            p = self.pool()
            if p["ready"] == POOL:
                return p
            time.sleep(0.05)
        self.fail("warm pool not full after %ss: %r" % (timeout, self.pool()))

    def state(self, sid):
        path = os.path.join(self.daemon.state_dir, "sandboxes", sid, "state.json")
        with open(path) as f:
            return json.load(f)

    def pooled_ids(self):
        """Sandboxes on disk that the API does not show: the pooled ones."""
        listed = {sb["id"] for sb in self.client.list()}
        sbdir = os.path.join(self.daemon.state_dir, "sandboxes")
        return sorted(set(os.listdir(sbdir)) - listed)

    def cgroups_of(self, sid):
        return glob.glob("/sys/fs/cgroup/*/airlock*/%s" % sid) + \
            glob.glob("/sys/fs/cgroup/airlock*/%s" % sid)

    def test_pooled_sandboxes_are_invisible(self):
        self.wait_full()
        pooled = self.pooled_ids()
        self.assertEqual(len(pooled), POOL, pooled)
        info = self.client.info()
        self.assertEqual(info["sandboxes"], len(self.client.list()))
        for sid in pooled:
            self.assertTrue(self.state(sid).get("pooled"), self.state(sid))
            for method, path, body in (("GET", "/v1/sandboxes/" + sid, None),
                                       ("POST", "/v1/sandboxes/%s/exec" % sid, {"argv": ["true"]}),
                                       ("DELETE", "/v1/sandboxes/" + sid, None)):
                r = self.client.request(method, path, body)
                self.assertEqual(r.status, 404, "%s %s: %r" % (method, path, r))
        self.assertEqual(self.pooled_ids(), pooled, "a refused request touched the pool")

    def test_claimed_sandbox_is_complete_and_private(self):
        self.wait_full()
        time.sleep(1.1)  # so that a creation time taken from the pool would show
        claimed_at = int(time.time())
        before = self.pool()
        a = self.sandbox(env={"FOO": "bar"})
        b = self.sandbox(rootfs=at.ROOTFS, network="loopback", seccomp_profile="default")
        after = self.pool()
        self.assertEqual(after["hits"], before["hits"] + 2, (before, after))
        self.assertEqual(after["misses"], before["misses"])
        for sb in (a, b):
            self.assertNotIn("pooled", self.state(sb["id"]))
            self.assertIn(sb["id"], {s["id"] for s in self.client.list()})
            self.assertEqual(sb["seccomp"]["mode"], 2, sb)
            self.assertTrue(sb["no_new_privs"], sb)
            host = at.ns_links(os.getpid())
            for ns in at.NAMESPACES:
                self.assertNotEqual(sb["namespaces"][ns], host[ns], ns)
        # Two claimed sandboxes share nothing: namespaces and host uid ranges differ.
        for ns in at.NAMESPACES:
            self.assertNotEqual(a["namespaces"][ns], b["namespaces"][ns], ns)
        self.assertNotEqual(a["uid_map"], b["uid_map"])
        # The request's env is applied at claim time; the hostname is the id, as for any
        # unnamed sandbox; the creation time is the claim's, not the pool's.
        self.assertEqual(self.out(a["id"], 'echo "$FOO"; hostname'), "bar\n%s\n" % a["id"])
        self.assertEqual(self.out(b["id"], 'echo "${FOO:-unset}"'), "unset\n")
        created = calendar.timegm(time.strptime(self.client.inspect(a["id"])["created"],
                                                "%Y-%m-%dT%H:%M:%SZ"))
        self.assertGreaterEqual(created, claimed_at)
        # Files written in one claimed sandbox are not in another.
        self.out(a["id"], "echo secret > /workspace/f")
        self.assertExit(self.sh(b["id"], "test -e /workspace/f"), 1)

    def test_create_with_exec_is_served_by_the_pool(self):
        """`airlock run`'s one request (create with "exec" and "remove") takes
        a pooled sandbox, runs the command with the request's env, and
        removes it."""
        self.wait_full()
        before = self.pool()
        r = self.client.request("POST", "/v1/sandboxes?view=summary",
                                {"env": {"FOO": "bar"}, "exec": {"command": 'echo "$FOO"'},
                                 "remove": True})
        self.assertEqual(r.status, 201, r)
        after = self.pool()
        self.assertEqual((after["hits"], after["misses"]), (before["hits"] + 1, before["misses"]))
        self.assertEqual(r.json["exec"]["stdout"], "bar\n")
        self.assertTrue(r.json["removed"])
        self.assertNotIn(r.json["id"], {s["id"] for s in self.client.list()})

    def test_requests_the_pool_cannot_serve(self):
        self.wait_full()
        before = self.pool()
        named = self.sandbox(name="pool-bypass")
        limited = self.sandbox(limits={"memory": "64M"})
        self.assertEqual(self.out(named["id"], "hostname"), "pool-bypass\n")
        self.assertEqual(limited["cgroup"]["limits"]["memory_bytes"], 64 << 20, limited)
        # Bad input gets the normal path's error, not a pooled sandbox.
        r = self.client.request("POST", "/v1/sandboxes", {"env": {"A=B": "x"}})
        self.assertEqual(r.status, 400, r)
        r = self.client.request("POST", "/v1/sandboxes", {"rootfs": "relative/path"})
        self.assertEqual(r.status, 400, r)
        after = self.pool()
        self.assertEqual((after["hits"], after["misses"]), (before["hits"], before["misses"]),
                         (before, after))

    def test_concurrent_creates_beyond_the_pool(self):
        self.wait_full()
        before = self.pool()
        results, errors = [], []

        def one():
            try:
                c = at.Client(self.daemon.socket_path, self.created)
                results.append(c.create())
                c.close()
            except Exception as e:  # reported below
                errors.append(e)
        threads = [threading.Thread(target=one) for _ in range(3 * POOL)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for sb in results:
            self.addCleanup(self._destroy_quietly, sb["id"])
        self.assertEqual(errors, [])
        after = self.pool()
        # Every one of them was eligible: each is a hit or, with the pool empty, a miss.
        self.assertEqual(after["hits"] + after["misses"],
                         before["hits"] + before["misses"] + 3 * POOL, (before, after))
        self.assertEqual(len({sb["id"] for sb in results}), 3 * POOL)
        self.assertEqual(len({sb["uid_map"] for sb in results}), 3 * POOL)
        for sb in results:
            self.assertEqual(self.out(sb["id"], "echo ok"), "ok\n")
        self.wait_full()

    def test_restart_after_kill_removes_unclaimed(self):
        self.wait_full()
        kept = self.sandbox()
        self.wait_full()
        pooled = self.pooled_ids()
        pids = {sid: self.state(sid)["init_pid"] for sid in pooled}
        self.daemon.stop(signal.SIGKILL)
        self.client.close()
        for sid, pid in pids.items():
            self.assertIsNotNone(at.process_start(pid), "pooled %s died with airlockd" % sid)
        self.daemon.start()
        # The claimed sandbox is reattached; the unclaimed ones are gone for good.
        self.assertIn(kept["id"], {sb["id"] for sb in self.client.list()})
        self.assertEqual(self.out(kept["id"], "echo still"), "still\n")
        sbdir = os.path.join(self.daemon.state_dir, "sandboxes")
        for sid, pid in pids.items():
            self.assertFalse(os.path.exists(os.path.join(sbdir, sid)), sid)
            self.assertIsNone(at.process_start(pid), "pooled %s still running" % sid)
            self.assertEqual(self.cgroups_of(sid), [], sid)
            self.assertEqual(at.mounts_mentioning(sid), [], sid)
        # The new airlockd fills its own pool.
        self.wait_full()
        self.assertFalse(set(self.pooled_ids()) & set(pooled))

    def test_invalid_option(self):
        for bad in ("-1", "x", "257", ""):
            p = at.subprocess.run([at.AIRLOCKD, "--warm-pool", bad], stdout=at.subprocess.PIPE,
                                  stderr=at.subprocess.STDOUT, text=True, timeout=30)
            self.assertEqual(p.returncode, 2, (bad, p.stdout))
            self.assertIn("--warm-pool", p.stdout)


if __name__ == "__main__":
    at.main()
