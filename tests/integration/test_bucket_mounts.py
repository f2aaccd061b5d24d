#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Bucket mounts of the manifest (s3_mount, r2_mount, azure_blob_mount and
the generic mount): airlockd mounts each with rclone on the host and binds it
into the sandbox; the keys never enter the sandbox.

Real servers on loopback, started here: s3rver (npm) behind
tests/harness/s3_sigv4_proxy.py, which checks every request's SigV4
signature against a secret unique to this run (s3rver checks only the key
id), for S3 and R2; azurite (Microsoft's emulator, npm) with an account
whose key is unique to this run, for Azure Blob.  What the sandbox writes
is read back with the official clients (@aws-sdk/client-s3,
@azure/storage-blob, through tests/harness/store_client.js) and what they
write is read in the sandbox.  GCS: tests/harness/gcs_server.py (no emulator
is packaged), which @google-cloud/storage accepts for every call it serves
(the official client drives each kind of call here too), with a Bearer token
unique to this run, and a service account whose key is made here: rclone
trades its signed JWT at the server's token endpoint.  Azure with a SAS that
@azure/storage-blob signs, instead of the account key.
"""

import base64
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import airlock_test as at

HERE = os.path.dirname(os.path.abspath(__file__))
HARNESS_TESTS = os.path.join(os.path.dirname(HERE), "harness")
NODE_MODULES = os.path.join(os.path.dirname(HERE), "node_modules")
CLIENT = os.path.join(HARNESS_TESTS, "store_client.js")
S3_PROXY = os.path.join(HARNESS_TESTS, "s3_sigv4_proxy.py")
GCS_SERVER = os.path.join(HARNESS_TESTS, "gcs_server.py")
GCS_ACCOUNT = "airlock-mounts@airlock-test.iam.gserviceaccount.com"
S3_KEY_ID = "S3RVER"  # the key id s3rver accepts; the secret is checked by the proxy
AZ_ACCOUNT = "airlockmounts"


# Signs a container SAS with the official client: node -e SAS_JS ACCOUNT KEY CONTAINER
SAS_JS = r"""
const b = require('@azure/storage-blob');
const [account, key, container] = process.argv.slice(1);
const cred = new b.StorageSharedKeyCredential(account, key);
console.log(b.generateBlobSASQueryParameters({
  containerName: container, permissions: b.ContainerSASPermissions.parse('racwdl'),
  startsOn: new Date(Date.now() - 300e3), expiresOn: new Date(Date.now() + 7200e3),
  protocol: b.SASProtocol.HttpsAndHttp}, cred).toString());
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, log, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            with open(log) as f:
                raise AssertionError("server exited %s:\n%s" % (proc.returncode, f.read()[-3000:]))
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("server on port %d did not come up" % port)


def rclone_processes():
    """Host pids of rclone processes, with their command lines."""
    out = {}
    for pid in at.pids():
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"rclone":
            out[pid] = b" ".join(argv).decode(errors="replace")
    return out


class BucketMountTest(at.AirlockTestCase):
    @classmethod
    def setUpClass(cls):
        if not shutil.which("rclone"):
            raise AssertionError("rclone is missing: scripts/setup.sh installs it")
        for pkg in ("s3rver", "azurite", "@aws-sdk/client-s3", "@azure/storage-blob"):
            if not os.path.isdir(os.path.join(NODE_MODULES, pkg)):
                raise AssertionError("npm package %s is missing: cd tests && npm ci" % pkg)
        super().setUpClass()
        cls.srv = tempfile.mkdtemp(prefix="airlock-it-buckets-")
        cls.addClassCleanup(shutil.rmtree, cls.srv, ignore_errors=True)
        cls.procs = []
        cls.addClassCleanup(cls.stop_servers)
        # The secrets of this run: the canaries nothing inside may show.
        cls.s3_secret = "canary-s3-" + secrets.token_hex(16)
        cls.az_key = base64.b64encode(b"canary-az-" + secrets.token_bytes(32)).decode()
        s3_port, s3rver_port, az_port = free_port(), free_port(), free_port()
        gcs_port = free_port()
        cls.gcs_token = "canary-gcs-" + secrets.token_hex(16)
        cls.gcs_sa, cls.gcs_sa_canary = cls.service_account(gcs_port)
        cls.start_server("s3rver", [os.path.join(NODE_MODULES, ".bin", "s3rver"), "-d",
                                    os.path.join(cls.srv, "s3"), "-a", "127.0.0.1",
                                    "-p", str(s3rver_port), "--configure-bucket", "bkt",
                                    "--configure-bucket", "r2bkt"], s3rver_port)
        cls.start_server("s3-sigv4-proxy", [sys.executable, S3_PROXY, str(s3_port),
                                            str(s3rver_port),
                                            "%s:%s" % (S3_KEY_ID, cls.s3_secret)], s3_port)
        cls.start_server("azurite", [os.path.join(NODE_MODULES, ".bin", "azurite-blob"),
                                     "--blobHost", "127.0.0.1", "--blobPort", str(az_port),
                                     "--inMemoryPersistence", "--disableTelemetry"], az_port,
                         env=dict(os.environ, AZURITE_ACCOUNTS="%s:%s" % (AZ_ACCOUNT, cls.az_key)))
        cls.start_server("gcs", [sys.executable, GCS_SERVER, str(gcs_port), "gbkt",
                                 "--token", cls.gcs_token, "--service-account",
                                 "%s:%s" % (GCS_ACCOUNT, os.path.join(cls.srv, "sa.pub"))],
                         gcs_port)
        cls.gcs_ep = "http://127.0.0.1:%d" % gcs_port
        cls.s3_ep = "http://127.0.0.1:%d" % s3_port
        cls.az_ep = "http://127.0.0.1:%d/%s" % (az_port, AZ_ACCOUNT)
        cls.cfg = {
            "s3": cls.client_cfg({"type": "s3", "endpoint": cls.s3_ep, "bucket": "bkt",
                                  "region": "us-east-1", "access_key_id": S3_KEY_ID,
                                  "secret_access_key": cls.s3_secret}),
            "r2": cls.client_cfg({"type": "r2", "endpoint": cls.s3_ep, "bucket": "r2bkt",
                                  "region": "auto", "access_key_id": S3_KEY_ID,
                                  "secret_access_key": cls.s3_secret}),
            "azure_blob": cls.client_cfg({"type": "azure_blob", "endpoint": cls.az_ep,
                                          "bucket": "ctr", "account_name": AZ_ACCOUNT,
                                          "account_key": cls.az_key}),
            "gcs": cls.client_cfg({"type": "gcs", "endpoint": cls.gcs_ep, "bucket": "gbkt",
                                   "access_token": cls.gcs_token}),
        }
        cls.cfg["gcs_sa"] = cls.cfg["gcs"]
        cls.official("azure_blob", "mkbucket")
        # A container SAS signed by the official client (read, add, create, write,
        # delete, list; two hours): what a site hands out instead of the account key.
        out = subprocess.run(["node", "-e", SAS_JS, AZ_ACCOUNT, cls.az_key, "ctr"],
                             capture_output=True, text=True, timeout=60,
                             env=dict(os.environ, NODE_PATH=NODE_MODULES))
        if out.returncode != 0:
            raise AssertionError(out.stderr)
        cls.az_sas = out.stdout.strip()
        cls.cfg["azure_sas"] = cls.client_cfg({"type": "azure_blob", "endpoint": cls.az_ep,
                                               "bucket": "ctr", "sas_token": cls.az_sas},
                                              "azure-sas")

    @classmethod
    def service_account(cls, port):
        """A service account key file as Google issues them, with a key made here; its
        token_uri is the test server's.  Returns it (one line) and a canary from the key."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        with open(os.path.join(cls.srv, "sa.pub"), "wb") as f:
            f.write(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
        sa = {"type": "service_account", "project_id": "airlock-test",
              "private_key_id": secrets.token_hex(20), "private_key": pem,
              "client_email": GCS_ACCOUNT, "client_id": "1234567890",
              "auth_uri": "http://127.0.0.1:%d/auth" % port,
              "token_uri": "http://127.0.0.1:%d/token" % port}
        # A line of the key's base64 body: unique to this run.
        return json.dumps(sa), pem.splitlines()[5]

    @classmethod
    def client_cfg(cls, cfg, name=None):
        path = os.path.join(cls.srv, "client-%s.json" % (name or cfg["type"]))
        with open(path, "w") as f:
            json.dump(cfg, f)
        return path

    @classmethod
    def start_server(cls, name, argv, port, env=None):
        log = os.path.join(cls.srv, name + ".log")
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                    start_new_session=True, cwd=cls.srv, env=env)
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

    @classmethod
    def official(cls, kind, *args):
        proc = subprocess.run(["node", CLIENT, cls.cfg[kind]] + list(args), capture_output=True,
                              text=True, timeout=120)
        if proc.returncode != 0:
            raise AssertionError("official client %s failed:\n%s" % (args, proc.stderr[-3000:]))
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def put_official(self, kind, key, data):
        path = os.path.join(self.srv, "up-" + secrets.token_hex(4))
        with open(path, "wb") as f:
            f.write(data)
        self.official(kind, "put", key, path)

    def get_official(self, kind, key):
        path = os.path.join(self.srv, "down-" + secrets.token_hex(4))
        self.official(kind, "get", key, path)
        with open(path, "rb") as f:
            return f.read()

    def entries(self, kind, read_only=False, prefix=None):
        if kind == "s3":
            e = {"type": "s3_mount", "bucket": "bkt", "endpointUrl": self.s3_ep,
                 "region": "us-east-1", "s3Provider": "Minio"}
            creds = {"accessKeyId": S3_KEY_ID, "secretAccessKey": self.s3_secret}
        elif kind == "r2":
            # The generic form: provider and config.
            # (R2's endpoint derives from accountId; the test store is on loopback.)
            e = {"type": "mount", "provider": "r2",
                 "config": {"bucket": "r2bkt", "accountId": "test", "endpointUrl": self.s3_ep}}
            creds = {"accessKeyId": S3_KEY_ID, "secretAccessKey": self.s3_secret}
        elif kind == "gcs":
            e = {"type": "gcs_mount", "bucket": "gbkt", "endpointUrl": self.gcs_ep}
            creds = {"accessToken": self.gcs_token}
        elif kind == "gcs_sa":
            e = {"type": "mount", "provider": "gcs",
                 "config": {"bucket": "gbkt", "endpointUrl": self.gcs_ep}}
            creds = {"serviceAccountCredentials": self.gcs_sa}
        elif kind == "azure_sas":
            e = {"type": "azure_blob_mount", "container": "ctr", "accountName": AZ_ACCOUNT,
                 "endpointUrl": self.az_ep}
            creds = {"sasToken": self.az_sas}
        else:
            e = {"type": "azure_blob_mount", "container": "ctr", "accountName": AZ_ACCOUNT,
                 "endpointUrl": self.az_ep}
            creds = {"accountKey": self.az_key}
        if prefix:
            (e.get("config") or e)["prefix"] = prefix
        if read_only:
            e["readOnly"] = True
        return e, creds

    def mounted_sandbox(self, kind, read_only=False, prefix=None):
        entry, creds = self.entries(kind, read_only, prefix)
        req = {"manifest": {"version": 1, "entries": {"data": entry}},
               "mount_credentials": {"data": creds}}
        return self.sandbox(**req)

    # ---- the tests ----

    def roundtrip(self, kind):
        prefix = "run-" + secrets.token_hex(4)
        sb = self.mounted_sandbox(kind, prefix=prefix)
        sid = sb["id"]
        # Written by the official client, read in the sandbox.
        self.put_official(kind, prefix + "/from-client.txt", b"hello from the client\n")
        deadline = time.monotonic() + 15
        while True:
            r = self.sh(sid, "cat /workspace/data/from-client.txt")
            if r.get("exit_code") == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.assertExit(r, 0, (r, self.rclone_log(sid)))
        self.assertEqual(r["stdout"], "hello from the client\n", self.rclone_log(sid))
        # Owned by the sandbox's root.
        self.assertEqual(self.out(sid, "stat -c %u /workspace/data /workspace/data/from-client.txt"),
                         "0\n0\n")
        # Written in the sandbox, read by the official client.
        self.out(sid, "echo written inside > /workspace/data/from-sandbox.txt && sync")
        deadline = time.monotonic() + 20
        while True:
            try:
                data = self.get_official(kind, prefix + "/from-sandbox.txt")
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        self.assertEqual(data, b"written inside\n")
        self.check_no_secret_inside(sid)
        self.check_no_secret_on_host_records(sid)
        self.check_destroy_leaves_nothing(sid)

    def test_s3_roundtrip(self):
        self.roundtrip("s3")

    def test_r2_roundtrip_generic_mount(self):
        self.roundtrip("r2")

    def test_azure_blob_roundtrip(self):
        self.roundtrip("azure_blob")

    def test_azure_blob_roundtrip_with_a_sas(self):
        self.roundtrip("azure_sas")

    def test_gcs_roundtrip_with_an_access_token(self):
        self.roundtrip("gcs")

    def test_gcs_roundtrip_with_a_service_account(self):
        self.roundtrip("gcs_sa")

    def test_gcs_rename_and_listing_in_the_sandbox_match_the_official_client(self):
        """What rclone does for mv and ls (rewrite, patch, delimiter listing) and what
        @google-cloud/storage sees, both ways."""
        sid = self.mounted_sandbox("gcs", prefix="mv")["id"]
        self.put_official("gcs", "mv/sub/deep.txt", b"deep\n")
        self.official("gcs", "setmeta", "mv/sub/deep.txt", "owner", "client")
        self.read_inside(sid, "/workspace/data/sub/deep.txt")
        self.assertEqual(self.out(sid, "ls /workspace/data"), "sub\n")
        self.out(sid, "mv /workspace/data/sub/deep.txt /workspace/data/top.txt")
        deadline = time.monotonic() + 20
        while True:
            listing = self.official("gcs", "dirs", "mv/")
            if listing["files"] == ["mv/top.txt"] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.assertEqual(listing, {"files": ["mv/top.txt"], "prefixes": []})
        self.assertEqual(self.get_official("gcs", "mv/top.txt"), b"deep\n")
        self.official("gcs", "move", "mv/top.txt", "mv/moved/back.txt")
        self.assertEqual(self.read_inside(sid, "/workspace/data/moved/back.txt"), "deep\n")
        self.check_destroy_leaves_nothing(sid)

    def test_gcs_wrong_token_is_a_clear_error(self):
        entry, _ = self.entries("gcs")
        r = self.client.request("POST", "/v1/sandboxes", {
            "manifest": {"entries": {"data": entry}},
            "mount_credentials": {"data": {"accessToken": "wrong"}}})
        self.assertGreaterEqual(r.status, 400, r)
        self.assertIn("mount 'data'", str(r.json), r)

    def test_read_only_refuses_writes(self):
        for kind in ("s3", "azure_blob", "gcs", "r2"):
            self.put_official(kind, "ro/kept.txt", b"kept\n")
            sid = self.mounted_sandbox(kind, read_only=True, prefix="ro")["id"]
            self.assertEqual(self.read_inside(sid, "/workspace/data/kept.txt"), "kept\n")
            r = self.sh(sid, "echo x > /workspace/data/new.txt")
            self.assertNotEqual(r.get("exit_code"), 0, r)
            self.assertIn("Read-only", r["stderr"])
            r = self.sh(sid, "rm /workspace/data/kept.txt")
            self.assertNotEqual(r.get("exit_code"), 0, r)
            self.assertEqual(self.get_official(kind, "ro/kept.txt"), b"kept\n")
            self.check_destroy_leaves_nothing(sid)

    def test_mount_outlives_an_airlockd_restart_and_destroy_still_ends_it(self):
        sid = self.mounted_sandbox("s3", prefix="restart")["id"]
        self.out(sid, "echo before > /workspace/data/before.txt")
        self.daemon.stop()
        self.daemon.start()
        self.client.close()
        type(self).client = at.Client(self.daemon.socket_path, self.created)
        # The adopted sandbox still reads and writes through the same rclone.
        self.assertEqual(self.out(sid, "cat /workspace/data/before.txt"), "before\n")
        self.out(sid, "echo after > /workspace/data/after.txt")
        deadline = time.monotonic() + 20
        while True:
            try:
                self.assertEqual(self.get_official("s3", "restart/after.txt"), b"after\n")
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        self.check_destroy_leaves_nothing(sid)

    def test_a_dead_rclone_is_restarted_with_an_event(self):
        sid = self.mounted_sandbox("s3", prefix="supervised")["id"]
        self.put_official("s3", "supervised/x.txt", b"x\n")
        self.assertEqual(self.read_inside(sid, "/workspace/data/x.txt"), "x\n")
        [pid] = [p for p, c in rclone_processes().items() if sid in c]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while True:
            events = self.client.expect(200, "GET", "/v1/sandboxes/%s/events" % sid).json
            kinds = [e for e in events["events"] if e["type"].startswith("mount_")]
            if kinds or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.assertEqual([(e["type"], e["path"]) for e in kinds],
                         [("mount_restarted", "/workspace/data")], events)
        new = [p for p, c in rclone_processes().items() if sid in c]
        self.assertEqual(len(new), 1)
        self.assertNotEqual(new[0], pid)
        # The sandbox reads and writes through the new rclone, at the same path.
        self.assertEqual(self.read_inside(sid, "/workspace/data/x.txt"), "x\n")
        self.out(sid, "echo y > /workspace/data/y.txt")
        deadline = time.monotonic() + 20
        while True:
            try:
                self.assertEqual(self.get_official("s3", "supervised/y.txt"), b"y\n")
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        # One mount at the path inside, not a stack of dead ones.
        self.assertEqual(self.out(sid, "grep -c ' /workspace/data ' /proc/self/mountinfo"), "1\n")
        self.check_destroy_leaves_nothing(sid)

    def test_a_mount_added_to_a_running_sandbox(self):
        """POST /v1/sandboxes/{id}/mounts (what airlock-gateway serves a hosted
        service's "mount now" with): a failed one leaves nothing and keeps no key; a
        good one is read and written inside, holds no key inside, is supervised
        (a dead rclone restarted), and goes with the sandbox."""
        sid = self.sandbox()["id"]
        self.put_official("s3", "added/x.txt", b"added\n")
        entry, creds = self.entries("s3", prefix="added")
        entry["mountPath"] = "/mnt/added"
        path = "/v1/sandboxes/%s/mounts" % sid
        # Wrong keys: refused with rclone's reason, nothing left behind.
        bad = self.client.request("POST", path, json.dumps(
            {"entry": entry, "credentials": dict(creds, secretAccessKey="wrong")}).encode(),
            headers={"Content-Type": "application/json"})
        self.assertNotEqual(bad.status, 201, bad.body)
        state = os.path.join(self.daemon.state_dir, "sandboxes", sid)
        self.assertEqual([n for n in os.listdir(state) if n.startswith(("rclone-", "mnt-"))], [])
        self.assertEqual([c for c in rclone_processes().values() if sid in c], [])
        # A key field of another kind, an unknown field: refused by name.
        odd = self.client.request("POST", path, json.dumps(
            {"entry": entry, "credentials": {"accountKey": "x"}}).encode(),
            headers={"Content-Type": "application/json"})
        self.assertEqual(odd.status, 400, odd.body)
        self.assertIn(b"accountKey", odd.body)
        odd = self.client.request("POST", path, json.dumps({"entry": entry, "keys": {}}).encode(),
                                  headers={"Content-Type": "application/json"})
        self.assertEqual(odd.status, 400, odd.body)
        # The good one.
        ok = self.client.expect(201, "POST", path, json.dumps(
            {"entry": entry, "credentials": creds}).encode(),
            headers={"Content-Type": "application/json"})
        self.assertEqual(ok.json, {"path": "/mnt/added"})
        self.assertEqual(self.read_inside(sid, "/mnt/added/x.txt"), "added\n")
        self.out(sid, "echo from-inside > /mnt/added/y.txt")
        deadline = time.monotonic() + 20
        while True:
            try:
                self.assertEqual(self.get_official("s3", "added/y.txt"), b"from-inside\n")
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        self.check_no_secret_inside(sid, "/mnt/added")
        self.check_no_secret_on_host_records(sid)
        [pid] = [p for p, c in rclone_processes().items() if sid in c]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while True:
            new = [p for p, c in rclone_processes().items() if sid in c and p != pid]
            if new or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.assertEqual(len(new), 1, "the added mount's rclone was restarted")
        self.assertEqual(self.read_inside(sid, "/mnt/added/x.txt"), "added\n")
        self.check_destroy_leaves_nothing(sid)

    def test_unmount_one_of_several(self):
        """DELETE /v1/sandboxes/{id}/mounts?path=P: a manifest's mount and an added one
        unmounted one at a time, the others kept; nothing of them left on the host;
        the supervisor does not bring them back; a later mount takes the next index;
        once none is left, a process snapshot is no longer refused."""
        entry, creds = self.entries("s3", prefix="um-a")
        sid = self.sandbox(manifest={"version": 1, "entries": {"data": entry}},
                           mount_credentials={"data": creds})["id"]
        added, added_creds = self.entries("s3", read_only=True, prefix="um-b")
        added["mountPath"] = "/mnt/added"
        self.put_official("s3", "um-b/x.txt", b"x\n")
        path = "/v1/sandboxes/%s/mounts" % sid
        self.client.expect(201, "POST", path, json.dumps(
            {"entry": added, "credentials": added_creds}).encode(),
            headers={"Content-Type": "application/json"})
        self.assertEqual(self.read_inside(sid, "/mnt/added/x.txt"), "x\n")
        state = os.path.join(self.daemon.state_dir, "sandboxes", sid)
        procs = {p: c for p, c in rclone_processes().items() if sid in c}
        self.assertEqual(len(procs), 2, procs)

        # Nothing there, a relative path, no path: refused, nothing changed.
        r = self.client.request("DELETE", path + "?path=/mnt/none")
        self.assertEqual(r.status, 404, r.body)
        self.assertIn(b"no bucket mount at /mnt/none", r.body)
        self.assertEqual(self.client.request("DELETE", path + "?path=mnt/added").status, 400)
        self.assertEqual(self.client.request("DELETE", path).status, 400)

        # The manifest's mount (a trailing slash is the same path).
        r = self.client.expect(200, "DELETE", path + "?path=/workspace/data/")
        self.assertEqual(r.json, {"path": "/workspace/data/", "unmounted": True})
        mi = self.out(sid, "grep fuse /proc/self/mountinfo; ls -A /workspace/data | wc -l")
        self.assertNotIn(" /workspace/data ", mi)
        self.assertIn(" /mnt/added ", mi)
        self.assertTrue(mi.endswith("0\n"), mi)
        left = {p: c for p, c in rclone_processes().items() if sid in c}
        self.assertEqual(len(left), 1, left)
        self.assertIn("um-b", list(left.values())[0])
        self.assertEqual(sorted(n for n in os.listdir(state) if n.endswith("-0") or "-0." in n),
                         ["rclone-0.json"])
        with open(os.path.join(state, "rclone-0.json")) as f:
            self.assertEqual(json.load(f), {"removed": True})
        self.assertEqual([m for m in at.mounts_mentioning(sid) if "/mnt-0" in m], [])
        # Still a mount to refuse a process snapshot for.
        r = self.client.request("POST", "/v1/sandboxes/%s/snapshots" % sid, {"processes": True})
        self.assertGreaterEqual(r.status, 400, r)
        self.assertEqual(self.client.request("DELETE", path + "?path=/workspace/data").status, 404)

        # Two supervisor rounds (2 s each): neither comes back, the other one stays.
        time.sleep(5)
        self.assertEqual({p for p, c in rclone_processes().items() if sid in c}, set(left))
        self.assertEqual(self.read_inside(sid, "/mnt/added/x.txt"), "x\n")

        # A new mount takes the next index; the added one goes too.
        again, again_creds = self.entries("s3", prefix="um-a")
        again["mountPath"] = "/mnt/again"
        self.client.expect(201, "POST", path, json.dumps(
            {"entry": again, "credentials": again_creds}).encode(),
            headers={"Content-Type": "application/json"})
        self.assertTrue(os.path.exists(os.path.join(state, "rclone-2.json")))
        self.client.expect(200, "DELETE", path + "?path=/mnt/added")
        self.client.expect(200, "DELETE", path + "?path=/mnt/again")
        self.assertEqual(self.out(sid, "grep -c fuse /proc/self/mountinfo || true"), "0\n")
        self.assertEqual([c for c in rclone_processes().values() if sid in c], [])
        self.assertEqual([m for m in at.mounts_mentioning(sid) if "fuse" in m], [])
        r = self.client.request("POST", "/v1/sandboxes/%s/snapshots" % sid, {"processes": True})
        self.assertEqual(r.status, 201, r)
        self.addCleanup(self.client.request, "DELETE", "/v1/snapshots/" + r.json["id"])
        self.check_destroy_leaves_nothing(sid)

    def test_snapshot_leaves_the_mount_out_and_restore_mounts_again(self):
        sid = self.mounted_sandbox("s3", prefix="snap")["id"]
        self.out(sid, "echo in-bucket > /workspace/data/b.txt && echo local > /workspace/l.txt")
        deadline = time.monotonic() + 20
        while True:
            try:
                self.get_official("s3", "snap/b.txt")
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        # CRIU cannot dump a FUSE mount: a process snapshot is refused with why.
        r = self.client.request("POST", "/v1/sandboxes/%s/snapshots" % sid, {"processes": True})
        self.assertGreaterEqual(r.status, 400, r)
        self.assertIn("bucket mounts", str(r.json))
        self.assertEqual(self.out(sid, "cat /workspace/l.txt"), "local\n")
        for processes in (False,):
            r = self.client.request("POST", "/v1/sandboxes/%s/snapshots" % sid,
                                    {"processes": processes})
            self.assertEqual(r.status, 201, r)
            snap = r.json["id"]
            self.addCleanup(self.client.request, "DELETE", "/v1/snapshots/" + snap)
            # Restored with the credentials again: the mount is back, the bucket's
            # object was never in the snapshot.
            rid = self.sandbox(snapshot=snap, mount_credentials={"data": {
                "accessKeyId": S3_KEY_ID, "secretAccessKey": self.s3_secret}})["id"]
            self.assertEqual(self.out(rid, "cat /workspace/l.txt"), "local\n")
            self.assertEqual(self.read_inside(rid, "/workspace/data/b.txt"), "in-bucket\n")
            self.check_no_secret_inside(rid)
            self.check_destroy_leaves_nothing(rid)
        state = os.path.join(self.daemon.state_dir, "snapshots")
        out = subprocess.run(["grep", "-r", "-l", "-a", "-F", "in-bucket", state],
                             capture_output=True, text=True)
        self.assertEqual(out.stdout, "", "the bucket's object is in a snapshot")
        self.check_destroy_leaves_nothing(sid)

    def test_restore_with_other_mounts(self):
        """A restore's "mounts" replace the recorded ones: none with {} (so no keys are
        wanted for them), or others with their own keys; the new sandbox's manifest
        says so, for its own snapshots.  Only mount entries, on keys of their own."""
        sid = self.mounted_sandbox("s3", prefix="other-a")["id"]
        self.out(sid, "echo local > /workspace/l.txt")
        snap = self.files_snapshot(sid)
        self.check_destroy_leaves_nothing(sid)
        before = set(rclone_processes())

        # None: no credentials asked for, no rclone, no FUSE mount inside.
        rid = self.sandbox(snapshot=snap, mounts={})["id"]
        self.assertEqual(self.out(rid, "cat /workspace/l.txt; grep -c fuse /proc/self/mountinfo || true"),
                         "local\n0\n")
        self.assertEqual(set(rclone_processes()) - before, set())
        self.check_destroy_leaves_nothing(rid)

        # Another: its own path, prefix and keys; the old path is a plain directory.
        self.put_official("s3", "other-b/b.txt", b"b\n")
        entry, creds = self.entries("s3", read_only=True, prefix="other-b")
        entry["mountPath"] = "/mnt/other"
        rid = self.sandbox(snapshot=snap, mounts={"other": entry},
                           mount_credentials={"other": creds})["id"]
        self.assertEqual(self.read_inside(rid, "/mnt/other/b.txt"), "b\n")
        mi = self.out(rid, "grep fuse /proc/self/mountinfo")
        self.assertEqual(len(mi.splitlines()), 1, mi)
        self.assertIn(" /mnt/other ", mi)
        self.check_no_secret_inside(rid, "/mnt/other")
        # Its own snapshot records the new mount: restored again with its keys.
        snap2 = self.files_snapshot(rid)
        self.check_destroy_leaves_nothing(rid)
        r = self.client.request("POST", "/v1/sandboxes", {"snapshot": snap2})
        self.assertGreaterEqual(r.status, 400, r)
        rid = self.sandbox(snapshot=snap2, mount_credentials={"other": creds})["id"]
        self.assertEqual(self.read_inside(rid, "/mnt/other/b.txt"), "b\n")
        self.check_destroy_leaves_nothing(rid)

        # Refused with the reason, leaving nothing: a file entry, credentials for an
        # entry the new mounts do not have, mounts that are not an object.
        for body, why in (
                ({"mounts": {"f": {"type": "file", "content": "x"}}}, "'f' is not a mount entry"),
                ({"mounts": {}, "mount_credentials": {"data": creds}}, "'data' is not a mount entry"),
                ({"mounts": []}, "mounts")):
            r = self.client.request("POST", "/v1/sandboxes", dict(body, snapshot=snap))
            self.assertEqual(r.status, 400, (body, r))
            if why:
                self.assertIn(why, str(r.json), body)
        self.assertEqual(set(rclone_processes()) - before, set())

    def test_nested_mounts_come_back_at_a_restore(self):
        """A mount in a dir's children, and a mount whose path is inside another mount:
        both mounted at create, both left out of the snapshot, both mounted again at
        the restore (credentials keyed by the entry's full path)."""
        s3_entry, s3_creds = self.entries("s3", prefix="nested-in-dir")
        az_entry, az_creds = self.entries("azure_blob", prefix="nested-outer")
        gcs_entry, gcs_creds = self.entries("gcs", prefix="nested-inner")
        gcs_entry["mountPath"] = "outer/inner"
        manifest = {"version": 1, "entries": {
            "sub": {"type": "dir", "children": {"data": s3_entry}},
            "outer": az_entry, "inner": gcs_entry}}
        creds = {"sub/data": s3_creds, "outer": az_creds, "inner": gcs_creds}
        self.put_official("s3", "nested-in-dir/s3.txt", b"s3\n")
        self.put_official("azure_blob", "nested-outer/az.txt", b"az\n")
        self.put_official("gcs", "nested-inner/gcs.txt", b"gcs\n")
        sid = self.sandbox(manifest=manifest, mount_credentials=creds)["id"]
        expect = {"/workspace/sub/data/s3.txt": "s3\n", "/workspace/outer/az.txt": "az\n",
                  "/workspace/outer/inner/gcs.txt": "gcs\n"}
        for path, text in expect.items():
            self.assertEqual(self.read_inside(sid, path), text)
        self.out(sid, "echo local > /workspace/sub/local.txt")
        snap = self.files_snapshot(sid)
        self.check_destroy_leaves_nothing(sid)
        rid = self.sandbox(snapshot=snap, mount_credentials=creds)["id"]
        self.assertEqual(self.out(rid, "cat /workspace/sub/local.txt"), "local\n")
        for path, text in expect.items():
            self.assertEqual(self.read_inside(rid, path), text)
        mi = self.out(rid, "grep fuse /proc/self/mountinfo")
        self.assertEqual(len(mi.splitlines()), 3, mi)
        # Written through the inner mount: in the inner bucket, not the outer one.
        self.out(rid, "echo back > /workspace/outer/inner/back.txt")
        deadline = time.monotonic() + 20
        while True:
            try:
                self.assertEqual(self.get_official("gcs", "nested-inner/back.txt"), b"back\n")
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        self.check_no_secret_inside(rid, "/workspace/sub/data")
        self.check_destroy_leaves_nothing(rid)

    def test_wrong_secret_is_a_clear_error_and_leaves_nothing(self):
        before = set(rclone_processes())
        entry, creds = self.entries("s3")
        creds["secretAccessKey"] = "wrong-" + secrets.token_hex(4)
        r = self.client.request("POST", "/v1/sandboxes", {
            "manifest": {"entries": {"data": entry}}, "mount_credentials": {"data": creds}})
        self.assertGreaterEqual(r.status, 400, r)
        self.assertIn("mount 'data'", str(r.json), r)
        self.assertNotIn(creds["secretAccessKey"], str(r.json))
        time.sleep(0.5)
        self.assertEqual(set(rclone_processes()) - before, set())

    def test_credentials_in_the_manifest_are_refused(self):
        entry, creds = self.entries("s3")
        entry.update(creds)
        r = self.client.request("POST", "/v1/sandboxes", {"manifest": {"entries": {"d": entry}}})
        self.assertEqual(r.status, 400, r)
        self.assertIn("mount_credentials", str(r.json))
        r = self.client.request("POST", "/v1/sandboxes", {
            "manifest": {"entries": {"d": self.entries("s3")[0]}},
            "mount_credentials": {"other": {"accessKeyId": "x"}}})
        self.assertEqual(r.status, 400, r)
        self.assertIn("'other' is not a mount entry", str(r.json))
        for kind in ("azure_sas", "gcs", "gcs_sa"):
            entry, creds = self.entries(kind)
            (entry.get("config") or entry).update(creds)
            r = self.client.request("POST", "/v1/sandboxes",
                                    {"manifest": {"entries": {"d": entry}}})
            self.assertEqual(r.status, 400, r)
            self.assertIn("mount_credentials", str(r.json))

    # ---- checks ----

    def files_snapshot(self, sid):
        """A snapshot of sid without processes, deleted at the end of the test; its id."""
        r = self.client.request("POST", "/v1/sandboxes/%s/snapshots" % sid, {"processes": False})
        self.assertEqual(r.status, 201, r)
        self.addCleanup(self.client.request, "DELETE", "/v1/snapshots/" + r.json["id"])
        return r.json["id"]

    def read_inside(self, sid, path, timeout=15):
        """cat path in the sandbox, retried while the mount's listing catches up."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.sh(sid, "cat " + path)
            if r.get("exit_code") == 0 or time.monotonic() > deadline:
                self.assertExit(r, 0, (r, self.rclone_log(sid)))
                return r["stdout"]
            time.sleep(0.5)

    def rclone_log(self, sid):
        state = os.path.join(self.daemon.state_dir, "sandboxes", sid)
        text = ""
        for name in sorted(os.listdir(state)):
            if name.endswith(".log"):
                with open(os.path.join(state, name)) as f:
                    text += f.read()[-3000:]
        return text

    def secrets_of_run(self):
        return [self.s3_secret, self.az_key, self.az_sas.split("sig=")[1], self.gcs_token,
                self.gcs_sa_canary]

    def check_no_secret_inside(self, sid, mounted="/workspace/data"):
        for secret in self.secrets_of_run():
            # Environment and command lines of every process, mountinfo, files.
            cmd = ("cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline /proc/self/mountinfo "
                   "/proc/mounts 2>/dev/null | grep -c -F -e '%s' ; "
                   "grep -r -l -F -e '%s' / --exclude-dir=proc --exclude-dir=sys "
                   "--exclude-dir=data 2>/dev/null | head -5; true") % (secret, secret)
            self.assertEqual(self.out(sid, cmd), "0\n", "a secret is visible inside")
        mi = self.out(sid, "cat /proc/self/mountinfo")
        self.assertIn(mounted, mi)

    def check_no_secret_on_host_records(self, sid):
        state = os.path.join(self.daemon.state_dir, "sandboxes", sid)
        for name in ("state.json", "manifest.json"):
            p = os.path.join(state, name)
            if os.path.exists(p):
                with open(p) as f:
                    text = f.read()
                for secret in self.secrets_of_run():
                    self.assertNotIn(secret, text, name)
        inspect = json.dumps(self.client.inspect(sid))
        for secret in self.secrets_of_run():
            self.assertNotIn(secret, inspect)
            self.assertNotIn(secret, self.daemon.log())
        # rclone's own command line holds no secret: the config file does.
        procs = {pid: cmd for pid, cmd in rclone_processes().items() if sid in cmd}
        self.assertEqual(len(procs), 1, procs)
        for cmd in procs.values():
            for secret in self.secrets_of_run():
                self.assertNotIn(secret, cmd)
        conf = [n for n in os.listdir(state) if n.endswith(".conf")]
        self.assertEqual(len(conf), 1)
        self.assertEqual(os.stat(os.path.join(state, conf[0])).st_mode & 0o777, 0o600)

    def check_destroy_leaves_nothing(self, sid):
        self.client.destroy(sid)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            procs = [c for c in rclone_processes().values() if sid in c]
            mounts = at.mounts_mentioning(sid)
            if not procs and not mounts:
                break
            time.sleep(0.2)
        self.assertEqual(procs, [])
        self.assertEqual(mounts, [])


if __name__ == "__main__":
    at.main()
