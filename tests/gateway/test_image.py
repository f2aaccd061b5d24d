# SPDX-License-Identifier: Apache-2.0
"""airlock-gateway --image NAME (docs/gateway.md): every service's sandboxes
are made from that image imported into airlockd, not from a rootfs.  The
image (busybox plus a marker file and an Env) is written with Python's
tarfile in the OCI layout (tests/integration/test_images.py) and imported
through airlockd's API; each service's create is called over its own REST
API, and the airlockd sandbox behind it is inspected and read."""

import json
import os
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_test as gt  # noqa: E402
from gateway_test import at  # noqa: E402
from test_images import busybox_layer, entry, oci_archive, tar_of  # noqa: E402

IMAGE = "gw-image"
MARKER = b"made from the gateway's image\n"


class GatewayImageTest(at.AirlockTestCase):
    daemon_args = gt.DAEMON_ARGS

    @classmethod
    def setUpClass(cls):
        if not os.access(gt.GATEWAY, os.X_OK):
            raise AssertionError("%s is missing: build first" % gt.GATEWAY)
        super().setUpClass()
        top = tar_of([(entry("etc/", tarfile.DIRTYPE, 0o755), None),
                      (entry("etc/gw-image-marker"), MARKER)])
        r = cls.client.request("POST", "/v1/images?name=" + IMAGE,
                               oci_archive([busybox_layer(), top],
                                           cfg={"Env": ["FROM_GW_IMAGE=yes"]}))
        if r.status != 201:
            raise AssertionError("image import: %r" % r)
        cls.key = "gwkey-img-" + os.urandom(12).hex()
        cls.gateway = gt.Gateway(cls.workdir, cls.daemon.socket_path, None, {cls.key: "tenant-i"},
                                 ["--image", IMAGE])
        cls.gateway.start()
        cls.addClassCleanup(cls.stop_gateway)

    @classmethod
    def stop_gateway(cls):
        status = cls.gateway.stop()
        if status not in (0, None):
            raise AssertionError("airlock-gateway exited with %s:\n%s" % (status, cls.gateway.log()))

    def post(self, path, body, headers):
        req = urllib.request.Request(self.gateway.url + path, data=json.dumps(body).encode(),
                                     method="POST",
                                     headers=dict(headers, **{"Content-Type": "application/json"}))
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            raise AssertionError("POST %s: HTTP %d %s\n%s" % (path, e.code, e.read()[:300],
                                                              self.gateway.log()[-2000:]))

    def test_every_service_makes_its_sandboxes_from_the_image(self):
        bearer = {"Authorization": "Bearer " + self.key}
        creates = {
            "e2b": ("/sandboxes", {"templateID": "base"}, {"X-API-KEY": self.key}),
            "daytona": ("/daytona/api/sandbox", {}, bearer),
            "blaxel": ("/blaxel/v0/sandboxes", {"metadata": {"name": "img-test"}},
                       {"x-blaxel-authorization": "Bearer " + self.key}),
            "runloop": ("/v1/devboxes", {}, bearer),
            "vercel": ("/vercel/api/v1/sandboxes", {}, bearer),
        }
        for service, (path, body, headers) in creates.items():
            with self.subTest(service):
                before = {sb["id"] for sb in self.client.list()}
                status, _ = self.post(path, body, headers)
                self.assertLess(status, 300)
                made = [sid for sid in (sb["id"] for sb in self.client.list())
                        if sid not in before]
                self.assertEqual(len(made), 1, (service, made))
                info = self.client.inspect(made[0])
                self.assertEqual(info.get("image"), IMAGE, (service, info.get("image"),
                                                            info.get("rootfs")))
                r = self.client.read_file(made[0], "/etc/gw-image-marker")
                self.assertEqual((r.status, r.body), (200, MARKER), service)
                r = self.client.exec(made[0], command="echo $FROM_GW_IMAGE")
                self.assertEqual(r["stdout"], "yes\n", (service, r))

    def test_rootfs_and_image_together_refused(self):
        p = subprocess.run([gt.GATEWAY, "--keys", self.gateway.keys_path, "--rootfs", "/",
                            "--image", IMAGE, "--listen", "127.0.0.1:0"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 2, p)
        self.assertIn("give --rootfs or --image, not both", p.stderr)


if __name__ == "__main__":
    at.main()
