# -*- test-case-name: tests.integration.test_endtoend_inbox -*-
"""
End-to-end tests of what the daemon keeps and shows of what it receives
(issue 12, part 4), with the real C{twistd -n spc}, C{spc send},
C{spc status} and C{spc discard}: the sender's name in C{messages.jsonl},
receipts in C{files.jsonl}, the sender's modification time, the modes
C{--inbox-umask} gives, and unfinished files listed, taken over by a
rerun and removed.
"""

from __future__ import annotations

import glob
import json
import os
import stat

from twisted.internet.defer import inlineCallbacks

from spc.files.names import RECEIPTS_NAME
from tests.files import shortTemporaryDirectory
from tests.integration.test_endtoend import sharedIdentity
from tests.integration.test_endtoend_files import (
    BIG_SIZE,
    FileTestCase,
    Relay,
    ResumeTests,
    bigFile,
    sha256,
)

WHEN_NS = 1_000_000_000_123_456_789


class InboxRecordTests(FileTestCase):
    """
    A daemon started with C{--inbox-umask 027}, a message and a file.
    """

    def startDaemon(self, *extra: str, **kw):
        return super().startDaemon("--inbox-umask", "027", *extra, **kw)

    @inlineCallbacks
    def test_records(self):
        """
        The message is stored with the sender's name; the file arrives
        with its modification time, mode 0640 in a folder of mode 0750,
        and its receipt in C{files.jsonl}, itself 0640.
        """
        path = os.path.join(self.source, "notes", "plan.txt")
        os.makedirs(os.path.dirname(path))
        with open(path, "wb") as f:
            f.write(b"the plan\n")
        os.utime(path, ns=(WHEN_NS, WHEN_NS))
        result = yield self.send("hello", extra=[os.path.dirname(path)])
        self.assertEqual(result.code, 0, result)
        [message] = self.storedMessages()
        self.assertEqual((message["from_name"], message["text"]), ("client", "hello"))
        stored = os.path.join(self.inbox, "notes", "plan.txt")
        self.assertEqual(os.stat(stored).st_mtime_ns, os.stat(path).st_mtime_ns)
        self.assertEqual(stat.S_IMODE(os.stat(stored).st_mode), 0o640)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(stored)).st_mode), 0o750)
        receipts = os.path.join(self.inbox, RECEIPTS_NAME)
        self.assertEqual(stat.S_IMODE(os.stat(receipts).st_mode), 0o640)
        with open(receipts) as f:
            [receipt] = [json.loads(line) for line in f]
        self.assertEqual(
            {key: receipt[key] for key in ("from", "from_name", "name", "stored", "bytes")},
            {"from": sharedIdentity("client").fingerprint, "from_name": "client",
             "name": "notes/plan.txt", "stored": "notes/plan.txt", "bytes": 9},
        )
        self.assertEqual(receipt["sha256"], sha256(stored))


class UnfinishedTests(FileTestCase):
    """
    A sender killed mid-file leaves an unfinished file and, for a minute,
    its session; C{spc status} shows them, a rerun takes the file over,
    and C{spc discard} removes it.
    """

    HELD_AT_LEAST = ResumeTests.HELD_AT_LEAST
    relayArgs = ResumeTests.relayArgs
    waitUntilHeld = ResumeTests.waitUntilHeld
    interrupt = ResumeTests.interrupt
    resume = ResumeTests.resume

    @inlineCallbacks
    def setUp(self):
        self.socket = os.path.join(shortTemporaryDirectory(self), "control.sock")
        yield super().setUp()
        self.relay = Relay(self.ports)
        self.addCleanup(self.relay.stop)

    def startDaemon(self, *extra: str, **kw):
        return super().startDaemon("--control-socket", self.socket, *extra, **kw)

    @inlineCallbacks
    def status(self) -> dict:
        """
        C{spc status --json}.
        """
        result = yield self.spc("status", "--socket", self.socket, "--json")
        self.assertEqual(result.code, 0, result)
        return json.loads(result.out)

    @inlineCallbacks
    def test_rerunTakesOver(self):
        """
        While the killed sender's session lingers, C{spc status} shows the
        unfinished file being received by it; once a rerun stored the file,
        the old session (still there) no longer lists it, and no
        unfinished file is left.
        """
        yield self.interrupt()
        status = yield self.status()
        [entry] = status["unfinished"]
        self.assertEqual(
            (entry["name"], entry["size"], entry["ownerName"]), ("big.bin", BIG_SIZE, "client")
        )
        receiving = [t["name"] for s in status["sessions"] for t in s["transfers"]]
        self.assertEqual(receiving, ["big.bin"])
        yield self.resume()
        status = yield self.status()
        self.assertEqual(status["unfinished"], [])
        self.assertEqual([t for s in status["sessions"] for t in s["transfers"]], [])

    @inlineCallbacks
    def test_discard(self):
        """
        C{spc discard} removes the unfinished file by the first digits of
        its id, and says what it removed; a rerun then sends it whole.
        """
        yield self.interrupt()
        [entry] = (yield self.status())["unfinished"]
        result = yield self.spc("discard", "--socket", self.socket, entry["id"][:12])
        self.assertEqual(result.code, 0, result)
        self.assertTrue(result.out.startswith("Removed big.bin from client ("), result)
        self.assertEqual(glob.glob(os.path.join(self.partials, "*.part")), [])
        self.assertEqual((yield self.status())["unfinished"], [])
        sent = yield self.resume()
        self.assertGreaterEqual(sent, BIG_SIZE)
        path, digest = bigFile()
        self.assertEqual(sha256(os.path.join(self.inbox, "big.bin")), digest)
