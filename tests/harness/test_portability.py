# SPDX-License-Identifier: Apache-2.0
"""A task moves between providers by being resumed on another one.

Started on `local`, killed mid-run, resumed with `--provider` naming `e2b`
(an airlock-gateway in front of this class's airlockd), killed again, and
resumed on `daytona` (the same gateway's Daytona API): it completes with the
workspace an uninterrupted run makes,
every logged tool call ran exactly once across the three sandboxes, and the
audit trail verifies.  At every kill point tried, the old sandbox's current
workspace goes along (not just the last archive), so no recorded call's
effect is lost.  A second run goes local → runloop → vercel (the same
gateway's Runloop and Vercel APIs) the same way, and a third local → e2b →
modal (Modal's gRPC services on the same gateway).
"""

import json
import os
import secrets
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gateway"))
import harness_test as ht  # noqa: E402
import test_resume as tr  # noqa: E402


class PortabilityTest(ht.HarnessTestCase):
    # The gateway runs as nobody and reaches airlockd through its socket's group
    # (gateway_test.DAEMON_ARGS).
    daemon_args = ("--group", "nogroup")
    # The resume test's helpers, without its tests.
    at_kill = staticmethod(tr.ResumeTest.at_kill.__func__ if hasattr(tr.ResumeTest.at_kill, '__func__') else tr.ResumeTest.at_kill)
    final_listing = tr.ResumeTest.final_listing
    uninterrupted = tr.ResumeTest.uninterrupted

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        import gateway_test as gt
        cls.e2b_key = "e2b-port-" + secrets.token_hex(16)
        cls.gateway = gt.Gateway(cls.workdir, cls.daemon.socket_path, cls.rootfs,
                                 {cls.e2b_key: "portability"})
        cls.gateway.start()
        cls.addClassCleanup(cls.stop_gateway)

    @classmethod
    def stop_gateway(cls):
        """A gateway that died during the tests (a crash, a sanitizer's abort) is
        reported with its log, not just found stopped."""
        status = cls.gateway.stop()
        if status not in (0, None):
            raise AssertionError("airlock-gateway exited with %s:\n%s"
                                 % (status, cls.gateway.log()[-6000:]))

    def provider_file(self, block):
        path = os.path.join(self.tmpdir("provider"), "provider.json")
        with open(path, "w") as f:
            json.dump(block, f)
        return path

    def hops(self, second, third, env, kill_points):
        """local, killed; resumed on second (name, provider file), killed there once its
        sandbox is the run's; resumed on third to the end."""
        (n2, f2), (n3, f3) = second, third
        ref = self.uninterrupted(lambda: self.replay_task(tr.TURNS))
        tried = 0
        for k1, k2 in kill_points:
            run_dir = self.new_run_dir()
            res = self.run_task(ref["task"], run_dir, env={ht.KILL_HOOK: str(k1)})
            self.assertTrue(res.killed, "k1=%d did not kill: %r" % (k1, res))
            recorded = self.at_kill(run_dir)[0]
            # Killed again on the second, once its sandbox is the run's (earlier kill
            # points stop the switch itself: resumed again, the switch starts over).
            switched = False
            for extra in range(0, 40, 2):
                res2 = self.resume(run_dir, env=dict(env, **{ht.KILL_HOOK: str(k2 + extra)}),
                                   args=["--provider", f2])
                switched |= ("resume: provider changed from local to %s" % n2) in res2.stdout
                self.assertTrue(res2.killed, "k2=%d did not kill the resume on %s: %r" % (k2 + extra, n2, res2))
                state = ht.load_state(run_dir)
                recorded.update(ht.recorded_results(state))
                if (state.get("sandbox") or {}).get("provider") == n2 and extra > 0:
                    break
            self.assertTrue(switched, "the resume said it switched provider")
            self.assertEqual(state["sandbox"]["provider"], n2, state["sandbox"])
            self.assertNotEqual(state.get("status"), "completed")
            res3 = self.resume(run_dir, env=env, args=["--provider", f3])
            self.assertEqual(res3.returncode, 0, res3)
            self.assertIn("resume: provider changed from %s to %s" % (n2, n3), res3.stdout, res3)
            self.assertIn("resume: took the workspace of %s sandbox" % n2, res3.stdout, res3)
            state = self.assertCompleted(res3)
            files, calls = self.final_listing(state)
            label = "local (killed at %d) -> %s (killed at %d) -> %s" % (k1, n2, k2, n3)
            self.assertEqual(files, ref["files"], "%s: final workspace" % label)
            for c in tr.LOGGED_CALLS:
                self.assertEqual(calls.count(c), 1, "%s: %s ran %d times: %r" % (label, c, calls.count(c), calls))
            self.assertAuditOK(run_dir)
            ops = [(r["data"].get("op"), r["data"].get("provider"))
                   for r in ht.audit_records(run_dir) if r["kind"] == "sandbox_op"]
            self.assertIn(("persist_workspace", "local"), ops, "%s: %r" % (label, ops))
            self.assertIn(("persist_workspace", n2), ops, "%s: %r" % (label, ops))
            # Nothing more left behind than an uninterrupted run leaves: the two old
            # sandboxes (airlockd's too, behind the gateway) went.
            self.assertEqual(len(self.sandbox_ids()), ref["sandboxes"], "%s: %r" % (label, self.client.list()))
            tried += 1
            self.destroy_all()
        self.assertEqual(tried, len(kill_points))

    def test_local_then_e2b_then_daytona(self):
        e2b = self.provider_file({"type": "e2b", "api_url": self.gateway.url,
                                  "sandbox_url": self.gateway.url})
        daytona = self.provider_file({"type": "daytona",
                                      "api_url": self.gateway.url + "/daytona/api"})
        env = {"E2B_API_KEY": self.e2b_key, "DAYTONA_API_KEY": self.e2b_key}
        self.hops(("e2b", e2b), ("daytona", daytona), env, ((6, 3), (9, 4), (12, 2)))

    def test_local_then_runloop_then_vercel(self):
        # Vercel last: its sandboxes have no names, so a harness killed between a
        # create and its record cannot find that sandbox again (docs/providers.md);
        # the kills of this test land anywhere in the second provider's run.
        runloop = self.provider_file({"type": "runloop", "base_url": self.gateway.url})
        vercel = self.provider_file({"type": "vercel", "api_url": self.gateway.url + "/vercel/api",
                                     "team_id": "team_port", "project_id": "prj_port"})
        env = {"VERCEL_TOKEN": self.e2b_key, "RUNLOOP_API_KEY": self.e2b_key}
        self.hops(("runloop", runloop), ("vercel", vercel), env, ((6, 3), (12, 2)))

    def test_bucket_mounts_on_hosted_providers_are_refused_with_why(self):
        """A task with a bucket mount that the provider's service cannot make with the
        keys outside the sandbox (through the gateway): refused by name with why and
        what would work, before any tool runs, and the sandbox the create made is gone;
        with "credentials_in_sandbox" too (rclone inside needs FUSE and rclone there).
        Modal and the Cloudflare bridge mount S3, R2 and GCS themselves
        (tests/harness/test_mounts.py): an Azure container is refused there."""
        s3 = {"type": "s3_mount", "bucket": "inputs", "endpointUrl": "http://127.0.0.1:9",
              "region": "us-east-1"}
        azure = {"type": "azure_blob_mount", "container": "inputs", "accountName": "acct",
                 "endpointUrl": "http://127.0.0.1:9"}
        providers = {
            "e2b": ({"type": "e2b", "api_url": self.gateway.url,
                     "sandbox_url": self.gateway.url}, s3,
                    "its SDK's e2b_cloud_bucket strategy is rclone inside the sandbox"),
            "daytona": ({"type": "daytona", "api_url": self.gateway.url + "/daytona/api"}, s3,
                        "its SDK's daytona_cloud_bucket strategy is rclone inside the sandbox"),
            "runloop": ({"type": "runloop", "base_url": self.gateway.url}, s3,
                        "its SDK's runloop_cloud_bucket strategy is rclone inside the sandbox"),
            "modal": ({"type": "modal", "server_url": self.gateway.url, "token_id": "ak-port"},
                      azure, "its cloud bucket mounts take S3, R2 and GCS with HMAC keys only"),
            "cloudflare": ({"type": "cloudflare", "worker_url": self.gateway.url + "/cloudflare"},
                           azure, "the bridge's mount takes S3, R2 and GCS's S3 API only"),
        }
        env = {"E2B_API_KEY": self.e2b_key, "DAYTONA_API_KEY": self.e2b_key,
               "RUNLOOP_API_KEY": self.e2b_key, "MODAL_TOKEN_SECRET": self.e2b_key,
               "CLOUDFLARE_SANDBOX_API_KEY": self.e2b_key}
        for name, (block, entry, why) in providers.items():
            for in_sandbox in (False, True):
                e = dict(entry, credentials_in_sandbox=True) if in_sandbox else entry
                task = self.replay_task(
                    [ht.fm.calls_response([ht.exec_call("call_1", "echo ran")], "resp_1"),
                     ht.fm.text_response("done", "resp_2")],
                    provider=block,
                    manifest={"version": 1, "root": "/workspace", "entries": {"data": e}})
                res = self.run_task(task, env=env)
                label = "%s%s" % (name, " credentials_in_sandbox" if in_sandbox else "")
                self.assertNotEqual(res.returncode, 0, (label, res))
                out = res.stdout + res.stderr
                self.assertIn("manifest entry data: %s" % entry["type"], out, (label, out))
                if in_sandbox:
                    self.assertIn("with \"credentials_in_sandbox\" is refused on provider %s: "
                                  "rclone inside the sandbox (the SDK's way) needs /dev/fuse"
                                  % name, out)
                else:
                    self.assertIn("is refused on provider %s: no mount of the service keeps "
                                  "the keys outside the sandbox for it (%s)" % (name, why), out)
                self.assertIn("use the local provider", out)
                # Refused before any tool: the audit holds no tool call or result.
                self.assertEqual([r["kind"] for r in ht.audit_records(res.run_dir)
                                  if r["kind"] in ("tool_call", "tool_result")], [], label)
                self.assertEqual(self.sandbox_ids(), [], (label, self.client.list()))

    def test_local_then_e2b_then_modal(self):
        # Modal last, as Vercel: its sandboxes are found by id only.
        e2b = self.provider_file({"type": "e2b", "api_url": self.gateway.url,
                                  "sandbox_url": self.gateway.url})
        modal = self.provider_file({"type": "modal", "server_url": self.gateway.url,
                                    "token_id": "ak-port"})
        env = {"E2B_API_KEY": self.e2b_key, "MODAL_TOKEN_SECRET": self.e2b_key}
        self.hops(("e2b", e2b), ("modal", modal), env, ((6, 3), (12, 2)))

if __name__ == "__main__":
    ht.at.main()
