#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""What a sandbox makes airlockd do for it stays in proportion: an answer is
bounded by the max_output_bytes its client asked for (control bytes used to
become six bytes of JSON each), airlockd's memory by that too, and the CPU
airlockd and the kernel's audit thread spend outside the sandbox's cgroup
on a flood of denied syscalls or of output is small next to what the
sandbox itself spends."""

import os
import time
import unittest

import security_test as st
import airlock_test as at  # noqa: E402  (security_test puts it on the path)

MIB = 1 << 20
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of a process (or kernel thread)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def kauditd_pid():
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/comm" % name) as f:
                    if f.read().strip() == "kauditd":
                        return int(name)
            except OSError:
                pass
    return None


def vm_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM for %d" % pid)


class AmplificationCase(st.SecurityTestCase):
    def sandbox_cpu(self, sid):
        """CPU seconds the sandbox's cgroup has used (cgroup v2 or v1 cpuacct)."""
        paths = self.client.inspect(sid)["cgroup"]["paths"]
        for key in ("cpu", "cpuacct"):
            if key in paths and os.path.exists(paths[key] + "/cpuacct.usage"):
                with open(paths[key] + "/cpuacct.usage") as f:
                    return int(f.read()) / 1e9
        for key in ("unified", "cpu", "memory"):
            if key in paths and os.path.exists(paths[key] + "/cpu.stat"):
                with open(paths[key] + "/cpu.stat") as f:
                    for line in f:
                        if line.startswith("usage_usec"):
                            return int(line.split()[1]) / 1e6
        raise AssertionError("no CPU accounting for %s: %r" % (sid, paths))

    def cost_of(self, sid, argv, seconds, extra_pids=(), settle=0.0):
        """Run argv in the background for `seconds`; CPU of the sandbox and
        of airlockd (+ extra_pids) meanwhile, and for `settle` seconds
        after (what the kernel still had queued)."""
        pids = [self.daemon.proc.pid] + [p for p in extra_pids if p]
        inside0 = self.sandbox_cpu(sid)
        outside0 = sum(cpu_seconds(p) for p in pids)
        start = time.monotonic()
        r = self.client.exec(sid, argv, yield_ms=50, timeout_ms=int(seconds * 1000),
                             max_output_bytes=MIB)
        if r.get("running"):
            self.client.wait_process(sid, r, seconds + 60)
        time.sleep(settle)
        inside = self.sandbox_cpu(sid) - inside0
        outside = sum(cpu_seconds(p) for p in pids) - outside0
        self.wall = time.monotonic() - start
        return inside, outside


