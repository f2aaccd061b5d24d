#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The harness's sandboxes and their lifecycle: each carries the labels of
its run (airlock-harness/run, airlock-harness/dir); a failed run archives
its workspace and removes its sandbox; `airlock-harness gc` removes the
sandboxes of runs that are gone, completed or failed, and keeps those of
runs that may still go on."""

import json
import os
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness_test as ht  # noqa: E402
from harness_test import fm  # noqa: E402


class HarnessLifecycleTest(ht.HarnessTestCase):

    def labelled(self, run_id):
        q = urllib.parse.urlencode({"label": "airlock-harness/run=" + run_id})
        return self.client.expect(200, "GET", "/v1/sandboxes?" + q).json["sandboxes"]

    def gc(self):
        return ht.harness(["gc", "--socket", self.daemon.socket_path], timeout=60)

    def test_a_failed_run_removes_its_sandbox_and_keeps_its_workspace(self):
        # The model writes a file, then fails for good (a 400 is not retried).
        srv = self.fake_server([
            fm.reply_json(fm.calls_response([ht.exec_call("c1", "mkdir -p t && echo kept > t/f.txt")])),
            fm.reply_error(400, message="bad request")])
        res = self.run_task(self.server_task(srv))
        self.assertEqual(res.returncode, 1, res)
        state = ht.load_state(res.run_dir)
        self.assertEqual(state["status"], "failed")
        self.assertEqual(self.labelled(state["run_id"]), [])
        self.assertTrue(state["sandbox"].get("deleted"), state["sandbox"])
        self.assertAuditOK(res.run_dir)
        ops = [(r.get("data") or r).get("op") for r in ht.audit_records(res.run_dir)
               if r.get("kind") == "sandbox_op"]
        self.assertEqual(ops[-2:], ["persist_workspace", "delete"], ops)
        # Its workspace went with the run: a resume starts from it.
        archive = state["sandbox"].get("workspace_archive")
        self.assertTrue(archive, state["sandbox"])
        self.assertIn("t/f.txt", ht.tar_files(os.path.join(res.run_dir, archive)))

    def test_sandboxes_carry_the_run_labels(self):
        task = self.replay_task([fm.text_response("done")],
                                provider={"type": "local", "socket": self.daemon.socket_path,
                                          "rootfs": self.rootfs, "keep_sandbox": True})
        res = self.run_task(task)
        state = self.assertCompleted(res)
        got = self.labelled(state["run_id"])
        self.assertEqual(len(got), 1, got)
        self.assertEqual(got[0]["labels"], {"airlock-harness/run": state["run_id"],
                                            "airlock-harness/dir": os.path.realpath(res.run_dir)})
        # The run completed: its kept sandbox is a leftover for gc.
        g = self.gc()
        self.assertEqual(g.returncode, 0, g)
        self.assertIn("%s (run %s: its run completed)" % (got[0]["id"], state["run_id"]), g.stdout)
        self.assertEqual(self.labelled(state["run_id"]), [])

    def run_dir_with_status(self, run_id, status):
        d = self.tmpdir(run_id)
        with open(os.path.join(d, "state.json"), "w") as f:
            json.dump({"version": 1, "run_id": run_id, "status": status, "items": [],
                       "pending_calls": [], "sandbox": {}, "sessions": {}}, f)
        return d

    def test_gc_keeps_live_runs_and_removes_orphans(self):
        live = self.sandbox(labels={"airlock-harness/run": "live-run",
                                    "airlock-harness/dir": self.run_dir_with_status("live-run",
                                                                                    "running")})
        failed = self.sandbox(labels={"airlock-harness/run": "failed-run",
                                      "airlock-harness/dir": self.run_dir_with_status("failed-run",
                                                                                      "failed")})
        orphan = self.sandbox(labels={"airlock-harness/run": "gone-run",
                                      "airlock-harness/dir": os.path.join(self.workdir, "no-such")})
        unknown = self.sandbox(labels={"airlock-harness/run": "far-run"})  # no dir: not judged
        other = self.sandbox(labels={"owner": "someone else"})
        g = self.gc()
        self.assertEqual(g.returncode, 0, g)
        self.assertEqual(sorted(g.stdout.splitlines()),
                         sorted(["%s (run gone-run: its run directory is gone)" % orphan["id"],
                                 "%s (run failed-run: its run failed)" % failed["id"]]))
        ids = {s["id"] for s in self.client.list()}
        self.assertNotIn(orphan["id"], ids)
        self.assertNotIn(failed["id"], ids)
        for kept in (live, unknown, other):
            self.assertIn(kept["id"], ids)
        bad = ht.harness(["gc", "--socket"], timeout=30)
        self.assertEqual(bad.returncode, 2, bad)


if __name__ == "__main__":
    ht.at.main()
