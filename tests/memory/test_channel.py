"""
Tests for L{spc.transport.channel} with the server side of L{spc.server.service}: whole
connections in memory (tier b, C{iosim}), single connections on a
C{StringTransport} for hostile input, and time through C{task.Clock}
(tier c).

The attack numbers (T19, T20, T32, ...) are those of PROTOCOL.md section 10.
"""

from __future__ import annotations

import hashlib

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import succeed
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial import unittest
from zope.interface import implementer

from spc.client.connect import connect
from spc.crypto import asymmetric
from spc.crypto.suites import A256CBC_HS512, AES256_GCM, CHACHA20_POLY1305
from spc.errors import ChannelsMismatch, ClientNotAuthorized, NoAnswer, ProtocolError, ServerBusy
from spc.keys.trust import AllowAny, AuthorizedKeys, PinnedKey
from spc.protocol import frames, records
from spc.protocol.channelmap import ChannelExpectation
from spc.protocol.clienthandshake import ClientHandshake
from spc.protocol.handshake import ChannelSpec, channelSpecs
from spc.protocol.records import messageDigest
from spc.server.announced import AnnouncedChannels
from spc.server.directory import Limits, SessionDirectory
from spc.server.service import ServerChannelFactory
from spc.transport import channel
from spc.transport.channel import ChannelProtocol
from spc.transport.closing import ALERT_LINGER
from spc.transport.framer import Framer
from spc.transport.tls import TLSPeer
from tests.common import (
    RecordingChannelOwner,
    clientIdentity,
    countPrivateOperations,
    exchangeKey,
    exchangeKeyDER,
    expectFor,
    framedAlert,
    hostIdentity,
    inlineKeyPool,
    otherClientIdentity,
)

HOST_PORT = "server.example:9000"
TIMEOUT_ALERT = frames.Alert(frames.ALERT_TIMEOUT).encode()
SUITE_MAP = [A256CBC_HS512, CHACHA20_POLY1305, AES256_GCM]

GARBAGE = {
    "random": hashlib.sha512(b"spc garbage").digest() * 4,
    "HTTP": b"GET / HTTP/1.1\r\nHost: server.example\r\nUser-Agent: curl/8.0\r\n\r\n",
    "TLS": bytes.fromhex("16030100f5010000f10303") + bytes(32) + b"\x20" + bytes(32),
    "SSH": b"SSH-2.0-OpenSSH_9.6\r\n",
}


class Receiver:
    """
    An L{spc.interfaces.IMessageReceiver} that records messages.
    """

    def __init__(self) -> None:
        self.messages: list = []

    def messageReceived(self, session, data, kind):
        self.messages.append((session, data, kind))


def fragment(data: bytes, msgID: int = 0, kind: int = records.KIND_TEXT) -> bytes:
    """
    A one-fragment message record.
    """
    return records.Fragment(
        msgID, 0, 1, len(data), kind, messageDigest(kind, data), data
    ).encode()


def heartbeat(hbID: int = 7) -> bytes:
    return records.HeartbeatRequest(
        hbID, 0, 0, records.NO_EPOCH, records.NO_SEQUENCE, 0, 0
    ).encode()


