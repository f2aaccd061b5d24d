#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Streams, not buffers: `airlock exec` moves its command's stdin and stdout
at any size in bounded memory (1 GiB each way here, with airlockd's and the
CLI's resident memory sampled throughout), and `airlock hydrate` and
`persist` stream a tar into and out of the sandbox without holding or
spooling it."""

import hashlib
import os
import subprocess
import threading
import time
import unittest

import airlock_test as at

GIB = 1 << 30
# What airlockd and the CLI may grow by while a GiB goes through: a few
# pipes' and frames' worth, nowhere near the data.
RSS_BOUND_KIB = 48 << 10


class RssSampler:
    """Peak VmRSS of some pids, sampled every 20 ms until stopped."""

    def __init__(self, pids):
        self.pids = list(pids)
        self.peak = {p: at.rss_kib(p) for p in self.pids}
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def add(self, pid):
        self.peak.setdefault(pid, at.rss_kib(pid))
        self.pids.append(pid)

    def run(self):
        while not self.stop_flag.wait(0.02):
            for p in list(self.pids):
                self.peak[p] = max(self.peak.get(p, 0), at.rss_kib(p))

    def stop(self):
        self.stop_flag.set()
        self.thread.join()
        return self.peak


def memory_charged(sid):
    """Bytes charged to the sandbox's memory cgroup (v1 or v2)."""
    for d in at.cgroup_dirs_of([sid]):
        for name in ("memory.usage_in_bytes", "memory.current"):
            text = at.read_text(os.path.join(d, name))
            if text:
                return int(text)
    raise AssertionError("no memory cgroup for sandbox %s" % sid)


class StreamsTest(at.AirlockTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.sid = cls.client.create()["id"]
        cls.env = dict(os.environ, AIRLOCK_SOCKET=cls.daemon.socket_path)

    def cli(self, *args):
        return [at.AIRLOCK_CLI, "--socket", self.daemon.socket_path] + list(args)

    def test_exec_stdout_one_gib_bounded(self):
        base = at.rss_kib(self.daemon.proc.pid)
        rss = RssSampler([self.daemon.proc.pid])
        p = subprocess.Popen(self.cli("exec", self.sid, "--", "dd", "if=/dev/zero", "bs=1M",
                                      "count=1024"),
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
        rss.add(p.pid)
        got = 0
        while True:
            chunk = p.stdout.read1(1 << 20)
            if not chunk:
                break
            got += len(chunk)
        status = p.wait(60)
        peak = rss.stop()
        self.assertEqual(status, 0)
        self.assertEqual(got, GIB)
        self.assertLess(peak[self.daemon.proc.pid] - base, RSS_BOUND_KIB, peak)
        self.assertLess(peak[p.pid], RSS_BOUND_KIB, peak)

    def test_exec_stdin_one_gib_bounded(self):
        base = at.rss_kib(self.daemon.proc.pid)
        rss = RssSampler([self.daemon.proc.pid])
        p = subprocess.Popen(self.cli("exec", self.sid, "--", "wc", "-c"),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        rss.add(p.pid)
        block = bytes(1 << 20)
        for _ in range(1024):
            p.stdin.write(block)
        p.stdin.close()
        out = p.stdout.read()
        status = p.wait(60)
        peak = rss.stop()
        self.assertEqual(status, 0, p.stderr.read())
        self.assertEqual(int(out.split()[0]), GIB)
        self.assertLess(peak[self.daemon.proc.pid] - base, RSS_BOUND_KIB, peak)
        self.assertLess(peak[p.pid], RSS_BOUND_KIB, peak)

    def test_exec_both_ways_exact_bytes_and_status(self):
        data = os.urandom(24 << 20)
        p = subprocess.run(self.cli("exec", self.sid, "--", "sh", "-c",
                                    "cat; echo done >&2; exit 7"),
                           input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=120)
        self.assertEqual(p.returncode, 7)
        self.assertEqual(hashlib.sha256(p.stdout).hexdigest(), hashlib.sha256(data).hexdigest())
        self.assertEqual(p.stderr, b"done\n")
        # No input at all: the command reads its end at once.
        p = subprocess.run(self.cli("exec", self.sid, "--", "wc", "-c"),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, timeout=60)
        self.assertEqual((p.returncode, p.stdout.split()), (0, [b"0"]))

    def test_closed_stdout_ends_the_command(self):
        """`airlock exec ID -- cat /dev/zero | head -c N` ends as a local pipe does."""
        p = subprocess.run(["sh", "-c", '"$@" | head -c 100000 | wc -c; exit ${PIPESTATUS:-0}',
                            "sh"] + self.cli("exec", self.sid, "--", "cat", "/dev/zero"),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, timeout=60)
        self.assertEqual(p.stdout.split(), [b"100000"])
        end = time.monotonic() + 10
        while True:
            ps = self.out(self.sid, "ps -o args")
            if "cat /dev/zero" not in ps or time.monotonic() > end:
                break
            time.sleep(0.1)
        self.assertNotIn("cat /dev/zero", ps)

    def test_hydrate_and_persist_streamed_and_a_cut_archive_changes_nothing(self):
        src = os.path.join(self.workdir, "ws-src")
        os.makedirs(src)
        size = 256 << 20
        with open(os.path.join(src, "big"), "wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(size >> 20):
                f.write(block)
        with open(os.path.join(src, "small"), "w") as f:
            f.write("hello\n")
        tar_path = os.path.join(self.workdir, "ws.tar")
        subprocess.run(["tar", "-C", src, "-cf", tar_path, "."], check=True)
        charged = memory_charged(self.sid)
        base = at.rss_kib(self.daemon.proc.pid)
        rss = RssSampler([self.daemon.proc.pid])
        spool_seen = set()
        done = threading.Event()

        def watch_fds():
            d = "/proc/%d/fd" % self.daemon.proc.pid
            while not done.wait(0.02):
                for fd in os.listdir(d):
                    link = at.readlink(os.path.join(d, fd)) or ""
                    if "(deleted)" in link:
                        spool_seen.add(link)
        watcher = threading.Thread(target=watch_fds, daemon=True)
        watcher.start()
        with open(tar_path, "rb") as f:
            p = subprocess.Popen(self.cli("hydrate", self.sid), stdin=f,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            rss.add(p.pid)
            out, err = p.communicate(timeout=300)
        peak = rss.stop()
        done.set()
        watcher.join()
        self.assertEqual(p.returncode, 0, err)
        # Not a terminal: no progress line.
        self.assertEqual(err, b"")
        self.assertLess(peak[self.daemon.proc.pid] - base, RSS_BOUND_KIB, peak)
        self.assertLess(peak[p.pid], RSS_BOUND_KIB, peak)
        self.assertEqual(self.out(self.sid, "wc -c < big; cat small").split(),
                         [str(size), "hello"])
        # The extraction ran in the sandbox's cgroups: the new files' pages
        # (its disk is a tmpfs) are charged to the sandbox, not to airlockd.
        self.assertGreater(memory_charged(self.sid) - charged, size * 9 // 10)
        # Nothing was spooled: airlockd never opened a temp file in its
        # state directory (where a spooled body would go) while it came.
        self.assertFalse([link for link in spool_seen if self.daemon.state_dir in link],
                         spool_seen)
        # Persist streams back what hydrate put there, byte for byte, in
        # bounded memory and nothing spooled either.
        spool_seen.clear()
        done.clear()
        watcher = threading.Thread(target=watch_fds, daemon=True)
        watcher.start()
        rss = RssSampler([self.daemon.proc.pid])
        p = subprocess.Popen(self.cli("persist", self.sid), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        rss.add(p.pid)
        t = subprocess.run(["tar", "-xO", "big"], stdin=p.stdout, stdout=subprocess.PIPE,
                           timeout=300)
        p.stdout.close()
        self.assertEqual(p.wait(60), 0, p.stderr.read())
        peak = rss.stop()
        done.set()
        watcher.join()
        self.assertEqual(t.returncode, 0)
        self.assertEqual(len(t.stdout), size)
        self.assertEqual(t.stdout[:1 << 20], block)
        t = None
        self.assertLess(peak[self.daemon.proc.pid] - base, RSS_BOUND_KIB, peak)
        self.assertLess(peak[p.pid], RSS_BOUND_KIB, peak)
        self.assertFalse([link for link in spool_seen if self.daemon.state_dir in link],
                         spool_seen)
        # Cut in the middle of "big": refused, and the workspace is as it was.
        with open(tar_path, "rb") as f:
            cut = f.read(100 << 20)
        p = subprocess.run(self.cli("hydrate", self.sid), input=cut,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"Truncated", p.stderr)
        self.assertEqual(self.out(self.sid, "wc -c < big; cat small").split(),
                         [str(size), "hello"])
        os.unlink(tar_path)


if __name__ == "__main__":
    at.main()
