#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""airlockd as a service: the listening socket passed by systemd (socket
activation, the sd_listen_fds protocol airlockd.socket uses) and the
configuration file (docs/operations.md).  The installed package is tested
in a fresh Debian root by tests/install."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import airlock_test as at


class ServiceTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        reason = at.prerequisites()
        if reason:
            raise unittest.SkipTest(reason)

    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="airlock-it-service-")
        os.chmod(self.work, 0o755)
        self.state = os.path.join(self.work, "state")
        self.log_path = os.path.join(self.work, "airlockd.log")
        self.procs = []
        self.sids = []
        self.addCleanup(self.cleanup)

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.assertEqual(at.leftovers(self.state, self.sids), [])
        shutil.rmtree(self.work, ignore_errors=True)

    def log(self):
        return at.read_text(self.log_path) or ""

    def spawn(self, args, listen_fds=None, pass_sock=None):
        """airlockd with args; with pass_sock, that socket as fd 3 and
        LISTEN_PID/LISTEN_FDS set as systemd sets them."""
        log = open(self.log_path, "ab")
        env = dict(os.environ)
        argv = [at.AIRLOCKD] + args
        kw = {}
        if pass_sock is not None:
            fd = pass_sock.fileno()
            # LISTEN_PID is airlockd's own pid: the shell's, which it execs.
            argv = ["/bin/sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=%d exec "$@"' % listen_fds,
                    "sh"] + argv
            kw = {"pass_fds": (3,), "preexec_fn": lambda: os.dup2(fd, 3)}
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                             **kw)
        log.close()
        self.procs.append(p)
        return p

    def wait_info(self, path, proc, timeout=30):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if proc.poll() is not None:
                self.fail("airlockd exited with %s:\n%s" % (proc.returncode, self.log()))
            if os.path.exists(path):
                c = at.Client(path, timeout=5)
                try:
                    r = c.request("GET", "/v1/info")
                    if r.status == 200:
                        return r.json
                except OSError:
                    pass
                finally:
                    c.close()
            time.sleep(0.05)
        self.fail("airlockd did not answer on %s:\n%s" % (path, self.log()))

    def listening(self, path):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.listen(16)
        self.addCleanup(s.close)
        return s

    def test_socket_passed_by_systemd(self):
        path = os.path.join(self.work, "activated.sock")
        sock = self.listening(path)
        p = self.spawn(["--state-dir", self.state, "--rootfs", at.ROOTFS,
                        "--socket", os.path.join(self.work, "ignored.sock")],
                       listen_fds=1, pass_sock=sock)
        sock.close()
        self.wait_info(path, p)
        self.assertIn("serving %s from systemd" % path, self.log())
        # --socket is not bound: the socket is the one passed.
        self.assertFalse(os.path.exists(os.path.join(self.work, "ignored.sock")))
        # A sandbox works through it.
        c = at.Client(path)
        self.addCleanup(c.close)
        sid = c.create()["id"]
        self.sids.append(sid)
        self.assertEqual(c.exec(sid, ["echo", "ok"])["stdout"], "ok\n")
        c.destroy(sid)
        # On stop the socket file stays: it is the socket unit's.
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(30), 0, self.log())
        self.assertTrue(os.path.exists(path))

    def test_more_than_one_passed_socket_is_refused(self):
        sock = self.listening(os.path.join(self.work, "a.sock"))
        p = self.spawn(["--state-dir", self.state, "--rootfs", at.ROOTFS],
                       listen_fds=2, pass_sock=sock)
        self.assertEqual(p.wait(30), 1, self.log())
        self.assertIn("systemd passed 2 sockets (LISTEN_FDS); airlockd takes exactly one",
                      self.log())

    def test_passed_fd_that_is_not_listening_is_refused(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        p = self.spawn(["--state-dir", self.state, "--rootfs", at.ROOTFS],
                       listen_fds=1, pass_sock=s)
        self.assertEqual(p.wait(30), 1, self.log())
        self.assertIn("the socket from systemd is not listening", self.log())

    def test_configuration_file_and_command_line_override(self):
        conf = os.path.join(self.work, "airlockd.conf")
        from_file = os.path.join(self.work, "from-file.sock")
        from_cmdline = os.path.join(self.work, "from-cmdline.sock")
        with open(conf, "w") as f:
            f.write("# test\nsocket = %s\nstate-dir=%s\nrootfs=%s\ndebug=false\n"
                    % (from_file, self.state, at.ROOTFS))
        p = self.spawn(["--config", conf])
        info = self.wait_info(from_file, p)
        self.assertEqual(info["default_rootfs"], at.ROOTFS)
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(30), 0, self.log())
        p = self.spawn(["--config", conf, "--socket", from_cmdline])
        self.wait_info(from_cmdline, p)
        self.assertFalse(os.path.exists(from_file))
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(30), 0, self.log())

    def test_bad_configuration_file_is_refused(self):
        conf = os.path.join(self.work, "airlockd.conf")
        with open(conf, "w") as f:
            f.write("state-dir=%s\nwarm_pool=2\n" % self.state)
        p = self.spawn(["--config", conf])
        self.assertEqual(p.wait(30), 2, self.log())
        self.assertIn("%s:2: unknown key 'warm_pool'" % conf, self.log())
        self.assertFalse(os.path.exists(self.state))
        p = self.spawn(["--config", os.path.join(self.work, "missing.conf")])
        self.assertEqual(p.wait(30), 2, self.log())
        self.assertIn("missing.conf: No such file or directory", self.log())


if __name__ == "__main__":
    at.main()
