# SPDX-License-Identifier: Apache-2.0
"""A client of airlockd's streamed exec for the tests: an HTTP/1.1 request
with "Upgrade: airlock-exec/1" on the Unix socket, then the frames of
docs/api.md ("Streamed exec and terminals") both ways, on a plain socket so
that every byte on the wire is the test's own."""

import json
import socket
import struct
import time

PROTOCOL = "airlock-exec/1"

# Client to airlockd.
STDIN, RESIZE, SIGNAL, CLOSE_STDIN = 0, 1, 2, 3
# airlockd to the client.
STDOUT, STDERR, EXIT, ERROR = 1, 2, 3, 4


class StreamClosed(AssertionError):
    pass


class ExecStream:
    def __init__(self, socket_path, sid, body, timeout=60, upgrade=PROTOCOL):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(socket_path)
        data = json.dumps(body).encode()
        head = ("POST /v1/sandboxes/%s/exec HTTP/1.1\r\nHost: localhost\r\n"
                "Connection: Upgrade\r\nUpgrade: %s\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n" % (sid, upgrade, len(data))).encode()
        self.sock.sendall(head + data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise StreamClosed("airlockd closed before answering: %r" % buf)
            buf += chunk
        header, self.buf = buf.split(b"\r\n\r\n", 1)
        lines = header.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.strip().lower(): v.strip()
                        for k, v in (line.split(":", 1) for line in lines[1:])}
        self.error = None
        if self.status != 101:
            length = int(self.headers.get("content-length", "0"))
            while len(self.buf) < length:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.buf += chunk
            self.error = json.loads(self.buf[:length] or b"null")
        # bytearrays: appended to in place (a long stream stays linear).
        self.output = bytearray()
        self.stderr = bytearray()
        self.errors = []
        self.exit = None

    def close(self):
        self.sock.close()

    def send(self, kind, payload=b""):
        self.sock.sendall(struct.pack(">BI", kind, len(payload)) + payload)

    def stdin(self, data):
        self.send(STDIN, data.encode() if isinstance(data, str) else data)

    def resize(self, rows, cols):
        self.send(RESIZE, struct.pack(">HH", rows, cols))

    def signal(self, name):
        self.send(SIGNAL, name.encode())

    def close_stdin(self):
        self.send(CLOSE_STDIN)

    def frame(self):
        """The next frame (kind, payload); StreamClosed at the end of the connection."""
        while True:
            if len(self.buf) >= 5:
                kind, n = struct.unpack(">BI", self.buf[:5])
                if len(self.buf) >= 5 + n:
                    payload = self.buf[5:5 + n]
                    self.buf = self.buf[5 + n:]
                    return kind, payload
            chunk = self.sock.recv(65536)
            if not chunk:
                raise StreamClosed("connection closed; output so far ends %r"
                                   % bytes(self.output[-200:]))
            self.buf += chunk

    def pump(self):
        """Read one frame into output/stderr/errors/exit; returns its kind."""
        kind, payload = self.frame()
        if kind == STDOUT:
            self.output += payload
        elif kind == STDERR:
            self.stderr += payload
        elif kind == ERROR:
            self.errors.append(json.loads(payload))
        elif kind == EXIT:
            self.exit = json.loads(payload)
        else:
            raise AssertionError("unknown frame type %d" % kind)
        return kind

    def read_until(self, text, timeout=30):
        """Read until the output (from where it stood) holds text; returns the new output."""
        start = len(self.output)
        want = text.encode() if isinstance(text, str) else text
        end = time.monotonic() + timeout
        while want not in self.output[start:]:
            if self.exit is not None:
                raise AssertionError("exited (%r) before %r; output: %r"
                                     % (self.exit, want, self.output[start:]))
            if time.monotonic() > end:
                raise AssertionError("no %r within %ss; output: %r"
                                     % (want, timeout, self.output[start:]))
            self.pump()
        return self.output[start:].decode(errors="replace")

    def wait_exit(self, timeout=60):
        end = time.monotonic() + timeout
        while self.exit is None:
            if time.monotonic() > end:
                raise AssertionError("no exit within %ss; output (%d bytes) ends %r"
                                     % (timeout, len(self.output), bytes(self.output[-200:])))
            self.pump()
        return self.exit
