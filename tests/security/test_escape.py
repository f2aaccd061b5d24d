#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Escape attempts through the filesystem, fds, sockets, uids and
capabilities, each run inside a sandbox under the default profile."""

import hashlib
import json
import os
import time
import socket
import tempfile
import shutil
import uuid

import security_test as st
import airlock_test as at  # noqa: E402  (security_test puts it on the path)

FORBIDDEN_CAPS = {"cap_sys_admin", "cap_net_admin", "cap_sys_ptrace", "cap_mknod", "cap_net_raw",
                  "cap_sys_module", "cap_dac_read_search"}
# CAP_* numbers of the forbidden capabilities, for /proc/self/status.
FORBIDDEN_CAP_BITS = {21, 12, 19, 27, 13, 16, 2}


def ancestors(pid, depth):
    """The parent, grandparent... of pid, depth of them."""
    out = []
    for _ in range(depth):
        with open("/proc/%d/stat" % pid) as f:
            pid = int(f.read().rsplit(")", 1)[1].split()[1])
        out.append(pid)
    return out


class EscapeAttacks(st.SecurityTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.sid = cls.client.create()["id"]

    def sh_result(self, command):
        return self.sh(self.sid, command, timeout_ms=60000)

    def py_json(self, code):
        r = self.py(self.sid, "import json, os, errno\n" + code)
        self.assertExit(r, 0, r)
        return json.loads(r["stdout"])

    def test_file_api_reads_only_what_the_sandbox_root_reads(self):
        # The file API worked as host root: through a sandbox's /proc and
        # /sys it read what the sandbox's root is denied (the host's ACPI
        # tables, /proc/iomem's physical addresses) and consumed the host's
        # kernel log.  Each operation is now done with the sandbox's root's
        # credentials inside its namespaces: the kernel gives the API what
        # it gives the sandbox's root, byte for byte, and nothing more.
        for path in ("/proc/kmsg", "/proc/iomem", "/proc/self/environ", "/proc/1/environ",
                     "/sys/firmware/acpi/tables/DSDT", "/sys/kernel/notes", "/dev/.init",
                     "/proc/sys/kernel/core_pattern", "/etc/shadow", "/dev/shm/x"):
            inside = self.sh_result("rm -f /tmp/.r; timeout 2 dd if=%s of=/tmp/.r bs=1M "
                                    "2>/dev/null; s=$?; sha256sum /tmp/.r 2>/dev/null | cut -c1-64; "
                                    "echo \" $s\"" % path)
            digest, status = inside["stdout"].rsplit(" ", 1)
            sandbox_reads = status.strip() == "0"
            r = self.client.read_file(self.sid, path)
            self.attack_ok("file API reads %s (the sandbox's root: %s)"
                           % (path, "reads it" if sandbox_reads else "refused"),
                           r.status != 200 or (sandbox_reads and
                                               hashlib.sha256(r.body).hexdigest() == digest.strip()),
                           "HTTP %d, %d bytes" % (r.status, len(r.body)))
        # What host root alone may read stays refused whatever the above found.
        for path in ("/proc/kmsg", "/sys/firmware/acpi/tables/DSDT"):
            r = self.client.read_file(self.sid, path)
            self.attack_ok("file API reads %s" % path, r.status in (403, 404),
                           "HTTP %d" % r.status)
        # And through a symlink the sandbox made (view_image's *.svg trick).
        self.sh_result("ln -sf /proc/kmsg /workspace/pic.svg")
        r = self.client.read_file(self.sid, "/workspace/pic.svg")
        self.attack_ok("file API follows a symlink into /proc/kmsg", r.status == 403,
                       "HTTP %d %r" % (r.status, r.body[:120]))

    def test_file_api_does_not_remove_the_sandbox_mounts(self):
        # A mount point of the sandbox is none in airlockd's namespace: a
        # DELETE of it used to detach the sandbox's /proc, /sys, /dev/shm.
        sid = self.client.create()["id"]
        self.addCleanup(self.client.destroy, sid)
        before = self.out(sid, "cat /proc/self/mountinfo | wc -l")
        for path in ("/proc", "/sys", "/dev/shm", "/dev/.init", "/dev"):
            for recursive in (False, True):
                q = "&recursive=1" if recursive else ""
                r = self.client.request("DELETE", self.client.files_path(sid, path) + q)
                self.attack_ok("DELETE %s%s" % (path, " recursively" if recursive else ""),
                               r.status in (400, 409), "HTTP %d %r" % (r.status, r.body[:100]))
        self.attack_ok("mounts detached", self.out(sid, "cat /proc/self/mountinfo | wc -l") == before,
                       "mountinfo lines %s -> %s" % (before.strip(),
                                                     self.out(sid, "cat /proc/self/mountinfo | wc -l").strip()))
        self.assertEqual(self.out(sid, "echo x > /dev/shm/y && cat /dev/shm/y"), "x\n")

    def test_archive_helper_holds_only_what_it_needs(self):
        # The persist/hydrate helper, forked from airlockd, kept every one
        # of its descriptors (other sandboxes' pidfds and pipes, the API
        # socket) and every capability in the sandbox's user namespace
        # while parsing what the sandbox controls.
        sb = self.sandbox(limits={"disk": "512M", "memory": "1G"})
        sid = sb["id"]
        self.py(sid, "import os\n"
                     "for i in range(20000):\n"
                     "    with open('/workspace/f%d' % i, 'w') as f: f.write('x' * 2048)\n")
        userns = os.readlink("/proc/%d/ns/user" % sb["init_pid"])
        got, answer = at.request_in_background(self.daemon.socket_path, "GET",
                                               "/v1/sandboxes/%s/workspace" % sid)
        seen = None
        end = time.monotonic() + 60
        while seen is None and time.monotonic() < end and got.is_alive():
            for pid in os.listdir("/proc"):
                if not pid.isdigit() or int(pid) == sb["init_pid"]:
                    continue
                try:
                    if (not self.helper_of(int(pid), sb["init_pid"]) or
                            os.readlink("/proc/%s/ns/user" % pid) != userns):
                        continue
                    pidns = (os.readlink("/proc/%s/ns/pid" % pid),
                             os.readlink("/proc/%d/ns/pid" % sb["init_pid"]))
                    fds = []
                    for fd in os.listdir("/proc/%s/fd" % pid):
                        if int(fd) > 2:
                            fds.append(os.readlink("/proc/%s/fd/%s" % (pid, fd)))
                    with open("/proc/%s/status" % pid) as f:
                        status = dict(line.split(":", 1) for line in f if ":" in line)
                    nets = (os.readlink("/proc/%s/ns/net" % pid),
                            os.readlink("/proc/%d/ns/net" % sb["init_pid"]))
                    with open("/proc/%s/cgroup" % pid) as f:
                        cgroups = f.read()
                    seen = (fds, int(status["CapEff"], 16), status["NoNewPrivs"].strip(), nets,
                            status["Seccomp"].strip(), cgroups, pidns)
                    break
                except (OSError, IndexError, ValueError, KeyError):
                    continue
        got.join(120)
        self.assertEqual(answer["r"].status, 200, answer)
        self.assertIsNotNone(seen, "never saw the archive helper")
        fds, cap_eff, nnp, nets, seccomp, cgroups, pidns = seen
        # Beyond 0-2: the tar's pipe (a persist streams it to the client),
        # the error pipe, directories it walks.
        foreign = [t for t in fds if t.startswith(("socket:", "anon_inode:"))]
        pipes = [t for t in fds if t.startswith("pipe:")]
        self.attack_ok("archive helper keeps airlockd's descriptors",
                       not foreign and len(pipes) <= 2, " ".join(sorted(fds)))
        wanted = sum(1 << c for c in (0, 1, 3, 4))  # chown, dac_override, fowner, fsetid
        self.attack_ok("archive helper keeps every capability", cap_eff & ~wanted == 0,
                       "CapEff %#x" % cap_eff)
        self.attack_ok("archive helper without no_new_privs", nnp == "1", "NoNewPrivs " + nnp)
        self.attack_ok("archive helper in the host's network namespace", nets[0] == nets[1],
                       "%s, the sandbox's %s" % nets)
        self.attack_ok("archive helper without a seccomp filter", seccomp == "2",
                       "Seccomp " + seccomp)
        # The host's pids were its to name (capget, sched_getaffinity and
        # getpriority need no permission).
        self.attack_ok("archive helper in the host's pid namespace", pidns[0] == pidns[1],
                       "%s, the sandbox's %s" % pidns)
        # Its work is the sandbox's: it runs in the sandbox's cgroups (it
        # ran in airlockd's, outside every limit of the sandbox).
        with open("/proc/%d/cgroup" % sb["init_pid"]) as f:
            sandbox_cgroups = f.read()
        self.attack_ok("archive helper outside the sandbox's cgroups",
                       cgroups == sandbox_cgroups, "%r, the sandbox's %r" % (cgroups,
                                                                           sandbox_cgroups))

    def helper_of(self, pid, init_pid):
        """Whether pid is a helper of airlockd's (a child, or a child's
        child) rather than the sandbox's PID 1 or one of its children."""
        if pid == init_pid:
            return False
        up = ancestors(pid, 2)
        return up[0] != init_pid and self.daemon.proc.pid in up

    def test_masked_proc_paths(self):
        res = self.py_json(
            "out = {}\n"
            "for p in ['kcore', 'kallsyms', 'keys', 'timer_list', 'sched_debug', 'sysrq-trigger',\n"
            "          'scsi', 'acpi', 'kpageflags', 'vmallocinfo']:\n"
            "    path = '/proc/' + p\n"
            "    if not os.path.exists(path):\n"
            "        out[p] = 'absent'; continue\n"
            "    if os.path.isdir(path):\n"
            "        out[p] = 'empty' if not os.listdir(path) else 'listed'; continue\n"
            "    try:\n"
            "        with open(path, 'rb') as f: data = f.read(4096)\n"
            "        out[p] = 'empty' if not data else 'readable'\n"
            "    except OSError as e: out[p] = errno.errorcode[e.errno]\n"
            "try:\n"
            "    with open('/proc/sysrq-trigger', 'w') as f: f.write('h')\n"
            "    out['sysrq-write'] = 'written'\n"
            "except OSError as e: out['sysrq-write'] = errno.errorcode[e.errno]\n"
            "print(json.dumps(out))\n")
        for p, how in res.items():
            if p == "sysrq-write":
                # A masked file is /dev/null: a write "succeeds" into nothing.
                self.attack_ok("write /proc/sysrq-trigger", res["sysrq-trigger"] != "readable", how)
            else:
                self.attack_ok("read /proc/" + p, how not in ("readable", "listed"), how)

    def test_proc_sys_and_sys_are_read_only(self):
        for target in ("/proc/sys/kernel/hostname", "/proc/sys/vm/drop_caches",
                       "/sys/kernel/uevent_helper", "/sys/kernel/profiling"):
            r = self.sh_result("echo 1 > %s" % target)
            self.attack_ok("write " + target, r["exit_code"] != 0, r["stderr"].strip())

    def test_cgroupfs_is_read_only_without_release_agent(self):
        r = self.sh_result("grep ' /sys/fs/cgroup' /proc/self/mountinfo")
        self.assertExit(r, 0, r)
        for line in r["stdout"].splitlines():
            opts = line.split()[5].split(",")
            self.attack_ok("cgroupfs mount rw: " + line.split()[4], "ro" in opts, line.split()[5])
        r = self.sh_result("ls /sys/fs/cgroup/*/release_agent /sys/fs/cgroup/release_agent 2>/dev/null")
        self.attack_ok("find release_agent", r["stdout"].strip() == "", r["stdout"].strip() or "none")
        for cmd in ("for f in /sys/fs/cgroup/*/notify_on_release; do echo 1 > $f || exit 1; done; "
                    "ls /sys/fs/cgroup/*/notify_on_release >/dev/null",
                    "mkdir /sys/fs/cgroup/memory/escape || mkdir /sys/fs/cgroup/escape",
                    "echo $$ > /sys/fs/cgroup/pids/cgroup.procs || echo $$ > /sys/fs/cgroup/cgroup.procs"):
            r = self.sh_result(cmd)
            self.attack_ok("cgroupfs write: " + cmd.split(";")[0][:50], r["exit_code"] != 0,
                           r["stderr"].strip()[:120])

    def test_device_nodes(self):
        r = self.sh_result("ls /dev")
        extra = set(r["stdout"].split()) - {"null", "zero", "full", "random", "urandom", "tty",
                                             "pts", "shm", "ptmx", "fd", "stdin", "stdout",
                                             "stderr"}
        self.attack_ok("extra device nodes", not extra, ", ".join(sorted(extra)) or "none")
        for cmd in ("mknod /tmp/mem c 1 1", "mknod /tmp/sda b 8 0"):
            r = self.sh_result(cmd)
            self.attack_ok(cmd, r["exit_code"] != 0, r["stderr"].strip())

    def test_host_binary_cannot_be_overwritten_through_proc_exe(self):
        # CVE-2019-5736: airlock-init (PID 1) is the host binary that enters.
        res = self.py_json(
            "out = {}\n"
            "for what, flags in (('open-write', os.O_WRONLY), ('open-read', os.O_RDONLY)):\n"
            "    try:\n"
            "        fd = os.open('/proc/1/exe', flags); os.close(fd); out[what] = 'opened'\n"
            "    except OSError as e: out[what] = errno.errorcode[e.errno]\n"
            "print(json.dumps(out))\n")
        for what, how in res.items():
            self.attack_ok("/proc/1/exe " + what, how != "opened", how)

    def test_no_host_fd_and_cwd_inside(self):
        # CVE-2024-21626: a leaked fd of a host directory, or a cwd outside the root.
        res = self.py_json(
            "fds = {}\n"
            "for fd in os.listdir('/proc/self/fd'):\n"
            "    try: fds[fd] = os.readlink('/proc/self/fd/' + fd)\n"
            "    except OSError: pass\n"
            "init = {}\n"
            # PID 1 belongs to the sandbox's user namespace, so its fd numbers
            # can be listed; what they point to must stay out of reach.
            "def init_fds(p): return [os.readlink(p + '/' + n) for n in os.listdir(p)]\n"
            "for what, get in (('fd', init_fds), ('cwd', os.readlink), ('root', os.readlink),\n"
            "                  ('environ', lambda p: open(p, 'rb').read())):\n"
            "    try: init[what] = str(get('/proc/1/' + what))\n"
            "    except OSError as e: init[what] = errno.errorcode[e.errno]\n"
            "print(json.dumps({'fds': fds, 'cwd': os.getcwd(), 'parent': os.path.realpath('/proc/self/cwd/../..'), 'init': init}))\n")
        for fd, target in res["fds"].items():
            ok = target.startswith(("pipe:", "socket:", "/dev/null", "/proc/")) or fd not in "012"
            host = target.startswith(("/tmp/airlock", "/var/lib/airlock", "/work", "/sys/fs/cgroup"))
            self.attack_ok("fd %s" % fd, ok and not host, target)
        self.attack_ok("cwd", res["cwd"] == "/workspace", res["cwd"])
        self.attack_ok("cwd/../..", res["parent"] == "/", res["parent"])
        for what, how in res["init"].items():
            self.attack_ok("/proc/1/" + what, how in ("EACCES", "EPERM"), how)

    def test_namespace_owner_gets_no_power_over_them(self):
        # The sandbox's user namespace owns its mount, network, uts and ipc
        # namespaces (what CRIU needs); sandbox root must still change none of
        # them: no CAP_SYS_ADMIN / CAP_NET_ADMIN, and seccomp on top.
        res = self.py_json(
            "import ctypes, fcntl, socket, struct\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "out = {}\n"
            "def errname(): return errno.errorcode.get(ctypes.get_errno(), 'ok')\n"
            "try: socket.sethostname('evil'); out['sethostname'] = 'ok'\n"
            "except OSError as e: out['sethostname'] = errno.errorcode[e.errno]\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "try: fcntl.ioctl(s, 0x8914, struct.pack('16sH22x', b'lo', 0)); out['lo down'] = 'ok'\n"
            "except OSError as e: out['lo down'] = errno.errorcode[e.errno]\n"
            "out['umount mask'] = 'ok' if libc.umount2(b'/proc/kallsyms', 2) == 0 else errname()\n"
            "out['mount tmpfs'] = 'ok' if libc.mount(b'none', b'/tmp', b'tmpfs', 0, None) == 0 "
            "else errname()\n"
            "out['remount / ro'] = 'ok' if libc.mount(None, b'/', None, 0x21, None) == 0 "
            "else errname()\n"
            "print(json.dumps(out))\n")
        for what, how in res.items():
            self.attack_ok(what, how in ("EPERM", "EACCES"), how)
        self.assertEqual(self.sh(self.sid, "hostname")["stdout"].strip(),
                         self.client.inspect(self.sid)["name"])

    def test_init_control_socket_refuses_sandbox_processes(self):
        # PID 1 listens on @airlock-init in the sandbox's own network namespace;
        # a process inside may connect but must never be served (a PING frame
        # gets no PONG: the connection is closed).
        r = self.py(self.sid, "import socket, struct\n"
                              "s = socket.socket(socket.AF_UNIX)\n"
                              "try:\n    s.connect('\\0airlock-init')\n"
                              "except OSError as e:\n    print('refused', e.strerror); raise SystemExit\n"
                              "payload = bytes([3]) + bytes(17)\n"
                              "s.settimeout(5)\n"
                              "try:\n    s.sendall(struct.pack('<I', len(payload)) + payload)\n"
                              "    d = s.recv(64); print('answer', d.hex() if d else 'none')\n"
                              "except OSError as e: print('refused', e.strerror)\n")
        out = r["stdout"].strip()
        self.attack_ok("talk to airlock-init from inside",
                       out.startswith("refused") or out == "answer none", out + r["stderr"])

    def test_host_abstract_socket_unreachable(self):
        # CVE-2020-15257: abstract sockets are per network namespace.
        name = "airlock-sec-" + uuid.uuid4().hex
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind("\0" + name)
        srv.listen(1)
        self.addCleanup(srv.close)
        r = self.py(self.sid, "import socket, sys\ns = socket.socket(socket.AF_UNIX)\n"
                              "try:\n    s.connect('\\0%s'); print('connected')\n"
                              "except OSError as e: print(e.strerror)\n" % name)
        self.attack_ok("connect host abstract socket", r["stdout"].strip() != "connected",
                       r["stdout"].strip())

    def test_control_socket_and_state_dir_invisible(self):
        paths = [self.daemon.socket_path, self.daemon.state_dir, self.daemon.workdir,
                 "/run/airlock", "/var/lib/airlock/state"]
        res = self.py_json("print(json.dumps({p: os.path.exists(p) for p in %r}))" % paths)
        for p, seen in res.items():
            self.attack_ok("see " + p, not seen, "visible" if seen else "absent")
        # overlayfs named its layers in mountinfo by their host paths.
        # So did the bind of airlock-pid1 at /dev/.init (the install or
        # build tree): it is bound from a copy named by its hash now.
        mountinfo = self.sh_result("cat /proc/self/mountinfo")["stdout"]
        for p in (self.daemon.state_dir, self.daemon.workdir, at.BUILD_DIR,
                  os.path.dirname(at.AIRLOCK_INIT)):
            self.attack_ok("read %s in mountinfo" % p, p not in mountinfo,
                           "named" if p in mountinfo else "absent")
        init_line = [line for line in mountinfo.splitlines() if " /dev/.init " in line]
        self.assertEqual(len(init_line), 1, mountinfo)
        self.assertRegex(init_line[0].split()[3], r"/airlock-pid1-[0-9a-f]{16}$")

    def test_chroot_escape_stays_in_the_sandbox(self):
        res = self.py_json(
            "os.makedirs('/tmp/jail', exist_ok=True)\n"
            "os.chroot('/tmp/jail')\n"
            "for i in range(64): os.chdir('..')\n"
            "os.chroot('.')\n"
            "print(json.dumps({'root': sorted(os.listdir('/')), 'host': os.path.exists(%r)}))\n"
            % self.daemon.workdir)
        # Still the sandbox's root (the rootfs marker and the workspace), never the host's.
        self.attack_ok("chroot escape",
                       ".airlock-rootfs.json" in res["root"] and "workspace" in res["root"]
                       and not res["host"], "root has %s" % ",".join(res["root"][:12]))

    def test_uid_ranges(self):
        other = self.client.create()["id"]
        self.addCleanup(self.client.destroy, other)
        maps = [self.client.inspect(i)["uid_map"].split() for i in (self.sid, other)]
        for m in maps:
            self.attack_ok("sandbox root is host root", m[0] == "0" and int(m[1]) >= 100000,
                           "uid_map %s" % " ".join(m))
        a, b = (range(int(m[1]), int(m[1]) + int(m[2])) for m in maps)
        self.attack_ok("shared uid range", a.stop <= b.start or b.stop <= a.start,
                       "%s vs %s" % (a, b))
        # What sandbox root creates is owned by its unprivileged host uid.
        self.assertExit(self.sh_result("touch /workspace/owned"), 0)
        st_ = os.stat(os.path.join(self.daemon.state_dir, "sandboxes", self.sid, "upper",
                                   "workspace", "owned"))
        self.attack_ok("file owned by host root", st_.st_uid == a.start, "uid %d" % st_.st_uid)

    def test_capabilities_and_no_new_privs(self):
        status = self.out(self.sid, "cat /proc/self/status")
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        bnd = int(fields["CapBnd"], 16)
        held = {b for b in FORBIDDEN_CAP_BITS if bnd & (1 << b)}
        self.attack_ok("forbidden capabilities in bounding set", not held, "bits %s" % sorted(held))
        self.attack_ok("ambient/inheritable capabilities",
                       int(fields["CapAmb"], 16) == 0 and int(fields["CapInh"], 16) == 0,
                       "CapAmb %s CapInh %s" % (fields["CapAmb"].strip(), fields["CapInh"].strip()))
        self.attack_ok("no_new_privs off", fields["NoNewPrivs"].strip() == "1", fields["NoNewPrivs"])
        self.attack_ok("seccomp off", fields["Seccomp"].strip() == "2", fields["Seccomp"])
        info = self.client.inspect(self.sid)
        self.assertFalse(FORBIDDEN_CAPS & set(info["capabilities"]["bounding"]))
        self.assertTrue(info["no_new_privs"])
        self.assertEqual(info["seccomp"]["mode"], 2)


