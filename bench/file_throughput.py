#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The file API's throughput against `cat` on the host, side by side.

    bench/file_throughput.py [--mib N] [--rounds R] [--build-dir DIR]

A private airlockd (its own state directory) and one busybox sandbox with
room for the file; then, R rounds taking turns so that a busy host slows
every side alike:

* read:  `airlock read ID FILE > /dev/null` (the CLI) and `curl
         --unix-socket` GET to /dev/null of an N MiB file on the sandbox's
         disk (its tmpfs), against `cat FILE > /dev/null` of the same bytes
         in a file on the host's disk, and `cat` of the sandbox's very file
         from the host (/proc/PID/root/...: the same pages), all from memory;
* read into a file: `airlock cp ID:PATH T` with T on a tmpfs, against
         `cat FILE > T`;
* write: `airlock cp FILE ID:PATH` and `curl -T FILE` PUT of the N MiB
         into the sandbox (a new file each time, removed untimed), against
         `cat FILE > T` with T on a tmpfs (the medium of a sandbox's disk).

The medians are printed in MiB/s with the ratio of each to `cat` (issue
19's target: >= 0.5 with the CLI, what users run), airlockd's peak RSS over
the run and the CLI's largest.  Everything it made is removed at the end,
on failure too.
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


def peak_rss_kib(argv):
    """argv's peak RSS (VmHWM, read until it exits; getrusage's ru_maxrss
    would count this interpreter's, which the child was forked from)."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        for line in (at_read("/proc/%d/status" % proc.pid) or "").splitlines():
            if line.startswith("VmHWM:"):
                peak = max(peak, int(line.split()[1]))
        time.sleep(0.001)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, argv)
    return peak


def at_read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def same_bytes(p1, p2):
    with open(p1, "rb") as f1, open(p2, "rb") as f2:
        while True:
            b1, b2 = f1.read(1 << 20), f2.read(1 << 20)
            if b1 != b2:
                return False
            if not b1:
                return True


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mib", type=int, default=256)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--build-dir", default=os.environ.get("AIRLOCK_BUILD_DIR")
                   or os.path.join(HERE, "..", "build"))
    a = p.parse_args()
    os.environ["AIRLOCK_BUILD_DIR"] = os.path.abspath(a.build_dir)
    import airlock_test as at

    work = tempfile.mkdtemp(prefix="airlock-bench-ft-")
    os.chmod(work, 0o755)
    shm = tempfile.mkdtemp(prefix="airlock-bench-ft-", dir="/dev/shm")
    daemon = at.Daemon(work, at.ROOTFS)
    client = at.Client(daemon.socket_path)
    sid = None
    try:
        daemon.start()
        size = a.mib << 20
        sid = client.create(limits={"memory": "%dM" % (3 * a.mib + 64),
                                    "disk": "%dM" % (2 * a.mib + 32)})["id"]
        pid1 = client.expect(200, "GET", "/v1/sandboxes/" + sid).json["init_pid"]
        src = os.path.join(work, "src")
        with open(src, "wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(a.mib):
                f.write(block)
        url = "http://airlock" + client.files_path(sid, "/tmp/f")
        # Writes make a new file, as `cat` does on its side: replacing one
        # would time the freeing of the old one's pages too.
        wurl = "http://airlock" + client.files_path(sid, "/tmp/w")
        curl = ["curl", "-sS", "--fail", "--unix-socket", daemon.socket_path]
        cli = [at.AIRLOCK_CLI, "--socket", daemon.socket_path]
        subprocess.run(curl + ["-T", src, url, "-o", "/dev/null"], check=True)
        in_sandbox = "/proc/%d/root/tmp/f" % pid1
        if not same_bytes(in_sandbox, src):
            raise AssertionError("%s is not the file uploaded" % in_sandbox)
        runs = {
            "cli_read": cli + ["read", sid, "/tmp/f"],
            "curl_read": curl + [url, "-o", "/dev/null"],
            "cat_read": ["cat", src],
            "cat_same_read": ["cat", in_sandbox],
            "cli_get": cli + ["cp", sid + ":/tmp/f", os.path.join(shm, "g")],
            "cli_write": cli + ["cp", src, sid + ":/tmp/w"],
            "curl_write": curl + ["-T", src, wurl, "-o", "/dev/null"],
        }
        samples = {k: [] for k in list(runs) + ["cat_write"]}
        peak = 0
        for _ in range(a.rounds):
            for name, argv in runs.items():
                samples[name].append(timed(argv, stdout=subprocess.DEVNULL))
                peak = max(peak, at.rss_kib(daemon.proc.pid))
                if name == "cli_get":
                    if not same_bytes(os.path.join(shm, "g"), src):
                        raise AssertionError("cli_get wrote other bytes")
                    os.unlink(os.path.join(shm, "g"))
                if name.endswith("_write"):
                    if not same_bytes("/proc/%d/root/tmp/w" % pid1, src):
                        raise AssertionError("%s wrote other bytes" % name)
                    client.expect(200, "DELETE", client.files_path(sid, "/tmp/w"))
            with open(os.path.join(shm, "t"), "wb") as t:
                samples["cat_write"].append(timed(["cat", src], stdout=t))
            os.unlink(os.path.join(shm, "t"))
        cli_peak = max(peak_rss_kib(runs["cli_read"]), peak_rss_kib(runs["cli_write"]))
        mib_s = {k: a.mib / statistics.median(v) for k, v in samples.items()}
        print("| operation (%d MiB, median of %d) | MiB/s | cat MiB/s | ratio (target >= 0.5) |"
              % (a.mib, a.rounds))
        print("|---|---|---|---|")
        rows = (("read, `airlock read` > /dev/null", "cli_read", "cat_read"),
                ("read, `curl --unix-socket` > /dev/null", "curl_read", "cat_read"),
                ("read, `airlock read` vs `cat` of the sandbox's file", "cli_read",
                 "cat_same_read"),
                ("read into a tmpfs file, `airlock cp ID:PATH FILE`", "cli_get", "cat_write"),
                ("write, `airlock cp FILE ID:PATH`", "cli_write", "cat_write"),
                ("write, `curl -T`", "curl_write", "cat_write"))
        for label, op, peer in rows:
            print("| %s | %.0f | %.0f | %.2f |" % (label, mib_s[op], mib_s[peer],
                                                  mib_s[op] / mib_s[peer]))
        print("airlockd peak RSS: %.1f MiB, the CLI's: %.1f MiB (file %d MiB)"
              % (peak / 1024, cli_peak / 1024, size >> 20))
    finally:
        if sid:
            client.destroy(sid)
        client.close()
        daemon.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(shm, ignore_errors=True)


if __name__ == "__main__":
    main()
