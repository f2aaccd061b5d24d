#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Soak: a private airlockd under a steady mix of work for a while, with its
memory, fds, threads and snapshot store reported as it goes.  Not in CI.

    sudo tests/soak/soak.py --minutes 10 [--clients 4] [--build-dir build]

Each client loops: create a sandbox from a manifest, exec a few commands
(one with output left uncollected in the background), write and read
files, persist its workspace, snapshot it (with its processes when CRIU is
there and it is the only client), restore the snapshot, delete the snapshot, destroy both sandboxes.
Every --every seconds one line: rounds done, errors, airlockd's RSS, fds
and threads, bytes in the snapshot store, output held for clients.  At the
end the growth of each from the first sample (after a warm-up round) is
printed, and the exit status is 1 when there were errors or anything was
left behind.
"""

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import airlock_test as at  # noqa: E402


def du(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
            except OSError:
                pass
    return total


def sample(daemon, client):
    pid = daemon.proc.pid
    return {"rss_kib": at.rss_kib(pid),
            "fds": len(os.listdir("/proc/%d/fd" % pid)),
            "threads": len(os.listdir("/proc/%d/task" % pid)),
            "store_bytes": du(os.path.join(daemon.state_dir, "snapshots")),
            "output_held": client.info()["output"]["held_bytes"]}


def round_trip(c, n, processes):
    manifest = {"version": 1, "entries": {"a.txt": {"type": "file", "content": "a%d\n" % n}}}
    sid = c.create(manifest=manifest)["id"]
    try:
        assert c.exec(sid, command="cat /workspace/a.txt")["stdout"] == "a%d\n" % n
        c.exec(sid, command="yes | head -c 100000; sleep 1000", yield_ms=1)  # never collected
        assert c.write_file(sid, "/workspace/b.bin", os.urandom(1 << 20)).status == 200
        assert c.read_file(sid, "/workspace/a.txt").status == 200
        assert c.request("GET", "/v1/sandboxes/%s/workspace" % sid).status == 200
        snap = c.expect(201, "POST", "/v1/sandboxes/%s/snapshots" % sid,
                        {"processes": processes}).json["id"]
        if processes:
            c.destroy(sid)
            sid = None
        new = c.create(snapshot=snap)["id"]
        assert c.exec(new, command="cat /workspace/a.txt")["stdout"] == "a%d\n" % n
        c.destroy(new)
        c.expect(200, "DELETE", "/v1/snapshots/" + snap)
    finally:
        if sid:
            c.destroy(sid)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--every", type=float, default=30)
    ap.add_argument("--build-dir", default=os.environ.get("AIRLOCK_BUILD_DIR", "build"))
    args = ap.parse_args()
    os.environ["AIRLOCK_BUILD_DIR"] = os.path.abspath(args.build_dir)
    work = tempfile.mkdtemp(prefix="airlock-soak-")
    os.chmod(work, 0o755)
    daemon = at.Daemon(work, "/var/lib/airlock/rootfs/busybox")
    daemon.start()
    c = at.Client(daemon.socket_path)
    processes = bool(c.info().get("criu", {}).get("version"))
    stop = time.monotonic() + args.minutes * 60
    done, errors = [0], []

    def worker(k):
        wc = at.Client(daemon.socket_path)
        n = 0
        while time.monotonic() < stop:
            try:
                # With processes only alone: a restore needs the uid range it
                # was taken in, which another client's next create may take.
                round_trip(wc, k * 1000000 + n, processes and args.clients == 1)
                done[0] += 1
            except Exception as e:  # noqa: BLE001  (counted and reported)
                errors.append(repr(e))
            n += 1
        wc.close()

    round_trip(c, 0, False)  # warm-up: caches, the seccomp filter, the store
    first = sample(daemon, c)
    print("start", first, flush=True)
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(args.clients)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(min(args.every, max(0.1, stop - time.monotonic() + 1)))
        print("%6.0f s rounds=%d errors=%d %s" % (args.minutes * 60 - (stop - time.monotonic()),
                                                  done[0], len(errors), sample(daemon, c)),
              flush=True)
    for t in threads:
        t.join()
    last = sample(daemon, c)
    print("growth", {k: last[k] - first[k] for k in first})
    for e in errors[:10]:
        print("error:", e)
    left = c.list()
    c.close()
    daemon.stop()
    problems = at.leftovers(daemon.state_dir, [s["id"] for s in left], daemon.socket_path)
    shutil.rmtree(work, ignore_errors=True)
    for p in problems:
        print("left:", p)
    sys.exit(1 if errors or problems or left else 0)


if __name__ == "__main__":
    main()
