# SPDX-License-Identifier: Apache-2.0
"""SIGKILL of the harness at every step boundary, then `resume DIR`.

Every step boundary: AIRLOCK_HARNESS_KILL_AT=n (docs/harness.md, "Test
hook") kills the harness right after its n-th durable write (state.json
replacement or audit record); n runs 1, 2, … until a run completes without
being killed.  After each kill the run is resumed and must end with:

* the same final workspace as an uninterrupted run (every file under
  /workspace/t, read by the task's last tool call);
* no tool call whose result was recorded at the time of the kill run twice
  (each exec call appends its id to /workspace/calls.log, which is counted),
  and every call run at least once;
* a completed state, the same final output, and an audit trail that
  `audit verify` accepts;
* as many sandboxes left in airlockd as an uninterrupted run leaves, and
  with the fake model server, the same workspace read through airlockd at
  the final turn.

Also: SIGKILL from outside at arbitrary points, during the sandbox create,
twice in a row, and with the sandbox destroyed while the harness is dead
(restored from the workspace archive or a snapshot).
"""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness_test as ht  # noqa: E402
from harness_test import fm  # noqa: E402

MAX_BOUNDARIES = 200
# The sanitizer run (scripts/test.sh) kills at every STRIDE-th boundary from a
# random first one, printed: 2-3x slower binaries would take most of CI's time
# on this one file, and the normal build's run covers every boundary.
STRIDE = max(1, int(os.environ.get("AIRLOCK_TEST_BOUNDARY_STRIDE", "1")))
FINAL_TEXT = "Done: the files are in /workspace/t."


def logged(call_id, cmd):
    return ht.exec_call(call_id, "echo %s >> /workspace/calls.log && %s" % (call_id, cmd))


PATCH = "*** Begin Patch\n*** Add File: t/patched.txt\n+added by apply_patch\n*** End Patch\n"

# Turn by turn: two calls in one turn, an apply_patch, and the listing last.
TURNS = [
    fm.calls_response([logged("call_1", "mkdir -p /workspace/t && echo one > /workspace/t/a.txt")],
                      "resp_1", (100, 10)),
    fm.calls_response([logged("call_2", "mkdir -p /workspace/t/d && echo two > /workspace/t/d/b.txt"),
                       logged("call_3", "seq 1 500 > /workspace/t/seq.txt")], "resp_2", (110, 20)),
    fm.calls_response([("call_4", "apply_patch", {"patch": PATCH})], "resp_3", (120, 30)),
    fm.calls_response([logged("call_5", "cat /workspace/t/a.txt /workspace/t/d/b.txt > /workspace/t/joined.txt")],
                      "resp_4", (130, 40)),
    fm.calls_response([ht.exec_call("call_list", ht.LISTING_CMD)], "resp_5", (140, 50)),
    fm.text_response(FINAL_TEXT, "resp_6", (150, 60)),
]
LOGGED_CALLS = ["call_1", "call_2", "call_3", "call_5"]