class Server:
    """
    A server's L{SessionDirectory} behind C{channelCount} ports, with a
    fake clock, and helpers to open connections to it.

    @ivar clock: the directory's L{Clock}.
    @ivar directory: the L{SessionDirectory}.
    @ivar receiver: where messages for the server go.
    @ivar specs: the channel specs of its ports.
    """

    def __init__(
        self,
        authorizer=AllowAny,
        limits: Limits | None = None,
        channelCount: int = 3,
        handshakeTimeout: float = channel.DEFAULT_HANDSHAKE_TIMEOUT,
    ) -> None:
        self.clock = Clock()
        self.receiver = Receiver()
        self.directory = SessionDirectory(
            self.clock,
            hostIdentity(),
            authorizer,
            self.receiver,
            channelCount=channelCount,
            limits=limits,
            handshakeTimeout=handshakeTimeout,
        )
        self.specs = channelSpecs(channelCount, SUITE_MAP[:channelCount])
        self.announced = AnnouncedChannels(self.specs, [False] * channelCount)

    def buildServer(self, index: int = 0, host: str = "127.0.0.1", port: int = 1234):
        """
        What the port's factory builds for a connection from C{host}: a
        L{ChannelProtocol}, or the busy answer.
        """
        factory = ServerChannelFactory(self.directory, self.specs[index], self.announced)
        address = (IPv6Address if ":" in host else IPv4Address)("TCP", host, port)
        return factory.buildProtocol(address)

    def acceptString(self, index: int = 0, host: str = "127.0.0.1"):
        """
        A server connection on a L{StringTransport}, made: F1 is written.

        @return: C{(protocol, transport)}.
        """
        protocol = self.buildServer(index, host)
        address = (IPv6Address if ":" in host else IPv4Address)("TCP", host, 1234)
        transport = StringTransport(peerAddress=address)
        protocol.makeConnection(transport)
        return protocol, transport

    def buildClient(self, index: int = 0, identity=None, owner=None, spec=None,
                    timeout: float = channel.DEFAULT_HANDSHAKE_TIMEOUT):
        """
        A client L{ChannelProtocol} for port C{index}, pinned to the host
        key, reporting to a L{RecordingChannelOwner}.

        @return: C{(protocol, owner)}.
        """
        owner = owner or RecordingChannelOwner()
        identity = identity or clientIdentity()
        expect = expectFor(spec) if spec else ChannelExpectation(index, len(self.specs))
        trust = PinnedKey(hostIdentity().fingerprint)

        def makeHandshake(protocol):
            return ClientHandshake(
                expect,
                identity.privateKey,
                identity.publicDER,
                exchangeKeyDER(),
                lambda fingerprint: trust.check(HOST_PORT, fingerprint),
                protocol,
            )

        protocol = ChannelProtocol(owner, makeHandshake, self.clock, timeout, isServer=False)
        return protocol, owner

    def connect(self, index: int = 0, host: str = "127.0.0.1", greet: bool = True, **kw):
        """
        A client and a server connection joined by an L{iosim.IOPump}.

        @return: C{(client, owner, server, pump)}.
        """
        client, owner = self.buildClient(index, **kw)
        server = self.buildServer(index, host)
        pump = iosim.connect(
            server,
            iosim.FakeTransport(server, True, peerAddress=IPv4Address("TCP", host, 1234)),
            client,
            iosim.FakeTransport(client, False),
            greet=greet,
            clock=self.clock,
        )
        return client, owner, server, pump


def frameBodies(data: bytes) -> list[bytes]:
    """
    Split written bytes into frame bodies.
    """
    bodies = []
    framer = Framer(1 << 30)
    framer.feed(data, lambda body: bodies.append(body) or True)
    return bodies


