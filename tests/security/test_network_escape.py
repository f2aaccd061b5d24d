#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Escape attempts through a sandbox's network link: tampering with
nftables, its own address, routes and link, spoofing, and reaching the
host's other addresses, from inside an allowlist sandbox (Debian rootfs,
python3) with its real capabilities, and again as its root holding every
capability of its own user namespace (the host's ip and nft run through
nsenter into its user and network namespaces: the worst case of a
sandbox that regained CAP_NET_ADMIN there).  The allowlist lets it reach
mirror A's server only; mirror B is the target.  Traffic goes only to
namespaces made here (netns_mirror.py) or to loopback."""

import socket
import subprocess
import threading

import security_test as st
import airlock_test as at  # noqa: F401  (security_test puts it on the path)
import netns_mirror as nm

PY_CONNECT = """
import socket, sys
s = socket.socket()
s.settimeout(4)
if len(sys.argv) > 3:
    s.bind((sys.argv[3], 0))
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
    data = b""
    while True:
        part = s.recv(4096)
        if not part:
            break
        data += part
    print(data.decode(errors="replace"))
    print("CONNECTED")
except OSError as e:
    print("FAILED", e)
"""


def host_addresses():
    """Every IPv4 address of the host's namespace but loopback's (which,
    from a sandbox, is its own)."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True,
                         check=True).stdout
    addrs = [line.split()[3].split("/")[0] for line in out.splitlines()]
    return [a for a in addrs if not a.startswith("127.")]