class ResumeTest(ht.HarnessTestCase):

    def tearDown(self):
        # A harness killed while its create request was in flight leaves
        # airlockd finishing that sandbox after the test: let it land, then
        # destroy it, so the next test counts only its own.
        self.destroy_all()
        time.sleep(0.3)
        self.destroy_all()

    # ---- helpers ----

    @staticmethod
    def at_kill(run_dir):
        """(recorded results, status, sandbox id) in the RunState a kill left."""
        try:
            state = ht.load_state(run_dir)
        except FileNotFoundError:
            return {}, None, None
        return (ht.recorded_results(state), state.get("status"),
                (state.get("sandbox") or {}).get("sandbox_id"))

    def final_listing(self, state):
        results = ht.recorded_results(state)
        self.assertIn("call_list", results, "the listing call's result is recorded")
        parsed = ht.parse_listing(ht.text_of(results["call_list"]))
        self.assertIsNotNone(parsed, "listing output: %r" % results["call_list"])
        return parsed

    def uninterrupted(self, make_task):
        task = make_task()
        res = self.run_task(task)
        state = self.assertCompleted(res)
        files, calls = self.final_listing(state)
        self.assertEqual(sorted(calls), sorted(LOGGED_CALLS), "each call ran once: %r" % calls)
        self.assertEqual(set(files), {"t/a.txt", "t/d/b.txt", "t/seq.txt", "t/patched.txt", "t/joined.txt"},
                         "the task's files: %r" % files)
        self.assertAuditOK(res.run_dir)
        ref = {"files": files, "output": self.output_text(res.run_dir),
               "sandboxes": len(self.sandbox_ids()), "task": task}
        self.destroy_all()
        return ref

    def check_resumed(self, ref, run_dir, killed_state, label, srv=None, resume_env=None):
        """Resume run_dir and check it against the uninterrupted run ref."""
        recorded, status, sid = killed_state
        alive = sid is not None and sid in self.sandbox_ids() and status != "completed"
        res = self.resume(run_dir, env=resume_env)
        self.assertEqual(res.returncode, 0, "%s: resume failed: %r" % (label, res))
        lines = [ln for ln in res.stdout.splitlines() if ln.startswith("resume:")]
        self.assertTrue(lines, "%s: contract: resume says what it did about the sandbox: %r" % (label, res))
        if alive:
            self.assertIn("resume: sandbox %s still running" % sid, lines,
                          "%s: the run's sandbox was still there: resume goes on in it" % label)
        state = self.assertCompleted(res)
        files, calls = self.final_listing(state)
        self.assertEqual(files, ref["files"], "%s: final workspace differs from an uninterrupted run" % label)
        for c in LOGGED_CALLS:
            n = calls.count(c)
            self.assertGreaterEqual(n, 1, "%s: %s never ran: %r" % (label, c, calls))
            if c in recorded:
                self.assertEqual(n, 1, "%s: %s ran %d times although its result was recorded "
                                       "before the kill: calls.log %r" % (label, c, n, calls))
        after = ht.recorded_results(state)
        for c, out in recorded.items():
            self.assertEqual(after.get(c), out, "%s: the recorded result of %s changed or was lost" % (label, c))
        self.assertEqual(self.output_text(run_dir), ref["output"], label)
        self.assertAuditOK(run_dir)
        kinds = [r["kind"] for r in ht.audit_records(run_dir)]
        if status != "completed":
            self.assertIn("resume", kinds, "%s: the resume of a run left %r is audited" % (label, status))
        self.assertEqual(len(self.sandbox_ids()), ref["sandboxes"],
                         "%s: sandboxes left in airlockd after kill+resume: %r (uninterrupted run leaves %d)"
                         % (label, self.sandbox_ids(), ref["sandboxes"]))
        if srv is not None:
            self.check_conversation(srv, label)
        return res

    def check_conversation(self, srv, label):
        """The model's last request carries every call and its result
        exactly once."""
        last = srv.model_requests()[-1]
        outs = last.tool_output_list()
        ids = [c for c, _ in outs]
        want = sorted(LOGGED_CALLS + ["call_4", "call_list"])
        if last.json.get("previous_response_id"):
            return  # only the newest results travel then; the turn logic checked them
        self.assertEqual(sorted(ids), want, "%s: tool results in the final request: %r" % (label, ids))
        calls = sorted(c for c, _, _ in last.function_calls())
        self.assertEqual(calls, want, "%s: function calls in the final request" % label)

    def capturing_conversation(self):
        """The scripted conversation; when it gives its final answer (the
        sandbox still up) the test reads the workspace through airlockd."""
        test = self

        class Capture(fm.Conversation):
            def __call__(self, req):
                reply = super().__call__(req)
                if reply.kind == "json" and reply.body["id"] == TURNS[-1]["id"]:
                    ids = test.sandbox_ids()
                    test.api_view = {"sandboxes": ids}
                    if len(ids) == 1:
                        files = test.workspace_files(ids[0])
                        test.api_view["files"] = {p: v for p, v in files.items() if p.startswith("t/")}
                        test.api_view["calls"] = files.get("calls.log", b"").decode().split()
                return reply

        self.api_view = None
        return Capture(TURNS)

    def check_api_view(self, ref_view, label):
        view = self.api_view
        self.assertIsNotNone(view, "%s: the final answer was never asked for" % label)
        self.assertEqual(len(view["sandboxes"]), 1,
                         "%s: sandboxes in airlockd at the final turn: %r" % (label, view["sandboxes"]))
        self.assertEqual(view["files"], ref_view["files"],
                         "%s: the workspace read through airlockd differs from an uninterrupted run's" % label)
        self.assertEqual(set(view["calls"]), set(ref_view["calls"]), label)

    def kill_every_boundary(self, make_task, srv=None):
        if srv is not None:
            srv.reset(self.capturing_conversation())
        ref = self.uninterrupted(make_task)
        if srv is not None:
            ref_view = self.api_view
            self.assertEqual(len(ref_view["sandboxes"]), 1, ref_view)
            self.assertEqual(set(ref_view["files"]), {"t/a.txt", "t/d/b.txt", "t/seq.txt", "t/patched.txt",
                                                      "t/joined.txt"}, ref_view)
        killed = last_killed = 0
        first = 1 + (int.from_bytes(os.urandom(2), "little") % STRIDE)
        for k in range(first, MAX_BOUNDARIES + 1, STRIDE):
            if srv is not None:
                srv.reset(self.capturing_conversation())
            run_dir = self.new_run_dir()
            res = self.run_task(ref["task"], run_dir, env={ht.KILL_HOOK: str(k)})
            if not res.killed:
                self.assertEqual(res.returncode, 0, "k=%d: %r" % (k, res))
                self.assertGreater(killed, 0, "the harness ignored %s=%d (docs/harness.md test hook)"
                                   % (ht.KILL_HOOK, first))
                break
            killed += 1
            last_killed = k
            label = "killed after durable write %d" % k
            self.assertTrue(os.path.isdir(run_dir), label)
            self.check_resumed(ref, run_dir, self.at_kill(run_dir), label, srv)
            if srv is not None:
                self.check_api_view(ref_view, label)
            self.destroy_all()
        else:
            self.fail("the run was still being killed after %d boundaries" % MAX_BOUNDARIES)
        if STRIDE == 1:
            sys.stderr.write("[killed and resumed at each of %d step boundaries] " % killed)
        else:
            sys.stderr.write("[killed and resumed at %d of %d+ step boundaries: one in %d, from boundary %d] "
                             % (killed, last_killed, STRIDE, first))
        return last_killed

    # ---- the tests ----

    def test_kill_every_boundary_replay(self):
        n = self.kill_every_boundary(lambda: self.replay_task(TURNS))
        # 6 model calls and 7 tool results alone are 13 state writes.
        self.assertGreaterEqual(n + STRIDE - 1, 13, "too few durable writes for a 6-turn run with 7 tool calls")

    def test_kill_every_boundary_responses_api(self):
        srv = self.fake_server(fm.Conversation(TURNS))
        n = self.kill_every_boundary(lambda: self.server_task(srv, "responses"), srv)
        self.assertGreaterEqual(n + STRIDE - 1, 13, "too few durable writes for a 6-turn run with 7 tool calls")

    def test_external_sigkill_at_audit_growth(self):
        """SIGKILL from outside, as a crash would come: not at a boundary the
        harness chose but whenever the audit trail has reached m records."""
        ref = self.uninterrupted(lambda: self.replay_task(TURNS))
        killed = 0
        for m in (1, 3, 6, 10, 15, 21):
            run_dir = self.new_run_dir()
            proc = subprocess.Popen([ht.HARNESS, "run", ref["task"], "--run-dir", run_dir],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, env=ht.clean_env())
            audit = os.path.join(run_dir, "audit.jsonl")
            end = time.monotonic() + 60
            while proc.poll() is None and time.monotonic() < end:
                try:
                    with open(audit, "rb") as f:
                        if f.read().count(b"\n") >= m:
                            proc.kill()
                            break
                except FileNotFoundError:
                    pass
                time.sleep(0.002)
            proc.wait()
            if proc.returncode == 0:
                continue      # finished before the poll caught up
            self.assertEqual(proc.returncode, -9, "m=%d" % m)
            killed += 1
            self.check_resumed(ref, run_dir, self.at_kill(run_dir), "SIGKILL at %d+ audit records" % m)
            self.destroy_all()
        self.assertGreaterEqual(killed, 3, "too few runs could be killed mid-way: %d" % killed)

    def test_kill_during_sandbox_create(self):
        """Killed while asking airlockd for its sandbox, so the RunState
        cannot name it yet: (a) airlockd made the sandbox and the answer was
        lost; (b) the harness died as the request left and is resumed at
        once, while airlockd is still making that sandbox.  Resume must
        finish either way and leave no orphan sandbox."""
        ref = self.uninterrupted(lambda: self.replay_task(TURNS))
        proxy_sock = os.path.join(self.tmpdir("proxy"), "proxy.sock")
        proxy = ht.UnixProxy(proxy_sock, self.daemon.socket_path).start()
        self.addCleanup(proxy.stop)
        task = self.load_task(ref["task"])
        task["provider"]["socket"] = proxy_sock
        path = self.write_task(task, os.path.dirname(ref["task"]), "task-proxied.json")
        for case, hold in (("answer lost", 30), ("resumed during the create", 0)):
            with self.subTest(case):
                proxy.held.clear()
                proxy.hold = (b"POST /v1/sandboxes HTTP", hold)
                run_dir = self.new_run_dir()
                proc = subprocess.Popen([ht.HARNESS, "run", path, "--run-dir", run_dir],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, env=ht.clean_env())
                try:
                    self.assertTrue(proxy.held.wait(30), "the harness never asked airlockd for a sandbox")
                    if hold:
                        end = time.monotonic() + 30
                        while not self.sandbox_ids() and time.monotonic() < end:
                            time.sleep(0.02)
                        self.assertEqual(len(self.sandbox_ids()), 1, "airlockd made the sandbox")
                finally:
                    proc.kill()
                    proc.wait()
                proxy.hold = None
                self.check_resumed(ref, run_dir, self.at_kill(run_dir), "killed during sandbox create, " + case)
                self.tearDown()

    def test_kill_twice(self):
        """Killed, then killed again during the resume, then resumed."""
        ref = self.uninterrupted(lambda: self.replay_task(TURNS))
        # A 6-turn run with 7 tool calls has at least 13 durable writes.
        for k1, k2 in ((2, 2), (5, 4), (9, 1), (13, 3)):
            run_dir = self.new_run_dir()
            res = self.run_task(ref["task"], run_dir, env={ht.KILL_HOOK: str(k1)})
            self.assertTrue(res.killed, "%s=%d did not kill the harness: %r" % (ht.KILL_HOOK, k1, res))
            recorded = self.at_kill(run_dir)[0]
            res2 = self.resume(run_dir, env={ht.KILL_HOOK: str(k2)})
            self.assertTrue(res2.killed or res2.returncode == 0, res2)
            again, status, sid = self.at_kill(run_dir)
            recorded.update(again)
            self.check_resumed(ref, run_dir, (recorded, status, sid), "killed at %d then at %d" % (k1, k2))
            self.destroy_all()

    def test_sandbox_gone_recreated_from_archive(self):
        """The sandbox is destroyed while the harness is dead: resume brings
        it back from a snapshot or from the manifest and the last workspace
        archive, and says which."""
        ref = self.uninterrupted(lambda: self.replay_task(TURNS))
        for k in range(1, MAX_BOUNDARIES + 1):
            run_dir = self.new_run_dir()
            res = self.run_task(ref["task"], run_dir, env={ht.KILL_HOOK: str(k)})
            self.assertTrue(res.killed or k > 1, "the harness ignored %s=1: %r" % (ht.KILL_HOOK, res))
            self.assertTrue(res.killed, "no workspace archive recorded in state.json by the end of the run "
                                        "(contract: DIR/workspace/ws-<turn>.tar taken for resume)")
            state = ht.load_state(run_dir) if os.path.exists(os.path.join(run_dir, "state.json")) else {}
            archive = (state.get("sandbox") or {}).get("workspace_archive")
            recorded = ht.recorded_results(state)
            if archive and "call_2" in recorded:
                break
            self.destroy_all()
        if not os.path.isabs(archive):
            archive = os.path.join(run_dir, archive)
        self.assertTrue(os.path.isfile(archive), archive)
        archived = ht.tar_files(archive)
        self.assertIn("t/a.txt", archived, "the archive holds the workspace: %r" % archived)
        for sid in self.sandbox_ids():
            self.client.destroy(sid)
        res = self.resume(run_dir)
        self.assertEqual(res.returncode, 0, res)
        self.assertRegex(res.stdout, r"resume: (recreated sandbox from manifest and workspace archive \S+"
                                     r"|restored sandbox from snapshot \S+)")
        state = self.assertCompleted(res)
        files, calls = self.final_listing(state)
        for path, digest in archived.items():
            self.assertEqual(files.get(path), digest, "%s from the archive is back" % path)
        for c in recorded:
            self.assertLessEqual(calls.count(c), 1, "%s ran again after the sandbox was recreated" % c)
        self.assertAuditOK(run_dir)

    def snapshot_ids(self):
        r = self.client.request("GET", "/v1/snapshots")
        self.assertEqual(r.status, 200, r)
        return {s["id"] for s in r.json["snapshots"]}

    def test_superseded_snapshots_are_deleted(self):
        """A snapshot after every turn keeps one snapshot per run in airlockd:
        each new one, once recorded, replaces the one before."""
        ref = self.uninterrupted(lambda: self.replay_task(TURNS))
        task = self.load_task(ref["task"])
        task["snapshot"] = {"every_turns": 1, "processes": False}
        path = self.write_task(task, os.path.dirname(ref["task"]), "task-snapshot-gc.json")
        before = self.snapshot_ids()
        res = self.run_task(path)
        state = self.assertCompleted(res)
        taken = [r for r in ht.audit_records(res.run_dir) if r["kind"] == "snapshot"]
        self.assertGreater(len(taken), 1, "the task took fewer than two snapshots: %r" % taken)
        kept = self.snapshot_ids() - before
        self.assertEqual(kept, {state["sandbox"]["snapshot_id"]}, "snapshots left in airlockd")
        for sid in kept:
            self.client.request("DELETE", "/v1/snapshots/" + sid)

    def test_a_snapshot_taken_but_not_recorded_is_removed_on_resume(self):
        """Killed after the snapshot was taken (its audit record written) and
        before RunState named it: the snapshot was nobody's (7 of 20 killed
        runs leaked one).  Now resume finds it by its sandbox and removes it."""
        ref = self.uninterrupted(lambda: self.replay_task(TURNS))
        task = self.load_task(ref["task"])
        task["snapshot"] = {"every_turns": 1, "processes": False}
        path = self.write_task(task, os.path.dirname(ref["task"]), "task-snapshot-kill.json")
        before = self.snapshot_ids()
        in_the_window = 0
        for k in range(1, MAX_BOUNDARIES + 1):
            run_dir = self.new_run_dir()
            res = self.run_task(path, run_dir, env={ht.KILL_HOOK: str(k)})
            if not res.killed:
                break
            try:
                last = ht.audit_records(run_dir)[-1]
                recorded = ht.load_state(run_dir).get("sandbox", {}).get("snapshot_id")
            except (FileNotFoundError, IndexError):
                last, recorded = {"kind": None}, None
            if last["kind"] == "snapshot" and last.get("snapshot_id") not in ("", recorded):
                in_the_window += 1
            state = self.assertCompleted(self.resume(run_dir))
            kept = self.snapshot_ids() - before
            self.assertEqual(kept, {state["sandbox"]["snapshot_id"]},
                             "snapshots left after a kill at write %d" % k)
            for sid in kept:
                self.client.request("DELETE", "/v1/snapshots/" + sid)
            self.destroy_all()
        self.assertGreaterEqual(in_the_window, 1, "no kill fell between a snapshot and its record")

    def test_sandbox_gone_restored_from_snapshot(self):
        """With a snapshot after every turn, a sandbox destroyed while the
        harness is dead comes back from the last snapshot; killed right
        after a snapshot was recorded, nothing is missing from it."""
        ref = self.uninterrupted(lambda: self.replay_task(TURNS))
        task = self.load_task(ref["task"])
        task["snapshot"] = {"every_turns": 1, "processes": False}
        path = self.write_task(task, os.path.dirname(ref["task"]), "task-snapshots.json")
        for k in range(1, MAX_BOUNDARIES + 1):
            run_dir = self.new_run_dir()
            res = self.run_task(path, run_dir, env={ht.KILL_HOOK: str(k)})
            self.assertTrue(res.killed, "no snapshot recorded in state.json by the end of a run with "
                                        "snapshot.every_turns=1: %r" % res)
            recorded, status, sid = self.at_kill(run_dir)
            snap = (ht.load_state(run_dir).get("sandbox") or {}).get("snapshot_id") if status else None
            if not snap:
                self.tearDown()
                continue
            last = ht.audit_records(run_dir)[-1]
            # Killed with the second turn's snapshot the newest thing done
            # and recorded in the RunState.
            if ("call_3" in recorded and last["kind"] == "snapshot"
                    and snap in json.dumps(last["data"])):
                break
            self.tearDown()
        else:
            self.fail("never killed right after a snapshot was recorded")
        for s in self.sandbox_ids():
            self.client.destroy(s)
        res = self.resume(run_dir)
        self.assertEqual(res.returncode, 0, res)
        self.assertIn("resume: restored sandbox from snapshot %s" % snap, res.stdout)
        state = self.assertCompleted(res)
        files, calls = self.final_listing(state)
        self.assertEqual(files, ref["files"], "the workspace after a restore from snapshot %s (killed after write %d, results recorded %s, calls.log %r)" % (snap, k, sorted(recorded), calls))
        for c in recorded:
            if c in LOGGED_CALLS:
                self.assertEqual(calls.count(c), 1, "%s: %r" % (c, calls))
        self.assertAuditOK(run_dir)
        self.assertIn("snapshot", [r["kind"] for r in ht.audit_records(run_dir)])

    def test_snapshot_with_processes_brings_them_back(self):
        """snapshot.processes: a command still running when the snapshot
        was taken runs again in the sandbox restored from it."""
        seen = {}

        def final(req):
            ids = self.sandbox_ids()
            seen["ids"] = ids
            if len(ids) == 1:
                r = self.client.exec(ids[0], command="for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done")
                seen["procs"] = r["stdout"]
            return fm.reply_json(fm.text_response("end", "resp_end"))

        turns = [fm.calls_response([ht.exec_call("c_bg", "exec sleep 301", yield_time_ms=200)], "resp_a"),
                 fm.calls_response([ht.exec_call("c_x", "echo x > /workspace/x.txt")], "resp_b")]

        def script(req):
            n = len(req.tool_output_list())
            if n == 0:
                return fm.reply_json(turns[0])
            if n == 1:
                return fm.reply_json(turns[1])
            return final(req)

        srv = self.fake_server(script)
        path = self.server_task(srv, snapshot={"every_turns": 1, "processes": True})
        for k in range(1, MAX_BOUNDARIES + 1):
            run_dir = self.new_run_dir()
            res = self.run_task(path, run_dir, env={ht.KILL_HOOK: str(k)})
            self.assertTrue(res.killed, "no snapshot with processes recorded by the end of the run: %r" % res)
            recorded, status, sid = self.at_kill(run_dir)
            snap = (ht.load_state(run_dir).get("sandbox") or {}).get("snapshot_id") if status else None
            if snap and "c_bg" in recorded:
                break
            self.tearDown()
        for s in self.sandbox_ids():
            self.client.destroy(s)
        res = self.resume(run_dir, timeout=180)
        self.assertEqual(res.returncode, 0, res)
        self.assertIn("resume: restored sandbox from snapshot %s" % snap, res.stdout)
        self.assertCompleted(res)
        self.assertEqual(len(seen.get("ids") or []), 1, seen)
        self.assertIn("sleep 301", seen["procs"], "the running command came back with the snapshot")
        self.assertAuditOK(run_dir)

    def test_resume_running_sandbox_says_so(self):
        ref = self.uninterrupted(lambda: self.replay_task(TURNS))
        for k in range(4, MAX_BOUNDARIES):
            run_dir = self.new_run_dir()
            res = self.run_task(ref["task"], run_dir, env={ht.KILL_HOOK: str(k)})
            self.assertTrue(res.killed, "%s=%d did not kill the harness: %r" % (ht.KILL_HOOK, k, res))
            sid = (ht.load_state(run_dir).get("sandbox") or {}).get("sandbox_id")
            if sid:
                break
            self.destroy_all()
        res = self.resume(run_dir)
        self.assertEqual(res.returncode, 0, res)
        self.assertIn("resume: sandbox %s still running" % sid, res.stdout)

    def test_resume_bad_directories(self):
        with self.subTest("missing"):
            res = self.resume(os.path.join(self.workdir, "no-such-run"))
            self.assertNoSignal(res)
            self.assertNotEqual(res.returncode, 0, res)
        with self.subTest("corrupt state.json"):
            d = self.tmpdir("corrupt")
            with open(os.path.join(d, "state.json"), "w") as f:
                f.write("{\"version\": 1, \"items\": [")
            res = self.resume(d)
            self.assertNoSignal(res)
            self.assertNotEqual(res.returncode, 0, res)
            self.assertEqual(self.sandbox_ids(), [])


if __name__ == "__main__":
    ht.at.main()
