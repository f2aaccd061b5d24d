# SPDX-License-Identifier: Apache-2.0
"""The audit trail: its shape per docs/harness.md, and `audit verify`
catching an edited, deleted, inserted or reordered record by the first bad
line (exit 1, `audit: line L: <reason>`).  Each line carries its own hash,
so an edit is named by the edited line; DIR/audit.head catches records cut
off the end."""

import hashlib
import json
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness_test as ht  # noqa: E402
from harness_test import fm  # noqa: E402

TURNS = [
    fm.calls_response([ht.exec_call("c1", "echo one > one.txt"), ht.exec_call("c2", "echo two > two.txt")], "resp_1"),
    fm.calls_response([ht.exec_call("c3", "cat one.txt two.txt")], "resp_2"),
    fm.text_response("audited", "resp_3"),
]


class AuditTest(ht.HarnessTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pristine = None

    def setUp(self):
        if AuditTest.pristine is None:
            res = self.run_task(self.replay_task(TURNS))
            self.assertCompleted(res)
            AuditTest.pristine = res.run_dir
            self.destroy_all()
        self.lines = ht.audit_lines(self.pristine)
        self.assertGreaterEqual(len(self.lines), 8, "a 3-turn run with 3 tool calls has more records")

    def tampered(self, lines, raw=None):
        d = os.path.join(self.tmpdir("tamper"), "run")
        shutil.copytree(self.pristine, d)
        with open(os.path.join(d, "audit.jsonl"), "wb") as f:
            f.write(raw if raw is not None else b"".join(line + b"\n" for line in lines))
        return d

    def assertBadLine(self, run_dir, allowed):
        res = self.verify(run_dir)
        self.assertNoSignal(res)
        self.assertEqual(res.returncode, 1, res)
        out = res.stdout + res.stderr
        m = re.search(r"audit: line (\d+): \S", out)
        self.assertIsNotNone(m, "contract: 'audit: line L: <reason>': %r" % out)
        self.assertIn(int(m.group(1)), allowed, "first bad line reported: %r" % out)

    @staticmethod
    def rewrite(line, **changes):
        rec = json.loads(line)
        rec.update(changes)
        return json.dumps(rec, separators=(",", ":")).encode()

    # ---- intact ----

    def test_intact(self):
        self.assertAuditOK(self.pristine)

    def test_shape(self):
        recs = [json.loads(line) for line in self.lines]
        self.assertEqual(recs[0]["kind"], "run_start")
        self.assertEqual(recs[-1]["kind"], "run_end")
        self.assertEqual(recs[0]["prev"], ht.ZERO_HASH)
        seqs = [r["seq"] for r in recs]
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))), "seq counts up by one")
        kinds = [r["kind"] for r in recs]
        self.assertEqual(kinds.count("model_request"), 3, kinds)
        self.assertEqual(kinds.count("model_response"), 3, kinds)
        self.assertEqual(kinds.count("tool_call"), 3, kinds)
        self.assertEqual(kinds.count("tool_result"), 3, kinds)
        self.assertGreaterEqual(kinds.count("sandbox_op"), 1, kinds)
        calls = {r["data"].get("call_id"): r["data"] for r in recs if r["kind"] == "tool_call"}
        self.assertEqual(set(calls), {"c1", "c2", "c3"})
        args = calls["c3"].get("arguments")
        args = json.loads(args) if isinstance(args, str) else args
        self.assertEqual(args.get("cmd"), "cat one.txt two.txt", "tool_call records the arguments")
        resp_ids = json.dumps([r["data"] for r in recs if r["kind"] == "model_response"])
        for rid in ("resp_1", "resp_2", "resp_3"):
            self.assertIn(rid, resp_ids)
        # Each tool call precedes its result; each request precedes its response.
        for cid in ("c1", "c2", "c3"):
            i = next(i for i, r in enumerate(recs) if r["kind"] == "tool_call" and r["data"].get("call_id") == cid)
            j = next(i for i, r in enumerate(recs) if r["kind"] == "tool_result" and r["data"].get("call_id") == cid)
            self.assertLess(i, j, cid)
        # tool_result and model_response carry a sha256 digest.
        for r in recs:
            if r["kind"] in ("tool_result", "model_response"):
                digests = [v for v in r["data"].values() if isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v)]
                self.assertTrue(digests, "no sha256 digest in %r" % r)

    # ---- tampering ----

    def test_edit_middle_record(self):
        lines = list(self.lines)
        rec = json.loads(lines[3])
        rec["data"] = dict(rec["data"], forged=True)
        lines[3] = json.dumps(rec).encode()
        # Each line carries its own hash: the edited line is the one named.
        self.assertBadLine(self.tampered(lines), {4})

    def test_edit_one_byte(self):
        lines = list(self.lines)
        i = 2
        b = bytearray(lines[i])
        pos = b.index(b'"kind"') + 9
        b[pos] = ord("X") if b[pos] != ord("X") else ord("Y")
        lines[i] = bytes(b)
        self.assertBadLine(self.tampered(lines), {3})

    def test_edit_with_rechained_prev(self):
        """A forger who edits a record and fixes the next prev still breaks
        the link after that."""
        lines = list(self.lines)
        lines[3] = self.rewrite(lines[3], kind="tool_call" if json.loads(lines[3])["kind"] != "tool_call" else "snapshot")
        lines[4] = self.rewrite(lines[4], prev=hashlib.sha256(lines[3]).hexdigest())
        self.assertBadLine(self.tampered(lines), {4})

    def test_delete_record(self):
        lines = list(self.lines)
        del lines[4]
        self.assertBadLine(self.tampered(lines), {5})

    def test_delete_first_record(self):
        self.assertBadLine(self.tampered(self.lines[1:]), {1})

    def test_delete_last_record(self):
        """Dropping the run_end record: the chain alone is intact, so verify
        must know how long the trail was (state.json, or the run's status)."""
        self.assertBadLine(self.tampered(self.lines[:-1]), {len(self.lines), len(self.lines) - 1})

    def test_edit_last_record(self):
        lines = list(self.lines)
        rec = json.loads(lines[-1])
        rec["data"] = dict(rec["data"], forged=True)
        lines[-1] = json.dumps(rec).encode()
        self.assertBadLine(self.tampered(lines), {len(lines)})

    def test_delete_last_two_records(self):
        self.assertBadLine(self.tampered(self.lines[:-2]),
                           {len(self.lines) - 2, len(self.lines) - 1, len(self.lines)})

    def test_insert_copied_record(self):
        lines = list(self.lines)
        lines.insert(3, lines[1])
        self.assertBadLine(self.tampered(lines), {4})

    def test_insert_forged_record(self):
        lines = list(self.lines)
        prev = json.loads(lines[2])
        forged = {"seq": prev["seq"] + 1, "ts": prev["ts"], "kind": "tool_call",
                  "data": {"call_id": "c_forged", "name": "exec_command", "arguments": "{\"cmd\": \"true\"}"},
                  "prev": hashlib.sha256(lines[2]).hexdigest()}
        lines.insert(3, json.dumps(forged).encode())
        self.assertBadLine(self.tampered(lines), {4, 5})

    def test_reorder(self):
        lines = list(self.lines)
        lines[3], lines[4] = lines[4], lines[3]
        self.assertBadLine(self.tampered(lines), {4})

    def test_broken_json(self):
        lines = list(self.lines)
        lines[5] = lines[5][: len(lines[5]) // 2]
        self.assertBadLine(self.tampered(lines), {6})

    def test_first_prev_not_zero(self):
        lines = list(self.lines)
        lines[0] = self.rewrite(lines[0], prev="1" * 64)
        self.assertBadLine(self.tampered(lines), {1})

    def test_missing_trail(self):
        d = self.tampered(self.lines)
        os.unlink(os.path.join(d, "audit.jsonl"))
        res = self.verify(d)
        self.assertNoSignal(res)
        self.assertNotEqual(res.returncode, 0, res)

    def test_garbage_appended(self):
        d = self.tampered(None, raw=b"".join(line + b"\n" for line in self.lines) + b"\x00\xffnot json\n")
        self.assertBadLine(d, {len(self.lines) + 1})


if __name__ == "__main__":
    ht.at.main()
