#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Per-user kernel budgets are the sandbox's own.  The kernel charges
inotify instances, POSIX message queue bytes and queued signals (the
ucounts) to the uid inside a user namespace and to the namespace's owner
in the host's namespace: with every sandbox's namespace owned by host
root, one sandbox took all of host root's inotify instances, mqueue bytes
and queued signals, and root and the other sandboxes got EMFILE/EAGAIN;
it could also reserve every AIO event of the host (fs.aio-max-nr).  Each
sandbox's namespace is owned by its own host uid, fresh or restored
by CRIU, and has its own ceilings (/proc/sys/user inside)."""

import ctypes
import errno
import fcntl
import os
import struct
import subprocess
import time

import security_test as st

NS_GET_OWNER_UID = 0xB704  # _IO(0xb7, 0x4), linux/nsfs.h

# Takes every instance, queue byte and queued signal it can, prints the
# counts and the errors that stopped it, then holds them.
EXHAUST = r"""
import ctypes, os, signal, sys, time
libc = ctypes.CDLL(None, use_errno=True)
class MqAttr(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_long), ("maxmsg", ctypes.c_long),
                ("msgsize", ctypes.c_long), ("curmsgs", ctypes.c_long),
                ("pad", ctypes.c_long * 4)]
counts = {}
n = 0
while libc.inotify_init1(os.O_CLOEXEC) >= 0:
    n += 1
counts["inotify"] = (n, ctypes.get_errno())
attr = MqAttr(0, 10, 8192, 0)
n = 0
while n < 100000 and libc.mq_open(b"/exhaust%d" % n, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC,
                                  0o600, ctypes.byref(attr)) >= 0:
    n += 1
counts["mqueue"] = (n, ctypes.get_errno())
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGRTMIN])
n = 0
while n < 10000000 and libc.sigqueue(os.getpid(), int(signal.SIGRTMIN), ctypes.c_void_p(0)) == 0:
    n += 1
counts["signals"] = (n, ctypes.get_errno())
IO_SETUP = {"x86_64": 206, "aarch64": 0}[os.uname().machine]
n = 0
while n < 1000 and libc.syscall(IO_SETUP, 4096, ctypes.byref(ctypes.c_ulong(0))) == 0:
    n += 1
counts["aio"] = (n, ctypes.get_errno())
print(" ".join("%s=%d/%d" % (k, v[0], v[1]) for k, v in counts.items()), flush=True)
time.sleep(120)
"""

# One of each, from wherever it runs; prints name=errno (0: it worked).
TRY_ONE = r"""
import ctypes, os, signal
libc = ctypes.CDLL(None, use_errno=True)
class MqAttr(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_long), ("maxmsg", ctypes.c_long),
                ("msgsize", ctypes.c_long), ("curmsgs", ctypes.c_long),
                ("pad", ctypes.c_long * 4)]
out = {}
fd = libc.inotify_init1(os.O_CLOEXEC)
out["inotify"] = 0 if fd >= 0 else ctypes.get_errno()
if fd >= 0:
    os.close(fd)
name = b"/airlock-budget-%d" % os.getpid()
attr = MqAttr(0, 10, 8192, 0)
q = libc.mq_open(name, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600, ctypes.byref(attr))
out["mqueue"] = 0 if q >= 0 else ctypes.get_errno()
if q >= 0:
    os.close(q)
    libc.mq_unlink(name)
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGRTMIN])
r = libc.sigqueue(os.getpid(), int(signal.SIGRTMIN), ctypes.c_void_p(0))
out["signals"] = 0 if r == 0 else ctypes.get_errno()
signal.signal(signal.SIGRTMIN, signal.SIG_IGN)
signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGRTMIN])
IO_SETUP, IO_DESTROY = {"x86_64": (206, 207), "aarch64": (0, 1)}[os.uname().machine]
ctx = ctypes.c_ulong(0)
r = libc.syscall(IO_SETUP, 1, ctypes.byref(ctx))
out["aio"] = 0 if r == 0 else ctypes.get_errno()
if r == 0:
    libc.syscall(IO_DESTROY, ctx)
