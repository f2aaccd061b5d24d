# SPDX-License-Identifier: Apache-2.0
"""Test-only network namespaces: a "mirror" HTTP server in a namespace of
its own, linked to the host by a veth with an address of a test-only range
(10.214.0.0/16).  Sandbox traffic in the network tests goes only there (or
to loopback); nothing is sent to any real address.

Also what the tests check airlockd left behind: its nftables table (named
after its state directory) and a sandbox's host-side link (alvSLOT)."""

import hashlib
import os
import socket
import subprocess
import tempfile
import time
import urllib.request

# airlockd's range for the sandboxes' links in the tests (a /18: every uid slot).
SANDBOX_RANGE = "10.214.128.0/18"


def run(*argv):
    subprocess.run(argv, check=True, capture_output=True, text=True)


class Mirror:
    """A namespace at 10.214.NET.2 (host side 10.214.NET.1/24) serving BODY over HTTP on port."""

    def __init__(self, net, body, port=8080):
        tag = "%d%d" % (os.getpid() % 100000, net)
        self.ns = "altmirror" + tag
        self.host_if = "altm" + tag
        self.addr = "10.214.%d.2" % net
        self.host_addr = "10.214.%d.1" % net
        self.port = port
        self.body = body
        self.dir = tempfile.mkdtemp(prefix="airlock-mirror-")
        self.server = None
        self.dns = None

    def start(self):
        run("ip", "netns", "add", self.ns)
        try:
            run("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", "eth0",
                "netns", self.ns)
            run("ip", "addr", "add", self.host_addr + "/24", "dev", self.host_if)
            run("ip", "link", "set", self.host_if, "up")
            # Replies to a sandbox come in here and are forwarded to its link.
            with open("/proc/sys/net/ipv4/conf/%s/forwarding" % self.host_if, "w") as f:
                f.write("1")
            run("ip", "-n", self.ns, "addr", "add", self.addr + "/24", "dev", "eth0")
            run("ip", "-n", self.ns, "link", "set", "eth0", "up")
            run("ip", "-n", self.ns, "link", "set", "lo", "up")
            run("ip", "-n", self.ns, "route", "add", "default", "via", self.host_addr)
            with open(os.path.join(self.dir, "index.html"), "w") as f:
                f.write(self.body)
            self.server = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, "python3", "-m", "http.server", str(self.port),
                 "--bind", self.addr, "--directory", self.dir],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True)
            end = time.monotonic() + 20
            while True:
                try:
                    with urllib.request.urlopen("http://%s:%d/" % (self.addr, self.port),
                                                timeout=2) as r:
                        if r.read().decode() == self.body:
                            return
                except OSError:
                    pass
                if time.monotonic() > end:
                    raise AssertionError("mirror %s did not come up" % self.ns)
                time.sleep(0.1)
        except BaseException:
            self.stop()
            raise

    def serve_dns(self, names):
        """dnsmasq in the namespace, on its address, answering only names
        ({name: IPv4}); nothing forwarded anywhere."""
        argv = ["ip", "netns", "exec", self.ns, "dnsmasq", "--keep-in-foreground",
                "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--bind-interfaces",
                "--listen-address=" + self.addr, "--port=53", "--user=root",
                "--pid-file=" + os.path.join(self.dir, "dnsmasq.pid")]
        argv += ["--address=/%s/%s" % (n, a) for n, a in names.items()]
        self.dns = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
        end = time.monotonic() + 10
        while not os.path.exists(os.path.join(self.dir, "dnsmasq.pid")):
            if self.dns.poll() is not None or time.monotonic() > end:
                raise AssertionError("dnsmasq did not start in %s" % self.ns)
            time.sleep(0.05)

    def stop(self):
        for p in (self.server, self.dns):
            if p:
                os.killpg(p.pid, 9)
                p.wait()
        self.server = self.dns = None
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        subprocess.run(["rm", "-rf", self.dir])

    def gone(self):
        return not os.path.exists("/run/netns/" + self.ns) and \
            not os.path.exists("/sys/class/net/" + self.host_if)


def table_name(state_dir):
    return "airlock_" + hashlib.sha256(state_dir.encode()).hexdigest()[:12]


def nft(*args):
    return subprocess.run(["nft"] + list(args), capture_output=True, text=True)


def table_exists(state_dir):
    return nft("list", "table", "inet", table_name(state_dir)).returncode == 0


def chain_exists(state_dir, sid):
    return nft("list", "chain", "inet", table_name(state_dir), "sb_" + sid).returncode == 0


def slot_of(inspect):
    return (int(inspect["uid_map"].split()[1]) - 1000000000) // 65536


def link_exists(slot):
    return os.path.exists("/sys/class/net/alv%d" % slot)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()
