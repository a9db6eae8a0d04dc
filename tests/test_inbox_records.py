"""
Tests for what the daemon's inbox records of what it received (issue 12,
part 4): the sender's name beside its fingerprint in C{messages.jsonl}.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from spc.protocol import records
from spc.server.inbox import InboxReceiver, messageRecord
from tests.test_inbox import SENDER, WHEN, FakeSession, readLines
from tests.test_session import MemoryServer


class NamedSession(FakeSession):
    """
    A session whose peer has a name in C{authorized_keys}.
    """

    def __init__(self, peer: str = SENDER, peerName: str | None = None) -> None:
        super().__init__(peer)
        self.peerName = peerName


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
        receiver.messageReceived(NamedSession(peerName="Zoë"), b"hi", records.KIND_TEXT)
        receiver.messageReceived(NamedSession(), b"ho", records.KIND_TEXT)
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
