# -*- test-case-name: tests.memory.test_inbox_records -*-
"""
Tests for what the daemon's inbox records of what it received (issue 12,
part 4): the sender's name beside its fingerprint in C{messages.jsonl},
and a receipt of every stored file in C{files.jsonl}.
"""

from __future__ import annotations

import hashlib
import json
import os

from twisted.logger import Logger, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from spc.files import store
from spc.files.names import RECEIPTS_NAME
from spc.files.receiving import IncomingFiles
from spc.files.store import FileStore
from spc.lanes import InlineLane
from spc.protocol import filerecords, records
from spc.server.inbox import InboxReceiver, messageRecord
from tests.fakes import FakeSession
from tests.memory.test_receiving import PEER, SIZE, Link, TransferTestCase
from tests.memory.test_session import MemoryServer
from tests.unit.test_inbox import SENDER, WHEN, readLines


class MessageNameTests(SynchronousTestCase):
    """
    C{messages.jsonl} carries the sender's name beside its fingerprint.
    """

    def test_record(self) -> None:
        """
        The record holds C{from_name}: the name given, or C{null}.
        """
        self.assertEqual(messageRecord(SENDER, b"x", WHEN, "alice")["from_name"], "alice")
        self.assertIsNone(messageRecord(SENDER, b"x", WHEN)["from_name"])

    def test_stored(self) -> None:
        """
        The receiver stores the name of the session's peer, as UTF-8, and
        C{null} for a peer without one.
        """
        receiver = InboxReceiver(self.mktemp(), now=lambda: WHEN)
        named = FakeSession(peer=SENDER, peerName="Zoë")
        receiver.messageReceived(named, b"hi", records.KIND_TEXT)
        receiver.messageReceived(FakeSession(peer=SENDER), b"ho", records.KIND_TEXT)
        self.assertEqual([line["from_name"] for line in readLines(receiver)], ["Zoë", None])
        with open(receiver.messagesPath, "rb") as f:
            self.assertIn('"from_name": "Zoë"'.encode(), f.read())

    def test_sessionKnowsName(self) -> None:
        """
        A server session knows its client's name in C{authorized_keys}
        from the handshake on, and a message it delivers is stored with it.
        """
        server = MemoryServer(self)
        server.directory.receiver = InboxReceiver(self.mktemp(), now=lambda: WHEN)
        client = server.connect(self)
        self.assertEqual(server.serverSession().peerName, "client")
        sending = client.sendMessage(b"named")
        server.network.flush()
        self.successResultOf(sending)
        [line] = readLines(server.directory.receiver)
        self.assertEqual(
            (line["from"], line["from_name"], line["text"]),
            (server.client.fingerprint, "client", "named"),
        )
        self.assertIsNone(client.peerName)


def readReceipts(inbox: str) -> list[dict]:
    """
    The lines of C{INBOX/files.jsonl}; every one ends in a newline.
    """
    with open(os.path.join(inbox, RECEIPTS_NAME), "rb") as f:
        data = f.read()
    assert data.endswith(b"\n"), data
    return [json.loads(line) for line in data.decode("utf-8").split("\n")[:-1]]


def namedLink(testCase: SynchronousTestCase, store: FileStore, peerName: str | None) -> Link:
    """
    A L{Link} whose receiving end knows its peer's name.
    """
    link = Link(testCase, store)
    link.incoming = IncomingFiles(
        store, PEER, SIZE, link.faks.append, link.clock,
        lambda *stored: link.stored.append(stored), InlineLane(), peerName=peerName,
    )
    return link


