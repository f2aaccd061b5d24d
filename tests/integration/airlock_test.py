# SPDX-License-Identifier: Apache-2.0
"""Shared machinery of the integration tests: a real airlockd on a temporary
socket and state directory, an HTTP/1.1 client on its Unix socket, and the
check that a test run leaves no cgroup, mount, process or state file behind.

Environment:
  AIRLOCK_BUILD_DIR    meson build directory (runtime/airlockd, runtime/airlock)
  AIRLOCK_TEST_ROOTFS  base rootfs for sandboxes (default: the busybox one)
"""

import base64
import glob
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD_DIR = os.environ.get("AIRLOCK_BUILD_DIR") or os.path.join(SOURCE_ROOT, "build")
AIRLOCKD = os.path.join(BUILD_DIR, "runtime", "airlockd")
AIRLOCK_INIT = os.path.join(BUILD_DIR, "runtime", "airlock-init")
AIRLOCK_CLI = os.path.join(BUILD_DIR, "runtime", "airlock")
ROOTFS = os.environ.get("AIRLOCK_TEST_ROOTFS") or "/var/lib/airlock/rootfs/busybox"

NAMESPACES = ("user", "pid", "mnt", "net", "uts", "ipc", "cgroup")

HTTP_TIMEOUT = 120


# The HTTP side is the Python client's (clients/python): its transport sends
# the tests' requests, so the tests exercise it too.
sys.path.insert(0, os.path.join(SOURCE_ROOT, "clients", "python"))
from airlock_client.transport import Response, Transport, UnixHTTPConnection  # noqa: E402,F401


class ApiError(AssertionError):
    pass


class Client:
    """One keep-alive connection to airlockd; not shared between threads."""

    def __init__(self, socket_path, created=None, timeout=HTTP_TIMEOUT):
        self.socket_path = socket_path
        self.timeout = timeout
        self.transport = Transport(socket_path, timeout)
        # Every sandbox id this client created, for the leftover check.
        self.created = created if created is not None else set()

    def close(self):
        self.transport.close()

    def request(self, method, path, body=None, headers=None, timeout=None):
        """Any answer, whatever its status (a kept-alive connection the
        server closed is replaced once)."""
        return self.transport.request(method, path, body, headers, timeout)

    def expect(self, status, method, path, body=None, **kw):
        resp = self.request(method, path, body, **kw)
        if resp.status != status:
            raise ApiError("%s %s: expected HTTP %d, got %d: %r"
                           % (method, path, status, resp.status, resp.body[:2000]))
        return resp

    # ---- the API, as the tests use it ----

    def info(self):
        return self.expect(200, "GET", "/v1/info").json

    def create(self, **fields):
        resp = self.request("POST", "/v1/sandboxes", fields)
        if resp.status == 201 and resp.json and "id" in resp.json:
            self.created.add(resp.json["id"])
        if resp.status != 201:
            raise ApiError("create %r: HTTP %d: %r" % (fields, resp.status, resp.body[:2000]))
        return resp.json

    def inspect(self, sid):
        return self.expect(200, "GET", "/v1/sandboxes/" + sid).json

    def list(self):
        return self.expect(200, "GET", "/v1/sandboxes").json["sandboxes"]

    def destroy(self, sid, wait=True):
        """DELETE answers once the sandbox is torn down; without wait
        (?wait=0) once it is killed, the teardown following in the
        background."""
        return self.expect(200, "DELETE", "/v1/sandboxes/" + sid + ("" if wait else "?wait=0")).json

    def exec_raw(self, sid, **fields):
        return self.request("POST", "/v1/sandboxes/%s/exec" % sid, fields)

    def exec(self, sid, argv=None, command=None, **fields):
        if argv is not None:
            fields["argv"] = argv
        if command is not None:
            fields["command"] = command
        return self.expect(200, "POST", "/v1/sandboxes/%s/exec" % sid, fields).json

    def poll(self, sid, pid, yield_ms=0):
        return self.request("GET", "/v1/sandboxes/%s/processes/%s?yield_ms=%d"
                            % (sid, pid, yield_ms))

    def stdin(self, sid, pid, **fields):
        return self.request("POST", "/v1/sandboxes/%s/processes/%s/stdin" % (sid, pid), fields)

    def files_path(self, sid, path, kind="files", **query):
        q = {"path": path}
        q.update({k: str(v) for k, v in query.items()})
        return "/v1/sandboxes/%s/%s?%s" % (sid, kind, urllib.parse.urlencode(q))

    def read_file(self, sid, path):
        return self.request("GET", self.files_path(sid, path))

    def write_file(self, sid, path, data, **query):
        return self.request("PUT", self.files_path(sid, path, **query), data,
                            headers={"Content-Type": "application/octet-stream"})

    def wait_process(self, sid, first, deadline_s=60):
        """Poll a process started with yield_ms until it ends; returns
        (final result, all stdout, all stderr) with every chunk concatenated."""
        out, err = [first.get("stdout") or ""], [first.get("stderr") or ""]
        res = first
        end = time.monotonic() + deadline_s
        while res.get("running"):
            if time.monotonic() > end:
                raise AssertionError("process %s still running after %ss" % (first.get("process_id"), deadline_s))
            r = self.poll(sid, first["process_id"], 1000)
            if r.status != 200:
                raise ApiError("poll %s: HTTP %d %r" % (first["process_id"], r.status, r.body))
            res = r.json
            out.append(res.get("stdout") or "")
            err.append(res.get("stderr") or "")
        return res, "".join(out), "".join(err)


