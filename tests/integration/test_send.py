"""
Tests for L{spc.client.send}: what C{spc send} does once its options are parsed,
run in-process against a real L{spc.server.service.ServerService} on loopback.
"""

from __future__ import annotations

import os
import socket

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import serverFromString
from twisted.trial import unittest
from zope.interface import implementer

from spc.client.send import SendRequest, SendSummary, send
from spc.crypto.suites import parseSuiteMap
from spc.errors import (
    ClientNotAuthorized,
    ConfigurationError,
    ConnectFailed,
    FileRefused,
    MessageAbandoned,
    ServerKeyChanged,
    SessionClosed,
)
from spc.files.store import FileStore
from spc.interfaces import IMessageReceiver
from spc.keys.identity import Identity, generateIdentity
from spc.keys.trust import AuthorizedKeys, PinnedKey
from spc.protocol import filerecords, frames, records
from spc.server.directory import Limits
from spc.server.service import ServerService

_identities: dict[str, Identity] = {}


def sharedIdentity(name: str) -> Identity:
    """
    An RSA identity generated once per test run and name, since key
    generation is slow.
    """
    if name not in _identities:
        _identities[name] = generateIdentity()
    return _identities[name]


def unusedPort() -> int:
    """
    A loopback port nothing listens on (barring a race with another
    process).
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@implementer(IMessageReceiver)
class Collector:
    """
    Keeps what the server receives.

    @ivar messages: (data, kind) pairs in delivery order.
    @ivar sessions: the session of each message.
    @ivar fail: an exception to raise instead of storing, if set.
    """

    def __init__(self) -> None:
        self.messages: list[tuple[bytes, int]] = []
        self.sessions: list = []
        self.fail: Exception | None = None

    def messageReceived(self, session, data: bytes, kind: int) -> None:
        if self.fail is not None:
            raise self.fail
        self.messages.append((data, kind))
        self.sessions.append(session)


class ServerTestCase(unittest.TestCase):
    """
    A real server on loopback for L{send} to send to.
    """

    timeout = 30

    @inlineCallbacks
    def startServer(self, channels: int = 4, authorized: str = "client", **kw):
        """
        Start a L{ServerService} on C{channels} loopback ports, authorizing
        the identity named C{authorized}, and stop it after the test.

        Sets C{self.service}, C{self.receiver} and C{self.ports}.
        """
        self.server = sharedIdentity("server")
        self.receiver = Collector()
        self.service = ServerService(
            reactor,
            [serverFromString(reactor, "tcp:0:interface=127.0.0.1") for _ in range(channels)],
            self.server,
            AuthorizedKeys.parse(f"{sharedIdentity(authorized).fingerprint} test\n", "test"),
            self.receiver,
            **kw,
        )
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.ports = [port.getHost().port for port in (yield self.service.whenListening())]

    def makeRequest(self, messages, client: str = "client", **kw) -> SendRequest:
        """
        A request to send C{messages} to the server over its ports, pinning
        its key, unless keywords say otherwise.
        """
        kw.setdefault("trust", PinnedKey(self.server.fingerprint))
        kw.setdefault("hostPort", f"127.0.0.1:{self.ports[0]}")
        kw.setdefault("endpoints", [f"tcp:127.0.0.1:{port}" for port in self.ports])
        return SendRequest(sharedIdentity(client), messages=list(messages), **kw)


class SendTests(ServerTestCase):
    """
    L{send} delivers messages to a server and summarizes what the server
    confirmed.
    """

    @inlineCallbacks
    def test_summary(self):
        """
        Once the server confirmed every message, L{send} fires with how many
        messages and bytes were sent, over how many channels, to which
        server key; the server received the texts in order, as text.
        """
        yield self.startServer()
        messages = [b"hello", "wörld".encode("utf-8")]
        summary = yield send(reactor, self.makeRequest(messages))
        self.assertEqual(
            summary._replace(seconds=0), SendSummary(2, 0, 11, 0, 4, self.server.fingerprint)
        )
        self.assertGreater(summary.seconds, 0)
        self.assertEqual(self.receiver.messages, [(m, records.KIND_TEXT) for m in messages])
        self.assertEqual(
            [s.peer for s in self.receiver.sessions],
            [sharedIdentity("client").fingerprint] * 2,
        )

    @inlineCallbacks
    def test_longMessage(self):
        """
        A message of many fragments arrives intact.
        """
        yield self.startServer()
        text = bytes(range(256)) * 1200 + b"end"
        summary = yield send(reactor, self.makeRequest([text]))
        self.assertEqual(summary.bytes, len(text))
        self.assertEqual(self.receiver.messages, [(text, records.KIND_TEXT)])

    @inlineCallbacks
    def test_emptyMessage(self):
        """
        An empty message is delivered as an empty message.
        """
        yield self.startServer()
        summary = yield send(reactor, self.makeRequest([b""]))
        self.assertEqual((summary.messages, summary.bytes), (1, 0))
        self.assertEqual(self.receiver.messages, [(b"", records.KIND_TEXT)])

    @inlineCallbacks
    def test_moreMessagesThanTheWindow(self):
        """
        More messages than may be in flight at once (the session's
        C{maxInflightMessages}, 32 by default) are all delivered: L{send}
        waits for room instead of failing.
        """
        yield self.startServer()
        count = frames.Params().maxInflightMessages + 8
        messages = [f"message {i}".encode() for i in range(count)]
        summary = yield send(reactor, self.makeRequest(messages))
        self.assertEqual(summary.messages, count)
        self.assertEqual([m for m, _ in self.receiver.messages], messages)

    @inlineCallbacks
    def test_sessionClosedAfterwards(self):
        """
        L{send} closes its session: the server hears the goodbye and ends its
        side of the session at once instead of waiting for it to linger out.
        """
        yield self.startServer()
        yield send(reactor, self.makeRequest([b"x"]))
        (session,) = self.receiver.sessions
        reason = yield session.whenClosed()
        self.assertIsInstance(reason, SessionClosed)
        self.assertIn("the peer closed the session", str(reason))
        self.assertEqual(self.service.directory.sessions, {})

    @inlineCallbacks
    def test_someChannelsUnreachable(self):
        """
        When only the first channel can be reached the messages still go
        through, and the summary says on how many channels.
        """
        yield self.startServer()
        closed = unusedPort()
        endpoints = [f"tcp:127.0.0.1:{self.ports[0]}"] + [f"tcp:127.0.0.1:{closed}"] * 3
        summary = yield send(reactor, self.makeRequest([b"a", b"b"], endpoints=endpoints))
        self.assertEqual((summary.messages, summary.channels), (2, 1))
        self.assertEqual([m for m, _ in self.receiver.messages], [b"a", b"b"])

    @inlineCallbacks
    def test_serverBusyRetried(self):
        """
        A server that answers "busy" (here its new-session rate limit for
        this client is used up for a second) is retried with backoff, as
        L{spc.errors.ServerBusy} tells the user, instead of failing the send
        at once: the second of two quick sends is delivered too.
        """
        yield self.startServer(limits=Limits(newSessionsPerIdentity=1, newSessionWindow=1.0))
        yield send(reactor, self.makeRequest([b"first"]))
        summary = yield send(reactor, self.makeRequest([b"second"]))
        self.assertEqual(summary.messages, 1)
        self.assertEqual([m for m, _ in self.receiver.messages], [b"first", b"second"])

    @inlineCallbacks
    def test_unreachable(self):
        """
        If the first channel cannot be reached, L{send} fails with
        L{ConnectFailed} naming the server.
        """
        self.server = sharedIdentity("server")
        self.ports = [unusedPort()]
        failure = yield self.assertFailure(send(reactor, self.makeRequest([b"x"])), ConnectFailed)
        self.assertIn(f"127.0.0.1:{self.ports[0]}", str(failure))
        self.assertEqual(failure.exitCode, 1)

    @inlineCallbacks
    def test_wrongServerKey(self):
        """
        A server whose key is not the pinned one is refused with
        L{ServerKeyChanged} (exit code 3), and nothing is delivered.
        """
        yield self.startServer()
        request = self.makeRequest([b"x"], trust=PinnedKey(sharedIdentity("other").fingerprint))
        failure = yield self.assertFailure(send(reactor, request), ServerKeyChanged)
        self.assertEqual(failure.exitCode, 3)
        self.assertIn(self.server.fingerprint, str(failure))
        self.assertIn(sharedIdentity("other").fingerprint, str(failure))
        self.assertEqual(self.receiver.messages, [])

    @inlineCallbacks
    def test_clientNotAuthorized(self):
        """
        A client the server does not list is refused with
        L{ClientNotAuthorized} (exit code 3).
        """
        yield self.startServer(authorized="other")
        failure = yield self.assertFailure(
            send(reactor, self.makeRequest([b"x"])), ClientNotAuthorized
        )
        self.assertEqual(failure.exitCode, 3)
        self.assertEqual(self.receiver.messages, [])

    @inlineCallbacks
    def test_abandoned(self):
        """
        If the server cannot store a message, the summary lists it as not
        delivered, with L{MessageAbandoned} (exit code 4), rather than
        counting it as delivered.
        """
        yield self.startServer()
        self.receiver.fail = OSError(28, "No space left on device")
        summary = yield send(reactor, self.makeRequest([b"x"]))
        self.assertEqual(summary.messages, 0)
        [(item, error)] = summary.failed
        self.assertEqual(item, 'message 1 ("x")')
        self.assertIsInstance(error, MessageAbandoned)
        self.assertEqual(error.exitCode, 4)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)

    @inlineCallbacks
    def test_suiteMapMismatch(self):
        """
        A sender whose suite map differs from the server's fails with a
        L{ConfigurationError} (exit code 2) naming the suites.
        """
        suites = parseSuiteMap("aes-256-gcm,chacha20,aes-256-cbc,chacha20")
        yield self.startServer(suites=suites)
        failure = yield self.assertFailure(
            send(reactor, self.makeRequest([b"x"])), ConfigurationError
        )
        self.assertEqual(failure.exitCode, 2)
        self.assertIn("A256CBC-HS512", str(failure))
        self.assertEqual(self.receiver.messages, [])

    @inlineCallbacks
    def test_suiteMapMatches(self):
        """
        With the server's suite map, the same sender succeeds.
        """
        suites = parseSuiteMap("aes-256-gcm,chacha20,aes-256-cbc,chacha20")
        yield self.startServer(suites=suites)
        summary = yield send(reactor, self.makeRequest([b"x"], suites=suites))
        self.assertEqual(summary.channels, 4)


class FileSendTests(ServerTestCase):
    """
    Issue 9, items 13, 14 and 17: L{send} with files and folders says what
    the daemon stored now, what it held already and what it refused and
    why, and counts only the bytes this run sent.
    """

    @inlineCallbacks
    def setUp(self):
        self.inbox = self.mktemp()
        self.sources = self.mktemp()
        os.makedirs(self.sources)
        yield self.startServer(files=FileStore(self.inbox, quota=1000))

    def source(self, name: str, data: bytes) -> tuple[str, str]:
        path = os.path.join(self.sources, name)
        with open(path, "wb") as f:
            f.write(data)
        return path, name

    def makeRequest(self, messages, **kw) -> SendRequest:
        """
        The same transfer secret in every run, as C{spc send} keeps it, so
        the same file has the same transfer id.
        """
        return super().makeRequest(messages, transferSecret=b"s" * 32, **kw)

    @inlineCallbacks
    def test_partialSuccess(self):
        """
        Item 17: a file over the daemon's quota of unfinished files is
        refused, but the other file and the message are delivered; the
        summary counts those two and lists the refused file with the
        daemon's reason and sentence, instead of failing as a whole.
        """
        big = self.source("big.bin", os.urandom(2000))
        small = self.source("a.txt", b"hello")
        request = self.makeRequest([b"hi"], files=[big, small])
        summary = yield send(reactor, request)
        self.assertEqual((summary.messages, summary.files, summary.bytes), (1, 1, 7))
        [(item, error)] = summary.failed
        self.assertEqual(item, "big.bin")
        self.assertIsInstance(error, FileRefused)
        self.assertEqual(error.reason, filerecords.REFUSED_LIMIT)
        self.assertIn("quota of 1000 bytes", error.text)
        self.assertEqual(error.exitCode, 4)
        with open(os.path.join(self.inbox, "a.txt"), "rb") as f:
            self.assertEqual(f.read(), b"hello")

    @inlineCallbacks
    def test_alreadyStored(self):
        """
        Item 13: the same file sent again while the daemon still holds it
        is reported as held already, under its stored name, and counts no
        bytes; once the stored file was moved away, it is stored again.
        """
        path = self.source("report.pdf", b"r" * 300)
        first = yield send(reactor, self.makeRequest([], files=[path]))
        self.assertEqual((first.files, first.bytes, first.already), (1, 300, ()))
        again = yield send(reactor, self.makeRequest([], files=[path]))
        self.assertEqual((again.files, again.bytes), (1, 0))
        self.assertEqual(again.already, (("report.pdf", "report.pdf"),))
        stored = os.path.join(self.inbox, "report.pdf")
        os.rename(stored, os.path.join(self.sources, "moved"))
        third = yield send(reactor, self.makeRequest([], files=[path]))
        self.assertEqual((third.files, third.bytes, third.already), (1, 300, ()))
        with open(stored, "rb") as f:
            self.assertEqual(f.read(), b"r" * 300)

    @inlineCallbacks
    def test_folders(self):
        """
        Item 14: the folders of the request are made by the daemon and
        counted; one that cannot be made is listed with why.
        """
        with open(os.path.join(self.inbox, "taken"), "wb") as f:
            f.write(b"x")
        request = self.makeRequest([], folders=["album/empty", "taken/sub"])
        summary = yield send(reactor, request)
        self.assertEqual(summary.folders, 1)
        self.assertTrue(os.path.isdir(os.path.join(self.inbox, "album", "empty")))
        [(item, error)] = summary.failed
        self.assertEqual(item, "taken/sub/")
        self.assertEqual(error.reason, filerecords.REFUSED_NAME)

    @inlineCallbacks
    def test_fileGoneAfterListing(self):
        """
        A file that vanished after the list was made fails alone, with why,
        and the rest is delivered.
        """
        gone = self.source("gone.txt", b"g")
        kept = self.source("kept.txt", b"k")
        os.unlink(gone[0])
        summary = yield send(reactor, self.makeRequest([], files=[gone, kept]))
        self.assertEqual(summary.files, 1)
        [(item, error)] = summary.failed
        self.assertEqual(item, "gone.txt")
        self.assertIn("could not be read", str(error))
