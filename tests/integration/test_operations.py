#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Operating airlockd: a strict API (unknown keys, wrong types and unknown
query parameters are a 400 naming them, on every route), sandbox lifetimes
(ttl, idle_timeout, labels, kept across a restart), GET /v1/health,
GET /v1/metrics (parsed with prometheus_client, Debian's
python3-prometheus-client), --log-format json and --version.

Run with Debian's /usr/bin/python3 (meson does), which has prometheus_client.
"""

import json
import os
import subprocess
import time

import airlock_test as at

from prometheus_client.parser import text_string_to_metric_families


def error_of(resp):
    """The (status, message) of an error answer."""
    body = resp.json or {}
    return resp.status, (body.get("error") or {}).get("message", "")


class StrictApiTest(at.AirlockTestCase):
    def refused(self, method, path, body, *needles, client=None):
        resp = (client or self.client).request(method, path, body)
        status, msg = error_of(resp)
        self.assertEqual(status, 400, "%s %s %r: %r" % (method, path, body, resp.body[:500]))
        for n in needles:
            self.assertIn(n, msg)
        return msg

    def test_create_refuses_unknown_keys_with_a_suggestion(self):
        before = {sb["id"] for sb in self.client.list()}
        msg = self.refused("POST", "/v1/sandboxes", {"limit": {"memory": "64M"}},
                           '"limit"', "create request", 'did you mean "limits"')
        self.assertEqual(msg, 'unknown key "limit" in create request (did you mean "limits"?)')
        self.refused("POST", "/v1/sandboxes", {"limits": {"mem": "64M"}},
                     'unknown key "mem" in limits', 'did you mean "memory"')
        self.refused("POST", "/v1/sandboxes", {"frobnicate": 1},
                     'unknown key "frobnicate" in create request')
        # A create's exec is an exec request: its keys are checked too.
        self.refused("POST", "/v1/sandboxes", {"exec": {"argv": ["true"], "timeout": 5}},
                     'unknown key "timeout" in exec request', 'did you mean "timeout_ms"')
        # Nothing was made by any of them.
        self.assertEqual({sb["id"] for sb in self.client.list()}, before)

    def test_create_refuses_wrong_types_and_duplicates(self):
        self.refused("POST", "/v1/sandboxes", {"name": 5},
                     '"name" in create request must be a string (got a number)')
        self.refused("POST", "/v1/sandboxes", {"limits": {"pids": "64"}},
                     '"pids" in limits must be a number (got a string)')
        self.refused("POST", "/v1/sandboxes", {"limits": "64M"},
                     '"limits" in create request must be an object')
        self.refused("POST", "/v1/sandboxes", {"ttl": "5"},
                     '"ttl" in create request must be a number (got a string)')
        self.refused("POST", "/v1/sandboxes", {"remove": 1, "exec": {"argv": ["true"]}},
                     '"remove" in create request must be a boolean')
        resp = self.client.request("POST", "/v1/sandboxes", b'{"name": "a", "name": "b"}',
                                   headers={"Content-Type": "application/json"})
        self.assertEqual(error_of(resp), (400, 'key "name" given twice in create request'))

    def test_null_is_absent_where_it_was_before(self):
        sb = self.sandbox(name=None, limits={"memory": None, "pids": 64}, env=None)
        self.assertEqual(self.out(sb["id"], "echo ok", cwd=None, timeout_ms=None), "ok\n")

    def test_exec_refuses_unknown_keys_and_types(self):
        sid = self.sandbox()["id"]
        path = "/v1/sandboxes/%s/exec" % sid
        self.refused("POST", path, {"argv": ["true"], "timeout": 5},
                     'unknown key "timeout" in exec request (did you mean "timeout_ms"?)')
        self.refused("POST", path, {"argv": ["true"], "timeout_ms": "5"},
                     '"timeout_ms" in exec request must be a number (got a string)')
        self.refused("POST", path, {"argv": "true"}, '"argv" in exec request must be an array')
        self.refused("POST", path, {"command": "true", "yeild_ms": 5},
                     'did you mean "yield_ms"')
        self.refused("POST", path, {"command": "true", "keep_stdin_open": "yes"},
                     '"keep_stdin_open" in exec request must be a boolean')
        # No command ran: the sandbox is still idle and fine.
        self.assertEqual(self.out(sid, "echo fine"), "fine\n")

    def test_stdin_refuses_unknown_keys(self):
        sid = self.sandbox()["id"]
        r = self.client.exec(sid, argv=["cat"], keep_stdin_open=True, yield_ms=50)
        self.assertTrue(r["running"], r)
        path = "/v1/sandboxes/%s/processes/%s/stdin" % (sid, r["process_id"])
        self.refused("POST", path, {"data": "x", "clsoe": True},
                     'unknown key "clsoe" in stdin request (did you mean "close"?)')
        self.refused("POST", path, {"data": 5}, '"data" in stdin request must be a string')
        done = self.client.stdin(sid, r["process_id"], data="hi", close=True, yield_ms=5000)
        self.assertEqual(done.status, 200, done.body)
        self.assertEqual(done.json["stdout"], "hi")

    def test_snapshot_and_restore_refuse_unknown_keys(self):
        sid = self.sandbox()["id"]
        self.refused("POST", "/v1/sandboxes/%s/snapshots" % sid, {"process": False},
                     'unknown key "process" in snapshot request (did you mean "processes"?)')
        self.refused("POST", "/v1/sandboxes/%s/snapshots" % sid, {"processes": "no"},
                     '"processes" in snapshot request must be a boolean')
        snap = self.client.expect(201, "POST", "/v1/sandboxes/%s/snapshots" % sid,
                                  {"processes": False}).json
        self.addCleanup(self.client.request, "DELETE", "/v1/snapshots/" + snap["id"])
        # A restore takes its settings from the snapshot: env is not one it takes.
        self.refused("POST", "/v1/sandboxes", {"snapshot": snap["id"], "env": {"A": "1"}},
                     'unknown key "env" in create request (from a snapshot)')
        restored = self.sandbox(snapshot=snap["id"], labels={"from": "snapshot"})
        self.assertEqual(restored["labels"], {"from": "snapshot"})

    def test_unknown_query_parameters_are_refused(self):
        sid = self.sandbox()["id"]
        self.refused("GET", "/v1/sandboxes/%s/files?path=/etc/hostname&paht=x" % sid, None,
                     'unknown query parameter "paht" of /v1/sandboxes/{id}/files',
                     'did you mean "path"')
        self.refused("POST", "/v1/sandboxes/%s/dirs?path=d&parent=1" % sid, None,
                     'did you mean "parents"')
        self.refused("DELETE", "/v1/sandboxes/%s?wiat=0" % sid, None, 'did you mean "wait"')
        self.refused("GET", "/v1/sandboxes?lable=a=b", None, 'did you mean "label"')
        self.refused("GET", "/v1/sandboxes/%s/events?sinse=3" % sid, None,
                     'did you mean "since"')
        self.refused("GET", "/v1/info?verbose=1", None, 'unknown query parameter "verbose"')
        # The sandbox was not deleted by the refused DELETE.
        self.client.inspect(sid)


class LifetimeTest(at.AirlockTestCase):
    def test_labels_are_kept_listed_and_filtered(self):
        a = self.sandbox(labels={"run": "r1", "airlock.dev/role": "worker"})
        b = self.sandbox(labels={"run": "r2"})
        plain = self.sandbox()
        self.assertNotIn("labels", plain)  # summaries stay as they were without labels
        self.assertEqual(self.client.inspect(a["id"])["labels"],
                         {"run": "r1", "airlock.dev/role": "worker"})
        got = self.client.expect(200, "GET", "/v1/sandboxes?label=run=r1").json["sandboxes"]
        self.assertEqual([s["id"] for s in got], [a["id"]])
        got = self.client.expect(200, "GET", "/v1/sandboxes?label=run=r1&label=airlock.dev/role=x"
                                 ).json["sandboxes"]
        self.assertEqual(got, [])
        got = self.client.expect(200, "GET", "/v1/sandboxes?label=run=r2&state=running"
                                 ).json["sandboxes"]
        self.assertEqual([s["id"] for s in got], [b["id"]])
        self.assertEqual(error_of(self.client.request("GET", "/v1/sandboxes?label=run"))[0], 400)
        self.assertEqual(error_of(self.client.request("GET", "/v1/sandboxes?state=dead"))[0], 400)

    def test_bad_labels_and_lifetimes_are_refused(self):
        for body, needle in [
            ({"labels": {"k": 1}}, "labels.k must be a string"),
            ({"labels": {"-k": "v"}}, 'invalid key "-k"'),
            ({"labels": {"a=b": "v"}}, 'invalid key "a=b"'),
            ({"labels": {"k": "x" * 256}}, "at most 255 bytes"),
            ({"labels": {"k": "a\nb"}}, "control characters"),
            ({"labels": {"k%d" % i: "v" for i in range(33)}}, "at most 32"),
            ({"ttl": -1}, "ttl must be a whole number of seconds"),
            ({"ttl": 1.5}, "ttl must be a whole number of seconds"),
            ({"idle_timeout": 10**9}, "idle_timeout must be a whole number of seconds"),
        ]:
            status, msg = error_of(self.client.request("POST", "/v1/sandboxes", body))
            self.assertEqual(status, 400, body)
            self.assertIn(needle, msg)

    def wait_gone(self, sid, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.client.request("GET", "/v1/sandboxes/" + sid).status == 404:
                return time.monotonic()
            time.sleep(0.1)
        self.fail("sandbox %s still there after %ss" % (sid, timeout))

    def test_ttl_destroys_the_sandbox(self):
        t0 = time.monotonic()
        sb = self.sandbox(ttl=2, labels={"t": "ttl"})
        self.assertEqual(sb["ttl"], 2)
        self.assertIn("expires", sb)
        # Activity does not extend a ttl.
        self.assertEqual(self.out(sb["id"], "echo x"), "x\n")
        gone = self.wait_gone(sb["id"], 10)
        self.assertGreaterEqual(gone - t0, 1.0)
        self.assertIn("its ttl (2 s) expired", self.daemon.log())
        # Torn down by the reaper after the answer: nothing stays.
        end = time.monotonic() + 10
        while at.leftovers(self.daemon.state_dir, [sb["id"]], daemon_running=True):
            self.assertLess(time.monotonic(), end, at.leftovers(
                self.daemon.state_dir, [sb["id"]], daemon_running=True))
            time.sleep(0.2)

    def test_idle_timeout_counts_from_the_last_activity(self):
        sb = self.sandbox(idle_timeout=2)
        sid = sb["id"]
        # A command running longer than the idle timeout is activity.
        r = self.sh(sid, "sleep 3; echo done")
        self.assertEqual(r["stdout"], "done\n")
        for _ in range(3):  # activity every second keeps it
            time.sleep(1)
            self.assertEqual(self.client.read_file(sid, "/etc/hostname").status, 200)
        t_last = time.monotonic()
        gone = self.wait_gone(sid, 10)
        self.assertGreaterEqual(gone - t_last, 1.0)

    def test_ttl_survives_a_restart(self):
        sb = self.sandbox(ttl=4, labels={"kept": "yes"})
        self.daemon.stop()
        self.daemon.start()
        back = self.client.inspect(sb["id"])
        self.assertEqual(back["labels"], {"kept": "yes"})
        self.assertEqual(back["ttl"], 4)
        self.assertEqual(back["expires"], sb["expires"])
        self.wait_gone(sb["id"], 10)


class ObservabilityTest(at.AirlockTestCase):
    def metrics(self):
        resp = self.client.expect(200, "GET", "/v1/metrics")
        self.assertTrue((resp.header("Content-Type") or "").startswith("text/plain; version=0.0.4"),
                        resp.headers)
        text = resp.body.decode()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        return text, families

    @staticmethod
    def value(families, family, name, **labels):
        for s in families[family].samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
        return None

    def test_health_is_cheap_and_ok(self):
        h = self.client.expect(200, "GET", "/v1/health").json
        self.assertEqual(h["status"], "ok")
        self.assertEqual(h["version"], self.client.info()["version"])
        self.assertEqual(error_of(self.client.request("POST", "/v1/health"))[0], 405)

    def test_metrics_parse_and_count(self):
        _, before = self.metrics()
        execs0 = self.value(before, "airlock_execs", "airlock_execs_total")
        sb = self.sandbox(limits={"memory": "32M"})
        sid = sb["id"]
        self.assertEqual(self.out(sid, "echo a"), "a\n")
        self.sh(sid, "sleep 0.3")
        self.client.request("POST", "/v1/sandboxes/%s/exec" % sid, {"bogus": 1})
        # An OOM kill: busybox tail keeps all after the last newline, and
        # /dev/zero has none.
        r = self.client.exec(sid, ["tail", "/dev/zero"], timeout_ms=60000)
        self.assertTrue(at.killed_by(r, 9), r)
        deadline = time.monotonic() + 10
        while True:
            text, fam = self.metrics()
            oom = self.value(fam, "airlock_limit_hits", "airlock_limit_hits_total",
                             kind="oom_kill")
            if oom >= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.assertGreaterEqual(oom, 1, text)
        self.assertEqual(self.value(fam, "airlock_execs", "airlock_execs_total") - execs0, 3)
        self.assertGreaterEqual(
            self.value(fam, "airlock_sandboxes", "airlock_sandboxes", state="running"), 1)
        hist = fam["airlock_exec_duration_seconds"]
        self.assertEqual(hist.type, "histogram")
        count = self.value(fam, "airlock_exec_duration_seconds",
                           "airlock_exec_duration_seconds_count")
        inf = self.value(fam, "airlock_exec_duration_seconds",
                         "airlock_exec_duration_seconds_bucket", le="+Inf")
        self.assertEqual(count, inf)
        # The sleep 0.3 is above the 0.25 s bucket's bound, not under it.
        le025 = self.value(fam, "airlock_exec_duration_seconds",
                           "airlock_exec_duration_seconds_bucket", le="0.25")
        self.assertLess(le025, count)
        self.assertGreaterEqual(self.value(fam, "airlock_exec_duration_seconds",
                                           "airlock_exec_duration_seconds_sum"), 0.3)
        self.assertGreaterEqual(self.value(fam, "airlock_api_requests", "airlock_api_requests_total",
                                           route="/v1/sandboxes/{id}/exec", method="POST",
                                           status="400"), 1)
        self.assertGreaterEqual(self.value(fam, "airlock_api_requests", "airlock_api_requests_total",
                                           route="/v1/sandboxes", method="POST",
                                           status="201"), 1)
        self.assertEqual(self.value(fam, "airlock_build_info", "airlock_build_info",
                                    version=self.client.info()["version"]), 1)
        for family in ("airlock_seccomp_denials", "airlock_snapshot_bytes",
                       "airlock_sandboxes_expired"):
            self.assertIn(family, fam)

    def test_snapshot_bytes_are_counted(self):
        _, before = self.metrics()
        sid = self.sandbox()["id"]
        self.out(sid, "head -c 100000 /dev/urandom > blob")
        snap = self.client.expect(201, "POST", "/v1/sandboxes/%s/snapshots" % sid,
                                  {"processes": False}).json
        self.addCleanup(self.client.request, "DELETE", "/v1/snapshots/" + snap["id"])
        _, after = self.metrics()
        grown = (self.value(after, "airlock_snapshot_bytes", "airlock_snapshot_bytes_total")
                 - self.value(before, "airlock_snapshot_bytes", "airlock_snapshot_bytes_total"))
        self.assertGreaterEqual(grown, 100000)


class JsonLogTest(at.AirlockTestCase):
    daemon_args = ("--log-format", "json")

    def test_every_line_is_json_with_request_fields(self):
        sid = self.sandbox()["id"]
        self.out(sid, "echo logged")
        lines = [l for l in self.daemon.log().splitlines() if l and not l.startswith("====")]
        objs = [json.loads(l) for l in lines]  # every line parses
        for o in objs:
            self.assertTrue({"time", "level", "ident", "msg"} <= set(o), o)
        execs = [o for o in objs if o.get("path") == "/v1/sandboxes/%s/exec" % sid]
        self.assertEqual(len(execs), 1, objs[-5:])
        e = execs[0]
        self.assertEqual(e["uid"], str(os.getuid()))
        self.assertEqual(e["sandbox"], sid)
        self.assertEqual(e["command"], "/bin/sh -c echo logged")
        self.assertEqual(e["status"], "200")
        self.assertEqual(e["method"], "POST")
        self.assertGreater(float(e["duration_ms"]), 0)


class CliOperationsTest(at.AirlockTestCase):
    def cli(self, *args, socket=None, user=None):
        argv = [at.AIRLOCK_CLI, "--socket", socket or self.daemon.socket_path] + list(args)
        if user is not None:  # as an unprivileged uid, without supplementary groups
            argv = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user, "--clear-groups"] + argv
        return subprocess.run(argv, capture_output=True, text=True, timeout=120)

    def test_labels_ttl_ls_filter_and_prune(self):
        r = self.cli("create", "--label", "team=a", "--label", "job=1", "--ttl", "3600",
                     "--idle-timeout", "600")
        self.assertEqual(r.returncode, 0, r.stderr)
        a = r.stdout.strip()
        self.created.add(a)
        b = self.sandbox(labels={"team": "b"})["id"]
        info = self.client.inspect(a)
        self.assertEqual(info["labels"], {"team": "a", "job": "1"})
        self.assertEqual((info["ttl"], info["idle_timeout"]), (3600, 600))
        r = self.cli("ls", "--filter", "label=team=a")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(a, r.stdout)
        self.assertNotIn(b, r.stdout)
        r = self.cli("ls", "--json", "-f", "label=team=b", "-f", "state=running")
        self.assertEqual([s["id"] for s in json.loads(r.stdout)["sandboxes"]], [b])
        r = self.cli("ls", "--filter", "team=a")
        self.assertEqual(r.returncode, 2)
        self.assertIn("invalid --filter 'team=a'", r.stderr)
        r = self.cli("create", "--label", "novalue")
        self.assertEqual(r.returncode, 2)
        # prune without a filter: only stopped (and expired) ones; both run.
        r = self.cli("prune")
        self.assertEqual((r.returncode, r.stdout), (0, ""), r.stderr)
        # A stopped one: its PID 1 is gone.
        c = self.sandbox()["id"]
        os.kill(self.client.inspect(c)["init_pid"], 9)
        deadline = time.monotonic() + 10
        while self.client.inspect(c)["state"] != "stopped":
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.1)
        r = self.cli("prune")
        self.assertEqual((r.returncode, r.stdout), (0, c + "\n"), r.stderr)
        r = self.cli("prune", "--filter", "label=team=a")
        self.assertEqual((r.returncode, r.stdout), (0, a + "\n"), r.stderr)
        ids = {s["id"] for s in self.client.list()}
        self.assertEqual(ids & {a, c}, set())
        self.assertIn(b, ids)

    def test_errors_name_the_next_step(self):
        missing = os.path.join(self.workdir, "no-such.sock")
        r = self.cli("ls", socket=missing)
        self.assertEqual(r.returncode, 125)
        self.assertIn("airlockd is not running (no socket at %s)" % missing, r.stderr)
        self.assertIn("systemctl start airlockd", r.stderr)
        # Not root and not in the socket's group: the group is the next step.
        r = self.cli("ls", user=65534)
        self.assertEqual(r.returncode, 125, r)
        self.assertIn("permission denied on %s" % self.daemon.socket_path, r.stderr)
        self.assertIn("usermod -aG", r.stderr)

    def test_stats(self):
        sid = self.sandbox(limits={"memory": "64M", "pids": 64})["id"]
        idle = self.sandbox()["id"]
        # A busy loop for about 3 s, in the background of the request.
        r = self.client.exec(sid, command="end=$(($(date +%s)+3)); "
                             "while [ $(date +%s) -lt $end ]; do :; done", yield_ms=1)
        self.assertTrue(r["running"], r)
        p = self.cli("stats", "--json", sid, idle)
        self.assertEqual(p.returncode, 0, p.stderr)
        rows = {row["id"]: row for row in json.loads(p.stdout)["sandboxes"]}
        busy, calm = rows[sid], rows[idle]
        self.assertGreater(busy["cpu_percent"], 20, busy)
        self.assertLess(calm["cpu_percent"], 20, calm)
        self.assertGreater(busy["cpu_seconds"], 0.2, busy)
        self.assertEqual(busy["memory_limit_bytes"], 64 << 20)
        self.assertEqual(busy["pids_limit"], 64)
        self.assertGreaterEqual(busy["pids"], 2)  # PID 1 and the shell at least
        self.assertGreater(busy["memory_bytes"], 0)
        self.assertEqual(busy["disk_limit_bytes"], 32 << 20)  # half the memory limit
        self.assertGreaterEqual(busy["disk_bytes"], 0)
        # The table: every sandbox when none is named, with its limits.
        p = self.cli("stats")
        self.assertEqual(p.returncode, 0, p.stderr)
        line = [l for l in p.stdout.splitlines() if l.startswith(sid)]
        self.assertEqual(len(line), 1, p.stdout)
        self.assertIn("/ 64M", line[0])
        self.assertIn("/ 64", line[0])
        self.assertIn(idle, p.stdout)
        p = self.cli("stats", "nosuchsandbox")
        self.assertEqual(p.returncode, 125)
        self.assertIn("nosuchsandbox", p.stderr)

    def test_oom_kill_is_named(self):
        r = self.cli("run", "--memory", "32M", "--", "tail", "/dev/zero")
        self.assertEqual(r.returncode, 137, r)
        self.assertIn("killed: out of memory (limit 32M", r.stderr)
        # A SIGKILL that is not an OOM kill is not called one.
        sid = self.sandbox(limits={"memory": "32M"})["id"]
        r = self.cli("exec", sid, "--", "sh", "-c", "kill -9 $$")
        self.assertEqual(r.returncode, 137, r)
        self.assertNotIn("out of memory", r.stderr)


class VersionTest(at.AirlockTestCase):
    def test_every_binary_prints_the_version(self):
        version = self.client.info()["version"]
        bins = [at.AIRLOCKD, at.AIRLOCK_CLI,
                os.path.join(at.BUILD_DIR, "harness", "airlock-harness"),
                os.path.join(at.BUILD_DIR, "gateway", "airlock-gateway"),
                at.AIRLOCK_INIT]
        for b in bins:
            r = subprocess.run([b, "--version"], capture_output=True, text=True, timeout=10)
            self.assertEqual(r.returncode, 0, (b, r.stderr))
            self.assertEqual(r.stdout, "%s %s\n" % (os.path.basename(b), version), b)
        r = subprocess.run([at.AIRLOCKD, "--log-format", "xml"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--log-format", r.stderr)


if __name__ == "__main__":
    at.main()
