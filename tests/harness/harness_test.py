# SPDX-License-Identifier: Apache-2.0
"""Shared machinery of the airlock-harness tests (contract: docs/harness.md).

Each test class gets its own airlockd (tests/integration/airlock_test.py) on
a temporary socket; task files point provider.socket at it.  The harness runs
as a subprocess with a clean environment, so nothing from the caller's
environment (an OPENAI_API_KEY, say) reaches it unless a test puts it there.

Environment:
  AIRLOCK_BUILD_DIR       meson build directory (harness/airlock-harness)
  AIRLOCK_HARNESS_ROOTFS  rootfs of the sandboxes (default: the Debian one)
"""

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
sys.path.insert(0, HERE)

import airlock_test as at  # noqa: E402
import fake_model as fm    # noqa: E402

HARNESS = os.path.join(at.BUILD_DIR, "harness", "airlock-harness")
ROOTFS = os.environ.get("AIRLOCK_HARNESS_ROOTFS") or "/var/lib/airlock/rootfs/debian"
KILL_HOOK = "AIRLOCK_HARNESS_KILL_AT"
HARNESS_TIMEOUT = 120
ZERO_HASH = "0" * 64


class Result:
    def __init__(self, args, returncode, stdout, stderr, duration):
        self.args = args
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.duration = duration

    @property
    def killed(self):
        return self.returncode == -signal.SIGKILL

    def __repr__(self):
        return ("<airlock-harness %s: exit %s after %.1fs\n--- stdout ---\n%s\n--- stderr ---\n%s>"
                % (" ".join(self.args), self.returncode, self.duration,
                   self.stdout[-3000:], self.stderr[-3000:]))


def clean_env(extra=None):
    """The harness's environment: nothing of ours but PATH and a locale."""
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "LANG": "C.UTF-8"}
    env.update(extra or {})
    return env


