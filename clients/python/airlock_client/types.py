# SPDX-License-Identifier: Apache-2.0
"""Shapes of airlockd's JSON answers (docs/api.md, docs/openapi.yaml).

TypedDicts, so an answer stays the dict it was parsed into and a type
checker still knows its keys.  ``total=False`` where airlockd leaves keys
out depending on the request or the sandbox's state.
"""

from __future__ import annotations

from typing import Any, Dict, List, Literal, Optional, TypedDict, Union


class SeccompInfo(TypedDict):
    libseccomp: str


class CriuInfo(TypedDict):
    version: Optional[str]


class WarmPool(TypedDict):
    size: int
    ready: int
    hits: int
    misses: int


class _InfoBase(TypedDict):
    version: str
    cgroup_mode: str
    userns: bool
    seccomp: SeccompInfo
    criu: CriuInfo
    default_rootfs: str
    sandboxes: int
    reaping: int


class Info(_InfoBase, total=False):
    """``GET /v1/info``; ``warm_pool`` only with ``airlockd --warm-pool``."""

    warm_pool: WarmPool


SandboxState = Literal["running", "stopped", "removed"]


class SandboxSummary(TypedDict):
    """One sandbox as listed (also the create answer with ``view=summary``)."""

    id: str
    name: str
    state: SandboxState
    created: str
    rootfs: str


class Sandbox(SandboxSummary, total=False):
    """``GET /v1/sandboxes/{id}``: the effective isolation, read back from the kernel."""

    workspace: str
    init_pid: int
    env: List[str]
    namespaces: Dict[str, str]
    uid_map: Optional[str]
    gid_map: Optional[str]
    cgroup: Dict[str, Any]
    disk: Dict[str, Optional[int]]
    seccomp: Dict[str, Any]
    no_new_privs: bool
    capabilities: Dict[str, Any]
    mounts: List[str]
    network: Dict[str, Any]
    # A create with "exec": the command's result and whether it took the sandbox along.
    exec: Dict[str, Any]
    removed: bool


class Limits(TypedDict, total=False):
    """Resource limits of a create; sizes in bytes or as "64M"-style strings."""

    memory_bytes: int
    memory: Union[int, str]
    pids: int
    cpus: float
    disk_bytes: int
    disk: Union[int, str]


class DirEntry(TypedDict):
    name: str
    type: Literal["file", "dir", "symlink", "other"]
    size: int
    mode: str


class DirListing(TypedDict):
    path: str
    entries: List[DirEntry]


class FileWritten(TypedDict):
    path: str
    size: int


class Hydrated(TypedDict):
    workspace: str
    bytes: int
    hydrated: bool


class SnapshotSizes(TypedDict):
    workspace: int
    layer: int
    criu: int
    total: int
    written: int


class SnapshotSummary(TypedDict, total=False):
    """A snapshot in the store; a damaged one has only ``id`` and ``error``."""

    id: str
    parent: Optional[str]
    created: str
    provider: str
    processes: bool
    sandbox: Dict[str, Any]
    sizes: SnapshotSizes
    error: str


class Event(TypedDict, total=False):
    seq: int
    type: str
    time: str
    count: int
    syscall: str
    arch: str
    action: str
    pid: Optional[int]
    host_pid: int
    comm: str
    last_time: Optional[str]  # None: an "unrecorded" period still going on


class Events(TypedDict, total=False):
    """``GET /v1/sandboxes/{id}/events``."""

    id: str
    source: str
    collecting: bool
    error: str
    events: List[Event]
    denied: Dict[str, int]
    suppressed: int
    lost: int
    unrecorded_ms: int


class Deleted(TypedDict):
    id: str
    deleted: bool
