# SPDX-License-Identifier: Apache-2.0
"""Memory (issue 5, deliverable 8; docs/harness.md, "memory"), end to end
against a real airlockd, the fake model server and the replay model.

* Layout: a completed run with memory generation leaves, in its workspace,
  the SDK memory capability's files: memories/memory_summary.md,
  memories/MEMORY.md, memories/raw_memories/<rollout>.md,
  memories/rollout_summaries/<rollout>_<slug>.md, memories/raw_memories.md,
  memories/phase_two_selection.json and sessions/<rollout>.jsonl.  Read
  through airlockd's file API (sandbox kept) and from the run's final
  workspace archive.
* Generation: phase one is one call per rollout, phase two one
  consolidation call; each goes to its own model, endpoint and wire format,
  with its own retry limit (the fake servers record every request).
* Reading: a run started from an earlier run's snapshot or workspace
  archive gets memory_summary.md in its instructions, cut to
  summary_budget_chars characters; a run without memory gets none.
* A failing phase is a warning: the run still completes.
* A bad memory section is refused with exit 2 before anything is created.
"""

import json
import os
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness_test as ht  # noqa: E402
from harness_test import fm  # noqa: E402

P1_MODEL = "phase1-mini"
P2_MODEL = "phase2-large"
AGENT_MODEL = "agent-model"

# The summary phase two writes: unique tokens, each unit 7 characters but 9
# bytes (the arrow is 3 bytes in UTF-8), so a budget counted in bytes would
# keep visibly fewer characters than one counted in characters.
SUMMARY = " \u2192 ".join("M%03d" % i for i in range(100))
BUDGET = 120


def phase1_answer(n):
    """Phase one's answer for rollout n: the JSON object as the model's text."""
    return fm.text_response(json.dumps({
        "rollout_summary": "## Run %d\nBuilt the notes with make. SUMMARY-MARK-%d" % (n, n),
        "rollout_slug": "notes-run-%d" % n,
        "raw_memory": "- RAW-MARK-%d: the notes are built with `make -j2`\n" % n}))


def phase2_answer(n, summary):
    # Chatter and a code fence around the object are tolerated.
    return fm.text_response("Here it is:\n```json\n%s\n```" % json.dumps({
        "memory_md": "# Handbook\nHANDBOOK-%d: build the notes with make -j2.\n" % n,
        "memory_summary": summary}))


def agent_turns(n):
    """The agent's conversation of run n: one tool call, then the answer."""
    return [fm.calls_response([ht.exec_call(
        "call_%d" % n, "echo run-%d >> /workspace/notes.txt; echo TOOL-MARK-%d" % (n, n))]),
        fm.text_response("FINAL-MARK-%d" % n)]


