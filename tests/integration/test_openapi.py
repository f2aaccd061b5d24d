#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""docs/openapi.yaml against the running airlockd, so the two cannot drift.

* The document is valid OpenAPI 3.1: checked with the OAS 3.1 JSON Schema
  (shipped in Debian's python3-openapi-spec-validator, unpacked by
  scripts/setup.sh) and python3-jsonschema; every schema in it is a valid
  JSON Schema 2020-12.
* Every documented operation is called on a real airlockd: what the test
  sends is valid by the spec's request schema, and every answer's status is
  one the spec lists for that operation and its body valid by the spec's
  schema for it (error bodies included).  Bodies the spec rejects are
  refused by the daemon with 400.
* Every documented path answers 405 to every method the spec does not list
  for it, and undocumented paths 404: the daemon serves nothing the spec
  leaves out.

Runs with Debian's python3 (its jsonschema and yaml).
"""

import copy
import hashlib
import io
import json
import os
import sys
import tarfile
import time
import urllib.parse

import airlock_test as at

try:
    import jsonschema
    import yaml
except ImportError as e:  # a setup problem, not a reason to skip
    raise SystemExit("test_openapi needs python3-jsonschema and python3-yaml (scripts/setup.sh "
                     "installs them) and Debian's python3 (%s): %s" % (sys.executable, e))

SPEC_PATH = os.path.join(at.SOURCE_ROOT, "docs", "openapi.yaml")
OAS_SCHEMA = os.environ.get("AIRLOCK_OAS31_SCHEMA") or "/var/lib/airlock/openapi/oas-3.1-schema.json"
METHODS = ("GET", "PUT", "POST", "DELETE", "PATCH", "HEAD")


def load_spec():
    with open(SPEC_PATH) as f:
        return yaml.safe_load(f)


def tar_of(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def oci_layout_of(rootfs):
    """An OCI image layout (as a tar) with rootfs as its one layer."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        t.add(rootfs, arcname=".")
    layer = buf.getvalue()
    digest = hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Env": ["IMAGE=1"], "Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + digest]}}).encode()
    cdigest = hashlib.sha256(config).hexdigest()
    manifest = json.dumps({"schemaVersion": 2,
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": "sha256:" + cdigest, "size": len(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                       "digest": "sha256:" + digest, "size": len(layer)}]}).encode()
    mdigest = hashlib.sha256(manifest).hexdigest()
    index = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json",
         "digest": "sha256:" + mdigest, "size": len(manifest)}]}).encode()
    return tar_of([("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'), ("index.json", index),
                   ("blobs/sha256/" + digest, layer), ("blobs/sha256/" + cdigest, config),
                   ("blobs/sha256/" + mdigest, manifest)])


class OpenApiDocument(at.unittest.TestCase):
    def test_valid_openapi_31(self):
        spec = load_spec()
        self.assertTrue(os.path.exists(OAS_SCHEMA),
                        "%s is missing: scripts/setup.sh unpacks it from python3-openapi-spec-validator"
                        % OAS_SCHEMA)
        with open(OAS_SCHEMA) as f:
            meta = json.load(f)
        errors = sorted(jsonschema.Draft202012Validator(meta).iter_errors(spec), key=str)
        self.assertEqual(errors, [], "\n".join("%s: %s" % (list(e.path), e.message) for e in errors))
        for name, schema in spec["components"]["schemas"].items():
            with self.subTest(schema=name):
                jsonschema.Draft202012Validator.check_schema(schema)

    def test_meta_schema_catches_a_broken_document(self):
        """The validator is real: a document with a broken response is refused."""
        spec = load_spec()
        with open(OAS_SCHEMA) as f:
            meta = json.load(f)
        broken = copy.deepcopy(spec)
        broken["paths"]["/v1/info"]["get"]["responses"]["200"] = {"content": {}}  # no description
        self.assertFalse(jsonschema.Draft202012Validator(meta).is_valid(broken))
        del broken["openapi"]
        self.assertFalse(jsonschema.Draft202012Validator(meta).is_valid(broken))


class OpenApiAgainstDaemon(at.AirlockTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.spec = load_spec()
        cls.resolver = jsonschema.RefResolver.from_schema(cls.spec)
        cls.called = set()  # (template, method) answered 2xx
        cls.answered = []  # (template, method, status)

    def validator(self, schema):
        return jsonschema.Draft202012Validator(schema, resolver=self.resolver)

    def assertValid(self, schema, instance, what):
        errors = list(self.validator(schema).iter_errors(instance))
        self.assertEqual(errors, [], "%s is not valid by docs/openapi.yaml: %s\n%s" % (
            what, "; ".join("%s: %s" % (list(e.path), e.message) for e in errors[:5]),
            json.dumps(instance)[:1500]))

    def operation(self, template, method):
        item = self.spec["paths"].get(template)
        self.assertIsNotNone(item, "path %s is not in docs/openapi.yaml" % template)
        op = item.get(method.lower())
        self.assertIsNotNone(op, "%s %s is not in docs/openapi.yaml" % (method, template))
        return op

    @staticmethod
    def deref(obj, spec):
        while isinstance(obj, dict) and "$ref" in obj:
            node = spec
            for part in obj["$ref"][2:].split("/"):
                node = node[part]
            obj = node
        return obj

    def call(self, method, template, params, status, body=None, query=None, content_type=None,
             raw=False):
        """One request; checks it and its answer against the spec, answers the Response."""
        op = self.operation(template, method)
        path = template
        for k, v in params.items():
            path = path.replace("{%s}" % k, urllib.parse.quote(v, safe=""))
        if query:
            path += "?" + urllib.parse.urlencode(query)
        headers = {}
        if body is not None and not raw:
            rb = self.deref(op.get("requestBody"), self.spec)
            self.assertIsNotNone(rb, "%s %s takes no body in the spec" % (method, template))
            self.assertValid(rb["content"]["application/json"]["schema"], body,
                             "request of %s %s" % (method, template))
        elif body is not None:
            rb = self.deref(op.get("requestBody"), self.spec)
            self.assertIn(content_type, rb["content"], "%s %s: %s body" % (method, template, content_type))
            headers["Content-Type"] = content_type
        for name, value in (query or {}).items():
            declared = [self.deref(p, self.spec)["name"] for p in
                        op.get("parameters", []) + self.spec["paths"][template].get("parameters", [])]
            self.assertIn(name, declared, "%s %s: query %s is not in the spec" % (method, template, name))
        r = self.client.request(method, path, body, headers=headers)
        self.assertEqual(r.status, status, "%s %s: %r" % (method, path, r))
        self.answered.append((template, method, r.status))
        responses = op["responses"]
        self.assertIn(str(r.status), responses,
                      "%s %s answered %d, which docs/openapi.yaml does not list" % (method, template, r.status))
        resp = self.deref(responses[str(r.status)], self.spec)
        ctype = (r.header("Content-Type") or "").split(";")[0]
        self.assertIn(ctype, resp.get("content", {}),
                      "%s %s %d: content type %s not in the spec" % (method, template, r.status, ctype))
        if ctype == "application/json":
            self.assertValid(resp["content"][ctype]["schema"], r.json,
                             "answer %d of %s %s" % (r.status, method, template))
        if 200 <= r.status < 300:
            self.called.add((template, method))
        return r

    def refused(self, method, template, params, body):
        """A body the spec rejects: the daemon must refuse it too (400)."""
        op = self.operation(template, method)
        schema = self.deref(op["requestBody"], self.spec)["content"]["application/json"]["schema"]
        self.assertFalse(self.validator(schema).is_valid(body), "the spec accepts %r" % (body,))
        path = template
        for k, v in params.items():
            path = path.replace("{%s}" % k, v)
        r = self.client.request(method, path, body)
        self.assertEqual(r.status, 400, "%s %s with %r: %r" % (method, template, body, r))
        self.assertValid({"$ref": "#/components/schemas/Error"}, r.json, "error answer")
        self.answered.append((template, method, 400))

    def test_every_route(self):
        sb = "/v1/sandboxes/{id}"
        c = self.call
        info = c("GET", "/v1/info", {}, 200).json
        c("GET", "/v1/health", {}, 200)
        c("GET", "/v1/metrics", {}, 200)
        created = c("POST", "/v1/sandboxes", {}, 201, {
            "name": "spec-check", "env": {"A": "1"}, "limits": {"memory": "256M", "pids": 128},
            "ttl": 3600, "idle_timeout": 600, "labels": {"run": "spec", "airlock.dev/x": ""},
            "manifest": {"version": 1, "root": "/workspace", "entries": {
                "a.txt": {"type": "file", "content": "hi\n"},
                "b.bin": {"type": "file", "content": {"type": "base64", "data": "AAE="}},
                "d": {"type": "dir", "children": {"e.txt": {"type": "file", "content": "e"}}}}}}).json
        sid = created["id"]
        self.created.add(sid)
        self.addCleanup(self._destroy_quietly, sid)
        p = {"id": sid}
        summary = c("POST", "/v1/sandboxes", {}, 201, {}, query={"view": "summary"}).json
        self.created.add(summary["id"])
        one = c("POST", "/v1/sandboxes", {}, 201, {"exec": {"command": "echo x"}, "remove": True}).json
        self.created.add(one["id"])
        self.assertTrue(one["removed"])
        c("GET", "/v1/sandboxes", {}, 200)
        listed = c("GET", "/v1/sandboxes", {}, 200, query={"label": "run=spec", "state": "running"})
        self.assertEqual([s["id"] for s in listed.json["sandboxes"]], [sid])
        c("GET", "/v1/sandboxes", {}, 400, query={"state": "gone"})
        c("GET", sb, p, 200)
        self.assertEqual(c("GET", "/v1/info", {}, 200).json["sandboxes"], info["sandboxes"] + 2)

        # processes
        c("POST", sb + "/exec", p, 200, {"argv": ["sh", "-c", "echo $A; exit 4"], "cwd": "/tmp",
                                         "env": {"B": "2"}, "timeout_ms": 10000})
        c("POST", sb + "/exec", p, 200, {"command": "cat", "stdin_base64": "AAE=", "encoding": "base64",
                                         "max_output_bytes": 10})
        run = c("POST", sb + "/exec", p, 200, {"command": "read l; echo got $l; sleep 0.3",
                                               "keep_stdin_open": True, "yield_ms": 50}).json
        self.assertTrue(run["running"])
        pp = {"id": sid, "pid": run["process_id"]}
        c("POST", sb + "/processes/{pid}/stdin", pp, 200, {"data": "x\n", "yield_ms": 100})
        c("GET", sb + "/processes/{pid}", pp, 200, query={"yield_ms": 5000})
        c("GET", sb + "/processes/{pid}", pp, 404)
        run = c("POST", sb + "/exec", p, 200, {"command": "sleep 60", "yield_ms": 1}).json
        pp = {"id": sid, "pid": run["process_id"]}
        c("DELETE", sb + "/processes/{pid}", pp, 400, query={"signal": "STOP"})
        c("DELETE", sb + "/processes/{pid}", pp, 200, query={"signal": "TERM"})
        c("GET", sb + "/processes/{pid}", pp, 200, query={"yield_ms": 5000, "encoding": "base64"})
        run = c("POST", sb + "/exec", p, 200, {"command": "sleep 0.2", "yield_ms": 1}).json
        pp = {"id": sid, "pid": run["process_id"]}
        c("POST", sb + "/processes/{pid}/stdin", pp, 503, {"data": "x"})  # stdin was closed
        run = c("POST", sb + "/exec", p, 200, {"command": "cat", "yield_ms": 1, "keep_stdin_open": True}).json
        pp = {"id": sid, "pid": run["process_id"]}
        c("POST", sb + "/processes/{pid}/stdin", pp, 200, {"data_base64": "eA==", "close": True,
                                                            "yield_ms": 2000, "encoding": "base64"})

        # terminals: a tty exec, its resize, and the streamed (upgraded) exec
        run = c("POST", sb + "/exec", p, 200, {"argv": ["sh"], "tty": True, "rows": 24, "cols": 80,
                                               "keep_stdin_open": True, "yield_ms": 100}).json
        pp = {"id": sid, "pid": run["process_id"]}
        c("POST", sb + "/processes/{pid}/resize", pp, 200, {"rows": 30, "cols": 90})
        self.refused("POST", sb + "/processes/{pid}/resize", pp, {"rows": 0, "cols": 90})
        self.refused("POST", sb + "/processes/{pid}/resize", pp, {"rows": 30})
        r = c("POST", sb + "/processes/{pid}/stdin", pp, 200, {"data": "stty size; exit 2\n",
                                                                "yield_ms": 5000}).json
        self.assertIn("30 90", r["stdout"])
        run = c("POST", sb + "/exec", p, 200, {"command": "sleep 5", "yield_ms": 1}).json
        c("POST", sb + "/processes/{pid}/resize", {"id": sid, "pid": run["process_id"]}, 400,
          {"rows": 3, "cols": 3})
        self.client.request("DELETE", "/v1/sandboxes/%s/processes/%s" % (sid, run["process_id"]))
        self.streamed(sid)

        # files
        c("PUT", sb + "/files", p, 200, b"\x00bytes", query={"path": "n/f.bin", "parents": "1", "mode": "0600"},
          raw=True, content_type="application/octet-stream")
        self.assertEqual(c("GET", sb + "/files", p, 200, query={"path": "n/f.bin"}).body, b"\x00bytes")
        c("GET", sb + "/dirs", p, 200, query={"path": "."})
        c("POST", sb + "/dirs", p, 201, query={"path": "m/k", "parents": "1"})
        c("POST", sb + "/dirs", p, 409, query={"path": "m/k"})
        c("DELETE", sb + "/files", p, 200, query={"path": "m", "recursive": "1"})
        c("GET", sb + "/files", p, 404, query={"path": "nope"})
        c("GET", sb + "/files", p, 400, query={"path": "/dev/null"})
        c("GET", sb + "/dirs", p, 404, query={"path": "nope"})
        c("PUT", sb + "/files", p, 400, b"", query={"path": "x", "mode": "9"}, raw=True,
          content_type="application/octet-stream")
        c("DELETE", sb + "/files", p, 400, query={"path": "d"})

        # a bucket mounted into the running sandbox (s3rver on loopback, its own keys)
        s3 = self.s3rver("spec")
        c("POST", sb + "/mounts", p, 201, {
            "entry": {"type": "s3_mount", "bucket": "spec", "endpointUrl": s3,
                      "s3Provider": "Minio", "mountPath": "/mnt/spec", "readOnly": True},
            "credentials": {"accessKeyId": "S3RVER", "secretAccessKey": "S3RVER"}})
        c("POST", sb + "/mounts", p, 400, {"entry": {"type": "s3_mount"}})
        c("DELETE", sb + "/mounts", p, 200, query={"path": "/mnt/spec"})
        c("DELETE", sb + "/mounts", p, 404, query={"path": "/mnt/spec"})
        c("DELETE", sb + "/mounts", p, 400, query={"path": "mnt/spec"})

        # workspace archives
        tar = c("GET", sb + "/workspace", p, 200).body
        c("PUT", sb + "/workspace", p, 200, tar, raw=True, content_type="application/x-tar")
        c("PUT", sb + "/workspace", p, 400, tar_of([("../up", b"x")]), raw=True,
          content_type="application/x-tar")
        c("PUT", sb + "/workspace", p, 413, tar, query={"max_members": 1}, raw=True,
          content_type="application/x-tar")
        c("PUT", sb + "/workspace", p, 400, tar, query={"max_members": "lots"}, raw=True,
          content_type="application/x-tar")

        # events
        c("GET", sb + "/events", p, 200, query={"since": 0})
        c("GET", sb + "/events", p, 400, query={"since": "-1"})
        c("GET", sb + "/top", p, 200)
        c("GET", "/v1/events", {}, 200, query={"since": 0})
        c("GET", "/v1/events", {}, 400, query={"since": "x"})

        # snapshots
        snap = c("POST", sb + "/snapshots", p, 201, {"processes": False}).json
        c("GET", "/v1/snapshots", {}, 200)
        stream = c("GET", "/v1/snapshots/{snapshot_id}/export", {"snapshot_id": snap["id"]}, 200).body
        imported = c("POST", "/v1/snapshots/import", {}, 201, stream, raw=True,
                     content_type="application/x-tar").json
        c("POST", "/v1/snapshots/import", {}, 400, b"not a stream", raw=True,
          content_type="application/x-tar")
        c("DELETE", "/v1/snapshots/{snapshot_id}", {"snapshot_id": imported["id"]}, 200)
        c("GET", "/v1/snapshots/{snapshot_id}/export", {"snapshot_id": "0123456789abcdef"}, 404)
        restored = c("POST", "/v1/sandboxes", {}, 201, {"snapshot": snap["id"], "name": "spec-restored"}).json
        self.created.add(restored["id"])
        c("DELETE", "/v1/sandboxes/{id}", {"id": restored["id"]}, 200, query={"wait": "0"})
        c("DELETE", "/v1/snapshots/{snapshot_id}", {"snapshot_id": snap["id"]}, 200)
        c("DELETE", "/v1/snapshots/{snapshot_id}", {"snapshot_id": snap["id"]}, 404)
        c("POST", "/v1/sandboxes", {}, 404, {"snapshot": "0123456789abcdef"})

        # images
        archive = oci_layout_of(at.ROOTFS)
        tar = "application/x-tar"
        img = c("POST", "/v1/images", {}, 201, archive, query={"name": "spec-image"}, raw=True,
                content_type=tar).json
        c("POST", "/v1/images", {}, 409, archive, query={"name": "spec-image"}, raw=True,
          content_type=tar)
        c("POST", "/v1/images", {}, 400, tar_of([("x", b"y")]), query={"name": "spec-bad"},
          raw=True, content_type=tar)
        c("POST", "/v1/images", {}, 400, archive, query={"name": "../x"}, raw=True,
          content_type=tar)
        c("GET", "/v1/images", {}, 200)
        c("GET", "/v1/images/{name}", {"name": "spec-image"}, 200)
        on_image = c("POST", "/v1/sandboxes", {}, 201, {"image": "spec-image",
                                                        "image_id": img["id"]}).json
        self.created.add(on_image["id"])
        c("POST", sb + "/exec", {"id": on_image["id"]}, 200, {"command": "id -u", "user": "1000:1000"})
        c("DELETE", "/v1/images/{name}", {"name": "spec-image"}, 409)
        c("DELETE", sb, {"id": on_image["id"]}, 200)
        c("DELETE", "/v1/images/{name}", {"name": "spec-image"}, 200)
        c("GET", "/v1/images/{name}", {"name": "spec-image"}, 404)
        c("DELETE", "/v1/images/{name}", {"name": "spec-image"}, 404)
        c("POST", "/v1/sandboxes", {}, 404, {"image": "spec-image"})

        # bad creates and execs, as the spec and the daemon both see them
        for bad in ({"name": "bad name/x"}, {"limits": "lots"}, {"network": "host"},
                    {"manifest": {"entries": {"x": {"type": "no_such_type"}}}},
                    {"manifest": {"misspelt": {}}}, {"env": {"A=B": "c"}}, {"remove": True},
                    {"limits": {"pids": -1}}, {"exec": {"cwd": "/"}},
                    {"image": "../x"}, {"image": "x", "rootfs": "/"},
                    # unknown keys and wrong types
                    {"limit": {}}, {"limits": {"mem": "64M"}}, {"ttl": "5"}, {"ttl": -1},
                    {"labels": {"k": 1}}, {"labels": {"-k": "v"}},
                    {"exec": {"command": "true", "timeout": 5}},
                    {"snapshot": "0123456789abcdef", "env": {"A": "1"}}):
            with self.subTest(create=bad):
                self.refused("POST", "/v1/sandboxes", {}, bad)
        for bad in ({}, {"argv": []}, {"argv": "ls"}, {"command": "true", "yield_ms": -1},
                    {"command": "true", "encoding": "hex"}, {"argv": [1]},
                    {"command": "true", "user": "root"},
                    {"command": "true", "timeout": 5}, {"command": "true", "timeout_ms": "5"},
                    {"command": "true", "tty": "yes"}, {"command": "true", "tty": True, "rows": 5},
                    {"command": "true", "rows": 5, "cols": 5},
                    {"command": "true", "tty": True, "rows": 0, "cols": 5}):
            with self.subTest(exec=bad):
                self.refused("POST", sb + "/exec", p, bad)
        c("POST", "/v1/sandboxes", {}, 400, {"seccomp_profile": "no-such-profile"})
        c("POST", "/v1/sandboxes", {}, 400, {"manifest": {"entries": {"/etc": {"type": "dir"}}}})

        # unknown objects
        c("GET", sb, {"id": "nosuchsandbox"}, 404)
        c("POST", sb + "/exec", {"id": "nosuchsandbox"}, 404, {"command": "true"})
        c("GET", sb + "/processes/{pid}", {"id": sid, "pid": "p999999"}, 404)

        c("DELETE", sb, p, 200)
        c("DELETE", sb, p, 404)
        self.check_coverage()

    def streamed(self, sid):
        """The upgrade as the spec documents it: 101 and its header, or 400
        for another protocol (valid by the spec's error schema)."""
        import execstream as es
        op = self.operation("/v1/sandboxes/{id}/exec", "POST")
        upgrade = [self.deref(x, self.spec) for x in op["parameters"]
                   if self.deref(x, self.spec)["name"] == "Upgrade"][0]
        self.assertEqual(upgrade["schema"]["enum"], [es.PROTOCOL])
        s = es.ExecStream(self.daemon.socket_path, sid, {"argv": ["sh", "-c", "exit 6"],
                                                        "tty": True})
        self.addCleanup(s.close)
        self.assertEqual(s.status, 101, s.error)
        self.assertIn("101", op["responses"])
        self.assertEqual(s.headers.get("upgrade"),
                         op["responses"]["101"]["headers"]["Upgrade"]["schema"]["const"])
        self.assertEqual(s.wait_exit()["exit_code"], 6)
        s = es.ExecStream(self.daemon.socket_path, sid, {"command": "true"}, upgrade="h2c")
        self.addCleanup(s.close)
        self.assertEqual(s.status, 400)
        self.assertValid({"$ref": "#/components/schemas/Error"}, s.error, "refused upgrade")

    def s3rver(self, bucket):
        """An s3rver (npm) on a loopback port with one bucket, ended at cleanup; its URL."""
        import signal
        import socket
        import subprocess
        import tempfile
        with socket.socket() as sk:
            sk.bind(("127.0.0.1", 0))
            port = sk.getsockname()[1]
        data = tempfile.mkdtemp(prefix="airlock-openapi-s3-")
        bin_ = os.path.join(at.SOURCE_ROOT, "tests", "node_modules", ".bin", "s3rver")
        proc = subprocess.Popen([bin_, "-d", data, "-a", "127.0.0.1", "-p", str(port),
                                 "--configure-bucket", bucket], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)

        def stop():
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)
            import shutil
            shutil.rmtree(data, ignore_errors=True)
        self.addCleanup(stop)
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                return "http://127.0.0.1:%d" % port
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("s3rver did not start")
                time.sleep(0.1)

    def check_coverage(self):
        spec_ops = {(t, m.upper()) for t, item in self.spec["paths"].items() for m in item
                    if m.upper() in METHODS}
        self.assertEqual(spec_ops - self.called, set(), "documented operations never answered 2xx")

    def test_undocumented_methods_and_paths(self):
        sid = self.sandbox()["id"]
        run = self.client.exec(sid, command="sleep 30", yield_ms=1)
        values = {"id": sid, "pid": run["process_id"], "snapshot_id": "0123456789abcdef",
                  "name": "no-such-image"}
        for template, item in self.spec["paths"].items():
            path = template
            for k, v in values.items():
                path = path.replace("{%s}" % k, v)
            documented = {m.upper() for m in item if m.upper() in METHODS}
            for method in METHODS:
                if method in documented or method == "HEAD":
                    continue
                with self.subTest(method=method, path=template):
                    q = "?path=x" if template.endswith(("/files", "/dirs")) else ""
                    r = self.client.request(method, path + q)
                    self.assertEqual(r.status, 405, "%s %s: %r" % (method, template, r))
                    self.assertValid({"$ref": "#/components/schemas/Error"}, r.json, "405 answer")
                    self.assertEqual(r.json["error"]["code"], "method_not_allowed")
        for path in ("/v1/nope", "/v2/info", "/v1/sandboxes/%s/nope" % sid, "/v1/snapshots/a/b",
                     "/v1/images/a/b",
                     "/v1/sandboxes/%s/processes/%s/nope/x" % (sid, run["process_id"]), "/"):
            with self.subTest(path=path):
                r = self.client.request("GET", path)
                self.assertEqual(r.status, 404, "%s: %r" % (path, r))
                self.assertValid({"$ref": "#/components/schemas/Error"}, r.json, "404 answer")
        self.client.request("DELETE", "/v1/sandboxes/%s/processes/%s" % (sid, run["process_id"]))


if __name__ == "__main__":
    at.main()
