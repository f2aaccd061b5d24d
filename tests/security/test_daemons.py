#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Several airlockd on one host: their sandboxes never share a host uid
range, and one state directory has one airlockd."""

import os
import shutil
import signal
import tempfile
import unittest

import security_test as st  # puts tests/integration on the path
import airlock_test as at  # noqa: E402


def uid_base(client, sid):
    # uid_map: "0 BASE 65536"
    return int(client.inspect(sid)["uid_map"].split()[1])


class DaemonsTest(at.AirlockTestCase):

    def other_daemon(self, state_dir=None):
        work = tempfile.mkdtemp(prefix="airlock-it-other-")
        os.chmod(work, 0o755)
        d = at.Daemon(work, self.rootfs)
        if state_dir:
            d.state_dir = state_dir

        def cleanup():
            if d.running():
                c = at.Client(d.socket_path)
                for sb in c.list():
                    c.destroy(sb["id"])
                c.close()
                d.stop()
            shutil.rmtree(work, ignore_errors=True)
        self.addCleanup(cleanup)
        return d

    def test_two_daemons_hand_out_distinct_uid_ranges(self):
        other = self.other_daemon()
        other.start()
        oc = at.Client(other.socket_path)
        self.addCleanup(oc.close)
        mine = [self.client.create()["id"] for _ in range(3)]
        theirs = [oc.create()["id"] for _ in range(3)]
        bases = [uid_base(self.client, s) for s in mine] + [uid_base(oc, s) for s in theirs]
        if not st.report("two daemons share a uid range", len(set(bases)) == 6,
                         "%d distinct ranges for 6 sandboxes" % len(set(bases))):
            self.fail("ESCAPED: uid bases %s" % bases)
        # A range comes back to the host once its sandbox is gone: its
        # host-wide claim is released (it is handed out again only after
        # the others: a restore with processes wants it back).
        freed = uid_base(oc, theirs[0])
        slot = (freed - 1000000000) // 65536
        claim = os.path.join("/run/airlock/uid-slots", str(slot))
        self.assertTrue(os.path.exists(claim), os.listdir("/run/airlock/uid-slots"))
        oc.destroy(theirs[0])
        self.assertFalse(os.path.exists(claim))
        # And the next create does not take it: it goes round from its place.
        again = self.client.create()["id"]
        self.assertNotEqual(uid_base(self.client, again), freed)
        for s in mine + [again]:
            self.client.destroy(s)
        # The other daemon's claims survive its SIGKILL and restart: its
        # sandboxes run on, and their ranges stay theirs.
        other.stop(signal.SIGKILL)
        other.start()
        fresh = self.client.create()["id"]
        taken = uid_base(self.client, fresh) in [uid_base(oc, s) for s in theirs[1:]]
        if not st.report("a killed daemon's live ranges handed out again", not taken,
                         "new range %d" % uid_base(self.client, fresh)):
            self.fail("ESCAPED: a range of the other daemon's running sandbox was reused")
        self.client.destroy(fresh)

    def test_a_second_daemon_on_the_same_state_directory_is_refused(self):
        second = self.other_daemon(state_dir=self.daemon.state_dir)
        try:
            second.start(timeout=10)
            started = True
        except AssertionError as e:
            started, why = False, str(e)
        st.report("second daemon on one state directory", not started,
                  "refused" if not started else "it started")
        self.assertFalse(started, "ESCAPED: a second airlockd runs on one state directory")
        self.assertIn("is in use by another airlockd (pid %d)" % self.daemon.proc.pid,
                      why)
        # The first one did not notice.
        sid = self.client.create()["id"]
        self.assertEqual(self.out(sid, "echo ok"), "ok\n")
        self.client.destroy(sid)


if __name__ == "__main__":
    st.main()
