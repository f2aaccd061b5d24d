# SPDX-License-Identifier: Apache-2.0
"""HTTP/1.1 over airlockd's Unix socket, with the standard library only.

http.client does the HTTP; only the connect step differs from TCP.  One
:class:`Transport` holds one keep-alive connection and is not meant to be
shared between threads (make one per thread: connecting costs microseconds).
"""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any, BinaryIO, Dict, Mapping, Optional, Union

DEFAULT_TIMEOUT = 120.0

Body = Union[None, bytes, bytearray, memoryview, str, Mapping[str, Any], list, BinaryIO]


class UnixHTTPConnection(http.client.HTTPConnection):
    """An http.client connection to a Unix socket; "localhost" only fills the Host header."""

    def __init__(self, socket_path: str, timeout: Optional[float] = DEFAULT_TIMEOUT):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class Response:
    """One answer: ``status``, ``headers`` (a dict, names as sent), ``body`` (bytes)."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: Dict[str, str], body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self) -> Any:
        """The body parsed as JSON (None for an empty body)."""
        return json.loads(self.body.decode()) if self.body else None

    def header(self, name: str) -> Optional[str]:
        """A header's value, whatever the case of its name."""
        low = name.lower()
        for k, v in self.headers.items():
            if k.lower() == low:
                return v
        return None

    def __repr__(self) -> str:
        return "<HTTP %d %r>" % (self.status, self.body[:500])


class Transport:
    """One keep-alive connection to airlockd's socket."""

    def __init__(self, socket_path: str, timeout: Optional[float] = DEFAULT_TIMEOUT):
        self.socket_path = socket_path
        self.timeout = timeout
        self._conn: Optional[UnixHTTPConnection] = None
        self._used = False  # whether _conn already carried a request

    def close(self) -> None:
        """Close the connection (a later request opens a new one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
            self._used = False

    def request(self, method: str, path: str, body: Body = None,
                headers: Optional[Mapping[str, str]] = None,
                timeout: Optional[float] = None) -> Response:
        """Send one request and read the whole answer, whatever its status.

        A dict or list body is sent as JSON, a str as UTF-8, bytes as they
        are, a binary file object streamed (its length taken from the file
        when it has one).  A connection that airlockd closed while it was
        idle (it does after 60 s) is replaced once; a request on a fresh
        connection is never sent twice.
        """
        hdrs = dict(headers or {})
        data: Any = body
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            data = body.encode()
        rewind = None
        if hasattr(data, "read") and hasattr(data, "seek"):
            try:
                rewind = data.tell()
            except OSError:
                rewind = None
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = UnixHTTPConnection(self.socket_path, timeout or self.timeout)
                self._used = False
            elif timeout is not None:
                self._conn.timeout = timeout
                if self._conn.sock is not None:
                    self._conn.sock.settimeout(timeout)
            reused = self._used
            try:
                self._conn.request(method, path, body=data, headers=hdrs)
                self._used = True
                resp = self._conn.getresponse()
                payload = resp.read()
                result = Response(resp.status, dict(resp.getheaders()), payload)
                if resp.will_close:
                    self.close()
                elif timeout is not None and self._conn.sock is not None:
                    self._conn.sock.settimeout(self.timeout)
                return result
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                # Only a kept-alive connection that went stale is retried,
                # and only when a streamed body can be sent again.
                if attempt or not reused or (hasattr(data, "read") and rewind is None):
                    raise
                if rewind is not None:
                    data.seek(rewind)
            except BaseException:
                self.close()
                raise
        raise AssertionError("unreachable")
