# SPDX-License-Identifier: Apache-2.0
"""airlock-harness on a PostgreSQL run queue (docs/deploy.md): submit,
worker, status, cancel, leases, fencing, take-over on another node.

A real PostgreSQL 15 (pg_test.py) on a Unix socket; two airlockd instances
on separate state directories stand for two nodes ("a": the class's
daemon, "b": one more); workers share a work directory, the stand-in for
the shared workspace-archive store (docs/deploy.md).  The model is the
replay model of the other harness tests.  Leases are 2 s so that a
take-over happens quickly.

Every test ends with: each run completed (or cancelled) as expected, the
audit chain in the database verified by `airlock-harness audit verify
RUN_ID --db` and by the test itself, every tool call's result recorded
exactly once, and no sandbox left on either node.
"""

import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness_test as ht  # noqa: E402
from harness_test import at, fm  # noqa: E402
import pg_test  # noqa: E402

LEASE_MS = 2000
NODE_MODULES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "node_modules")
RUN_TIMEOUT = 240
# The counts: 50 runs across three workers; workers SIGKILLed at
# random moments while 20 runs go through.
RUNS_THREE_WORKERS = 50
RUNS_RANDOM_KILLS = 20
KILLS = 12


def logged(call_id, cmd):
    return ht.exec_call(call_id, "echo %s >> /workspace/calls.log && %s" % (call_id, cmd))


def script(tag, sleep=0, calls=3):
    """A run of `calls` logged tool calls (each may sleep), then the
    workspace listing, then a final answer naming tag."""
    turns = []
    for i in range(1, calls + 1):
        cmd = "mkdir -p /workspace/t && echo %s-%d > /workspace/t/f%d.txt" % (tag, i, i)
        if sleep:
            cmd += " && sleep %s" % sleep
        turns.append(fm.calls_response([logged("call_%d" % i, cmd)], "resp_%d" % i))
    turns.append(fm.calls_response([ht.exec_call("call_list", ht.LISTING_CMD)], "resp_list"))
    turns.append(fm.text_response("done %s" % tag, "resp_end"))
    return turns


class Worker:
    def __init__(self, case, node, socket_path, concurrency=1, lease_ms=LEASE_MS, metrics=None,
                 work_dir=None, extra_args=(), env=None):
        self.node = node
        self.log_path = os.path.join(case.tmpdir("worker-" + node), "worker.log")
        args = [ht.HARNESS, "worker", "--db", case.pg.url, "--provider-socket", socket_path,
                "--work-dir", work_dir or case.work_dir, "--node", node,
                "--concurrency", str(concurrency), "--lease-ms", str(lease_ms)] + list(extra_args)
        if metrics:
            args += ["--metrics-port", str(metrics)]
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log, env=ht.clean_env(env),
                                     start_new_session=True)
        case.addCleanup(self.stop)

    def events(self):
        out = []
        with open(self.log_path, errors="replace") as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    out.append({"raw": line})
        return out

    def text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGCONT)
                os.kill(self.proc.pid, signal.SIGTERM)
                self.proc.wait(30)
            except (OSError, subprocess.TimeoutExpired):
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


