#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The security battery: escapes through images (docs/images.md).

Images written with Python's tarfile in the OCI layout format (the helpers
of tests/integration/test_images.py); the sandboxes made from them try to
reach the shared layers, the host and each other."""

import json
import os
import shutil
import tarfile
import tempfile

from security_test import SecurityTestCase, at
from test_images import busybox_layer, config_json, entry, oci_archive, sha, tar_of


def docker_save(layers, layer_paths=None, config_path=None, outer_extra=()):
    """A `docker save` archive whose manifest.json names the layers and the
    config by the paths given (default: where docker puts them)."""
    diffs = [sha(l) for l in layers]
    config = config_json(diffs)
    names = ["%s/layer.tar" % d for d in diffs]
    manifest = json.dumps([{"Config": config_path or sha(config) + ".json",
                            "RepoTags": ["t:latest"],
                            "Layers": layer_paths or names}]).encode()
    members = [(entry(sha(config) + ".json"), config), (entry("manifest.json"), manifest)]
    members += [(entry(n), l) for n, l in zip(names, layers)]
    return tar_of(members + list(outer_extra))


class ImageEscapeTest(SecurityTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.images_dir = os.path.join(cls.daemon.state_dir, "images")
        with open("/var/lib/airlock/rootfs/busybox/bin/busybox", "rb") as f:
            bb = f.read()
        top = tar_of([(entry("etc/", tarfile.DIRTYPE, 0o755), None),
                      (entry("etc/victim"), b"original\n"),
                      (entry("opt/", tarfile.DIRTYPE, 0o755), None),
                      # A setuid-root program in the image.
                      (entry("opt/id", mode=0o4755), bb),
                      # Links that point at the host's paths.
                      (entry("hostetc", tarfile.SYMTYPE, link="/etc"), None),
                      (entry("up", tarfile.SYMTYPE, link="../../../../../../"), None)])
        data = oci_archive([busybox_layer(), top], cfg={"User": "1000:1000"})
        r = cls.client.request("POST", "/v1/images?name=attack", data)
        if r.status != 201:
            raise AssertionError("import: %r" % r)

    def layer_files(self, rel):
        root = os.path.join(self.images_dir, "layers", "sha256")
        return [os.path.join(root, l, rel) for l in os.listdir(root)
                if os.path.lexists(os.path.join(root, l, rel))]

    def test_layers_are_not_written_through(self):
        sid = self.sandbox(image="attack")["id"]
        as_root = {"user": "0"}
        self.sh(sid, "echo changed > /etc/victim; rm -f /bin/busybox; "
                     "mknod /etc/.wh.passwd c 0 0; rm -rf /etc/passwd", **as_root)
        (victim,) = self.layer_files("etc/victim")
        with open(victim) as f:
            content = f.read()
        self.attack_ok("overwrite an image layer's file from a sandbox", content == "original\n",
                       "the layer still holds %r" % content)
        self.attack_ok("delete an image layer's file from a sandbox",
                       len(self.layer_files("bin/busybox")) == 1 and
                       len(self.layer_files("etc/passwd")) == 1, "both still in their layers")
        other = self.sandbox(image="attack")["id"]
        r = self.sh(other, "cat /etc/victim; test -e /etc/passwd && echo passwd")
        self.attack_ok("reach another sandbox of the same image through its layers",
                       r["stdout"] == "original\npasswd\n", "the other sees %r" % r["stdout"])

    def test_setuid_image_program_gives_no_root(self):
        sid = self.sandbox(image="attack")["id"]
        r = self.sh(sid, "/opt/id -u; stat -c %a /opt/id")
        self.attack_ok("setuid-root program of an image", r["stdout"] == "1000\n755\n",
                       "id -u and its mode: %r" % r["stdout"])
        (on_host,) = self.layer_files("opt/id")
        mode = os.stat(on_host).st_mode & 0o7777
        self.attack_ok("setuid-root file in the host's image store", mode == 0o755,
                       "mode %o on the host" % mode)

    def test_image_links_resolve_in_the_sandbox(self):
        sid = self.sandbox(image="attack")["id"]
        r = self.sh(sid, "cat /hostetc/victim; cd /up && pwd -P; ls /up/opt")
        self.attack_ok("an image's symlinks to /etc and above / reach the host",
                       r["stdout"] == "original\n/\nid\n", "read %r" % r["stdout"][:200])
        r = self.sh(sid, "cat /proc/self/mountinfo")
        self.attack_ok("the image store's host path in mountinfo",
                       self.images_dir not in r["stdout"], "mountinfo: %r" % r["stdout"][:300])

    def test_hostile_layers_write_nothing_on_the_host(self):
        canary = "/etc/airlock-image-canary"
        self.assertFalse(os.path.exists(canary))
        attempts = {
            "whiteout of the host's /etc through a symlink": [
                (entry("etc", tarfile.SYMTYPE, link="/etc"), None),
                (entry("etc/.wh.passwd"), b"")],
            "write through a symlink to the host": [
                (entry("etc", tarfile.SYMTYPE, link="/etc"), None),
                (entry("etc/airlock-image-canary"), b"x")],
            "opaque marker through a symlink": [
                (entry("e", tarfile.SYMTYPE, link="/etc"), None),
                (entry("e/.wh..wh..opq"), b"")],
            "path with ..": [(entry("../../../../etc/airlock-image-canary"), b"x")],
            "hard link to a host file": [(entry("p", tarfile.LNKTYPE, link="/etc/passwd"), None)],
            "device node": [(entry("mem", tarfile.CHRTYPE), None)],
        }
        with open("/etc/passwd", "rb") as f:
            passwd = f.read()
        for name, members in attempts.items():
            r = self.client.request("POST", "/v1/images?name=hostile",
                                    oci_archive([busybox_layer(), tar_of(members)]))
            with open("/etc/passwd", "rb") as f:
                intact = f.read() == passwd
            self.attack_ok("image import: " + name,
                           r.status == 400 and intact and not os.path.exists(canary),
                           "HTTP %d %s" % (r.status, r.body[:160]))
        self.assertEqual(os.listdir(os.path.join(self.images_dir, "tmp")), [])


    def host_dir_intact(self, outside):
        """The host directory the hostile layers aim at: only its victim,
        unchanged, no whiteout or opaque marker made in it."""
        names = sorted(os.listdir(outside))
        with open(os.path.join(outside, "victim"), "rb") as f:
            victim = f.read()
        try:
            opaque = os.getxattr(outside, "trusted.overlay.opaque")
        except OSError:
            opaque = None
        st = os.stat(outside)
        return (names == ["victim"] and victim == b"host data\n" and opaque is None and
                oct(st.st_mode & 0o7777) == "0o755" and st.st_uid == 0,
                "%r %r %r %o" % (names, victim, opaque, st.st_mode))

    def test_hostile_layers_through_a_lower_layers_symlink(self):
        # The symlink is in one layer, the write, whiteout, opaque marker or
        # hard link that goes through it in the next: each layer is unpacked
        # on its own, so the lower symlink must not be followed on the host.
        # Refused, or taken as a directory of the upper layer (overlayfs
        # hides the lower symlink): either way nothing lands in the host
        # directory, and a sandbox of the image cannot reach it.
        outside = tempfile.mkdtemp(prefix="airlock-image-target-")
        self.addCleanup(shutil.rmtree, outside, True)
        os.chmod(outside, 0o755)
        with open(os.path.join(outside, "victim"), "w") as f:
            f.write("host data\n")
        bb = busybox_layer()
        lower = tar_of([(entry("lnk", tarfile.SYMTYPE, link=outside), None),
                        (entry("up", tarfile.SYMTYPE, link="../../../../../../.." + outside), None),
                        (entry("f"), b"lower file\n")])
        attempts = {
            "write through a lower layer's symlink": [(entry("lnk/canary"), b"x")],
            "write through a lower layer's relative symlink": [(entry("up/canary"), b"x")],
            "whiteout through a lower layer's symlink": [(entry("lnk/.wh.victim"), b"")],
            "opaque marker through a lower layer's symlink": [(entry("lnk/.wh..wh..opq"), b"")],
            "hard link through a lower layer's symlink": [
                (entry("h", tarfile.LNKTYPE, link="lnk/victim"), None)],
            "hard link to a lower layer's file": [(entry("h", tarfile.LNKTYPE, link="f"), None)],
            "whiteout of ..": [(entry("lnk/.wh..."), b"")],
            "whiteout of a whiteout name": [(entry(".wh..wh.x"), b"")],
        }
        for name, members in attempts.items():
            r = self.client.request("POST", "/v1/images?name=hostile-lower",
                                    oci_archive([bb, lower, tar_of(members)]))
            intact, how = self.host_dir_intact(outside)
            self.attack_ok("image import: " + name, r.status in (400, 201) and intact,
                           "HTTP %d %s; host dir %s" % (r.status, r.body[:120], how))
            if r.status != 201:
                continue
            # Accepted: the image's own directory, seen only inside.
            sid = self.sandbox(image="hostile-lower")["id"]
            res = self.sh(sid, "ls -a /lnk/ /up/; cat /lnk/victim /up/victim /h; "
                               "echo x > /lnk/w; echo x > /up/w; echo x > /h", user="0")
            intact, how = self.host_dir_intact(outside)
            self.attack_ok("sandbox of an image with %s" % name,
                           intact and "host data" not in res["stdout"],
                           "read %r; host dir %s" % (res["stdout"][:160], how))
            self.client.request("DELETE", "/v1/sandboxes/" + sid)
            self.assertEqual(self.client.request("DELETE", "/v1/images/hostile-lower").status,
                             200)
        self.assertEqual(os.listdir(os.path.join(self.images_dir, "tmp")), [])

    def test_docker_save_paths_aiming_at_host_files(self):
        # manifest.json names its config and layers by path: a path out of
        # the archive, an absolute one, or an archive member that is a link
        # to a host file must never read the host's file as a layer.
        bb = busybox_layer()
        d = sha(bb)
        attempts = {
            "layer path with ..": docker_save([bb], layer_paths=["../../../../etc/shadow"]),
            "absolute layer path": docker_save([bb], layer_paths=["/etc/shadow"]),
            "config path with ..": docker_save([bb], config_path="../../../etc/passwd"),
            "layer path a symlink to a host file": docker_save(
                [bb], layer_paths=["x/layer.tar"],
                outer_extra=[(entry("x/layer.tar", tarfile.SYMTYPE, link="/etc/shadow"), None)]),
            "layer path a symlink out of the archive": docker_save(
                [bb], layer_paths=["x/layer.tar"],
                outer_extra=[(entry("x/layer.tar", tarfile.SYMTYPE,
                                    link="../../../../../etc/shadow"), None)]),
            "layer path a hard link to a host file": docker_save(
                [bb], layer_paths=["x/layer.tar"],
                outer_extra=[(entry("x/layer.tar", tarfile.LNKTYPE, link="/etc/shadow"), None)]),
            "layer path through a directory symlink": docker_save(
                [bb], layer_paths=["x/%s/layer.tar" % d],
                outer_extra=[(entry("x", tarfile.SYMTYPE, link="/var/lib/airlock"), None)]),
        }
        layers_dir = os.path.join(self.images_dir, "layers", "sha256")
        before = sorted(os.listdir(layers_dir))
        for name, data in attempts.items():
            r = self.client.request("POST", "/v1/images?name=hostile-docker", data)
            self.attack_ok("docker save import: " + name,
                           r.status == 400 and sorted(os.listdir(layers_dir)) == before,
                           "HTTP %d %s" % (r.status, r.body[:160]))
        names = [i["name"] for i in self.client.expect(200, "GET", "/v1/images").json["images"]]
        self.assertNotIn("hostile-docker", names)
        self.assertEqual(os.listdir(os.path.join(self.images_dir, "tmp")), [])
        # The control: the same archive with honest paths is taken.
        r = self.client.request("POST", "/v1/images?name=hostile-docker", docker_save([bb]))
        self.assertEqual(r.status, 201, r.body[:200])
        self.assertEqual(self.client.request("DELETE", "/v1/images/hostile-docker").status, 200)

if __name__ == "__main__":
    at.main()
