#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Commands outlive an airlockd restart (an upgrade, a crash): their output
(what airlockd had read and the client had not taken included), their exit
status and their stdin are served again by the next airlockd under the same
process ids, and nothing of them is left behind in PID 1 afterwards."""

import os
import signal
import time

import airlock_test as at

LINES = 80

COUNTER = ('i=1; while [ $i -le %d ]; do echo "line $i"; echo "err $i" >&2; '
           'i=$((i+1)); sleep 0.05; done; exit 7' % LINES)


def held_fds(pid):
    """The pipes and output journals PID 1 (host pid) holds."""
    out = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except FileNotFoundError:
            continue
        if target.startswith("pipe:") or "airlock-output" in target:
            out.append(target)
    return out


def wait_no_held_fds(pid):
    deadline = time.monotonic() + 5
    while held_fds(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return held_fds(pid)


class ExecRestartTest(at.AirlockTestCase):
    def collect(self, sid, first, out, err, deadline_s=60):
        """Poll process first["process_id"] until it ends; out and err get
        every chunk.  Returns the final result."""
        out.append(first.get("stdout") or "")
        err.append(first.get("stderr") or "")
        res = first
        end = time.monotonic() + deadline_s
        while res.get("running"):
            self.assertLess(time.monotonic(), end, "still running: %r" % res)
            r = self.client.poll(sid, first["process_id"], 500)
            self.assertEqual(r.status, 200, r.body)
            res = r.json
            out.append(res.get("stdout") or "")
            err.append(res.get("stderr") or "")
        return res

    def check_restart(self, sig):
        sid = self.sandbox()["id"]
        init_pid = self.client.inspect(sid)["init_pid"]

        # A: prints numbered lines on both streams for about 2 s.
        a = self.client.exec(sid, command=COUNTER, yield_ms=300)
        self.assertTrue(a["running"], a)
        a_out, a_err = [], []
        a_out.append(a["stdout"])
        a_err.append(a["stderr"])
        # B: reads two lines of stdin.
        b = self.client.exec(sid, command='read x; echo "got:$x"; read y; echo "got:$y"; exit 3',
                             keep_stdin_open=True, yield_ms=50)
        self.assertTrue(b["running"], b)
        r = self.client.stdin(sid, b["process_id"], data="one\n")
        self.assertEqual(r.status, 200, r.body)
        b_out = r.json["stdout"]
        deadline = time.monotonic() + 5
        while b_out != "got:one\n" and time.monotonic() < deadline:
            b_out += self.client.poll(sid, b["process_id"], 100).json["stdout"]
        self.assertEqual(b_out, "got:one\n")
        # C: ends while airlockd is away.
        c = self.client.exec(sid, command="sleep 0.5; echo done-out; echo done-err >&2; exit 5",
                             yield_ms=50)
        self.assertTrue(c["running"], c)
        # D: writes more than its pipe holds while airlockd is away: it waits
        # for a reader instead of losing output or dying.
        big = 3 << 20
        d = self.client.exec(sid, command="sleep 0.3; head -c %d /dev/zero | tr '\\0' x" % big,
                             yield_ms=50, max_output_bytes=8 << 20)
        self.assertTrue(d["running"], d)
        # F: runs until signalled.
        f = self.client.exec(sid, command="sleep 60", yield_ms=10)
        self.assertTrue(f["running"], f)
        # Some of A's output is taken before the restart; some is read by
        # airlockd and not taken (it holds it when it goes).
        time.sleep(0.4)
        r = self.client.poll(sid, a["process_id"])
        a_out.append(r.json["stdout"])
        a_err.append(r.json["stderr"])
        time.sleep(0.3)
        self.client.close()
        # stdout and stderr of A, C, D and F, stdin and both of B, and a
        # journal for each stream.
        self.assertGreaterEqual(len(held_fds(init_pid)), 21, held_fds(init_pid))

        self.daemon.stop(sig)
        time.sleep(1.5)
        self.daemon.start()

        res = self.collect(sid, {"running": True, "process_id": a["process_id"]}, a_out, a_err)
        self.assertEqual(res["exit_code"], 7, res)
        self.assertEqual("".join(a_out), "".join("line %d\n" % i for i in range(1, LINES + 1)))
        self.assertEqual("".join(a_err), "".join("err %d\n" % i for i in range(1, LINES + 1)))

        r = self.client.stdin(sid, b["process_id"], data="two\n", close=True, yield_ms=3000)
        self.assertEqual(r.status, 200, r.body)
        b_out = []
        res = self.collect(sid, r.json, b_out, [])
        self.assertEqual((res["exit_code"], "".join(b_out)), (3, "got:two\n"), res)

        r = self.client.poll(sid, c["process_id"])
        self.assertEqual(r.status, 200, r.body)
        self.assertFalse(r.json["running"], r.json)
        self.assertEqual((r.json["exit_code"], r.json["stdout"], r.json["stderr"]),
                         (5, "done-out\n", "done-err\n"))

        d_out = []
        res = self.collect(sid, {"running": True, "process_id": d["process_id"]}, d_out, [])
        self.assertEqual(res["exit_code"], 0, res)
        self.assertFalse(res["stdout_truncated"], res)
        self.assertEqual("".join(d_out), "x" * big)

        r = self.client.request("DELETE", "/v1/sandboxes/%s/processes/%s?signal=TERM"
                                % (sid, f["process_id"]))
        self.assertEqual(r.status, 200, r.body)
        res = self.collect(sid, {"running": True, "process_id": f["process_id"]}, [], [])
        self.assertEqual((res["signal"], res["exit_code"]), (signal.SIGTERM, 128 + signal.SIGTERM))

        # Collected processes are forgotten, by airlockd and by PID 1.
        for p in (a, b, c, d, f):
            self.assertEqual(self.client.poll(sid, p["process_id"]).status, 404)
        self.assertEqual(wait_no_held_fds(init_pid), [], "PID 1 still holds fds of collected commands")

        # Ids given before the restart are not given again.
        e = self.client.exec(sid, command="sleep 0.3", yield_ms=10)
        old = [int(p["process_id"][1:]) for p in (a, b, c, d, f)]
        self.assertGreater(int(e["process_id"][1:]), max(old), e)
        res = self.collect(sid, e, [], [])
        self.assertEqual(res["exit_code"], 0)
        self.client.destroy(sid)
        self.assertEqual(at.leftovers(self.daemon.state_dir, [sid], daemon_running=True), [])

    def test_commands_survive_sigterm(self):
        self.check_restart(signal.SIGTERM)

    def test_commands_survive_sigkill(self):
        self.check_restart(signal.SIGKILL)

    def test_uncollected_result_survives_and_is_released(self):
        """A command that ended before the restart and was never collected is
        still served; a process without an id yet (its exec still waiting)
        is not kept by PID 1."""
        sid = self.sandbox()["id"]
        init_pid = self.client.inspect(sid)["init_pid"]
        c = self.client.exec(sid, command="sleep 0.2; echo bye; exit 4", yield_ms=10)
        self.assertTrue(c["running"])
        time.sleep(0.5)  # ended, output read by airlockd, not taken
        self.client.close()
        self.daemon.stop(signal.SIGTERM)
        self.daemon.start()
        r = self.client.poll(sid, c["process_id"])
        self.assertEqual((r.json["running"], r.json["exit_code"], r.json["stdout"]),
                         (False, 4, "bye\n"), r.json)
        self.assertEqual(wait_no_held_fds(init_pid), [])

    def test_terminal_command_keeps_its_id_and_status(self):
        """A tty command's terminal was airlockd's: it hangs up with it, and
        the next airlockd still answers for its id with that end."""
        sid = self.sandbox()["id"]
        t = self.client.exec(sid, argv=["sleep", "60"], tty=True, yield_ms=10)
        self.assertTrue(t["running"], t)
        self.client.close()
        self.daemon.stop(signal.SIGKILL)
        self.daemon.start()
        res = self.collect(sid, {"running": True, "process_id": t["process_id"]}, [], [])
        self.assertEqual(res["signal"], signal.SIGHUP, res)
        self.assertEqual(self.client.poll(sid, t["process_id"]).status, 404)

    def test_timeout_still_applies(self):
        sid = self.sandbox()["id"]
        t = self.client.exec(sid, command="sleep 60", timeout_ms=1500, yield_ms=10)
        self.assertTrue(t["running"], t)
        self.client.close()
        self.daemon.stop(signal.SIGTERM)
        self.daemon.start()
        res = self.collect(sid, {"running": True, "process_id": t["process_id"]}, [], [])
        self.assertTrue(res["timed_out"], res)
        self.assertEqual(res["signal"], signal.SIGKILL, res)


if __name__ == "__main__":
    at.main()