class HandshakeTests(unittest.SynchronousTestCase):
    """
    Whole connections in memory (tier b).
    """

    def test_eachSuite(self) -> None:
        """
        On a port of each suite the handshake completes: the client owner
        hears of it, the server's directory holds a session for the
        client's identity with no pending handshake left, and both framers
        now take post-handshake frames.
        """
        server = Server()
        for index, suite in enumerate(SUITE_MAP):
            client, owner, serverProtocol, pump = server.connect(index)
            self.assertEqual(len(owner.established), 1, suite)
            result = owner.established[0][1]
            self.assertEqual(result.keys.suite, suite)
            session = server.directory.sessions[result.session]
            self.assertEqual(session.peer, clientIdentity().fingerprint)
            self.assertIs(serverProtocol.owner, session)
            cap = frames.maxProtectedBody(frames.Params().maxInner)
            self.assertEqual(client._framer.maxBody, cap)
            self.assertEqual(serverProtocol._framer.maxBody, cap)
        self.assertEqual(len(server.directory.sessions), 3)
        self.assertEqual(server.directory.pendingHandshakes(), 0)

    def test_recordsBothWays(self) -> None:
        """
        On a port of each suite, a message goes from client to server and
        is delivered to the server's receiver and acknowledged; a message
        from the server reaches the client, and the server's Deferred fires
        once the client acknowledges it.
        """
        server = Server()
        for index in range(3):
            client, owner, serverProtocol, pump = server.connect(index)
            client.sendRecord(fragment(b"hello server", msgID=0))
            pump.flush()
            session, data, kind = server.receiver.messages[-1]
            self.assertEqual((data, kind), (b"hello server", records.KIND_TEXT))
            ack = owner.records[-1][2]
            self.assertEqual(ack, records.Ack(0, records.ACK_COMPLETE))

            sent = session.sendMessage(b"hello client", records.KIND_BINARY)
            pump.flush()
            self.assertNoResult(sent)
            received = owner.records[-1][2]
            self.assertIsInstance(received, records.Fragment)
            self.assertEqual(bytes(received.payload), b"hello client")
            client.sendRecord(records.Ack(received.msgID, records.ACK_COMPLETE).encode())
            pump.flush()
            self.successResultOf(sent)

    def test_heartbeat(self) -> None:
        """
        The server answers a client's HBQ with an HBR echoing its id, under
        epoch 0.
        """
        client, owner, _, pump = Server().connect()
        client.sendRecord(heartbeat(42))
        pump.flush()
        _, epoch, answer = owner.records[-1]
        self.assertEqual(epoch, 0)
        self.assertIsInstance(answer, records.HeartbeatResponse)
        self.assertEqual(answer.hbID, 42)
        self.assertEqual(answer.lastSeqReceived, 0)

    def test_finishedThenRecordInOneRead(self) -> None:
        """
        A17: F3 and a large protected frame arriving in one read are both
        processed: the keys and the post-handshake cap are in place before
        the next frame is read.
        """
        server = Server()
        client, owner, serverProtocol, pump = server.connect(greet=False)
        pump.pump()  # F1 to the client, which writes F2
        pump.pump()  # F2 to the server, which writes F3
        self.assertIsNotNone(serverProtocol.records)
        self.assertEqual(owner.established, [])
        big = fragment(b"x" * 10000)
        serverProtocol.sendRecord(big)
        pump.pump()  # F3 and the record in one chunk
        self.assertEqual(len(owner.established), 1)
        self.assertEqual(len(owner.records), 1)
        self.assertEqual(bytes(owner.records[0][2].payload), b"x" * 10000)
        self.assertFalse(client.dead)

    def test_unauthorizedClient(self) -> None:
        """
        T11: a client whose identity is not in C{authorized_keys} gets alert
        2 and is closed with no private-key operation; it reports
        L{ClientNotAuthorized}.
        """
        counter = countPrivateOperations(self)
        authorized = AuthorizedKeys(
            "authorized_keys", [(otherClientIdentity().fingerprint, None)]
        )
        server = Server(authorizer=authorized)
        client, owner, serverProtocol, pump = server.connect()
        self.assertEqual(owner.established, [])
        self.assertIsInstance(owner.failed[0][1], ClientNotAuthorized)
        self.assertTrue(serverProtocol.transport.disconnecting)
        self.assertEqual(counter.count, 0)
        self.assertEqual(server.directory.sessions, {})

    def test_authorizedClient(self) -> None:
        """
        A client listed in C{authorized_keys} gets a session.
        """
        authorized = AuthorizedKeys("authorized_keys", [(clientIdentity().fingerprint, "me")])
        server = Server(authorizer=authorized)
        _, owner, _, _ = server.connect()
        self.assertEqual(len(owner.established), 1)

    def test_configurationMismatch(self) -> None:
        """
        T34: a client configured for ChaCha20-Poly1305 on port 0 (which
        serves A256CBC-HS512) aborts with a configuration error and sends
        nothing.
        """
        server = Server()
        spec = ChannelSpec(0, 3, CHACHA20_POLY1305)
        client, owner, serverProtocol, pump = server.connect(spec=spec)
        self.assertEqual(owner.failed[0][1].exitCode, 2)
        self.assertIn("ChaCha20-Poly1305", str(owner.failed[0][1]))
        self.assertTrue(client.dead)
        self.assertEqual(server.directory.sessions, {})


