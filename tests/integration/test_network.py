#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Sandbox networks: "none" (loopback only) by default; an allowlist
sandbox reaches an allowed mirror server and not a second one, its denied
attempts show up in its events; a published port answers on the host's
loopback; a restarted airlockd keeps the rules; snapshots; and nothing is
left behind (no veth, no nft table, no namespace).  All traffic goes to
namespaces made here (netns_mirror.py) or to loopback."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import airlock_test as at
import netns_mirror as nm

DEBIAN_ROOTFS = "/var/lib/airlock/rootfs/debian"  # python3

A_NET, B_NET = 1, 2


def nc_get(addr, port):
    """A shell command fetching / from addr:port with busybox nc (its wget
    segfaults in the static busybox of the test rootfs)."""
    return ("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 %s %d" % (addr, port))


class NetworkTest(at.AirlockTestCase):
    daemon_args = ("--network-range", nm.SANDBOX_RANGE)

    @classmethod
    def setUpClass(cls):
        cls.mirrors = [nm.Mirror(A_NET, "mirror-a"), nm.Mirror(B_NET, "mirror-b")]
        cls.slots = set()
        # Registered first, so it runs last: after the daemon stopped.
        cls.addClassCleanup(cls.check_network_leftovers)
        for m in cls.mirrors:
            m.start()
        super().setUpClass()
        cls.state_dir = cls.daemon.state_dir
        cls.a, cls.b = cls.mirrors

    @classmethod
    def check_network_leftovers(cls):
        problems = []
        for m in cls.mirrors:
            m.stop()
            if not m.gone():
                problems.append("mirror namespace %s or its link is left" % m.ns)
        state_dir = getattr(cls, "state_dir", None)
        if state_dir and nm.table_exists(state_dir):
            problems.append("nft table %s left after airlockd stopped" % nm.table_name(state_dir))
            nm.nft("delete", "table", "inet", nm.table_name(state_dir))
        for slot in cls.slots:
            if nm.link_exists(slot):
                problems.append("link alv%d left" % slot)
        if problems:
            raise AssertionError("; ".join(problems))

    def allowlisted(self, allow, **fields):
        sb = self.sandbox(network={"allow": allow}, **fields)
        type(self).slots.add(nm.slot_of(sb))
        return sb

    def fetch(self, sid, addr, port=8080):
        return self.sh(sid, nc_get(addr, port), timeout_ms=20000)

    def denial_events(self, sid, dest, timeout=15):
        end = time.monotonic() + timeout
        while True:
            r = self.client.request("GET", "/v1/sandboxes/%s/events" % sid)
            self.assertEqual(r.status, 200, r)
            evs = [e for e in json.loads(r.body)["events"]
                   if e["type"] == "network_denied" and e.get("destination") == dest]
            if evs or time.monotonic() > end:
                return evs
            time.sleep(0.2)

    def test_default_is_loopback_only(self):
        sb = self.sandbox()
        self.assertEqual(sb["network"]["mode"], "loopback")
        self.assertEqual(sb["network"]["interfaces"], ["lo"])
        self.assertEqual(sb["ports"], [])
        r = self.fetch(sb["id"], self.a.addr)
        self.assertNotEqual(r["exit_code"], 0, r)
        self.assertNotIn("mirror-a", r["stdout"])

    def test_allowlist_reaches_the_allowed_mirror_only_and_denials_are_events(self):
        sb = self.allowlisted([self.a.addr + "/32:8080"])
        sid = sb["id"]
        net = sb["network"]
        self.assertEqual(net["mode"], "allowlist")
        self.assertEqual(net["allow"], [self.a.addr + "/32:8080"])
        self.assertEqual(sorted(net["interfaces"]), ["eth0", "lo"])
        self.assertTrue(net["address"].startswith("10.214."), net)
        slot = nm.slot_of(sb)
        self.assertTrue(nm.link_exists(slot))
        self.assertTrue(nm.chain_exists(self.state_dir, sid))

        r = self.fetch(sid, self.a.addr)
        self.assertExit(r, 0)
        self.assertIn("mirror-a", r["stdout"])
        # The other mirror, and another port of the allowed one, are refused.
        r = self.fetch(sid, self.b.addr)
        self.assertNotEqual(r["exit_code"], 0, r)
        self.assertNotIn("mirror-b", r["stdout"])
        r = self.sh(sid, "nc -w 3 %s 8081 </dev/null" % self.a.addr, timeout_ms=20000)
        self.assertNotEqual(r["exit_code"], 0, r)
        self.assertTrue(self.denial_events(sid, "%s:8080/tcp" % self.b.addr))
        self.assertTrue(self.denial_events(sid, "%s:8081/tcp" % self.a.addr))
        # The CLI shows them.
        out = subprocess.run([at.AIRLOCK_CLI, "--socket", self.daemon.socket_path, "events", sid],
                             capture_output=True, text=True)
        self.assertIn("denied: %s:8080/tcp" % self.b.addr, out.stdout)

        self.client.destroy(sid)
        self.assertFalse(nm.link_exists(slot))
        self.assertFalse(nm.chain_exists(self.state_dir, sid))

    def test_allow_without_ports_and_a_range(self):
        sid = self.allowlisted(["10.214.0.0/22"])["id"]
        self.assertIn("mirror-a", self.out(sid, nc_get(self.a.addr, 8080)))
        self.assertIn("mirror-b", self.out(sid, nc_get(self.b.addr, 8080)))

    def test_published_port_on_loopback_for_a_none_sandbox(self):
        port = nm.free_port()
        sb = self.sandbox(ports=["%d:8000" % port])
        sid = sb["id"]
        self.assertEqual(sb["network"]["mode"], "loopback")
        self.assertEqual(sb["ports"], [{"port": 8000, "protocol": "tcp",
                                        "host_address": "127.0.0.1", "host_port": port,
                                        "url": "http://127.0.0.1:%d" % port}])
        self.out(sid, "mkdir -p /tmp/www && echo from-sandbox > /tmp/www/index.html && "
                      "httpd -p 127.0.0.1:8000 -h /tmp/www")
        end = time.monotonic() + 10
        while True:
            try:
                self.assertEqual(nm.http_get(sb["ports"][0]["url"] + "/index.html"),
                                 "from-sandbox\n")
                break
            except OSError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.1)
        # A port published twice on the host is refused, and leaves nothing.
        before = {s["id"] for s in self.client.list()}
        links = {n for n in os.listdir("/sys/class/net") if n.startswith("alv")}
        chains = nm.nft("list", "table", "inet", nm.table_name(self.state_dir)).stdout.count("chain sb_")
        r = self.client.request("POST", "/v1/sandboxes",
                                {"ports": ["%d:80" % port], "network": {"allow": []}})
        self.assertEqual(r.status, 409, r)
        self.assertIn("publish port", r.body.decode())
        # The allowlist sandbox was made up to its ports: its link and rules went with it.
        self.assertEqual({s["id"] for s in self.client.list()}, before)
        self.assertEqual({n for n in os.listdir("/sys/class/net") if n.startswith("alv")}, links)
        self.assertEqual(nm.nft("list", "table", "inet",
                                nm.table_name(self.state_dir)).stdout.count("chain sb_"), chains)
        self.client.destroy(sid)
        with self.assertRaises(OSError):
            nm.http_get("http://127.0.0.1:%d/" % port, timeout=2)

    def test_any_free_host_port_is_chosen_and_kept_over_a_restart(self):
        sb = self.sandbox(ports=["0:8000"])
        sid = sb["id"]
        [p] = sb["ports"]
        self.assertGreater(p["host_port"], 0)
        self.assertEqual(p["url"], "http://127.0.0.1:%d" % p["host_port"])
        self.out(sid, "mkdir -p /tmp/www && echo any-port > /tmp/www/index.html && "
                      "httpd -p 127.0.0.1:8000 -h /tmp/www")
        self.daemon.stop()
        self.daemon.start()
        self.client.close()
        self.client = at.Client(self.daemon.socket_path, self.created)
        type(self).client = self.client
        self.assertEqual(self.client.inspect(sid)["ports"], [p])
        end = time.monotonic() + 10
        while True:
            try:
                self.assertEqual(nm.http_get(p["url"] + "/index.html"), "any-port\n")
                break
            except OSError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.1)

    def test_published_udp_port(self):
        # A UDP echo server on the sandbox's loopback, published with the
        # same sandbox port over TCP too; each host client is a session of
        # its own (its answers come back to it), a 60000-byte datagram
        # goes through whole, and the host port is free once it is destroyed.
        sb = self.sandbox(rootfs=DEBIAN_ROOTFS, ports=["0:5353/udp", "0:5353"])
        sid = sb["id"]
        udp, tcp = sb["ports"]
        self.assertEqual((udp["protocol"], udp["port"], tcp["protocol"], tcp["port"]),
                         ("udp", 5353, "tcp", 5353))
        self.assertEqual(udp["url"], "udp://127.0.0.1:%d" % udp["host_port"])
        self.assertEqual(tcp["url"], "http://127.0.0.1:%d" % tcp["host_port"])
        self.assertEqual(self.client.inspect(sid)["ports"], sb["ports"])
        self.out(sid, "(setsid python3 -c \"import socket\n"
                      "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                      "s.bind(('127.0.0.1', 5353))\n"
                      "while True:\n"
                      "    d, a = s.recvfrom(65535)\n"
                      "    s.sendto(b'echo:' + d, a)\n\" </dev/null >/dev/null 2>&1 &)")
        target = ("127.0.0.1", udp["host_port"])
        clients = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
        for c in clients:
            self.addCleanup(c.close)
            c.settimeout(0.5)

        def ask(c, data):
            end = time.monotonic() + 10
            while True:
                c.sendto(data, target)
                try:
                    return c.recvfrom(65535)
                except socket.timeout:
                    if time.monotonic() > end:
                        raise
        got = [ask(c, b"from-%d" % i) for i, c in enumerate(clients)]
        self.assertEqual([(d, a) for d, a in got],
                         [(b"echo:from-0", target), (b"echo:from-1", target)])
        self.assertEqual(ask(clients[1], b"again"), (b"echo:again", target))
        big = os.urandom(60000)
        self.assertEqual(ask(clients[0], big)[0], b"echo:" + big)
        # A restarted airlockd binds the same UDP host port again (its record).
        self.daemon.stop()
        self.daemon.start()
        self.client.close()
        self.client = at.Client(self.daemon.socket_path, self.created)
        type(self).client = self.client
        self.assertEqual(self.client.inspect(sid)["ports"], [udp, tcp])
        self.assertEqual(ask(clients[0], b"after"), (b"echo:after", target))
        self.client.destroy(sid)
        free = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(free.close)
        free.bind(target)

    def test_published_port_of_an_allowlist_sandbox(self):
        port = nm.free_port()
        sb = self.allowlisted([], ports=["127.0.0.1:%d:8001" % port])
        self.out(sb["id"], "mkdir -p /tmp/w && echo hi > /tmp/w/index.html && "
                           "httpd -p 8001 -h /tmp/w")
        end = time.monotonic() + 10
        while True:
            try:
                self.assertEqual(nm.http_get("http://127.0.0.1:%d/index.html" % port), "hi\n")
                break
            except OSError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.1)

    def test_cli_options(self):
        cli = [at.AIRLOCK_CLI, "--socket", self.daemon.socket_path]
        r = subprocess.run(cli + ["create", "--allow", self.a.addr + ":8080", "--allow",
                                  "10.214.9.0/24", "-p", "0:8000"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        sid = r.stdout.strip()
        self.created.add(sid)
        self.addCleanup(self._destroy_quietly, sid)
        sb = self.client.inspect(sid)
        type(self).slots.add(nm.slot_of(sb))
        self.assertEqual(sb["network"]["allow"], [self.a.addr + "/32:8080", "10.214.9.0/24"])
        self.assertEqual(sb["ports"][0]["port"], 8000)
        self.assertIn("mirror-a", self.out(sid, nc_get(self.a.addr, 8080)))
        # run: the allowlist holds for the command it runs, and the sandbox goes.
        r = subprocess.run(cli + ["run", "--allow", self.b.addr + ":8080", "--", "sh", "-c",
                                  nc_get(self.b.addr, 8080)], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("mirror-b", r.stdout)
        r = subprocess.run(cli + ["run", "--", "sh", "-c", nc_get(self.b.addr, 8080)],
                           capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        for bad in (["--network", "bridge"], ["--network", "none", "--allow", "10.0.0.0/8"],
                    ["--allow", "10.0.0.1/8"], ["-p", "x:1"]):
            r = subprocess.run(cli + ["create"] + bad, capture_output=True, text=True)
            self.assertNotEqual(r.returncode, 0, (bad, r.stdout))

    def test_bad_network_requests(self):
        for body in ({"network": "bridge"}, {"network": {"allow": ["10.1.2.3/8"]}},
                     {"network": {"allow": ["10.1.2.0/24:0"]}},
                     {"network": {"allow": ["exa_mple.com"]}},
                     {"network": {"deny": []}},
                     {"ports": ["80"]}, {"ports": ["1:2:3:4"]},
                     {"ports": ["8080:80", "127.0.0.1:8080:81"]}):
            r = self.client.request("POST", "/v1/sandboxes", body)
            self.assertEqual(r.status, 400, (body, r))

    def test_restarted_airlockd_keeps_and_reconciles_the_rules(self):
        sid = self.allowlisted([self.a.addr + "/32"])["id"]
        self.assertIn("mirror-a", self.out(sid, nc_get(self.a.addr, 8080)))
        self.daemon.stop()
        # The sandbox outlives airlockd: its rules stay meanwhile.
        self.assertTrue(nm.chain_exists(self.state_dir, sid))
        self.daemon.start()
        self.client.close()
        self.client = at.Client(self.daemon.socket_path, self.created)
        type(self).client = self.client
        self.assertTrue(nm.chain_exists(self.state_dir, sid))
        self.assertIn("mirror-a", self.out(sid, nc_get(self.a.addr, 8080)))
        r = self.fetch(sid, self.b.addr)
        self.assertNotEqual(r["exit_code"], 0, r)

    def test_snapshot_of_an_allowlist_sandbox(self):
        sid = self.allowlisted([self.a.addr + "/32:8080"])["id"]
        r = self.client.request("POST", "/v1/sandboxes/%s/snapshots" % sid, {"processes": True})
        self.assertGreaterEqual(r.status, 400, r)
        self.assertIn("network link", r.body.decode())
        r = self.client.request("POST", "/v1/sandboxes/%s/snapshots" % sid, {"processes": False})
        self.assertIn(r.status, (200, 201), r)
        snap = json.loads(r.body)["id"]
        self.addCleanup(self.client.request, "DELETE", "/v1/snapshots/" + snap)
        restored = self.client.create(snapshot=snap)
        self.addCleanup(self._destroy_quietly, restored["id"])
        type(self).slots.add(nm.slot_of(restored))
        self.assertEqual(restored["network"]["allow"], [self.a.addr + "/32:8080"])
        self.assertIn("mirror-a", self.out(restored["id"], nc_get(self.a.addr, 8080)))
        r = self.fetch(restored["id"], self.b.addr)
        self.assertNotEqual(r["exit_code"], 0, r)

    def test_two_daemons_have_tables_of_their_own(self):
        work = tempfile.mkdtemp(prefix="airlock-it-net-")
        os.chmod(work, 0o755)
        other = at.Daemon(work, self.rootfs, ["--network-range", nm.SANDBOX_RANGE])
        other_slots = []

        def cleanup():
            if other.running():
                c = at.Client(other.socket_path)
                for sb in c.list():
                    c.destroy(sb["id"])
                c.close()
                other.stop()
            if nm.table_exists(other.state_dir):
                nm.nft("delete", "table", "inet", nm.table_name(other.state_dir))
            shutil.rmtree(work, ignore_errors=True)
        self.addCleanup(cleanup)
        other.start()
        oc = at.Client(other.socket_path)
        self.addCleanup(oc.close)
        mine = self.allowlisted([self.a.addr + "/32"])
        theirs = oc.create(network={"allow": [self.b.addr + "/32"]})
        other_slots.append(nm.slot_of(theirs))
        self.assertNotEqual(nm.table_name(other.state_dir), nm.table_name(self.state_dir))
        self.assertNotEqual(mine["network"]["address"], theirs["network"]["address"])
        # Each reaches its own mirror only, whoever's table is looked at first.
        self.assertIn("mirror-a", self.out(mine["id"], nc_get(self.a.addr, 8080)))
        self.assertNotEqual(self.fetch(mine["id"], self.b.addr)["exit_code"], 0)
        r = oc.exec(theirs["id"], command=nc_get(self.b.addr, 8080), timeout_ms=20000)
        self.assertIn("mirror-b", r["stdout"])
        r = oc.exec(theirs["id"], command=nc_get(self.a.addr, 8080), timeout_ms=20000)
        self.assertNotEqual(r["exit_code"], 0, r)
        # The other one going takes its table and link, and nothing of ours.
        oc.destroy(theirs["id"])
        other.stop()
        self.assertFalse(nm.table_exists(other.state_dir))
        self.assertFalse(nm.link_exists(other_slots[0]))
        self.assertTrue(nm.table_exists(self.state_dir))
        self.assertIn("mirror-a", self.out(mine["id"], nc_get(self.a.addr, 8080)))



PY_FETCH = """
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
try:
    addr = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
except OSError as e:
    print("RESOLVE-FAILED", e)
    sys.exit(0)
s = socket.socket()
s.settimeout(5)
try:
    s.connect((addr, port))
    s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
    data = b""
    while True:
        part = s.recv(4096)
        if not part:
            break
        data += part
    print(addr, data.decode(errors="replace"))
except OSError as e:
    print(addr, "CONNECT-FAILED", e)
"""


class DnsTest(at.AirlockTestCase):
    """Host names in an allowlist: the sandbox's resolver (airlockd, on its
    gateway) answers only those, through the upstream given (dnsmasq in
    mirror A's namespace), and their answers become allowed addresses."""
    rootfs = "/var/lib/airlock/rootfs/debian"  # python3 and glibc's resolver
    daemon_args = ("--network-range", nm.SANDBOX_RANGE, "--dns-upstream", "10.214.5.2")

    @classmethod
    def setUpClass(cls):
        if not os.path.isdir(cls.rootfs):
            raise AssertionError("the Debian rootfs %s is missing (scripts/setup.sh)" % cls.rootfs)
        cls.mirrors = [nm.Mirror(5, "mirror-a"), nm.Mirror(6, "mirror-b")]
        cls.addClassCleanup(cls.stop_mirrors)
        for m in cls.mirrors:
            m.start()
        cls.a, cls.b = cls.mirrors
        cls.a.serve_dns({"mirror-a.test": cls.a.addr, "mirror-b.test": cls.b.addr})
        super().setUpClass()

    @classmethod
    def stop_mirrors(cls):
        for m in cls.mirrors:
            m.stop()

    def fetch(self, sid, host, port=8080):
        r = self.client.exec(sid, ["python3", "-c", PY_FETCH, host, str(port)], timeout_ms=30000)
        self.assertExit(r, 0)
        return r["stdout"]

    def test_allowed_names_resolve_and_connect_others_do_not(self):
        sb = self.sandbox(network={"allow": ["mirror-a.test:8080"]})
        sid = sb["id"]
        self.assertEqual(self.client.read_file(sid, "/etc/resolv.conf").body.decode(),
                         "nameserver %s\n" % sb["network"]["gateway"])
        # Not resolved yet: its address is not allowed.
        self.assertIn("CONNECT-FAILED", self.fetch(sid, self.a.addr))
        out = self.fetch(sid, "mirror-a.test")
        self.assertIn(self.a.addr, out)
        self.assertIn("mirror-a", out)
        # Now allowed by address too, for the name's port only.
        self.assertIn("mirror-a", self.fetch(sid, self.a.addr))
        self.assertIn("CONNECT-FAILED", self.fetch(sid, self.a.addr, 8081))
        # Another name is refused by the resolver, and its address stays denied.
        self.assertIn("RESOLVE-FAILED", self.fetch(sid, "mirror-b.test"))
        self.assertIn("CONNECT-FAILED", self.fetch(sid, self.b.addr))
        # (Packet denials are read once a second.)
        want = {"dns:mirror-b.test", "%s:8080/tcp" % self.b.addr}
        end = time.monotonic() + 15
        while True:
            r = self.client.request("GET", "/v1/sandboxes/%s/events" % sid)
            dests = {e.get("destination") for e in json.loads(r.body)["events"]}
            if want <= dests or time.monotonic() > end:
                break
            time.sleep(0.2)
        self.assertLessEqual(want, dests)
        # Another sandbox's resolution allows nothing for this one.
        other = self.sandbox(network={"allow": ["mirror-b.test"]})
        self.assertIn("mirror-b", self.fetch(other["id"], "mirror-b.test"))
        self.assertIn("CONNECT-FAILED", self.fetch(sid, self.b.addr))
        self.assertIn("CONNECT-FAILED", self.fetch(other["id"], self.a.addr))


CLIENT_AS = """
import json, os, sys
sys.path.insert(0, %r)
import airlock_test as at
os.setgroups([]); os.setgid(65534); os.setuid(65001)
c = at.Client(sys.argv[1])
r = c.request("POST", "/v1/sandboxes", json.loads(sys.argv[2]))
print(json.dumps([r.status, r.json]))
""" % os.path.dirname(os.path.abspath(__file__))


class MemberPortsTest(at.AirlockTestCase):
    """A member of the socket's group (not root) publishes unprivileged host
    ports only: airlockd binds them as root."""
    daemon_args = ("--group", "nogroup", "--network-range", nm.SANDBOX_RANGE)

    def as_member(self, body):
        r = subprocess.run([sys.executable, "-c", CLIENT_AS, self.daemon.socket_path,
                            json.dumps(body)], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        status, res = json.loads(r.stdout)
        if status == 201:
            self.created.add(res["id"])
        return status, res

    def test_privileged_host_ports_are_root_only(self):
        status, res = self.as_member({"ports": ["80:8000"]})
        self.assertEqual(status, 403, res)
        self.assertIn("privileged", res["error"]["message"])
        port = nm.free_port()
        status, res = self.as_member({"ports": ["%d:8000" % port]})
        self.assertEqual(status, 201, res)
        self.assertEqual(res["ports"][0]["host_port"], port)
        self.client.destroy(res["id"])


if __name__ == "__main__":
    at.main()
