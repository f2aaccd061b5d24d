#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The airlock CLI end to end against a real airlockd."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import airlock_test as at


class CliTest(at.AirlockTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not os.access(at.AIRLOCK_CLI, os.X_OK):
            raise AssertionError("%s is missing: build first" % at.AIRLOCK_CLI)

    def airlock(self, *args, input=None, timeout=120, env=None, socket=True):
        argv = [at.AIRLOCK_CLI] + (["--socket", self.daemon.socket_path] if socket else []) + list(args)
        return subprocess.run(argv, input=input, capture_output=True, timeout=timeout,
                              env=env if env is not None else self.cli_env())

    def cli_env(self):
        env = dict(os.environ)
        env.pop("AIRLOCK_SOCKET", None)
        return env

    def setUp(self):
        self.before = {s["id"] for s in self.client.list()}

    def assertNoSandboxesLeft(self):
        left = sorted({s["id"] for s in self.client.list()} - self.before)
        self.assertEqual(left, [], "airlock run left sandboxes behind")

    def new_ids(self):
        return {s["id"] for s in self.client.list()} - self.before

    def run_cmd(self, *cmd, opts=(), input=b""):
        return self.airlock("run", *opts, "--", *cmd, input=input)

    # ---- run ----

    def test_run_true_and_exit_codes(self):
        self.assertEqual(self.run_cmd("/bin/true").returncode, 0)
        self.assertEqual(self.run_cmd("sh", "-c", "exit 3").returncode, 3)
        self.assertEqual(self.run_cmd("false").returncode, 1)
        self.assertEqual(self.run_cmd("sh", "-c", "kill -KILL $$").returncode, 137)
        self.assertEqual(self.run_cmd("no-such-command-xyz").returncode, 127)
        self.assertNoSandboxesLeft()

    def test_run_on_both_rootfs_flavours(self):
        debian = os.path.join(os.path.dirname(at.ROOTFS), "debian")
        if not os.path.isdir(debian):
            raise AssertionError("%s is missing: run rootfs/build-debian.sh (scripts/setup.sh does)"
                                 % debian)
        for rootfs in (at.ROOTFS, debian):
            with self.subTest(rootfs=rootfs):
                p = self.run_cmd("/bin/true", opts=("--rootfs", rootfs))
                self.assertEqual(p.returncode, 0, p)
        p = self.run_cmd("python3", "-c", "import os; print(os.getuid(), open('/etc/debian_version').read().split('.')[0])",
                         opts=("--rootfs", debian))
        self.assertEqual(p.returncode, 0, p)
        self.assertEqual(p.stdout, b"0 12\n")
        p = self.run_cmd("sh", "-c", "stat -c %U:%G /usr/bin/python3 /etc/passwd; touch /etc/x && echo rw",
                         opts=("--rootfs", debian))
        # The shared base is idmapped: root-owned inside, writable through the overlay.
        self.assertEqual(p.stdout, b"root:root\nroot:root\nrw\n", p)
        self.assertNoSandboxesLeft()

    def test_run_stdout_and_stderr(self):
        p = self.run_cmd("sh", "-c", "echo out; echo err >&2; printf 'a\\377b'")
        self.assertEqual(p.returncode, 0, p)
        self.assertEqual(p.stdout, b"out\na\xffb")
        self.assertEqual(p.stderr, b"err\n")

    def test_run_output_of_any_size_is_whole(self):
        """Output far past what one answer may carry (8 MiB per stream with
        backpressure) and faster than the CLI takes it: every byte, in
        order, on each stream (airlock run once failed with "answer of
        airlockd larger than 67108864 bytes" and printed nothing)."""
        script = ("i=0; while [ $i -lt 6 ]; do head -c 16777216 /dev/zero | tr '\\000' $i; "
                  "i=$((i+1)); done; head -c 12582912 /dev/zero | tr '\\000' e >&2; exit 4")
        p = self.run_cmd("sh", "-c", script)
        self.assertEqual(p.returncode, 4, p.stderr[-300:])
        want = b"".join(bytes([0x30 + i]) * (16 << 20) for i in range(6))
        self.assertEqual(len(p.stdout), len(want))
        self.assertTrue(p.stdout == want, "stdout differs from what the command wrote")
        self.assertEqual(p.stderr, b"e" * (12 << 20))
        self.assertNoSandboxesLeft()

    def test_run_stdin_piped(self):
        p = subprocess.run("echo hi | %s --socket %s run -- cat" % (at.AIRLOCK_CLI, self.daemon.socket_path),
                           shell=True, capture_output=True, timeout=60, env=self.cli_env())
        self.assertEqual((p.returncode, p.stdout), (0, b"hi\n"), p)
        data = os.urandom(3 << 20)
        p = self.run_cmd("cat", input=data)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(p.stdout), len(data))
        self.assertEqual(p.stdout, data)
        p = self.run_cmd("wc", "-c", input=b"12345")
        self.assertEqual(p.stdout.split(), [b"5"])
        self.assertNoSandboxesLeft()

    def test_run_stdin_streamed_while_running(self):
        proc = subprocess.Popen([at.AIRLOCK_CLI, "--socket", self.daemon.socket_path, "run", "--",
                                 "sh", "-c", "read a; echo got:$a; read b; echo got:$b"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=self.cli_env())
        try:
            proc.stdin.write(b"one\n")
            proc.stdin.flush()
            # The first answer comes while stdin is still open.
            line = proc.stdout.readline()
            self.assertEqual(line, b"got:one\n")
            proc.stdin.write(b"two\n")
            proc.stdin.close()
            proc.stdin = None  # communicate() must not flush it again
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.assertEqual(out, b"got:two\n")
        self.assertEqual(proc.returncode, 0, err)
        self.assertNoSandboxesLeft()

    def test_run_without_stdin_and_slow_output(self):
        p = subprocess.run([at.AIRLOCK_CLI, "--socket", self.daemon.socket_path, "run", "--",
                            "sh", "-c", "echo a; sleep 3; echo b; cat"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
                           env=self.cli_env())
        self.assertEqual((p.returncode, p.stdout), (0, b"a\nb\n"), p)

    def test_run_options(self):
        p = self.run_cmd("sh", "-c", 'hostname; echo "$FOO"; pwd',
                         opts=("--name", "cli-run", "--env", "FOO=bar", "--cwd", "/tmp",
                               "--pids", "64", "--cpus", "1"))
        self.assertEqual(p.stdout, b"cli-run\nbar\n/tmp\n", p)
        self.assertEqual(self.run_cmd("true", opts=("--rootfs", self.rootfs)).returncode, 0)
        self.assertNoSandboxesLeft()

    def test_run_memory_limit(self):
        self.assertEqual(self.run_cmd("true", opts=("--memory", "64M")).returncode, 0)
        p = self.run_cmd("tail", "/dev/zero", opts=("--memory", "64M", "--timeout", "60"))
        self.assertEqual(p.returncode, 137, p)
        self.assertNoSandboxesLeft()

    def test_run_timeout(self):
        start = time.monotonic()
        p = self.run_cmd("sleep", "30", opts=("--timeout", "1"))
        self.assertEqual(p.returncode, 124, p)
        self.assertLess(time.monotonic() - start, 20)
        self.assertNoSandboxesLeft()

    def test_run_interrupted_destroys_the_sandbox(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            with self.subTest(sig=sig.name):
                proc = subprocess.Popen([at.AIRLOCK_CLI, "--socket", self.daemon.socket_path, "run",
                                         "--", "sleep", "100"],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, env=self.cli_env())
                try:
                    end = time.monotonic() + 30
                    while not self.new_ids() and time.monotonic() < end:
                        time.sleep(0.1)
                    self.assertTrue(self.new_ids(), "run did not create a sandbox")
                    time.sleep(0.5)
                    proc.send_signal(sig)
                    proc.communicate(timeout=30)
                finally:
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
                self.assertEqual(proc.returncode, 128 + sig)
                self.assertNoSandboxesLeft()

    # ---- create, exec, ls, inspect, write, read, rm ----

    def test_sandbox_verbs(self):
        p = self.airlock("create", "--name", "cli-box", "--memory", "128M", "--env", "DEF=1")
        self.assertEqual(p.returncode, 0, p)
        sid = p.stdout.decode().strip()
        self.created.add(sid)
        self.assertTrue(sid and "\n" not in sid)

        ls = self.airlock("ls")
        self.assertEqual(ls.returncode, 0)
        lines = ls.stdout.decode().splitlines()
        self.assertEqual(lines[0].split(), ["ID", "NAME", "STATE", "CREATED", "ROOTFS"])
        row = [line.split() for line in lines[1:] if line.split()[0] == sid]
        self.assertEqual(len(row), 1, ls.stdout)
        self.assertEqual(row[0][1:3], ["cli-box", "running"])
        listed = json.loads(self.airlock("ls", "--json").stdout)
        self.assertIn(sid, [s["id"] for s in listed["sandboxes"]])

        info = json.loads(self.airlock("inspect", sid).stdout)
        self.assertEqual(info["id"], sid)
        self.assertEqual(info["cgroup"]["limits"]["memory_bytes"], 128 << 20)

        data = b"line1\n\x00\xffbinary"
        self.assertEqual(self.airlock("write", sid, "dir/sub/file.bin", input=data).returncode, 0)
        r = self.airlock("read", sid, "dir/sub/file.bin")
        self.assertEqual((r.returncode, r.stdout), (0, data))
        r = self.airlock("exec", sid, "--", "cat", "/workspace/dir/sub/file.bin")
        self.assertEqual((r.returncode, r.stdout), (0, data))

        # A file larger than the CLI's pipe (1 MiB) is spliced to stdout:
        # into a pipe, into a file, and copied into an O_APPEND file (which
        # takes no splice).
        big = os.urandom((3 << 20) + 4097)
        self.assertEqual(self.airlock("write", sid, "big.bin", input=big).returncode, 0)
        r = self.airlock("read", sid, "big.bin")
        self.assertEqual((r.returncode, len(r.stdout)), (0, len(big)))
        self.assertTrue(r.stdout == big)
        with tempfile.TemporaryDirectory() as d:
            for flags, head in ((os.O_TRUNC, b""), (os.O_APPEND, b"kept:")):
                out = os.path.join(d, "out")
                with open(out, "wb") as f:
                    f.write(head)
                fd = os.open(out, os.O_WRONLY | flags)
                try:
                    argv = [at.AIRLOCK_CLI, "--socket", self.daemon.socket_path,
                            "read", sid, "big.bin"]
                    rc = subprocess.run(argv, stdout=fd, timeout=120,
                                        env=self.cli_env()).returncode
                finally:
                    os.close(fd)
                with open(out, "rb") as f:
                    got = f.read()
                self.assertEqual((rc, len(got)), (0, len(head) + len(big)))
                self.assertTrue(got == head + big, "read into a file opened with %#o" % flags)

        self.assertEqual(self.airlock("exec", sid, "--", "sh", "-c", "exit 7").returncode, 7)
        r = self.airlock("exec", "--env", "FOO=bar", sid, "--cwd", "/tmp", "--",
                         "sh", "-c", 'echo "$FOO $DEF"; pwd')
        self.assertEqual(r.stdout, b"bar 1\n/tmp\n", r)
        r = self.airlock("exec", sid, "cat", input=b"via exec")
        self.assertEqual(r.stdout, b"via exec")
        r = self.airlock("exec", sid, "--timeout", "1", "--", "sleep", "30")
        self.assertEqual(r.returncode, 124)

        r = self.airlock("read", sid, "no/such/file")
        self.assertEqual(r.returncode, 125)
        self.assertTrue(r.stderr.startswith(b"airlock: "), r.stderr)

        self.assertEqual(self.airlock("rm", sid).returncode, 0)
        r = self.airlock("inspect", sid)
        self.assertEqual(r.returncode, 125)
        self.assertTrue(r.stderr.startswith(b"airlock: "), r.stderr)
        self.assertEqual(self.airlock("rm", sid).returncode, 125)
        self.assertEqual(self.airlock("exec", sid, "true").returncode, 125)

    def test_rm_several(self):
        ids = []
        for _ in range(2):
            p = self.airlock("create")
            self.assertEqual(p.returncode, 0, p)
            ids.append(p.stdout.decode().strip())
            self.created.add(ids[-1])
        self.assertEqual(self.airlock("rm", *ids).returncode, 0)
        self.assertNoSandboxesLeft()

    def test_create_with_manifest(self):
        path = os.path.join(self.workdir, "manifest.json")
        with open(path, "w") as f:
            json.dump({"version": 1, "entries": {"m.txt": {"type": "file", "content": "from manifest"}}}, f)
        p = self.airlock("create", "--manifest", path)
        self.assertEqual(p.returncode, 0, p)
        sid = p.stdout.decode().strip()
        self.created.add(sid)
        self.assertEqual(self.airlock("read", sid, "m.txt").stdout, b"from manifest")
        self.airlock("rm", sid)
        with open(path, "w") as f:
            json.dump({"version": 1, "entries": {"/abs": {"type": "dir"}}}, f)
        p = self.airlock("create", "--manifest", path)
        self.assertEqual(p.returncode, 125, p)
        self.assertNoSandboxesLeft()

    def test_info(self):
        p = self.airlock("info")
        self.assertEqual(p.returncode, 0)
        self.assertIn("version", json.loads(p.stdout))

    # ---- socket selection, usage and errors ----

    def test_socket_from_environment(self):
        env = self.cli_env()
        env["AIRLOCK_SOCKET"] = self.daemon.socket_path
        self.assertEqual(self.airlock("info", env=env, socket=False).returncode, 0)

    def test_cannot_connect(self):
        missing = os.path.join(self.workdir, "missing.sock")
        p = subprocess.run([at.AIRLOCK_CLI, "--socket", missing, "ls"], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 125)
        # The next step, not only the errno (test_operations.py checks the rest).
        self.assertTrue(p.stderr.startswith(b"airlock: airlockd is not running (no socket at "
                                            + missing.encode() + b"): start it with"), p.stderr)

    def test_usage_errors_exit_2(self):
        for args in (["run"], ["run", "--bogus", "--", "true"], ["run", "--memory", "12Q", "--", "true"],
                     ["run", "--memory"], ["frobnicate"], [], ["exec"], ["exec", "someid"],
                     ["create", "extra"], ["rm"], ["read", "id"], ["write", "id"], ["ls", "x"],
                     ["--bogus", "ls"], ["run", "--pids", "many", "--", "true"],
                     ["run", "--timeout", "-1", "--", "true"]):
            with self.subTest(args=args):
                p = self.airlock(*args)
                self.assertEqual(p.returncode, 2, p)
                self.assertIn(b"Usage:", p.stderr)
        self.assertNoSandboxesLeft()

    def test_usage_errors_are_one_line_with_a_suggestion(self):
        p = self.airlock("exce", "x", "true")
        self.assertEqual(p.returncode, 2)
        self.assertEqual(p.stderr.count(b"\n"), 1, p.stderr)
        self.assertTrue(p.stderr.startswith(b"airlock: unknown command 'exce'; did you mean 'exec'?"),
                        p.stderr)
        p = self.airlock("exec")
        self.assertEqual(p.stderr.count(b"\n"), 1, p.stderr)
        self.assertIn(b"Usage: airlock exec [OPTIONS] ID", p.stderr)
        self.assertIn(b"'airlock exec --help'", p.stderr)
        p = self.airlock("frobnicate")
        self.assertNotIn(b"did you mean", p.stderr)
        # Options too, from the verb's help text.
        p = self.airlock("ls", "--jsno")
        self.assertEqual(p.returncode, 2)
        self.assertTrue(p.stderr.startswith(b"airlock: unknown option '--jsno'; did you mean '--json'?"),
                        p.stderr)
        p = self.airlock("exec", "--detatch", "x", "true")
        self.assertIn(b"did you mean '--detach'?", p.stderr)

    # ---- docker habits ----

    def create(self, *opts):
        p = self.airlock("create", *opts)
        self.assertEqual(p.returncode, 0, p)
        sid = p.stdout.decode().strip()
        self.created.add(sid)
        return sid

    def test_id_prefixes_and_names(self):
        ids = [self.create() for _ in range(2)]
        named = self.create("--name", "prefix-box")
        # The shortest prefix of each that the other does not share.
        for sid, other in ((ids[0], ids[1]), (ids[1], ids[0])):
            n = next(i for i in range(1, len(sid) + 1) if not other.startswith(sid[:i]))
            others = [s["id"] for s in self.client.list() if s["id"] != sid]
            while any(o.startswith(sid[:n]) for o in others):
                n += 1
            r = self.airlock("exec", sid[:n], "--", "cat", "/proc/sys/kernel/hostname")
            self.assertEqual(r.returncode, 0, r)
            self.assertEqual(json.loads(self.airlock("inspect", sid[:n]).stdout)["id"], sid)
        self.assertEqual(json.loads(self.airlock("inspect", "prefix-box").stdout)["id"], named)
        # An ambiguous prefix names what it matches (the longest two ids
        # share, or "" that matches every one).
        all_ids = [s["id"] for s in self.client.list()]
        common = max((a[:i] for a in all_ids for b in all_ids if a != b
                      for i in range(1, len(a)) if b.startswith(a[:i])), key=len, default="")
        r = self.airlock("inspect", common)
        self.assertEqual(r.returncode, 125)
        self.assertIn(b"ambiguous id prefix '" + common.encode() + b"'", r.stderr)
        for a in all_ids:
            if a.startswith(common):
                self.assertIn(a.encode(), r.stderr)
        r = self.airlock("rm", "--json", ids[0][:11], "prefix-box")
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(json.loads(r.stdout), {"removed": [ids[0], named]})

    def test_exec_env_user_detach(self):
        sid = self.create()
        env_file = os.path.join(self.workdir, "env")
        with open(env_file, "w") as f:
            f.write("# a comment\n\nA=1\nB=two words\n")
        r = self.airlock("exec", "--env-file", env_file, "-e", "A=3", sid, "--",
                         "sh", "-c", 'echo "$A|$B"')
        self.assertEqual(r.stdout, b"3|two words\n", r)
        for user, ids in (("sandbox", b"1000 1000"), ("1000", b"1000 0"), ("nobody:sandbox", b"65534 1000"),
                          ("65534:65534", b"65534 65534")):
            with self.subTest(user=user):
                r = self.airlock("exec", "-u", user, sid, "--", "sh", "-c", "echo $(id -u) $(id -g)")
                self.assertEqual((r.returncode, r.stdout.strip()), (0, ids), r)
        r = self.airlock("exec", "-u", "nosuchuser", sid, "true")
        self.assertEqual(r.returncode, 125)
        self.assertIn(b"no user 'nosuchuser' in the sandbox's /etc/passwd", r.stderr)
        start = time.monotonic()
        r = self.airlock("exec", "-d", sid, "--", "sh", "-c", "sleep 2; echo done > /workspace/detached")
        self.assertEqual(r.returncode, 0, r)
        self.assertLess(time.monotonic() - start, 2)
        self.assertTrue(r.stdout.strip(), r)
        deadline = time.monotonic() + 30
        while self.airlock("read", sid, "detached").stdout != b"done\n":
            self.assertLess(time.monotonic(), deadline, "the detached command did not run")
            time.sleep(0.2)

    def test_events_across_sandboxes_and_follow(self):
        quiet = self.create()
        hog = self.create("--memory", "32M")
        # A follower from the CLI, of both sandboxes (by prefix), one JSON object a line.
        follower = subprocess.Popen([at.AIRLOCK_CLI, "--socket", self.daemon.socket_path, "events",
                                     "--follow", "--json", hog[:10], quiet],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    env=self.cli_env())
        try:
            os.set_blocking(follower.stdout.fileno(), False)
            got, deadline = b"", time.monotonic() + 90
            # The follow starts with what comes after it connected: OOM-kill
            # until it reports one (each kill is an event).
            while b"oom_kill" not in got:
                self.assertLess(time.monotonic(), deadline, "no oom_kill followed: %r" % got)
                r = self.airlock("exec", hog, "--", "tail", "/dev/zero")
                self.assertEqual(r.returncode, 137, r)
                self.assertIn(b"killed: out of memory (limit 32M", r.stderr)
                end = time.monotonic() + 5
                while b"oom_kill" not in got and time.monotonic() < end:
                    got += follower.stdout.read() or b""
                    time.sleep(0.1)
            event = json.loads(next(l for l in got.splitlines() if b"oom_kill" in l))
            self.assertEqual((event["sandbox"], event["type"]), (hog, "oom_kill"))
            self.assertIsNone(follower.poll(), "the follow ended")
        finally:
            follower.send_signal(signal.SIGINT)
            out, err = follower.communicate(timeout=30)
        self.assertEqual(follower.returncode, 0, err)
        # The list of every sandbox's events, and a follow from its cursor (the API).
        listed = self.client.expect(200, "GET", "/v1/events").json
        mine = [e for e in listed["events"] if e["sandbox"] == hog and e["type"] == "oom_kill"]
        self.assertTrue(mine, listed)
        self.assertLessEqual(mine[-1]["cursor"], listed["cursor"])
        table = self.airlock("events")
        self.assertEqual(table.stdout.split()[:3], [b"SANDBOX", b"TIME", b"TYPE"], table)
        self.assertIn(hog.encode(), table.stdout)
        self.client.expect(400, "GET", "/v1/events?follow=1&sinse=1")
        # Only the events of the sandboxes given.
        r = self.airlock("events", quiet)
        self.assertEqual(r.returncode, 0, r)
        self.assertNotIn(b"oom_kill", r.stdout)

    def test_cp_files_and_directories_both_ways(self):
        sid = self.create("--name", "cp-box")
        src = os.path.join(self.workdir, "cp-src")
        os.makedirs(os.path.join(src, "sub", "deeper"), exist_ok=True)
        files = {"a.txt": b"hello\n", "sub/bin.dat": bytes(range(256)) * 4096,  # 1 MiB
                 "sub/deeper/run.sh": b"#!/bin/sh\necho ran\n", "empty": b""}
        for name, data in files.items():
            with open(os.path.join(src, name), "wb") as f:
                f.write(data)
        os.chmod(os.path.join(src, "sub/deeper/run.sh"), 0o755)
        os.symlink("a.txt", os.path.join(src, "link"))
        self.addCleanup(shutil.rmtree, src, True)

        # Host to sandbox: a directory into a new path, by name.
        r = self.airlock("cp", "--json", src, "cp-box:/workspace/in")
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(json.loads(r.stdout), {"sandbox": sid, "files": 4, "skipped": 1})
        self.assertIn(b"link", r.stderr)
        r = self.airlock("exec", sid, "--", "sh", "-c",
                         "cd /workspace/in && md5sum a.txt sub/bin.dat sub/deeper/run.sh empty"
                         " && sub/deeper/run.sh && ls -l sub/deeper/run.sh a.txt")
        self.assertEqual(r.returncode, 0, r)
        lines = r.stdout.decode().splitlines()
        sums = dict(reversed(l.split()) for l in lines[:4])
        for name, data in files.items():
            self.assertEqual(sums[name], hashlib.md5(data).hexdigest(), name)
        self.assertEqual(lines[4], "ran")
        modes = {l.split()[-1]: l.split()[0] for l in lines[5:7]}
        self.assertEqual(modes, {"sub/deeper/run.sh": "-rwxr-xr-x", "a.txt": "-rw-r--r--"})

        # A file into an existing directory of the sandbox (its name kept), by id prefix.
        self.assertEqual(self.airlock("cp", os.path.join(src, "a.txt"), sid[:9] + ":in/sub").returncode, 0)
        r = self.airlock("read", sid, "in/sub/a.txt")
        self.assertEqual(r.stdout, b"hello\n")

        # Sandbox to host: the directory into an existing one, and one file as a new name.
        back = os.path.join(self.workdir, "cp-back")
        os.makedirs(back, exist_ok=True)
        self.addCleanup(shutil.rmtree, back, True)
        r = self.airlock("cp", sid + ":/workspace/in", back)
        self.assertEqual(r.returncode, 0, r)
        for name, data in files.items():
            with open(os.path.join(back, "in", name), "rb") as f:
                self.assertEqual(f.read(), data, name)
        self.assertEqual(os.stat(os.path.join(back, "in", "sub/deeper/run.sh")).st_mode & 0o777, 0o755)
        self.assertEqual(self.airlock("cp", sid + ":in/sub/bin.dat", os.path.join(back, "copy.dat")).returncode, 0)
        with open(os.path.join(back, "copy.dat"), "rb") as f:
            self.assertEqual(f.read(), files["sub/bin.dat"])

        # Errors: a missing source, two local paths.
        r = self.airlock("cp", sid + ":/no/such", back)
        self.assertEqual(r.returncode, 125)
        self.assertIn(b"/no/such", r.stderr)
        self.assertEqual(self.airlock("cp", src, back).returncode, 2)

    def test_top(self):
        sid = self.create()
        self.assertEqual(self.airlock("exec", "-d", "-u", "1000", sid, "--", "sleep", "300").returncode, 0)
        deadline = time.monotonic() + 30
        while True:
            procs = json.loads(self.airlock("top", "--json", sid).stdout)["processes"]
            sleeps = [p for p in procs if p["command"] == "sleep 300"]
            if sleeps or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(len(sleeps), 1, procs)
        sleep = sleeps[0]
        self.assertEqual(sleep["uid"], 1000)
        self.assertIn(sleep["state"], ("S", "R"))
        self.assertGreater(sleep["pid"], 1)
        self.assertGreater(sleep["rss_bytes"], 0)
        # The pid the sandbox sees, and its parent, inside: as ps in it shows them.
        pid1 = [p for p in procs if p["pid"] == 1]
        self.assertEqual(len(pid1), 1, procs)
        self.assertIn(sleep["ppid"], [p["pid"] for p in procs])
        r = self.airlock("exec", sid, "--", "sh", "-c", "cat /proc/%d/cmdline | tr '\\0' ' '" % sleep["pid"])
        self.assertEqual(r.stdout.decode().strip(), "sleep 300", r)
        # No process of the host or of another sandbox.
        other = self.create()
        self.airlock("exec", "-d", other, "--", "sleep", "301")
        self.assertNotIn("sleep 301", [p["command"] for p in
                                       json.loads(self.airlock("top", "--json", sid).stdout)["processes"]])
        table = self.airlock("top", sid[:8]).stdout.decode().splitlines()
        self.assertEqual(table[0].split(), ["PID", "PPID", "UID", "STAT", "RSS", "TIME", "COMMAND"])
        self.assertTrue(any(l.endswith("sleep 300") for l in table[1:]), table)

    def test_oom_kill_named_on_a_streamed_exec(self):
        sid = self.create("--memory", "32M")
        r = self.airlock("exec", "-i", sid, "--", "tail", "/dev/zero", input=b"")
        self.assertEqual(r.returncode, 137, r)
        self.assertIn(b"airlock: killed: out of memory (limit 32M; raise it with --memory)", r.stderr)
        # A SIGKILL that is not the memory limit is not called one.
        r = self.airlock("exec", "-i", sid, "--", "sh", "-c", "kill -KILL $$", input=b"")
        self.assertEqual(r.returncode, 137, r)
        self.assertNotIn(b"out of memory", r.stderr)

    def test_ls_quiet_and_format(self):
        sid = self.create("--label", "cli-ls=1")
        r = self.airlock("ls", "-q", "--filter", "label=cli-ls=1")
        self.assertEqual(r.stdout.decode().split(), [sid])
        listed = json.loads(self.airlock("ls", "--format", "json").stdout)
        self.assertIn(sid, [s["id"] for s in listed["sandboxes"]])
        self.assertEqual(self.airlock("ls", "--format", "yaml").returncode, 2)
        created = json.loads(self.airlock("create", "--json").stdout)
        self.created.add(created["id"])
        self.assertEqual(json.loads(self.airlock("inspect", "--json", created["id"]).stdout)["id"],
                         created["id"])
        w = self.airlock("write", "--json", sid, "f.txt", input=b"abc")
        self.assertEqual(json.loads(w.stdout)["size"], 3, w)
        p = self.airlock("prune", "--json", "--filter", "label=cli-ls=1")
        self.assertEqual(json.loads(p.stdout), {"removed": [sid]}, p)
        # Every verb whose help lists --json takes it (without a daemon: a
        # usage error is exit status 2, an unreachable airlockd 125).
        verbs = [l.split()[0] for l in self.airlock("--help").stdout.decode().split("Verbs:")[1]
                 .split("\n\n")[0].splitlines() if l.strip()]
        for verb in verbs:
            if b"--json" in self.airlock(verb, "--help").stdout:
                r = self.airlock("--socket", "/nonexistent.sock", verb, "--json", "x", "y",
                                 socket=False)
                self.assertNotIn(b"unknown option '--json'", r.stderr, verb)

    def test_man_page_and_completion_from_the_help_texts(self):
        built = os.path.join(os.path.dirname(at.AIRLOCK_CLI), "cli")
        with open(os.path.join(built, "airlock.1")) as f:
            man = f.read()
        self.assertTrue(man.startswith(".TH AIRLOCK 1"), man[:80])
        for verb in ("run", "exec", "snapshot-export"):
            self.assertIn(".SS %s\n" % verb, man)
        self.assertIn("\\-\\-env\\-file", man)  # exec's help, dashes escaped for roff
        completion = os.path.join(built, "airlock")
        def complete(*words):
            script = ('source %s; COMP_WORDS=(airlock %s); COMP_CWORD=%d; _airlock; '
                      'echo "${COMPREPLY[*]}"' % (completion, " ".join(words), len(words)))
            return subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                                  check=True).stdout.split()
        self.assertEqual(complete("exe"), ["exec"])
        self.assertEqual(complete("snapshot-"), ["snapshot-rm", "snapshot-export", "snapshot-import"])
        self.assertEqual(complete("exec", "--de"), ["--detach"])
        self.assertEqual(complete("ls", "-"), ["--help", "-q", "--quiet", "--json", "-f", "--filter"])
        with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..",
                               "LICENSE")) as f:
            self.assertIn("Apache License\n                           Version 2.0", f.read())

    def test_help(self):
        p = self.airlock("--help")
        self.assertEqual(p.returncode, 0)
        for verb in (b"run", b"create", b"exec", b"ls", b"inspect", b"rm", b"write", b"read", b"info"):
            self.assertIn(verb, p.stdout)
        for verb in ("run", "create", "exec", "ls", "inspect", "rm", "write", "read", "info"):
            with self.subTest(verb=verb):
                p = self.airlock(verb, "--help")
                self.assertEqual(p.returncode, 0)
                self.assertTrue(p.stdout.startswith(b"Usage: airlock " + verb.encode()), p.stdout)


if __name__ == "__main__":
    unittest.TestCase.maxDiff = None
    at.main()
