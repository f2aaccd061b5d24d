#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Terminals: a command on a pseudo-terminal of the sandbox, over the
streamed exec (an HTTP upgrade on airlockd's socket) and the JSON API, and
`airlock exec -it` / `run -it` in a real terminal (tmux: keys in, screen
out) with the busybox and the Debian rootfs."""

import os
import re
import shutil
import socket
import subprocess
import time
import unittest

import airlock_test as at
import execstream as es

DEBIAN_ROOTFS = "/var/lib/airlock/rootfs/debian"


def airlockd_pty_masters(pid):
    """The pty masters airlockd holds (its fds on a ptmx)."""
    out = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)).endswith("ptmx"):
                out.append(fd)
        except OSError:
            pass
    return out


class StreamTest(at.AirlockTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.sid = cls.client.create()["id"]

    def stream(self, body, **kw):
        s = es.ExecStream(self.daemon.socket_path, self.sid, body, **kw)
        self.addCleanup(s.close)
        return s

    def tty_shell(self, rows=24, cols=80):
        s = self.stream({"argv": ["sh"], "tty": True, "rows": rows, "cols": cols})
        self.assertEqual(s.status, 101, s.error)
        self.assertEqual(s.headers.get("upgrade"), es.PROTOCOL)
        s.read_until("# ")  # the prompt
        return s

    def assertNoMasters(self):
        """airlockd keeps no pty once its sessions are over."""
        end = time.monotonic() + 10
        while airlockd_pty_masters(self.daemon.proc.pid) and time.monotonic() < end:
            time.sleep(0.1)
        self.assertEqual(airlockd_pty_masters(self.daemon.proc.pid), [])

    def test_shell_line_echo_resize_ctrl_c_and_exit_status(self):
        s = self.tty_shell(24, 80)
        s.stdin("tty; stty size; echo $((6*7))\n")
        out = s.read_until("42\r\n")
        # The terminal echoes the line (cooked mode), and ONLCR makes \r\n.
        self.assertIn("tty; stty size; echo $((6*7))\r\n", out)
        self.assertRegex(out, r"/dev/pts/\d+\r\n24 80\r\n42\r\n")
        s.resize(40, 132)
        s.stdin("stty size\n")
        self.assertIn("40 132\r\n", s.read_until("40 132\r\n"))
        # ^C is a byte: the line discipline turns it into SIGINT for the
        # foreground job (sleep); the shell lives on.
        s.stdin("sleep 100\n")
        s.read_until("sleep 100\r\n")
        time.sleep(0.3)
        t0 = time.monotonic()
        s.stdin(b"\x03")
        s.read_until("^C")
        s.stdin("echo alive-$?\n")
        self.assertIn("alive-130", s.read_until("alive-130"))
        self.assertLess(time.monotonic() - t0, 10)
        s.stdin("exit 3\n")
        result = s.wait_exit()
        self.assertEqual((result["exit_code"], result["signal"]), (3, None), result)
        with self.assertRaises(es.StreamClosed):
            s.frame()
        self.assertNoMasters()

    def test_ctrl_c_kills_the_session_leader_like_a_signal(self):
        s = self.stream({"argv": ["sleep", "100"], "tty": True})
        self.assertEqual(s.status, 101, s.error)
        time.sleep(0.3)
        s.stdin(b"\x03")
        result = s.wait_exit(20)
        self.assertEqual((result["exit_code"], result["signal"]), (130, 2), result)

    def test_resize_delivers_sigwinch(self):
        s = self.stream({"argv": ["sh", "-c", "trap 'echo winch $(stty size)' WINCH; echo ready; "
                                              "while :; do sleep 0.1; done"],
                         "tty": True, "rows": 10, "cols": 20})
        s.read_until("ready")
        s.resize(33, 77)
        s.read_until("winch 33 77")
        s.signal("TERM")
        result = s.wait_exit(20)
        self.assertEqual(result["signal"], 15, result)

    def test_signal_frame_and_output_before_exit(self):
        s = self.stream({"argv": ["sh", "-c", "trap 'echo got-int; exit 9' INT; echo ready; "
                                              "while :; do sleep 0.1; done"], "tty": True})
        s.read_until("ready")
        s.signal("INT")
        result = s.wait_exit(20)
        self.assertIn(b"got-int", s.output)
        self.assertEqual(result["exit_code"], 9, result)

    def test_pipes_stream_stdin_and_separate_stderr(self):
        s = self.stream({"argv": ["sh", "-c", "test -t 0 || echo not-a-tty >&2; "
                                              "while read l; do echo \"got $l\"; done; exit 4"]})
        self.assertEqual(s.status, 101, s.error)
        s.stdin("one\n")
        s.read_until("got one\n")
        s.stdin(b"two\nthree\n")
        s.read_until("got three\n")
        s.close_stdin()
        result = s.wait_exit()
        self.assertEqual(result["exit_code"], 4, result)
        self.assertEqual(s.output, b"got one\ngot two\ngot three\n")
        self.assertEqual(s.stderr, b"not-a-tty\n")

    def test_large_output_arrives_whole_and_in_order(self):
        # 8 MiB, far over the high-water marks: backpressure, never a drop.
        s = self.stream({"argv": ["sh", "-c", "i=0; while [ $i -lt 65536 ]; do "
                                              "printf '%0127d\\n' $i; i=$((i+1)); done"]})
        result = s.wait_exit(300)
        self.assertEqual(result["exit_code"], 0, result)
        self.assertFalse(result["stdout_truncated"])
        lines = s.output.split(b"\n")
        self.assertEqual(len(lines), 65537)
        self.assertEqual(lines[65535], b"%0127d" % 65535)

    def test_client_leaving_kills_the_command(self):
        s = es.ExecStream(self.daemon.socket_path, self.sid,
                          {"argv": ["sh", "-c", "echo $$ > /tmp/leader; exec sleep 1000"],
                           "tty": True})
        self.assertEqual(s.status, 101, s.error)
        end = time.monotonic() + 10
        while self.sh(self.sid, "cat /tmp/leader")["exit_code"] != 0:
            self.assertLess(time.monotonic(), end)
            time.sleep(0.1)
        s.close()
        end = time.monotonic() + 10
        while self.sh(self.sid, "kill -0 $(cat /tmp/leader)")["exit_code"] == 0:
            self.assertLess(time.monotonic(), end, "the command outlived its connection")
            time.sleep(0.1)
        self.assertNoMasters()

    def test_spawn_failure_is_an_exit_like_with_pipes(self):
        s = self.stream({"argv": ["/no/such/thing"], "tty": True})
        result = s.wait_exit()
        self.assertEqual(result["exit_code"], 127, result)
        self.assertIn(b"no/such/thing", s.stderr)

    def test_bad_requests_and_frames(self):
        s = self.stream({"argv": ["true"]}, upgrade="websocket")
        self.assertEqual(s.status, 400, s.error)
        self.assertIn(es.PROTOCOL, s.error["error"]["message"])
        s = self.stream({"argv": ["true"], "tty": "yes"})
        self.assertEqual(s.status, 400, s.error)
        s = self.stream({"argv": ["true"], "tty": True, "rows": 10})
        self.assertEqual(s.status, 400, s.error)
        s = self.stream({"argv": ["true"], "rows": 10, "cols": 10})
        self.assertEqual(s.status, 400, s.error)
        # A resize on pipes and an unknown signal are refused, the stream goes on.
        s = self.stream({"argv": ["sh", "-c", "read x; echo got $x"]})
        s.resize(10, 10)
        s.signal("STOP")
        s.send(es.RESIZE, b"\x00\x0a")
        s.stdin("y\n")
        result = s.wait_exit()
        self.assertEqual((result["exit_code"], s.output), (0, b"got y\n"))
        self.assertEqual([e["code"] for e in s.errors], ["invalid_argument"] * 3, s.errors)
        # An unknown frame type ends the stream, and the command with it.
        s = self.stream({"argv": ["sleep", "1000"], "tty": True})
        s.send(9, b"")
        with self.assertRaises(es.StreamClosed):
            while True:
                s.pump()
        self.assertEqual([e["code"] for e in s.errors], ["invalid_argument"])
        # Killed as the stream ends, which on a busy host takes a moment.
        deadline = time.monotonic() + 10
        while "sleep 1000" in self.out(self.sid, "ps -o args") and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertNotIn("sleep 1000", self.out(self.sid, "ps -o args"))

    def test_connection_outlives_the_http_idle_timeout(self):
        # airlockd closes idle HTTP connections after 60 s; an upgraded one
        # is the session's for as long as it lasts.
        s = self.tty_shell()
        time.sleep(65)
        s.stdin("echo still-here\n")
        s.read_until("still-here\r\n")
        s.stdin("exit\n")
        self.assertEqual(s.wait_exit()["exit_code"], 0)

    def test_snapshot_with_processes_refused_while_a_terminal_is_open(self):
        sid = self.sandbox()["id"]
        s = es.ExecStream(self.daemon.socket_path, sid, {"argv": ["sh"], "tty": True})
        self.addCleanup(s.close)
        s.read_until("# ")
        r = self.client.request("POST", "/v1/sandboxes/%s/snapshots" % sid, {"processes": True})
        self.assertEqual(r.status, 409, r)
        self.assertIn("1 terminal session(s) open", r.json["error"]["message"])
        r = self.client.request("POST", "/v1/sandboxes/%s/snapshots" % sid, {"processes": False})
        self.assertEqual(r.status, 201, r)
        self.client.request("DELETE", "/v1/snapshots/" + r.json["id"])
        s.stdin("exit\n")
        self.assertEqual(s.wait_exit()["exit_code"], 0)
        # The session over, the checkpoint is possible again.
        r = self.client.request("POST", "/v1/sandboxes/%s/snapshots" % sid, {"processes": True})
        self.assertEqual(r.status, 201, r)
        self.client.request("DELETE", "/v1/snapshots/" + r.json["id"])

    def test_json_exec_on_a_terminal(self):
        r = self.client.exec(self.sid, command="tty; stty size; test -t 0 && test -t 1 && "
                             "test -t 2 && echo all-tty; ls /dev/pts", tty=True, rows=30,
                             cols=100)
        self.assertExit(r, 0)
        self.assertRegex(r["stdout"], r"^/dev/pts/\d+\r\n30 100\r\nall-tty\r\n[0-9 ]*ptmx\r\n$")
        self.assertEqual(r["stderr"], "")
        # A running one: resized, fed, interrupted with a ^C byte, polled.
        r = self.client.exec(self.sid, argv=["sh"], tty=True, keep_stdin_open=True, yield_ms=300)
        self.assertTrue(r["running"], r)
        pid = r["process_id"]
        path = "/v1/sandboxes/%s/processes/%s/resize" % (self.sid, pid)
        self.assertEqual(self.client.request("POST", path, {"rows": 50, "cols": 60}).status, 200)
        self.assertEqual(self.client.request("POST", path, {"rows": 0, "cols": 60}).status, 400)
        self.assertEqual(self.client.request("POST", path, {}).status, 400)
        r = self.client.stdin(self.sid, pid, data="stty size; sleep 100\n", yield_ms=500).json
        self.assertIn("50 60", r["stdout"])
        r = self.client.stdin(self.sid, pid, data="\x03echo after-$?\n", yield_ms=500).json
        self.assertIn("after-130", r["stdout"])
        r = self.client.stdin(self.sid, pid, data="exit 5\n", yield_ms=5000).json
        self.assertExit(r, 5)
        # Resizing a process on pipes is refused.
        r = self.client.exec(self.sid, argv=["sleep", "5"], yield_ms=1)
        path = "/v1/sandboxes/%s/processes/%s/resize" % (self.sid, r["process_id"])
        r2 = self.client.request("POST", path, {"rows": 5, "cols": 5})
        self.assertEqual(r2.status, 400, r2)
        self.client.request("DELETE", "/v1/sandboxes/%s/processes/%s" % (self.sid, r["process_id"]))
        self.assertNoMasters()


class Tmux:
    """A tmux server of the test's own (its own socket), running a host shell."""

    count = 0

    def __init__(self, workdir, cols=100, rows=30):
        # A server of its own per test: a killed one may still be going.
        Tmux.count += 1
        self.name = "airlock-tty-%d-%d" % (os.getpid(), Tmux.count)
        self.env = dict(os.environ, TERM="xterm", PS1="host$ ", HOME=workdir)
        self.env.pop("TMUX", None)
        self.tmux(["new-session", "-d", "-s", "t", "-x", str(cols), "-y", str(rows), "sh"])
        # dash takes no PS1 from the environment.
        self.line("PS1='host''$ '; clear")

    def tmux(self, args):
        return subprocess.run(["tmux", "-L", self.name] + args, env=self.env, check=True,
                              capture_output=True, text=True).stdout

    def keys(self, *keys):
        self.tmux(["send-keys", "-t", "t"] + list(keys))

    def line(self, text):
        self.keys("-l", text)
        self.keys("Enter")

    def screen(self):
        return self.tmux(["capture-pane", "-p", "-t", "t", "-S", "-200"])

    def wait_for(self, pattern, timeout=30):
        end = time.monotonic() + timeout
        while True:
            screen = self.screen()
            m = re.search(pattern, screen, re.M)
            if m:
                return m
            if time.monotonic() > end:
                raise AssertionError("no %r on the screen within %ss:\n%s"
                                     % (pattern, timeout, screen))
            time.sleep(0.1)

    def resize(self, cols, rows):
        self.tmux(["resize-window", "-t", "t", "-x", str(cols), "-y", str(rows)])

    def kill(self):
        subprocess.run(["tmux", "-L", self.name, "kill-server"], env=self.env,
                       capture_output=True)
        # kill-server leaves its socket file behind.
        sock = os.path.join(self.env.get("TMUX_TMPDIR") or "/tmp", "tmux-%d" % os.getuid(),
                            self.name)
        if os.path.exists(sock):
            os.unlink(sock)


class TerminalCliBase:
    """`airlock exec -it` and `run -it` typed into a real terminal."""

    shell = "sh"

    def setUp(self):
        if not shutil.which("tmux"):
            self.fail("tmux is missing (scripts/setup.sh installs it)")
        self.tmux = Tmux(self.workdir)
        self.addCleanup(self.tmux.kill)
        self.tmux.wait_for(r"^host\$$")
        self.cli = "%s -s %s" % (at.AIRLOCK_CLI, self.daemon.socket_path)

    def host_line(self, text):
        """Type a line at the host shell and wait for its next prompt."""
        before = self.tmux.screen().count("host$")
        self.tmux.line(text)
        end = time.monotonic() + 30
        while self.tmux.screen().count("host$") <= before:
            self.assertLess(time.monotonic(), end, self.tmux.screen())
            time.sleep(0.1)

    def assertTerminalRestored(self):
        self.host_line("stty -a | tr ' ' '\\n' | grep -xE -- '-?(icanon|echo|isig)' | tr '\\n' ,"
                       "; echo")
        self.tmux.wait_for(r"icanon,isig,echo,|isig,icanon,echo,")

    def test_exec_it_shell(self):
        sid = self.sandbox()["id"]
        self.tmux.line("%s exec -it %s -- %s; echo rc=$?" % (self.cli, sid, self.shell))
        self.tmux.wait_for(r"^/workspace #$" if self.shell == "sh" else r"^root@\S+:/workspace#$")
        self.tmux.line("tty; stty size; echo $((6*7))")
        self.tmux.wait_for(r"/dev/pts/0\n30 100\n42\n")
        # SIGWINCH here: the sandbox's terminal follows.
        self.tmux.resize(120, 40)
        time.sleep(0.5)
        self.tmux.line("stty size")
        self.tmux.wait_for(r"stty size\n40 120\n")
        # Ctrl-C reaches the command in the sandbox, not the CLI.
        self.tmux.line("sleep 100")
        time.sleep(0.5)
        self.tmux.keys("C-c")
        self.tmux.line("echo after-$?")
        self.tmux.wait_for(r"\nafter-130\n")
        self.tmux.line("exit 7")
        self.tmux.wait_for(r"rc=7\n")
        self.assertTerminalRestored()

    def test_terminal_stdin_without_i_is_said(self):
        # Not silence (a shell that exits at once): a line says why; and
        # not an error, so that `exec ID ls` at a prompt just works.
        sid = self.sandbox()["id"]
        self.host_line("%s exec %s -- cat; echo rc=$?" % (self.cli, sid))
        self.tmux.wait_for(r"stdin is a terminal and is not passed to the command: "
                           r"use -it for an interactive session")
        self.tmux.wait_for(r"rc=0\n")
        # -i alone on a terminal streams it, over pipes, in cooked mode here.
        self.tmux.line("%s exec -i %s -- sh -c 'test -t 0 || echo pipes; head -n1'; echo rc=$?"
                       % (self.cli, sid))
        self.tmux.wait_for(r"pipes\n")
        self.tmux.line("typed-line")
        self.tmux.wait_for(r"typed-line\ntyped-line\nrc=0\n")
        self.assertTerminalRestored()


class TerminalCliBusybox(TerminalCliBase, at.AirlockTestCase):
    def test_run_it_removes_its_sandbox(self):
        before = self.client.list()
        self.tmux.line("%s run -it -- sh -c 'tty; read x; exit 3'; echo rc=$?" % self.cli)
        self.tmux.wait_for(r"/dev/pts/0\n")
        self.tmux.line("x")
        self.tmux.wait_for(r"rc=3\n")
        self.assertEqual(self.client.list(), before)
        self.assertTerminalRestored()

    def test_cli_killed_restores_nothing_left_running(self):
        # The CLI dies (SIGTERM from elsewhere): it sends TERM on, the
        # command ends, and the terminal is restored.
        sid = self.sandbox()["id"]
        self.tmux.line("%s exec -it %s -- sh -c 'echo $$ > /tmp/p; trap \"echo got-term; exit 1\""
                       " TERM; while :; do sleep 0.1; done'; echo rc=$?" % (self.cli, sid))
        end = time.monotonic() + 20
        while self.sh(sid, "cat /tmp/p")["exit_code"] != 0:
            self.assertLess(time.monotonic(), end)
            time.sleep(0.1)
        cli_pids = subprocess.run(["pgrep", "-f", "exec -it %s" % sid], capture_output=True,
                                  text=True).stdout.split()
        self.assertEqual(len(cli_pids), 1, cli_pids)
        os.kill(int(cli_pids[0]), 15)
        self.tmux.wait_for(r"got-term\s+rc=1\n")
        self.assertTerminalRestored()


@unittest.skipUnless(os.path.isdir(DEBIAN_ROOTFS), "no Debian rootfs")
class TerminalCliDebian(TerminalCliBase, at.AirlockTestCase):
    rootfs = DEBIAN_ROOTFS
    shell = "bash"

    def test_run_it_python(self):
        before = self.client.list()
        self.tmux.line("%s run -it -- python3; echo rc=$?" % self.cli)
        self.tmux.wait_for(r"^>>>$")
        self.tmux.line("print(6*7)")
        self.tmux.wait_for(r"\n42\n>>>$")
        self.tmux.line("import sys; sys.exit(5)")
        self.tmux.wait_for(r"rc=5\n")
        self.assertEqual(self.client.list(), before)
        self.assertTerminalRestored()


if __name__ == "__main__":
    at.main()
