# SPDX-License-Identifier: Apache-2.0
"""Harness separation, proven with canaries.

Canary secrets sit in the harness's environment (OPENAI_API_KEY and two
unrelated variables) and in its 0600 credentials file.  The run's tool calls
dump the sandbox's environment and /proc; while the run is going, the test
itself scans the sandbox through airlockd (every process's environ and
cmdline, every file outside /proc and /sys), and every byte between the
harness and airlockd passes through a logging proxy.  The canaries must
appear nowhere inside the sandbox, in no command output, and in no request
(or answer) airlockd sees — while the model server does get the key, which
proves the harness really held it.
"""

import base64
import json
import os
import secrets
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness_test as ht  # noqa: E402
from harness_test import fm  # noqa: E402

DUMP_ENV = "env; echo ==; cat /proc/self/environ | tr '\\0' '\\n'"
DUMP_PROC = ("for p in /proc/[0-9]*; do echo \"== $p $(cat $p/comm 2>/dev/null)\"; "
             "tr '\\0' '\\n' < $p/environ 2>/dev/null; echo; tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done")
# The sandbox's own scan, run by the test: file names holding any pattern
# read from stdin (the patterns never travel on a command line).
GREP_FILES = "grep -rlaF -D skip -f - --exclude-dir=proc --exclude-dir=sys / 2>/dev/null; echo exit=$?"
PROC_DUMP = ("for p in /proc/[0-9]*; do printf '== %s\\n' $p; cat $p/environ $p/cmdline 2>/dev/null; "
             "printf '\\n'; done")


