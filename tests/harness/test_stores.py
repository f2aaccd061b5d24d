# SPDX-License-Identifier: Apache-2.0
"""Remote snapshot stores (docs/storage.md) against real servers on loopback.

* S3 and R2: s3rver (npm), behind s3_sigv4_proxy.py, which checks every
  request's SigV4 signature (s3rver checks only the access key id); the
  official client's requests pass that check too.
* Azure Blob: azurite (Microsoft's emulator, npm), Shared Key.
* GCS: tests/harness/gcs_server.py, which checks GOOG4-HMAC-SHA256 signatures on
  its XML API and serves the JSON API that the official `@google-cloud/storage`
  client uses: every call of that client made here (upload, download, metadata,
  list) is answered by it, so the client itself vouches for the server.

For each store:
* what airlock-harness writes (a 12 MB object, so in parts) is read back by
  the service's official client (`@aws-sdk/client-s3`, `@azure/storage-blob`,
  `@google-cloud/storage`) with the same bytes and SHA-256 metadata, and what
  that client writes is read by the harness;
* a damaged object (content that does not match its SHA-256) and a missing
  one are refused with the object's name, and leave no file; a wrong secret
  is refused by the server;
* a run is killed mid-way together with its airlockd, airlockd's state
  directory and the run's local workspace archives are deleted, a fresh
  airlockd (another state directory) is started, and `resume` completes the
  run from the store: every logged tool call ran once, the audit verifies,
  and the store holds the run's task, RunState copy and archive.  On S3 and
  Azure, a variant takes a process snapshot after every turn: its export
  stream goes to the store, and the fresh airlockd imports it and restores
  from it.
"""

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness_test as ht  # noqa: E402
import test_resume as tr  # noqa: E402
from harness_test import at  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_MODULES = os.path.join(os.path.dirname(HERE), "node_modules")
CLIENT = os.path.join(HERE, "store_client.js")
GCS_SERVER = os.path.join(HERE, "gcs_server.py")
S3_PROXY = os.path.join(HERE, "s3_sigv4_proxy.py")
# Azurite's well-known development account (documented by Microsoft).
AZ_ACCOUNT = "devstoreaccount1"
AZ_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
S3_KEY = ("S3RVER", "S3RVER")  # s3rver's built-in key pair
GCS_KEY = ("GOOG1EAIRLOCKTEST", "gcs-test-secret-" + os.urandom(8).hex())
GCS_SA = "airlock-store@airlock-test.iam.gserviceaccount.com"
BIG = 12 * 1000 * 1000  # over the 8 MiB part size: a multipart / block-list upload


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, log, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError("server exited %s:\n%s" % (proc.returncode, open(log).read()[-3000:]))
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("server on port %d did not come up:\n%s" % (port, open(log).read()[-3000:]))


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class StoreTest(ht.HarnessTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for pkg in ("s3rver", "azurite", "@aws-sdk/client-s3", "@azure/storage-blob",
                    "@google-cloud/storage"):
            if not os.path.isdir(os.path.join(NODE_MODULES, pkg)):
                raise AssertionError("npm package %s is missing: cd tests && npm ci" % pkg)
        cls.procs = []
        cls.addClassCleanup(cls.stop_servers)
        srv = os.path.join(cls.workdir, "servers")
        os.makedirs(srv)
        s3_port, az_port, gcs_port, s3rver_port = free_port(), free_port(), free_port(), free_port()
        cls.start_server("s3rver", [os.path.join(NODE_MODULES, ".bin", "s3rver"), "-d",
                                    os.path.join(srv, "s3"), "-a", "127.0.0.1", "-p", str(s3rver_port),
                                    "--configure-bucket", "airlock-s3",
                                    "--configure-bucket", "airlock-r2"], s3rver_port)
        # s3rver does not check SigV4 signatures: this proxy does, for every client.
        cls.start_server("s3-sigv4-proxy", [sys.executable, S3_PROXY, str(s3_port), str(s3rver_port),
                                            "%s:%s" % S3_KEY], s3_port)
        cls.start_server("azurite", [os.path.join(NODE_MODULES, ".bin", "azurite-blob"),
                                     "--blobHost", "127.0.0.1", "--blobPort", str(az_port),
                                     "--inMemoryPersistence", "--disableTelemetry"], az_port)
        cls.gcs_sa_file = cls.service_account(srv, gcs_port)
        cls.start_server("gcs", [sys.executable, GCS_SERVER, str(gcs_port), "airlock-gcs",
                                 "%s:%s" % GCS_KEY, "--service-account",
                                 "%s:%s" % (GCS_SA, os.path.join(srv, "sa.pub"))], gcs_port)
        s3_ep = "http://127.0.0.1:%d" % s3_port
        cls.stores = {
            "s3": {"type": "s3", "bucket": "airlock-s3", "endpoint": s3_ep, "region": "us-east-1"},
            "r2": {"type": "r2", "bucket": "airlock-r2", "endpoint": s3_ep},
            "gcs": {"type": "gcs", "bucket": "airlock-gcs",
                    "endpoint": "http://127.0.0.1:%d" % gcs_port},
            "azure_blob": {"type": "azure_blob", "container": "airlock-az",
                           "endpoint": "http://127.0.0.1:%d/%s" % (az_port, AZ_ACCOUNT)},
        }
        secrets = {"s3": {"access_key_id": S3_KEY[0], "secret_access_key": S3_KEY[1]},
                   "r2": {"access_key_id": S3_KEY[0], "secret_access_key": S3_KEY[1]},
                   "gcs": {"access_key_id": GCS_KEY[0], "secret_access_key": GCS_KEY[1]},
                   "azure_blob": {"account_name": AZ_ACCOUNT, "account_key": AZ_KEY}}
        cls.creds = cls.write_creds(srv, "credentials.json", {"stores": secrets})
        bad = json.loads(json.dumps(secrets))
        bad["s3"]["secret_access_key"] = bad["r2"]["secret_access_key"] = "wrong"
        bad["gcs"]["secret_access_key"] = "wrong"
        bad["azure_blob"]["account_key"] = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk="
        cls.bad_creds = cls.write_creds(srv, "bad-credentials.json", {"stores": bad})
        cls.client_cfg = {}
        for kind, block in cls.stores.items():
            cfg = {"type": kind, "endpoint": block["endpoint"],
                   "bucket": block.get("bucket") or block.get("container"),
                   "region": "auto" if kind == "r2" else "us-east-1"}
            cfg.update(secrets[kind])
            path = os.path.join(srv, "client-%s.json" % kind)
            with open(path, "w") as f:
                json.dump(cfg, f)
            cls.client_cfg[kind] = path
        cls.official(cls.client_cfg["azure_blob"], "mkbucket")

    @classmethod
    def service_account(cls, d, port):
        """A service account key file as Google issues them, its key made here and its
        token_uri the test server's; the server gets the public key."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        with open(os.path.join(d, "sa.pub"), "wb") as f:
            f.write(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
        cls.gcs_sa_canary = pem.splitlines()[5]
        path = os.path.join(d, "sa.json")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            json.dump({"type": "service_account", "project_id": "airlock-test",
                       "private_key_id": os.urandom(20).hex(), "private_key": pem,
                       "client_email": GCS_SA, "client_id": "1234567890",
                       "token_uri": "http://127.0.0.1:%d/token" % port}, f)
        return path

    @classmethod
    def write_creds(cls, d, name, content):
        path = os.path.join(d, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(content, f)
        return path

    @classmethod
    def start_server(cls, name, argv, port):
        log = os.path.join(cls.workdir, "servers", name + ".log")
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                    start_new_session=True, cwd=os.path.join(cls.workdir, "servers"))
        cls.procs.append(proc)
        wait_port(port, proc, log)

    @classmethod
    def stop_servers(cls):
        for p in cls.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()

    @staticmethod
    def official(cfg, *args):
        proc = subprocess.run(["node", CLIENT, cfg] + list(args), capture_output=True, text=True,
                              timeout=120)
        if proc.returncode != 0:
            raise AssertionError("official client %s failed:\n%s" % (args, proc.stderr[-3000:]))
        return json.loads(proc.stdout.strip().splitlines()[-1])

    # ---- helpers ----

    def store_task(self, kind, prefix, responses=None, **fields):
        block = dict(self.stores[kind], prefix=prefix)
        snap = {"store": block}
        return self.replay_task(responses or [tr.TURNS[-1]], snapshot=snap, **fields)

    def store_cmd(self, task, *args, creds=None):
        return ht.harness(["store"] + list(args) + ["--credentials", creds or self.creds], timeout=300)

    def key_of(self, kind, prefix, name):
        return "%s/%s" % (prefix, name)

    def url_of(self, kind, prefix, name):
        block = self.stores[kind]
        return "%s://%s/%s/%s" % (kind, block.get("bucket") or block.get("container"), prefix, name)

    # ---- the official clients ----

    def check_official_clients(self, kind):
        prefix = "xcheck/" + kind
        task = self.store_task(kind, prefix)
        d = self.tmpdir("objs")
        big = os.path.join(d, "big.bin")
        with open(big, "wb") as f:
            f.write(os.urandom(BIG))
        digest = sha256_file(big)

        # Harness writes (in parts), the official client reads.
        res = self.store_cmd(task, "put", task, "from-harness/big.bin", big)
        self.assertEqual(res.returncode, 0, res)
        self.assertIn("%s sha256 %s" % (self.url_of(kind, prefix, "from-harness/big.bin"), digest),
                      res.stdout)
        self.assertRegex(res.stderr, r"(part|block) 2 of 2 sent", "a 12 MB object goes in parts")
        got = os.path.join(d, "official.bin")
        meta = self.official(self.client_cfg[kind], "get",
                             self.key_of(kind, prefix, "from-harness/big.bin"), got)
        self.assertEqual(meta, {"sha256": digest, "size": BIG})
        self.assertEqual(sha256_file(got), digest)

        # The official client writes, the harness reads and verifies.
        small = os.path.join(d, "small.txt")
        with open(small, "wb") as f:
            f.write(b"written by the official client\n" * 1000)
        self.official(self.client_cfg[kind], "put", self.key_of(kind, prefix, "from-official/small.txt"), small)
        out = os.path.join(d, "harness-got.txt")
        res = self.store_cmd(task, "get", task, "from-official/small.txt", out)
        self.assertEqual(res.returncode, 0, res)
        self.assertIn("verified", res.stdout)
        with open(out, "rb") as a, open(small, "rb") as b:
            self.assertEqual(a.read(), b.read())

        # A damaged object: its content does not match the SHA-256 it carries.
        self.official(self.client_cfg[kind], "put", self.key_of(kind, prefix, "damaged.bin"), small, digest)
        out = os.path.join(d, "damaged-got.bin")
        res = self.store_cmd(task, "get", task, "damaged.bin", out)
        self.assertEqual(res.returncode, 1, res)
        self.assertIn(self.url_of(kind, prefix, "damaged.bin") + ": refused: damaged object", res.stderr)
        self.assertFalse(os.path.exists(out), "a refused object leaves no file")
        self.assertEqual([n for n in os.listdir(d) if ".part-" in n], [], "no partial download left")

        # A missing object names itself.
        res = self.store_cmd(task, "get", task, "never-written.bin", out)
        self.assertEqual(res.returncode, 1, res)
        self.assertIn("key %s: no such object" % self.key_of(kind, prefix, "never-written.bin"), res.stderr)

        # The server checks the signature: a wrong secret gets nothing.
        res = self.store_cmd(task, "get", task, "from-official/small.txt", out, creds=self.bad_creds)
        self.assertEqual(res.returncode, 1, res)
        self.assertIn("HTTP 403", res.stderr, res)
        self.assertFalse(os.path.exists(out))

    # ---- kill the run and its airlockd, lose the local state, resume ----

    def replace_daemon(self, kind):
        """Kill airlockd (its sandboxes destroyed first, as a lost machine takes them along),
        delete its state directory and start a fresh one on another state directory."""
        ids = set(self.sandbox_ids())
        self.destroy_all()
        self.created.update(ids)
        old = self.daemon.state_dir
        self.daemon.stop(signal.SIGKILL)
        self.client.close()
        problems = [p for p in at.leftovers(old, ids, self.daemon.socket_path)
                    if not p.startswith("cgroup root left")]
        self.assertEqual(problems, [], "a killed airlockd with no sandbox left nothing but its cgroup root")
        # The cgroup root of a daemon killed with SIGKILL is empty; it goes with the machine.
        at.force_cleanup(old, ids, self.daemon.socket_path)
        shutil.rmtree(old)
        self.daemon.state_dir = os.path.join(self.daemon.workdir, "state-after-" + kind)
        os.unlink(self.daemon.socket_path)
        self.daemon.start()
        type(self).client = at.Client(self.daemon.socket_path, self.created)
        self.assertEqual(self.sandbox_ids(), [])

    def kill_and_resume(self, kind, processes=False, damage_snapshot=False):
        """processes: also a process snapshot after every turn, exported to the store and
        imported by the fresh airlockd at resume.  damage_snapshot: that object is replaced
        (same sha256 metadata, other bytes) before the resume, which must refuse it by name
        and fall back to the workspace archive."""
        prefix = "runs/" + kind + ("-snap" if processes else "")
        task = self.store_task(kind, prefix, responses=tr.TURNS)
        if processes:
            with open(task) as f:
                t = json.load(f)
            t["snapshot"].update({"every_turns": 1, "processes": True})
            with open(task, "w") as f:
                json.dump(t, f)
        args = ["--credentials", self.creds]
        recorded = {}
        if processes:
            # A resume does not go back to a turn's snapshot a kill interrupted: a
            # run killed once, late enough that a snapshot is in the store.
            for n in range(14, 120, 3):
                run_dir = self.new_run_dir()
                res = self.run_task(task, run_dir, env={ht.KILL_HOOK: str(n)}, args=args)
                self.assertTrue(res.killed, res)
                state = ht.load_state(run_dir)
                sb = state.get("sandbox") or {}
                if sb.get("snapshot_id") and sb.get("store_archive") and \
                        (sb.get("store_snapshot") or {}).get("snapshot_id") == sb["snapshot_id"]:
                    break
                self.destroy_all()
            recorded.update(ht.recorded_results(state))
        else:
            run_dir = self.new_run_dir()
            res = self.run_task(task, run_dir, env={ht.KILL_HOOK: "14"}, args=args)
            self.assertTrue(res.killed, res)
            # Killed again (at another write each time) until an archive is in the store
            # and the run is not done.
            for k in range(3, 40):
                state = ht.load_state(run_dir)
                recorded.update(ht.recorded_results(state))
                if (state.get("sandbox") or {}).get("store_archive") and \
                        state.get("status") != "completed":
                    break
                res = self.resume(run_dir, env={ht.KILL_HOOK: str(k)}, args=args)
                self.assertTrue(res.killed, res)
        self.assertNotEqual(state.get("status"), "completed")
        if processes:
            self.assertEqual(state["sandbox"]["store_snapshot"]["snapshot_id"],
                             state["sandbox"]["snapshot_id"])
        rec = state["sandbox"]["store_archive"]
        self.assertEqual(rec["name"], state["sandbox"]["workspace_archive"])
        run_id = state["run_id"]

        self.replace_daemon(kind)
        for name in os.listdir(os.path.join(run_dir, "workspace")):
            os.unlink(os.path.join(run_dir, "workspace", name))

        if damage_snapshot:
            srec = state["sandbox"]["store_snapshot"]
            bad = os.path.join(self.tmpdir("bad"), "bad.tar")
            with open(bad, "wb") as f:
                f.write(b"not the snapshot" * 4096)
            snap_key = "%s/%s/%s" % (prefix, state["run_id"], srec["name"])
            self.official(self.client_cfg[kind], "put", snap_key, bad, srec["sha256"])

        res = self.resume(run_dir, args=args)
        self.assertEqual(res.returncode, 0, res)
        if damage_snapshot:
            self.assertIn("%s://%s/%s: refused: damaged object" % (
                kind, self.stores[kind].get("bucket") or self.stores[kind].get("container"),
                snap_key), res.stderr)
            self.assertIn("using the workspace archive", res.stderr)
            self.assertIn("resume: fetched workspace archive %s from the store" % rec["name"],
                          res.stdout)
            self.assertIn("resume: recreated sandbox from manifest and workspace archive",
                          res.stdout)
        elif processes:
            snap = state["sandbox"]["snapshot_id"]
            self.assertIn("resume: restored sandbox from snapshot %s (imported from the store as "
                          % snap, res.stdout)
        else:
            self.assertIn("resume: fetched workspace archive %s from the store" % rec["name"],
                          res.stdout)
            self.assertIn("resume: recreated sandbox from manifest and workspace archive",
                          res.stdout)
        state = self.assertCompleted(res)
        files, calls = tr.ResumeTest.final_listing(self, state)
        self.assertEqual(set(files), {"t/a.txt", "t/d/b.txt", "t/seq.txt", "t/patched.txt", "t/joined.txt"})
        for c in tr.LOGGED_CALLS:
            self.assertGreaterEqual(calls.count(c), 1, "%s never ran: %r" % (c, calls))
            if c in recorded:
                self.assertEqual(calls.count(c), 1, "%s ran again after its result was recorded: %r"
                                 % (c, calls))
        self.assertAuditOK(run_dir)
        gets = [r["data"] for r in ht.audit_records(run_dir) if r["kind"] == "store" and r["data"]["op"] == "get"]
        if damage_snapshot:
            self.assertEqual(len(gets), 2, gets)
            self.assertIn("/snapshots/", gets[0]["object"])
            self.assertIn("refused: damaged object", gets[0]["outcome"])
            self.assertIn("/workspace/", gets[1]["object"])
            self.assertEqual(gets[1]["outcome"], "ok")
        else:
            self.assertEqual([g["outcome"] for g in gets], ["ok"])
            self.assertIn("/snapshots/" if processes else "/workspace/", gets[0]["object"])

        # No store secret is anywhere in the run: its files, the harness's output.
        secret = {"s3": S3_KEY[1], "r2": S3_KEY[1], "gcs": GCS_KEY[1], "azure_blob": AZ_KEY}[kind]
        for dirpath, _, files in os.walk(run_dir):
            for n in files:
                with open(os.path.join(dirpath, n), "rb") as f:
                    self.assertNotIn(secret.encode(), f.read(), os.path.join(dirpath, n))
        self.assertNotIn(secret, res.stdout + res.stderr)

        # The store holds the run: its task, its RunState as the run ended, its archive.
        keys = self.official(self.client_cfg[kind], "list", "%s/%s/" % (prefix, run_id))
        final = [state["sandbox"]["store_archive"]["name"]]
        if processes:
            # The last snapshot the run took (after a fallback, a new one), and no other.
            final.append(state["sandbox"]["store_snapshot"]["name"])
        self.assertEqual(keys, sorted(["%s/%s/%s" % (prefix, run_id, n)
                                       for n in ["task.json", "state.json"] + final]))
        d = self.tmpdir("fetched")
        self.official(self.client_cfg[kind], "get", "%s/%s/state.json" % (prefix, run_id),
                      os.path.join(d, "state.json"))
        with open(os.path.join(d, "state.json"), "rb") as a, \
                open(os.path.join(run_dir, "state.json"), "rb") as b:
            self.assertEqual(a.read(), b.read(), "the store's RunState copy is the final one")
        self.destroy_all()

    # ---- the tests, one pair per store ----

    def test_s3_official_client(self):
        self.check_official_clients("s3")

    def test_r2_official_client(self):
        self.check_official_clients("r2")

    def test_gcs_official_client(self):
        self.check_official_clients("gcs")

    def test_azure_blob_official_client(self):
        self.check_official_clients("azure_blob")

    def test_s3_kill_and_resume(self):
        self.kill_and_resume("s3")

    def test_r2_kill_and_resume(self):
        self.kill_and_resume("r2")

    def test_gcs_kill_and_resume(self):
        self.kill_and_resume("gcs")

    def test_azure_blob_kill_and_resume(self):
        self.kill_and_resume("azure_blob")

    def test_s3_kill_and_resume_with_process_snapshots(self):
        self.kill_and_resume("s3", processes=True)

    def test_azure_blob_kill_and_resume_with_process_snapshots(self):
        self.kill_and_resume("azure_blob", processes=True)

    def test_s3_upload_cut_by_a_kill_resumes_from_the_last_stored_archive(self):
        """The RunState names a workspace archive before its upload (store_record): a kill
        during the upload leaves it naming one the store never got.  A resume on a machine
        without that file takes the last archive that reached the store (found by the
        queue's two-node test, where a worker was killed mid-upload)."""
        kind = "s3"
        task = self.store_task(kind, "runs/cut-upload", responses=tr.TURNS)
        args = ["--credentials", self.creds]
        for n in range(8, 120):
            run_dir = self.new_run_dir()
            res = self.run_task(task, run_dir, env={ht.KILL_HOOK: str(n)}, args=args)
            self.assertTrue(res.killed, "no kill between an archive's naming and its upload "
                            "up to write %d: %r" % (n, res))
            sb = ht.load_state(run_dir).get("sandbox") or {}
            stored = (sb.get("store_archive") or {}).get("name")
            if stored and sb.get("workspace_archive") != stored:
                break
            self.destroy_all()
        named = sb["workspace_archive"]
        self.replace_daemon(kind)
        for name in os.listdir(os.path.join(run_dir, "workspace")):
            os.unlink(os.path.join(run_dir, "workspace", name))
        res = self.resume(run_dir, args=args)
        self.assertEqual(res.returncode, 0, res)
        self.assertIn("resume: workspace archive %s is not here and never reached the store; "
                      "taking %s" % (named, stored), res.stdout)
        self.assertIn("resume: fetched workspace archive %s from the store" % stored, res.stdout)
        self.assertCompleted(res)
        self.assertAuditOK(run_dir)
        self.destroy_all()

    def test_gcs_damaged_snapshot_falls_back_to_the_archive(self):
        self.kill_and_resume("gcs", processes=True, damage_snapshot=True)

    def sas(self, permissions, expires_in_s):
        """A container SAS signed by the official client (@azure/storage-blob)."""
        js = ("const b = require('@azure/storage-blob');"
              "const [a, k, c, p, e] = process.argv.slice(1);"
              "console.log(b.generateBlobSASQueryParameters({containerName: c,"
              " permissions: b.ContainerSASPermissions.parse(p),"
              " startsOn: new Date(Date.now() - 600e3),"
              " expiresOn: new Date(Date.now() + Number(e) * 1000),"
              " protocol: b.SASProtocol.HttpsAndHttp},"
              " new b.StorageSharedKeyCredential(a, k)).toString());")
        out = subprocess.run(["node", "-e", js, AZ_ACCOUNT, AZ_KEY, "airlock-az", permissions,
                              str(expires_in_s)], capture_output=True, text=True, timeout=60,
                             env=dict(os.environ, NODE_PATH=NODE_MODULES))
        self.assertEqual(out.returncode, 0, out.stderr)
        return out.stdout.strip()

    def test_azure_blob_with_a_sas_instead_of_the_account_key(self):
        """sas_token (no account key in the credentials file): azurite checks the SAS's
        signature, permissions and expiry; the official client reads what the harness put
        with it, and the harness reads what the official client put with the same SAS."""
        d = self.tmpdir("sas")
        sas = self.sas("racwdl", 3600)
        creds = self.write_creds(d, "sas.json", {"stores": {"azure_blob": {
            "account_name": AZ_ACCOUNT, "sas_token": "?" + sas}}})
        prefix = "sas"
        task = self.store_task("azure_blob", prefix)
        big = os.path.join(d, "big.bin")
        with open(big, "wb") as f:
            f.write(os.urandom(BIG))
        digest = sha256_file(big)
        res = self.store_cmd(task, "put", task, "big.bin", big, creds=creds)
        self.assertEqual(res.returncode, 0, res)
        self.assertRegex(res.stderr, r"block 2 of 2 sent")
        client = os.path.join(d, "client-sas.json")
        with open(client, "w") as f:
            json.dump({"type": "azure_blob", "endpoint": self.stores["azure_blob"]["endpoint"],
                       "bucket": "airlock-az", "sas_token": sas}, f)
        got = os.path.join(d, "official.bin")
        self.assertEqual(self.official(client, "get", prefix + "/big.bin", got),
                         {"sha256": digest, "size": BIG})
        small = os.path.join(d, "small.txt")
        with open(small, "wb") as f:
            f.write(b"put with the SAS by the official client\n")
        self.official(client, "put", prefix + "/small.txt", small)
        out = os.path.join(d, "got.txt")
        res = self.store_cmd(task, "get", task, "small.txt", out, creds=creds)
        self.assertEqual(res.returncode, 0, res)
        self.assertIn("verified", res.stdout)
        with open(out, "rb") as a, open(small, "rb") as b:
            self.assertEqual(a.read(), b.read())
        sig = urllib.parse.parse_qs(sas)["sig"][0]
        self.assertNotIn(sig, res.stdout + res.stderr)
        self.assertNotIn(urllib.parse.quote(sig, safe=""), res.stdout + res.stderr)
        # A read-only SAS reads but cannot write; an expired one does nothing.
        ro = self.write_creds(d, "ro.json", {"stores": {"azure_blob": {
            "account_name": AZ_ACCOUNT, "sas_token": self.sas("rl", 3600)}}})
        res = self.store_cmd(task, "get", task, "small.txt", out + ".ro", creds=ro)
        self.assertEqual(res.returncode, 0, res)
        res = self.store_cmd(task, "put", task, "denied.txt", small, creds=ro)
        self.assertEqual(res.returncode, 1, res)
        self.assertIn("HTTP 403", res.stderr)
        old = self.write_creds(d, "expired.json", {"stores": {"azure_blob": {
            "account_name": AZ_ACCOUNT, "sas_token": self.sas("racwdl", -60)}}})
        res = self.store_cmd(task, "get", task, "small.txt", out + ".old", creds=old)
        self.assertEqual(res.returncode, 1, res)
        self.assertIn("HTTP 403", res.stderr)
        self.assertEqual(self.official(self.client_cfg["azure_blob"], "list", prefix + "/"),
                         [prefix + "/big.bin", prefix + "/small.txt"])

    def test_gcs_with_a_service_account_key_file(self):
        """service_account_file instead of HMAC keys: the harness signs a JWT with the
        account's key, trades it at the key file's token_uri (the test server checks
        the RS256 signature against the account's public key, issuer, audience, scope,
        times) and sends the token; objects go both ways with the official client.
        A key the server does not know gets no token, and says so."""
        d = self.tmpdir("sa")
        creds = self.write_creds(d, "sa-creds.json", {"stores": {"gcs": {
            "service_account_file": self.gcs_sa_file}}})
        prefix = "sa"
        task = self.store_task("gcs", prefix)
        big = os.path.join(d, "big.bin")
        with open(big, "wb") as f:
            f.write(os.urandom(BIG))
        digest = sha256_file(big)
        res = self.store_cmd(task, "put", task, "big.bin", big, creds=creds)
        self.assertEqual(res.returncode, 0, res)
        self.assertRegex(res.stderr, r"part 2 of 2 sent")
        got = os.path.join(d, "official.bin")
        self.assertEqual(self.official(self.client_cfg["gcs"], "get", prefix + "/big.bin", got),
                         {"sha256": digest, "size": BIG})
        small = os.path.join(d, "small.txt")
        with open(small, "wb") as f:
            f.write(b"put by the official client\n")
        self.official(self.client_cfg["gcs"], "put", prefix + "/small.txt", small)
        out = os.path.join(d, "got.txt")
        res = self.store_cmd(task, "get", task, "small.txt", out, creds=creds)
        self.assertEqual(res.returncode, 0, res)
        self.assertIn("verified", res.stdout)
        self.assertNotIn(self.gcs_sa_canary, res.stdout + res.stderr)
        self.assertNotIn("ya29.", res.stdout + res.stderr)
        # Another key under the same account name: refused at the token endpoint.
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        with open(self.gcs_sa_file) as f:
            sa = json.load(f)
        sa["private_key"] = rsa.generate_private_key(65537, 2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()).decode()
        forged = os.path.join(d, "forged.json")
        with open(os.open(forged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            json.dump(sa, f)
        bad = self.write_creds(d, "forged-creds.json", {"stores": {"gcs": {
            "service_account_file": forged}}})
        res = self.store_cmd(task, "get", task, "small.txt", out + ".bad", creds=bad)
        self.assertEqual(res.returncode, 1, res)
        self.assertIn("GCS token exchange", res.stderr)
        self.assertIn("HTTP 400: invalid_grant", res.stderr)
        self.assertIn(GCS_SA, res.stderr)
        self.assertFalse(os.path.exists(out + ".bad"))

    def test_task_and_credentials_refused(self):
        # A store's secret in the task is refused; so is a store without credentials.
        task = self.replay_task([tr.TURNS[-1]], snapshot={"store": dict(
            self.stores["s3"], secret_access_key="x")})
        res = self.run_task(task, args=["--credentials", self.creds])
        self.assertEqual(res.returncode, 2, res)
        self.assertIn("secret_access_key", res.stderr)
        task = self.store_task("gcs", "p")
        empty = self.write_creds(self.tmpdir("c"), "none.json", {})
        res = self.run_task(task, args=["--credentials", empty])
        self.assertEqual(res.returncode, 2, res)
        self.assertIn("no stores.gcs access_key_id and secret_access_key", res.stderr)


if __name__ == "__main__":
    unittest.main()
