# SPDX-License-Identifier: Apache-2.0
"""A misbehaving model: rate limits and server errors with Retry-After,
slow and endless responses, bodies that are not JSON, tool calls with
invalid arguments or unknown names, and 10 MB outputs.  Each ends in a tool
error the model sees or a clean failure (exit 1), never a crash."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness_test as ht  # noqa: E402
from harness_test import fm  # noqa: E402

TEN_MB = 10 << 20


class ModelErrorTest(ht.HarnessTestCase):

    def failed_cleanly(self, res):
        self.assertNoSignal(res)
        self.assertEqual(res.returncode, 1, "contract: a model error after retries is exit 1: %r" % res)
        self.assertEqual(ht.load_state(res.run_dir).get("status"), "failed")
        self.assertAuditOK(res.run_dir)

    # ---- retries ----

    def test_retry_after_honoured(self):
        srv = self.fake_server([fm.reply_error(429, retry_after=2), fm.reply_error(503, retry_after=2),
                                fm.reply_json(fm.text_response("third time lucky"))])
        res = self.run_task(self.server_task(srv, model_fields={"max_retries": 3}))
        self.assertCompleted(res)
        reqs = srv.model_requests()
        self.assertEqual(len(reqs), 3, reqs)
        for a, b in zip(reqs, reqs[1:]):
            self.assertGreaterEqual(b.arrived - a.arrived, 1.9, "Retry-After: 2 was not honoured")
        self.assertEqual(reqs[0].body, reqs[2].body, "a retry resends the same request")
        self.assertIn("third time lucky", self.output_text(res.run_dir))

    def test_retries_exhausted(self):
        srv = self.fake_server([fm.reply_error(503, retry_after=0)] * 10)
        res = self.run_task(self.server_task(srv, model_fields={"max_retries": 2}))
        self.failed_cleanly(res)
        self.assertEqual(len(srv.model_requests()), 3, "max_retries 2: one try and two retries")

    def test_500_retried_with_backoff(self):
        srv = self.fake_server([fm.reply_error(500), fm.reply_error(502),
                                fm.reply_json(fm.text_response("ok"))])
        res = self.run_task(self.server_task(srv, model_fields={"max_retries": 3}))
        self.assertCompleted(res)
        self.assertEqual(len(srv.model_requests()), 3)

    def test_client_error_not_retried(self):
        srv = self.fake_server([fm.reply_error(400, message="bad request")] * 5)
        res = self.run_task(self.server_task(srv, model_fields={"max_retries": 3}))
        self.failed_cleanly(res)
        self.assertEqual(len(srv.model_requests()), 1, "a 400 is not retried")

    # ---- time ----

    def test_slow_response_times_out_then_retried(self):
        srv = self.fake_server([fm.Reply("json", fm.text_response("too late"), delay=6),
                                fm.reply_json(fm.text_response("in time"))])
        res = self.run_task(self.server_task(srv, model_fields={"timeout_ms": 1500, "max_retries": 1}))
        self.assertCompleted(res)
        self.assertEqual(len(srv.model_requests()), 2)
        self.assertIn("in time", self.output_text(res.run_dir))
        self.assertLess(res.duration, 20)

    def test_slow_response_within_timeout(self):
        srv = self.fake_server([fm.Reply("json", fm.text_response("slow but fine"), delay=2)])
        res = self.run_task(self.server_task(srv, model_fields={"timeout_ms": 10000, "max_retries": 0}))
        self.assertCompleted(res)
        self.assertEqual(len(srv.model_requests()), 1)

    def test_endless_stream(self):
        srv = self.fake_server([fm.reply_endless(0.1)] * 5)
        res = self.run_task(self.server_task(srv, model_fields={"timeout_ms": 1500, "max_retries": 1}),
                            timeout=60)
        self.failed_cleanly(res)
        self.assertEqual(len(srv.model_requests()), 2, "one try, one retry")
        self.assertLess(res.duration, 30, "timeout_ms bounds a body that never ends")

    # ---- what the model sends ----

    def test_response_not_json(self):
        srv = self.fake_server([fm.reply_raw("<html>gateway says hi</html>", content_type="text/html")] * 5)
        res = self.run_task(self.server_task(srv, model_fields={"max_retries": 1}))
        self.failed_cleanly(res)

    def test_response_without_output(self):
        srv = self.fake_server([fm.reply_raw(json.dumps({"id": "resp_x", "object": "response"}))] * 5)
        res = self.run_task(self.server_task(srv, model_fields={"max_retries": 1}))
        self.failed_cleanly(res)

    def _tool_error_turn(self, calls, api="responses"):
        """One turn with calls, then a final message; returns the tool
        outputs the second request carried."""
        srv = self.fake_server([fm.reply_json(fm.calls_response(calls)),
                                fm.reply_json(fm.text_response("recovered"))])
        res = self.run_task(self.server_task(srv, api))
        self.assertCompleted(res)
        self.assertAuditOK(res.run_dir)
        reqs = srv.model_requests()
        self.assertEqual(len(reqs), 2, reqs)
        outs = reqs[1].tool_output_list()
        self.assertEqual(sorted(c for c, _ in outs), sorted(c[0] for c in calls),
                         "every call gets exactly one result under its call_id")
        return dict(outs), reqs[1]

    def test_invalid_json_arguments(self):
        for api in ("responses", "chat"):
            with self.subTest(api):
                outs, _ = self._tool_error_turn([
                    ("c_bad", "exec_command", '{"cmd": "echo hi'),
                    ("c_notobj", "exec_command", '"echo hi"'),
                    ("c_empty", "exec_command", ''),
                    ("c_ok", "exec_command", '{"cmd": "echo fine"}')], api)
                for c in ("c_bad", "c_notobj", "c_empty"):
                    self.assertIsNotNone(ht.tool_error(outs[c]),
                                         "contract: malformed arguments give {\"error\": ...}: %s %r" % (c, outs[c]))
                self.assertIn("fine", outs["c_ok"], "a good call next to bad ones still runs")
                self.destroy_all()

    def test_wrong_argument_types(self):
        outs, _ = self._tool_error_turn([
            ("c_nocmd", "exec_command", {"workdir": "/workspace"}),
            ("c_num", "exec_command", {"cmd": 42}),
            ("c_sess", "write_stdin", {"session_id": "nine", "chars": "x"}),
            ("c_nosess", "write_stdin", {"session_id": 987654, "chars": "x"}),
            ("c_patch", "apply_patch", {"patch": "this is not a patch"})])
        for c, out in outs.items():
            self.assertTrue(ht.tool_error(out) or "error" in out.lower() or "fail" in out.lower(),
                            "%s: a bad call is an error the model sees: %r" % (c, out))
        for c in ("c_nocmd", "c_num", "c_sess"):
            self.assertIsNotNone(ht.tool_error(outs[c]), "%s: %r" % (c, outs[c]))

    def test_apply_patch_outside_workspace_refused(self):
        """The SDK's editors refuse a path that leaves the workspace root
        ('Sandbox path "…" escapes the workspace root.')."""
        outs, _ = self._tool_error_turn([
            ("c_up", "apply_patch", {"patch": "*** Begin Patch\n*** Add File: ../../etc/evil\n+x\n*** End Patch\n"}),
            ("c_abs", "apply_patch", {"patch": "*** Begin Patch\n*** Add File: /etc/evil2\n+x\n*** End Patch\n"})])
        for c, out in outs.items():
            self.assertIsNotNone(ht.tool_error(out), "%s: a patch outside /workspace is refused: %r" % (c, out))

    def test_unknown_tool(self):
        outs, _ = self._tool_error_turn([("c_unknown", "rm_rf_everything", {"really": True}),
                                         ("c_ok", "exec_command", {"cmd": "echo still-here"})])
        err = ht.tool_error(outs["c_unknown"])
        self.assertIsNotNone(err, "contract: an unknown tool gives {\"error\": ...}: %r" % outs["c_unknown"])
        self.assertIn("rm_rf_everything", err, "the error names the tool")
        self.assertIn("still-here", outs["c_ok"])

    def test_ten_mb_tool_output(self):
        outs, req = self._tool_error_turn([
            ("c_big", "exec_command", {"cmd": "head -c %d /dev/zero | tr '\\0' x; echo; echo tail-marker" % TEN_MB})])
        self.assertLess(len(outs["c_big"]), 2 << 20, "a 10 MB output is not sent to the model whole")
        self.assertLess(len(req.body), 4 << 20)

    def test_ten_mb_model_message(self):
        srv = self.fake_server([fm.reply_json(fm.text_response("y" * TEN_MB))])
        res = self.run_task(self.server_task(srv))
        self.assertNoSignal(res)
        self.assertIn(res.returncode, (0, 1), res)
        self.assertAuditOK(res.run_dir)

    def test_ten_mb_arguments(self):
        outs, req = self._tool_error_turn([
            ("c_huge", "exec_command", {"cmd": "echo " + "z" * TEN_MB}),
            ("c_huge_patch", "apply_patch", {"patch": "*** Begin Patch\n*** Add File: big.txt\n"
                                             + ("+" + "p" * 1023 + "\n") * 10240 + "*** End Patch\n"})])
        self.assertLess(len(req.body), 24 << 20)
        for c in ("c_huge", "c_huge_patch"):
            self.assertLess(len(outs[c]), 2 << 20, c)

    def test_many_calls_in_one_turn(self):
        calls = [("c_%03d" % i, "exec_command", {"cmd": "echo %d" % i}) for i in range(40)]
        outs, _ = self._tool_error_turn(calls)
        for i in range(40):
            self.assertIn(str(i), outs["c_%03d" % i])

    def test_max_turns(self):
        loop = [fm.reply_json(fm.calls_response([ht.exec_call("c_%d" % i, "true")])) for i in range(10)]
        srv = self.fake_server(loop)
        res = self.run_task(self.server_task(srv, max_turns=3))
        self.failed_cleanly(res)
        self.assertLessEqual(len(srv.model_requests()), 3, "max_turns bounds the model calls")


if __name__ == "__main__":
    ht.at.main()