class QueueTest(ht.HarnessTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pg = pg_test.Postgres(cls.workdir)
        cls.addClassCleanup(cls.pg.destroy)
        cls.pg.start()
        # Node b: a second airlockd on its own state directory.
        node_b = os.path.join(cls.workdir, "node-b")
        os.mkdir(node_b)
        os.chmod(node_b, 0o755)
        cls.daemon_b = at.Daemon(node_b, cls.rootfs)
        cls.daemon_b.start()
        cls.created_b = set()
        cls.addClassCleanup(cls.stop_node_b)

    @classmethod
    def stop_node_b(cls):
        c = at.Client(cls.daemon_b.socket_path, cls.created_b)
        left = [sb["id"] for sb in c.list()]
        for sid in left:
            cls.created_b.add(sid)
            c.request("DELETE", "/v1/sandboxes/" + sid)
        c.close()
        cls.daemon_b.stop()
        problems = at.leftovers(cls.daemon_b.state_dir, cls.created_b, cls.daemon_b.socket_path)
        if problems:
            at.force_cleanup(cls.daemon_b.state_dir, cls.created_b, cls.daemon_b.socket_path)
            raise AssertionError("node b left: %s" % problems)

    def setUp(self):
        self.work_dir = self.tmpdir("work")
        # Each test its own queue: the tables of the one before go.
        self.pg.sql("DROP TABLE IF EXISTS airlock_audit, airlock_run_files, airlock_runs, "
                    "airlock_schema_version")
        self.client_b = at.Client(self.daemon_b.socket_path, self.created_b)
        self.addCleanup(self.client_b.close)

    def tearDown(self):
        super().tearDown()
        for sb in self.client_b.list():
            self.client_b.request("DELETE", "/v1/sandboxes/" + sb["id"])

    # -- helpers --

    def submit(self, tag, task_fields=None, **kw):
        path = self.replay_task(script(tag, **kw), **(task_fields or {}))
        res = ht.harness(["submit", path, "--db", self.pg.url])
        self.assertEqual(res.returncode, 0, res)
        run_id = res.stdout.strip()
        self.assertRegex(run_id, r"^\d{8}-\d{6}-[0-9a-f]{12}$")
        return run_id

    def status(self, run_id=None):
        res = ht.harness(["status"] + ([run_id] if run_id else []) + ["--db", self.pg.url])
        self.assertEqual(res.returncode, 0, res)
        rows = [json.loads(line) for line in res.stdout.splitlines() if line.strip()]
        return rows[0] if run_id else rows

    def wait_for(self, what, cond, timeout=RUN_TIMEOUT, workers=()):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            v = cond()
            if v:
                return v
            time.sleep(0.1)
        logs = "\n".join("--- worker %s ---\n%s" % (w.node, w.text()[-4000:]) for w in workers)
        self.fail("timed out waiting for %s; queue: %s\n%s" % (what, self.status(), logs))

    def wait_all_done(self, ids, workers):
        def done():
            rows = {r["run_id"]: r for r in self.status()}
            return all(rows[i]["status"] in ("completed", "failed", "cancelled") for i in ids)
        self.wait_for("every run to end", done, workers=workers)
        return {r["run_id"]: r for r in self.status()}

    def audit_lines_db(self, run_id):
        out = self.pg.sql("SELECT line FROM airlock_audit WHERE run_id = '%s' ORDER BY seq"
                          % run_id)
        return [line.encode() for line in out.split("\n") if line]

    def state_db(self, run_id):
        out = self.pg.sql("SELECT state FROM airlock_runs WHERE run_id = '%s'" % run_id).strip()
        return json.loads(out) if out else None

    def assertRunIntact(self, run_id, calls=("call_1", "call_2", "call_3"), whole=True):
        """Completed, its chain verified twice, each tool result recorded once,
        and the listing run at the end saw every logged call (whole: a run
        whose workspace came from its last archive may lack the effect of a
        call recorded after it; it never has one twice)."""
        row = self.status(run_id)
        self.assertEqual(row["status"], "completed", row)
        v = ht.harness(["audit", "verify", run_id, "--db", self.pg.url], timeout=60)
        lines = self.audit_lines_db(run_id)
        self.assertEqual(v.returncode, 0, v)
        self.assertIn("audit: OK (%d records)" % len(lines), v.stdout, v)
        self.assertEqual(row["audit_records"], len(lines))
        # The chain, checked here by the contract's rules.
        prev = ht.ZERO_HASH
        for n, line in enumerate(lines, 1):
            rec = json.loads(line)
            self.assertEqual(rec["seq"], n)
            self.assertEqual(rec["prev"], prev, "record %d" % n)
            cut = line.rfind(b',"hash"')
            self.assertEqual(rec["hash"], hashlib.sha256(line[:cut] + b"}").hexdigest())
            prev = hashlib.sha256(line).hexdigest()
        recs = [json.loads(line) for line in lines]
        results = [r["data"]["call_id"] for r in recs if r["kind"] == "tool_result"]
        for c in list(calls) + ["call_list"]:
            self.assertEqual(results.count(c), 1, "tool_result records of %s: %s" % (c, results))
        # RunState and the record of the same step go in one transaction:
        # nothing is ever left for a resume to write after the fact.
        self.assertEqual([r for r in recs if r["data"].get("recovered")], [])
        ends = [r for r in recs if r["kind"] == "run_end"]
        self.assertEqual([e["data"]["status"] for e in ends], ["completed"], ends)
        state = self.state_db(run_id)
        self.assertEqual(state["status"], "completed")
        listing = ht.recorded_results(state).get("call_list")
        files, logged_calls = ht.parse_listing(ht.text_of(listing))
        if whole:
            self.assertEqual(len(files), len(calls), files)
            self.assertEqual(sorted(set(logged_calls)), sorted(calls), logged_calls)
        self.assertTrue(set(logged_calls) <= set(calls), logged_calls)
        return recs, logged_calls

    def assertStructuredLog(self, worker):
        """Every line a worker and its executors logged is one JSON object."""
        self.assertEqual([e["raw"] for e in worker.events() if "raw" in e], [],
                         "lines of worker %s's log that are not JSON" % worker.node)

    def assertNoSandboxes(self):
        self.assertEqual(self.sandbox_ids(), [], "sandboxes left on node a")
        self.assertEqual([sb["id"] for sb in self.client_b.list()], [],
                         "sandboxes left on node b")

    # -- the cases --

    def test_runs_across_three_workers_each_once(self):
        """Fifty queued runs across three workers on two nodes: every one
        completes, each claimed once, and the metrics endpoint counts them."""
        ids = [self.submit("r%d" % i) for i in range(RUNS_THREE_WORKERS)]
        queued = self.status()
        self.assertEqual([r["status"] for r in queued], ["queued"] * RUNS_THREE_WORKERS)
        with socket.socket() as s:  # a free port (the worker binds it itself)
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        workers = [Worker(self, "a", self.daemon.socket_path, metrics=port),
                   Worker(self, "a", self.daemon.socket_path),
                   Worker(self, "b", self.daemon_b.socket_path)]
        rows = self.wait_all_done(ids, workers)
        for i in ids:
            self.assertEqual(rows[i]["attempts"], 1, rows[i])
            self.assertRunIntact(i)
        claims = [e["run_id"] for w in workers for e in w.events() if e.get("event") == "claim"]
        self.assertEqual(sorted(claims), sorted(ids), "each run claimed exactly once")
        done = [e["run_id"] for w in workers for e in w.events() if e.get("event") == "completed"]
        self.assertEqual(sorted(done), sorted(ids))
        self.assertNoSandboxes()
        # The first worker's Prometheus endpoint.
        mine = sum(1 for e in workers[0].events() if e.get("event") == "completed")
        # The queue's gauges are refreshed every GAUGE_REFRESH_MS (worker.c):
        # read until the refresh after the last completion shows.
        deadline = time.monotonic() + 15
        while True:
            text = subprocess.run(["curl", "-sS", "--max-time", "5",
                                   "http://127.0.0.1:%d/metrics" % port],
                                  capture_output=True, text=True).stdout
            if re.search(r"(?m)^airlock_runs_queued 0$", text) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertRegex(text, r"(?m)^airlock_runs_queued 0$")
        self.assertRegex(text, r"(?m)^airlock_worker_runs_completed_total %d$" % mine)
        self.assertRegex(text, r"(?m)^airlock_worker_run_duration_seconds_count %d$" % mine)
        self.assertRegex(text, r"(?m)^airlock_worker_runs_retried_total 0$")
        for w in workers:
            self.assertStructuredLog(w)

    def test_a_run_that_keeps_dying_is_failed_after_max_attempts(self):
        """Every executor of the run is killed at the same point (as by a task that
        crashes its node each time): after --max-attempts claims the run is failed
        with why, not handed round the workers for ever; a healthy run beside it
        completes; status shows the attempts."""
        doomed = self.submit("doomed")
        w = Worker(self, "a", self.daemon.socket_path, extra_args=["--max-attempts", "3"],
                   env={ht.KILL_HOOK: "6"})
        self.wait_for("the run to be given up",
                      lambda: self.status(doomed)["status"] == "failed", workers=[w])
        row = self.status(doomed)
        self.assertEqual(row["attempts"], 3, row)
        self.assertEqual(row["error"], "gave up after 3 attempts: the executor died or lost "
                         "its lease each time", row)
        self.assertIsNone(row["leased_by"])
        events = w.events()
        self.assertEqual(len([e for e in events if e.get("event") == "claim"]), 3)
        self.assertEqual(len([e for e in events if e.get("event") == "executor_died"]), 3)
        gave = [e for e in events if e.get("event") == "gave_up"]
        self.assertEqual(len(gave), 1, events)
        self.assertIn(doomed, gave[0].get("message", "") + json.dumps(gave[0]))
        w.stop()
        # Not claimed again, by a worker without the kill point either; a new run is.
        healthy = self.submit("healthy")
        w2 = Worker(self, "b", self.daemon_b.socket_path, extra_args=["--max-attempts", "3"])
        rows = self.wait_all_done([healthy], [w2])
        self.assertRunIntact(healthy)
        self.assertEqual(rows[healthy]["attempts"], 1)
        self.assertEqual(self.status(doomed)["attempts"], 3)
        self.assertNotIn(doomed, [e.get("run_id") for e in w2.events()
                                  if e.get("event") == "claim"])
        # (w's log has the kill point's own plain line: not checked.)
        self.assertStructuredLog(w2)
        # The given-up run's sandbox is kept for inspection, like a failed run's.
        self.assertLessEqual(len(self.sandbox_ids()), 1)
        self.destroy_all()

    def test_sigkill_worker_mid_run_other_node_completes(self):
        """A worker SIGKILLed in the middle of a run: its executor dies with it,
        the lease runs out, a worker on the other node takes the run over,
        moves the workspace (the sandbox on node a is reached, archived and
        deleted) and completes it: no recorded tool call runs twice."""
        run_id = self.submit("k", sleep=1)
        wa = Worker(self, "a", self.daemon.socket_path)

        def two_results():
            st = self.state_db(run_id)
            return st and len(ht.recorded_results(st)) >= 2
        self.wait_for("two recorded tool results", two_results, workers=[wa])
        os.kill(wa.proc.pid, signal.SIGKILL)
        wa.proc.wait()
        time.sleep(0.3)  # the executor's PDEATHSIG
        recorded = set(ht.recorded_results(self.state_db(run_id)))
        self.assertTrue(self.sandbox_ids(), "the run's sandbox is still on node a")
        wb = Worker(self, "b", self.daemon_b.socket_path)
        self.wait_all_done([run_id], [wb])
        row = self.status(run_id)
        self.assertEqual(row["attempts"], 2, row)
        self.assertTrue(row["leased_by"] is None)
        recs, calls = self.assertRunIntact(run_id)
        for c in recorded:
            if c.startswith("call_") and c != "call_list":
                self.assertEqual(calls.count(c), 1, "%s was recorded before the kill and "
                                 "ran again: %s" % (c, calls))
        with open(os.path.join(self.work_dir, run_id + ".log")) as f:
            self.assertIn("resume: the sandbox is on node a, this is b", f.read())
        ops = [(r["data"]["op"], r["data"]["outcome"]) for r in recs if r["kind"] == "sandbox_op"]
        self.assertIn(("delete", "ok"), ops)
        # One archive is kept, the final one, named with the generation that wrote it.
        archives = os.listdir(os.path.join(self.work_dir, run_id, "workspace"))
        self.assertEqual(len(archives), 1, archives)
        self.assertRegex(archives[0], r"^ws-\d+-g2\.tar$")
        self.assertEqual(self.state_db(run_id)["sandbox"]["workspace_archive"],
                         "workspace/" + archives[0])
        self.assertNoSandboxes()
        self.assertTrue(any(e.get("event") == "claim" and e.get("lease_gen") == 2
                            for e in wb.events()))

    def test_two_nodes_sharing_only_postgres_and_an_s3_store(self):
        """Each node its own work directory: what one node's worker leaves is not the
        other's.  Node a's worker is SIGKILLed mid-run and node a's sandbox and work
        directory are lost with it; node b's worker takes the run over from PostgreSQL
        (RunState, audit chain) and s3rver (the workspace archive, fetched and checked
        against its SHA-256) and completes it, no recorded call twice."""
        port = self.start_s3rver()
        creds = os.path.join(self.tmpdir("creds"), "credentials.json")
        fd = os.open(creds, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"stores": {"s3": {"access_key_id": "S3RVER",
                                         "secret_access_key": "S3RVER"}}}, f)
        store = {"type": "s3", "bucket": "airlock-queue", "prefix": "runs",
                 "endpoint": "http://127.0.0.1:%d" % port, "region": "us-east-1"}
        run_id = self.submit("s", task_fields={"snapshot": {"store": store}}, sleep=1)
        work_a, work_b = self.tmpdir("work-a"), self.tmpdir("work-b")
        wa = Worker(self, "a", self.daemon.socket_path, work_dir=work_a,
                    extra_args=["--credentials", creds])

        def archived_midway():
            st = self.state_db(run_id)
            return st and (st.get("sandbox") or {}).get("store_archive") and \
                len(ht.recorded_results(st)) >= 2 and st.get("status") != "completed"
        self.wait_for("an archive in the store, two results", archived_midway, workers=[wa])
        os.kill(wa.proc.pid, signal.SIGKILL)
        wa.proc.wait()
        time.sleep(0.3)  # the executor's PDEATHSIG
        recorded = set(ht.recorded_results(self.state_db(run_id)))
        # Node a is lost: its sandbox and its disk with it.
        self.destroy_all()
        shutil.rmtree(work_a)
        wb = Worker(self, "b", self.daemon_b.socket_path, work_dir=work_b,
                    extra_args=["--credentials", creds])
        self.wait_all_done([run_id], [wb])
        row = self.status(run_id)
        self.assertEqual((row["status"], row["attempts"]), ("completed", 2), row)
        recs, calls = self.assertRunIntact(run_id, whole=False)
        # The workspace is the last archive's: a call recorded after it was made
        # has no effect in it (the node that ran it is gone), and none twice.
        for c in recorded:
            if c.startswith("call_") and c != "call_list":
                self.assertLessEqual(calls.count(c), 1, "%s was recorded before the kill and "
                                     "ran again: %s" % (c, calls))
        with open(os.path.join(work_b, run_id + ".log")) as f:
            log = f.read()
        self.assertIn("from the store", log)
        gets = [r["data"] for r in recs if r["kind"] == "store" and r["data"]["op"] == "get"]
        self.assertTrue(gets and all(g["outcome"] == "ok" for g in gets), gets)
        self.assertFalse(os.path.exists(work_a))
        self.assertNoSandboxes()
        self.assertStructuredLog(wb)

    def start_s3rver(self):
        d = self.tmpdir("s3rver")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        log = open(os.path.join(d, "s3rver.log"), "wb")
        self.addCleanup(log.close)
        proc = subprocess.Popen([os.path.join(NODE_MODULES, ".bin", "s3rver"), "-d", d, "-a",
                                 "127.0.0.1", "-p", str(port), "--configure-bucket",
                                 "airlock-queue"], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=log, start_new_session=True, cwd=d)

        def stop():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        self.addCleanup(stop)
        end = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                return port
            except OSError:
                if proc.poll() is not None or time.monotonic() > end:
                    raise AssertionError("s3rver did not come up")
                time.sleep(0.1)

    def test_random_worker_kills(self):
        """Workers on two nodes SIGKILLed (with their executors) at random
        moments and started again: every run completes, its trail verifies,
        each tool result is recorded once, and once a worker has started on
        each node after the last kill no sandbox is left."""
        rnd = random.Random(int(os.environ.get("AIRLOCK_TEST_SEED", "0")) or None)
        seed = rnd.randrange(1 << 30)
        rnd.seed(seed)
        ids = [self.submit("x%d" % i, sleep=0.3) for i in range(RUNS_RANDOM_KILLS)]
        socks = {"a": self.daemon.socket_path, "b": self.daemon_b.socket_path}
        workers = [Worker(self, "a", socks["a"]), Worker(self, "a", socks["a"]),
                   Worker(self, "b", socks["b"])]
        for _ in range(KILLS):
            time.sleep(rnd.uniform(0.3, 2.0))
            i = rnd.randrange(len(workers))
            os.killpg(workers[i].proc.pid, signal.SIGKILL)
            workers[i].proc.wait()
            workers.append(Worker(self, workers[i].node, socks[workers[i].node]))
            del workers[i]
        rows = self.wait_all_done(ids, workers)
        for i in ids:
            self.assertEqual(rows[i]["status"], "completed", "seed %d: %s" % (seed, rows[i]))
            self.assertRunIntact(i)
        retried = sum(rows[i]["attempts"] - 1 for i in ids)
        sys.stderr.write("[seed %d: %d take-overs] " % (seed, retried))
        # KILLS kills while runs of 2 s or more were going: some took over.
        self.assertGreater(retried, 0, "seed %d: no run was taken over" % seed)
        # Sandboxes that a killed executor made but never recorded go when a
        # worker of their node starts (docs/deploy.md).
        for node in ("a", "b"):
            w = Worker(self, node, socks[node])
            self.wait_for("worker %s's start" % node,
                          lambda: any(e.get("event") == "start" for e in w.events()))
        self.wait_for("no sandbox left", lambda: not self.sandbox_ids()
                      and not self.client_b.list(), timeout=30)

    def test_sandbox_gone_restored_from_snapshot(self):
        """Same node, the worker SIGKILLed and the run's sandbox gone while no
        worker held the run: the next worker restores it from the snapshot
        RunState names (what the node's airlockd keeps) and completes."""
        def snaps():
            r = self.client.request("GET", "/v1/snapshots")
            self.assertEqual(r.status, 200, r)
            return {x["id"] for x in r.json["snapshots"]}
        before = snaps()
        self.addCleanup(lambda: [self.client.request("DELETE", "/v1/snapshots/" + i)
                                 for i in snaps() - before])
        run_id = self.submit("g", sleep=0.5, task_fields={
            "snapshot": {"every_turns": 1, "processes": False}})
        wa = Worker(self, "a", self.daemon.socket_path)

        def snapshotted():
            st = self.state_db(run_id)
            return st and st["sandbox"].get("snapshot_id") and len(ht.recorded_results(st)) >= 2
        self.wait_for("a recorded snapshot", snapshotted, workers=[wa])
        os.killpg(wa.proc.pid, signal.SIGKILL)
        wa.proc.wait()
        for sid in self.sandbox_ids():
            self.client.destroy(sid)
        snap = self.state_db(run_id)["sandbox"]["snapshot_id"]
        wa2 = Worker(self, "a", self.daemon.socket_path)
        self.wait_all_done([run_id], [wa2])
        self.assertRunIntact(run_id, whole=False)
        with open(os.path.join(self.work_dir, run_id + ".log")) as f:
            log = f.read()
        self.assertRegex(log, r"resume: restored sandbox from snapshot \S+")
        self.assertIn(snap, log)
        self.assertNoSandboxes()

    def test_whole_node_killed_then_back(self):
        """Node c dies whole (its worker and its airlockd SIGKILLed): a worker on
        node a cannot reach the sandbox, resumes from the last workspace
        archive in the shared work directory and completes the run.  When node
        c comes back, its airlockd reattaches the old sandbox and its worker
        deletes it (the run moved away)."""
        node_c = self.tmpdir("node-c")
        daemon_c = at.Daemon(node_c, self.rootfs)
        daemon_c.start()
        created_c = set()
        client_c = at.Client(daemon_c.socket_path, created_c)

        def stop_c():
            for sb in client_c.list():
                created_c.add(sb["id"])
                client_c.request("DELETE", "/v1/sandboxes/" + sb["id"])
            client_c.close()
            daemon_c.stop()
            problems = at.leftovers(daemon_c.state_dir, created_c, daemon_c.socket_path)
            if problems:
                at.force_cleanup(daemon_c.state_dir, created_c, daemon_c.socket_path)
            self.assertEqual(problems, [], "node c left")
        self.addCleanup(stop_c)
        run_id = self.submit("n", sleep=1)
        wc = Worker(self, "c", daemon_c.socket_path)

        def two_results():
            st = self.state_db(run_id)
            return st and len(ht.recorded_results(st)) >= 2
        self.wait_for("two recorded tool results", two_results, workers=[wc])
        os.killpg(wc.proc.pid, signal.SIGKILL)
        wc.proc.wait()
        daemon_c.stop(signal.SIGKILL)
        old = [sb["id"] for sb in client_c.list()] if daemon_c.running() else None
        self.assertIsNone(old)
        created_c.add(self.state_db(run_id)["sandbox"]["sandbox_id"])
        recorded = set(ht.recorded_results(self.state_db(run_id)))
        wa = Worker(self, "a", self.daemon.socket_path)
        self.wait_all_done([run_id], [wa])
        recs, calls = self.assertRunIntact(run_id, whole=False)
        self.assertEqual(len(calls), len(set(calls)), "a call ran twice: %s" % calls)
        for c in recorded:
            self.assertLessEqual(calls.count(c), 1)
        with open(os.path.join(self.work_dir, run_id + ".log")) as f:
            log = f.read()
        self.assertIn("resume: the sandbox is on node c, this is a", log)
        self.assertIn("cannot be reached", log)
        self.assertIn("recreated sandbox from manifest and workspace archive", log)
        self.assertNoSandboxes()
        # Node c comes back: its old sandbox is still alive and reattached...
        daemon_c.start()
        self.assertEqual(len(client_c.list()), 1, "airlockd c reattached the old sandbox")
        # ...until node c's worker sees that the run moved away.
        wc2 = Worker(self, "c", daemon_c.socket_path)
        self.wait_for("node c's worker to delete the old sandbox",
                      lambda: client_c.list() == [], timeout=60, workers=[wc2])
        # (logged once its deletions are done: a moment after the list is empty)
        self.wait_for("the worker's reaped event",
                      lambda: any(e.get("event") == "reaped" for e in wc2.events()),
                      timeout=10, workers=[wc2])
        self.assertEqual(self.status(run_id)["status"], "completed")

    def test_sigstop_past_lease_late_writes_refused(self):
        """A worker paused (SIGSTOP) past its lease: another worker takes the
        run over and completes it; the paused one's executor, still running,
        finds its writes refused and logs it; continued, the worker logs the
        lost lease.  The run's record is intact."""
        run_id = self.submit("s", sleep=1.5)
        wa = Worker(self, "a", self.daemon.socket_path)
        self.wait_for("the run claimed by a",
                      lambda: self.status(run_id)["status"] == "running"
                      and self.state_db(run_id) is not None, workers=[wa])
        os.kill(wa.proc.pid, signal.SIGSTOP)
        wb = Worker(self, "a2", self.daemon.socket_path)
        self.wait_all_done([run_id], [wa, wb])

        def refused():
            return any(e.get("event") == "write_refused" and e.get("run_id") == run_id
                       for e in wa.events())
        self.wait_for("a refused write logged", refused, timeout=60, workers=[wa, wb])
        os.kill(wa.proc.pid, signal.SIGCONT)
        self.wait_for("the lost lease logged",
                      lambda: any(e.get("event") == "lease_lost" and e.get("run_id") == run_id
                                  for e in wa.events()), timeout=30, workers=[wa, wb])
        gens = [e for e in wa.events() if e.get("event") == "write_refused"]
        self.assertTrue(all(e["lease_gen"] == 1 for e in gens), gens)
        row = self.status(run_id)
        self.assertEqual((row["status"], row["lease_gen"], row["attempts"]), ("completed", 2, 2))
        self.assertRunIntact(run_id)
        self.assertNoSandboxes()
        self.assertIsNone(wa.proc.poll(), "the continued worker goes on")
        self.assertStructuredLog(wa)
        self.assertStructuredLog(wb)

    def test_postgres_restart_mid_run(self):
        """PostgreSQL restarted while runs are going: workers and executors
        reconnect and every run completes."""
        ids = [self.submit("p%d" % i, sleep=0.5) for i in range(3)]
        workers = [Worker(self, "a", self.daemon.socket_path, concurrency=2, lease_ms=4000),
                   Worker(self, "b", self.daemon_b.socket_path, lease_ms=4000)]
        self.wait_for("runs under way",
                      lambda: sum(1 for i in ids if (self.state_db(i) or {}).get("turn", 0) >= 1) >= 2,
                      workers=workers)
        self.pg.restart(pause=0.5)
        rows = self.wait_all_done(ids, workers)
        for i in ids:
            self.assertEqual(rows[i]["status"], "completed", rows[i])
            self.assertRunIntact(i)
        text = "".join(w.text() for w in workers)
        self.assertIn("database connection lost", text)
        self.assertIn("database connection is back", text)
        # Idle workers LISTEN for runs (again on the new connection): each is claimed
        # as it is queued, not at the next of their once-a-second looks at the queue
        # (which would make 4 claims within 500 ms a 1-in-16 chance).
        for i in range(4):
            run_id = self.submit("n%d" % i)
            self.wait_all_done([run_id], workers)
            wait_ms = float(self.pg.sql("SELECT extract(epoch FROM started_at - submitted_at) "
                                        "* 1000 FROM airlock_runs WHERE run_id = '%s'"
                                        % run_id).strip())
            self.assertLess(wait_ms, 500, "run %s claimed %.0f ms after it was queued"
                            % (run_id, wait_ms))
        for w in workers:
            self.assertIsNone(w.proc.poll(), "worker %s exited: %s" % (w.node, w.text()[-2000:]))
            self.assertStructuredLog(w)
        self.assertNoSandboxes()

    def test_cancel_and_bad_input(self):
        """cancel: a queued run at once, a running one by its worker (sandbox
        deleted, the trail says cancelled); bad command lines are refused."""
        res = ht.harness(["status", "--db", self.pg.url])
        self.assertEqual(res.returncode, 1, res)
        self.assertIn("no run queue in this database yet", res.stderr)
        queued = self.submit("c1")
        res = ht.harness(["cancel", queued, "--db", self.pg.url])
        self.assertEqual((res.returncode, res.stdout.strip()), (0, queued + ": cancelled"), res)
        running = self.submit("c2", sleep=2, calls=4)
        wa = Worker(self, "a", self.daemon.socket_path)
        self.wait_for("the run's sandbox", lambda: (self.state_db(running) or {}).get(
            "sandbox", {}).get("sandbox_id"), workers=[wa])
        res = ht.harness(["cancel", running, "--db", self.pg.url])
        self.assertEqual(res.returncode, 0, res)
        self.assertIn("cancel requested", res.stdout)
        self.wait_for("the cancel", lambda: self.status(running)["status"] == "cancelled",
                      workers=[wa])
        self.assertEqual(self.status(queued)["status"], "cancelled")
        v = ht.harness(["audit", "verify", running, "--db", self.pg.url])
        self.assertEqual(v.returncode, 0, v)
        recs = [json.loads(line) for line in self.audit_lines_db(running)]
        self.assertEqual(recs[-1]["kind"], "run_end")
        self.assertEqual(recs[-1]["data"]["status"], "cancelled")
        self.assertNoSandboxes()
        # Refused: unknown run, missing --db, an option of another command, a bad task.
        res = ht.harness(["cancel", "no-such-run", "--db", self.pg.url])
        self.assertEqual(res.returncode, 2, res)
        self.assertIn("no run no-such-run", res.stderr)
        res = ht.harness(["audit", "verify", "no-such-run", "--db", self.pg.url])
        self.assertEqual(res.returncode, 2, res)
        self.assertIn("no run no-such-run", res.stderr)
        res = ht.harness(["status"])
        self.assertEqual(res.returncode, 2, res)
        self.assertIn("--db URL is required", res.stderr)
        res = ht.harness(["submit", "x.json", "--db", self.pg.url, "--concurrency", "2"])
        self.assertEqual(res.returncode, 2, res)
        bad = self.write_task({"input": "x"})
        res = ht.harness(["submit", bad, "--db", self.pg.url])
        self.assertEqual(res.returncode, 2, res)
        self.assertEqual(len(self.status()), 2, "nothing queued by refused submits")
        res = ht.harness(["worker", "--db", self.pg.url, "--concurrency", "0"])
        self.assertEqual(res.returncode, 2, res)
        # Tampering with the chain in the database is named by verify.
        self.pg.sql("UPDATE airlock_audit SET line = replace(line, 'cancelled', 'completed') "
                    "WHERE run_id = '%s' AND seq = (SELECT max(seq) FROM airlock_audit "
                    "WHERE run_id = '%s')" % (running, running))
        v = ht.harness(["audit", "verify", running, "--db", self.pg.url])
        self.assertEqual(v.returncode, 1, v)
        self.assertIn("was edited", v.stdout)


if __name__ == "__main__":
    unittest.main()
