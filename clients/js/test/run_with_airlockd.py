#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Run clients/js's node tests against a private airlockd.

The daemon and the end-of-class check that nothing is left behind (no
sandbox, cgroup, mount, process or state file) are the integration tests'
(tests/integration/airlock_test.py); the node tests get its socket in
AIRLOCK_SOCKET and must delete every sandbox they make.

Usage: run_with_airlockd.py TEST_FILE...  (paths relative to clients/js/test)
"""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
JS_DIR = os.path.dirname(HERE)
SOURCE_ROOT = os.path.dirname(os.path.dirname(JS_DIR))
sys.path.insert(0, os.path.join(SOURCE_ROOT, "tests", "integration"))

import airlock_test as at  # noqa: E402

FILES = sys.argv[1:] or sorted(f for f in os.listdir(HERE) if f.endswith(".test.mjs"))
del sys.argv[1:]


class NodeTests(at.AirlockTestCase):
    rootfs = os.environ.get("AIRLOCK_TEST_ROOTFS") or "/var/lib/airlock/rootfs/debian"

    def test_node_suite(self):
        built = os.path.join(JS_DIR, "dist", "index.js")
        if not os.path.exists(built):
            self.fail("clients/js is not built: scripts/setup.sh runs npm ci and tsc there")
        src = os.path.join(JS_DIR, "src")
        stale = [f for f in os.listdir(src) if os.path.getmtime(os.path.join(src, f)) > os.path.getmtime(built)]
        self.assertEqual(stale, [], "clients/js/dist is older than its sources: run scripts/setup.sh")
        env = dict(os.environ, AIRLOCK_SOCKET=self.daemon.socket_path, AIRLOCK_BUILD_DIR=at.BUILD_DIR)
        # The SDK must not reach for a real model or tracing exporter.
        env.pop("OPENAI_API_KEY", None)
        env["OPENAI_AGENTS_DISABLE_TRACING"] = "1"
        # One file at a time (node's --test-concurrency is newer than some
        # nodes): the files count airlockd's sandboxes before and after.
        failed = []
        for f in FILES:
            proc = subprocess.run(["node", "--test", os.path.join("test", f)],
                                  cwd=JS_DIR, env=env, timeout=600)
            if proc.returncode != 0:
                failed.append(f)
        self.assertEqual(failed, [], "node --test failed (its output is above)")
        # Every sandbox a test made was deleted by the test or by the SDK's runtime.
        self.assertEqual(self.client.list(), [], "node tests left sandboxes in airlockd")

    def test_example_offline(self):
        """examples/agents-sdk runs as its README says, with the scripted model."""
        env = dict(os.environ, AIRLOCK_SOCKET=self.daemon.socket_path)
        env.pop("OPENAI_API_KEY", None)
        proc = subprocess.run([os.path.join(SOURCE_ROOT, "examples", "agents-sdk", "run.sh")],
                              env=env, capture_output=True, text=True, timeout=300)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn("agent: fizzbuzz.sh works: the 15th line is FizzBuzz.", proc.stdout)
        self.assertIn("workspace: README.md fizzbuzz.sh", proc.stdout)
        self.assertEqual(self.client.list(), [], "the example left its sandbox")


if __name__ == "__main__":
    at.main()
