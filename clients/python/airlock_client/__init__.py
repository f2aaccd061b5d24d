# SPDX-License-Identifier: Apache-2.0
"""A client for airlockd's HTTP API over its Unix socket, standard library only.

See :class:`AirlockClient`; docs/api.md and docs/openapi.yaml describe the API.
"""

from .client import (DEFAULT_SOCKET, AirlockClient, ExecResult, Process, SandboxHandle,
                     exec_request)
from .errors import (AirlockError, Conflict, Forbidden, InternalError, InvalidArgument,
                     MethodNotAllowed, NotFound, ProtocolError, TooLarge, Unavailable)
from .transport import Response, Transport, UnixHTTPConnection

__all__ = [
    "AirlockClient", "SandboxHandle", "Process", "ExecResult", "exec_request", "DEFAULT_SOCKET",
    "AirlockError", "InvalidArgument", "Forbidden", "NotFound", "MethodNotAllowed", "Conflict",
    "TooLarge", "Unavailable", "InternalError", "ProtocolError",
    "Response", "Transport", "UnixHTTPConnection",
]
__version__ = "0.1.0"