def harness(args, env=None, timeout=HARNESS_TIMEOUT, cwd=None):
    """Run airlock-harness; a hang is a test failure, not a stuck suite."""
    start = time.monotonic()
    proc = subprocess.Popen([HARNESS] + list(args), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=clean_env(env), cwd=cwd, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError("airlock-harness %s did not finish within %ss\n--- stdout ---\n%s\n"
                             "--- stderr ---\n%s" % (" ".join(args), timeout,
                                                     out.decode(errors="replace")[-3000:],
                                                     err.decode(errors="replace")[-3000:]))
    return Result(list(args), proc.returncode, out.decode(errors="replace"),
                  err.decode(errors="replace"), time.monotonic() - start)


# ---- the run directory ----

def load_state(run_dir):
    with open(os.path.join(run_dir, "state.json")) as f:
        return json.load(f)


def audit_lines(run_dir):
    with open(os.path.join(run_dir, "audit.jsonl"), "rb") as f:
        data = f.read()
    return data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n")


def audit_records(run_dir):
    return [json.loads(line) for line in audit_lines(run_dir)]


def chain_problems(run_dir):
    """The audit chain checked here, by the contract's rules, independently
    of `audit verify`."""
    problems = []
    prev = ZERO_HASH
    seq = None
    for n, line in enumerate(audit_lines(run_dir), 1):
        try:
            rec = json.loads(line)
        except ValueError as e:
            problems.append("line %d: not JSON: %s" % (n, e))
            break
        for key in ("seq", "ts", "kind", "data", "prev", "hash"):
            if key not in rec:
                problems.append("line %d: no %r" % (n, key))
        if rec.get("prev") != prev:
            problems.append("line %d: prev %r, expected %r" % (n, rec.get("prev"), prev))
        if seq is not None and rec.get("seq") != seq + 1:
            problems.append("line %d: seq %r after %r" % (n, rec.get("seq"), seq))
        if not re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$", str(rec.get("ts"))):
            problems.append("line %d: ts %r is not RFC 3339" % (n, rec.get("ts")))
        # The line's own hash: its text up to ',"hash"', closed with '}'.
        cut = line.rfind(b',"hash"')
        if cut < 0:
            problems.append("line %d: no \"hash\" at the end" % n)
        elif rec.get("hash") != hashlib.sha256(line[:cut] + b"}").hexdigest():
            problems.append("line %d: hash %r does not match the line" % (n, rec.get("hash")))
        seq = rec.get("seq")
        prev = hashlib.sha256(line).hexdigest()
    return problems


def text_of(value):
    """Every string inside a tool output, joined: the output may be plain
    text or a JSON document whose strings hold the command's output."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        if isinstance(parsed, (dict, list)):
            return value + "\n" + text_of(parsed)
        return value
    if isinstance(value, dict):
        return "\n".join(text_of(v) for v in value.values())
    if isinstance(value, list):
        return "\n".join(text_of(v) for v in value)
    return "" if value is None else str(value)


def recorded_results(state):
    """{call_id: result} of every tool result the RunState holds: items in
    either API's shape, and pending calls that carry a result."""
    found = {}
    for it in state.get("items") or []:
        if not isinstance(it, dict):
            continue
        if it.get("type") == "function_call_output" and it.get("call_id"):
            found[it["call_id"]] = it.get("output")
        elif it.get("role") == "tool" and it.get("tool_call_id"):
            found[it["tool_call_id"]] = it.get("content")
    for pc in state.get("pending_calls") or []:
        if isinstance(pc, dict) and "result" in pc and pc.get("result") is not None:
            found[pc.get("call_id")] = pc["result"]
    return found


def tool_error(output):
    """The error message of a tool result of the shape {"error": "..."}, or None."""
    try:
        obj = json.loads(output) if isinstance(output, str) else output
    except ValueError:
        return None
    if isinstance(obj, dict) and isinstance(obj.get("error"), str) and obj["error"]:
        return obj["error"]
    return None


# ---- task files and model scripts ----

def exec_call(call_id, cmd, **extra):
    args = {"cmd": cmd}
    args.update(extra)
    return (call_id, "exec_command", args)


def write_replay(path, responses):
    with open(path, "w") as f:
        for r in responses:
            f.write(json.dumps(r) + "\n")


# The listing that the last tool call of a workspace-checking script prints:
# the sha256 of every file under /workspace/t, then calls.log.
LISTING_CMD = ("cd /workspace && echo '==files' && find t -type f | LC_ALL=C sort | xargs -r sha256sum"
               " && echo '==calls' && cat calls.log && echo '==end'")


def parse_listing(text):
    """({path: sha256}, [call lines]) from LISTING_CMD's output inside text."""
    m = re.search(r"==files\n(.*?)==calls\n(.*?)==end", text, re.S)
    if not m:
        return None
    files = {}
    for line in m.group(1).splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and re.fullmatch(r"[0-9a-f]{64}", parts[0]):
            files[parts[1].strip()] = parts[0]
    calls = [c.strip() for c in m.group(2).splitlines() if c.strip()]
    return files, calls


def tar_files(path, under="t/"):
    """{relative path: sha256} of the regular files under `under` in a
    workspace archive, whatever prefix (./, workspace/) its members carry."""
    out = {}
    with tarfile.open(path) as tf:
        for m in tf.getmembers():
            if not m.isfile():
                continue
            name = m.name
            for prefix in ("./", "workspace/", "/workspace/"):
                if name.startswith(prefix):
                    name = name[len(prefix):]
            if name.startswith(under):
                out[name] = hashlib.sha256(tf.extractfile(m).read()).hexdigest()
    return out


# ---- a logging proxy between the harness and airlockd ----

class UnixProxy:
    """Listens on a Unix socket and forwards every connection to airlockd's
    socket, keeping every byte that passed in either direction."""

    def __init__(self, listen_path, target_path):
        self.listen_path = listen_path
        self.target_path = target_path
        # hold: (bytes, seconds): once a request containing those bytes has
        # been forwarded, airlockd's answers on that connection wait that long
        # (a harness can then be killed with its request done but unanswered).
        self.hold = None
        self.held = threading.Event()
        self.to_daemon = bytearray()
        self.from_daemon = bytearray()
        self.connections = 0
        self.lock = threading.Lock()
        self.socks = []
        self.threads = []
        self.closing = False

    def start(self):
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(self.listen_path)
        os.chmod(self.listen_path, 0o600)
        self.srv.listen(16)
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.threads.append(t)
        return self

    def _accept(self):
        while True:
            try:
                client, _ = self.srv.accept()
            except OSError:
                return
            if self.closing:
                client.close()
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target_path)
            with self.lock:
                self.connections += 1
                self.socks += [client, upstream]
            conn = {"hold_until": 0.0}
            for src, dst, buf in ((client, upstream, self.to_daemon), (upstream, client, self.from_daemon)):
                t = threading.Thread(target=self._pump, args=(src, dst, buf, conn), daemon=True)
                t.start()
                self.threads.append(t)

    def _pump(self, src, dst, buf, conn):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            with self.lock:
                buf += data
                hold = self.hold
            if buf is self.to_daemon and hold and hold[0] in data:
                conn["hold_until"] = time.monotonic() + hold[1]
                self.held.set()
            if buf is self.from_daemon and conn["hold_until"] > time.monotonic():
                time.sleep(conn["hold_until"] - time.monotonic())
            try:
                dst.sendall(data)
            except OSError:
                return

    def stop(self):
        self.closing = True
        try:
            self.srv.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.srv.close()
        with self.lock:
            for s in self.socks:
                try:
                    s.close()
                except OSError:
                    pass
        for t in self.threads:
            t.join(5)
        try:
            os.unlink(self.listen_path)
        except OSError:
            pass


# ---- the test case ----

