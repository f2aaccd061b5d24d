#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Throughput of airlock-harness workers on the PostgreSQL run queue
(docs/deploy.md): runs per minute with 1, 2 and 3 workers.

    sudo AIRLOCK_BUILD_DIR=build python3 bench/queue.py [--runs N] [--workers 1,2,3] [--json FILE]

For each worker count it empties the queue, submits N runs of a replay-model
task (two tool calls, then the final answer: what the run costs beyond the
model), starts that many workers (concurrency 1 each) against one airlockd
and times from their start until every run completed.  Reported per count:
runs/minute, the median of a run's time under its worker (started_at to
finished_at in the queue) and the claims made (a claim more than the runs is
a retry).  Then the claim latency of an idle worker: one worker waits, runs
are submitted one at a time (each once the previous completed), and the time
from a run's submission to its claim (started_at - submitted_at) is reported
(median and max of --latency-runs): workers LISTEN for the queue's
announcements, and ask the queue anyway once a second.  PostgreSQL 15 and
airlockd are started on temporary sockets and removed at the end
(tests/harness/pg_test.py, tests/integration/airlock_test.py).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "harness"))

import airlock_test as at  # noqa: E402
import fake_model as fm  # noqa: E402
import harness_test as ht  # noqa: E402
import pg_test  # noqa: E402


def write_task(d, socket_path):
    turns = [fm.calls_response([ht.exec_call("c1", "echo one > /workspace/a.txt")], "r1"),
             fm.calls_response([ht.exec_call("c2", "cat /workspace/a.txt")], "r2"),
             fm.text_response("done", "r3")]
    ht.write_replay(os.path.join(d, "script.jsonl"), turns)
    task = {"instructions": "bench", "input": "Do it.",
            "model": {"api": "replay", "script": "script.jsonl"},
            "provider": {"type": "local", "socket": socket_path, "rootfs": ht.ROOTFS},
            "manifest": {"version": 1, "root": "/workspace", "entries": {}}, "max_turns": 10}
    path = os.path.join(d, "task.json")
    with open(path, "w") as f:
        json.dump(task, f)
    return path


def start_worker(pg, daemon, work, name):
    log = open(os.path.join(work, "worker-%s.log" % name), "wb")
    try:
        return subprocess.Popen(
            [ht.HARNESS, "worker", "--db", pg.url, "--provider-socket", daemon.socket_path,
             "--work-dir", work, "--node", "bench", "--lease-ms", "10000"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=ht.clean_env())
    finally:
        log.close()


def reset(pg):
    pg.sql("DROP TABLE IF EXISTS airlock_audit, airlock_run_files, airlock_runs, "
           "airlock_schema_version")


def idle_claim_latency(pg, daemon, work, task, runs):
    reset(pg)
    w = start_worker(pg, daemon, work, "latency")
    try:
        # The worker made the schema and waits: from now on a run is claimed as it comes.
        end = time.monotonic() + 60
        while pg.sql("SELECT to_regclass('airlock_runs') IS NOT NULL").strip() != "t":
            if time.monotonic() > end:
                raise SystemExit("the worker made no schema within 60 s")
            time.sleep(0.05)
        time.sleep(1.5)
        for _ in range(runs):
            r = ht.harness(["submit", task, "--db", pg.url])
            if r.returncode != 0:
                raise SystemExit("submit failed: %r" % r)
            run_id = r.stdout.strip().split()[-1]
            end = time.monotonic() + 120
            while pg.sql("SELECT status FROM airlock_runs WHERE run_id = '%s'"
                         % run_id).strip() != "completed":
                if time.monotonic() > end:
                    raise SystemExit("run %s did not complete within 120 s" % run_id)
                time.sleep(0.05)
            time.sleep(0.3)  # idle again
    finally:
        w.terminate()
        w.wait(30)
    rows = pg.sql("SELECT extract(epoch FROM started_at - submitted_at) FROM airlock_runs")
    waits = [float(x) * 1000 for x in rows.split()]
    return {"runs": len(waits), "claim_ms_median": round(statistics.median(waits), 1),
            "claim_ms_max": round(max(waits), 1)}


def one_round(pg, daemon, work, task, runs, nworkers):
    reset(pg)
    for _ in range(runs):
        r = ht.harness(["submit", task, "--db", pg.url])
        if r.returncode != 0:
            raise SystemExit("submit failed: %r" % r)
    procs = []
    start = time.monotonic()
    for i in range(nworkers):
        procs.append(start_worker(pg, daemon, work, "%d-%d" % (nworkers, i)))
    try:
        while True:
            left = int(pg.sql("SELECT count(*) FROM airlock_runs WHERE status NOT IN "
                              "('completed', 'failed', 'cancelled')").strip())
            if left == 0:
                break
            if time.monotonic() - start > 60 * 30:
                raise SystemExit("runs did not finish within 30 min")
            time.sleep(0.05)
        elapsed = time.monotonic() - start
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
    failed = int(pg.sql("SELECT count(*) FROM airlock_runs WHERE status <> 'completed'").strip())
    rows = pg.sql("SELECT extract(epoch FROM finished_at - started_at) FROM airlock_runs")
    durations = [float(x) for x in rows.split()]
    attempts = int(pg.sql("SELECT sum(attempts) FROM airlock_runs").strip())
    return {"workers": nworkers, "runs": runs, "failed": failed, "attempts": attempts,
            "seconds": round(elapsed, 2), "runs_per_minute": round(runs / elapsed * 60, 1),
            "run_seconds_median": round(statistics.median(durations), 3)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--workers", default="1,2,3")
    ap.add_argument("--latency-runs", type=int, default=10)
    ap.add_argument("--json")
    args = ap.parse_args()
    reason = at.prerequisites()
    if reason:
        raise SystemExit(reason)
    base = tempfile.mkdtemp(prefix="airlock-bench-queue-")
    os.chmod(base, 0o755)
    work = os.path.join(base, "work")
    os.mkdir(work)
    daemon = at.Daemon(base, ht.ROOTFS)
    pg = pg_test.Postgres(base)
    results = []
    try:
        pg.start()
        daemon.start()
        task = write_task(base, daemon.socket_path)
        for n in [int(x) for x in args.workers.split(",")]:
            r = one_round(pg, daemon, work, task, args.runs, n)
            results.append(r)
            print("%d worker(s): %d runs in %.1f s = %.1f runs/min (median run %.2f s, "
                  "%d attempts, %d not completed)" % (n, r["runs"], r["seconds"],
                                                      r["runs_per_minute"],
                                                      r["run_seconds_median"], r["attempts"],
                                                      r["failed"]), flush=True)
        if args.latency_runs:
            lat = idle_claim_latency(pg, daemon, work, task, args.latency_runs)
            results.append({"idle_claim": lat})
            print("idle worker: submission to claim %.1f ms median, %.1f ms max (%d runs)"
                  % (lat["claim_ms_median"], lat["claim_ms_max"], lat["runs"]), flush=True)
    finally:
        c = at.Client(daemon.socket_path)
        try:
            for sb in c.list():
                c.request("DELETE", "/v1/sandboxes/" + sb["id"])
        except OSError:
            pass
        c.close()
        daemon.stop()
        pg.destroy()
        shutil.rmtree(base, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"queue": results}, f, indent=1)


if __name__ == "__main__":
    main()
