#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The file API's throughput against `cat` on the host, side by side.

    bench/file_throughput.py [--mib N] [--rounds R] [--build-dir DIR]

A private airlockd (its own state directory) and one busybox sandbox with
room for the file; then, R rounds taking turns so that a busy host slows
both alike:

* read:  `curl --unix-socket` GET of an N MiB file on the sandbox's disk
         (its tmpfs) to /dev/null, against `cat FILE > /dev/null` of the
         same bytes in a file on the host (both from memory);
* write: `curl -T FILE` PUT of the N MiB into the sandbox, against
         `cat FILE > T` with T on a tmpfs (the medium of a sandbox's disk).

The medians are printed in MiB/s with the ratio airlock/cat (issue 19's
target: >= 0.5), and airlockd's peak RSS over the run.  Everything it made
is removed at the end, on failure too.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))


def timed(argv, **kw):
    start = time.perf_counter()
    subprocess.run(argv, check=True, **kw)
    return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mib", type=int, default=256)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--build-dir", default=os.path.join(HERE, "..", "build"))
    a = p.parse_args()
    os.environ["AIRLOCK_BUILD_DIR"] = os.path.abspath(a.build_dir)
    import airlock_test as at

    work = tempfile.mkdtemp(prefix="airlock-bench-ft-")
    os.chmod(work, 0o755)
    shm = tempfile.mkdtemp(prefix="airlock-bench-ft-", dir="/dev/shm")
    daemon = at.Daemon(work, at.ROOTFS)
    daemon.start()
    client = at.Client(daemon.socket_path)
    sid = None
    try:
        size = a.mib << 20
        sid = client.create(limits={"memory": "%dM" % (3 * a.mib + 64),
                                    "disk": "%dM" % (2 * a.mib + 32)})["id"]
        src = os.path.join(work, "src")
        with open(src, "wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(a.mib):
                f.write(block)
        url = "http://airlock" + client.files_path(sid, "/tmp/f")
        curl = ["curl", "-sS", "--fail", "--unix-socket", daemon.socket_path]
        subprocess.run(curl + ["-T", src, url, "-o", "/dev/null"], check=True)
        samples = {k: [] for k in ("read", "cat_read", "write", "cat_write")}
        peak = 0
        for _ in range(a.rounds):
            samples["read"].append(timed(curl + [url, "-o", "/dev/null"]))
            peak = max(peak, at.rss_kib(daemon.proc.pid))
            with open(os.devnull, "wb") as null:
                samples["cat_read"].append(timed(["cat", src], stdout=null))
            samples["write"].append(timed(curl + ["-T", src, url, "-o", "/dev/null"]))
            peak = max(peak, at.rss_kib(daemon.proc.pid))
            with open(os.path.join(shm, "t"), "wb") as t:
                samples["cat_write"].append(timed(["cat", src], stdout=t))
            os.unlink(os.path.join(shm, "t"))
        mib_s = {k: a.mib / statistics.median(v) for k, v in samples.items()}
        print("| operation (%d MiB) | airlock MiB/s | cat MiB/s | ratio (target >= 0.5) |"
              % a.mib)
        print("|---|---|---|---|")
        for op in ("read", "write"):
            print("| %s | %.0f | %.0f | %.2f |" % (op, mib_s[op], mib_s["cat_" + op],
                                                  mib_s[op] / mib_s["cat_" + op]))
        print("airlockd peak RSS: %.1f MiB (file %d MiB)" % (peak / 1024, size >> 20))
    finally:
        if sid:
            client.destroy(sid)
        client.close()
        daemon.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(shm, ignore_errors=True)


if __name__ == "__main__":
    main()
