# SPDX-License-Identifier: Apache-2.0
"""airlock-harness end to end against a real airlockd: the replay model and
the fake model server in both wire formats, tools really running in the
sandbox, what the harness sends to the model, the run directory, and the
refusals (credentials in the task, a loose credentials file)."""

import json
import os
import re
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness_test as ht  # noqa: E402
from harness_test import fm  # noqa: E402

SDK_TOOLS = {
    "exec_command": {"cmd", "workdir", "shell", "login", "tty", "yield_time_ms", "max_output_tokens"},
    "write_stdin": {"session_id", "chars", "yield_time_ms", "max_output_tokens"},
    "view_image": {"path"},
    "apply_patch": set(),      # free-form: {"patch": "*** Begin Patch ..."} among others
}


class RunTest(ht.HarnessTestCase):

    # ---- completing a task ----

    def test_replay_completes(self):
        task = self.replay_task([
            fm.calls_response([ht.exec_call("call_1", "echo replayed > /workspace/hello.txt; cat /workspace/hello.txt")],
                              "resp_1", (11, 7)),
            fm.text_response("Created hello.txt.", "resp_2", (13, 3))])
        res = self.run_task(task)
        state = self.assertCompleted(res)
        lines = res.stdout.splitlines()
        self.assertTrue(lines, res)
        self.assertEqual(os.path.realpath(lines[0].strip()), os.path.realpath(res.run_dir),
                         "contract: run prints the run directory on its first line")
        self.assertIn("Created hello.txt.", res.stdout, "contract: run prints the final output")
        self.assertIn("Created hello.txt.", self.output_text(res.run_dir))
        results = ht.recorded_results(state)
        self.assertIn("call_1", results, state)
        self.assertIn("replayed", ht.text_of(results["call_1"]), "the command's output reached the model")
        for name in ("task.json", "state.json", "audit.jsonl", "output.txt"):
            self.assertTrue(os.path.isfile(os.path.join(res.run_dir, name)), name)
        self.assertEqual(state.get("version"), 1)
        self.assertTrue(state.get("run_id"))
        self.assertEqual(state.get("model_calls"), 2, state)
        usage = state.get("usage") or {}
        self.assertEqual(usage.get("input_tokens"), 24, usage)
        self.assertEqual(usage.get("output_tokens"), 10, usage)
        self.assertEqual(len(usage.get("per_turn") or []), 2, "token usage per turn: %r" % usage)
        self.assertEqual(state.get("sandbox", {}).get("provider"), "local", state.get("sandbox"))
        self.assertAuditOK(res.run_dir)

    def test_replay_running_out_of_lines_fails(self):
        task = self.replay_task([fm.calls_response([ht.exec_call("c1", "true")])])
        res = self.run_task(task)
        self.assertEqual(res.returncode, 1, "contract: running out of replay lines is a model error: %r" % res)
        self.assertEqual(ht.load_state(res.run_dir).get("status"), "failed")
        self.assertAuditOK(res.run_dir)

    def _conversation(self, api):
        """A two-turn task on the fake server; while the second request is
        being answered the test looks at the sandbox through airlockd."""
        seen = {}

        def check_sandbox(req):
            ids = self.sandbox_ids()
            seen["ids"] = ids
            if len(ids) == 1:
                c = self.new_client()
                files = {}
                for p in ("/workspace/made-by-tool.txt", "/workspace/whoami.txt"):
                    r = c.read_file(ids[0], p)
                    files[p] = r.body if r.status == 200 else r.status
                seen["files"] = files
                seen["hostname"] = c.exec(ids[0], command="hostname")["stdout"].strip()
            return fm.reply_json(fm.text_response("All done.", "resp_2", (30, 4)))

        first = fm.calls_response([
            ht.exec_call("call_a", "echo from-the-model > /workspace/made-by-tool.txt; hostname > /workspace/whoami.txt; echo out-$((6*7))")],
            "resp_1", (20, 8))
        srv = self.fake_server([fm.reply_json(first), check_sandbox])
        task = self.server_task(srv, api)
        res = self.run_task(task, env={"OPENAI_API_KEY": "sk-test-key-123"})
        state = self.assertCompleted(res)
        self.assertEqual(seen.get("ids") and len(seen["ids"]), 1,
                         "one sandbox in airlockd while the run was going: %r" % seen)
        self.assertEqual(seen["files"]["/workspace/made-by-tool.txt"], b"from-the-model\n",
                         "the tool call ran in the sandbox")
        self.assertEqual(seen["files"]["/workspace/whoami.txt"].decode().strip(), seen["hostname"],
                         "the command ran inside the sandbox (its hostname)")
        reqs = srv.model_requests()
        self.assertEqual(len(reqs), 2, reqs)
        for r in reqs:
            self.assertEqual(r.api, api, r)
            self.assertEqual(r.method, "POST")
            self.assertEqual(r.headers.get("authorization"), "Bearer sk-test-key-123",
                             "the model key travels in the Authorization header")
            self.assertIsNotNone(r.json, "request body is JSON: %r" % r.body[:200])
            self.assertEqual(r.json.get("model"), "fake-model")
            names = set(r.tool_names())
            self.assertTrue(set(SDK_TOOLS) <= names, "tools offered: %r" % names)
            for name, props in SDK_TOOLS.items():
                schema = r.tool_schema(name)
                self.assertIsInstance(schema, dict, "%s has a JSON schema" % name)
                self.assertTrue(props <= set((schema.get("properties") or {}).keys()),
                                "%s arguments: %r" % (name, schema))
            self.assertIn("cmd", r.tool_schema("exec_command").get("required", []))
        outputs = reqs[1].tool_output_list()
        self.assertEqual([c for c, _ in outputs], ["call_a"], "the tool result goes back under its call_id")
        self.assertIn("out-42", outputs[0][1])
        if api == "responses" and reqs[1].json.get("previous_response_id"):
            self.assertEqual(reqs[1].json["previous_response_id"], "resp_1")
        else:
            self.assertEqual([c[0] for c in reqs[1].function_calls()], ["call_a"],
                             "the model's call is echoed back before its result")
        text = json.dumps(reqs[0].json)
        self.assertIn("You are a careful assistant", text, "instructions are sent")
        self.assertIn("Do the task.", text, "the input is sent")
        usage = state.get("usage") or {}
        self.assertEqual((usage.get("input_tokens"), usage.get("output_tokens")), (50, 12), usage)
        self.assertEqual(len(usage.get("per_turn") or []), 2, usage)
        self.assertIn("All done.", self.output_text(res.run_dir))
        kinds = [r["kind"] for r in ht.audit_records(res.run_dir)]
        for k in ("run_start", "model_request", "model_response", "tool_call", "tool_result",
                  "sandbox_op", "run_end"):
            self.assertIn(k, kinds, "audit kinds: %r" % kinds)
        recs = ht.audit_records(res.run_dir)
        calls = [r["data"] for r in recs if r["kind"] == "tool_call"]
        self.assertEqual([c.get("call_id") for c in calls], ["call_a"], calls)
        self.assertEqual(calls[0].get("name"), "exec_command")
        results = [r["data"] for r in recs if r["kind"] == "tool_result"]
        self.assertEqual([r.get("call_id") for r in results], ["call_a"])
        self.assertTrue(any(isinstance(v, str) and len(v) == 64 for v in results[0].values()),
                        "tool_result carries a sha256 digest: %r" % results[0])
        responses = json.dumps([r["data"] for r in recs if r["kind"] == "model_response"])
        self.assertIn("resp_1", responses.replace("chatcmpl-", "resp_"), "response ids are audited")
        self.assertAuditOK(res.run_dir)
        return srv, res

    def test_responses_api(self):
        self._conversation("responses")

    def test_chat_api(self):
        srv, res = self._conversation("chat")
        msgs = srv.model_requests()[1].json["messages"]
        roles = [m.get("role") for m in msgs]
        self.assertIn("user", roles)
        self.assertIn(roles[0], ("system", "developer"), "instructions as the first message: %r" % roles)
        asst = [m for m in msgs if m.get("role") == "assistant" and m.get("tool_calls")]
        self.assertEqual(len(asst), 1, msgs)
        self.assertEqual(asst[0]["tool_calls"][0]["id"], "call_a")
        self.assertEqual(asst[0]["tool_calls"][0]["type"], "function")
        self.assertLess(roles.index("assistant"), roles.index("tool"), roles)
        tools = srv.model_requests()[0].json["tools"]
        self.assertTrue(all(t.get("type") == "function" and "function" in t for t in tools),
                        "chat tools are {type: function, function: {...}}: %r" % tools)

    def test_local_server_without_key(self):
        srv = self.fake_server([fm.reply_json(fm.text_response("no key needed"))])
        res = self.run_task(self.server_task(srv, "chat"))
        self.assertCompleted(res)
        self.assertNotIn("authorization", srv.model_requests()[0].headers,
                         "no key, no Authorization header")

    def test_tools_in_the_sandbox(self):
        patch = ("*** Begin Patch\n"
                 "*** Add File: notes/plan.md\n+step one\n+step two\n"
                 "*** Update File: edit.txt\n@@\n alpha\n-beta\n+BETA\n gamma\n"
                 "*** Update File: old-name.txt\n*** Move to: new-name.txt\n@@\n-moved\n+moved and changed\n"
                 "*** Delete File: doomed.txt\n"
                 "*** End Patch\n")
        seen = {}

        def poll_long(req):
            # The command still running after yield_time_ms reports a
            # session id; the model polls it with write_stdin.
            out = req.tool_outputs().get("c_long", "")
            seen["long"] = out
            sid = None
            try:
                obj = json.loads(out)
                if isinstance(obj, dict) and obj.get("session_id") is not None:
                    sid = int(obj["session_id"])
            except (ValueError, TypeError):
                pass
            if sid is None:
                found = re.search(r"session[ _]?id\D{0,5}(\d+)", out, re.I)
                sid = int(found.group(1)) if found else -1
            seen["session_id"] = sid
            return fm.reply_json(fm.calls_response([("c_poll", "write_stdin",
                                                     {"session_id": sid, "chars": "", "yield_time_ms": 3000})]))

        def look(req):
            seen["poll"] = req.tool_outputs().get("c_poll", "")
            seen["files"] = self.workspace_files(self.sandbox_ids()[0])
            return fm.reply_json(fm.text_response("done"))

        turns = [
            fm.calls_response([ht.exec_call("c_setup", "printf 'alpha\\nbeta\\ngamma\\n' > edit.txt; echo moved > old-name.txt;"
                                                       " echo bye > doomed.txt; mkdir -p sub; pwd")]),
            fm.calls_response([("c_patch", "apply_patch", {"patch": patch})]),
            fm.calls_response([ht.exec_call("c_wd", "pwd > /workspace/wd.txt", workdir="/workspace/sub"),
                               ht.exec_call("c_long", "sleep 1; echo late-output", yield_time_ms=100)]),
        ]
        srv = self.fake_server([fm.reply_json(t) for t in turns] + [poll_long, look])
        res = self.run_task(self.server_task(srv))
        state = self.assertCompleted(res)
        files = seen["files"]
        # The SDK's applyDiff joins an added file's lines without a final newline.
        self.assertEqual(files.get("notes/plan.md"), b"step one\nstep two", "apply_patch add")
        self.assertEqual(files.get("edit.txt"), b"alpha\nBETA\ngamma\n", "apply_patch update")
        self.assertNotIn("old-name.txt", files, "apply_patch move")
        self.assertEqual(files.get("new-name.txt"), b"moved and changed\n", "apply_patch move+update")
        self.assertNotIn("doomed.txt", files, "apply_patch delete")
        self.assertEqual(files.get("wd.txt"), b"/workspace/sub\n", "exec_command workdir")
        results = ht.recorded_results(state)
        self.assertIn("/workspace", ht.text_of(results["c_setup"]), "default workdir is /workspace")
        self.assertIsNone(ht.tool_error(results["c_patch"]), results["c_patch"])
        self.assertNotIn("late-output", seen["long"], "yield_time_ms=100 returns before the command ends")
        self.assertGreaterEqual(seen["session_id"], 0,
                                "a command still running reports a session id: %r" % seen["long"])
        self.assertIn("late-output", seen["poll"], "write_stdin returns the rest of the output")

    def test_tty_session_runs_on_a_terminal(self):
        """exec_command with tty: true runs on airlockd's pty; write_stdin
        types into it, and Ctrl-C (\\u0003) is a byte its line discipline
        turns into SIGINT."""
        seen = {}

        def session_of(out):
            found = re.search(r"session ID (\d+)", out)
            return int(found.group(1)) if found else -1

        def type_line(req):
            seen["start"] = req.tool_outputs().get("c_tty", "")
            seen["sid"] = session_of(seen["start"])
            return fm.reply_json(fm.calls_response([("c_line", "write_stdin",
                                                     {"session_id": seen["sid"], "chars": "hello\n",
                                                      "yield_time_ms": 1500})]))

        def ctrl_c(req):
            seen["line"] = req.tool_outputs().get("c_line", "")
            return fm.reply_json(fm.calls_response([("c_int", "write_stdin",
                                                     {"session_id": seen["sid"], "chars": "\u0003",
                                                      "yield_time_ms": 5000})]))

        def done(req):
            seen["int"] = req.tool_outputs().get("c_int", "")
            return fm.reply_json(fm.text_response("done"))

        turns = [fm.calls_response([ht.exec_call(
            "c_tty", "tty; stty size; read x; echo got-$x; sleep 100", tty=True,
            yield_time_ms=1500)])]
        srv = self.fake_server([fm.reply_json(t) for t in turns] + [type_line, ctrl_c, done])
        self.assertCompleted(self.run_task(self.server_task(srv)))
        self.assertRegex(seen["start"], r"/dev/pts/\d+\r\n24 80\r\n")
        self.assertGreaterEqual(seen["sid"], 0, seen["start"])
        # The terminal echoes what was typed, then the command's answer.
        self.assertIn("hello\r\ngot-hello\r\n", seen["line"])
        self.assertIn("Process exited with code 130", seen["int"])

    def test_view_image(self):
        png_b64 = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/"
                   "iZk9HQAAAABJRU5ErkJggg==")  # a valid 1x1 RGBA PNG
        srv = self.fake_server([
            fm.reply_json(fm.calls_response([ht.exec_call(
                "c_mk", "echo %s | base64 -d > /workspace/pixel.png" % png_b64)])),
            fm.reply_json(fm.calls_response([("c_img", "view_image", {"path": "pixel.png"}),
                                             ("c_noimg", "view_image", {"path": "missing.png"})])),
            fm.reply_json(fm.text_response("seen"))])
        res = self.run_task(self.server_task(srv))
        self.assertCompleted(res)
        req = srv.model_requests()[2]
        outs = req.tool_outputs()
        self.assertIn("c_img", outs)
        self.assertIn(png_b64[:40], json.dumps(req.json),
                      "view_image returns the image (base64 PNG) to the model")
        self.assertIn("c_noimg", outs)
        self.assertTrue(ht.tool_error(outs["c_noimg"]) or "not" in outs["c_noimg"].lower(),
                        "a missing image is an error the model sees: %r" % outs["c_noimg"])

    # ---- resume of a finished run ----

    def test_resume_completed_run_is_reported_not_rerun(self):
        srv = self.fake_server([fm.reply_json(fm.calls_response([ht.exec_call("c1", "echo x >> /workspace/log")])),
                                fm.reply_json(fm.text_response("finished"))])
        res = self.run_task(self.server_task(srv))
        self.assertCompleted(res)
        before = ht.load_state(res.run_dir)
        n = len(srv.model_requests())
        again = self.resume(res.run_dir)
        self.assertEqual(again.returncode, 0, again)
        self.assertEqual(len(srv.model_requests()), n, "a completed run is not run again")
        after = ht.load_state(res.run_dir)
        self.assertEqual(after.get("items"), before.get("items"))
        self.assertEqual(after.get("status"), "completed")
        self.assertAuditOK(res.run_dir)

    # ---- refusals ----

    def _assert_refused_cleanly(self, res, run_dir, srv=None, code=2):
        self.assertNoSignal(res)
        self.assertEqual(res.returncode, code, res)
        self.assertTrue(res.stderr.strip(), "a refusal says why on stderr: %r" % res)
        self.assertFalse(os.path.exists(run_dir), "nothing is created on refusal: %s exists" % run_dir)
        self.assertEqual(self.sandbox_ids(), [], "no sandbox is created on refusal")
        if srv is not None:
            self.assertEqual(srv.model_requests(), [], "no model request on refusal")

    def test_task_with_credentials_refused(self):
        srv = self.fake_server([fm.reply_json(fm.text_response("must not happen"))])
        base = self.load_task(self.server_task(srv))
        cases = [
            ("model.api_key", lambda t: t["model"].__setitem__("api_key", "sk-in-task")),
            ("top-level apiKey", lambda t: t.__setitem__("apiKey", "sk-in-task")),
            ("nested token", lambda t: t["provider"].__setitem__("options", {"auth": {"token": "tk"}})),
            ("password in a list", lambda t: t.__setitem__("extra", [{"password": "pw"}])),
            ("authorization", lambda t: t["model"].__setitem__("authorization", "Bearer x")),
            ("secret", lambda t: t["provider"].__setitem__("secret", "s")),
        ]
        for name, mutate in cases:
            with self.subTest(name):
                t = json.loads(json.dumps(base))
                mutate(t)
                path = self.write_task(t)
                run_dir = self.new_run_dir()
                res = self.run_task(path, run_dir)
                self._assert_refused_cleanly(res, run_dir, srv)

    def test_default_run_dir_not_created_on_refusal(self):
        srv = self.fake_server([])
        t = self.load_task(self.server_task(srv))
        t["model"]["api_key"] = "sk-x"
        path = self.write_task(t)
        cwd = self.tmpdir("cwd")
        res = ht.harness(["run", path], cwd=cwd)
        self.assertEqual(res.returncode, 2, res)
        self.assertEqual(os.listdir(cwd), [], "nothing created in the working directory")

    def test_bad_task_files(self):
        srv = self.fake_server([])
        good = self.load_task(self.server_task(srv))
        d = self.tmpdir("bad")
        cases = {"not JSON": "{\"instructions\": ", "not an object": "[1, 2]",
                 "unknown api": dict(good, model=dict(good["model"], api="telepathy")),
                 "unknown provider": dict(good, provider={"type": "nimbus"}),
                 "max_turns not a number": dict(good, max_turns="many"),
                 "replay without script": dict(good, model={"api": "replay"})}
        for name, content in cases.items():
            with self.subTest(name):
                path = os.path.join(d, name.replace(" ", "_") + ".json")
                with open(path, "w") as f:
                    f.write(content if isinstance(content, str) else json.dumps(content))
                run_dir = self.new_run_dir()
                res = self.run_task(path, run_dir)
                self._assert_refused_cleanly(res, run_dir, srv)
                if name == "unknown provider":
                    self.assertIn("provider.type \"nimbus\" is unknown", res.stderr)
        with self.subTest("missing task file"):
            run_dir = self.new_run_dir()
            res = self.run_task(os.path.join(d, "nope.json"), run_dir)
            self._assert_refused_cleanly(res, run_dir, srv)
        with self.subTest("usage"):
            for args in (["frobnicate"], [], ["run"], ["audit"], ["resume"]):
                res = ht.harness(args)
                self.assertEqual(res.returncode, 2, res)

    def test_existing_nonempty_run_dir_refused(self):
        srv = self.fake_server([])
        run_dir = self.new_run_dir()
        os.makedirs(run_dir)
        with open(os.path.join(run_dir, "precious.txt"), "w") as f:
            f.write("keep me")
        res = self.run_task(self.server_task(srv), run_dir)
        self.assertNotEqual(res.returncode, 0, res)
        self.assertNoSignal(res)
        self.assertEqual(os.listdir(run_dir), ["precious.txt"], "the existing directory is untouched")
        self.assertEqual(srv.model_requests(), [])
        self.assertEqual(self.sandbox_ids(), [])

    def _creds(self, content, mode):
        d = self.tmpdir("creds")
        path = os.path.join(d, "credentials.json")
        with open(path, "w") as f:
            f.write(content)
        os.chmod(path, mode)
        return path

    def test_credentials_file(self):
        srv = self.fake_server([fm.reply_json(fm.text_response("ok"))] * 3)
        task = self.server_task(srv)
        good = self._creds(json.dumps({"openai_api_key": "sk-from-file-0600"}), 0o600)
        with self.subTest("0600 via --credentials"):
            res = self.run_task(task, args=["--credentials", good])
            self.assertCompleted(res)
            self.assertEqual(srv.model_requests()[-1].headers.get("authorization"), "Bearer sk-from-file-0600")
        with self.subTest("0400 via AIRLOCK_CREDENTIALS"):
            os.chmod(good, 0o400)
            res = self.run_task(task, env={"AIRLOCK_CREDENTIALS": good})
            self.assertCompleted(res)
            self.assertEqual(srv.model_requests()[-1].headers.get("authorization"), "Bearer sk-from-file-0600")
        n = len(srv.model_requests())
        for mode in (0o644, 0o640, 0o604, 0o660):
            with self.subTest("mode %o refused" % mode):
                loose = self._creds(json.dumps({"openai_api_key": "sk-loose"}), mode)
                self.assertEqual(stat.S_IMODE(os.stat(loose).st_mode), mode)
                for how in (["--credentials", loose], None):
                    run_dir = self.new_run_dir()
                    env = None if how else {"AIRLOCK_CREDENTIALS": loose}
                    res = self.run_task(task, run_dir, env=env, args=how or ())
                    self.assertNoSignal(res)
                    self.assertNotEqual(res.returncode, 0, "a %o credentials file is refused: %r" % (mode, res))
                    self.assertIn(os.path.basename(loose), res.stderr, "the refusal names the file: %r" % res)
                    self.assertEqual(len(srv.model_requests()), n, "no model request with a refused file")
                    self.assertEqual(self.sandbox_ids(), [], "no sandbox with a refused file")
        with self.subTest("not a regular file"):
            d = self.tmpdir("credsdir")
            os.chmod(d, 0o700)
            res = self.run_task(task, args=["--credentials", d])
            self.assertNoSignal(res)
            self.assertNotEqual(res.returncode, 0, res)
        with self.subTest("symlink to a 0600 file"):
            link = os.path.join(self.tmpdir("credslink"), "link.json")
            os.symlink(good, link)
            os.chmod(good, 0o600)
            # Either followed (the target is 0600) or refused; never a crash.
            res = self.run_task(task, args=["--credentials", link])
            self.assertNoSignal(res)
        self.destroy_all()


if __name__ == "__main__":
    ht.at.main()
