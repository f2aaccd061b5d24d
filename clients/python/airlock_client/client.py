# SPDX-License-Identifier: Apache-2.0
"""The client: every route of airlockd's v1 API as a method.

    from airlock_client import AirlockClient

    with AirlockClient("/run/airlock/airlockd.sock") as api:
        with api.create_sandbox(manifest={"entries": {"a.txt": {"type": "file", "content": "hi"}}}) as sb:
            print(sb.exec(command="cat a.txt").stdout)

Failures raise :class:`~airlock_client.errors.AirlockError` subclasses named
after airlockd's error codes; arguments that cannot make a valid request
raise ``ValueError``/``TypeError`` before anything is sent.
"""

from __future__ import annotations

import base64
import os
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import (Any, BinaryIO, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple,
                    Union, cast)

from .errors import AirlockError, ProtocolError, error_for
from .transport import DEFAULT_TIMEOUT, Body, Response, Transport
from .types import (Deleted, DirListing, Events, FileWritten, Hydrated, Info, Limits, Sandbox,
                    SandboxSummary, SnapshotSummary)

DEFAULT_SOCKET = "/run/airlock/airlockd.sock"
"""Where airlockd listens unless told otherwise (``AIRLOCK_SOCKET`` overrides)."""

Data = Union[str, bytes, bytearray, memoryview]
SIGNALS = ("KILL", "TERM", "INT", "HUP")


def _segment(value: str, what: str) -> str:
    """One path segment (a sandbox, process or snapshot id), refused when it cannot be one."""
    if not isinstance(value, str) or not value or "/" in value or value in (".", ".."):
        raise ValueError("%s must be a non-empty string without '/', not %r" % (what, value))
    return urllib.parse.quote(value, safe="")


def _nonneg(value: Optional[int], what: str) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("%s must be a non-negative integer, not %r" % (what, value))
    return value


def _bytes(data: Data) -> bytes:
    if isinstance(data, str):
        return data.encode()
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError("expected str or bytes, not %s" % type(data).__name__)


@dataclass
class ExecResult:
    """What exec, poll and stdin writes answer.

    ``stdout``/``stderr`` hold only output not returned before; they are
    ``bytes`` when the request asked for ``encoding="base64"`` (decoded
    here), ``str`` otherwise (invalid UTF-8 replaced by U+FFFD by airlockd).
    ``exit_code`` is 128+N and ``signal`` N for a command killed by signal N;
    both are None while ``running``, when ``process_id`` names the process
    for :meth:`AirlockClient.poll` and :meth:`AirlockClient.write_stdin`.
    """

    running: bool
    exit_code: Optional[int]
    signal: Optional[int]
    timed_out: bool
    stdout: Union[str, bytes]
    stderr: Union[str, bytes]
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    duration_ms: Optional[int] = None
    process_id: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, obj: Any, binary: bool) -> "ExecResult":
        """Build from an answer; ``binary`` when its streams are base64."""
        if not isinstance(obj, dict) or not isinstance(obj.get("running"), bool):
            raise ProtocolError(200, "bad_answer", "not an exec result: %r" % (obj,))

        def stream(name: str) -> Union[str, bytes]:
            text = obj.get(name) or ""
            return base64.b64decode(text) if binary else text

        return cls(running=obj["running"], exit_code=obj.get("exit_code"),
                   signal=obj.get("signal"), timed_out=bool(obj.get("timed_out")),
                   stdout=stream("stdout"), stderr=stream("stderr"),
                   stdout_truncated=bool(obj.get("stdout_truncated")),
                   stderr_truncated=bool(obj.get("stderr_truncated")),
                   duration_ms=obj.get("duration_ms"), process_id=obj.get("process_id"), raw=obj)

    @property
    def ok(self) -> bool:
        """Finished with exit code 0."""
        return not self.running and self.exit_code == 0