class ClientServiceTests(unittest.SynchronousTestCase):
    """
    L{spc.client.connect.connect} against the server, over in-memory endpoints.
    """

    def setUp(self) -> None:
        key = exchangeKey()
        self.patch(asymmetric, "generateExchangeKey", lambda: key)
        self.server = Server()
        self.pumps: list = []

    def endpoint(self, index: int):
        """
        A client endpoint that connects, in memory, to the server's port
        C{index}.
        """
        server, pumps = self.server, self.pumps

        @implementer(IStreamClientEndpoint)
        class MemoryEndpoint:
            def connect(self, factory):
                client = factory.buildProtocol(None)
                serverProtocol = server.buildServer(index)
                pumps.append(iosim.connect(
                    serverProtocol,
                    iosim.FakeTransport(serverProtocol, True,
                                        peerAddress=IPv4Address("TCP", "127.0.0.1", 1)),
                    client,
                    iosim.FakeTransport(client, False),
                    greet=False,
                    clock=server.clock,
                ))
                return succeed(client)

        return MemoryEndpoint()

    def flushAll(self) -> None:
        while any([pump.flush() for pump in list(self.pumps)]):
            pass

    def connect(self, suites):
        connecting = connect(
            self.server.clock,
            [self.endpoint(index) for index in range(3)],
            clientIdentity(),
            PinnedKey(hostIdentity().fingerprint),
            HOST_PORT,
            suites=suites,
            exchangeKeys=inlineKeyPool(),
        )
        for _ in range(5):
            self.flushAll()
        return self.successResultOf(connecting)

    def test_connect(self) -> None:
        """
        C{connect} opens channel 0 with a NEW handshake and joins the other
        channels to the same session; a message sent over the session is
        delivered, and its Deferred fires once the server acknowledged it.
        """
        session = self.connect(SUITE_MAP)
        self.assertEqual(sorted(session.channels), [0, 1, 2])
        self.assertEqual(len(self.server.directory.sessions), 1)
        serverSession = self.server.directory.sessions[session.id]
        self.assertEqual(sorted(serverSession.channels), [0, 1, 2])
        self.assertEqual(self.server.directory.pendingHandshakes(), 0)
        sent = session.sendMessage(b"over three channels", records.KIND_TEXT)
        self.flushAll()
        self.assertEqual(
            self.server.receiver.messages[-1][1:], (b"over three channels", records.KIND_TEXT)
        )
        self.successResultOf(sent)

    def test_announcedSuitesAccepted(self) -> None:
        """
        A client that names no suites accepts those the server announces
        (AES-256-GCM on port 2, where the default map has A256CBC-HS512) and
        joins every port.
        """
        session = self.connect(None)
        self.assertEqual(sorted(session.channels), [0, 1, 2])
        serverSession = self.server.directory.sessions[session.id]
        self.assertEqual(sorted(serverSession.channels), [0, 1, 2])

    def test_suiteNotAcceptedRefusedFirst(self) -> None:
        """
        T34 at the service level: a client that does not accept a suite the
        server announces for any port fails on the first connection with
        L{ChannelsMismatch}, before anything is sent; no session is made.
        """
        connecting = connect(
            self.server.clock,
            [self.endpoint(index) for index in range(3)],
            clientIdentity(),
            PinnedKey(hostIdentity().fingerprint),
            HOST_PORT,
            suites=[A256CBC_HS512, CHACHA20_POLY1305],
            exchangeKeys=inlineKeyPool(),
        )
        self.flushAll()
        error = self.failureResultOf(connecting, ChannelsMismatch).value
        self.assertIn("channel 2 uses AES-256-GCM", str(error))
        self.assertEqual(self.server.directory.sessions, {})


class SessionEndTests(unittest.SynchronousTestCase):
    """
    What a connection does once its session ended.
    """

    def test_nothingDeliveredAfterBye(self) -> None:
        """
        A message that arrives in the same read as the peer's session-wide
        BYE, after it, is not delivered: the session is over.
        """
        server = Server()
        client, owner, serverProtocol, pump = server.connect()
        client.sendRecord(fragment(b"first", msgID=0))
        pump.flush()
        bye = records.Bye(records.BYE_NORMAL, records.SCOPE_SESSION, "done").encode()
        data = b"".join(client.records.seal(bye))
        data += b"".join(client.records.seal(fragment(b"after the end", msgID=1)))
        serverProtocol.dataReceived(data)
        self.assertEqual([message[1] for message in server.receiver.messages], [b"first"])
        self.assertEqual(server.directory.sessions, {})
        self.assertTrue(serverProtocol.transport.disconnecting)


