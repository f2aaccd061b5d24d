#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Each sandbox gets its own user, pid, mount, net, uts, ipc and cgroup
namespaces; PID 1 is airlock-init; only loopback exists; root inside is an
unprivileged uid outside."""

import os

import airlock_test as at


class NamespaceTest(at.AirlockTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.sb = cls.client.create()
        cls.named = cls.client.create(name="ns-test-box")

    def init_pid(self, sb):
        pid = self.client.inspect(sb["id"])["init_pid"]
        self.assertIsInstance(pid, int)
        self.assertGreater(pid, 1)
        return pid

    def test_every_namespace_differs_from_the_host(self):
        pid = self.init_pid(self.sb)
        host = at.ns_links(os.getpid())
        mine = at.ns_links(pid)
        for ns in at.NAMESPACES:
            with self.subTest(ns=ns):
                self.assertIsNotNone(mine[ns], "cannot read /proc/%d/ns/%s" % (pid, ns))
                self.assertNotEqual(mine[ns], host[ns], "sandbox shares the host's %s namespace" % ns)

    def test_sandboxes_do_not_share_namespaces(self):
        a = at.ns_links(self.init_pid(self.sb))
        b = at.ns_links(self.init_pid(self.named))
        for ns in at.NAMESPACES:
            with self.subTest(ns=ns):
                self.assertNotEqual(a[ns], b[ns], "two sandboxes share a %s namespace" % ns)

    def test_inspect_reports_the_real_namespaces(self):
        info = self.client.inspect(self.sb["id"])
        real = at.ns_links(info["init_pid"])
        for ns in at.NAMESPACES:
            with self.subTest(ns=ns):
                self.assertEqual(info["namespaces"][ns], real[ns])

    def test_exec_runs_in_the_sandbox_namespaces(self):
        init = at.ns_links(self.init_pid(self.sb))
        cmd = "; ".join("readlink /proc/self/ns/%s" % ns for ns in at.NAMESPACES)
        seen = self.out(self.sb["id"], cmd).split()
        self.assertEqual(seen, [init[ns] for ns in at.NAMESPACES])

    def test_pid1_is_airlock_init(self):
        self.assertEqual(self.out(self.sb["id"], "cat /proc/1/comm").strip(), "airlock-init")
        pid = self.init_pid(self.sb)
        self.assertEqual((at.read_text("/proc/%d/comm" % pid) or "").strip(), "airlock-init")
        # The exec'd shell is not PID 1 and sees only the sandbox's processes.
        self.assertNotEqual(self.out(self.sb["id"], "echo $$").strip(), "1")
        visible = self.out(self.sb["id"], "ls /proc | grep -c '^[0-9]'").strip()
        self.assertLess(int(visible), 10, "the sandbox sees host processes")

    def test_airlock_init_is_not_dumpable(self):
        # Same uid inside, so only a non-dumpable PID 1 (and no CAP_SYS_PTRACE
        # in the sandbox) keeps its environment and exe link from a command.
        r = self.sh(self.sb["id"], "cat /proc/1/environ")
        self.assertNotEqual(r["exit_code"], 0, "a command can read PID 1's environ: %r" % r)
        r = self.sh(self.sb["id"], "readlink /proc/1/exe")
        self.assertNotEqual(r["exit_code"], 0, "a command can read PID 1's exe link: %r" % r)

    def test_only_loopback_exists_and_is_up(self):
        dev = self.out(self.sb["id"], "cat /proc/net/dev")
        names = [line.split(":")[0].strip() for line in dev.splitlines()[2:] if ":" in line]
        self.assertEqual(names, ["lo"])
        flags = self.out(self.sb["id"], "cat /sys/class/net/lo/flags").strip()
        self.assertTrue(int(flags, 16) & 0x1, "lo is not up: flags %s" % flags)
        r = self.sh(self.sb["id"], "ip addr show lo")
        if r["exit_code"] != 127:
            self.assertExit(r, 0)
            self.assertIn("UP", r["stdout"])
            self.assertIn("127.0.0.1", r["stdout"])
        net = self.client.inspect(self.sb["id"])["network"]
        self.assertEqual(net["interfaces"], ["lo"])

    def test_hostname_is_the_id_or_name(self):
        self.assertEqual(self.out(self.sb["id"], "hostname").strip(), self.sb["id"])
        self.assertEqual(self.out(self.named["id"], "hostname").strip(), "ns-test-box")
        self.assertEqual(self.out(self.named["id"], "cat /proc/sys/kernel/hostname").strip(),
                         "ns-test-box")
        self.assertNotEqual(self.out(self.sb["id"], "hostname").strip(),
                            os.uname().nodename)

    def test_root_inside_is_unprivileged_outside(self):
        self.assertEqual(self.out(self.sb["id"], "id -u").strip(), "0")
        info = self.client.inspect(self.sb["id"])
        pid = info["init_pid"]
        uid_map = at.read_text("/proc/%d/uid_map" % pid).split()
        gid_map = at.read_text("/proc/%d/gid_map" % pid).split()
        self.assertEqual(uid_map[0], "0")
        self.assertNotEqual(uid_map[1], "0", "sandbox root is host root")
        self.assertNotEqual(gid_map[1], "0", "sandbox root group is host root group")
        self.assertEqual(" ".join(uid_map), " ".join(info["uid_map"].split()))
        # The exec'd process itself runs as that host uid.
        self.assertEqual(os.stat("/proc/%d" % pid).st_uid, int(uid_map[1]))

    def test_live_sandboxes_do_not_share_host_uids(self):
        def host_range(sb):
            m = at.read_text("/proc/%d/uid_map" % self.init_pid(sb)).split()
            start = int(m[1])
            return start, start + int(m[2])

        a, b = host_range(self.sb), host_range(self.named)
        self.assertTrue(a[1] <= b[0] or b[1] <= a[0], "uid ranges overlap: %s %s" % (a, b))


if __name__ == "__main__":
    at.main()
