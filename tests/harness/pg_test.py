# SPDX-License-Identifier: Apache-2.0
"""A throw-away PostgreSQL for the run-queue tests: Debian's PostgreSQL 15
(initdb, pg_ctl) on a Unix socket in a temporary directory, no TCP port.

PostgreSQL refuses to run as root; as root the cluster belongs to the
`postgres` user that Debian's package creates (its data directory is chowned
to it and its commands run with its uid).  stop() removes everything.
"""

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time

PG_BINDIRS = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
DB_USER = "airlock"


def pg_bindir():
    for d in PG_BINDIRS:
        if os.access(os.path.join(d, "pg_ctl"), os.X_OK):
            return d
    return None


class Postgres:
    def __init__(self, parent=None):
        self.bindir = pg_bindir()
        if not self.bindir:
            raise AssertionError("PostgreSQL server binaries are missing: apt-get install "
                                 "postgresql (scripts/setup.sh)")
        self.base = tempfile.mkdtemp(prefix="airlock-pg-", dir=parent)
        os.chmod(self.base, 0o755)
        self.data = os.path.join(self.base, "data")
        self.sock = os.path.join(self.base, "sock")
        self.log = os.path.join(self.base, "postgres.log")
        os.mkdir(self.sock)
        self.user = None
        if os.geteuid() == 0:
            try:
                self.user = pwd.getpwnam("postgres")
            except KeyError:
                raise AssertionError("running as root needs the postgres user (the "
                                     "postgresql package makes it)")
            for p in (self.base, self.sock):
                os.chown(p, self.user.pw_uid, self.user.pw_gid)
        self.url = "postgresql:///postgres?host=%s&user=%s" % (self.sock, DB_USER)

    def _run(self, args, check=True, timeout=60):
        kw = {}
        if self.user:
            kw = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        res = subprocess.run([os.path.join(self.bindir, args[0])] + args[1:],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, cwd=self.base, timeout=timeout, **kw)
        if check and res.returncode != 0:
            raise AssertionError("%s failed (%d):\n%s\n--- log ---\n%s" % (
                " ".join(args), res.returncode, res.stdout.decode(errors="replace"),
                self.log_text()[-3000:]))
        return res

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def start(self):
        if not os.path.isdir(self.data):
            self._run(["initdb", "-D", self.data, "-U", DB_USER, "-A", "trust", "-E", "UTF8",
                       "--no-sync", "--no-instructions"])
        # No TCP at all; fsync off: a test cluster that is only ever stopped cleanly.
        opts = "-c listen_addresses='' -k %s -c fsync=off -c max_connections=200" % self.sock
        self._run(["pg_ctl", "-D", self.data, "-l", self.log, "-o", opts, "-w", "-t", "60",
                   "start"])
        return self

    def stop(self, mode="fast"):
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self._run(["pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop"],
                      check=False)

    def restart(self, pause=0.0):
        self.stop()
        time.sleep(pause)
        self.start()

    def sql(self, query):
        """psql's unaligned output of query (as the test's superuser)."""
        psql = os.path.join(self.bindir, "psql")
        res = subprocess.run([psql, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", self.url,
                              "-c", query], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, timeout=60)
        if res.returncode != 0:
            raise AssertionError("psql %r: %s" % (query, res.stderr.decode(errors="replace")))
        return res.stdout.decode()

    def destroy(self):
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)