class TimeoutTests(unittest.SynchronousTestCase):
    """
    Handshake deadlines, with a fake clock (tier c).
    """

    def test_serverDeadlineDefault(self) -> None:
        """
        A client that never sends F2 is closed with alert 4 no later than
        the 10 s handshake deadline, with no private-key operation, and
        aborted C{ALERT_LINGER} later if it is still open; then no timer is
        left.
        """
        counter = countPrivateOperations(self)
        server = Server()
        protocol, transport = server.acceptString()
        self.assertFalse(transport.disconnecting)
        server.clock.advance(10.0)
        self.assertTrue(transport.disconnecting)
        self.assertTrue(transport.value().endswith(framedAlert(frames.ALERT_TIMEOUT)))
        self.assertEqual(counter.count, 0)
        server.clock.advance(ALERT_LINGER)
        self.assertTrue(transport.disconnected)
        self.assertEqual(server.clock.getDelayedCalls(), [])

    def test_serverDeadlineExact(self) -> None:
        """
        The deadline is exact: with a 2 s handshake timeout the connection
        is still open at 1.9 s and closed, with alert 4, 0.2 s later.
        """
        server = Server(handshakeTimeout=2.0)
        protocol, transport = server.acceptString()
        server.clock.advance(1.9)
        self.assertFalse(transport.disconnecting)
        self.assertEqual(frameBodies(transport.value())[-1][1], frames.SERVER_HELLO)
        server.clock.advance(0.2)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(frameBodies(transport.value())[-1], TIMEOUT_ALERT)
        self.assertTrue(protocol.dead)

    def test_serverF2Deadline(self) -> None:
        """
        A16 (docs section 8.2): F2 must arrive within 3 s of F1; a client
        that has not sent it by then is closed with alert 4, even though the
        whole handshake may take 10 s.
        """
        server = Server()
        protocol, transport = server.acceptString()
        server.clock.advance(2.9)
        self.assertFalse(transport.disconnecting)
        server.clock.advance(0.2)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(frameBodies(transport.value())[-1], TIMEOUT_ALERT)

    def test_slowloris(self) -> None:
        """
        T21: a client trickling a valid-looking F2 a byte every 0.5 s is
        closed when the F2 deadline passes (3 s after F1), with no
        private-key operation.
        """
        counter = countPrivateOperations(self)
        server = Server()
        protocol, transport = server.acceptString()
        trickle = frames.LENGTH.pack(1195) + b"\x01\x02\x01"
        for byte in trickle:
            protocol.dataReceived(bytes([byte]))
            server.clock.advance(0.4)
        self.assertFalse(transport.disconnecting)
        server.clock.advance(3.0 - 0.4 * len(trickle) - 0.05)
        self.assertFalse(transport.disconnecting)
        server.clock.advance(0.1)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(frameBodies(transport.value())[-1], TIMEOUT_ALERT)
        self.assertEqual(counter.count, 0)

    def test_clientDeadline(self) -> None:
        """
        A client whose server sends F1 but never F3 gives up exactly at the
        10 s deadline (dial to F3) and reports a L{ProtocolError}.
        """
        server = Server()
        serverProtocol, serverTransport = server.acceptString()
        client, owner = server.buildClient()
        transport = StringTransport()
        client.makeConnection(transport)
        client.dataReceived(serverTransport.value())
        self.assertEqual(frameBodies(transport.value())[0][1], frames.CLIENT_AUTH)
        server.clock.advance(9.9)
        self.assertFalse(transport.disconnecting)
        self.assertEqual(owner.failed, [])
        server.clock.advance(0.2)
        self.assertTrue(transport.disconnected)
        self.assertIsInstance(owner.failed[0][1], ProtocolError)

    def test_cancelledOnSuccess(self) -> None:
        """
        After the handshake no handshake deadline is left: past both (3 s
        and 10 s), and short of the heartbeat limit (3 silent intervals of
        5 s), both ends are still open.
        """
        server = Server()
        client, owner, serverProtocol, pump = server.connect()
        client.sendRecord(heartbeat())
        pump.flush()
        server.clock.advance(12)
        self.assertFalse(client.transport.disconnecting)
        self.assertFalse(serverProtocol.transport.disconnecting)
        self.assertFalse(client.dead or serverProtocol.dead)


