# SPDX-License-Identifier: Apache-2.0
"""provider.exposed_ports (docs/harness.md): the local provider asks airlockd
to publish each on a free port of the host's loopback, and the harness
reports where each is reached, as the SDK's session state keeps them
(sandbox.exposed_ports in state.json, {"PORT": {"host", "port", "tls",
"query", "url"}}), on stderr and in --events-json; a sandbox made again on
resume publishes them anew.  The service in the sandbox is a python3
http.server the model starts; the test reaches it through the URL."""

import json
import os
import re
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness_test as ht  # noqa: E402
from harness_test import fm  # noqa: E402

SERVE = ("mkdir -p /workspace/site && echo %s > /workspace/site/index.html && cd /workspace/site"
         " && (setsid python3 -m http.server %d --bind 127.0.0.1 </dev/null >/dev/null 2>&1 &)"
         " && for i in $(seq 50); do python3 -c 'import socket; socket.create_connection("
         "(\"127.0.0.1\", %d), 1)' 2>/dev/null && break; sleep 0.1; done; echo serving")


def fetch(url, timeout=10):
    """The body at url, retried briefly (the server in the sandbox may still be starting)."""
    end = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + "/", timeout=5) as r:
                return r.read().decode()
        except (urllib.error.URLError, ConnectionError, OSError):
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