class ReceiptTests(TransferTestCase):
    """
    A store that keeps receipts records every stored file in
    C{files.jsonl}, as the inbox records messages.
    """

    def setUp(self) -> None:
        super().setUp()
        self.store = FileStore(self.inbox, receipts=True, now=lambda: WHEN.timestamp())

    def test_recorded(self) -> None:
        """
        A stored file gets one line: its sender, the sender's name, its
        name as sent, where it is stored, its size, its SHA-256 and when
        it was stored.
        """
        data = os.urandom(3 * SIZE + 5)
        os.makedirs(self.inbox, exist_ok=True)
        with open(os.path.join(self.inbox, "report.pdf"), "wb"):
            pass
        link = namedLink(self, self.store, "alice")
        _, sent = link.send(self.source(data), "report.pdf")
        link.flow()
        self.assertEqual(self.successResultOf(sent).storedAs, "report (1).pdf")
        self.assertEqual(
            readReceipts(self.inbox),
            [{
                "from": PEER,
                "from_name": "alice",
                "name": "report.pdf",
                "stored": "report (1).pdf",
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "received": "2024-02-29T23:59:58.123+00:00",
            }],
        )

    def test_onePerFile(self) -> None:
        """
        Each stored file adds its own line, in the order they were stored;
        a file sent again and answered "already stored" adds none, and a
        peer without a name is C{null}.
        """
        link = namedLink(self, self.store, None)
        sources = {}
        for name in ("a.txt", "b/c.txt"):
            sources[name] = self.source(name.encode(), name.replace("/", "-"))
            link.send(sources[name], name)
            link.flow()
        _, again = link.send(sources["a.txt"], "a.txt")
        link.flow()
        self.assertTrue(self.successResultOf(again).already)
        receipts = readReceipts(self.inbox)
        self.assertEqual([r["stored"] for r in receipts], ["a.txt", "b/c.txt"])
        self.assertEqual({r["from_name"] for r in receipts}, {None})

    def test_syncedBeforeAnswered(self) -> None:
        """
        The receipt is on disk (written and fsynced) before the sender is
        told the file is stored.
        """
        synced: list[str] = []
        realFsync = os.fsync
        receipts = os.path.join(self.inbox, RECEIPTS_NAME)

        def fsync(descriptor: int) -> None:
            if os.path.exists(receipts) and os.path.sameopenfile(
                descriptor, os.open(receipts, os.O_RDONLY)
            ):
                synced.append("receipt")
            realFsync(descriptor)

        self.patch(os, "fsync", fsync)
        link = namedLink(self, self.store, None)
        link.send(self.source(b"x"), "x.bin")
        while link.step():
            if any(a.status == filerecords.FILE_COMPLETE for a in link.answers):
                break
        self.assertEqual(synced, ["receipt"])

    def test_nameWithoutControls(self) -> None:
        """
        The sender's name for the file is the peer's text: the receipt
        keeps it without control characters.
        """
        link = namedLink(self, self.store, None)
        link.send(self.source(b"x"), "evil\x1b[2J\x9bname.txt")
        link.flow()
        [receipt] = readReceipts(self.inbox)
        self.assertEqual(receipt["name"], "evil[2Jname.txt")

    def test_receiptFailureLogged(self) -> None:
        """
        A receipt that cannot be written is logged; the file is stored
        and the sender told so all the same.
        """
        os.makedirs(os.path.join(self.inbox, RECEIPTS_NAME))
        errors: list[dict] = []
        self.patch(store, "log", Logger(observer=errors.append))
        link = namedLink(self, self.store, None)
        _, sent = link.send(self.source(b"kept"), "kept.txt")
        link.flow()
        self.assertEqual(self.successResultOf(sent).storedAs, "kept.txt")
        self.assertEqual(self.inboxFiles(), ["kept.txt"])
        [error] = errors
        self.assertIn("could not record it", formatEvent(error))

    def test_offByDefault(self) -> None:
        """
        A store made without C{receipts} (an application's) writes none.
        """
        plain = FileStore(self.mktemp())
        link = namedLink(self, plain, "alice")
        link.send(self.source(b"x"), "x.bin")
        link.flow()
        self.assertFalse(os.path.exists(os.path.join(plain.directory, RECEIPTS_NAME)))