def encodings(secret):
    """The canary as raw bytes, and the part of its base64 form that does
    not depend on what surrounds it, at each of the three alignments."""
    raw = secret.encode()
    forms = [raw]
    for pad in range(3):
        enc = base64.b64encode(b"\0" * pad + raw)
        first = -(-8 * pad // 6)              # first character made of canary bits only
        last = 8 * (pad + len(raw)) // 6      # one past the last such character
        forms.append(enc[first:last])
    return forms


class CanaryTest(ht.HarnessTestCase):

    def test_canaries_stay_in_the_harness(self):
        tag = secrets.token_hex(6)
        canaries = {
            "env OPENAI_API_KEY": "sk-canary-env-%s-%s" % (tag, secrets.token_hex(8)),
            "env AWS_SECRET_ACCESS_KEY": "canary-aws-%s-%s" % (tag, secrets.token_hex(8)),
            "env AIRLOCK_TEST_CANARY": "canary-plain-%s-%s" % (tag, secrets.token_hex(8)),
            "credentials file": "sk-canary-file-%s-%s" % (tag, secrets.token_hex(8)),
        }
        control = "control-%s-%s" % (tag, secrets.token_hex(8))
        creds_dir = self.tmpdir("creds")
        creds = os.path.join(creds_dir, "credentials.json")
        fd = os.open(creds, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"openai_api_key": canaries["credentials file"]}, f)

        proxy_sock = os.path.join(self.tmpdir("proxy"), "proxy.sock")
        proxy = ht.UnixProxy(proxy_sock, self.daemon.socket_path).start()
        self.addCleanup(proxy.stop)

        scan = {}

        def scan_sandbox(req):
            """While the harness waits for this answer, its sandbox is alive
            with a process it started still running: look inside."""
            ids = self.sandbox_ids()
            scan["ids"] = ids
            c = self.new_client()
            sid = ids[0]
            # Positive controls: a file and a process holding `control`.
            c.write_file(sid, "/workspace/control.txt", ("x " + control + "\n").encode())
            ctl = c.exec(sid, argv=["sleep", "20"], env={"CONTROL_VAR": control}, yield_ms=50)
            scan["control_pid"] = ctl.get("process_id")
            patterns = "\n".join(list(canaries.values()) + [control]) + "\n"
            g = c.exec(sid, command=GREP_FILES, stdin=patterns, timeout_ms=120000,
                       max_output_bytes=1 << 20)
            scan["grep"] = g
            p = c.exec(sid, command=PROC_DUMP, encoding="base64", max_output_bytes=16 << 20)
            scan["proc"] = base64.b64decode(p["stdout"])
            if scan["control_pid"]:
                c.request("DELETE", "/v1/sandboxes/%s/processes/%s" % (sid, scan["control_pid"]))
            c.request("DELETE", c.files_path(sid, "/workspace/control.txt"))
            return fm.reply_json(fm.text_response("scanned", "resp_3"))

        srv = self.fake_server([
            fm.reply_json(fm.calls_response([
                ht.exec_call("c_env", DUMP_ENV),
                ht.exec_call("c_proc", DUMP_PROC),
                ht.exec_call("c_bg", "sleep 25; echo background-done", yield_time_ms=200),
                ht.exec_call("c_creds", "ls -la / /root /tmp /workspace /run 2>&1; cat /proc/1/cmdline | tr '\\0' ' '"),
            ], "resp_1")),
            fm.reply_json(fm.calls_response([ht.exec_call("c_after", "env | sort; ls -la /workspace")], "resp_2")),
            scan_sandbox,
        ])
        task = self.server_task(srv, "responses",
                                provider={"type": "local", "socket": proxy_sock, "rootfs": self.rootfs})
        env = {"OPENAI_API_KEY": canaries["env OPENAI_API_KEY"],
               "AWS_SECRET_ACCESS_KEY": canaries["env AWS_SECRET_ACCESS_KEY"],
               "AIRLOCK_TEST_CANARY": canaries["env AIRLOCK_TEST_CANARY"]}
        res = self.run_task(task, env=env, args=["--credentials", creds])
        self.assertCompleted(res)
        self.assertGreater(proxy.connections, 0, "the harness talked to airlockd through the proxy")

        # The harness had a secret: the model server got one as the key.
        auths = {r.headers.get("authorization") for r in srv.model_requests()}
        self.assertEqual(len(auths), 1, auths)
        self.assertIn(auths.pop(), {"Bearer " + canaries["env OPENAI_API_KEY"],
                                    "Bearer " + canaries["credentials file"]})

        # The test's own scan saw the sandbox, and its controls prove it looks.
        self.assertEqual(len(scan.get("ids") or []), 1, scan.get("ids"))
        grep = scan["grep"]
        found = [ln for ln in grep["stdout"].splitlines() if ln and not ln.startswith("exit=")]
        self.assertIn("/workspace/control.txt", found, "the file scan works: %r" % grep)
        self.assertIn(control.encode(), scan["proc"], "the /proc scan works")
        self.assertIn(b"sleep\x0025", scan["proc"], "the harness's background command was running during the scan")

        def where(data, label):
            hits = []
            for name, secret in canaries.items():
                for form in encodings(secret):
                    if form in data:
                        hits.append("%s (%s) in %s" % (name, "raw" if form == secret.encode() else "base64", label))
                        break
            return hits

        leaks = []
        leaks += ["%s in sandbox file %s" % ("a canary", f) for f in found if f != "/workspace/control.txt"]
        leaks += where(scan["proc"], "/proc/*/environ or cmdline inside the sandbox")
        leaks += where(bytes(proxy.to_daemon), "a request to airlockd")
        leaks += where(bytes(proxy.from_daemon), "an answer from airlockd")
        outputs = {}
        for r in srv.model_requests():
            outputs.update(r.tool_outputs())
        for cid in ("c_env", "c_proc", "c_creds", "c_after"):
            self.assertIn(cid, outputs, "tool result %s reached the model" % cid)
            leaks += where(outputs[cid].encode(), "the output of %s" % cid)
        self.assertIn("PATH=", outputs["c_env"], "the env dump ran: %r" % outputs["c_env"][:500])
        self.assertIn("== /proc/1 ", outputs["c_proc"], "the /proc dump ran")
        self.assertEqual(leaks, [], "canaries leaked:\n  " + "\n  ".join(leaks))

    def test_no_credential_in_run_dir(self):
        """The run directory is the harness's, not the sandbox's, but a key
        written there would outlive the run in every backup of it."""
        secret = "sk-canary-rundir-" + secrets.token_hex(12)
        srv = self.fake_server([fm.reply_json(fm.calls_response([ht.exec_call("c1", "true")])),
                                fm.reply_json(fm.text_response("ok"))])
        res = self.run_task(self.server_task(srv), env={"OPENAI_API_KEY": secret})
        self.assertCompleted(res)
        self.assertEqual(srv.model_requests()[0].headers.get("authorization"), "Bearer " + secret)
        hits = []
        for dirpath, _, files in os.walk(res.run_dir):
            for name in files:
                path = os.path.join(dirpath, name)
                with open(path, "rb") as f:
                    data = f.read()
                if any(form in data for form in encodings(secret)):
                    hits.append(path)
        self.assertEqual(hits, [], "the key was written into the run directory")
        self.destroy_all()