class ExposedPortsTest(ht.HarnessTestCase):

    def ports_task(self, responses, ports, **provider):
        path = self.replay_task(responses)
        task = self.load_task(path)
        task["provider"]["exposed_ports"] = ports
        task["provider"].update(provider)
        with open(path, "w") as f:
            json.dump(task, f)
        return path

    def assert_endpoints_match(self, sid, recorded, ports):
        """recorded (state.json's) is what airlockd's inspect says for each port."""
        self.assertEqual(sorted(recorded), sorted(str(p) for p in ports), recorded)
        published = {p["port"]: p for p in self.client.inspect(sid)["ports"]}
        self.assertEqual(sorted(published), sorted(ports), published)
        for port in ports:
            e, p = recorded[str(port)], published[port]
            self.assertEqual((e["host"], e["port"], e["tls"], e["query"], e["url"]),
                             (p["host_address"], p["host_port"], False, "",
                              "http://127.0.0.1:%d" % p["host_port"]), (e, p))
            self.assertEqual(e["host"], "127.0.0.1")
            self.assertNotEqual(e["port"], 0)

    def test_published_reported_and_reachable(self):
        responses = [fm.calls_response([ht.exec_call("call_1", SERVE % ("marker-one", 8000, 8000))],
                                       "resp_1"),
                     fm.text_response("Serving.", "resp_2")]
        res = self.run_task(self.ports_task(responses, [8000, 8001], keep_sandbox=True),
                            args=["--events-json"])
        state = self.assertCompleted(res)
        sid = state["sandbox"]["sandbox_id"]
        recorded = state["sandbox"]["exposed_ports"]
        self.assert_endpoints_match(sid, recorded, [8000, 8001])
        self.assertNotEqual(recorded["8000"]["port"], recorded["8001"]["port"])
        # The URL the harness reported reaches the model's server in the sandbox.
        self.assertEqual(fetch(recorded["8000"]["url"]).strip(), "marker-one")
        events = [json.loads(l) for l in res.stderr.splitlines() if l.startswith("{")]
        shown = {e["port"]: e for e in events if e["event"] == "exposed_port"}
        self.assertEqual(sorted(shown), [8000, 8001], res.stderr)
        for port, e in shown.items():
            self.assertEqual((e["run_id"], e["sandbox_id"]), (state["run_id"], sid))
            self.assertEqual(e["endpoint"], recorded[str(port)])
        # Before any model turn: the URLs are known as soon as the sandbox is.
        kinds = [e["event"] for e in events]
        self.assertLess(kinds.index("exposed_port"), kinds.index("turn"), kinds)
        self.assertAuditOK(res.run_dir)

    def test_text_progress_line(self):
        res = self.run_task(self.ports_task([fm.text_response("Nothing.", "resp_1")], [9000]))
        state = self.assertCompleted(res)
        url = state["sandbox"]["exposed_ports"]["9000"]["url"]
        self.assertRegex(url, r"^http://127\.0\.0\.1:\d+$")
        self.assertIn("airlock-harness: sandbox %s: port 9000 is at %s\n"
                      % (state["sandbox"]["sandbox_id"], url), res.stderr)
        # Without keep_sandbox the sandbox and its published port are gone.
        self.assertEqual(self.sandbox_ids(), [])
        with self.assertRaises(OSError):
            fetch(url, timeout=0)

    def test_a_sandbox_made_again_publishes_again(self):
        # Killed after call_1's result is recorded; the sandbox is then lost,
        # so resume makes a new one, from the manifest or (with snapshots)
        # restored from the last snapshot: new host ports, recorded and
        # reported again.
        for snapshot, said in ((None, "resume: recreated sandbox from manifest"),
                               ({"every_turns": 1, "processes": False},
                                "resume: restored sandbox from snapshot")):
            with self.subTest(snapshot=snapshot):
                self.made_again(snapshot, said)

    def made_again(self, snapshot, said):
        responses = [fm.calls_response([ht.exec_call("call_1", "echo first")], "resp_1"),
                     fm.calls_response([ht.exec_call("call_2", SERVE % ("marker-two", 8080, 8080))],
                                       "resp_2"),
                     fm.text_response("Serving.", "resp_3")]
        path = self.ports_task(responses, [8080], keep_sandbox=True)
        if snapshot:
            task = self.load_task(path)
            task["snapshot"] = snapshot
            with open(path, "w") as f:
                json.dump(task, f)
        for k in range(2, 60):
            run_dir = self.new_run_dir()
            res = self.run_task(path, run_dir, env={ht.KILL_HOOK: str(k)})
            if not res.killed:
                self.fail("no kill point after call_1's result: %r" % res)
            state = ht.load_state(run_dir)
            done = ht.recorded_results(state)
            if ("call_1" in done and "call_2" not in done and
                    (not snapshot or state["sandbox"].get("snapshot_id"))):
                break
            self.destroy_all()
        else:
            self.fail("call_1's result was never recorded")
        old_sid = state["sandbox"]["sandbox_id"]
        old = state["sandbox"]["exposed_ports"]
        self.assert_endpoints_match(old_sid, old, [8080])
        self.destroy_all()
        res = self.resume(run_dir)
        state = self.assertCompleted(res)
        sid = state["sandbox"]["sandbox_id"]
        self.assertNotEqual(sid, old_sid)
        self.assertIn(said, res.stdout)
        recorded = state["sandbox"]["exposed_ports"]
        self.assert_endpoints_match(sid, recorded, [8080])
        self.assertRegex(res.stderr, r"airlock-harness: sandbox %s: port 8080 is at %s\n"
                         % (sid, re.escape(recorded["8080"]["url"])))
        self.assertEqual(fetch(recorded["8080"]["url"]).strip(), "marker-two")
        self.assertAuditOK(run_dir)
        self.destroy_all()

    def test_bad_exposed_ports_refused(self):
        cases = {"not a list": ("8000", "must be an array"),
                 "zero": ([0], "integers from 1 to 65535"),
                 "too big": ([65536], "integers from 1 to 65535"),
                 "fraction": ([80.5], "integers from 1 to 65535"),
                 "twice": ([8000, 8000], "port 8000 given twice"),
                 "too many": (list(range(8000, 8017)), "at most 16")}
        for what, (ports, message) in cases.items():
            with self.subTest(what):
                run_dir = self.new_run_dir()
                res = self.run_task(self.ports_task([fm.text_response("x")], ports), run_dir)
                self.assertEqual(res.returncode, 2, res)
                self.assertIn(message, res.stderr)
                self.assertFalse(os.path.exists(run_dir))
        # A provider that cannot publish ports is told so, not ignored.
        task = self.task({"api": "replay", "script": "script.jsonl"})
        task["provider"] = {"type": "cloudflare", "worker_url": "http://127.0.0.1:9",
                            "exposed_ports": [8000]}
        d = self.tmpdir("task")
        ht.write_replay(os.path.join(d, "script.jsonl"), [fm.text_response("x")])
        res = self.run_task(self.write_task(task, d))
        self.assertEqual(res.returncode, 2, res)
        self.assertIn("provider cloudflare cannot expose ports (provider.exposed_ports)", res.stderr)
        self.assertEqual(self.sandbox_ids(), [])


if __name__ == "__main__":
    ht.at.main()
