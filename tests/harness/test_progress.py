# SPDX-License-Identifier: Apache-2.0
"""What airlock-harness run and resume say as they go (docs/harness.md,
"Progress"): a line per model turn and per tool call on stderr, --quiet,
--events-json; and the model's URL and name from OPENAI_BASE_URL and
AIRLOCK_MODEL.  Against a real airlockd and the fake model server (an
OpenAI-style server on loopback: fake_model.py)."""

import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness_test as ht  # noqa: E402
from harness_test import fm  # noqa: E402


class ProgressTest(ht.HarnessTestCase):

    def two_turns(self):
        return [fm.calls_response([ht.exec_call("call_1", "echo hi > /workspace/a.txt"),
                                   ht.exec_call("call_2", "exit 3")], "resp_1", (11, 7)),
                fm.text_response("Done.", "resp_2", (13, 3))]

    def test_a_line_per_turn_and_tool_call(self):
        res = self.run_task(self.replay_task(self.two_turns()))
        self.assertCompleted(res)
        lines = [l for l in res.stderr.splitlines() if l.startswith("airlock-harness: turn ")]
        self.assertEqual(len(lines), 4, res.stderr)
        self.assertRegex(lines[0], r"^airlock-harness: turn 1: replay: 2 tool calls "
                                   r"\(exec_command, exec_command\); 11\+7 tokens, \d+\.\d s$")
        self.assertRegex(lines[1], r'^airlock-harness: turn 1: exec_command \{"cmd": ?"echo hi > '
                                   r'/workspace/a.txt".*\}: ok, \d+\.\d s$')
        self.assertRegex(lines[2], r"^airlock-harness: turn 1: exec_command .*exit 3.*: \w+, \d+\.\d s$")
        self.assertRegex(lines[3], r"^airlock-harness: turn 2: replay: final answer; 13\+3 tokens, "
                                   r"\d+\.\d s$")
        # stdout keeps its contract: the run directory first, then the output.
        self.assertEqual(os.path.realpath(res.stdout.splitlines()[0].strip()),
                         os.path.realpath(res.run_dir))

    def test_quiet_and_events_json(self):
        res = self.run_task(self.replay_task(self.two_turns()), args=["--quiet"])
        self.assertCompleted(res)
        self.assertNotIn("airlock-harness: turn", res.stderr)

        res = self.run_task(self.replay_task(self.two_turns()), args=["--events-json"])
        state = self.assertCompleted(res)
        events = [json.loads(l) for l in res.stderr.splitlines() if l.startswith("{")]
        self.assertEqual([(e["event"], e["turn"]) for e in events],
                         [("turn", 1), ("tool_call", 1), ("tool_call", 1), ("turn", 2)], res.stderr)
        self.assertEqual(events[0]["tool_calls"], ["exec_command", "exec_command"])
        self.assertEqual((events[0]["input_tokens"], events[0]["output_tokens"], events[0]["final"]),
                         (11, 7, False))
        self.assertEqual([e["call_id"] for e in events[1:3]], ["call_1", "call_2"])
        self.assertIn("echo hi", events[1]["arguments"])
        self.assertFalse(events[1]["is_error"])
        self.assertTrue(events[3]["final"])
        for e in events:
            self.assertEqual(e["run_id"], state["run_id"])
            self.assertIsInstance(e["duration_ms"], (int, float))
        # Nothing else on stderr but these objects.
        self.assertEqual([l for l in res.stderr.splitlines() if l.strip() and not l.startswith("{")],
                         [], res.stderr)

    def test_quiet_is_only_for_run_and_resume(self):
        res = ht.harness(["store", "--quiet", "put", "x", "y", "z"])
        self.assertEqual(res.returncode, 2, res)
        self.assertIn("--quiet is only for run and resume", res.stderr)

    def test_model_from_the_environment(self):
        srv = self.fake_server([fm.reply_json(fm.text_response("From the env.", "r1"))])
        task = self.task({"api": "responses", "timeout_ms": 20000, "max_retries": 0})
        res = self.run_task(self.write_task(task),
                            env={"OPENAI_BASE_URL": srv.base_url, "AIRLOCK_MODEL": "env-model"})
        self.assertCompleted(res)
        reqs = srv.model_requests()
        self.assertEqual(len(reqs), 1)
        self.assertEqual(reqs[0].json["model"], "env-model")
        self.assertIn("turn 1: env-model: final answer", res.stderr)
        # Without a model block at all, the environment is enough.
        srv2 = self.fake_server([fm.reply_json(fm.text_response("Still.", "r2"))])
        task = self.task({})
        del task["model"]
        res = self.run_task(self.write_task(task),
                            env={"OPENAI_BASE_URL": srv2.base_url, "AIRLOCK_MODEL": "env-model-2"})
        self.assertCompleted(res)
        self.assertEqual(srv2.model_requests()[0].json["model"], "env-model-2")
        # The task's own values win over the environment.
        srv3 = self.fake_server([fm.reply_json(fm.text_response("Task wins.", "r3"))])
        res = self.run_task(self.server_task(srv3, model_fields={"max_retries": 0}),
                            env={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "AIRLOCK_MODEL": "env-model"})
        self.assertCompleted(res)
        self.assertEqual(srv3.model_requests()[0].json["model"], "fake-model")
        # Neither: refused, naming the variable.
        task = self.task({})
        del task["model"]
        res = self.run_task(self.write_task(task))
        self.assertEqual(res.returncode, 2, res)
        self.assertIn("AIRLOCK_MODEL", res.stderr)


if __name__ == "__main__":
    ht.at.main()
