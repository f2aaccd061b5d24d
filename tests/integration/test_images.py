#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Images: POST/GET/DELETE /v1/images, `airlock image`, sandboxes made from images.

The images are made here by real tools, with no registry: buildah builds
them from the busybox rootfs (and a Python with a venv copied from this
host), buildah, podman and skopeo write them as `docker save` archives,
OCI archives and OCI layout directories.  What those tools cannot be made
to write (an opaque directory, zstd layers, hostile archives) is written
with Python's tarfile in the same formats, with correct digests unless a
test breaks one on purpose."""

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile

from airlock_test import AIRLOCK_CLI, AirlockTestCase, main, tar_bytes

BUSYBOX = "/var/lib/airlock/rootfs/busybox"
HOST_PYTHON = "/usr/bin/python3.11"


def sha(data):
    return hashlib.sha256(data).hexdigest()


tar_of = tar_bytes  # (TarInfo, bytes or None) pairs


def entry(name, kind=tarfile.REGTYPE, mode=0o644, link=None, uid=0, gid=0):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.uid, ti.gid = uid, gid
    if link is not None:
        ti.linkname = link
    return ti


def busybox_layer():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        t.add(BUSYBOX, arcname=".")
    return buf.getvalue()


def config_json(diff_ids, cfg=None):
    return json.dumps({"architecture": "amd64", "os": "linux", "config": cfg or {},
                       "rootfs": {"type": "layers",
                                  "diff_ids": ["sha256:" + d for d in diff_ids]}}).encode()


def oci_archive(layers, cfg=None, compress=None, blob_override=None, diff_override=None):
    """An OCI image layout as a tar: layers are uncompressed tars, written
    as gzip or zstd blobs when compress says so.  blob_override replaces a
    blob's content (keeping its name), diff_override the config's diff_ids."""
    blobs, descs, diffs = {}, [], []
    for layer in layers:
        diffs.append(sha(layer))
        if compress == "gzip":
            blob, mt = gzip.compress(layer), "application/vnd.oci.image.layer.v1.tar+gzip"
        elif compress == "zstd":
            blob = subprocess.run(["zstd", "-q", "-c"], input=layer, stdout=subprocess.PIPE,
                                  check=True).stdout
            mt = "application/vnd.oci.image.layer.v1.tar+zstd"
        else:
            blob, mt = layer, "application/vnd.oci.image.layer.v1.tar"
        blobs[sha(blob)] = blob
        descs.append({"mediaType": mt, "digest": "sha256:" + sha(blob), "size": len(blob)})
    config = config_json(diff_override or diffs, cfg)
    blobs[sha(config)] = config
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": "sha256:" + sha(config), "size": len(config)},
        "layers": descs}).encode()
    blobs[sha(manifest)] = manifest
    index = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json",
         "digest": "sha256:" + sha(manifest), "size": len(manifest)}]}).encode()
    for name, data in (blob_override or {}).items():
        blobs[name] = data
    members = [(entry("oci-layout"), b'{"imageLayoutVersion": "1.0.0"}'),
               (entry("index.json"), index)]
    members += [(entry("blobs/sha256/" + d), b) for d, b in blobs.items()]
    return tar_of(members)


def docker_archive(layers, cfg=None, outer_extra=()):
    """A `docker save` archive (the format before docker 25)."""
    diffs = [sha(l) for l in layers]
    config = config_json(diffs, cfg)
    names = ["%s/layer.tar" % d for d in diffs]
    manifest = json.dumps([{"Config": sha(config) + ".json", "RepoTags": ["t:latest"],
                            "Layers": names}]).encode()
    members = [(entry(sha(config) + ".json"), config), (entry("manifest.json"), manifest)]
    members += [(entry(n), l) for n, l in zip(names, layers)]
    return tar_of(members + list(outer_extra))


class ImageTest(AirlockTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.images_dir = os.path.join(cls.daemon.state_dir, "images")
        cls.tools = tempfile.mkdtemp(prefix="airlock-images-")
        cls.addClassCleanup(shutil.rmtree, cls.tools, True)
        for tool in ("buildah", "podman", "skopeo", "zstd"):
            if not shutil.which(tool):
                raise AssertionError("%s is missing: run scripts/setup.sh" % tool)
        cls.build_images()

    # ---- making the images with buildah, podman and skopeo ----

    @classmethod
    def tool(cls, name, *args):
        store = ["--root", os.path.join(cls.tools, "root"), "--runroot",
                 os.path.join(cls.tools, "run"), "--storage-driver", "vfs"]
        if name == "skopeo":
            store = []
        r = subprocess.run([name] + store + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=300)
        if r.returncode != 0:
            raise AssertionError("%s %s: %s" % (name, " ".join(args), r.stderr[-2000:]))
        return r.stdout.strip()

    @classmethod
    def build_images(cls):
        t = cls.tools
        # base: busybox, a file and a directory the next layer deletes.
        c = cls.tool("buildah", "from", "scratch")
        cls.tool("buildah", "copy", c, BUSYBOX, "/")
        extra = os.path.join(t, "extra")
        os.makedirs(os.path.join(extra, "etc"))
        os.makedirs(os.path.join(extra, "data", "old"))
        # The image's user is in a second group: commands get it too.
        with open(os.path.join(BUSYBOX, "etc/group")) as f:
            group = f.read() + "staff:x:50:root,sandbox\nother:x:51:nobody\n"
        for p, text in (("etc/victim", "doomed\n"), ("data/old/a", "a\n"), ("data/old/b", "b\n"),
                        ("etc/group", group)):
            with open(os.path.join(extra, p), "w") as f:
                f.write(text)
        cls.tool("buildah", "copy", c, extra, "/")
        cls.tool("buildah", "config", "--env", "FOO=bar from the image", "--workingdir",
                 "/srv/app", "--user", "sandbox", "--cmd",
                 '["/bin/sh", "-c", "echo hello from $FOO"]', c)
        cls.tool("buildah", "commit", "--rm", c, "base")
        # layered: deletes a file and a directory of base, adds a file.
        c = cls.tool("buildah", "from", "base")
        mnt = cls.tool("buildah", "mount", c)
        os.unlink(os.path.join(mnt, "etc/victim"))
        shutil.rmtree(os.path.join(mnt, "data/old"))
        with open(os.path.join(mnt, "etc/new"), "w") as f:
            f.write("new\n")
        cls.tool("buildah", "umount", c)
        cls.tool("buildah", "config", "--user", "0:0", c)
        cls.tool("buildah", "commit", "--rm", c, "layered")
        # python: this host's python3 and a venv made in the image.
        stage = os.path.join(t, "python")
        cls.python_stage(stage)
        c = cls.tool("buildah", "from", "base")
        cls.tool("buildah", "copy", c, stage, "/")
        cls.tool("buildah", "run", "--isolation", "chroot", "--user", "0:0", c, "--",
                 "/usr/bin/python3", "-m", "venv", "--without-pip", "/opt/venv")
        cls.tool("buildah", "config", "--env", "VIRTUAL_ENV=/opt/venv", "--env",
                 "PATH=/opt/venv/bin:/usr/sbin:/usr/bin:/sbin:/bin", "--workingdir", "/opt/app",
                 "--user", "1000:1000", "--cmd", '["python", "-c", "import sys; print(sys.prefix)"]',
                 c)
        cls.tool("buildah", "commit", "--rm", c, "python")
        # Written by each tool in its formats.
        cls.archives = {
            "base-docker": os.path.join(t, "base-docker.tar"),
            "base-oci": os.path.join(t, "base-oci.tar"),
            "base-ocidir": os.path.join(t, "base-ocidir"),
            "layered-docker": os.path.join(t, "layered-docker.tar"),
            "python-oci": os.path.join(t, "python-oci.tar"),
        }
        cls.tool("buildah", "push", "base", "docker-archive:%s:base:latest"
                 % cls.archives["base-docker"])
        cls.tool("podman", "save", "--format", "oci-archive", "-o", cls.archives["base-oci"],
                 "base")
        cls.tool("skopeo", "copy", "docker-archive:" + cls.archives["base-docker"],
                 "oci:%s:base" % cls.archives["base-ocidir"])
        cls.tool("podman", "save", "--format", "docker-archive", "-o",
                 cls.archives["layered-docker"], "layered")
        cls.tool("buildah", "push", "python", "oci-archive:" + cls.archives["python-oci"])

    @staticmethod
    def python_stage(stage):
        """The host's python3.11, its libraries and its standard library."""
        def copy(src):
            dst = os.path.join(stage, os.path.realpath(src).lstrip("/"))
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(os.path.realpath(src), dst)
            return dst
        copy(HOST_PYTHON)
        os.symlink("python3.11", os.path.join(stage, "usr/bin/python3"))
        ldd = subprocess.run(["ldd", HOST_PYTHON], stdout=subprocess.PIPE, text=True,
                             check=True).stdout
        for line in ldd.splitlines():
            for word in line.split():
                if word.startswith("/"):
                    dst = os.path.join(stage, word.lstrip("/"))
                    os.makedirs(os.path.dirname(dst), exist_ok=True)
                    shutil.copy2(os.path.realpath(word), dst)
        shutil.copytree("/usr/lib/python3.11", os.path.join(stage, "usr/lib/python3.11"),
                        symlinks=True, ignore=shutil.ignore_patterns(
                            "test", "idlelib", "tkinter", "turtledemo", "lib2to3",
                            "__pycache__", "config-3.11-*", "dist-packages", "site-packages"))

    # ---- helpers ----

    def import_bytes(self, name, data, status=201, **query):
        q = "&".join(["name=" + name] + ["%s=%s" % kv for kv in query.items()])
        r = self.client.request("POST", "/v1/images?" + q, data,
                                headers={"Content-Type": "application/x-tar"}, timeout=300)
        self.assertEqual(r.status, status, r.body[:2000])
        if status == 201:
            self.addCleanup(self.remove_quietly, name)
        return r.json

    def import_file(self, name, path):
        with open(path, "rb") as f:
            return self.import_bytes(name, f.read())

    def remove_quietly(self, name):
        self.client.request("DELETE", "/v1/images/" + name)

    def cli(self, *args, stdin=None, input=None):
        return subprocess.run([AIRLOCK_CLI, "--socket", self.daemon.socket_path] + list(args),
                              stdin=stdin, input=input, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=300)

    def layers(self):
        return sorted(os.listdir(os.path.join(self.images_dir, "layers", "sha256")))

    def assert_store_clean(self, names_before, layers_before):
        """A refused import left nothing: no record, no layer, no temp dir."""
        names = [i["name"] for i in self.client.expect(200, "GET", "/v1/images").json["images"]]
        self.assertEqual(sorted(names), sorted(names_before))
        self.assertEqual(self.layers(), layers_before)
        self.assertEqual(os.listdir(os.path.join(self.images_dir, "tmp")), [])

    # ---- importing what the tools wrote ----

    def test_formats_import_alike_and_share_layers(self):
        ids = set()
        for fmt in ("base-docker", "base-oci"):
            ids.add(self.import_file(fmt, self.archives[fmt])["id"])
        # A directory (OCI layout) and stdin, through the CLI.
        r = self.cli("image", "import", "base-ocidir", self.archives["base-ocidir"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.addCleanup(self.remove_quietly, "base-ocidir")
        with open(self.archives["base-docker"], "rb") as f:
            r = self.cli("image", "import", "base-stdin", stdin=f)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.addCleanup(self.remove_quietly, "base-stdin")
        for name in ("base-ocidir", "base-stdin"):
            ids.add(self.client.expect(200, "GET", "/v1/images/" + name).json["id"])
        self.assertEqual(len(ids), 1, ids)
        # One layer on disk for the four of them.
        self.assertEqual(len(self.layers()), 1, self.layers())
        r = self.cli("image", "ls")
        self.assertEqual(r.returncode, 0, r.stderr)
        for name in ("base-docker", "base-oci", "base-ocidir", "base-stdin"):
            self.assertIn(name.encode(), r.stdout)
        # Again under a taken name: refused, the first one kept.
        with open(self.archives["base-oci"], "rb") as f:
            r = self.client.request("POST", "/v1/images?name=base-oci", f.read())
        self.assertEqual(r.status, 409, r.body)

    def test_config_becomes_the_sandbox_defaults(self):
        self.import_file("base", self.archives["base-docker"])
        sb = self.sandbox(image="base")
        self.assertEqual(sb["image"], "base")
        sid = sb["id"]
        # User sandbox (1000:1000 in the image's /etc/passwd), its home,
        # WorkingDir made though the image lacks it, Env.
        self.assertEqual(self.out(sid, "id -u; id -g; pwd; echo $HOME; echo $FOO"),
                         "1000\n1000\n/srv/app\n/home/sandbox\nbar from the image\n")
        # Its supplementary groups, from the image's /etc/group.
        self.assertEqual(self.out(sid, "id -G"), "1000 50\n")
        # Not root: no capabilities, no writing to /.
        r = self.sh(sid, "touch /nope")
        self.assertNotEqual(r["exit_code"], 0)
        self.assertIn("0000000000000000",
                      self.out(sid, "grep CapEff /proc/self/status"))
        # An exec may say who it runs as, and where.
        self.assertEqual(self.out(sid, "id -u; pwd", user="0", cwd="/tmp"), "0\n/tmp\n")
        r = self.client.exec_raw(sid, command="true", user="nobody")
        self.assertEqual(r.status, 400, r.body)
        # The image's files, owned as the image has them.
        self.assertEqual(self.out(sid, "cat /etc/victim; ls /data/old"), "doomed\na\nb\n")
        # `airlock run` runs the image's Cmd, or the command given.
        r = self.cli("run", "--image", "base")
        self.assertEqual((r.returncode, r.stdout), (0, b"hello from bar from the image\n"),
                         r.stderr)
        r = self.cli("run", "--image", "base", "--", "sh", "-c", "id -un")
        self.assertEqual((r.returncode, r.stdout), (0, b"sandbox\n"), r.stderr)

    def test_whiteouts_of_a_later_layer(self):
        self.import_file("layered", self.archives["layered-docker"])
        img = self.client.expect(200, "GET", "/v1/images/layered").json
        self.assertEqual(len(img["layers"]), 2, img)
        sid = self.sandbox(image="layered")["id"]
        self.assertEqual(self.out(sid, "id -u"), "0\n")
        r = self.sh(sid, "cat /etc/victim")
        self.assertNotEqual(r["exit_code"], 0, r)
        self.assertEqual(self.out(sid, "cat /etc/new; ls -a /data"), "new\n.\n..\n")
        # The deleted file is gone for good: a sandbox's writes do not bring it back.
        self.assertEqual(self.out(sid, "mkdir -p /data/old && ls /data/old | wc -l"), "0\n")

    def test_opaque_directory_and_zstd_gzip_layers(self):
        base = tar_of([(entry("data/", tarfile.DIRTYPE, 0o755), None),
                       (entry("data/old/", tarfile.DIRTYPE, 0o755), None),
                       (entry("data/old/a"), b"a\n"), (entry("data/old/b"), b"b\n"),
                       (entry("etc/", tarfile.DIRTYPE, 0o755), None),
                       (entry("etc/victim"), b"doomed\n")])
        top = tar_of([(entry("data/old/.wh..wh..opq"), b""), (entry("data/old/c"), b"c\n"),
                      (entry("etc/.wh.victim"), b"")])
        for compress in ("zstd", "gzip"):
            name = "opaque-" + compress
            self.import_bytes(name, oci_archive([busybox_layer(), base, top],
                                                cfg={"Cmd": ["sh"]}, compress=compress))
            sid = self.sandbox(image=name)["id"]
            self.assertEqual(self.out(sid, "ls /data/old; test -e /etc/victim || echo gone"),
                             "c\ngone\n")

    def test_python_image_with_a_venv(self):
        layers_before = len(self.layers())
        self.import_file("python", self.archives["python-oci"])
        sid = self.sandbox(image="python")["id"]
        self.assertEqual(self.out(sid, "python -c 'import sys; print(sys.prefix, sys.version_info[:2])'"),
                         "/opt/venv (3, 11)\n")
        self.assertEqual(self.out(sid, "command -v python; echo $VIRTUAL_ENV; pwd; id -u"),
                         "/opt/venv/bin/python\n/opt/venv\n/opt/app\n1000\n")
        # The venv's packages directory is the image's and is read-only to its user.
        r = self.sh(sid, "python -c 'import site; print(site.getsitepackages()[0])'")
        self.assertEqual(r["stdout"], "/opt/venv/lib/python3.11/site-packages\n", r)
        r = self.cli("run", "--image", "python")
        self.assertEqual((r.returncode, r.stdout), (0, b"/opt/venv\n"), r.stderr)
        # Base's layer and python's own: two more at most.
        self.assertLessEqual(len(self.layers()), layers_before + 2)

    def test_snapshot_of_an_image_sandbox_restores_on_the_image(self):
        self.import_file("snap", self.archives["base-oci"])
        sid = self.sandbox(image="snap")["id"]
        self.out(sid, "echo kept > /srv/app/note", user="0")
        snap = self.client.expect(201, "POST", "/v1/sandboxes/%s/snapshots" % sid,
                                  {"processes": False}).json
        self.addCleanup(self.client.request, "DELETE", "/v1/snapshots/" + snap["id"])
        self.client.destroy(sid)
        back = self.client.create(snapshot=snap["id"])
        self.addCleanup(self._destroy_quietly, back["id"])
        self.assertEqual(back["image"], "snap")
        self.assertEqual(self.out(back["id"], "cat note; id -u; cat /etc/victim; echo $FOO"),
                         "kept\n1000\ndoomed\nbar from the image\n")
        self.client.destroy(back["id"])
        # Removed, the image no longer serves the snapshot; imported again
        # from other content under its name, it is refused by its id.
        self.client.expect(200, "DELETE", "/v1/images/snap")
        r = self.client.request("POST", "/v1/sandboxes", {"snapshot": snap["id"]})
        self.assertEqual(r.status, 404, r.body)
        self.import_file("snap", self.archives["layered-docker"])
        r = self.client.request("POST", "/v1/sandboxes", {"snapshot": snap["id"]})
        self.assertEqual(r.status, 400, r.body)
        self.assertIn(b"imported again", r.body)

    # ---- removing ----

    def test_rm_refused_in_use_and_layers_collected(self):
        before = self.layers()
        self.import_file("keep", self.archives["base-docker"])
        self.import_file("gone", self.archives["layered-docker"])
        added = [l for l in self.layers() if l not in before]
        sid = self.sandbox(image="gone")["id"]
        r = self.client.request("DELETE", "/v1/images/gone")
        self.assertEqual(r.status, 409, r.body)
        self.assertIn(sid.encode(), r.body)
        self.client.destroy(sid)
        r = self.cli("image", "rm", "gone")
        self.assertEqual(r.returncode, 0, r.stderr)
        # The layer only "gone" had is deleted; the one "keep" shares is not.
        left = [l for l in self.layers() if l not in before]
        self.assertEqual(len(left), 1, (added, left))
        self.assertEqual(self.out(self.sandbox(image="keep")["id"], "cat /etc/victim"), "doomed\n")
        r = self.client.request("DELETE", "/v1/images/gone")
        self.assertEqual(r.status, 404, r.body)
        r = self.client.request("POST", "/v1/sandboxes", {"image": "gone"})
        self.assertEqual(r.status, 404, r.body)
        self.assertIn(b"no image 'gone'", r.body)

    # ---- hostile archives ----

    def test_hostile_archives_refused_and_nothing_left(self):
        names = [i["name"] for i in self.client.expect(200, "GET", "/v1/images").json["images"]]
        before = self.layers()
        outside = tempfile.mkdtemp(prefix="airlock-outside-")
        self.addCleanup(shutil.rmtree, outside, True)
        bb = busybox_layer()

        def layer(*members):
            return tar_of(list(members))

        cases = {
            "path escape": (oci_archive([bb, layer((entry("../../escape"), b"x"))]),
                            "'..' in path"),
            "absolute path": (oci_archive([layer((entry(outside + "/abs"), b"x"))]),
                              "absolute path"),
            "symlink then write": (
                oci_archive([layer((entry("link", tarfile.SYMTYPE, link=outside), None),
                                   (entry("link/file"), b"x"))]),
                "symlink"),
            "whiteout of ..": (oci_archive([bb, layer((entry("etc/.wh..."), b""))]),
                               "whiteout of an invalid name"),
            "whiteout through a symlink": (
                oci_archive([layer((entry("l", tarfile.SYMTYPE, link=outside), None),
                                   (entry("l/.wh.x"), b""))]),
                "not a directory of this layer"),
            "device node": (oci_archive([layer((entry("dev/mem", tarfile.CHRTYPE), None))]),
                            "device nodes are not allowed"),
            "fifo": (oci_archive([layer((entry("p", tarfile.FIFOTYPE), None))]),
                     "FIFOs are not allowed"),
            "hardlink out": (oci_archive([layer((entry("h", tarfile.LNKTYPE,
                                                       link="../../../etc/shadow"), None))]),
                             "'..' in path"),
            "hardlink to absolute": (oci_archive([layer((entry("h", tarfile.LNKTYPE,
                                                            link="/etc/shadow"), None))]),
                                     "absolute path"),
            "wrong blob digest": (
                oci_archive([layer((entry("f"), b"honest"))],
                            blob_override={sha(layer((entry("f"), b"honest"))):
                                           layer((entry("f"), b"tampered"))}),
                "does not match its digest"),
            "wrong diff_id": (oci_archive([layer((entry("f"), b"x"))],
                                          diff_override=["0" * 64]),
                              "does not match the config's diff_id"),
            "outer member escapes": (
                tar_of([(entry("../index.json"), b"{}")]), "'..' in path"),
            "no manifest": (tar_of([(entry("hello"), b"x")]), "neither index.json"),
        }
        # A 100 GiB member declared in a header the data never follows.
        huge = entry("huge")
        huge.size = 100 << 30
        head = huge.tobuf(tarfile.PAX_FORMAT)
        cases["huge declared size"] = (oci_archive([head + b"\0" * 4096]), "exceeds the limit")
        for what, (data, message) in cases.items():
            with self.subTest(what):
                r = self.client.request("POST", "/v1/images?name=hostile", data,
                                        headers={"Content-Type": "application/x-tar"})
                self.assertIn(r.status, (400, 413), (what, r.status, r.body))
                if message:
                    self.assertIn(message, r.json["error"]["message"], what)
                self.assert_store_clean(names, before)
                self.assertEqual(os.listdir(outside), [], what)
        # A docker save archive whose layer was changed after its config was written.
        honest = layer((entry("f"), b"honest"))
        data = docker_archive([honest])
        self.assertEqual(data.count(b"honest"), 1)
        data = data.replace(b"honest", b"forged")
        r = self.client.request("POST", "/v1/images?name=hostile", data)
        self.assertEqual(r.status, 400, r.body)
        self.assertIn("does not match the config's diff_id", r.json["error"]["message"])
        self.assert_store_clean(names, before)
        r = self.client.request("POST", "/v1/images?name=hostile", b"\x00" * 1024 + b"junk" * 300)
        self.assertEqual(r.status, 400, r.body)
        self.assert_store_clean(names, before)
        # Names that are not file names.
        for bad in ("../x", "a/b", ".hidden", ""):
            r = self.client.request("POST", "/v1/images?name=" + bad, oci_archive([bb]))
            self.assertEqual(r.status, 400, (bad, r.body))
        self.assert_store_clean(names, before)

    def test_setuid_bits_dropped_and_owners_kept(self):
        data = oci_archive([busybox_layer(), tar_of([
            (entry("opt/", tarfile.DIRTYPE, 0o755), None),
            (entry("opt/suid", mode=0o4755, uid=1000, gid=1000), b"#!/bin/sh\nid -u\n"),
            (entry("opt/far", uid=100000, gid=200000), b"x")])])
        self.import_bytes("suid", data)
        layer_dirs = [os.path.join(self.images_dir, "layers", "sha256", l) for l in self.layers()]
        on_disk = [os.stat(os.path.join(d, "opt/suid")) for d in layer_dirs
                   if os.path.exists(os.path.join(d, "opt/suid"))]
        self.assertEqual(len(on_disk), 1)
        self.assertEqual(on_disk[0].st_mode & 0o7777, 0o755)
        sid = self.sandbox(image="suid")["id"]
        self.assertEqual(self.out(sid, "stat -c '%a %u %g' /opt/suid /opt/far"),
                         "755 1000 1000\n644 65534 65534\n")


if __name__ == "__main__":
    main()
