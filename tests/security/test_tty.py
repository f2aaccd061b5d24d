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

STEAL = r"""
import errno, fcntl, json, os, struct, termios
def stat_of(pid):
    f = open('/proc/%s/stat' % pid).read().rsplit(')', 1)[1].split()
    return int(f[3]), int(f[4])  # session, tty_nr
victim = None
for p in os.listdir('/proc'):
    try:
        if p.isdigit() and open('/proc/%s/cmdline' % p, 'rb').read().split(b'\0')[:2] == \
                [b'sleep', b'61']:
            victim = p
    except OSError:
        pass
out = {"victim_pts": os.readlink('/proc/%s/fd/0' % victim)}
out["victim_sid"], out["victim_tty_nr"] = stat_of(victim)
def errname(e):
    return errno.errorcode[e.errno]
try:
    fcntl.ioctl(0, termios.TIOCSETD, struct.pack('i', 21))  # N_GSM0710
    out["setd_gsm"] = "ok"
    fcntl.ioctl(0, termios.TIOCSETD, struct.pack('i', 0))
except OSError as e:
    out["setd_gsm"] = errname(e)
r, w = os.pipe()
child = os.fork()
if child == 0:
    os.close(r)
    os.setsid()
    res = {"thief_sid": os.getsid(0)}
    fd = os.open(out["victim_pts"], os.O_RDWR | os.O_NOCTTY)
    for force in (0, 1):
        try:
            fcntl.ioctl(fd, termios.TIOCSCTTY, force)
            res["sctty_%d" % force] = "ok"
        except OSError as e:
            res["sctty_%d" % force] = errname(e)
    # Had it become ours: our tty_nr, and TIOCGSID answers (ENOTTY unless
    # it is the caller's controlling terminal).
    res["thief_tty_nr"] = stat_of('self')[1]
    try:
        res["gsid"] = struct.unpack('i', fcntl.ioctl(fd, 0x5429, b'\0' * 4))[0]
    except OSError as e:
        res["gsid"] = errname(e)
    # The control: a pty no session holds becomes ours, and shows as such.
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    res["control_tty_nr"] = stat_of('self')[1]
    res["control_gsid"] = struct.unpack('i', fcntl.ioctl(slave, 0x5429, b'\0' * 4))[0]
    os.write(w, json.dumps(res).encode())
    os._exit(0)
os.close(w)
out.update(json.loads(os.read(r, 4096)))
os.waitpid(child, 0)
out["victim_tty_nr_after"] = stat_of(victim)[1]
print(json.dumps(out))
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


    def test_steal_another_sessions_terminal(self):
        # A session leader without a terminal takes another session's pty as
        # its controlling terminal with TIOCSCTTY: refused while that session
        # holds it, and the forced steal (arg 1) needs CAP_SYS_ADMIN of the
        # host's user namespace.  A steal would hang up the victim's session
        # (its tty_nr in /proc/PID/stat becomes 0) and hand the terminal's
        # job control and signals to the attacker.  Also TIOCSETD to
        # N_GSM0710, a line discipline that wants CAP_NET_ADMIN.
        sid = self.sandbox()["id"]
        victim = self.client.exec(sid, argv=["sleep", "61"], tty=True, keep_stdin_open=True,
                                  yield_ms=200)
        self.assertTrue(victim["running"], victim)
        r = self.py(sid, STEAL, tty=True)
        self.assertExit(r, 0, r)
        res = json.loads(r["stdout"].strip().splitlines()[-1])
        self.assertTrue(res["victim_tty_nr"] and res["victim_pts"].startswith("/dev/pts/"), res)
        for force in ("0", "1"):
            self.attack_ok("TIOCSCTTY(%s) on another session's %s" % (force, res["victim_pts"]),
                           res["sctty_" + force] in DENIED, res["sctty_" + force])
        # What a terminal taken looks like, so that the check below can fail.
        self.assertTrue(res["control_tty_nr"] and res["control_gsid"] == res["thief_sid"], res)
        self.attack_ok("another session's terminal stays its own",
                       res["thief_tty_nr"] == 0 and res["gsid"] == "ENOTTY" and
                       res["victim_tty_nr_after"] == res["victim_tty_nr"], repr(res))
        self.attack_ok("TIOCSETD N_GSM0710 on its own pty", res["setd_gsm"] != "ok",
                       res["setd_gsm"])
        # The victim's session lives on, on its terminal: it still takes input.
        p = self.client.poll(sid, victim["process_id"])
        self.assertEqual(p.status, 200, p)
        self.assertTrue(p.json["running"], p.json)
        self.client.request("DELETE", "/v1/sandboxes/%s/processes/%s"
                            % (sid, victim["process_id"]))

if __name__ == "__main__":
    st.main()