def request_in_background(socket_path, method, path, body=None):
    """Send one request on a connection of its own, from a thread that is
    started; returns (thread, answer), answer getting "r" (the Response) or
    "e" (the OSError) once the thread ends."""
    answer = {}

    def run():
        c = Client(socket_path)
        try:
            answer["r"] = c.request(method, path, body)
        except OSError as e:
            answer["e"] = e
        finally:
            c.close()
    t = threading.Thread(target=run)
    t.start()
    return t, answer


def b64(data):
    return base64.b64encode(data).decode()


def unb64(text):
    return base64.b64decode(text or "")


def killed_by(result, signum):
    """Whether an exec result says the process died of signal signum."""
    sig = result.get("signal")
    names = {signal.Signals(signum).name, signal.Signals(signum).name[3:]}
    if sig == signum or sig in names:
        return True
    return sig is None and result.get("exit_code") == 128 + signum


def is_root():
    return os.geteuid() == 0


# ---- what a sandbox leaves on the host ----

def cgroup_root_name(state_dir):
    """The directory name of one airlockd's cgroups (airlockd.c): airlock/
    for the default state directory, else airlock- and 12 hex digits of
    the sha256 of its real path."""
    real = os.path.realpath(state_dir)
    if real == "/var/lib/airlock/state":
        return "airlock"
    return "airlock-" + hashlib.sha256(real.encode()).hexdigest()[:12]


def cgroup_roots(state_dir=None):
    """Directories under which airlockd may make sandbox cgroups: airlock/
    for the default state directory, airlock-<hash>/ for any other (every
    test daemon's); with state_dir, only that daemon's."""
    only = cgroup_root_name(state_dir) if state_dir else None
    roots = []
    base = "/sys/fs/cgroup"
    for cand in [base] + [os.path.join(base, d) for d in sorted(os.listdir(base))]:
        if not os.path.isdir(cand):
            continue
        for d in sorted(os.listdir(cand)):
            p = os.path.join(cand, d)
            if only and d != only:
                continue
            if (d == "airlock" or d.startswith("airlock-")) and os.path.isdir(p):
                roots.append(p)
    return roots


UID_SLOTS_DIR = "/run/airlock/uid-slots"


def uid_claims_of(state_dir, ids=None):
    """Host-wide uid range claims (runtime/lib/uidslots.h) that sandboxes of
    state_dir hold: all of them, or those of ids."""
    found = []
    real = os.path.realpath(state_dir)
    if not os.path.isdir(UID_SLOTS_DIR):
        return found
    for name in os.listdir(UID_SLOTS_DIR):
        lines = (read_text(os.path.join(UID_SLOTS_DIR, name)) or "").split("\n")
        if len(lines) >= 2 and lines[0] == real and (ids is None or lines[1] in ids):
            found.append("%s (%s)" % (name, lines[1]))
    return found


def cgroup_dirs_of(ids):
    found = []
    if not ids:
        return found
    for root in cgroup_roots():
        for dirpath, dirnames, _ in os.walk(root):
            for d in dirnames:
                if any(i in d for i in ids):
                    found.append(os.path.join(dirpath, d))
    return found


