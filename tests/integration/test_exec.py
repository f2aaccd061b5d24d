#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Exec: argv and shell strings, separate streams, exit codes, timeouts,
yield and polling, stdin to a running process, output caps, cwd and env."""

import json
import socket
import time

import airlock_test as at


class ExecTest(at.AirlockTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.sb = cls.client.create(env={"SANDBOX_DEFAULT": "from-create", "OVERRIDE": "create"})
        cls.sid = cls.sb["id"]

    def one_shot(self, **fields):
        r = self.client.request("POST", "/v1/sandboxes?view=summary", fields)
        if r.status == 201:
            self.addCleanup(self._destroy_quietly, r.json["id"])
        return r

    def test_create_with_exec_runs_the_command_and_removes_the_sandbox(self):
        """One request for `airlock run`: create, exec, and with "remove" the
        sandbox goes with a command that ended within its yield."""
        before = {s["id"] for s in self.client.list()}
        r = self.one_shot(exec={"command": "echo hi; echo err >&2; exit 3"}, remove=True)
        self.assertEqual(r.status, 201, r)
        self.assertEqual((r.json["exec"]["exit_code"], r.json["exec"]["stdout"],
                          r.json["exec"]["stderr"]), (3, "hi\n", "err\n"))
        self.assertTrue(r.json["removed"])
        self.assertEqual(r.json["state"], "removed")
        self.assertEqual({s["id"] for s in self.client.list()}, before)
        self.assertEqual(self.client.request("GET", "/v1/sandboxes/" + r.json["id"]).status, 404)

    def test_create_with_exec_keeps_the_sandbox_without_remove(self):
        r = self.one_shot(exec={"argv": ["sh", "-c", "echo $X"], "env": {"X": "y"}})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["exec"]["stdout"], "y\n")
        self.assertFalse(r.json["removed"])
        self.assertEqual(self.out(r.json["id"], "echo still"), "still\n")

    def test_create_with_exec_of_a_running_command_leaves_it_to_the_client(self):
        r = self.one_shot(exec={"command": "sleep 30", "yield_ms": 50}, remove=True)
        self.assertEqual(r.status, 201, r)
        self.assertTrue(r.json["exec"]["running"])
        self.assertFalse(r.json["removed"])
        sid, pid = r.json["id"], r.json["exec"]["process_id"]
        self.assertIn(sid, [s["id"] for s in self.client.list()])
        self.client.request("DELETE", "/v1/sandboxes/%s/processes/%s" % (sid, pid))
        self.client.destroy(sid)

    def test_create_with_a_bad_exec_leaves_no_sandbox(self):
        before = {s["id"] for s in self.client.list()}
        for fields, status in (({"exec": {"argv": []}, "remove": True}, 400),
                               ({"exec": "echo"}, 400),
                               ({"remove": True}, 400),
                               ({"exec": {"command": "true"}, "remove": "yes"}, 400)):
            r = self.one_shot(**fields)
            self.assertEqual(r.status, status, (fields, r))
        # The sandbox made for the empty argv was removed again (the reaper
        # may still be at it: it is gone from the list at once).
        self.assertEqual({s["id"] for s in self.client.list()}, before)

    def test_argv_is_passed_verbatim(self):
        r = self.client.exec(self.sid, ["printf", "%s|", "a b", "$HOME", "'q'", "*", ""])
        self.assertExit(r, 0)
        self.assertEqual(r["stdout"], "a b|$HOME|'q'|*||")
        self.assertEqual(r["stderr"], "")

    def test_shell_string(self):
        r = self.client.exec(self.sid, command="echo one | tr a-z A-Z; echo $((6 * 7))")
        self.assertExit(r, 0)
        self.assertEqual(r["stdout"], "ONE\n42\n")

    def test_stdout_and_stderr_are_separate(self):
        r = self.client.exec(self.sid, command="echo out; echo err >&2; echo out2")
        self.assertExit(r, 0)
        self.assertEqual(r["stdout"], "out\nout2\n")
        self.assertEqual(r["stderr"], "err\n")
        self.assertIn("duration_ms", r)
        self.assertFalse(r["timed_out"])

    def test_exit_codes(self):
        for code in (0, 1, 2, 42, 126, 255):
            with self.subTest(code=code):
                self.assertExit(self.client.exec(self.sid, command="exit %d" % code), code)
        self.assertExit(self.client.exec(self.sid, ["false"]), 1)

    def test_death_by_signal(self):
        r = self.client.exec(self.sid, ["sh", "-c", "kill -KILL $$"])
        self.assertFalse(r["running"])
        self.assertTrue(at.killed_by(r, 9), r)

    def test_command_not_found_is_127(self):
        r = self.client.exec(self.sid, ["no-such-command-xyz"])
        self.assertExit(r, 127)
        self.assertNotEqual(r["stderr"], "")
        r = self.client.exec(self.sid, ["/no/such/dir/cmd"])
        self.assertExit(r, 127)

    def test_long_spawn_errors_are_reported_whole_and_only_them(self):
        # PID 1's answer to a failed spawn names the cwd or argv[0], which
        # the client chose: copied with snprintf's untruncated length from a
        # 1,200-byte buffer, it sent airlockd's stack after it (ASan: abort).
        long_name = "/no-such-" + "x" * 4000
        for fields in ({"argv": [long_name]}, {"argv": ["true"], "cwd": long_name}):
            r = self.client.exec(self.sid, **fields)
            self.assertIn(r["exit_code"], (126, 127), r)
            err = r["stderr"]
            self.assertTrue(err.startswith("airlock: "), err[:80])
            self.assertTrue(err.endswith("\n"))
            # Only the message: airlock: ..., the name, why, a newline.
            self.assertLess(len(err), len(long_name) + 200, err[-200:])
            self.assertNotIn("\ufffd", err)

    def test_not_executable_is_126(self):
        put = self.client.write_file(self.sid, "/workspace/notexec.sh", b"#!/bin/sh\necho hi\n",
                                     mode="0644")
        self.assertEqual(put.status, 200, put)
        self.assertExit(self.client.exec(self.sid, ["/workspace/notexec.sh"]), 126)

    def test_cwd(self):
        self.assertEqual(self.out(self.sid, "pwd"), "/workspace\n")
        self.assertEqual(self.client.exec(self.sid, ["pwd"], cwd="/tmp")["stdout"], "/tmp\n")
        self.assertEqual(self.client.exec(self.sid, ["pwd"], cwd="/")["stdout"], "/\n")

    def test_env(self):
        r = self.client.exec(self.sid, command='echo "$FOO|$SANDBOX_DEFAULT|$OVERRIDE"',
                             env={"FOO": "bar baz", "OVERRIDE": "exec"})
        self.assertExit(r, 0)
        self.assertEqual(r["stdout"], "bar baz|from-create|exec\n")
        # Nothing of the daemon's or the harness's environment leaks in.
        env = self.out(self.sid, "env")
        self.assertNotIn("AIRLOCK_BUILD_DIR", env)
        self.assertNotIn("INVOCATION_ID", env)

    def test_timeout_kills_the_process_group(self):
        start = time.monotonic()
        r = self.client.exec(self.sid, command="sleep 101 & sleep 102; echo never",
                             timeout_ms=500)
        self.assertLess(time.monotonic() - start, 15)
        self.assertFalse(r["running"])
        self.assertTrue(r["timed_out"], r)
        self.assertNotIn("never", r["stdout"])
        time.sleep(0.5)
        ps = self.out(self.sid, "ps -o pid,args")
        self.assertNotIn("sleep 101", ps)
        self.assertNotIn("sleep 102", ps)

    def test_finished_before_timeout_is_not_timed_out(self):
        r = self.client.exec(self.sid, ["true"], timeout_ms=10000)
        self.assertExit(r, 0)
        self.assertFalse(r["timed_out"])

    def test_yield_returns_a_running_process_and_polling_collects(self):
        r = self.client.exec(self.sid, command="echo start; sleep 2; echo end; echo e >&2; exit 4",
                             yield_ms=500)
        self.assertTrue(r["running"], r)
        pid = r["process_id"]
        self.assertTrue(pid)
        self.assertEqual(r["stdout"], "start\n")
        final, out, err = self.client.wait_process(self.sid, r)
        self.assertEqual(final["exit_code"], 4)
        self.assertEqual(out, "start\nend\n")
        self.assertEqual(err, "e\n")
        # The finished result was returned, so the process is forgotten.
        self.assertEqual(self.client.poll(self.sid, pid).status, 404)

    def test_poll_without_wait_returns_at_once(self):
        r = self.client.exec(self.sid, ["sleep", "3"], yield_ms=100)
        self.assertTrue(r["running"])
        start = time.monotonic()
        p = self.client.poll(self.sid, r["process_id"], 0)
        self.assertEqual(p.status, 200)
        self.assertTrue(p.json["running"])
        self.assertLess(time.monotonic() - start, 1.5)
        final, _, _ = self.client.wait_process(self.sid, r)
        self.assertEqual(final["exit_code"], 0)

    def test_stdin_to_a_running_cat(self):
        r = self.client.exec(self.sid, ["cat"], keep_stdin_open=True, yield_ms=200)
        self.assertTrue(r["running"], r)
        pid = r["process_id"]
        out = [r["stdout"]]
        s = self.client.stdin(self.sid, pid, data="hello\n", yield_ms=1000)
        self.assertEqual(s.status, 200, s)
        out.append(s.json["stdout"])
        self.assertTrue(s.json["running"])
        s = self.client.stdin(self.sid, pid, data_base64=at.b64(b"bye\x01"), close=True,
                              yield_ms=2000)
        self.assertEqual(s.status, 200, s)
        final, rest, _ = self.client.wait_process(self.sid, s.json)
        out.append(rest)
        self.assertEqual(final["exit_code"], 0)
        self.assertEqual("".join(out), "hello\nbye\x01")

    def test_stdin_without_data_polls_a_killed_process(self):
        # The Agents SDK polls with an empty write_stdin: after a kill it got
        # 503 ("stdin of the process is closed") instead of the exit.
        r = self.client.exec(self.sid, ["cat"], keep_stdin_open=True, yield_ms=100)
        self.assertTrue(r["running"], r)
        pid = r["process_id"]
        self.client.expect(200, "DELETE", "/v1/sandboxes/%s/processes/%s?signal=KILL"
                           % (self.sid, pid))
        # Dead and its stdin closed before the poll comes (nothing collects it meanwhile).
        time.sleep(1)
        s = self.client.stdin(self.sid, pid, yield_ms=2000)
        self.assertEqual(s.status, 200, s)
        self.assertEqual((s.json["running"], s.json["signal"]), (False, 9), s.json)

    def test_stdin_to_a_shell_read(self):
        r = self.client.exec(self.sid, command='read a; read b; echo "got:$a,$b"',
                             keep_stdin_open=True, yield_ms=200)
        self.assertTrue(r["running"], r)
        s = self.client.stdin(self.sid, r["process_id"], data="one\n", yield_ms=200)
        self.assertEqual(s.status, 200, s)
        self.assertTrue(s.json["running"], "read returned before the second line: %r" % s.json)
        s = self.client.stdin(self.sid, r["process_id"], data="two\n", yield_ms=2000)
        final, out, _ = self.client.wait_process(self.sid, s.json)
        self.assertEqual(final["exit_code"], 0)
        self.assertEqual(out, "got:one,two\n")

    def test_inline_stdin(self):
        r = self.client.exec(self.sid, ["cat"], stdin="abc\n")
        self.assertExit(r, 0)
        self.assertEqual(r["stdout"], "abc\n")
        data = bytes(range(256)) * 4
        r = self.client.exec(self.sid, ["cat"], stdin_base64=at.b64(data), encoding="base64")
        self.assertExit(r, 0)
        self.assertEqual(at.unb64(r["stdout"]), data)

    def test_without_stdin_reads_eof(self):
        r = self.client.exec(self.sid, ["cat"], timeout_ms=10000)
        self.assertExit(r, 0)
        self.assertFalse(r["timed_out"])
        self.assertEqual(r["stdout"], "")

    def test_invalid_utf8_is_replaced(self):
        r = self.client.exec(self.sid, ["printf", "a\\377b"])
        self.assertExit(r, 0)
        self.assertEqual(r["stdout"], "a\ufffdb")
        r = self.client.exec(self.sid, ["printf", "a\\377b"], encoding="base64")
        self.assertEqual(at.unb64(r["stdout"]), b"a\xffb")

    def test_output_cap_sets_truncated(self):
        r = self.client.exec(self.sid, command="head -c 100000 /dev/zero | tr '\\000' a; echo err >&2",
                             max_output_bytes=1000)
        self.assertExit(r, 0)
        self.assertTrue(r["stdout_truncated"])
        self.assertFalse(r["stderr_truncated"])
        self.assertLessEqual(len(r["stdout"]), 1000)
        self.assertGreater(len(r["stdout"]), 0)
        self.assertEqual(set(r["stdout"]), {"a"})
        self.assertEqual(r["stderr"], "err\n")

    def test_output_nobody_collects_is_bounded_per_sandbox(self):
        # Background commands whose output nobody fetches: airlockd keeps at
        # most SANDBOX_OUTPUT_MAX (128 MiB) of it per sandbox, the rest is
        # dropped and the streams say so (4,000 such execs once held 7.8 GB).
        sid = self.client.create()["id"]
        started = []
        for _ in range(3):
            r = self.client.exec(sid, command="head -c 67108864 /dev/zero; "
                                 "head -c 67108864 /dev/zero >&2; sleep 1000",
                                 max_output_bytes=64 << 20, yield_ms=1)
            started.append(r["process_id"])
        # Until the heads are done (no more output comes).
        rss_peak, last, still = 0, -1, 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and still < 5:
            rss_peak = max(rss_peak, at.rss_kib(self.daemon.proc.pid))
            held_now = self.client.info()["output"]["held_bytes"]
            # 128 MiB, and 64 KiB each stream may hold beyond it.
            self.assertLessEqual(held_now, (128 << 20) + 8 * (64 << 10))
            still = still + 1 if held_now == last else 0
            last = held_now
            time.sleep(0.2)
        answers = self.out(sid, "echo alive")  # the sandbox still answers
        # The heads are done (a stable held_bytes above does not prove it on
        # a loaded host): else a poll below frees budget that they fill again.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and \
                self.out(sid, "ps -o comm | grep -c '^head$' || true").strip() != "0":
            time.sleep(0.2)
        held, truncated = 0, False
        for pid in started:
            r = self.client.poll(sid, pid).json
            held += len(r["stdout"]) + len(r["stderr"])
            truncated = truncated or r["stdout_truncated"] or r["stderr_truncated"]
        self.assertLessEqual(held, (128 << 20) + 8 * (64 << 10))
        self.assertGreater(held, 0)
        self.assertTrue(truncated, "output past the budget was dropped without a marker")
        bound = (400 << 10) + (at.ASAN_QUARANTINE_KIB if at.sanitized(self.daemon.proc.pid) else 0)
        self.assertLess(rss_peak, bound, "airlockd grew to %d KiB" % rss_peak)
        self.assertEqual(answers, "alive\n")
        self.client.destroy(sid)

    def test_processes_kept_for_clients_are_bounded(self):
        sid = self.client.create()["id"]
        for i in range(256):
            r = self.client.exec(sid, ["sleep", "1000"], yield_ms=1)
            self.assertTrue(r["running"], (i, r))
        r = self.client.exec_raw(sid, argv=["sleep", "1000"], yield_ms=1)
        self.assertEqual(r.status, 429, r)
        self.assertIn("256 processes", r.json["error"]["message"])
        # A command that ends within its wait is not kept, so it still runs.
        self.assertEqual(self.out(sid, "echo fine"), "fine\n")
        self.client.destroy(sid)

    def test_backpressure_keeps_every_byte(self):
        """With backpressure nothing is dropped past max_output_bytes: the
        command waits for the client, each answer carries at most the bound
        and comes as soon as a stream holds it (not after the whole yield)."""
        import base64
        import hashlib
        script = ("head -c 5242880 /dev/urandom > /tmp/bp; head -c 3145728 /dev/urandom > /tmp/bp2; "
                  "cat /tmp/bp; cat /tmp/bp2 >&2; sha256sum /tmp/bp /tmp/bp2 > /tmp/bp.sum")
        r = self.client.exec(self.sid, command=script, backpressure=True, encoding="base64",
                             max_output_bytes=1 << 20, yield_ms=10000)
        out, err, answers = [], [], 0
        while True:
            answers += 1
            o, e = base64.b64decode(r["stdout"]), base64.b64decode(r["stderr"])
            self.assertLessEqual(len(o), 1 << 20)
            self.assertLessEqual(len(e), 1 << 20)
            self.assertFalse(r["stdout_truncated"] or r["stderr_truncated"], r.keys())
            out.append(o)
            err.append(e)
            if not r["running"]:
                break
            t = time.monotonic()
            p = self.client.request("GET", "/v1/sandboxes/%s/processes/%s?yield_ms=10000&encoding=base64"
                                    % (self.sid, r["process_id"]))
            self.assertEqual(p.status, 200, p)
            r = p.json
            if r["running"]:
                self.assertLess(time.monotonic() - t, 8, "a full stream waited out the yield")
        self.assertExit(r, 0)
        self.assertGreaterEqual(answers, 5)
        sums = self.out(self.sid, "cat /tmp/bp.sum; rm /tmp/bp /tmp/bp2 /tmp/bp.sum").split()
        self.assertEqual(hashlib.sha256(b"".join(out)).hexdigest(), sums[0])
        self.assertEqual(hashlib.sha256(b"".join(err)).hexdigest(), sums[2])
        # Bytes only: text output is cut to JSON text, which backpressure cannot promise.
        bad = self.client.exec_raw(self.sid, command="true", backpressure=True)
        self.assertEqual(bad.status, 400, bad)
        self.assertIn("base64", bad.json["error"]["message"])
        # A stream that may hold nothing would never be read.
        bad = self.client.exec_raw(self.sid, command="true", backpressure=True,
                                   encoding="base64", max_output_bytes=0)
        self.assertEqual(bad.status, 400, bad)
        self.assertIn("65536", bad.json["error"]["message"])

    def test_backpressure_waits_end_when_the_budget_is_spent(self):
        """Three commands of 60 MiB in one sandbox (128 MiB of output budget):
        none reaches its max_output before the budget is spent, yet each
        waiting client is answered and every byte arrives."""
        import base64
        import threading
        sid = self.client.create()["id"]
        self.addCleanup(self._destroy_quietly, sid)
        got, errors = {}, []

        def run(i):
            try:
                c = at.Client(self.daemon.socket_path)
                r = c.exec(sid, command="head -c 62914560 /dev/zero", backpressure=True,
                           encoding="base64", max_output_bytes=64 << 20, yield_ms=0)
                n = len(base64.b64decode(r["stdout"]))
                while r["running"]:
                    r = c.request("GET", "/v1/sandboxes/%s/processes/%s?yield_ms=0&encoding=base64"
                                  % (sid, r["process_id"])).json
                    n += len(base64.b64decode(r["stdout"]))
                got[i] = (n, r["exit_code"])
                c.close()
            except Exception as e:  # reported below
                errors.append(repr(e))
        threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(errors, [])
        self.assertFalse(any(t.is_alive() for t in threads), "a client still waits: %s" % got)
        self.assertEqual(got, {i: (62914560, 0) for i in range(3)})

    def test_large_output_is_complete(self):
        r = self.client.exec(self.sid, command="head -c 300000 /dev/zero | tr '\\000' b",
                             max_output_bytes=1 << 20)
        self.assertExit(r, 0)
        self.assertFalse(r["stdout_truncated"])
        self.assertEqual(r["stdout"], "b" * 300000)

    def test_kill_a_running_process(self):
        r = self.client.exec(self.sid, ["sleep", "60"], yield_ms=100)
        self.assertTrue(r["running"])
        k = self.client.request("DELETE", "/v1/sandboxes/%s/processes/%s?signal=TERM"
                                % (self.sid, r["process_id"]))
        self.assertEqual(k.status, 200, k)
        final, _, _ = self.client.wait_process(self.sid, r, 10)
        self.assertTrue(at.killed_by(final, 15), final)

    def test_a_client_that_leaves_ends_its_waiting_exec(self):
        # An exec without yield waits for its command; when its client
        # hangs up, nobody can collect the result: the wait ends and the
        # command is killed (it held an airlockd thread for good before).
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(self.daemon.socket_path)
        body = json.dumps({"argv": ["sleep", "1000"]}).encode()
        sock.sendall(b"POST /v1/sandboxes/%s/exec HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (self.sid.encode(), len(body), body))
        deadline = time.monotonic() + 10
        while "sleep 1000" not in self.out(self.sid, "ps -o args 2>/dev/null || ps"):
            self.assertLess(time.monotonic(), deadline, "the command never started")
            time.sleep(0.05)
        sock.close()
        deadline = time.monotonic() + 5
        while "sleep 1000" in self.out(self.sid, "ps -o args 2>/dev/null || ps"):
            self.assertLess(time.monotonic(), deadline, "the command outlived its client")
            time.sleep(0.05)

    def test_bad_requests(self):
        self.assertEqual(self.client.exec_raw(self.sid).status, 400)
        self.assertEqual(self.client.exec_raw(self.sid, argv="ls").status, 400)
        self.assertEqual(self.client.exec_raw(self.sid, argv=[]).status, 400)
        self.assertEqual(self.client.exec_raw(self.sid, argv=[1, 2]).status, 400)
        self.assertEqual(self.client.exec_raw("nosuchsandbox", argv=["true"]).status, 404)
        self.assertEqual(self.client.poll(self.sid, "p999999").status, 404)
        # One JSON object, nothing after it (cJSON alone stops at its end).
        path = "/v1/sandboxes/%s/exec" % self.sid
        for body in ('{"argv": ["true"]} {"argv": ["false"]}', '{"argv": ["true"]}x',
                     '{"argv": ["true"]}\0'):
            r = self.client.request("POST", path, body,
                                    headers={"Content-Type": "application/json"})
            self.assertEqual(r.status, 400, body)
            self.assertIn("one JSON value", r.json["error"]["message"])
        r = self.client.request("POST", path, '{"argv": ["true"]}\r\n  ',
                                headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 200, r)

    def test_many_execs_in_a_row(self):
        for i in range(30):
            r = self.client.exec(self.sid, ["echo", str(i)])
            self.assertEqual(r["stdout"], "%d\n" % i)


if __name__ == "__main__":
    at.main()
