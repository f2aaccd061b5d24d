#!/usr/bin/env python3
# Writes the seed corpus of the tar-extract fuzz target (corpus/tar-extract):
# small workspace archives that tar_extract accepts, and one of each kind it
# must refuse.  Run again after changing it; the output is deterministic
# (fixed times and owners), so the committed files only change with it.
import gzip
import io
import os
import sys
import tarfile

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "tar-extract")


def member(name, kind=tarfile.REGTYPE, data=b"", mode=0o644, **kw):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.mtime = 1700000000
    ti.uid = kw.pop("uid", 1000)
    ti.gid = kw.pop("gid", 1000)
    ti.uname = ti.gname = ""
    for k, v in kw.items():
        setattr(ti, k, v)
    if kind == tarfile.REGTYPE:
        ti.size = len(data)
    return ti, (data if kind == tarfile.REGTYPE else None)


def tar(name, members, fmt=tarfile.PAX_FORMAT, compress=False):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for ti, data in members:
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    # Without the padding to tar's 10 KiB records: two zero blocks end it.
    data = buf.getvalue().rstrip(b"\0")
    data += b"\0" * (-len(data) % 512 + 1024)
    if compress:
        data = gzip.compress(data, mtime=0)
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)


os.makedirs(out, exist_ok=True)
workspace = [
    member("./", tarfile.DIRTYPE, mode=0o755),
    member("src/", tarfile.DIRTYPE, mode=0o755),
    member("src/main.c", data=b"int main(void) { return 0; }\n"),
    member("run.sh", data=b"#!/bin/sh\necho hi\n", mode=0o755),
    member("src/link", tarfile.SYMTYPE, linkname="main.c"),
    member("src/up", tarfile.SYMTYPE, linkname="../run.sh"),
    member("hard", tarfile.LNKTYPE, linkname="run.sh"),
    member("empty", data=b""),
]
tar("workspace.tar", workspace)
tar("workspace-ustar.tar", workspace, fmt=tarfile.USTAR_FORMAT)
tar("workspace.tar.gz", workspace, compress=True)
tar("long-name.tar", [member("d/" + "n" * 200, data=b"x"), member("x" * 120 + "/y", data=b"y")],
    fmt=tarfile.GNU_FORMAT)
tar("owners.tar", [member("root-owned", data=b"r", uid=0, gid=0),
                   member("far-owner", data=b"f", uid=70000, gid=4000000)])
tar("pax-xattr.tar", [member("x", data=b"x", pax_headers={"SCHILY.xattr.user.k": "v"})])
# Each of these must be refused.
tar("absolute.tar", [member("/etc/airlock-fuzz", data=b"x")])
tar("dotdot.tar", [member("a/../../escape", data=b"x")])
tar("symlink-escape.tar", [member("l", tarfile.SYMTYPE, linkname="../../etc"),
                           member("l/passwd", data=b"x")])
tar("symlink-absolute.tar", [member("l", tarfile.SYMTYPE, linkname="/etc")])
tar("hardlink-outside.tar", [member("h", tarfile.LNKTYPE, linkname="../outside/f")])
tar("hardlink-missing.tar", [member("h", tarfile.LNKTYPE, linkname="nothing")])
tar("device.tar", [member("null", tarfile.CHRTYPE, devmajor=1, devminor=3)])
tar("fifo.tar", [member("fifo", tarfile.FIFOTYPE)])
tar("setuid.tar", [member("su", data=b"x", mode=0o4755)])
tar("setgid-dir.tar", [member("sg/", tarfile.DIRTYPE, mode=0o2755)])
with open(os.path.join(out, "truncated.tar"), "wb") as f:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        ti, data = member("big", data=b"z" * 4096)
        t.addfile(ti, io.BytesIO(data))
    f.write(buf.getvalue()[:1024])
with open(os.path.join(out, "not-a-tar.txt"), "wb") as f:
    f.write(b"hello, this is not an archive\n")
sys.exit(0)