def mounts_mentioning(text):
    with open("/proc/self/mountinfo") as f:
        return [line.rstrip("\n") for line in f if text in line]


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return None


def readlink(path):
    try:
        return os.readlink(path)
    except OSError:
        return None


def rss_kib(pid):
    """Resident memory of pid in KiB (0 when gone)."""
    for line in (read_text("/proc/%d/status" % pid) or "").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# AddressSanitizer keeps freed memory in quarantine (256 MiB by default) before
# reusing it: an RSS bound on a sanitized airlockd allows for that much more.
ASAN_QUARANTINE_KIB = 256 << 10


def sanitized(pid):
    """Whether process pid runs with AddressSanitizer's runtime: GCC's as a
    shared library, clang's linked into the executable."""
    if "libasan" in (read_text("/proc/%d/maps" % pid) or ""):
        return True
    try:
        with open("/proc/%d/exe" % pid, "rb") as exe:
            return b"__asan_init" in exe.read()
    except OSError:
        return False


def pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def processes_of(ids=(), mentioning=()):
    """Host pids in a cgroup named after one of ids, or whose root, cwd or
    command line mentions one of the strings in mentioning."""
    found = []
    for pid in pids():
        if pid == os.getpid() or process_start(pid) is None:
            continue
        cg = read_text("/proc/%d/cgroup" % pid) or ""
        if any(("/" + i) in cg for i in ids):
            found.append(pid)
            continue
        texts = [readlink("/proc/%d/root" % pid) or "", readlink("/proc/%d/cwd" % pid) or "",
                 (read_text("/proc/%d/cmdline" % pid) or "").replace("\0", " ")]
        if any(m in t for m in mentioning for t in texts):
            found.append(pid)
    return found


def process_start(pid):
    """(pid, start time) identifies a process across pid reuse."""
    stat = read_text("/proc/%d/stat" % pid)
    if stat is None:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None  # dead, waiting to be reaped
    return int(fields[19])


def alive(pid, start):
    return process_start(pid) == start


def ns_links(pid):
    return {ns: readlink("/proc/%d/ns/%s" % (pid, ns)) for ns in NAMESPACES}


def leftovers(state_dir, ids, socket_path=None, daemon_running=False):
    """Everything sandboxes ids (made with state_dir) left on the host.  With
    daemon_running, only what names one of ids counts (the daemon and its
    other sandboxes legitimately mention the state dir)."""
    problems = []
    for d in cgroup_dirs_of(ids):
        problems.append("cgroup left: " + d)
    for m in mounts_mentioning(state_dir):
        if not daemon_running or any(i in m for i in ids):
            problems.append("mount left: " + m)
    if daemon_running:
        mention = list(ids)
    else:
        mention = [state_dir] + ([socket_path] if socket_path else [])
    for pid in processes_of(ids, mention):
        problems.append("process left: %d %s (%s)" % (
            pid, (read_text("/proc/%d/comm" % pid) or "?").strip(),
            (read_text("/proc/%d/cmdline" % pid) or "").replace("\0", " ")))
    if not daemon_running:
        # A daemon on its own state dir keeps its sandboxes under a cgroup
        # root named after it; once it stopped with no sandbox, that goes too.
        real = os.path.realpath(state_dir).encode()
        name = "airlock-" + hashlib.sha256(real).hexdigest()[:12]
        for base in glob.glob("/sys/fs/cgroup/*/"):
            if os.path.isdir(os.path.join(base, name)):
                problems.append("cgroup root left: " + os.path.join(base, name))
    for claim in uid_claims_of(state_dir, None if not daemon_running else list(ids)):
        problems.append("uid range claim left: " + claim)
    sbdir = os.path.join(state_dir, "sandboxes")
    if not daemon_running and os.path.isdir(sbdir) and os.listdir(sbdir):
        problems.append("state left in %s: %s" % (sbdir, sorted(os.listdir(sbdir))))
    for dirpath, dirnames, filenames in os.walk(state_dir):
        for n in dirnames + filenames:
            if any(i in n for i in ids):
                problems.append("state file left: " + os.path.join(dirpath, n))
    return problems


