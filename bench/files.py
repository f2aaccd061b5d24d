#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The file API's latency, for one or more builds side by side.

    bench/files.py [--ops N] [--rounds R] BUILD_DIR [BUILD_DIR ...]

For each build: a private airlockd (its own state directory), one busybox
sandbox, then N reads and N writes of a 1000-byte file through
GET/PUT /v1/sandboxes/{id}/files, after 20 of each to warm up.  The
builds take turns, R rounds each, so that a busy host slows them alike;
the median of the rounds is printed per build and operation, in ms.  The
first build is the reference of the ratios.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))


def one_round(build, ops):
    os.environ["AIRLOCK_BUILD_DIR"] = build
    import importlib
    import airlock_test as at
    importlib.reload(at)
    work = tempfile.mkdtemp(prefix="airlock-bench-files-")
    os.chmod(work, 0o755)
    daemon = at.Daemon(work, at.ROOTFS)
    daemon.start()
    try:
        client = at.Client(daemon.socket_path)
        sid = client.create()["id"]
        try:
            client.write_file(sid, "f.txt", b"x" * 1000)
            result = {}
            for name, call in (("read", lambda: client.read_file(sid, "f.txt")),
                               ("write", lambda: client.write_file(sid, "g.txt", b"y" * 1000))):
                for _ in range(20):
                    call()
                start = time.perf_counter()
                for _ in range(ops):
                    r = call()
                    if r.status != 200:
                        raise RuntimeError("%s: HTTP %d %r" % (name, r.status, r.body[:200]))
                result[name] = (time.perf_counter() - start) / ops * 1000
            return result
        finally:
            client.destroy(sid)
            client.close()
    finally:
        daemon.stop()
        shutil.rmtree(work, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ops", type=int, default=300)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("builds", nargs="+")
    a = p.parse_args()
    samples = {b: {"read": [], "write": []} for b in a.builds}
    for _ in range(a.rounds):
        for b in a.builds:
            for op, ms in one_round(os.path.abspath(b), a.ops).items():
                samples[b][op].append(ms)
    ref = a.builds[0]
    for b in a.builds:
        line = [b]
        for op in ("read", "write"):
            med = statistics.median(samples[b][op])
            ratio = med / statistics.median(samples[ref][op])
            line.append("%s %.3f ms (%.2fx)" % (op, med, ratio))
        print("  ".join(line))


if __name__ == "__main__":
    main()