class AirlockClient:
    """A connection to one airlockd.  Not thread-safe: use one per thread.

    ``socket_path`` defaults to ``$AIRLOCK_SOCKET``, else
    ``/run/airlock/airlockd.sock``; ``timeout`` (seconds) bounds every socket
    operation, so it must exceed the longest ``yield_ms``/exec you wait for.
    """

    def __init__(self, socket_path: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT):
        self.socket_path = socket_path or os.environ.get("AIRLOCK_SOCKET") or DEFAULT_SOCKET
        self.transport = Transport(self.socket_path, timeout)

    # ---- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the keep-alive connection."""
        self.transport.close()

    def __enter__(self) -> "AirlockClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, body: Body = None,
                query: Optional[Mapping[str, Any]] = None,
                headers: Optional[Mapping[str, str]] = None,
                timeout: Optional[float] = None) -> Response:
        """One raw request; answers whatever status came (no exception for 4xx/5xx).

        ``path`` starts with ``/v1/``; ``query`` values are URL-encoded
        (``None`` values left out, booleans as 1/0).
        """
        if query:
            q = {k: (int(v) if isinstance(v, bool) else v) for k, v in query.items()
                 if v is not None}
            if q:
                path += ("&" if "?" in path else "?") + urllib.parse.urlencode(q)
        return self.transport.request(method, path, body, headers, timeout)

    def call(self, method: str, path: str, body: Body = None,
             query: Optional[Mapping[str, Any]] = None,
             headers: Optional[Mapping[str, str]] = None, ok: Sequence[int] = (200,),
             timeout: Optional[float] = None) -> Response:
        """A request whose status must be in ``ok``; otherwise the matching :class:`AirlockError`."""
        resp = self.request(method, path, body, query, headers, timeout)
        if resp.status not in ok:
            raise self._error(method, path, resp)
        return resp

    def _json(self, method: str, path: str, body: Body = None,
              query: Optional[Mapping[str, Any]] = None, ok: Sequence[int] = (200,),
              headers: Optional[Mapping[str, str]] = None) -> Any:
        resp = self.call(method, path, body, query, headers, ok)
        try:
            return resp.json
        except ValueError as e:
            raise ProtocolError(resp.status, "bad_answer", "%s %s: answer is not JSON: %s"
                                % (method, path, e), method, path) from None

    @staticmethod
    def _error(method: str, path: str, resp: Response) -> AirlockError:
        code, message = None, resp.body[:500].decode(errors="replace")
        try:
            err = resp.json["error"]
            code, message = err["code"], err["message"]
        except (ValueError, KeyError, TypeError):
            pass
        return error_for(resp.status, code, message, method, path)

    # ---- daemon -----------------------------------------------------------------------------

    def info(self) -> Info:
        """Version, cgroup mode, seccomp and CRIU versions, sandbox counts."""
        return cast(Info, self._json("GET", "/v1/info"))

    # ---- sandboxes --------------------------------------------------------------------------

    def create(self, manifest: Optional[Mapping[str, Any]] = None, *, name: Optional[str] = None,
               rootfs: Optional[str] = None, limits: Optional[Limits] = None,
               network: Optional[Union[str, Mapping[str, Any]]] = None,
               seccomp_profile: Optional[str] = None, ports: Optional[Sequence[str]] = None,
               env: Optional[Mapping[str, str]] = None, snapshot: Optional[str] = None,
               exec: Optional[Mapping[str, Any]] = None, remove: Optional[bool] = None,
               summary: bool = False, **extra: Any) -> Sandbox:
        """``POST /v1/sandboxes``: a new sandbox, answered as inspect shows it.

        ``manifest`` is the OpenAI Agents SDK's Manifest as JSON; ``snapshot``
        restores a snapshot instead (``name`` and ``limits`` may come with
        it).  ``exec`` (an exec request object) runs a command in the new
        sandbox in the same round trip, ``remove`` then removes the sandbox
        when the command ended.  ``summary`` asks for the short answer.
        ``network`` is ``"none"`` or ``{"allow": ["CIDR[:PORTS]" | "NAME[:PORTS]", ...]}``,
        ``ports`` ``["[HOSTADDR:]HOSTPORT:PORT[/udp]", ...]`` (docs/network.md).
        Fields the API grows later go through ``extra``.
        """
        body: Dict[str, Any] = dict(extra)
        for key, value in (("manifest", manifest), ("name", name), ("rootfs", rootfs),
                           ("limits", limits), ("network", network),
                           ("seccomp_profile", seccomp_profile), ("env", env),
                           ("snapshot", snapshot), ("exec", exec), ("remove", remove),
                           ("ports", list(ports) if ports is not None else None)):
            if value is not None:
                body[key] = dict(value) if isinstance(value, Mapping) else value
        if remove and exec is None:
            raise ValueError("remove only goes with exec")
        return cast(Sandbox, self._json("POST", "/v1/sandboxes", body,
                                        {"view": "summary"} if summary else None, ok=(201,)))

    def create_sandbox(self, manifest: Optional[Mapping[str, Any]] = None,
                       **fields: Any) -> "SandboxHandle":
        """Like :meth:`create`, answering a :class:`SandboxHandle` (a context manager that deletes it)."""
        return SandboxHandle(self, self.create(manifest, **fields))

    def restore(self, snapshot_id: str, *, name: Optional[str] = None,
                limits: Optional[Limits] = None) -> Sandbox:
        """A new sandbox from a snapshot (its processes running again if it has them)."""
        _segment(snapshot_id, "snapshot id")
        return self.create(snapshot=snapshot_id, name=name, limits=limits)

    def list(self) -> List[SandboxSummary]:
        """Every sandbox of this daemon."""
        return cast(List[SandboxSummary], self._json("GET", "/v1/sandboxes")["sandboxes"])

    def inspect(self, sandbox_id: str) -> Sandbox:
        """One sandbox with its effective isolation."""
        return cast(Sandbox, self._json("GET", "/v1/sandboxes/" + _segment(sandbox_id, "sandbox id")))

    def sandbox(self, sandbox_id: str) -> "SandboxHandle":
        """A handle on an existing sandbox (nothing is sent)."""
        _segment(sandbox_id, "sandbox id")
        return SandboxHandle(self, {"id": sandbox_id})

    def delete(self, sandbox_id: str, wait: bool = True) -> Deleted:
        """Destroy a sandbox; ``wait=False`` answers once it is stopped, teardown following."""
        return cast(Deleted, self._json("DELETE", "/v1/sandboxes/" + _segment(sandbox_id, "sandbox id"),
                                        query=None if wait else {"wait": 0}))

    def events(self, sandbox_id: str, since: int = 0) -> Events:
        """Denials and limits hit, those with ``seq`` > ``since``."""
        return cast(Events, self._json("GET", "/v1/sandboxes/%s/events" % _segment(sandbox_id, "sandbox id"),
                                       query={"since": _nonneg(since, "since")}))

    # ---- processes --------------------------------------------------------------------------

    def exec(self, sandbox_id: str, argv: Optional[Sequence[str]] = None, *,
             command: Optional[str] = None, cwd: Optional[str] = None,
             env: Optional[Mapping[str, str]] = None, stdin: Optional[Data] = None,
             keep_stdin_open: bool = False, timeout_ms: Optional[int] = None,
             yield_ms: Optional[int] = None, max_output_bytes: Optional[int] = None,
             binary: bool = False, user: Optional[str] = None, tty: bool = False,
             rows: Optional[int] = None, cols: Optional[int] = None) -> ExecResult:
        """Run ``argv`` (no shell) or ``command`` (``/bin/sh -c``) in the sandbox.

        Without ``yield_ms`` the answer comes when the command ends; with it,
        after that long at most, ``running`` and a ``process_id`` if the
        command goes on.  ``stdin`` (str or bytes) is written and stdin closed,
        unless ``keep_stdin_open``.  ``binary`` returns stdout/stderr as bytes.
        ``user`` ("UID[:GID]", inside the sandbox) runs it as another user;
        ``tty`` on a pseudo-terminal of ``rows`` x ``cols`` (its output is all
        in stdout, what is written to stdin is typed into it).
        """
        return ExecResult.from_json(self._json(
            "POST", "/v1/sandboxes/%s/exec" % _segment(sandbox_id, "sandbox id"),
            exec_request(argv, command=command, cwd=cwd, env=env, stdin=stdin,
                         keep_stdin_open=keep_stdin_open, timeout_ms=timeout_ms,
                         yield_ms=yield_ms, max_output_bytes=max_output_bytes, binary=binary,
                         user=user, tty=tty, rows=rows, cols=cols)),
            binary)

    def start(self, sandbox_id: str, argv: Optional[Sequence[str]] = None, *,
              yield_ms: int = 0, keep_stdin_open: bool = True, binary: bool = False,
              **fields: Any) -> "Process":
        """Start a command and answer a :class:`Process` to stream, feed and wait for.

        ``yield_ms`` (default 0: answer at once) is how long the start
        waits for first output; stdin stays open unless told otherwise.
        """
        first = self._json("POST", "/v1/sandboxes/%s/exec" % _segment(sandbox_id, "sandbox id"),
                           exec_request(argv, keep_stdin_open=keep_stdin_open,
                                        yield_ms=max(1, _nonneg(yield_ms, "yield_ms") or 0),
                                        binary=binary, **fields))
        return Process(self, sandbox_id, ExecResult.from_json(first, binary), binary)

    def poll(self, sandbox_id: str, process_id: str, yield_ms: int = 0,
             binary: bool = False) -> ExecResult:
        """New output of a running process, waiting up to ``yield_ms`` for its end.

        Once a finished process's result was answered, airlockd forgets it
        (polling again is :class:`~airlock_client.errors.NotFound`).
        """
        return ExecResult.from_json(self._json(
            "GET", "/v1/sandboxes/%s/processes/%s" % (_segment(sandbox_id, "sandbox id"),
                                                      _segment(process_id, "process id")),
            query={"yield_ms": _nonneg(yield_ms, "yield_ms"),
                   "encoding": "base64" if binary else None}), binary)

    def write_stdin(self, sandbox_id: str, process_id: str, data: Optional[Data] = None,
                    close: bool = False, yield_ms: int = 0, binary: bool = False) -> ExecResult:
        """Write to a process's stdin (closing it after with ``close``), then collect output for ``yield_ms``."""
        body: Dict[str, Any] = {"close": bool(close), "yield_ms": _nonneg(yield_ms, "yield_ms")}
        if data is not None:
            if isinstance(data, str):
                body["data"] = data
            else:
                body["data_base64"] = base64.b64encode(_bytes(data)).decode()
        if binary:
            body["encoding"] = "base64"
        return ExecResult.from_json(self._json(
            "POST", "/v1/sandboxes/%s/processes/%s/stdin" % (_segment(sandbox_id, "sandbox id"),
                                                             _segment(process_id, "process id")),
            body), binary)

    def resize(self, sandbox_id: str, process_id: str, rows: int, cols: int) -> None:
        """Set the window size of a tty process's terminal (its foreground job gets SIGWINCH)."""
        for name, value in (("rows", rows), ("cols", cols)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
                raise ValueError("%s must be an integer from 1 to 65535, not %r" % (name, value))
        self._json("POST", "/v1/sandboxes/%s/processes/%s/resize"
                   % (_segment(sandbox_id, "sandbox id"), _segment(process_id, "process id")),
                   {"rows": rows, "cols": cols})

    def kill(self, sandbox_id: str, process_id: str, signal: str = "KILL") -> None:
        """Signal a process's group: ``KILL`` (default), ``TERM``, ``INT`` or ``HUP``."""
        if signal not in SIGNALS:
            raise ValueError("signal must be one of %s, not %r" % (", ".join(SIGNALS), signal))
        self._json("DELETE", "/v1/sandboxes/%s/processes/%s" % (_segment(sandbox_id, "sandbox id"),
                                                                _segment(process_id, "process id")),
                   query={"signal": signal})

    # ---- files ------------------------------------------------------------------------------

    def _files(self, sandbox_id: str, kind: str) -> str:
        return "/v1/sandboxes/%s/%s" % (_segment(sandbox_id, "sandbox id"), kind)

    @staticmethod
    def _path(path: str) -> str:
        if not isinstance(path, str) or not path:
            raise ValueError("path must be a non-empty string, not %r" % (path,))
        return path

    def read_file(self, sandbox_id: str, path: str) -> bytes:
        """A regular file's bytes (relative paths are under the workspace)."""
        return self.call("GET", self._files(sandbox_id, "files"),
                         query={"path": self._path(path)}).body

    def write_file(self, sandbox_id: str, path: str, data: Union[Data, BinaryIO],
                   mode: Optional[int] = None, parents: bool = False) -> FileWritten:
        """Write a file atomically (temporary name, then rename); ``mode`` e.g. ``0o755``."""
        if mode is not None and (not isinstance(mode, int) or not 0 <= mode <= 0o7777):
            raise ValueError("mode must be an int between 0 and 0o7777, not %r" % (mode,))
        body = data if hasattr(data, "read") else _bytes(cast(Data, data))
        return cast(FileWritten, self._json(
            "PUT", self._files(sandbox_id, "files"), cast(Body, body),
            query={"path": self._path(path), "mode": None if mode is None else "%04o" % mode,
                   "parents": True if parents else None},
            headers={"Content-Type": "application/octet-stream"}))

    def delete_file(self, sandbox_id: str, path: str, recursive: bool = False) -> None:
        """Remove a file, or a directory tree with ``recursive``."""
        self._json("DELETE", self._files(sandbox_id, "files"),
                   query={"path": self._path(path), "recursive": True if recursive else None})

    def list_dir(self, sandbox_id: str, path: str) -> DirListing:
        """A directory's entries (name, type, size, mode)."""
        return cast(DirListing, self._json("GET", self._files(sandbox_id, "dirs"),
                                           query={"path": self._path(path)}))

    def make_dir(self, sandbox_id: str, path: str, parents: bool = False) -> str:
        """Create a directory (and its parents with ``parents``); answers its path."""
        return self._json("POST", self._files(sandbox_id, "dirs"),
                          query={"path": self._path(path), "parents": True if parents else None},
                          ok=(201,))["path"]

    # ---- workspace archives -----------------------------------------------------------------

    def persist_workspace(self, sandbox_id: str) -> bytes:
        """The workspace as a tar, in the OpenAI Agents SDK's portable format."""
        return self.call("GET", "/v1/sandboxes/%s/workspace" % _segment(sandbox_id, "sandbox id")).body

    def hydrate_workspace(self, sandbox_id: str, archive: Union[bytes, bytearray, BinaryIO], *,
                          max_input_bytes: Optional[int] = None,
                          max_extracted_bytes: Optional[int] = None,
                          max_members: Optional[int] = None) -> Hydrated:
        """Replace the workspace's contents with a tar (plain or gzip).

        airlockd refuses, before writing anything, archives with absolute or
        ``..`` members, escaping links, devices and the like
        (:class:`~airlock_client.errors.InvalidArgument`) and ones over a
        limit (:class:`~airlock_client.errors.TooLarge`).
        """
        body = archive if hasattr(archive, "read") else bytes(cast(bytes, archive))
        return cast(Hydrated, self._json(
            "PUT", "/v1/sandboxes/%s/workspace" % _segment(sandbox_id, "sandbox id"),
            cast(Body, body),
            query={"max_input_bytes": _nonneg(max_input_bytes, "max_input_bytes"),
                   "max_extracted_bytes": _nonneg(max_extracted_bytes, "max_extracted_bytes"),
                   "max_members": _nonneg(max_members, "max_members")},
            headers={"Content-Type": "application/x-tar"}))

    # ---- snapshots --------------------------------------------------------------------------

    def snapshot(self, sandbox_id: str, processes: bool = True) -> SnapshotSummary:
        """Snapshot a sandbox (workspace, writable layer and, with ``processes``, CRIU images)."""
        return cast(SnapshotSummary, self._json(
            "POST", "/v1/sandboxes/%s/snapshots" % _segment(sandbox_id, "sandbox id"),
            {"processes": bool(processes)}, ok=(201,)))

    def snapshots(self) -> List[SnapshotSummary]:
        """The snapshot store, oldest first."""
        return cast(List[SnapshotSummary], self._json("GET", "/v1/snapshots")["snapshots"])

    def delete_snapshot(self, snapshot_id: str) -> Deleted:
        """Remove a snapshot from the store."""
        return cast(Deleted, self._json("DELETE", "/v1/snapshots/" + _segment(snapshot_id, "snapshot id")))


def exec_request(argv: Optional[Sequence[str]] = None, *, command: Optional[str] = None,
                 cwd: Optional[str] = None, env: Optional[Mapping[str, str]] = None,
                 stdin: Optional[Data] = None, keep_stdin_open: bool = False,
                 timeout_ms: Optional[int] = None, yield_ms: Optional[int] = None,
                 max_output_bytes: Optional[int] = None, binary: bool = False,
                 user: Optional[str] = None, tty: bool = False, rows: Optional[int] = None,
                 cols: Optional[int] = None) -> Dict[str, Any]:
    """The JSON body of an exec (also usable as ``create(exec=...)``)."""
    if (argv is None) == (command is None):
        raise ValueError("give exactly one of argv (a list) or command (a shell string)")
    body: Dict[str, Any] = {}
    if argv is not None:
        if isinstance(argv, str) or not argv or not all(isinstance(a, str) for a in argv):
            raise ValueError("argv must be a non-empty list of strings, not %r" % (argv,))
        body["argv"] = list(argv)
    else:
        if not isinstance(command, str):
            raise ValueError("command must be a string, not %r" % (command,))
        body["command"] = command
    if cwd is not None:
        body["cwd"] = cwd
    if env:
        body["env"] = dict(env)
    if stdin is not None:
        if isinstance(stdin, str):
            body["stdin"] = stdin
        else:
            body["stdin_base64"] = base64.b64encode(_bytes(stdin)).decode()
    if keep_stdin_open:
        body["keep_stdin_open"] = True
    for key, value in (("timeout_ms", timeout_ms), ("yield_ms", yield_ms),
                       ("max_output_bytes", max_output_bytes)):
        if _nonneg(value, key) is not None:
            body[key] = value
    if binary:
        body["encoding"] = "base64"
    if user is not None:
        if not isinstance(user, str) or not user:
            raise ValueError("user must be \"UID[:GID]\", not %r" % (user,))
        body["user"] = user
    if (rows is None) != (cols is None):
        raise ValueError("give both rows and cols of the terminal, or neither")
    if rows is not None and not tty:
        raise ValueError("rows and cols are the size of a terminal: they need tty=True")
    if tty:
        body["tty"] = True
        if rows is not None:
            body["rows"] = rows
            body["cols"] = cols
    return body


class Process:
    """A command started with :meth:`AirlockClient.start`.

    ``first`` is the start's answer; :meth:`stream` yields output as it
    comes, :meth:`write` feeds stdin, :meth:`wait` collects the rest.
    """

    def __init__(self, client: AirlockClient, sandbox_id: str, first: ExecResult, binary: bool):
        self.client = client
        self.sandbox_id = sandbox_id
        self.first = first
        self.binary = binary
        self.id = first.process_id  # None when it ended within the start
        self.result: Optional[ExecResult] = None if first.running else first
        self._pending: List[ExecResult] = [first]

    @property
    def running(self) -> bool:
        return self.result is None

    def _take(self, r: ExecResult) -> ExecResult:
        if not r.running:
            self.result = r
        return r

    def poll(self, yield_ms: int = 0) -> ExecResult:
        """New output, waiting up to ``yield_ms`` for the end."""
        if self.result is not None:
            raise ValueError("process has ended")
        return self._take(self.client.poll(self.sandbox_id, cast(str, self.id), yield_ms, self.binary))

    def write(self, data: Data, close: bool = False, yield_ms: int = 0) -> ExecResult:
        """Write to stdin; answers the output gathered within ``yield_ms``."""
        if self.result is not None:
            raise ValueError("process has ended")
        return self._take(self.client.write_stdin(self.sandbox_id, cast(str, self.id), data,
                                                  close, yield_ms, self.binary))

    def close_stdin(self, yield_ms: int = 0) -> ExecResult:
        """Close stdin (end of input for the command)."""
        if self.result is not None:
            raise ValueError("process has ended")
        return self._take(self.client.write_stdin(self.sandbox_id, cast(str, self.id), None,
                                                  True, yield_ms, self.binary))

    def resize(self, rows: int, cols: int) -> None:
        """Set the window size of its terminal (a ``tty=True`` start)."""
        if self.result is not None:
            raise ValueError("process has ended")
        self.client.resize(self.sandbox_id, cast(str, self.id), rows, cols)

    def kill(self, signal: str = "KILL") -> None:
        """Signal the process's group."""
        if self.result is None:
            self.client.kill(self.sandbox_id, cast(str, self.id), signal)

    def stream(self, slice_ms: int = 1000, deadline_s: Optional[float] = None
               ) -> Iterator[Tuple[str, Union[str, bytes]]]:
        """Yield ``("stdout"|"stderr", chunk)`` as output comes, until the process ends.

        The output already answered by the start comes first.  Raises
        ``TimeoutError`` after ``deadline_s`` (the process keeps running).
        """
        end = None if deadline_s is None else time.monotonic() + deadline_s
        while True:
            chunks = self._pending or [self.poll(slice_ms)]
            self._pending = []
            for r in chunks:
                if r.stdout:
                    yield "stdout", r.stdout
                if r.stderr:
                    yield "stderr", r.stderr
            if self.result is not None:
                return
            if end is not None and time.monotonic() > end:
                raise TimeoutError("process %s still running after %ss" % (self.id, deadline_s))

    def wait(self, deadline_s: Optional[float] = None, slice_ms: int = 1000) -> ExecResult:
        """Wait for the end; answers the final result with all output not yet streamed."""
        out: List[Any] = []
        err: List[Any] = []
        for name, chunk in self.stream(slice_ms, deadline_s):
            (out if name == "stdout" else err).append(chunk)
        final = cast(ExecResult, self.result)
        join = b"".join if self.binary else "".join
        return ExecResult(running=False, exit_code=final.exit_code, signal=final.signal,
                          timed_out=final.timed_out, stdout=join(out), stderr=join(err),
                          stdout_truncated=final.stdout_truncated,
                          stderr_truncated=final.stderr_truncated,
                          duration_ms=final.duration_ms, process_id=self.id, raw=final.raw)


class SandboxHandle:
    """One sandbox: the client's per-sandbox calls without the id.

    As a context manager it deletes the sandbox on exit.  ``info`` is what
    the create (or inspect) answered.
    """

    def __init__(self, client: AirlockClient, info: Mapping[str, Any]):
        self.client = client
        self.info = dict(info)
        self.id: str = self.info["id"]

    def __enter__(self) -> "SandboxHandle":
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.delete()
        except AirlockError:
            if exc[0] is None:
                raise

    def __repr__(self) -> str:
        return "<SandboxHandle %s>" % self.id

    def inspect(self) -> Sandbox:
        return self.client.inspect(self.id)

    def delete(self, wait: bool = True) -> Deleted:
        return self.client.delete(self.id, wait)

    def exec(self, argv: Optional[Sequence[str]] = None, **kw: Any) -> ExecResult:
        return self.client.exec(self.id, argv, **kw)

    def start(self, argv: Optional[Sequence[str]] = None, **kw: Any) -> Process:
        return self.client.start(self.id, argv, **kw)

    def read_file(self, path: str) -> bytes:
        return self.client.read_file(self.id, path)

    def write_file(self, path: str, data: Union[Data, BinaryIO], **kw: Any) -> FileWritten:
        return self.client.write_file(self.id, path, data, **kw)

    def delete_file(self, path: str, recursive: bool = False) -> None:
        self.client.delete_file(self.id, path, recursive)

    def list_dir(self, path: str) -> DirListing:
        return self.client.list_dir(self.id, path)

    def make_dir(self, path: str, parents: bool = False) -> str:
        return self.client.make_dir(self.id, path, parents)

    def persist_workspace(self) -> bytes:
        return self.client.persist_workspace(self.id)

    def hydrate_workspace(self, archive: Union[bytes, bytearray, BinaryIO], **kw: Any) -> Hydrated:
        return self.client.hydrate_workspace(self.id, archive, **kw)

    def snapshot(self, processes: bool = True) -> SnapshotSummary:
        return self.client.snapshot(self.id, processes)

    def events(self, since: int = 0) -> Events:
        return self.client.events(self.id, since)
