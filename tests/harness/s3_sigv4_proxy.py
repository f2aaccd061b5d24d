# SPDX-License-Identifier: Apache-2.0
"""A loopback proxy in front of s3rver that checks every request's SigV4
signature (AWS4-HMAC-SHA256, sigv4.py) and answers 403 SignatureDoesNotMatch
when it does not hold, as S3 and R2 do.  s3rver checks the access key id only
(its V4 check is unimplemented), so without this a wrong secret would pass.
Requests that hold are forwarded to s3rver unchanged.

Run: python3 s3_sigv4_proxy.py PORT UPSTREAM_PORT ID:SECRET...
"""

import http.client
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sigv4  # noqa: E402

HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream = None
    keys = {}

    def log_message(self, fmt, *args):
        pass

    def body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def answer(self, status, headers, body):
        self.send_response(status)
        length = str(len(body))
        for k, v in headers:
            if k.lower() == "content-length" and self.command == "HEAD":
                length = v  # a HEAD has no body: the length is the object's
            elif k.lower() not in HOP and k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def relay(self):
        payload = self.body()
        why = sigv4.check(self.command, self.path, self.headers, payload, self.keys, "aws")
        if why:
            body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SignatureDoesNotMatch"
                    "</Code><Message>%s</Message></Error>" % why).encode()
            return self.answer(403, [("Content-Type", "application/xml")], body)
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream, timeout=120)
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in HOP and k.lower() != "content-length"}
        headers["Content-Length"] = str(len(payload))
        conn.request(self.command, self.path, body=payload, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        self.answer(resp.status, resp.getheaders(), data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = relay


if __name__ == "__main__":
    Proxy.upstream = int(sys.argv[2])
    Proxy.keys = dict(k.split(":", 1) for k in sys.argv[3:])
    srv = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Proxy)
    srv.daemon_threads = True
    srv.serve_forever()