class NetworkEscape(st.SecurityTestCase):
    daemon_args = ("--network-range", nm.SANDBOX_RANGE)

    @classmethod
    def setUpClass(cls):
        cls.mirrors = [nm.Mirror(3, "mirror-a"), nm.Mirror(4, "mirror-b")]
        cls.addClassCleanup(cls.stop_mirrors)
        for m in cls.mirrors:
            m.start()
        super().setUpClass()
        cls.a, cls.b = cls.mirrors
        sb = cls.client.create(network={"allow": [cls.a.addr + "/32:8080"]})
        cls.sid, cls.pid, cls.net = sb["id"], sb["init_pid"], sb["network"]
        cls.table = nm.table_name(cls.daemon.state_dir)

    @classmethod
    def stop_mirrors(cls):
        for m in cls.mirrors:
            m.stop()

    def connect(self, addr, port, source=None):
        argv = ["python3", "-c", PY_CONNECT, addr, str(port)] + ([source] if source else [])
        r = self.client.exec(self.sid, argv, timeout_ms=30000)
        return r["stdout"]

    def as_namespace_root(self, *argv):
        """argv (a host binary) as the sandbox's root with every capability
        of its user namespace, in its network namespace."""
        return subprocess.run(["nsenter", "-t", str(self.pid), "-U", "-n", "--"] + list(argv),
                              capture_output=True, text=True)

    def host_rules_intact(self):
        r = nm.nft("list", "chain", "inet", self.table, "sb_" + self.sid)
        return r.returncode == 0 and "reject" in r.stdout

    def test_baseline(self):
        self.assertIn("mirror-a", self.connect(self.a.addr, 8080))
        self.assertIn("FAILED", self.connect(self.b.addr, 8080))

    def test_no_net_admin_no_raw_sockets_inside(self):
        r = self.py(self.sid, """
import errno, fcntl, socket, struct
out = []
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
req = struct.pack("16sH2s4s8s", b"eth0", socket.AF_INET, b"\\0\\0",
                  socket.inet_aton("%s"), b"\\0" * 8)
try:
    fcntl.ioctl(s, 0x8916, req)  # SIOCSIFADDR
    out.append("setaddr:ok")
except OSError as e:
    out.append("setaddr:" + errno.errorcode[e.errno])
for fam, typ in ((socket.AF_PACKET, socket.SOCK_RAW), (socket.AF_INET, socket.SOCK_RAW)):
    try:
        socket.socket(fam, typ, 0 if fam == socket.AF_PACKET else socket.IPPROTO_RAW)
        out.append("raw:ok")
    except OSError as e:
        out.append("raw:" + errno.errorcode[e.errno])
try:
    n = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)  # NETLINK_NETFILTER
    # NFT_MSG_DELTABLE (NFNL_SUBSYS_NFTABLES << 8 | 2), family unspec: every table.
    n.send(struct.pack("=IHHII", 20, (10 << 8) | 2, 0x5, 1, 0) + struct.pack("=BBH", 0, 0, 0))
    ans = n.recv(4096)
    err = struct.unpack("=i", ans[16:20])[0]
    out.append("nft:" + (errno.errorcode[-err] if err else "ok"))
except OSError as e:
    out.append("nft:" + errno.errorcode[e.errno])
print(" ".join(out))
""" % self.b.host_addr)
        self.assertExit(r, 0, r)
        res = dict(x.split(":") for x in r["stdout"].split())
        self.attack_ok("network: set its own address (SIOCSIFADDR)", res["setaddr"] != "ok",
                       res["setaddr"])
        self.attack_ok("network: raw sockets (spoofing below IP)", "ok" not in r["stdout"].split()[1:3],
                       r["stdout"].strip())
        self.attack_ok("network: nftables DELTABLE from inside", res["nft"] != "ok" and
                       self.host_rules_intact(), res["nft"])
        self.assertIn("FAILED", self.connect(self.b.addr, 8080))

    def test_namespace_root_flushes_nftables(self):
        listed = self.as_namespace_root("nft", "list", "ruleset")
        self.attack_ok("network: nft list ruleset sees the host's rules",
                       self.table not in listed.stdout, "exit %d, %d bytes"
                       % (listed.returncode, len(listed.stdout)))
        flushed = self.as_namespace_root("nft", "flush", "ruleset")
        dropped = self.as_namespace_root("nft", "delete", "table", "inet", self.table)
        self.attack_ok("network: nft flush ruleset / delete airlockd's table",
                       self.host_rules_intact() and
                       "FAILED" in self.connect(self.b.addr, 8080),
                       "flush exit %d, delete exit %d: %s" % (flushed.returncode,
                                                              dropped.returncode,
                                                              dropped.stderr.strip()[:120]))

    def test_namespace_root_changes_address_and_routes(self):
        # Another source address (of B's network, or a neighbour sandbox's)
        # and a route straight onto the link: the host drops what does not
        # come from the sandbox's own address, and B is not allowed anyway.
        spoof = "10.214.4.77"
        a = self.as_namespace_root("ip", "addr", "add", spoof + "/32", "dev", "eth0")
        try:
            r = self.as_namespace_root("ip", "route", "replace", "10.214.4.0/24", "dev", "eth0",
                                       "src", spoof)
            out = self.connect(self.b.addr, 8080, source=spoof)
            self.attack_ok("network: spoofed source and own route to a denied server",
                           "CONNECTED" not in out,
                           "addr exit %d, route exit %d: %s" % (a.returncode, r.returncode,
                                                                out.strip()[:120]))
            out = self.connect(self.a.addr, 8080, source=spoof)
            self.attack_ok("network: spoofed source to the allowed server",
                           "CONNECTED" not in out, out.strip()[:120])
        finally:
            self.as_namespace_root("ip", "addr", "del", spoof + "/32", "dev", "eth0")
            self.as_namespace_root("ip", "route", "del", "10.214.4.0/24")
        moved = self.as_namespace_root("ip", "link", "set", "eth0", "netns", "1")
        self.attack_ok("network: move its link into the host's namespace",
                       moved.returncode != 0, moved.stderr.strip()[:120])
        self.assertIn("mirror-a", self.connect(self.a.addr, 8080))

    def test_host_addresses_are_not_reachable(self):
        # A host service on every address: the sandbox's gateway and the
        # host's address on mirror A's link are the host's, not allowed.
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("0.0.0.0", 0))
        srv.listen(8)
        port = srv.getsockname()[1]
        hits = []

        def accept():
            srv.settimeout(0.5)
            while not stop.is_set():
                try:
                    c, peer = srv.accept()
                    hits.append(peer)
                    c.close()
                except OSError:
                    pass
        stop = threading.Event()
        t = threading.Thread(target=accept)
        t.start()
        try:
            for addr in [self.net["gateway"], self.a.host_addr, self.b.host_addr] + \
                    [a for a in host_addresses() if a not in (self.net["gateway"],
                                                              self.a.host_addr,
                                                              self.b.host_addr)]:
                out = self.connect(addr, port)
                self.attack_ok("network: reach host service at %s" % addr,
                               "CONNECTED" not in out, out.strip()[:80])
        finally:
            stop.set()
            t.join()
            srv.close()
        self.assertEqual(hits, [])


    def test_neighbour_sandbox_is_not_reachable(self):
        # Another allowlist sandbox of the same daemon, with a server on all
        # its addresses: reachable from itself (the control), not from this
        # one, whether through the gateway, by a route straight onto the
        # link, or with the neighbour's address taken as its own source.
        nb = self.sandbox(network={"allow": [self.a.addr + "/32:8080"]})
        nid, naddr = nb["id"], nb["network"]["address"]
        self.assertNotEqual(naddr, self.net["address"])
        self.sh(nid, "mkdir -p /tmp/www && echo neighbour-secret > /tmp/www/index.html && "
                     "cd /tmp/www && (setsid python3 -m http.server 8090 --bind 0.0.0.0 "
                     "</dev/null >/dev/null 2>&1 &)")
        argv = ["python3", "-c", PY_CONNECT, naddr, "8090"]
        for _ in range(50):
            if "neighbour-secret" in self.client.exec(nid, argv, timeout_ms=30000)["stdout"]:
                break
        else:
            self.fail("the neighbour's server never answered on its own address")
        out = self.connect(naddr, 8090)
        self.attack_ok("network: reach a neighbour sandbox's address %s" % naddr,
                       "neighbour-secret" not in out and "CONNECTED" not in out,
                       out.strip()[:120])
        out = self.connect(nb["network"]["gateway"], 8090)
        self.attack_ok("network: reach the neighbour's gateway", "CONNECTED" not in out,
                       out.strip()[:120])
        direct = self.as_namespace_root("ip", "route", "add", naddr + "/32", "dev", "eth0")
        try:
            out = self.connect(naddr, 8090)
            self.attack_ok("network: an on-link route to the neighbour, past the gateway",
                           "CONNECTED" not in out, "route exit %d: %s"
                           % (direct.returncode, out.strip()[:120]))
        finally:
            self.as_namespace_root("ip", "route", "del", naddr + "/32", "dev", "eth0")
        # The neighbour's address as source, to the server both may reach.
        taken = self.as_namespace_root("ip", "addr", "add", naddr + "/32", "dev", "eth0")
        try:
            out = self.connect(self.a.addr, 8080, source=naddr)
            self.attack_ok("network: the neighbour's address as source",
                           "CONNECTED" not in out, "addr exit %d: %s"
                           % (taken.returncode, out.strip()[:120]))
        finally:
            self.as_namespace_root("ip", "addr", "del", naddr + "/32", "dev", "eth0")
        self.assertIn("mirror-a", self.connect(self.a.addr, 8080))
        self.assertIn("mirror-a", self.client.exec(
            nid, ["python3", "-c", PY_CONNECT, self.a.addr, "8080"], timeout_ms=30000)["stdout"])

if __name__ == "__main__":
    st.main()
