#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""What persist and snapshot write comes back whole, and a hydrate that
cannot be done leaves the workspace as it was.

A full disk during a hydrate was a libarchive warning taken as success:
the hydrate answered 200 and left files silently zero-filled.  A text check
of symlink targets refused every absolute link (each Python venv has one),
so a persisted workspace or a snapshot could not come back, which broke
the harness's resume, and it let `s -> .`, `t -> s/s/../..` through all
the same: links are now judged by resolution, inside the sandbox."""

import os
import tarfile

import security_test as st


tar_bytes, member = st.at.tar_bytes, st.at.tar_member


class RoundTrips(st.SecurityTestCase):

    def put(self, sid, data):
        return self.client.request("PUT", "/v1/sandboxes/%s/workspace" % sid, data,
                                   headers={"Content-Type": "application/x-tar"})

    def test_hydrate_beyond_the_disk_cap_leaves_the_workspace_whole(self):
        sid = self.sandbox(limits={"disk": "8M"})["id"]
        self.out(sid, "echo keep > /workspace/old.txt")
        data = tar_bytes([(member("small.txt"), b"s\n"),
                          (member("big.bin"), os.urandom(12 << 20))])
        r = self.put(sid, data)
        left = self.out(sid, "ls -a /workspace; ls -a / | grep -c airlock-hydrate; true")
        self.attack_ok("hydrate on a full disk reports success", r.status == 507,
                       "answered %d" % r.status)
        self.assertEqual(r.json["error"]["code"], "no_space")
        self.assertIn("big.bin", r.json["error"]["message"])
        self.attack_ok("failed hydrate changes the workspace", left == ".\n..\nold.txt\n0\n",
                       "left: %r" % left)
        self.assertEqual(self.out(sid, "cat /workspace/old.txt"), "keep\n")

    def test_persisted_symlinks_come_back_as_they_were(self):
        # Targets are the sandbox's to resolve, inside its root: a venv's
        # absolute link, links above the workspace and loops all round-trip.
        sid = self.sandbox()["id"]
        self.out(sid, "mkdir -p /workspace/venv/bin && ln -s /usr/bin/env /workspace/venv/bin/python"
                      " && ln -s ../../.. /workspace/venv/up && ln -s . /workspace/s"
                      " && ln -s s/s/../.. /workspace/t && ln -s /nonexistent /workspace/dangling")
        links = "for f in venv/bin/python venv/up s t dangling; do readlink /workspace/$f; done"
        want = self.out(sid, links)
        archive = self.client.expect(200, "GET", "/v1/sandboxes/%s/workspace" % sid).body
        fresh = self.sandbox()["id"]
        r = self.put(fresh, archive)
        self.attack_ok("persisted workspace with absolute symlinks unrestorable",
                       r.status == 200, "hydrate answered %d" % r.status)
        self.assertEqual(self.out(fresh, links), want)
        self.assertEqual(self.out(fresh, "/workspace/venv/bin/python echo ran"), "ran\n")

    def test_writes_through_resolving_links_are_refused(self):
        # `t -> s/s/../..` with `s -> .` names the sandbox's / without any
        # leading '/' or a '..' a text check sees; nothing is written
        # through it, nor through a link to /.
        sid = self.sandbox()["id"]
        for links, through in (([("s", "."), ("t", "s/s/../..")], "t/etc/evil"),
                               ([("escape", "/")], "escape/etc/evil")):
            data = tar_bytes([(member(n, tarfile.SYMTYPE, link=l), None) for n, l in links] +
                             [(member(through), b"x")])
            r = self.put(sid, data)
            written = self.client.exec(sid, ["test", "-e", "/etc/evil"])["exit_code"] == 0
            self.attack_ok("hydrate writes through %s" % through.split("/")[0],
                           r.status == 400 and not written,
                           "answered %d, /etc/evil %s" % (r.status,
                                                          "written" if written else "absent"))

    def test_snapshot_with_absolute_symlinks_restores(self):
        # Every package install leaves some (/etc/alternatives/...).
        sid = self.sandbox()["id"]
        self.out(sid, "ln -s /usr/bin/env /usr/local/bin/myenv && mkdir -p /workspace/v/bin && "
                      "ln -s /usr/bin/env /workspace/v/bin/python")
        snap = self.client.expect(201, "POST", "/v1/sandboxes/%s/snapshots" % sid,
                                  {"processes": False}).json["id"]
        try:
            r = self.client.request("POST", "/v1/sandboxes", {"snapshot": snap})
            if r.status == 201:
                self.addCleanup(self._destroy_quietly, r.json["id"])
            self.attack_ok("snapshot with absolute symlinks unrestorable", r.status == 201,
                           "restore answered %d" % r.status)
            new = r.json["id"]
            self.assertEqual(self.out(new, "readlink /usr/local/bin/myenv; "
                                           "readlink /workspace/v/bin/python"),
                             "/usr/bin/env\n/usr/bin/env\n")
            self.assertEqual(self.out(new, "/workspace/v/bin/python echo ran"), "ran\n")
        finally:
            self.client.request("DELETE", "/v1/snapshots/%s" % snap)


if __name__ == "__main__":
    st.main()