class FileApiCredentials(st.SecurityTestCase):
    """The file API acts with the sandbox's root's credentials, not host
    root's.  A base root filesystem with files whose owner the sandbox's
    user namespace does not map (as an image may have): the sandbox's root
    may not read, replace or remove them, and neither may the API, which
    says why (403, not a 500 with the kernel's EOVERFLOW)."""

    UNMAPPED = 4000000  # outside every sandbox's id map

    @classmethod
    def setUpClass(cls):
        cls.rootfs_copy = tempfile.mkdtemp(prefix="airlock-sec-rootfs-")
        os.chmod(cls.rootfs_copy, 0o755)
        cls.rootfs = os.path.join(cls.rootfs_copy, "root")
        shutil.copytree(at.ROOTFS, cls.rootfs, symlinks=True)
        with open(os.path.join(cls.rootfs, "secret"), "w") as f:
            f.write("not for the sandbox\n")
        os.chown(os.path.join(cls.rootfs, "secret"), cls.UNMAPPED, cls.UNMAPPED)
        os.chmod(os.path.join(cls.rootfs, "secret"), 0o600)
        locked = os.path.join(cls.rootfs, "locked")
        os.mkdir(locked)
        with open(os.path.join(locked, "keep"), "w") as f:
            f.write("kept\n")
        os.chown(os.path.join(locked, "keep"), cls.UNMAPPED, cls.UNMAPPED)
        os.chown(locked, cls.UNMAPPED, cls.UNMAPPED)
        os.chmod(locked, 0o755)
        try:
            super().setUpClass()
        except BaseException:
            shutil.rmtree(cls.rootfs_copy, ignore_errors=True)
            raise
        cls.addClassCleanup(shutil.rmtree, cls.rootfs_copy, ignore_errors=True)
        cls.sid = cls.client.create()["id"]

    def test_unmapped_owner_files_are_refused_as_to_the_sandbox_root(self):
        # The sandbox's root itself is refused (the premise of the test).
        r = self.sh(self.sid, "cat /secret; echo new > /locked/new; rm -f /locked/keep; "
                              "ls /locked")
        self.assertNotIn("not for the sandbox", r["stdout"])
        self.assertEqual(r["stdout"].split(), ["keep"], r)
        r = self.client.read_file(self.sid, "/secret")
        self.attack_ok("file API reads a file the sandbox's root may not", r.status == 403,
                       "HTTP %d %r" % (r.status, r.body[:80]))
        r = self.client.write_file(self.sid, "/locked/new", b"x")
        self.attack_ok("file API writes where the sandbox's root may not", r.status == 403,
                       "HTTP %d %r" % (r.status, r.body[:80]))
        r = self.client.write_file(self.sid, "/secret", b"replaced")
        self.attack_ok("file API replaces a file the sandbox's root may not", r.status == 403,
                       "HTTP %d %r" % (r.status, r.body[:80]))
        r = self.client.request("DELETE", self.client.files_path(self.sid, "/locked/keep"))
        self.attack_ok("file API removes what the sandbox's root may not", r.status == 403,
                       "HTTP %d %r" % (r.status, r.body[:80]))
        self.assertEqual(self.out(self.sid, "cat /locked/keep"), "kept\n")
        self.assertEqual(self.out(self.sid, "ls /locked"), "keep\n")

    def file_servers(self, sb):
        """The processes airlockd forked into sb's user namespace (the
        worker of a helper is its child, in the sandbox's pid namespace)."""
        userns = os.readlink("/proc/%d/ns/user" % sb["init_pid"])
        found = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == sb["init_pid"]:
                continue
            try:
                up = ancestors(int(pid), 2)
                if up[0] != sb["init_pid"] and self.daemon.proc.pid in up and \
                        os.readlink("/proc/%s/ns/user" % pid) == userns:
                    found.append(int(pid))
            except (OSError, IndexError, ValueError):
                continue
        return found

    def test_file_server_holds_only_what_it_needs(self):
        # The file API's operations are done by a server in the sandbox's
        # namespaces: forked from airlockd, it must keep none of airlockd's
        # descriptors (other sandboxes' pidfds and pipes, the API socket,
        # its log) and only the sandbox's root's file capabilities.  Another
        # sandbox runs beside it.
        other = self.client.create()
        self.addCleanup(self.client.destroy, other["id"])
        sb = self.client.create()
        destroyed = []
        self.addCleanup(lambda: destroyed or self.client.destroy(sb["id"]))
        self.assertEqual(self.client.write_file(sb["id"], "/workspace/a", b"a").status, 200)
        servers = self.file_servers(sb)
        self.assertEqual(len(servers), 1, servers)
        pid = servers[0]
        fds = {}
        for fd in os.listdir("/proc/%d/fd" % pid):
            fds[int(fd)] = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        with open("/proc/%d/status" % pid) as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        self.attack_ok("file server keeps airlockd's stdio (its log)",
                       all(fds.get(i) == "/dev/null" for i in (0, 1, 2)), repr(fds))
        rest = sorted(t.split(":")[0].split("[")[0] for fd, t in fds.items() if fd > 2)
        self.attack_ok("file server keeps airlockd's descriptors",
                       rest == ["/", "anon_inode", "socket"], repr(fds))
        # Its one pidfd is its own sandbox's PID 1 (fdinfo names the pid).
        for fd, target in fds.items():
            if target == "anon_inode:[pidfd]":
                with open("/proc/%d/fdinfo/%d" % (pid, fd)) as f:
                    of = int(f.read().split("Pid:")[1].split()[0])
                self.attack_ok("file server holds another process's pidfd",
                               of == sb["init_pid"], "pidfd of pid %d" % of)
        wanted = sum(1 << c for c in (0, 1, 3, 4))  # chown, dac_override, fowner, fsetid
        cap_eff = int(status["CapEff"], 16)
        self.attack_ok("file server keeps every capability", cap_eff & ~wanted == 0,
                       "CapEff %#x" % cap_eff)
        self.attack_ok("file server without no_new_privs", status["NoNewPrivs"].strip() == "1",
                       status["NoNewPrivs"])
        self.attack_ok("file server without a seccomp filter", status["Seccomp"].strip() == "2",
                       status["Seccomp"])
        uid = status["Uid"].split()
        with open("/proc/%d/status" % sb["init_pid"]) as f:
            root_uid = [line.split()[1] for line in f if line.startswith("Uid:")][0]
        self.attack_ok("file server runs as host root, not the sandbox's root",
                       set(uid) == {root_uid} and root_uid != "0",
                       "%s (the sandbox's root: %s)" % (" ".join(uid), root_uid))
        for ns in ("mnt", "net", "ipc", "uts", "user"):
            self.assertEqual(os.readlink("/proc/%d/ns/%s" % (pid, ns)),
                             os.readlink("/proc/%d/ns/%s" % (sb["init_pid"], ns)), ns)
        # In the host's pid namespace, the pids capget, sched_getaffinity
        # and getpriority take were the host's (it was, before).
        pidns = (os.readlink("/proc/%d/ns/pid" % pid),
                 os.readlink("/proc/%d/ns/pid" % sb["init_pid"]))
        self.attack_ok("file server in the host's pid namespace", pidns[0] == pidns[1],
                       "%s, the sandbox's %s" % pidns)
        # And it is gone with the sandbox (it holds its mount namespace).
        self.client.destroy(sb["id"])
        destroyed.append(True)
        self.assertFalse(os.path.exists("/proc/%d" % pid), "file server outlived its sandbox")

    def test_a_killed_file_server_is_replaced(self):
        # Whatever ends the server (the OOM killer, a timeout, the
        # sandbox's root: it is in its pid namespace, as its uid), the next
        # operation gets a new one.
        sb = self.client.create()
        self.addCleanup(self.client.destroy, sb["id"])
        self.assertEqual(self.client.write_file(sb["id"], "/workspace/a", b"a").status, 200)
        (pid,) = self.file_servers(sb)
        os.kill(pid, 9)
        time.sleep(0.1)
        r = self.client.read_file(sb["id"], "/workspace/a")
        self.assertEqual((r.status, r.body), (200, b"a"))
        self.assertEqual(len(self.file_servers(sb)), 1)
        self.assertNotIn(pid, self.file_servers(sb))

    def test_file_api_reaches_the_sandbox_own_mounts(self):
        # Acting from inside, the API may follow the sandbox's mounts: its
        # /dev/shm (a tmpfs of its own) is written and read like the
        # workspace.  It was refused while the API worked as host root.
        r = self.client.write_file(self.sid, "/dev/shm/note", b"shared memory\n")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.out(self.sid, "cat /dev/shm/note"), "shared memory\n")
        r = self.client.read_file(self.sid, "/dev/shm/note")
        self.assertEqual((r.status, r.body), (200, b"shared memory\n"))
        self.assertEqual(self.client.request(
            "DELETE", self.client.files_path(self.sid, "/dev/shm/note")).status, 200)

    def test_new_files_belong_to_the_sandbox_root(self):
        self.assertEqual(self.client.write_file(self.sid, "/workspace/mine", b"m").status, 200)
        mk = self.client.request("POST", self.client.files_path(self.sid, "/workspace/d/e",
                                                                 kind="dirs", parents="1"))
        self.assertEqual(mk.status, 201, mk)
        self.assertEqual(self.out(self.sid, "stat -c %u:%g /workspace/mine /workspace/d "
                                            "/workspace/d/e").split(), ["0:0"] * 3)


if __name__ == "__main__":
    st.main()
