#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""What the start and teardown fast paths rely on (see bench/README.md):
airlock-init joins every cgroup of its sandbox before it runs (v1
hierarchies through their tasks file, cgroup2 through CLONE_INTO_CGROUP);
airlock-init, exec'd for every sandbox, does not load libcrypto; airlockd's open files limit does not cap
the number of sandboxes, and sandboxes keep the limit airlockd inherited."""

import os
import subprocess

import airlock_test as at


def cgroup_mounts():
    """{controller or "unified": mount point} of the host's cgroup hierarchies."""
    out = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            fstype, _, opts = right.split()[:3]
            mnt = left.split()[4]
            if fstype == "cgroup2":
                out["unified"] = mnt
            elif fstype == "cgroup":
                for c in ("memory", "pids", "cpu", "freezer", "cpuset"):
                    if c in opts.split(","):
                        out[c] = mnt
    return out


class FastPathTest(at.AirlockTestCase):
    def test_init_is_in_every_cgroup_of_its_sandbox(self):
        sb = self.sandbox()
        paths = sb["cgroup"]["paths"]
        self.assertTrue(paths, sb["cgroup"])
        mounts = cgroup_mounts()
        with open("/proc/%d/cgroup" % sb["init_pid"]) as f:
            lines = f.read().splitlines()
        for key, path in paths.items():
            mnt = mounts.get(key) or mounts.get("unified")
            self.assertIsNotNone(mnt, key)
            rel = path[len(mnt):] if path.startswith(mnt) else None
            self.assertIsNotNone(rel, (key, path, mnt))
            # /proc/PID/cgroup lines: "N:controllers:path", "0::path" for cgroup2.
            found = [ln for ln in lines if ln.split(":", 2)[2] == rel and (
                key in ln.split(":", 2)[1].split(",") or
                (ln.split(":", 2)[1] == "" and mnt == mounts.get("unified")))]
            self.assertTrue(found, "init not in %s (%s): %s" % (key, rel, lines))
        # Its children too (they are forked by init after it joined).
        out = self.out(sb["id"], "cat /proc/self/cgroup")
        self.assertNotIn("..", out)

    def test_init_does_not_load_libcrypto(self):
        p = subprocess.run(["ldd", at.AIRLOCK_INIT], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        if "statically linked" in p.stdout:
            # static-pie (meson's init_static): no libcrypto code linked in.
            syms = subprocess.run(["nm", at.AIRLOCK_INIT], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, check=True).stdout
            self.assertIn(" main\n", syms)
            self.assertNotIn("EVP_", syms)
        else:
            self.assertEqual(p.returncode, 0, p.stdout)
            self.assertIn("libc.so", p.stdout)
            self.assertNotIn("libcrypto", p.stdout)
        sb = self.sandbox()
        with open("/proc/%d/maps" % sb["init_pid"]) as f:
            maps = f.read()
        self.assertNotIn("libcrypto", maps)


class OpenFilesLimitTest(at.AirlockTestCase):
    """airlockd holds an fd per sandbox: it raises its own soft RLIMIT_NOFILE
    to the hard limit (systemd's default soft limit of 1024 would stop it
    near a thousand sandboxes), and sandboxes get the inherited limit back."""

    SOFT = 64

    @classmethod
    def setUpClass(cls):
        import resource
        saved = resource.getrlimit(resource.RLIMIT_NOFILE)
        hard = max(saved[1], 4096) if saved[1] != resource.RLIM_INFINITY else 4096
        resource.setrlimit(resource.RLIMIT_NOFILE, (cls.SOFT, hard))
        cls.hard = hard
        try:
            super().setUpClass()
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, saved)

    def test_daemon_raises_and_sandboxes_get_the_inherited_limit(self):
        with open("/proc/%d/limits" % self.daemon.proc.pid) as f:
            line = [ln for ln in f if ln.startswith("Max open files")][0]
        self.assertEqual(line.split()[3:5], [str(self.hard)] * 2, line)
        sb = self.sandbox()
        self.assertEqual(self.out(sb["id"], "ulimit -n; ulimit -Hn"),
                         "%d\n%d\n" % (self.SOFT, self.hard))

    def test_more_sandboxes_than_the_inherited_limit(self):
        ids = []
        for _ in range(self.SOFT + 16):
            ids.append(self.sandbox()["id"])
        self.assertEqual(self.out(ids[-1], "echo ok"), "ok\n")


if __name__ == "__main__":
    at.main()
