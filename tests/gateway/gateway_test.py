# SPDX-License-Identifier: Apache-2.0
"""A private airlockd (tests/integration/airlock_test.py) with an airlock-gateway
in front of it on a loopback port, for the official SDKs to drive.

Environment: AIRLOCK_BUILD_DIR (meson build directory), AIRLOCK_NODE_MODULES
(tests/node_modules, installed by scripts/setup.sh with npm ci).
"""

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))
import airlock_test as at  # noqa: E402

GATEWAY = os.path.join(at.BUILD_DIR, "gateway", "airlock-gateway")
TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODE_MODULES = os.environ.get("AIRLOCK_NODE_MODULES") or os.path.join(TESTS_DIR, "node_modules")
# E2B's SDK runs commands with /bin/bash: the Debian rootfs has it.
DEBIAN_ROOTFS = os.environ.get("AIRLOCK_TEST_DEBIAN_ROOTFS") or "/var/lib/airlock/rootfs/debian"
# Started as root, the gateway runs as nobody and reaches airlockd through the socket's
# group (docs/gateway.md): every airlockd with a gateway in front is started with it.
GATEWAY_USER = "nobody"
DAEMON_ARGS = ("--group", "nogroup")


class Gateway:
    def __init__(self, workdir, socket_path, rootfs, keys, extra_args=()):
        self.keys_path = os.path.join(workdir, "gateway-keys.json")
        fd = os.open(self.keys_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(keys, f)
        self.log_path = os.path.join(workdir, "gateway.log")
        self.listen = "127.0.0.1:0"
        # rootfs None: none given (a test passes --image in extra_args instead).
        self.base_args = [GATEWAY, "--socket", socket_path, "--keys", self.keys_path] + \
            (["--rootfs", rootfs] if rootfs else []) + list(extra_args)
        self.proc = None
        self.url = None

    @property
    def args(self):
        return self.base_args + ["--listen", self.listen]

    def start(self, timeout=20):
        log = open(self.log_path, "ab")
        # LeakSanitizer stops the world with ptrace, which the gateway's own seccomp
        # confinement denies (docs/gateway.md): under ASan it would abort at every exit.
        env = dict(os.environ)
        if "ASAN_OPTIONS" in env:
            env["ASAN_OPTIONS"] += ":detect_leaks=0"
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=log, close_fds=True, env=env)
        log.close()
        line = self.proc.stdout.readline().decode()
        if "listening on" not in line:
            self.stop()
            raise AssertionError("airlock-gateway did not start: %r\n%s" % (line, self.log()))
        self.url = "http://" + line.split("listening on ", 1)[1].strip()
        # A restart (stop, start) serves on the same port, as a supervised one would.
        self.listen = self.url[len("http://"):]

    def stop(self, timeout=60):
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("airlock-gateway did not stop within %ss" % timeout)
        finally:
            self.proc.stdout.close()

    def log(self):
        return at.read_text(self.log_path) or ""


class GatewayTestCase(at.AirlockTestCase):
    rootfs = DEBIAN_ROOTFS
    daemon_args = DAEMON_ARGS
    gateway_args = ()  # more airlock-gateway options

    @classmethod
    def setUpClass(cls):
        if not os.access(GATEWAY, os.X_OK):
            raise AssertionError("%s is missing: build first" % GATEWAY)
        if not os.path.isdir(os.path.join(NODE_MODULES, "e2b")):
            raise AssertionError("%s has no e2b: run scripts/setup.sh (npm ci)" % NODE_MODULES)
        super().setUpClass()
        cls.key_a = "gwkey-a-" + secrets.token_hex(16)
        cls.key_b = "gwkey-b-" + secrets.token_hex(16)
        cls.gateway = Gateway(cls.workdir, cls.daemon.socket_path, cls.rootfs,
                              {cls.key_a: "tenant-a", cls.key_b: "tenant-b"}, cls.gateway_args)
        cls.gateway.start()
        # Runs before the airlockd cleanup of the base class (cleanups are LIFO).
        cls.addClassCleanup(cls.stop_gateway)

    @classmethod
    def stop_gateway(cls):
        status = cls.gateway.stop()
        if status not in (0, None):
            raise AssertionError("airlock-gateway exited with %s:\n%s" % (status, cls.gateway.log()))

    def refused(self, path, headers=None):
        """POST {} to path on the gateway with headers: it must answer 401; its body, parsed."""
        req = urllib.request.Request(self.gateway.url + path, data=b"{}", method="POST",
                                     headers=dict(headers or {},
                                                  **{"Content-Type": "application/json"}))
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(req, timeout=30)
        self.assertEqual(cm.exception.code, 401)
        return json.loads(cm.exception.read())

    def node(self, script, env=None, timeout=600, args=()):
        """Run a Node script of tests/gateway with the SDK pointed at the gateway."""
        e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.workdir,
             "NODE_PATH": NODE_MODULES}
        e.update(env or {})
        started = time.monotonic()
        p = subprocess.run(["node", os.path.join(os.path.dirname(os.path.abspath(__file__)), script)]
                           + list(args),
                           env=e, cwd=TESTS_DIR, capture_output=True, timeout=timeout)
        out, err = p.stdout.decode(), p.stderr.decode()
        if p.returncode != 0:
            raise AssertionError("%s failed (exit %d, %.1fs):\n%s\n%s\n--- gateway log ---\n%s"
                                 % (script, p.returncode, time.monotonic() - started, out, err,
                                    self.gateway.log()[-4000:]))
        lines = [l for l in out.splitlines() if l.startswith("{")]
        return json.loads(lines[-1])


main = at.main
