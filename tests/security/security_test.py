# SPDX-License-Identifier: Apache-2.0
"""Shared machinery of the security battery.

Every attack runs for real inside a sandbox (Debian rootfs, default seccomp
profile unless a test says otherwise) and is reported on its own line as

    ATTACK <name>: blocked (<how>)
    ATTACK <name>: ESCAPED (<what happened>)

A test fails on ESCAPED.  Attacks that need more than a shell use the static
helper attack.c (built here with gcc and copied in through the file API) or
python3 from the Debian rootfs.
"""

import errno
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

import airlock_test as at  # noqa: E402

DEBIAN_ROOTFS = os.environ.get("AIRLOCK_SECURITY_ROOTFS") or "/var/lib/airlock/rootfs/debian"
HELPER_IN_SANDBOX = "/workspace/.attack"

_helper_path = None


def helper_binary():
    """attack.c built statically (once per test process)."""
    global _helper_path
    if _helper_path and os.path.exists(_helper_path):
        return _helper_path
    out = os.path.join(tempfile.mkdtemp(prefix="airlock-attack-"), "attack")
    r = subprocess.run(["gcc", "-static", "-O2", "-o", out, os.path.join(HERE, "attack.c")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError("cannot build the attack helper:\n" + r.stderr)
    _helper_path = out
    return out


def remove_helper():
    if _helper_path:
        d = os.path.dirname(_helper_path)
        for f in os.listdir(d):
            os.unlink(os.path.join(d, f))
        os.rmdir(d)


def report(name, blocked, how):
    print("ATTACK %s: %s (%s)" % (name, "blocked" if blocked else "ESCAPED", how), flush=True)
    return blocked


class SecurityTestCase(at.AirlockTestCase):
    rootfs = DEBIAN_ROOTFS

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.addClassCleanup(remove_helper)

    def attack_ok(self, name, blocked, how):
        """Report one attack and fail the test when it got through."""
        if not report(name, blocked, how):
            self.fail("ATTACK %s ESCAPED: %s" % (name, how))

    def install_helper(self, sid):
        with open(helper_binary(), "rb") as f:
            data = f.read()
        r = self.client.write_file(sid, HELPER_IN_SANDBOX, data, mode="0755")
        self.assertEqual(r.status, 200, r)

    def run_helper(self, sid, *names):
        """{attack: (kind, value)} with kind "ok", "err", "signal" or "exit"."""
        r = self.client.exec(sid, [HELPER_IN_SANDBOX] + list(names), timeout_ms=60000)
        self.assertExit(r, 0, "attack helper failed: %r" % r)
        results = {}
        for line in r["stdout"].splitlines():
            name, kind, value = line.split()
            results[name] = (kind, int(value))
        return results

    def py(self, sid, code, **fields):
        """Run python3 code in the sandbox; returns the exec result."""
        return self.client.exec(sid, ["python3", "-c", code], timeout_ms=fields.pop("timeout_ms", 60000),
                                **fields)

    def events(self, sid, since=0):
        return self.client.expect(200, "GET", "/v1/sandboxes/%s/events?since=%d" % (sid, since)).json

    def wait_denial(self, sid, syscall, timeout=5.0, pid=None):
        """The seccomp events for syscall, waiting for the audit record to
        arrive (with pid: until one of that in-sandbox pid is there, since
        the class shares sandboxes and an older record may already match)."""
        end = time.monotonic() + timeout
        while True:
            ev = self.events(sid)
            self.assertTrue(ev.get("collecting"), "denial log is not collecting: %r" % ev)
            found = [e for e in ev["events"] if e["type"] == "seccomp" and e["syscall"] == syscall]
            if (found and (pid is None or any(e.get("pid") == pid for e in found))) \
                    or time.monotonic() > end:
                return found
            time.sleep(0.1)


def errname(code):
    return errno.errorcode.get(code, str(code))


def main():
    at.main()
