#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""airlock_client without airlockd: what it sends, how it reads answers and
errors, and how it treats a keep-alive connection the server dropped.

The peer is a small http.server on a Unix socket in a temporary directory
that records each request and plays back scripted answers; it checks the
client's side of the wire only (test_integration.py checks it against the
real daemon).
"""

import base64
import http.server
import json
import os
import socketserver
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import airlock_client as ac  # noqa: E402
from airlock_client.client import exec_request  # noqa: E402


class Recorder(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path):
        self.requests = []  # (method, path, headers, body)
        self.answers = []  # (status, body bytes, content type, close the connection after)
        super().__init__(path, Handler)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def handle_one(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        self.server.requests.append((self.command, self.path, dict(self.headers), body))
        status, data, ctype, drop = self.server.answers.pop(0)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()
        if drop:  # vanish without "Connection: close", as an idle timeout does
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = handle_one

    def address_string(self):
        return "unix"

    def log_message(self, *args):
        pass


def js(obj, status=200, drop=False):
    return (status, json.dumps(obj).encode(), "application/json", drop)


class UnitTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="airlock-pyclient-")
        self.sock = os.path.join(self.dir, "s.sock")
        self.srv = Recorder(self.sock)
        t = threading.Thread(target=self.srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        t.start()
        self.api = ac.AirlockClient(self.sock, timeout=10)

        def stop():
            self.api.close()
            self.srv.shutdown()
            self.srv.server_close()
            t.join()
            os.unlink(self.sock)
            os.rmdir(self.dir)
        self.addCleanup(stop)

    def test_requests_on_the_wire(self):
        self.srv.answers += [js({"running": False, "exit_code": 0, "signal": None, "timed_out": False,
                                 "stdout": base64.b64encode(b"\x00\x01").decode(), "stderr": "",
                                 "stdout_truncated": False, "stderr_truncated": False,
                                 "duration_ms": 1}),
                             js({"path": "a b&c", "size": 3}),
                             js({"killed": True}),
                             (200, b"\x00tar", "application/x-tar", False)]
        r = self.api.exec("sb1", ["cat"], stdin=b"\xff", yield_ms=5, binary=True, env={"A": "1"})
        self.assertEqual(r.stdout, b"\x00\x01")
        self.api.write_file("sb1", "a b&c", "xyz", mode=0o600, parents=True)
        self.api.kill("sb1", "p3", "TERM")
        self.assertEqual(self.api.persist_workspace("sb1"), b"\x00tar")
        (m1, p1, h1, b1), (m2, p2, h2, b2), (m3, p3, _, _), (m4, p4, _, _) = self.srv.requests
        self.assertEqual((m1, p1), ("POST", "/v1/sandboxes/sb1/exec"))
        self.assertEqual(h1["Content-Type"], "application/json")
        self.assertEqual(json.loads(b1), {"argv": ["cat"], "stdin_base64": "/w==", "yield_ms": 5,
                                          "encoding": "base64", "env": {"A": "1"}})
        self.assertEqual((m2, p2), ("PUT", "/v1/sandboxes/sb1/files?path=a+b%26c&mode=0600&parents=1"))
        self.assertEqual((h2["Content-Type"], b2), ("application/octet-stream", b"xyz"))
        self.assertEqual((m3, p3), ("DELETE", "/v1/sandboxes/sb1/processes/p3?signal=TERM"))
        self.assertEqual((m4, p4), ("GET", "/v1/sandboxes/sb1/workspace"))

    def test_errors_by_code_and_status(self):
        self.srv.answers += [js({"error": {"code": "conflict", "message": "uid range held"}}, 409),
                             (502, b"<html>bad gateway</html>", "text/html", False),
                             js({"error": {"code": "not_found", "message": "no sandbox 'x'"}}, 404)]
        with self.assertRaises(ac.Conflict) as cm:
            self.api.restore("snap1")
        self.assertEqual((cm.exception.status, cm.exception.code, cm.exception.message),
                         (409, "conflict", "uid range held"))
        self.assertIn("POST /v1/sandboxes", str(cm.exception))
        with self.assertRaises(ac.InternalError) as cm:
            self.api.info()
        self.assertEqual(cm.exception.code, "http_502")
        self.assertIn("bad gateway", cm.exception.message)
        with self.assertRaises(ac.NotFound):
            self.api.inspect("x")

    def test_answer_that_is_not_the_api(self):
        self.srv.answers += [(200, b"not json", "text/plain", False), js({"odd": 1})]
        with self.assertRaises(ac.ProtocolError):
            self.api.info()
        with self.assertRaises(ac.ProtocolError):
            self.api.exec("sb", command="true")

    def test_stale_keepalive_is_retried_once(self):
        self.srv.answers += [js({"sandboxes": []}, drop=True), js({"sandboxes": [{"id": "a"}]})]
        self.assertEqual(self.api.list(), [])
        # The server dropped the connection after the first answer: the
        # client notices on its next request and sends it again, once.
        self.assertEqual(self.api.list(), [{"id": "a"}])
        self.assertEqual(len(self.srv.requests), 2)

    def test_bad_arguments_never_reach_the_wire(self):
        for call in (lambda: self.api.exec("sb"),
                     lambda: self.api.exec("sb", ["x"], command="y"),
                     lambda: self.api.exec("sb", "ls -l"),
                     lambda: self.api.exec("sb", command="x", yield_ms=-1),
                     lambda: self.api.inspect(""),
                     lambda: self.api.inspect("a/b"),
                     lambda: self.api.read_file("sb", ""),
                     lambda: self.api.kill("sb", "p1", "STOP"),
                     lambda: self.api.create(remove=True),
                     lambda: self.api.hydrate_workspace("sb", b"", max_members=-3)):
            with self.assertRaises(ValueError):
                call()
        with self.assertRaises(TypeError):
            self.api.write_file("sb", "f", 12)
        self.assertEqual(self.srv.requests, [])
        self.assertEqual(exec_request(command="x", timeout_ms=0), {"command": "x", "timeout_ms": 0})
        self.assertEqual(exec_request(command="x", tty=True, rows=2, cols=3, user="5"),
                         {"command": "x", "tty": True, "rows": 2, "cols": 3, "user": "5"})
        for bad in ({"rows": 2}, {"rows": 2, "cols": 3}, {"user": ""}):
            with self.assertRaises(ValueError):
                exec_request(command="x", **bad)
        with self.assertRaises(ValueError):
            self.api.resize("sb", "p1", 0, 80)
        self.assertEqual(self.srv.requests, [])

    def test_process_stream_and_wait(self):
        def res(running, out, err="", code=None):
            return {"running": running, "exit_code": code, "signal": None, "timed_out": False,
                    "stdout": out, "stderr": err, "stdout_truncated": False,
                    "stderr_truncated": False, **({"process_id": "p1"} if running else {})}
        self.srv.answers += [js(res(True, "a")), js(res(True, "b", "e")), js(res(False, "c", code=4))]
        p = self.api.start("sb", command="x")
        self.assertEqual(p.id, "p1")
        r = p.wait(deadline_s=5)
        self.assertEqual((r.exit_code, r.stdout, r.stderr), (4, "abc", "e"))
        self.assertEqual(self.srv.requests[1][1], "/v1/sandboxes/sb/processes/p1?yield_ms=1000")
        with self.assertRaises(ValueError):
            p.poll()


if __name__ == "__main__":
    unittest.main(verbosity=2)
