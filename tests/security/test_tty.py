#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Terminals (docs/security.md, "Terminals"): a command on a pty runs on
one of the sandbox's own devpts, never on the host's terminal, even when
`airlock exec -it` is typed into one; the terminal ioctls that reach past
the pty (typing into it, the console, hangups) stay denied; PID 1 keeps no
end of the pty."""

import json
import os
import time

import security_test as st
from test_tty import Tmux  # the integration test's tmux driver

PROBE = r"""
import ctypes, errno, fcntl, json, os, sys, termios
out = {"fds": {}}
for fd in sorted(os.listdir('/proc/self/fd'), key=int):
    try:
        s = os.fstat(int(fd))
        out["fds"][fd] = [s.st_dev, os.readlink('/proc/self/fd/' + fd)]
    except OSError:
        pass
out["pts_dev"] = os.stat('/dev/pts/ptmx').st_dev
out["ctty_pgrp_is_ours"] = os.tcgetpgrp(0) == os.getpgrp()
def attempt(name, fd, req, arg):
    try:
        fcntl.ioctl(fd, req, arg)
        out[name] = "ok"
    except OSError as e:
        out[name] = errno.errorcode[e.errno]
tty = os.open('/dev/tty', os.O_RDWR)
attempt("TIOCSTI on stdin", 0, termios.TIOCSTI, b"x")
attempt("TIOCSTI on /dev/tty", tty, termios.TIOCSTI, b"x")
attempt("TIOCLINUX on stdin", 0, 0x541C, bytes([6]))
attempt("TIOCCONS on stdin", 0, termios.TIOCCONS, 0)
libc = ctypes.CDLL(None, use_errno=True)
out["vhangup"] = "ok" if libc.vhangup() == 0 else errno.errorcode[ctypes.get_errno()]
open('/workspace/probe.json', 'w').write(json.dumps(out))
print("probe-done")
"""

DENIED = ("EPERM", "EACCES", "EINVAL", "ENOTTY", "EIO")


class TerminalAttacks(st.SecurityTestCase):
    def test_exec_it_from_a_host_terminal(self):
        sid = self.sandbox()["id"]
        r = self.client.write_file(sid, "/workspace/probe.py", PROBE.encode())
        self.assertEqual(r.status, 200, r)
        host_pts = os.stat("/dev/pts/ptmx").st_dev
        tmux = Tmux(self.workdir)
        self.addCleanup(tmux.kill)
        tmux.wait_for(r"^host\$$")
        # The CLI runs on the tmux pane: a terminal of the host's devpts.
        tmux.line("%s -s %s exec -it %s -- python3 /workspace/probe.py; echo rc=$?"
                  % (st.at.AIRLOCK_CLI, self.daemon.socket_path, sid))
        tmux.wait_for(r"probe-done\s+rc=0\n")
        res = json.loads(self.client.read_file(sid, "/workspace/probe.json").body)
        for fd in ("0", "1", "2"):
            dev, target = res["fds"][fd]
            self.attack_ok("fd %s is the sandbox's pty" % fd,
                           dev == res["pts_dev"] and dev != host_pts and
                           target.startswith("/dev/pts/"), "%s on dev %d" % (target, dev))
        on_host = {fd: t for fd, (dev, t) in res["fds"].items() if dev == host_pts}
        self.attack_ok("no fd on the host's devpts", not on_host, repr(on_host))
        self.assertTrue(res["ctty_pgrp_is_ours"], res)
        for what in ("TIOCSTI on stdin", "TIOCSTI on /dev/tty", "TIOCLINUX on stdin",
                     "TIOCCONS on stdin", "vhangup"):
            self.attack_ok(what, res[what] in DENIED, res[what])
        self.assertTrue(self.wait_denial(sid, "ioctl"), "TIOCSTI left no seccomp event")
        # Nothing typed into the host's terminal: its next line is ours alone.
        tmux.line("echo clean-$((1+1))")
        tmux.wait_for(r"^host\$ echo clean-\$\(\(1\+1\)\)\nclean-2$")

    def test_pty_comes_from_the_sandbox_devpts_and_pid1_keeps_none(self):
        sb = self.sandbox()
        sid = sb["id"]
        r = self.client.exec(sid, argv=["sleep", "60"], tty=True, keep_stdin_open=True,
                             yield_ms=200)
        self.assertTrue(r["running"], r)
        pid1 = self.client.inspect(sid)["init_pid"]
        host_pts = os.stat("/dev/pts/ptmx").st_dev
        # airlockd holds the master: a ptmx of another devpts than the host's.
        masters = []
        for fd in os.listdir("/proc/%d/fd" % self.daemon.proc.pid):
            path = "/proc/%d/fd/%s" % (self.daemon.proc.pid, fd)
            try:
                if os.readlink(path).endswith("ptmx"):
                    masters.append(os.stat(path).st_dev)
            except OSError:
                pass
        self.assertTrue(masters, "airlockd holds no pty master for a running tty exec")
        self.attack_ok("pty master of the sandbox's devpts",
                       all(dev != host_pts for dev in masters), repr(masters))
        held = []
        for fd in os.listdir("/proc/%d/fd" % pid1):
            target = os.readlink("/proc/%d/fd/%s" % (pid1, fd))
            if "pts" in target or "ptmx" in target:
                held.append(target)
        self.attack_ok("PID 1 keeps no end of the pty", not held, repr(held))
        self.client.request("DELETE", "/v1/sandboxes/%s/processes/%s" % (sid, r["process_id"]))
        end = time.monotonic() + 10
        while time.monotonic() < end:
            if not [fd for fd in os.listdir("/proc/%d/fd" % self.daemon.proc.pid)
                    if os.readlink("/proc/%d/fd/%s" % (self.daemon.proc.pid, fd))
                    .endswith("ptmx")]:
                break
            time.sleep(0.1)
        else:
            self.fail("airlockd kept the pty master after the process was killed")

    def test_slave_of_another_session_is_the_sandboxes_own(self):
        # Two sessions: from one, the other's pty is reachable only as a
        # node of the sandbox's devpts, and typing into it stays denied.
        sid = self.sandbox()["id"]
        a = self.client.exec(sid, argv=["sleep", "60"], tty=True, keep_stdin_open=True,
                             yield_ms=200)
        self.assertTrue(a["running"], a)
        r = self.py(sid, "import errno, fcntl, glob, os, termios\n"
                         "for p in sorted(glob.glob('/dev/pts/[0-9]*')):\n"
                         "    fd = os.open(p, os.O_RDWR | os.O_NOCTTY)\n"
                         "    try: fcntl.ioctl(fd, termios.TIOCSTI, b'x'); print(p, 'ok')\n"
                         "    except OSError as e: print(p, errno.errorcode[e.errno])\n", tty=True)
        lines = [line.split() for line in r["stdout"].splitlines() if line.strip()]
        self.assertTrue(lines, r)
        for path, how in lines:
            self.attack_ok("TIOCSTI on " + path, how in DENIED, how)
        self.client.request("DELETE", "/v1/sandboxes/%s/processes/%s" % (sid, a["process_id"]))


if __name__ == "__main__":
    st.main()
