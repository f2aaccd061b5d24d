#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Memory, pids and CPU limits are in the kernel and enforced, and a sandbox
that hits them does not disturb airlockd."""

import os

import airlock_test as at

MIB = 1 << 20


def cgroup_file(paths, controller, *names):
    """The first existing knob among names (v1 or v2 spelling) in the
    sandbox's cgroup of controller ("cpu,cpuacct" counts for cpu)."""
    bases = [p for k, p in paths.items() if controller in k.split(",")]
    bases += [p for k, p in paths.items() if k in ("unified", "", "v2")]
    bases += list(paths.values())
    for base in bases:
        for n in names:
            p = os.path.join(base, n)
            if os.path.exists(p):
                return p
    return None


class LimitsTest(at.AirlockTestCase):
    def test_memory_limit_is_set_in_the_kernel(self):
        sb = self.sandbox(limits={"memory_bytes": 64 * MIB})
        info = self.client.inspect(sb["id"])
        self.assertEqual(info["cgroup"]["limits"]["memory_bytes"], 64 * MIB)
        knob = cgroup_file(info["cgroup"]["paths"], "memory", "memory.max", "memory.limit_in_bytes")
        self.assertIsNotNone(knob, "no memory knob under %r" % info["cgroup"]["paths"])
        self.assertEqual(int(at.read_text(knob)), 64 * MIB)
        # The sandbox's own processes are in that cgroup.
        procs = at.read_text(os.path.join(os.path.dirname(knob), "cgroup.procs")).split()
        self.assertIn(str(info["init_pid"]), procs)

    def test_memory_limit_as_a_string(self):
        sb = self.sandbox(limits={"memory": "48M"})
        self.assertEqual(self.client.inspect(sb["id"])["cgroup"]["limits"]["memory_bytes"], 48 * MIB)

    def test_memory_hog_is_oom_killed_and_airlockd_keeps_serving(self):
        sb = self.sandbox(limits={"memory_bytes": 64 * MIB})
        sid = sb["id"]
        # Under the limit is fine.
        self.assertExit(self.sh(sid, "head -c 16M /dev/zero | tail -c 1 >/dev/null"), 0)
        # busybox tail keeps everything after the last newline: /dev/zero has none.
        r = self.client.exec(sid, ["tail", "/dev/zero"], timeout_ms=60000, yield_ms=200)
        other = self.new_client()
        if r.get("running"):
            self.assertEqual(other.request("GET", "/v1/info").status, 200)
            r, _, _ = self.client.wait_process(sid, r, 90)
        self.assertFalse(r["timed_out"], "the hog was not stopped by the memory limit: %r" % r)
        self.assertTrue(at.killed_by(r, 9), "hog not SIGKILLed: %r" % r)
        self.assertEqual(other.request("GET", "/v1/info").status, 200)
        # The sandbox itself survives its process's OOM kill.
        self.assertEqual(self.out(sid, "echo alive"), "alive\n")
        self.assertEqual(self.client.inspect(sid)["state"], "running")

    def test_pids_limit(self):
        limit = 16
        sb = self.sandbox(limits={"pids": limit})
        info = self.client.inspect(sb["id"])
        self.assertEqual(info["cgroup"]["limits"]["pids"], limit)
        knob = cgroup_file(info["cgroup"]["paths"], "pids", "pids.max")
        self.assertIsNotNone(knob)
        self.assertEqual(at.read_text(knob).strip(), str(limit))
        r = self.sh(sb["id"], "i=0; while [ $i -lt 50 ]; do sleep 30 </dev/null >/dev/null 2>&1 & "
                    "i=$((i+1)); echo $i; done", timeout_ms=60000)
        started = [int(x) for x in r["stdout"].split()]
        n = max(started) if started else 0
        self.assertLess(n, 50, "50 processes forked under a limit of %d" % limit)
        self.assertLessEqual(n, limit)
        self.assertNotEqual(r["exit_code"], 0, r)
        self.assertEqual(self.new_client().request("GET", "/v1/info").status, 200)

    def test_cpu_limit_is_set_in_the_kernel(self):
        sb = self.sandbox(limits={"cpus": 0.5})
        info = self.client.inspect(sb["id"])
        self.assertEqual(info["cgroup"]["limits"]["cpus"], 0.5)
        paths = info["cgroup"]["paths"]
        v2 = cgroup_file(paths, "cpu", "cpu.max")
        if v2:
            quota, period = at.read_text(v2).split()
        else:
            quota = at.read_text(cgroup_file(paths, "cpu", "cpu.cfs_quota_us"))
            period = at.read_text(cgroup_file(paths, "cpu", "cpu.cfs_period_us"))
        self.assertAlmostEqual(int(quota) / int(period), 0.5, places=2)

    def test_default_limits(self):
        sb = self.sandbox()
        limits = self.client.inspect(sb["id"])["cgroup"]["limits"]
        self.assertEqual(limits["memory_bytes"], 1 << 30)
        self.assertEqual(limits["pids"], 1024)

    def test_a_full_disk_is_no_space_not_an_oom_kill(self):
        # The layer is RAM charged to the memory limit: by default the disk
        # cap is half of it, so filling the disk says "no space" (it used
        # to be 4 GiB over 1 GiB of memory, and ended in an OOM kill).
        sb = self.sandbox(limits={"memory": "64M"})
        self.assertEqual(sb["disk"]["limit_bytes"], 32 << 20)
        r = self.client.exec(sb["id"], command="dd if=/dev/zero of=/workspace/f bs=1M count=60")
        self.assertNotEqual(r["exit_code"], 0, r)
        self.assertIn("No space left", r["stderr"])
        self.assertFalse(at.killed_by(r, 9), r)
        self.assertEqual(self.out(sb["id"], "echo alive"), "alive\n")
        events = self.client.expect(200, "GET", "/v1/sandboxes/%s/events" % sb["id"]).json
        self.assertEqual([e for e in events["events"] if e["type"] == "oom_kill"], [])
        r = self.client.request("POST", "/v1/sandboxes", {"limits": {"memory": "64M", "disk": "64M"}})
        self.assertEqual(r.status, 400, r)
        self.assertIn("below limits.memory", r.json["error"]["message"])

    def test_bad_limits_are_refused(self):
        for limits in ({"memory_bytes": -1}, {"memory": "lots"}, {"pids": -5}, {"cpus": -2},
                       {"memory_bytes": "x"}):
            with self.subTest(limits=limits):
                r = self.client.request("POST", "/v1/sandboxes", {"limits": limits})
                if r.status == 201:
                    self.client.created.add(r.json["id"])
                    self.client.destroy(r.json["id"])
                self.assertEqual(r.status, 400, r)


if __name__ == "__main__":
    at.main()
