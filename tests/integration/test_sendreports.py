"""
What L{spc.client.send.send} tells its observer and says in its summary,
against a real server on loopback (issue 12, part 2): a new file starts at
nothing held and a delivered one at all of it, files stored under another
name are named, and a message over the daemon's limit fails alone.
"""

from __future__ import annotations

import os

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import serverFromString
from twisted.trial import unittest
from zope.interface import implementer

from spc.client.send import SendRequest, send
from spc.errors import MessageTooLarge
from spc.files.store import FileStore
from spc.interfaces import IMessageReceiver
from spc.keys.trust import AuthorizedKeys, PinnedKey
from spc.protocol import frames
from spc.server.service import ServerService
from tests.common import clientIdentity, hostIdentity
from tests.unit.test_sendprogress import RecordingObserver


@implementer(IMessageReceiver)
class Messages:
    def __init__(self) -> None:
        self.received: list[bytes] = []

    def messageReceived(self, session, data: bytes, kind: int) -> None:
        self.received.append(data)


class SendReportsTests(unittest.TestCase):
    """
    L{send} against a real server on loopback: what its observer hears
    and what its summary says of stored names and oversized messages.
    """

    timeout = 30

    @inlineCallbacks
    def setUp(self):
        self.inbox = self.mktemp()
        self.sources = self.mktemp()
        os.makedirs(self.sources)
        self.messages = Messages()
        self.service = ServerService(
            reactor,
            [serverFromString(reactor, "tcp:0:interface=127.0.0.1") for _ in range(2)],
            hostIdentity(),
            AuthorizedKeys.parse(f"{clientIdentity().fingerprint} test\n", "test"),
            self.messages,
            files=FileStore(self.inbox),
            params=frames.Params(maxMessageSize=1000),
        )
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.ports = [port.getHost().port for port in (yield self.service.whenListening())]

    def source(self, name: str, data: bytes) -> tuple[str, str]:
        path = os.path.join(self.sources, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        return path, name

    def request(self, messages=(), **kw) -> SendRequest:
        return SendRequest(
            clientIdentity(),
            PinnedKey(hostIdentity().fingerprint),
            f"127.0.0.1:{self.ports[0]}",
            [f"tcp:127.0.0.1:{port}" for port in self.ports],
            list(messages),
            transferSecret=b"s" * 32,
            **kw,
        )

    @inlineCallbacks
    def test_observerHearsFiles(self):
        """
        A new file starts at 0 held and ends delivered, all of it held; the
        same file sent again starts with all of it held.
        """
        file = self.source("a.bin", os.urandom(5000))
        observer = RecordingObserver()
        yield send(reactor, self.request(files=[file], progress=observer))
        self.assertEqual(observer.events[0], ("starting", 1, 5000))
        self.assertEqual(observer.named("fileStarted"), [("fileStarted", "a.bin", 5000, 0)])
        self.assertEqual(observer.named("progressed")[-1], ("progressed", 5000))
        self.assertEqual(observer.named("fileDelivered"), [("fileDelivered", "a.bin")])
        again = RecordingObserver()
        yield send(reactor, self.request(files=[file], progress=again))
        self.assertEqual(again.named("fileStarted"), [("fileStarted", "a.bin", 5000, 5000)])

    @inlineCallbacks
    def test_renamed(self):
        """
        A file stored under another name than the one sent (the name was
        taken) is in the summary's C{renamed}, with its stored name; one
        stored under its own name is not.
        """
        os.makedirs(os.path.join(self.inbox, "album"))
        with open(os.path.join(self.inbox, "album", "big.bin"), "wb") as f:
            f.write(b"someone else's")
        taken = self.source("album/big.bin", b"mine")
        free = self.source("album/free.bin", b"free")
        summary = yield send(reactor, self.request(files=[taken, free]))
        self.assertEqual(summary.files, 2)
        self.assertEqual(summary.renamed, (("album/big.bin", "album/big (1).bin"),))
        self.assertEqual(summary.already, ())

    @inlineCallbacks
    def test_messageOverDaemonLimit(self):
        """
        A message over the limit the daemon announced fails alone with
        L{MessageTooLarge}, naming both sizes; the others are delivered.
        """
        summary = yield send(reactor, self.request([b"small", b"x" * 1001, b"also"]))
        self.assertEqual(summary.messages, 2)
        [(item, error)] = summary.failed
        self.assertTrue(item.startswith("message 2 "), item)
        self.assertIsInstance(error, MessageTooLarge)
        self.assertEqual((error.size, error.limit, error.exitCode), (1001, 1000, 4))
        self.assertEqual(self.messages.received, [b"small", b"also"])