class HostileInputTests(unittest.SynchronousTestCase):
    """
    Garbage, oversized prefixes and frames in the wrong state (T19, T20,
    T32).
    """

    def setUp(self) -> None:
        self.counter = countPrivateOperations(self)
        self.server = Server()

    def test_garbage(self) -> None:
        """
        T19: random bytes, an HTTP request, a TLS ClientHello or an SSH
        banner (each announcing a huge first frame) get the connection
        aborted at once, with no private-key operation and nothing written
        after F1.
        """
        for name, garbage in GARBAGE.items():
            protocol, transport = self.server.acceptString()
            hello = transport.value()
            protocol.dataReceived(garbage)
            self.assertTrue(transport.disconnected, name)
            self.assertTrue(protocol.dead, name)
            self.assertEqual(transport.value(), hello, name)
        self.assertEqual(self.counter.count, 0)

    def test_wrongVersionOrType(self) -> None:
        """
        T19: a small frame with a bad version or type before F2 ends the
        handshake with alert 2 and a close, with no private-key operation.
        """
        for start in (b"\x02\x02", b"\x01\x03", b"\x01\x10", b"\x01\x01"):
            body = start + bytes(100)
            protocol, transport = self.server.acceptString()
            protocol.dataReceived(frames.framed(body))
            self.assertTrue(transport.disconnecting)
            self.assertEqual(frameBodies(transport.value())[-1], frames.Alert(2).encode())
        self.assertEqual(self.counter.count, 0)

    def test_hugePrefixBeforeHandshake(self) -> None:
        """
        T20: a length prefix of 0xFFFFFFFF before the handshake aborts the
        connection at once; nothing of what follows is buffered.
        """
        protocol, transport = self.server.acceptString()
        protocol.dataReceived(b"\xff\xff\xff\xff")
        self.assertTrue(transport.disconnected)
        self.assertLessEqual(protocol._framer.pending(), 4)
        protocol.dataReceived(b"\x00" * 65536)
        self.assertLessEqual(protocol._framer.pending(), 4)

    def test_prefixJustOverCap(self) -> None:
        """
        T20: a prefix of 2049 before the handshake aborts; one of 2048 waits
        for its body.
        """
        protocol, transport = self.server.acceptString()
        protocol.dataReceived(frames.LENGTH.pack(2048) + b"\x01")
        self.assertFalse(transport.disconnecting)
        protocol, transport = self.server.acceptString()
        protocol.dataReceived(frames.LENGTH.pack(2049))
        self.assertTrue(transport.disconnected)
        self.assertLessEqual(protocol._framer.pending(), 4)

    def test_hugePrefixToClient(self) -> None:
        """
        T20: a client receiving a prefix over the pre-handshake cap aborts
        and reports a L{ProtocolError}.
        """
        client, owner = self.server.buildClient()
        transport = StringTransport()
        client.makeConnection(transport)
        client.dataReceived(b"\x00\x00\x08\x01")
        self.assertTrue(transport.disconnected)
        self.assertIsInstance(owner.failed[0][1], ProtocolError)

    def test_hugePrefixAfterHandshake(self) -> None:
        """
        T20: after the handshake, a prefix of 0xFFFFFFFF (or one byte over
        the post-handshake cap) aborts the connection, on either end.
        """
        cap = frames.maxProtectedBody(frames.Params().maxInner)
        for prefix in (b"\xff\xff\xff\xff", frames.LENGTH.pack(cap + 1)):
            client, owner, serverProtocol, pump = self.server.connect()
            serverProtocol.dataReceived(prefix)
            self.assertTrue(serverProtocol.dead)
            self.assertTrue(serverProtocol.transport.disconnecting)
            client.dataReceived(prefix)
            self.assertTrue(client.dead)
            self.assertTrue(client.transport.disconnecting)
            pump.flush()
            self.assertEqual(len(owner.lost), 1)

    def test_capAfterHandshake(self) -> None:
        """
        A prefix of exactly the post-handshake cap is accepted (it waits for
        its body).
        """
        cap = frames.maxProtectedBody(frames.Params().maxInner)
        client, owner, serverProtocol, pump = self.server.connect()
        serverProtocol.dataReceived(frames.LENGTH.pack(cap))
        self.assertFalse(serverProtocol.dead)

    def test_plaintextAfterFinished(self) -> None:
        """
        T32: after F3, a plaintext HS_ALERT sent to the server, or a
        SERVER_HELLO (F1 replayed) sent to the client, closes that
        connection; a new client is served normally afterwards.
        """
        client, owner, serverProtocol, pump = self.server.connect()
        serverProtocol.dataReceived(framedAlert(frames.ALERT_BUSY))
        self.assertTrue(serverProtocol.dead)
        self.assertTrue(serverProtocol.transport.disconnecting)

        client, owner, serverProtocol, pump = self.server.connect()
        protocol, transport = self.server.acceptString()
        client.dataReceived(transport.value())  # someone's F1
        self.assertTrue(client.dead)
        self.assertTrue(client.transport.disconnecting)
        pump.flush()
        self.assertEqual(len(owner.lost), 1)
        self.assertEqual(owner.records, [])

        _, owner, _, pump = self.server.connect()
        self.assertEqual(len(owner.established), 1)

    def test_forgedRecord(self) -> None:
        """
        A protected frame that fails authentication closes the connection
        and nothing reaches the session.
        """
        client, owner, serverProtocol, pump = self.server.connect()
        aad, body = client.records.seal(fragment(b"secret"))
        forged = bytearray(body)
        forged[-1] ^= 1
        serverProtocol.dataReceived(aad + bytes(forged))
        self.assertTrue(serverProtocol.dead)
        self.assertEqual(self.server.receiver.messages, [])

    def test_replayedRecord(self) -> None:
        """
        T4: a protected frame replayed on its connection closes it.
        """
        client, owner, serverProtocol, pump = self.server.connect()
        aad, body = client.records.seal(heartbeat())
        serverProtocol.dataReceived(aad + body)
        self.assertFalse(serverProtocol.dead)
        serverProtocol.dataReceived(aad + body)
        self.assertTrue(serverProtocol.dead)

    def test_nothingAfterFatal(self) -> None:
        """
        A17: frames that arrive in the same read after a fatal frame are
        not processed.
        """
        client, owner, serverProtocol, pump = self.server.connect()
        first = b"".join(client.records.seal(fragment(b"one", msgID=0)))
        client.records.seal(b"skipped")
        third = b"".join(client.records.seal(fragment(b"two", msgID=1)))
        serverProtocol.dataReceived(first + first + third)
        self.assertTrue(serverProtocol.dead)
        self.assertEqual([m[1] for m in self.server.receiver.messages], [b"one"])

    def test_busyAlertToClient(self) -> None:
        """
        A client answered with alert 3 reports L{ServerBusy}.
        """
        client, owner = self.server.buildClient()
        client.makeConnection(StringTransport())
        client.dataReceived(framedAlert(frames.ALERT_BUSY))
        self.assertIsInstance(owner.failed[0][1], ServerBusy)
        self.assertTrue(client.transport.disconnected)