class HarnessTestCase(at.AirlockTestCase):
    """An airlockd of its own for the class, and helpers to write tasks, run
    the harness and read what it left in its run directory."""

    rootfs = ROOTFS

    @classmethod
    def setUpClass(cls):
        reason = at.prerequisites()
        if reason:
            raise unittest.SkipTest(reason)
        if not os.access(HARNESS, os.X_OK):
            raise AssertionError("%s is missing: build first (ninja -C %s)" % (HARNESS, at.BUILD_DIR))
        super().setUpClass()
        cls.counter = 0

    def tearDown(self):
        # A failed run may keep its sandbox (to be resumed): no test sees
        # the sandboxes of the one before.
        self.destroy_all()

    # -- files --

    def tmpdir(self, prefix="t"):
        d = tempfile.mkdtemp(prefix=prefix + "-", dir=self.workdir)
        os.chmod(d, 0o755)
        return d

    def task(self, model, **fields):
        task = {"instructions": "You are a careful assistant working in a sandbox.",
                "input": "Do the task.",
                "model": model,
                "provider": {"type": "local", "socket": self.daemon.socket_path,
                             "rootfs": self.rootfs},
                "manifest": {"version": 1, "root": "/workspace", "entries": {}},
                "max_turns": 20}
        task.update(fields)
        return task

    def write_task(self, task, directory=None, name="task.json"):
        directory = directory or self.tmpdir("task")
        path = os.path.join(directory, name)
        with open(path, "w") as f:
            json.dump(task, f, indent=1)
        return path

    def replay_task(self, responses, **fields):
        d = self.tmpdir("task")
        write_replay(os.path.join(d, "script.jsonl"), responses)
        return self.write_task(self.task({"api": "replay", "script": "script.jsonl"}, **fields), d)

    def server_task(self, srv, api="responses", model_fields=None, **fields):
        model = {"api": api, "name": "fake-model", "base_url": srv.base_url,
                 "timeout_ms": 20000, "max_retries": 2}
        model.update(model_fields or {})
        return self.write_task(self.task(model, **fields))

    def load_task(self, path):
        with open(path) as f:
            return json.load(f)

    def fake_server(self, script=None):
        srv = fm.FakeModelServer(script).start()
        self.addCleanup(srv.stop)
        return srv

    def new_run_dir(self):
        return os.path.join(self.tmpdir("runs"), "run")

    # -- the harness --

    def run_task(self, task_path, run_dir=None, env=None, args=(), timeout=HARNESS_TIMEOUT):
        run_dir = run_dir or self.new_run_dir()
        res = harness(["run", task_path, "--run-dir", run_dir] + list(args), env, timeout)
        res.run_dir = run_dir
        return res

    def resume(self, run_dir, env=None, args=(), timeout=HARNESS_TIMEOUT):
        res = harness(["resume", run_dir] + list(args), env, timeout)
        res.run_dir = run_dir
        return res

    def verify(self, run_dir):
        return harness(["audit", "verify", run_dir], timeout=60)

    # -- assertions --

    def assertNoSignal(self, res):
        self.assertGreaterEqual(res.returncode, 0, "harness died of a signal: %r" % res)

    def assertCompleted(self, res):
        self.assertEqual(res.returncode, 0, res)
        state = load_state(res.run_dir)
        self.assertEqual(state.get("status"), "completed", "state.json after %r" % res)
        self.assertTrue(os.path.isfile(os.path.join(res.run_dir, "output.txt")), res)
        return state

    def assertAuditOK(self, run_dir):
        problems = chain_problems(run_dir)
        self.assertEqual(problems, [], "audit chain of %s, checked by the test" % run_dir)
        v = self.verify(run_dir)
        n = len(audit_lines(run_dir))
        self.assertEqual(v.returncode, 0, v)
        self.assertIn("audit: OK (%d records)" % n, v.stdout + v.stderr, v)

    def output_text(self, run_dir):
        with open(os.path.join(run_dir, "output.txt"), encoding="utf-8", errors="replace") as f:
            return f.read()

    # -- the sandbox, through airlockd's API --

    def sandbox_ids(self):
        return [sb["id"] for sb in self.client.list()]

    def destroy_all(self):
        for sid in self.sandbox_ids():
            self.client.request("DELETE", "/v1/sandboxes/" + sid)

    def workspace_files(self, sid, path="/workspace"):
        """{path relative to /workspace: bytes} of every regular file."""
        out = {}
        r = self.client.request("GET", self.client.files_path(sid, path, kind="dirs"))
        self.assertEqual(r.status, 200, r)
        for e in r.json["entries"]:
            full = path.rstrip("/") + "/" + e["name"]
            if e["type"] == "dir":
                out.update(self.workspace_files(sid, full))
            elif e["type"] == "file":
                f = self.client.read_file(sid, full)
                self.assertEqual(f.status, 200, f)
                out[full[len("/workspace/"):]] = f.body
        return out