def force_cleanup(state_dir, ids, socket_path=None):
    """Best effort, after a failed check: do not leave the machine dirty."""
    for pid in processes_of(ids, [state_dir] + ([socket_path] if socket_path else [])):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.5)
    for line in reversed(mounts_mentioning(state_dir)):
        target = line.split()[4]
        subprocess.run(["umount", "-l", target], stderr=subprocess.DEVNULL)
    for d in sorted(cgroup_dirs_of(ids), key=len, reverse=True):
        for dirpath, dirnames, _ in sorted(os.walk(d), key=lambda e: len(e[0]), reverse=True):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass
    for claim in uid_claims_of(state_dir):
        try:
            os.unlink(os.path.join(UID_SLOTS_DIR, claim.split()[0]))
        except OSError:
            pass


# ---- the daemon ----

class Daemon:
    def __init__(self, workdir, rootfs=ROOTFS, extra_args=()):
        self.workdir = workdir
        self.extra_args = list(extra_args)
        self.socket_path = os.path.join(workdir, "airlockd.sock")
        self.state_dir = os.path.join(workdir, "state")
        self.rootfs = rootfs
        self.log_path = os.path.join(workdir, "airlockd.log")
        self.proc = None
        self.starts = 0
        # False while airlockd runs because a test started it; a process that
        # exits without stop() having been called died (a crash, an ASan
        # abort) and stop_and_check reports it.
        self.stopped_on_purpose = True

    def start(self, timeout=30):
        self.starts += 1
        self.stopped_on_purpose = False
        log = open(self.log_path, "ab")
        log.write(b"==== start %d ====\n" % self.starts)
        log.flush()
        self.proc = subprocess.Popen(
            [AIRLOCKD, "--socket", self.socket_path, "--state-dir", self.state_dir,
             "--rootfs", self.rootfs] + self.extra_args,
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, close_fds=True)
        log.close()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError("airlockd exited with %s at start:\n%s"
                                     % (self.proc.returncode, self.log()))
            if os.path.exists(self.socket_path):
                c = Client(self.socket_path, timeout=5)
                try:
                    if c.request("GET", "/v1/info").status == 200:
                        return
                except OSError:
                    pass
                finally:
                    c.close()
            time.sleep(0.05)
        self.stop(signal.SIGKILL)
        raise AssertionError("airlockd did not answer on %s within %ss:\n%s"
                             % (self.socket_path, timeout, self.log()))

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Stop airlockd with sig; returns its exit status."""
        self.stopped_on_purpose = True
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("airlockd did not stop within %ss of signal %d" % (timeout, sig))
        if sig == signal.SIGKILL:
            self.remove_empty_cgroup_root()
        return status

    def remove_empty_cgroup_root(self):
        """A SIGKILLed airlockd cannot remove its cgroup root and nft table (a restarted
        one would, once its last sandbox is gone); tests that kill one and
        do not restart it would leave it on the host.  Only empty
        directories go: a root that still holds a sandbox stays."""
        sbdir = os.path.join(self.state_dir, "sandboxes")
        if os.path.isdir(sbdir) and os.listdir(sbdir):
            return
        real = os.path.realpath(self.state_dir).encode()
        name = "airlock-" + hashlib.sha256(real).hexdigest()[:12]
        # Its nftables table (runtime/daemon/network.c), made at start.
        subprocess.run(["nft", "delete", "table", "inet", name.replace("-", "_")],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for root in glob.glob(os.path.join("/sys/fs/cgroup/*", name)) + \
                glob.glob(os.path.join("/sys/fs/cgroup", name)):
            for dirpath, _, _ in sorted(os.walk(root), key=lambda e: len(e[0]), reverse=True):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        return read_text(self.log_path) or ""


def tar_bytes(members):
    """A tar from (TarInfo, data or None) pairs."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
            else:
                t.addfile(info)
    return buf.getvalue()


def tar_member(name, kind=tarfile.REGTYPE, mode=0o644, link=None):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    if link is not None:
        ti.linkname = link
    return ti


def prerequisites():
    """Why the integration tests cannot run here, or None."""
    if not is_root():
        return "integration tests need root (airlockd makes namespaces, cgroups, mounts)"
    if sys.platform != "linux":
        return "Linux only"
    return None