class OutputBounds(AmplificationCase):
    """Answers and airlockd's memory follow max_output_bytes."""

    def test_answer_is_bounded_by_max_output_in_json(self):
        sid = self.sandbox()["id"]
        spew = "head -c %d /dev/zero | tr '\\000' '\\001'" % (4 * MIB)
        r = self.client.exec_raw(sid, command=spew, max_output_bytes=MIB)
        self.assertEqual(r.status, 200, r)
        body = len(r.body)
        self.attack_ok("control bytes swell the answer", body <= MIB + 4096,
                       "%d bytes of JSON for max_output_bytes %d" % (body, MIB))
        self.assertTrue(r.json["stdout_truncated"])
        self.assertEqual(set(r.json["stdout"]), {"\x01"})
        r = self.client.exec_raw(sid, command=spew, max_output_bytes=MIB, encoding="base64")
        self.assertEqual(r.status, 200, r)
        self.attack_ok("control bytes swell a base64 answer", len(r.body) <= MIB * 4 // 3 + 4096,
                       "%d bytes of JSON" % len(r.body))
        self.assertEqual(at.unb64(r.json["stdout"]), b"\x01" * MIB)
        # Text that needs no escapes is held and returned byte for byte.
        r = self.client.exec(sid, command="head -c %d /dev/zero | tr '\\000' a" % MIB,
                             max_output_bytes=MIB)
        self.assertEqual(len(r["stdout"]), MIB)
        self.assertFalse(r["stdout_truncated"])
        # A multi-byte character is never cut in two at the bound.
        r = self.client.exec(sid, argv=["python3", "-c", "print('é' * 100, end='')"],
                             max_output_bytes=101)
        self.assertEqual(r["stdout"], "é" * 50)
        self.assertTrue(r["stdout_truncated"])

    def test_airlockd_memory_is_bounded_by_max_output(self):
        sid = self.sandbox()["id"]
        pid = self.daemon.proc.pid
        before = vm_hwm_kib(pid)
        limit = 16 * MIB
        r = self.client.exec_raw(sid, command="head -c %d /dev/urandom | tr '\\000-\\377' "
                                              "'\\000-\\037\\000-\\037\\000-\\037\\000-\\037"
                                              "\\000-\\037\\000-\\037\\000-\\037\\000-\\037'"
                                 % (64 * MIB), max_output_bytes=limit, timeout_ms=120000)
        self.assertEqual(r.status, 200, r)
        grew = (vm_hwm_kib(pid) - before) * 1024
        self.attack_ok("64 MiB of control bytes swell airlockd", grew <= 3 * limit,
                       "peak RSS grew by %.1f MiB for max_output_bytes %d MiB; answer %d bytes"
                       % (grew / MIB, limit // MIB, len(r.body)))


class WorkOutsideTheSandbox(AmplificationCase):
    """Host CPU outside the sandbox's cgroup, for what the sandbox does."""

    FLOOD = ("import ctypes, time\n"
             "l = ctypes.CDLL(None)\n"
             "end = time.time() + %g\n"
             "while time.time() < end:\n"
             "    for i in range(1000): l.syscall(250, 0, -3, 1)\n")

    def test_denied_syscall_flood_is_muted(self):
        kauditd = kauditd_pid()
        sid = self.sandbox(limits={"cpus": 0.2})["id"]
        inside, outside = self.cost_of(sid, ["python3", "-c", self.FLOOD % 3], 3,
                                       extra_pids=[kauditd], settle=0.5)
        ev = self.events(sid)
        # kauditd serves the whole host and this airlockd reads every
        # daemon's records: a bound per second of the flood, not a ratio
        # to the sandbox's own CPU, which the kernel's backlog waits make
        # small.  Before the mute: 0.24 s a second (2.4 s outside per
        # 0.47 s inside over 10 s).
        self.attack_ok("denied-syscall flood costs the host", outside <= 0.08 * self.wall,
                       "airlockd + kauditd %.2fs outside in %.1fs, sandbox %.2fs inside"
                       % (outside, self.wall, inside))
        self.assertGreater(ev["denied"].get("keyctl", 0), 0, ev)
        muted = [e for e in ev["events"] if e["type"] == "unrecorded"]
        self.assertTrue(muted, "the flood was not muted: %r" % ev)
        # The mute ends: a later denial is recorded again.
        end = time.monotonic() + 40
        while True:
            ev = self.events(sid)
            last = [e for e in ev["events"] if e["type"] == "unrecorded"][-1]
            if last["last_time"] is not None or time.monotonic() > end:
                break
            time.sleep(0.2)
        self.assertIsNotNone(last["last_time"], ev)
        seq = ev["events"][-1]["seq"]
        r = self.py(sid, "import ctypes, os\nctypes.CDLL(None).syscall(250, 0, -3, 1)\n"
                         "print(os.getpid())\n")
        pid = int(r["stdout"])
        self.assertTrue(self.wait_denial(sid, "keyctl", pid=pid, timeout=10),
                        "no denial recorded after the mute: %r" % self.events(sid, seq))

    WRITER = ("import os, time\n"
              "b = %r\n"
              "end = time.time() + %g\n"
              "while time.time() < end:\n"
              "    os.write(1, b)\n")

    def test_output_spew_costs_airlockd_less_than_the_sandbox(self):
        sid = self.sandbox()["id"]
        for what, piece, bound in (("lines", b"x" * 79 + b"\n", 0.2),
                                   ("64 KiB writes", b"y" * 65536, 0.9)):
            inside, outside = self.cost_of(sid, ["python3", "-c", self.WRITER % (piece, 3)], 3)
            self.attack_ok("output spew (%s) costs airlockd" % what, outside <= bound * inside,
                           "airlockd %.2fs, sandbox %.2fs" % (outside, inside))


if __name__ == "__main__":
    st.main()