class PendingLimitTests(unittest.SynchronousTestCase):
    """
    Caps on handshakes in progress (A8, A16, A17).
    """

    def test_perSource(self) -> None:
        """
        Over the per-source cap a newcomer from the same address gets alert
        3 and is closed, while another address is still served.
        """
        server = Server(limits=Limits(pendingPerSource=2))
        server.acceptString(host="10.0.0.1")
        server.acceptString(host="10.0.0.1")
        protocol, transport = server.acceptString(host="10.0.0.1")
        self.assertNotIsInstance(protocol, ChannelProtocol)
        self.assertEqual(transport.value(), framedAlert(frames.ALERT_BUSY))
        self.assertTrue(transport.disconnecting)
        _, owner, _, _ = server.connect(host="10.0.0.2")
        self.assertEqual(len(owner.established), 1)
        self.assertEqual(server.directory.pendingHandshakes(), 2)

    def test_busyClientSees(self) -> None:
        """
        The busy answer reaches a real client as L{ServerBusy}.
        """
        server = Server(limits=Limits(pendingPerSource=1))
        server.acceptString(host="127.0.0.1")
        _, owner, _, _ = server.connect(host="127.0.0.1")
        self.assertIsInstance(owner.failed[0][1], ServerBusy)

    def test_ipv6Slash64(self) -> None:
        """
        IPv6 sources are counted per /64.
        """
        server = Server(limits=Limits(pendingPerSource=2))
        server.acceptString(host="2001:db8::1")
        server.acceptString(host="2001:db8::2")
        busy, _ = server.acceptString(host="2001:db8::ffff:1")
        self.assertNotIsInstance(busy, ChannelProtocol)
        served, _ = server.acceptString(host="2001:db8:0:1::1")
        self.assertIsInstance(served, ChannelProtocol)

    def test_ipv6PeerAddress(self) -> None:
        """
        A connection names an IPv6 peer C{[ADDRESS]:PORT}, so the port
        cannot be read as part of the address.
        """
        protocol, _ = Server().acceptString(host="2001:DB8::1")
        self.assertEqual(protocol.peerAddress(), "[2001:db8::1]:1234")

    def test_completedHandshakesFreeSlots(self) -> None:
        """
        Connections that finished their handshake no longer count.
        """
        server = Server(limits=Limits(pendingPerSource=2))
        for _ in range(4):
            _, owner, _, _ = server.connect(host="10.0.0.1")
            self.assertEqual(len(owner.established), 1)
        self.assertEqual(server.directory.pendingHandshakes(), 0)

    def test_failedHandshakesFreeSlots(self) -> None:
        """
        Connections whose handshake failed (garbage, timeout, refusal) no
        longer count once closed: the address is served again.
        """
        server = Server(limits=Limits(pendingPerSource=2), handshakeTimeout=2.0)
        protocol, transport = server.acceptString(host="10.0.0.1")
        protocol.dataReceived(GARBAGE["HTTP"])
        protocol.connectionLost(Failure(iosim.error.ConnectionDone()))
        protocol, transport = server.acceptString(host="10.0.0.1")
        server.clock.advance(2.1)
        protocol.connectionLost(Failure(iosim.error.ConnectionDone()))
        self.assertEqual(server.directory.pendingHandshakes(), 0)
        _, owner, _, _ = server.connect(host="10.0.0.1")
        self.assertEqual(len(owner.established), 1)

    def test_refusedHandshakeFreesSlot(self) -> None:
        """
        A client refused by authorization (alert 2) frees its slot once the
        connection closes.
        """
        authorized = AuthorizedKeys("authorized_keys", [])
        server = Server(authorizer=authorized, limits=Limits(pendingPerSource=1))
        _, owner, _, _ = server.connect(host="10.0.0.1")
        self.assertIsInstance(owner.failed[0][1], ClientNotAuthorized)
        self.assertEqual(server.directory.pendingHandshakes(), 0)

    def test_globalCapEvicts(self) -> None:
        """
        A16: with the global cap full, a newcomer is admitted and a random
        pending connection is aborted to make room; the aborted one counts
        until its connection is lost.
        """
        server = Server(limits=Limits(pendingTotal=2))
        first = server.acceptString(host="10.0.0.1")
        second = server.acceptString(host="10.0.0.2")
        protocol, transport = server.acceptString(host="10.0.0.3")
        self.assertIsInstance(protocol, ChannelProtocol)
        self.assertEqual(frameBodies(transport.value())[0][1], frames.SERVER_HELLO)
        aborted = [t.disconnected for _, t in (first, second)]
        self.assertEqual(sorted(aborted), [False, True])
        for protocol, transport in (first, second):
            self.assertEqual(protocol.dead, transport.disconnected)
        self.assertEqual(server.directory.pendingHandshakes(), 3)
        for protocol, transport in (first, second):
            if transport.disconnected:
                protocol.connectionLost(Failure(iosim.error.ConnectionAborted()))
        self.assertEqual(server.directory.pendingHandshakes(), 2)


