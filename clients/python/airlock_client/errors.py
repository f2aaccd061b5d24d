# SPDX-License-Identifier: Apache-2.0
"""Errors raised by the client.

airlockd answers every failure with ``{"error": {"code", "message"}}`` and an
HTTP status; each documented ``code`` has its own exception class so that a
caller can catch, say, :class:`NotFound` without comparing strings.
"""

from __future__ import annotations

from typing import Dict, Optional, Type


class AirlockError(Exception):
    """A request that airlockd refused or failed.

    ``status`` is the HTTP status (0 when no answer came), ``code`` airlockd's
    error code (``invalid_argument``, ``not_found``, ...), ``message`` its
    explanation, ``method``/``path`` the request that failed.
    """

    def __init__(self, status: int, code: str, message: str, method: str = "", path: str = ""):
        self.status = status
        self.code = code
        self.message = message
        self.method = method
        self.path = path
        where = ("%s %s: " % (method, path)) if method else ""
        super().__init__("%sHTTP %d %s: %s" % (where, status, code, message))


class InvalidArgument(AirlockError):
    """400: the request was malformed or named something that cannot be."""


class Forbidden(AirlockError):
    """403: the peer may not use airlockd, or may not name host paths."""


class NotFound(AirlockError):
    """404: unknown sandbox, process, snapshot, path or route."""


class MethodNotAllowed(AirlockError):
    """405: the route exists but not with this method."""


class Conflict(AirlockError):
    """409: the object exists already or is held by something else."""


class TooLarge(AirlockError):
    """413: a body, archive or output over its limit."""


class Unavailable(AirlockError):
    """503: the sandbox or process is not running (any more)."""


class InternalError(AirlockError):
    """500: airlockd failed; the message names what."""


class ProtocolError(AirlockError):
    """An answer that is not what the API promises (not JSON, wrong shape)."""


ERRORS_BY_CODE: Dict[str, Type[AirlockError]] = {
    "invalid_argument": InvalidArgument,
    "forbidden": Forbidden,
    "not_found": NotFound,
    "method_not_allowed": MethodNotAllowed,
    "conflict": Conflict,
    "too_large": TooLarge,
    "unavailable": Unavailable,
    "internal": InternalError,
}


def error_for(status: int, code: Optional[str], message: str, method: str = "",
              path: str = "") -> AirlockError:
    """The exception for an error answer: by airlockd's code, else by status."""
    cls = ERRORS_BY_CODE.get(code or "")
    if cls is None:
        by_status = {400: InvalidArgument, 403: Forbidden, 404: NotFound, 405: MethodNotAllowed,
                     409: Conflict, 413: TooLarge, 503: Unavailable}
        cls = by_status.get(status, InternalError if status >= 500 else AirlockError)
    return cls(status, code or "http_%d" % status, message, method, path)