class AirlockTestCase(unittest.TestCase):
    """A test class with its own airlockd, started once for the class.

    A class cleanup destroys what is left, stops airlockd and fails when any
    sandbox created through self.client / self.new_client() left anything
    behind.
    """

    rootfs = ROOTFS
    daemon = None
    daemon_args = ()  # more airlockd options, e.g. ("--profiles", DIR)

    @classmethod
    def setUpClass(cls):
        reason = prerequisites()
        if reason:
            raise unittest.SkipTest(reason)
        # Missing binaries or rootfs are a broken build or setup: fail, not skip.
        for path in (AIRLOCKD, AIRLOCK_INIT):
            if not os.access(path, os.X_OK):
                raise AssertionError("%s is missing: build first (ninja -C %s)" % (path, BUILD_DIR))
        if not os.path.isdir(cls.rootfs):
            raise AssertionError("test rootfs %s is missing: run rootfs/build-busybox.sh or set "
                                 "AIRLOCK_TEST_ROOTFS" % cls.rootfs)
        cls.workdir = tempfile.mkdtemp(prefix="airlock-it-")
        os.chmod(cls.workdir, 0o755)
        cls.created = set()
        cls.daemon = Daemon(cls.workdir, cls.rootfs, cls.daemon_args)
        try:
            cls.daemon.start()
        except BaseException:
            shutil.rmtree(cls.workdir, ignore_errors=True)
            raise
        cls.client = Client(cls.daemon.socket_path, cls.created)
        # A class cleanup, unlike tearDownClass, also runs when a subclass's
        # setUpClass fails after this point.
        cls.addClassCleanup(cls.stop_and_check)

    @classmethod
    def stop_and_check(cls):
        if cls.daemon is None:
            return
        problems = []
        try:
            if not cls.daemon.running():
                if not cls.daemon.stopped_on_purpose:
                    problems.append("airlockd died during the tests (exit status %s); its log "
                                    "is below" % cls.daemon.proc.returncode)
                cls.daemon.start()
            c = Client(cls.daemon.socket_path, cls.created)
            # The daemon is private to this class: whatever it still has is ours
            # (sandboxes made through the CLI included).
            for sb in c.list():
                cls.created.add(sb["id"])
                if True:
                    r = c.request("DELETE", "/v1/sandboxes/" + sb["id"])
                    if r.status != 200:
                        problems.append("destroy %s at the end: %r" % (sb["id"], r))
            c.close()
            cls.client.close()
        except Exception as e:  # still stop the daemon and check the host
            problems.append("cleanup through the API failed: %r" % e)
        status = cls.daemon.stop()
        if status not in (0, None, -signal.SIGTERM):
            problems.append("airlockd exited with status %s on SIGTERM" % status)
        problems += leftovers(cls.daemon.state_dir, cls.created, cls.daemon.socket_path)
        if problems:
            force_cleanup(cls.daemon.state_dir, cls.created, cls.daemon.socket_path)
        log = cls.daemon.log()
        shutil.rmtree(cls.workdir, ignore_errors=True)
        cls.daemon = None
        if problems:
            raise AssertionError("left behind or failed at teardown:\n  " + "\n  ".join(problems)
                                 + "\n--- airlockd log (tail) ---\n" + log[-4000:])

    def new_client(self):
        c = Client(self.daemon.socket_path, self.created)
        self.addCleanup(c.close)
        return c

    def sandbox(self, **fields):
        """Create a sandbox destroyed at the end of the test; returns its inspect object."""
        sb = self.client.create(**fields)
        self.addCleanup(self._destroy_quietly, sb["id"])
        return sb

    def _destroy_quietly(self, sid):
        try:
            c = Client(self.daemon.socket_path)
            c.request("DELETE", "/v1/sandboxes/" + sid)
            c.close()
        except OSError:
            pass

    def sh(self, sid, command, **fields):
        """Run a shell command; returns the result (utf8 strings)."""
        return self.client.exec(sid, command=command, **fields)

    def assertExit(self, result, code, msg=None):
        self.assertFalse(result.get("running"), msg or result)
        self.assertEqual(result.get("exit_code"), code, msg or result)

    def out(self, sid, command, **fields):
        """stdout of a shell command that must succeed."""
        r = self.sh(sid, command, **fields)
        self.assertExit(r, 0, "%r failed: %r" % (command, r))
        return r["stdout"]


def main():
    """unittest.main, with exit 77 (meson's skip) when every test was skipped."""
    prog = unittest.main(exit=False, verbosity=2)
    res = prog.result
    if not res.wasSuccessful():
        sys.exit(1)
    if res.testsRun == 0 or len(res.skipped) == res.testsRun:
        sys.exit(77)
    sys.exit(0)