def strip_prefix(name):
    for prefix in ("./", "/workspace/", "workspace/"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def archive_files(path):
    """{path relative to the workspace: bytes} of the regular files of a
    workspace archive."""
    out = {}
    with tarfile.open(path) as tf:
        for m in tf.getmembers():
            if m.isfile():
                out[strip_prefix(m.name)] = tf.extractfile(m).read()
    return out


def final_archive(run_dir):
    rel = (ht.load_state(run_dir).get("sandbox") or {}).get("workspace_archive")
    assert rel, "no workspace archive named in %s/state.json" % run_dir
    return os.path.join(run_dir, rel)


def request_text(req):
    """Everything a model request says, as text (JSON strings decoded)."""
    return ht.text_of(req.json)


def kept_chars(text, summary):
    """(head, tail): how many characters of summary's beginning and of its
    end appear in text."""
    head = 0
    while head < len(summary) and summary[:head + 1] in text:
        head += 1
    tail = 0
    while tail < len(summary) and summary[len(summary) - tail - 1:] in text:
        tail += 1
    return head, tail


class MemoryTest(ht.HarnessTestCase):

    # ---- helpers ----

    def memory_servers(self, p1_script, p2_script):
        return self.fake_server(p1_script), self.fake_server(p2_script)

    def memory_task(self, agent, p1, p2, memory=None, **fields):
        mem = {"enabled": True, "summary_budget_chars": BUDGET,
               # Phase one speaks Chat Completions to its own server and may
               # not retry; phase two speaks Responses to another and may
               # retry once.  The agent's model may not retry at all.
               "phase1_model": {"api": "chat", "name": P1_MODEL, "base_url": p1.base_url,
                                "max_retries": 0},
               "phase2_model": {"api": "responses", "name": P2_MODEL, "base_url": p2.base_url,
                                "max_retries": 1, "retry_base_ms": 10}}
        mem.update(memory or {})
        model = {"api": "responses", "name": AGENT_MODEL, "base_url": agent.base_url,
                 "timeout_ms": 20000, "max_retries": 0}
        return self.write_task(self.task(model, memory=mem, **fields))

    def assertPhaseRequests(self, p1, p2, n_p1, n_p2):
        r1, r2 = p1.model_requests(), p2.model_requests()
        self.assertEqual(len(r1), n_p1, "phase one requests: %r" % r1)
        self.assertEqual(len(r2), n_p2, "phase two requests: %r" % r2)
        for r in r1:
            self.assertEqual((r.api, (r.json or {}).get("model")), ("chat", P1_MODEL),
                             "phase one goes to its own model over its own API")
        for r in r2:
            self.assertEqual((r.api, (r.json or {}).get("model")), ("responses", P2_MODEL),
                             "phase two goes to its own model over its own API")
        return r1, r2

    def assertRolloutLayout(self, files, run_id, n, slug):
        """One rollout's files, as the SDK's memory capability writes them."""
        session = files.get("sessions/%s.jsonl" % run_id)
        self.assertIsNotNone(session, "sessions/%s.jsonl missing: %s" % (run_id, sorted(files)))
        lines = session.decode().splitlines()
        self.assertEqual(len(lines), 1, "one segment per run: %r" % lines)
        seg = json.loads(lines[0])
        self.assertEqual(seg.get("rollout_id"), run_id)
        self.assertIn("updated_at", seg)
        self.assertIn("INPUT-MARK-%d" % n, json.dumps(seg.get("input")))
        gen = seg.get("generated_items") or []
        self.assertIn(("function_call", "call_%d" % n),
                      [(i.get("type"), i.get("call_id")) for i in gen], gen)
        outs = [i for i in gen if i.get("type") == "function_call_output"]
        self.assertTrue(outs and "TOOL-MARK-%d" % n in ht.text_of(outs[0].get("output")), gen)
        self.assertEqual(seg.get("terminal_metadata", {}).get("terminal_state"), "completed", seg)
        self.assertEqual(seg.get("final_output"), "FINAL-MARK-%d" % n)

        summary_file = "rollout_summaries/%s_%s.md" % (run_id, slug)
        raw = files.get("memories/raw_memories/%s.md" % run_id)
        self.assertIsNotNone(raw, "raw memory of %s missing: %s" % (run_id, sorted(files)))
        head, _, body = raw.decode().partition("\n\n")
        self.assertEqual([ln.split(":", 1)[0] for ln in head.splitlines()],
                         ["rollout_id", "updated_at", "rollout_path", "rollout_summary_file",
                          "terminal_state"], raw)
        self.assertIn("rollout_id: %s\n" % run_id, head + "\n")
        self.assertIn("rollout_path: sessions/%s.jsonl\n" % run_id, head + "\n")
        self.assertIn("rollout_summary_file: %s\n" % summary_file, head + "\n")
        self.assertIn("terminal_state: completed", head)
        self.assertIn("RAW-MARK-%d" % n, body)

        rs = files.get("memories/" + summary_file)
        self.assertIsNotNone(rs, "%s missing: %s" % (summary_file, sorted(files)))
        head, _, body = rs.decode().partition("\n\n")
        self.assertEqual([ln.split(":", 1)[0] for ln in head.splitlines()],
                         ["session_id", "updated_at", "rollout_path", "terminal_state"], rs)
        self.assertIn("rollout_path: sessions/%s.jsonl" % run_id, head)
        self.assertIn("SUMMARY-MARK-%d" % n, body)

    def assertConsolidated(self, files, n, summary, rollouts):
        self.assertEqual(files.get("memories/MEMORY.md"),
                         ("# Handbook\nHANDBOOK-%d: build the notes with make -j2.\n" % n).encode())
        self.assertEqual(files.get("memories/memory_summary.md"), summary.encode())
        merged = files.get("memories/raw_memories.md", b"").decode()
        for k in rollouts:
            self.assertIn("RAW-MARK-%d" % k, merged, "raw_memories.md merges every selected one")
        sel = json.loads(files.get("memories/phase_two_selection.json", b"{}"))
        self.assertEqual(sorted(e.get("rollout_id") for e in sel.get("selected", [])),
                         sorted(rollouts.values()), sel)

    def snapshot(self, sid):
        r = self.client.request("POST", "/v1/sandboxes/%s/snapshots" % sid, {"processes": False},
                                timeout=120)
        self.assertEqual(r.status, 201, r)
        snap = r.json["id"]
        self.addCleanup(self.client.request, "DELETE", "/v1/snapshots/" + snap)
        return snap

    # ---- the tests ----

    def test_generate_then_read_from_snapshot_and_archive(self):
        # Run 1: an empty workspace, memory on; the sandbox is kept so its
        # workspace can be read through airlockd and snapshotted.
        agent = self.fake_server([fm.reply_json(t) for t in agent_turns(1)])
        summary1 = "SUMMARY-ONE: notes are built with make -j2."
        p1, p2 = self.memory_servers([fm.reply_json(phase1_answer(1))],
                                     [fm.reply_error(503), fm.reply_json(phase2_answer(1, summary1))])
        task1 = self.memory_task(agent, p1, p2, input="INPUT-MARK-1: build the notes.",
                                 provider={"type": "local", "socket": self.daemon.socket_path,
                                           "rootfs": self.rootfs, "keep_sandbox": True})
        res1 = self.run_task(task1)
        state1 = self.assertCompleted(res1)
        run1 = state1["run_id"]
        self.assertNotIn("memory", res1.stderr.lower(), "no memory warning: %r" % res1)
        self.assertNotIn("MEMORY_SUMMARY", agent.model_requests()[0].json.get("instructions", ""),
                         "nothing to read before the first run")
        self.assertEqual([r.json.get("model") for r in agent.model_requests()], [AGENT_MODEL] * 2)

        # Phase one once for the rollout, phase two once (retried once after
        # the 503: its own max_retries, where the agent's model has none).
        (q1,), q2 = self.assertPhaseRequests(p1, p2, 1, 2)
        text1 = request_text(q1)
        for mark in ("INPUT-MARK-1", "TOOL-MARK-1", "FINAL-MARK-1", run1):
            self.assertIn(mark, text1, "phase one is given the rollout")
        text2 = request_text(q2[1])
        self.assertIn("RAW-MARK-1", text2, "phase two is given the raw memory")
        audit = [r["data"] for r in ht.audit_records(res1.run_dir) if r["kind"] == "model_request"]
        self.assertEqual([(a.get("phase"), a.get("model")) for a in audit if a.get("phase")],
                         [("phase1", P1_MODEL), ("phase2", P2_MODEL)], audit)
        self.assertAuditOK(res1.run_dir)

        sid = state1["sandbox"]["sandbox_id"]
        live = self.workspace_files(sid)
        self.assertRolloutLayout(live, run1, 1, "notes-run-1")
        self.assertConsolidated(live, 1, summary1, {1: run1})
        archived = archive_files(final_archive(res1.run_dir))
        self.assertEqual({k: v for k, v in archived.items() if k.startswith(("memories/", "sessions/"))},
                         {k: v for k, v in live.items() if k.startswith(("memories/", "sessions/"))},
                         "the final workspace archive carries the memory")

        # Run 2 starts from a snapshot of run 1's sandbox and reads its memory.
        snap = self.snapshot(sid)
        self.client.request("DELETE", "/v1/sandboxes/" + sid)
        agent.reset([fm.reply_json(t) for t in agent_turns(2)])
        p1.reset([fm.reply_json(phase1_answer(2))])
        p2.reset([fm.reply_json(phase2_answer(2, SUMMARY))])
        task2 = self.memory_task(agent, p1, p2, input="INPUT-MARK-2: rebuild the notes.",
                                 start={"snapshot": snap})
        res2 = self.run_task(task2)
        state2 = self.assertCompleted(res2)
        run2 = state2["run_id"]
        instr = agent.model_requests()[0].json.get("instructions", "")
        self.assertIn(summary1, instr, "a run started from a snapshot reads the summary")
        self.assertIn("memories/MEMORY.md", instr, "the memory section points at the handbook")
        self.assertEqual(state2.get("instructions"), instr)
        # Phase one only for the new rollout; phase two consolidates both.
        (q1,), (q2,) = self.assertPhaseRequests(p1, p2, 1, 1)
        self.assertIn(run2, request_text(q1))
        self.assertNotIn("INPUT-MARK-1", request_text(q1), "phase one runs once per rollout")
        text2 = request_text(q2)
        for mark in ("RAW-MARK-1", "RAW-MARK-2", "HANDBOOK-1", summary1):
            self.assertIn(mark, text2, "phase two is given the old memory and both raw memories")
        files2 = archive_files(final_archive(res2.run_dir))
        self.assertRolloutLayout(files2, run1, 1, "notes-run-1")
        self.assertRolloutLayout(files2, run2, 2, "notes-run-2")
        self.assertConsolidated(files2, 2, SUMMARY, {1: run1, 2: run2})
        self.assertEqual(files2.get("notes.txt"), b"run-1\nrun-2\n")
        self.assertAuditOK(res2.run_dir)

        # Run 3 starts from run 2's final workspace archive: the summary, cut
        # to the budget (counted in characters), is in its instructions.
        agent.reset([fm.reply_json(fm.text_response("FINAL-MARK-3"))])
        p1.reset([])
        p2.reset([])
        archive2 = final_archive(res2.run_dir)
        task3 = self.memory_task(agent, p1, p2, memory={"generate": False},
                                 start={"workspace_archive": archive2})
        res3 = self.run_task(task3)
        self.assertCompleted(res3)
        instr = agent.model_requests()[0].json.get("instructions", "")
        head, tail = kept_chars(instr, SUMMARY)
        self.assertNotIn(SUMMARY, instr, "a summary over the budget is cut")
        self.assertTrue(head > 0 and tail > 0, "the summary's head and tail are kept: %r" % instr)
        self.assertLessEqual(head + tail, BUDGET, "at most the budget is kept: %r" % instr)
        self.assertGreaterEqual(head + tail, BUDGET - 7,
                                "the budget counts characters, not bytes: kept %d" % (head + tail))
        self.assertNotIn("M050", instr, "the middle is what goes")
        self.assertPhaseRequests(p1, p2, 0, 0)
        self.assertEqual(archive_files(final_archive(res3.run_dir)).get("memories/memory_summary.md"),
                         SUMMARY.encode(), "a run that does not generate leaves memory alone")

        # Run 4: the same start without memory: nothing of it in the instructions.
        agent.reset([fm.reply_json(fm.text_response("FINAL-MARK-4"))])
        task4 = self.write_task(self.task({"api": "responses", "name": AGENT_MODEL,
                                           "base_url": agent.base_url, "max_retries": 0},
                                          start={"workspace_archive": archive2}))
        res4 = self.run_task(task4)
        self.assertCompleted(res4)
        instr = agent.model_requests()[0].json.get("instructions", "")
        self.assertEqual(kept_chars(instr, SUMMARY), (0, 0), "no memory, no summary: %r" % instr)
        self.assertNotIn("MEMORY_SUMMARY", instr)
        self.assertNotIn("memories/", instr)
        self.assertPhaseRequests(p1, p2, 0, 0)

        # Run 5: phase two's own limit on raw memories: with 1, only the
        # newest rollout's is consolidated.
        agent.reset([fm.reply_json(t) for t in agent_turns(5)])
        p1.reset([fm.reply_json(phase1_answer(5))])
        p2.reset([fm.reply_json(phase2_answer(5, "SUMMARY-FIVE"))])
        task5 = self.memory_task(agent, p1, p2, memory={"max_raw_memories": 1},
                                 input="INPUT-MARK-5: once more.",
                                 start={"workspace_archive": archive2})
        res5 = self.run_task(task5)
        run5 = self.assertCompleted(res5)["run_id"]
        _, (q2,) = self.assertPhaseRequests(p1, p2, 1, 1)
        text2 = request_text(q2)
        self.assertIn("RAW-MARK-5", text2)
        for old in ("RAW-MARK-1", "RAW-MARK-2"):
            self.assertNotIn(old, text2, "max_raw_memories=1 keeps only the newest")
        files5 = archive_files(final_archive(res5.run_dir))
        self.assertRolloutLayout(files5, run5, 5, "notes-run-5")
        self.assertConsolidated(files5, 5, "SUMMARY-FIVE", {5: run5})
        self.assertIn("memories/raw_memories/%s.md" % run1, files5,
                      "raw memories left out of phase two are kept")

    def test_phase_failure_is_a_warning(self):
        """Phase one answered 503 and may not retry: one request, no phase
        two, and the run still completes, with the rollout recorded."""
        agent = self.fake_server([fm.reply_json(t) for t in agent_turns(1)])
        p1, p2 = self.memory_servers([fm.reply_error(503)] * 3,
                                     [fm.reply_json(phase2_answer(1, "unused"))])
        task = self.load_task(self.memory_task(agent, p1, p2, input="INPUT-MARK-1: build."))
        task["model"]["max_retries"] = 2  # the agent's may; phase one's is 0
        res = self.run_task(self.write_task(task))
        state = self.assertCompleted(res)
        self.assertIn("memory", res.stderr.lower(), "the failure is reported: %r" % res)
        self.assertPhaseRequests(p1, p2, 1, 0)
        files = archive_files(final_archive(res.run_dir))
        self.assertIn("sessions/%s.jsonl" % state["run_id"], files)
        self.assertEqual(files.get("memories/MEMORY.md"), b"")
        self.assertEqual(files.get("memories/memory_summary.md"), b"")
        self.assertEqual([k for k in files if k.startswith("memories/raw_memories/")], [])
        self.assertAuditOK(res.run_dir)

    def test_replay_phases(self):
        """Offline: the agent and both phases replayed, each from its own
        script; the memory is laid out the same way."""
        d = self.tmpdir("replay")
        ht.write_replay(os.path.join(d, "agent.jsonl"), agent_turns(1))
        ht.write_replay(os.path.join(d, "p1.jsonl"), [phase1_answer(1)])
        ht.write_replay(os.path.join(d, "p2.jsonl"), [phase2_answer(1, "REPLAYED-SUMMARY")])
        task = self.task({"api": "replay", "script": "agent.jsonl"},
                         input="INPUT-MARK-1: build the notes.",
                         memory={"enabled": True, "phase1_model": {"script": "p1.jsonl"},
                                 "phase2_model": {"script": "p2.jsonl"}})
        res = self.run_task(self.write_task(task, d))
        state = self.assertCompleted(res)
        self.assertNotIn("memory", res.stderr.lower(), res)
        files = archive_files(final_archive(res.run_dir))
        self.assertRolloutLayout(files, state["run_id"], 1, "notes-run-1")
        self.assertConsolidated(files, 1, "REPLAYED-SUMMARY", {1: state["run_id"]})

    def test_bad_memory_config_refused(self):
        agent = self.fake_server([])
        p1, p2 = self.memory_servers([], [])
        good = self.load_task(self.memory_task(agent, p1, p2))
        cases = {
            "not an object": ("yes", "memory must be an object"),
            "enabled not a bool": ({"enabled": "yes"}, "memory.enabled"),
            "unknown key": ({"enabled": True, "budget": 10}, "memory.budget"),
            "negative budget": ({"enabled": True, "summary_budget_chars": -1}, "summary_budget_chars"),
            "fractional budget": ({"enabled": True, "summary_budget_chars": 1.5}, "summary_budget_chars"),
            "budget as a string": ({"enabled": True, "summary_budget_chars": "4000"}, "summary_budget_chars"),
            "no raw memories": ({"enabled": True, "max_raw_memories": 0}, "max_raw_memories"),
            "absolute memories_dir": ({"enabled": True, "memories_dir": "/etc"}, "memories_dir"),
            "escaping memories_dir": ({"enabled": True, "memories_dir": "../up"}, "memories_dir"),
            "empty memories_dir": ({"enabled": True, "memories_dir": ""}, "memories_dir"),
            "memories_dir is the workspace": ({"enabled": True, "memories_dir": "./"}, "memories_dir"),
            "escaping sessions_dir": ({"enabled": True, "sessions_dir": "a/../../b"}, "sessions_dir"),
            "empty sessions_dir": ({"enabled": True, "sessions_dir": ""}, "sessions_dir"),
            "unknown phase api": ({"enabled": True, "phase1_model": {"api": "telepathy"}},
                                  "phase1_model.api"),
            "phase model not an object": ({"enabled": True, "phase2_model": "gpt"}, "phase2_model"),
            "unknown phase key": ({"enabled": True, "phase1_model": {"temperature": 1}},
                                  "phase1_model.temperature"),
            "replay phase without script": ({"enabled": True, "phase2_model": {"api": "replay"}},
                                            "phase2_model"),
            "missing phase script": ({"enabled": True, "phase1_model": {"api": "replay",
                                                                        "script": "missing.jsonl"}},
                                     "missing.jsonl"),
            "empty phase model name": ({"enabled": True, "phase1_model": {"name": ""}},
                                       "phase1_model.name"),
            "phase timeout 0": ({"enabled": True, "phase2_model": {"timeout_ms": 0}},
                                "phase2_model.timeout_ms"),
            "credential in a phase model": ({"enabled": True, "phase2_model": {"api_key": "sk-x"}},
                                            "api_key"),
            "bad and disabled": ({"enabled": False, "max_raw_memories": -5}, "max_raw_memories"),
        }
        for name, (memory, named) in cases.items():
            with self.subTest(name):
                path = self.write_task(dict(good, memory=memory))
                run_dir = self.new_run_dir()
                res = self.run_task(path, run_dir)
                self.assertNoSignal(res)
                self.assertEqual(res.returncode, 2, res)
                self.assertIn(named, res.stderr, "the error names the setting: %r" % res)
                self.assertFalse(os.path.exists(run_dir), "nothing is created on refusal")
        self.assertEqual(self.sandbox_ids(), [], "no sandbox is created on refusal")
        for srv in (agent, p1, p2):
            self.assertEqual(srv.model_requests(), [], "no model request on refusal")


if __name__ == "__main__":
    ht.at.main()
