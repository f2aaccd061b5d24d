#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The security battery: escapes through images (docs/images.md).

Images written with Python's tarfile in the OCI layout format (the helpers
of tests/integration/test_images.py); the sandboxes made from them try to
reach the shared layers, the host and each other."""

import os
import tarfile

from security_test import SecurityTestCase, at
from test_images import busybox_layer, entry, oci_archive, tar_of


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


if __name__ == "__main__":
    at.main()