print(" ".join("%s=%d" % kv for kv in out.items()), flush=True)
"""


def parse(line):
    return dict(item.split("=") for item in line.split())


def namespace_owner(pid):
    fd = os.open("/proc/%d/ns/user" % pid, os.O_RDONLY)
    try:
        buf = bytearray(4)
        fcntl.ioctl(fd, NS_GET_OWNER_UID, buf)
        return struct.unpack("I", buf)[0]
    finally:
        os.close(fd)


CEILINGS = "cat /proc/sys/user/max_user_namespaces /proc/sys/user/max_inotify_instances"


class SharedBudgets(st.SecurityTestCase):
    def owned(self, sb, how):
        base = int(sb["uid_map"].split()[1])
        owner = namespace_owner(sb["init_pid"])
        self.attack_ok("%s user namespace owned by host root" % how, owner == base,
                       "owner uid %d, sandbox base %d" % (owner, base))
        self.assertEqual(self.out(sb["id"], CEILINGS).split(), ["0", "128"])

    def test_user_namespace_is_owned_by_the_sandbox_uid(self):
        self.owned(self.sandbox(), "fresh")

    def test_restored_user_namespace_is_owned_by_the_sandbox_uid(self):
        # CRIU makes the namespace of a restore (criu_userns_shim.c).
        if not self.client.info().get("criu"):
            self.skipTest("CRIU is not installed")
        sid = self.sandbox()["id"]
        self.client.exec(sid, command="sleep 600", yield_ms=10)
        r = self.client.request("POST", "/v1/sandboxes/%s/snapshots" % sid, {"processes": True})
        self.assertEqual(r.status, 201, r)
        snap = r.json["id"]
        try:
            self.client.destroy(sid)
            sb = self.client.create(snapshot=snap)
            try:
                self.owned(self.client.inspect(sb["id"]), "restored")
                self.assertIn("sleep 600", self.out(sb["id"], "cat /proc/*/cmdline | tr '\\0' ' '"))
                # And it checkpoints again.
                r = self.client.request("POST", "/v1/sandboxes/%s/snapshots" % sb["id"],
                                        {"processes": True})
                self.assertEqual(r.status, 201, r)
                self.client.request("DELETE", "/v1/snapshots/%s" % r.json["id"])
            finally:
                self.client.destroy(sb["id"])
        finally:
            self.client.request("DELETE", "/v1/snapshots/%s" % snap)

    def test_exhausting_per_user_budgets_leaves_root_and_neighbours_theirs(self):
        hog = self.sandbox()["id"]
        neighbour = self.sandbox()["id"]
        r = self.client.exec(hog, ["python3", "-c", EXHAUST], yield_ms=100, timeout_ms=60000)
        out = r.get("stdout", "")
        end = time.monotonic() + 30
        while not out.endswith("\n") and r.get("running") and time.monotonic() < end:
            p = self.client.poll(hog, r["process_id"], yield_ms=200).json
            out += p.get("stdout", "")
            r = dict(r, running=p["running"])
        self.assertTrue(out.endswith("\n"), "the hog did not report: %r" % out)
        took = parse(out)
        # It took something of each, and stopped at a limit.
        for what in ("inotify", "mqueue", "signals"):
            n, err = (int(x) for x in took[what].split("/"))
            self.assertGreater(n, 0, "%s: %r" % (what, took))
            self.assertIn(err, (errno.EMFILE, errno.ENFILE, errno.EAGAIN, errno.ENOMEM,
                                errno.ENOSPC), "%s: %r" % (what, took))
        try:
            root = parse(subprocess.run(["python3", "-c", TRY_ONE], capture_output=True,
                                        text=True, timeout=30, check=True).stdout)
            other = self.client.exec(neighbour, ["python3", "-c", TRY_ONE])
            self.assertExit(other, 0, other)
            other = parse(other["stdout"])
        finally:
            self.client.request("DELETE", "/v1/sandboxes/%s/processes/%s" % (hog, r["process_id"]))
        escaped = []
        # AIO events are one count of the whole host (fs.aio-max-nr), no
        # user's: a sandbox's io_setup answers ENOSYS (the profile), so
        # host root keeps it (one sandbox took all 65536 before).
        self.assertEqual(took["aio"], "0/%d" % errno.ENOSYS, took)
        for what in ("inotify", "mqueue", "signals", "aio"):
            for who, got in (("host root", root), ("another sandbox", other)):
                if what == "aio" and who != "host root":
                    continue
                how = "%s got %s after the sandbox took %s (count/errno)" % (
                    who, st.errname(int(got[what])) if got[what] != "0" else "it", took[what])
                if not st.report("sandbox exhausts %s's %s" % (who, what), got[what] == "0", how):
                    escaped.append(how)
        self.assertFalse(escaped, "ESCAPED: %s" % "; ".join(escaped))
        # The sandbox's own ceilings: 128 inotify instances, 4096 signals.
        self.assertLessEqual(int(took["inotify"].split("/")[0]), 128, took)
        self.assertLessEqual(int(took["signals"].split("/")[0]), 4096, took)


if __name__ == "__main__":
    st.main()