class HostedCanaryTest(ht.HarnessTestCase):
    """The same separation for the hosted providers: each provider's key
    (e2b's, daytona's, cloudflare's, blaxel's, runloop's, vercel's and modal's,
    checked by an airlock-gateway in front of this class's airlockd) reaches
    that provider's requests only.  The keys of
    the other providers sit in the environment as further canaries."""
    # The gateway runs as nobody and reaches airlockd through its socket's group
    # (gateway_test.DAEMON_ARGS).
    daemon_args = ("--group", "nogroup")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                        "gateway"))
        import gateway_test as gt
        cls.e2b_key = "e2b-canary-" + secrets.token_hex(16)
        cls.gateway = gt.Gateway(cls.workdir, cls.daemon.socket_path, cls.rootfs,
                                 {cls.e2b_key: "canary-tenant"})
        cls.gateway.start()
        cls.addClassCleanup(cls.gateway.stop)

    def test_e2b_key_stays_with_the_e2b_provider(self):
        self.check_provider("e2b", {"type": "e2b", "api_url": self.gateway.url,
                                    "sandbox_url": self.gateway.url})

    def test_daytona_key_stays_with_the_daytona_provider(self):
        self.check_provider("daytona", {"type": "daytona",
                                        "api_url": self.gateway.url + "/daytona/api"})

    def test_cloudflare_key_stays_with_the_cloudflare_provider(self):
        self.check_provider("cloudflare_sandbox", {"type": "cloudflare",
                                                   "worker_url": self.gateway.url + "/cloudflare"})

    def test_blaxel_key_stays_with_the_blaxel_provider(self):
        self.check_provider("blaxel", {"type": "blaxel", "workspace": "airlock",
                                       "api_url": self.gateway.url + "/blaxel/v0"})

    def test_runloop_key_stays_with_the_runloop_provider(self):
        self.check_provider("runloop", {"type": "runloop", "base_url": self.gateway.url})

    def test_vercel_token_stays_with_the_vercel_provider(self):
        self.check_provider("vercel", {"type": "vercel", "api_url": self.gateway.url + "/vercel/api",
                                       "team_id": "team_canary", "project_id": "prj_canary"},
                            field="vercel_token")

    def test_modal_token_stays_with_the_modal_provider(self):
        # The secret half of Modal's token is the key; the id is an option.
        self.check_provider("modal", {"type": "modal", "server_url": self.gateway.url,
                                      "token_id": "ak-canary"},
                            field="modal_token_secret")

    def check_provider(self, ptype, block, field=None):
        tag = secrets.token_hex(6)
        field = field or "%s_api_key" % ptype
        env_names = {"e2b": "E2B_API_KEY", "daytona": "DAYTONA_API_KEY",
                     "cloudflare_sandbox": "CLOUDFLARE_SANDBOX_API_KEY", "blaxel": "BL_API_KEY",
                     "runloop": "RUNLOOP_API_KEY", "vercel": "VERCEL_TOKEN",
                     "modal": "MODAL_TOKEN_SECRET"}
        canaries = {
            "credentials file %s" % field: self.e2b_key,
            "credentials file openai_api_key": "sk-canary-file-%s-%s" % (tag, secrets.token_hex(8)),
        }
        env = {}
        for t, var in env_names.items():
            name = "env %s%s" % (var, " (the file wins)" if t == ptype else "")
            canaries[name] = "%s-env-canary-%s-%s" % (t, tag, secrets.token_hex(8))
            env[var] = canaries[name]
        control = "control-%s-%s" % (tag, secrets.token_hex(8))
        creds = os.path.join(self.tmpdir("creds"), "credentials.json")
        fd = os.open(creds, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"openai_api_key": canaries["credentials file openai_api_key"],
                       field: self.e2b_key}, f)
        scan = {}

        def scan_sandbox(req):
            ids = self.sandbox_ids()
            scan["ids"] = ids
            c = self.new_client()
            # A positive control: the scan must find this one.
            c.write_file(ids[0], "/workspace/control.txt", ("x " + control + "\n").encode())
            patterns = "\n".join(list(canaries.values()) + [control]) + "\n"
            scan["grep"] = c.exec(ids[0], command=GREP_FILES, stdin=patterns, timeout_ms=120000,
                                  max_output_bytes=1 << 20)
            p = c.exec(ids[0], command=PROC_DUMP, encoding="base64", max_output_bytes=16 << 20)
            scan["proc"] = base64.b64decode(p["stdout"])
            return fm.reply_json(fm.text_response("scanned", "resp_2"))

        srv = self.fake_server([
            fm.reply_json(fm.calls_response([
                ht.exec_call("c_env", DUMP_ENV),
                ht.exec_call("c_proc", DUMP_PROC),
            ], "resp_1")),
            scan_sandbox,
        ])
        task = self.server_task(srv, "responses", provider=block)
        res = self.run_task(task, env=env, args=["--credentials", creds])
        # Completing through the gateway proves the key was sent where it belongs.
        self.assertCompleted(res)
        self.assertEqual(len(scan.get("ids") or []), 1, scan.get("ids"))
        auths = {r.headers.get("authorization") for r in srv.model_requests()}
        self.assertEqual(auths, {"Bearer " + canaries["credentials file openai_api_key"]})

        def where(data, label):
            hits = []
            for name, secret in canaries.items():
                if any(form in data for form in encodings(secret)):
                    hits.append("%s in %s" % (name, label))
            return hits

        leaks = []
        found = [ln for ln in scan["grep"]["stdout"].splitlines() if ln and not ln.startswith("exit=")]
        self.assertIn("/workspace/control.txt", found, "the file scan works: %r" % scan["grep"])
        leaks += ["a canary in sandbox file %s" % f for f in found if f != "/workspace/control.txt"]
        leaks += where(scan["proc"], "/proc inside the sandbox")
        for r in srv.model_requests():
            body = json.dumps(r.body).encode() if not isinstance(r.body, bytes) else r.body
            leaks += [l for l in where(body, "a model request")
                      if not l.startswith("credentials file openai_api_key")]
        for dirpath, _, files in os.walk(res.run_dir):
            for name in files:
                with open(os.path.join(dirpath, name), "rb") as f:
                    leaks += where(f.read(), "run directory file " + name)
        leaks += where((res.stdout + res.stderr).encode(), "the harness's output")
        leaks += where(self.gateway.log().encode(), "the gateway's log")
        self.assertIn("PATH=", json.dumps([r.tool_outputs() for r in srv.model_requests()]))
        self.assertEqual(leaks, [], "canaries leaked:\n  " + "\n  ".join(leaks))


if __name__ == "__main__":
    ht.at.main()
