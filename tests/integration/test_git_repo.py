#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""git_repo manifest entries: cloned by airlockd on the host (Debian's git,
as the sandbox's unprivileged host uid, hooks off), copied into the
workspace owned by the sandbox's root, at the ref the entry names.  A
hostile repository (symlinks out, hooks) changes nothing outside the
workspace."""

import os
import secrets
import shutil
import subprocess
import tempfile

import airlock_test as at

GIT_ENV = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.invalid",
               GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null")


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, check=True,
                          capture_output=True, text=True).stdout.strip()


class GitRepoTest(at.AirlockTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="airlock-it-git-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, ignore_errors=True)
        os.chmod(cls.tmp, 0o755)
        # A host file the hostile repository tries to reach or change.
        cls.host_canary = os.path.join(cls.tmp, "host-canary")
        with open(cls.host_canary, "w") as f:
            f.write("untouched\n")
        cls.hook_marker = os.path.join(cls.tmp, "hook-ran")

        cls.bare = os.path.join(cls.tmp, "repo.git")
        work = os.path.join(cls.tmp, "work")
        git(cls.tmp, "init", "-q", "--bare", "-b", "main", cls.bare)
        git(cls.tmp, "clone", "-q", cls.bare, work)
        os.makedirs(os.path.join(work, "sub", "deep"))
        with open(os.path.join(work, "README"), "w") as f:
            f.write("version one\n")
        with open(os.path.join(work, "sub", "deep", "f.txt"), "w") as f:
            f.write("in subpath\n")
        git(work, "add", "-A")
        git(work, "commit", "-qm", "one")
        cls.first_commit = git(work, "rev-parse", "HEAD")
        git(work, "tag", "v1")
        with open(os.path.join(work, "README"), "w") as f:
            f.write("version two\n")
        # Hostile content: symlinks out of the workspace, a hook directory
        # the repository points core.hooksPath at, a hook inside.
        os.symlink("/etc/passwd", os.path.join(work, "passwd-link"))
        os.symlink(cls.tmp, os.path.join(work, "host-dir-link"))
        os.makedirs(os.path.join(work, "hooks"))
        hook = os.path.join(work, "hooks", "post-checkout")
        with open(hook, "w") as f:
            f.write("#!/bin/sh\ntouch %s\necho pwned > %s\n" % (cls.hook_marker, cls.host_canary))
        os.chmod(hook, 0o755)
        git(work, "add", "-A")
        git(work, "commit", "-qm", "two")
        git(work, "push", "-q", "origin", "main", "v1")
        git(work, "push", "-q", "origin", "main:other")
        # Hooks in the bare repository itself (a server-side clone would run none
        # of these, but a host-side one must not either).
        for name in ("post-checkout", "post-merge", "reference-transaction", "pre-auto-gc"):
            p = os.path.join(cls.bare, "hooks", name)
            with open(p, "w") as f:
                f.write("#!/bin/sh\ntouch %s\n" % cls.hook_marker)
            os.chmod(p, 0o755)
        for root, dirs, files in os.walk(cls.tmp):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
        with open("/etc/passwd", "rb") as f:
            cls.passwd_before = f.read()

    def git_sandbox(self, **entry):
        entry = dict({"type": "git_repo", "repo": self.bare}, **entry)
        return self.sandbox(manifest={"version": 1, "entries": {"repo": entry}})

    def assert_host_unchanged(self):
        self.assertFalse(os.path.exists(self.hook_marker), "a hook ran on the host")
        with open(self.host_canary) as f:
            self.assertEqual(f.read(), "untouched\n")
        with open("/etc/passwd", "rb") as f:
            self.assertEqual(f.read(), self.passwd_before)

    def test_default_branch_is_checked_out_without_git_dir(self):
        sid = self.git_sandbox()["id"]
        self.assertEqual(self.out(sid, "cat /workspace/repo/README"), "version two\n")
        self.assertEqual(self.out(sid, "test -e /workspace/repo/.git; echo $?"), "1\n")
        # Owned by the sandbox's root.
        self.assertEqual(self.out(sid, "stat -c %u:%g /workspace/repo /workspace/repo/README"),
                         "0:0\n0:0\n")
        self.assert_host_unchanged()

    def test_tag_commit_and_branch_refs(self):
        for ref in ("v1", self.first_commit):
            sid = self.git_sandbox(ref=ref)["id"]
            self.assertEqual(self.out(sid, "cat /workspace/repo/README"), "version one\n", ref)
            self.assertEqual(self.out(sid, "test -e /workspace/repo/passwd-link; echo $?"), "1\n")
        sid = self.git_sandbox(ref="other")["id"]
        self.assertEqual(self.out(sid, "cat /workspace/repo/README"), "version two\n")

    def test_subpath(self):
        sid = self.git_sandbox(ref="v1", subpath="sub")["id"]
        self.assertEqual(self.out(sid, "cat /workspace/repo/deep/f.txt"), "in subpath\n")
        self.assertEqual(self.out(sid, "test -e /workspace/repo/README; echo $?"), "1\n")

    def test_hostile_repository_changes_nothing_outside(self):
        sid = self.git_sandbox(ref="main")["id"]
        # Symlinks stay symlinks, resolved inside the sandbox.
        self.assertEqual(self.out(sid, "readlink /workspace/repo/passwd-link"), "/etc/passwd\n")
        self.assertEqual(self.out(sid, "readlink /workspace/repo/host-dir-link"), self.tmp + "\n")
        self.assertEqual(self.out(sid, "ls /workspace/repo/host-dir-link/ 2>&1 | grep -c canary"
                                       " || true"), "0\n")
        # Writing through the symlink from inside reaches the sandbox's /etc only.
        self.sh(sid, "echo sandboxed >> /workspace/repo/passwd-link")
        self.assert_host_unchanged()

    def test_bad_ref_and_repo_are_clear_errors(self):
        r = self.client.request("POST", "/v1/sandboxes", {"manifest": {"entries": {"r": {
            "type": "git_repo", "repo": self.bare, "ref": "no-such-ref"}}}})
        self.assertEqual(r.status, 400, r)
        self.assertIn("no-such-ref", str(r.json), r)
        r = self.client.request("POST", "/v1/sandboxes", {"manifest": {"entries": {"r": {
            "type": "git_repo", "repo": os.path.join(self.tmp, "missing.git")}}}})
        self.assertEqual(r.status, 400, r)
        self.assertIn("missing.git", str(r.json), r)
        self.assert_host_unchanged()


if __name__ == "__main__":
    at.main()