def clientChannel(clock: Clock):
    """
    A client connection on a L{StringTransport} to 127.0.0.1:9000, made.

    @return: C{(protocol, owner)}.
    """
    owner = RecordingChannelOwner()
    identity = clientIdentity()

    def makeHandshake(protocol):
        return ClientHandshake(
            ChannelExpectation(), identity.privateKey, identity.publicDER, exchangeKeyDER(),
            lambda fingerprint: None, protocol,
        )

    client = ChannelProtocol(owner, makeHandshake, clock, isServer=False)
    client.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 9000)))
    return client, owner


class SilentServerTests(unittest.SynchronousTestCase):
    """
    A server that takes the connection and says nothing.
    """

    def test_noAnswer(self) -> None:
        """
        Silence until the handshake deadline is "no answer from HOST:PORT
        within 10 s", not a protocol error: the peer sent nothing.
        """
        clock = Clock()
        client, owner = clientChannel(clock)
        clock.advance(channel.DEFAULT_HANDSHAKE_TIMEOUT)
        [(_, error)] = owner.failed
        self.assertIsInstance(error, NoAnswer)
        self.assertNotIsInstance(error, ProtocolError)
        self.assertTrue(
            str(error).startswith("no answer from 127.0.0.1:9000 within 10 s; "), str(error)
        )
        self.assertIn("TLS port", str(error))
        self.assertTrue(client.dead)

    def test_closedWithoutAWord(self) -> None:
        """
        A server that closes before sending a byte is said to have closed
        without answering.
        """
        client, owner = clientChannel(Clock())
        client.connectionLost(Failure(ConnectionResetError()))
        [(_, error)] = owner.failed
        self.assertEqual(
            str(error),
            f"127.0.0.1:9000 closed the connection without answering; {NoAnswer.HINT}",
        )

    def test_closedOverTLS(self) -> None:
        """
        Over TLS, a close before any SPC/1 byte more likely means a port
        without TLS, and the hint says so.
        """
        client, owner = clientChannel(Clock())
        client.tlsPeer = TLSPeer("spc.example:9443", "spc.example")
        client.connectionLost(Failure(ConnectionResetError()))
        [(_, error)] = owner.failed
        self.assertEqual(
            str(error),
            f"spc.example:9443 closed the connection without answering; {NoAnswer.TLS_HINT}",
        )

    def test_closedMidHandshake(self) -> None:
        """
        One that closes after it spoke is still a handshake cut short.
        """
        client, owner = clientChannel(Clock())
        client.dataReceived(b"\x00\x00\x01")
        client.connectionLost(Failure(ConnectionResetError()))
        [(_, error)] = owner.failed
        self.assertIsInstance(error, ProtocolError)
        self.assertIn("closed during the handshake", str(error))
