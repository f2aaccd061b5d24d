#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Snapshot and restore times: airlockd against runc checkpoint/restore with the
same CRIU, on the same busybox root filesystem and the same shell loop.

    sudo AIRLOCK_BUILD_DIR=build python3 bench/snapshot.py [--runs N]

runc: `runc checkpoint` (the container stops) and `runc restore -d` of a
container running `while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.1; done`.
airlockd: POST /v1/sandboxes/{id}/snapshots (the sandbox keeps running) and
POST /v1/sandboxes {"snapshot": id}, with processes when airlockd can
checkpoint them and without otherwise (it prints which), plus the bytes the
first and a second snapshot of the same sandbox wrote.  A snapshot with
processes restores into the uid range it was taken in, so each round
destroys the sandbox before restoring it, and the restored one (whose loop
must still be counting) is the next round's source.  Everything it makes is
removed.

Then the same again with a second process next to the loop that keeps
--resident-mb MiB (default 200; 0 skips it) of random bytes resident: a
`dd` holding them in its buffer, blocked writing them to a pipe nobody
reads.  Its memory is what both sides dump and restore.

--json FILE writes the samples (ms) as airlock_snapshot, airlock_restore,
runc_checkpoint, runc_restore and, for the resident case, the same names
with _200mb (the size) appended (read by bench/run), plus
airlock_first_snapshot_200mb: the sandbox's first snapshot, which has no
parent to share chunks with (each timed round snapshots the sandbox restored
from the previous round's snapshot, and so writes only what changed).  Also,
for the resident case: airlock_frozen_200mb, how long airlockd kept the
sandbox frozen for each snapshot (its answer's timings_ms), and where the
time went (airlock_dump_, airlock_stored_, airlock_restore_read_,
airlock_criu_restore_200mb, from the answers and airlockd's log); and
incremental_200mb, the bytes the first snapshot wrote against those of a
later one taken after 1% of the resident pages changed (dirty(): scattered
single pages, written through /proc/PID/mem).
"""

import argparse
import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
from airlock_test import Client, Daemon  # noqa: E402

BUSYBOX = "/var/lib/airlock/rootfs/busybox"
LOOP = "i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.1; done"


def resident(mb):
    """A command that keeps mb MiB of random bytes resident in one dd."""
    return ("dd if=/dev/urandom bs=1M count=%d iflag=fullblock 2>/dev/null | "
            "dd bs=%dM count=1 iflag=fullblock 2>/dev/null | sleep 1000000" % (mb, mb))


def max_rss_mb(status_text):
    """The largest VmRSS (MiB) in the concatenated /proc/*/status lines given."""
    kb = [int(line.split()[1]) for line in status_text.splitlines() if line.startswith("VmRSS:")]
    return max(kb, default=0) / 1024.0


RSS_CMD = "cat /proc/[0-9]*/status 2>/dev/null | grep VmRSS"


def dirty(mb, pct):
    """A command that overwrites pct% of the pages of the mb MiB buffer the
    resident() dd holds with random bytes, one page in every 100/pct,
    at a different place in each window: scattered single pages, the
    worst case for sharing chunks.  Through /proc/PID/mem (the same uid,
    no capability needed); the dd's largest writable mapping is its buffer."""
    pages = mb * 256 * pct // 100
    stride = 100 // pct
    return (
        'pid=""; for p in /proc/[0-9]*; do '
        'grep -q "VmRSS:.* [0-9]\\{%d,\\} kB" $p/status 2>/dev/null && pid=${p#/proc/}; done; '
        '[ -n "$pid" ] || { echo "no resident process" >&2; exit 1; }; '
        'lo=$(grep " rw-p " /proc/$pid/maps | while read r rest; do '
        'echo $((0x${r#*-} - 0x${r%%%%-*})) ${r%%%%-*}; done | sort -n | tail -1); '
        'lo=$((0x${lo#* } / 4096)); k=0; '
        'while [ $k -lt %d ]; do '
        'dd if=/dev/urandom of=/proc/$pid/mem bs=4096 count=1 conv=notrunc '
        'seek=$((lo + k * %d + (k * 37) %% %d)) 2>/dev/null || exit 1; k=$((k + 1)); done; '
        'echo $k' % (len(str(mb * 1024)), pages, stride, stride))


def ms(t0):
    return (time.monotonic() - t0) * 1000


def summary(name, values):
    if not values:
        return "%-38s n/a" % name
    return "%-38s median %7.1f ms  min %7.1f  max %7.1f  (n=%d)" % (
        name, statistics.median(values), min(values), max(values), len(values))


def bench_runc(work, runs, mb=0):
    if not shutil.which("runc"):
        return None, "runc is not installed"
    bundle = os.path.join(work, "bundle-%d" % mb)
    os.makedirs(bundle)
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    with open(os.path.join(bundle, "config.json")) as f:
        spec = json.load(f)
    spec["root"] = {"path": BUSYBOX, "readonly": False}
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["/bin/sh", "-c", (resident(mb) + " & " if mb else "") + LOOP]
    # The rootfs is shared with airlockd: the loop writes to a tmpfs.
    spec["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                           "options": ["nosuid", "nodev"]})
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(spec, f)
    root = os.path.join(work, "runc-root")
    cid = "airlock-bench-%d-%d" % (os.getpid(), mb)
    runc = ["runc", "--root", root]
    dump, restore = [], []
    try:
        subprocess.run(runc + ["run", "-d", cid], cwd=bundle, check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        if mb:
            wait_resident(lambda: subprocess.run(
                runc + ["exec", cid, "sh", "-c", RSS_CMD], capture_output=True,
                text=True).stdout, mb, "runc container")
        for i in range(runs):
            images = os.path.join(work, "runc-images-%d-%d" % (mb, i))
            t0 = time.monotonic()
            subprocess.run(runc + ["checkpoint", "--image-path", images, cid], check=True)
            dump.append(ms(t0))
            t0 = time.monotonic()
            subprocess.run(runc + ["restore", "-d", "--image-path", images, cid], cwd=bundle,
                           check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            restore.append(ms(t0))
            shutil.rmtree(images, ignore_errors=True)
    finally:
        subprocess.run(runc + ["delete", "-f", cid], stderr=subprocess.DEVNULL)
        # runc leaves the container's empty cgroups in the v1 hierarchies it
        # does not manage (blkio, devices, cpuacct, name=systemd): ours, remove.
        for base in glob.glob("/sys/fs/cgroup/*/"):
            path = os.path.join(base, cid)
            if os.path.isdir(path):
                try:
                    os.rmdir(path)
                except OSError as e:
                    print("snapshot.py: cannot remove %s: %s" % (path, e), file=sys.stderr)
    return (dump, restore), None


def wait_resident(status_of, mb, what, timeout=30):
    """Wait until a process of what (status_of() gives its RSS lines) holds mb MiB."""
    end = time.monotonic() + timeout
    while max_rss_mb(status_of()) < mb:
        if time.monotonic() > end:
            raise AssertionError("%s: no process got %d MiB resident in %d s" % (what, mb, timeout))
        time.sleep(0.2)


def counter(c, sid):
    r = c.exec(sid, command="cat /tmp/n")
    return int(r["stdout"] or 0)


def bench_airlock(work, runs, mb=0):
    daemon = Daemon(os.path.join(work, "airlockd-%d" % mb), BUSYBOX)
    os.makedirs(daemon.workdir)
    daemon.start()
    c = Client(daemon.socket_path)
    snaps, sandboxes = [], []
    result = {"take": [], "restore": [], "frozen": [], "dump": [], "stored": [],
              "processes": True}
    try:
        sb = c.create()
        sandboxes.append(sb["id"])
        c.exec(sb["id"], command=LOOP, yield_ms=50)
        if mb:
            c.exec(sb["id"], command=resident(mb), yield_ms=50)
            wait_resident(lambda: c.exec(sb["id"], command=RSS_CMD)["stdout"], mb,
                          "sandbox " + sb["id"])
        time.sleep(0.5)
        # The first snapshot has nothing to share: every byte goes to the store.
        t0 = time.monotonic()
        r = c.request("POST", "/v1/sandboxes/%s/snapshots" % sb["id"], {"processes": True})
        result["first_take"] = ms(t0)
        if r.status != 201:
            result["processes"] = False
            result["why"] = r.json["error"]["message"]
        else:
            snaps.append(r.json["id"])
            result["first_written"] = r.json["sizes"]["written"]
            result["first_frozen"] = r.json.get("timings_ms", {}).get("frozen")
        source = sb["id"]
        for _ in range(runs):
            # The loop's count before the snapshot: the restored loop goes on
            # from where the snapshot caught it, so at least from here (the
            # sandbox runs on while its snapshot is stored).
            before = counter(c, source)
            t0 = time.monotonic()
            r = c.expect(201, "POST", "/v1/sandboxes/%s/snapshots" % source,
                         {"processes": result["processes"]})
            result["take"].append(ms(t0))
            snaps.append(r.json["id"])
            # How long the sandbox stood still (airlockd measures it, from
            # the freeze to the thaw; with processes: false it is 0).
            if "timings_ms" in r.json:
                result["frozen"].append(r.json["timings_ms"]["frozen"])
                result["dump"].append(r.json["timings_ms"]["dump"])
                result["stored"].append(r.json["timings_ms"]["stored"])
            if result["processes"]:
                c.expect(200, "DELETE", "/v1/sandboxes/" + source)
                sandboxes.remove(source)
            t0 = time.monotonic()
            new = c.expect(201, "POST", "/v1/sandboxes", {"snapshot": r.json["id"]}).json
            result["restore"].append(ms(t0))
            sandboxes.append(new["id"])
            if result["processes"]:
                # The loop goes on in the restored sandbox.
                time.sleep(0.3)
                after = counter(c, new["id"])
                assert after >= before, (before, after)
                if mb:
                    # And the memory came back with its process.
                    rss = max_rss_mb(c.exec(new["id"], command=RSS_CMD)["stdout"])
                    assert rss >= mb, (rss, mb)
                source = new["id"]
            else:
                c.expect(200, "DELETE", "/v1/sandboxes/" + new["id"])
                sandboxes.remove(new["id"])
        if mb:
            if result["processes"]:
                # Incremental: 1% of the resident memory changes between two
                # snapshots; the second writes what changed, against the
                # first snapshot of the sandbox, which wrote everything.
                before = c.expect(201, "POST", "/v1/sandboxes/%s/snapshots" % source,
                                  {"processes": True}).json
                snaps.append(before["id"])
                r = c.exec(source, command=dirty(mb, 1))
                assert r.get("exit_code") == 0, r
                after = c.expect(201, "POST", "/v1/sandboxes/%s/snapshots" % source,
                                 {"processes": True}).json
                snaps.append(after["id"])
                result["dirty_pages"] = int(r["stdout"].split()[-1])
                result["unchanged_written"] = before["sizes"]["written"]
                result["dirty_written"] = after["sizes"]["written"]
            return result
        # Incremental: a sandbox with 32 MiB of data, snapshotted twice.
        r = c.exec(source, command="dd if=/dev/urandom of=/blob bs=1M count=32 2>/dev/null")
        assert r.get("exit_code") == 0, r
        first = c.expect(201, "POST", "/v1/sandboxes/%s/snapshots" % source,
                         {"processes": result["processes"]}).json
        c.exec(source, command="echo changed > /small")
        second = c.expect(201, "POST", "/v1/sandboxes/%s/snapshots" % source,
                          {"processes": result["processes"]}).json
        snaps += [first["id"], second["id"]]
        result["first"] = first["sizes"]
        result["second"] = second["sizes"]
    finally:
        for s in sandboxes:
            c.request("DELETE", "/v1/sandboxes/" + s)
        for s in snaps:
            c.request("DELETE", "/v1/snapshots/" + s)
        c.close()
        daemon.stop()
        # Where a restore's time went, as airlockd logged it.
        log = daemon.log()
        result["restore_read"] = [float(x) for x in re.findall(
            r"restore of snapshot \w+: \d+ ms, its parts read and checked in (\d+) ms", log)]
        result["criu_restore"] = [float(x) for x in re.findall(
            r"criu restore in (\d+) ms", log)]
    return result


def print_ratio(a, runc, what):
    ours = statistics.median(a["take"]) + statistics.median(a["restore"])
    theirs = statistics.median(runc[0]) + statistics.median(runc[1])
    print("checkpoint+restore%s: airlockd %.1f ms, runc %.1f ms (medians): %.2fx"
          % (what, ours, theirs, ours / theirs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--json", help="also write the samples (ms) to this file")
    ap.add_argument("--resident-mb", type=int, default=200,
                    help="MiB a second process keeps resident in the second case (0: no such case)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/snapshot.py needs root")
    criu = subprocess.run(["criu", "--version"], capture_output=True, text=True).stdout.split()
    print("CRIU %s, kernel %s, %d runs each" % (criu[1] if len(criu) > 1 else "?",
                                                 os.uname().release, args.runs))
    work = tempfile.mkdtemp(prefix="airlock-bench-snap-")
    os.chmod(work, 0o755)
    try:
        runc, why = bench_runc(work, args.runs)
        if runc:
            print(summary("runc checkpoint (stops the container)", runc[0]))
            print(summary("runc restore -d", runc[1]))
        else:
            print("runc: skipped:", why)
        a = bench_airlock(work, args.runs)
        kind = "with processes" if a["processes"] else "without processes"
        if not a["processes"]:
            print("airlockd: process checkpoint unavailable: %s" % a["why"])
        print(summary("airlockd snapshot (%s)" % kind, a["take"]))
        print(summary("airlockd restore (%s)" % kind, a["restore"]))
        print("airlockd incremental: first snapshot wrote %d of %d bytes, second wrote %d of %d"
              " (%.1f%%)" % (a["first"]["written"], a["first"]["total"], a["second"]["written"],
                             a["second"]["total"],
                             100.0 * a["second"]["written"] / max(1, a["first"]["written"])))
        data = {"airlock_snapshot": a["take"], "airlock_restore": a["restore"],
                "airlock_processes": a["processes"]}
        if runc:
            data["runc_checkpoint"], data["runc_restore"] = runc
            print_ratio(a, runc, "")
        if args.resident_mb > 0:
            mb = args.resident_mb
            print("-- with a process keeping %d MiB resident" % mb)
            runc, why = bench_runc(work, args.runs, mb)
            if runc:
                print(summary("runc checkpoint, %d MiB" % mb, runc[0]))
                print(summary("runc restore -d, %d MiB" % mb, runc[1]))
                data["runc_checkpoint_%dmb" % mb], data["runc_restore_%dmb" % mb] = runc
            else:
                print("runc: skipped:", why)
            a = bench_airlock(work, args.runs, mb)
            print(summary("airlockd snapshot, %d MiB" % mb, a["take"]))
            print(summary("airlockd restore, %d MiB" % mb, a["restore"]))
            print("airlockd first snapshot, %d MiB (nothing to share yet): %.1f ms"
                  % (mb, a["first_take"]))
            data["airlock_first_snapshot_%dmb" % mb] = [a["first_take"]]
            data["airlock_snapshot_%dmb" % mb] = a["take"]
            data["airlock_restore_%dmb" % mb] = a["restore"]
            if a["frozen"]:
                print(summary("airlockd sandbox frozen, %d MiB" % mb, a["frozen"]))
                data["airlock_frozen_%dmb" % mb] = a["frozen"]
                # Where the time goes: in the snapshot, CRIU's dump (frozen) and
                # the chunking and storing after the thaw; in the restore,
                # reading and checking the parts, then CRIU's restore.
                for key, what in (("dump", "criu dump"), ("stored", "stored after the thaw"),
                                  ("restore_read", "restore: parts read and checked"),
                                  ("criu_restore", "restore: criu restore")):
                    if a[key]:
                        print(summary("airlockd %s, %d MiB" % (what, mb), a[key]))
                        data["airlock_%s_%dmb" % (key, mb)] = a[key]
            if "dirty_written" in a:
                print("airlockd incremental, %d MiB: first snapshot wrote %d bytes; next one with "
                      "nothing changed %d; after %d pages (1%%) changed %d (%.2f%% of the first)"
                      % (mb, a["first_written"], a["unchanged_written"], a["dirty_pages"],
                         a["dirty_written"], 100.0 * a["dirty_written"] / a["first_written"]))
                data["incremental_%dmb" % mb] = {
                    "first_written": a["first_written"],
                    "unchanged_written": a["unchanged_written"],
                    "dirty_pages": a["dirty_pages"], "dirty_written": a["dirty_written"]}
            if runc:
                print_ratio(a, runc, ", %d MiB" % mb)
                if a["frozen"]:
                    print("frozen%s: airlockd %.1f ms, runc checkpoint %.1f ms (medians): %.2fx"
                          % (", %d MiB" % mb, statistics.median(a["frozen"]),
                             statistics.median(runc[0]),
                             statistics.median(a["frozen"]) / statistics.median(runc[0])))
                print("restore%s: airlockd %.1f ms, runc restore %.1f ms (medians): %.2fx"
                      % (", %d MiB" % mb, statistics.median(a["restore"]),
                         statistics.median(runc[1]),
                         statistics.median(a["restore"]) / statistics.median(runc[1])))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(data, f, indent=1)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
