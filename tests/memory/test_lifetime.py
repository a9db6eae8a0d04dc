"""
Tests for the lifetime of connections and the bounds on what they buffer:
every connection the server refuses, times out, answers "busy", evicts or
ends is released, even over a transport that ignores a close (as TLS does
while it waits for a handshake or a close_notify that never comes); and a
peer that stops reading cannot make this end buffer without bound, nor keep
its connection.

In memory, with L{task.Clock} for every deadline (STYLE habit 14, tiers b
and c); L{tests.integration.test_tls} runs the same against the real daemon over TLS.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionAborted
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from spc.errors import SessionClosed
from spc.keys.trust import AuthorizedKeys
from spc.protocol import filerecords, frames, records
from spc.server.directory import Limits
from spc.transport import channel
from spc.transport.channel import PAUSED_WRITE_LIMIT, ChannelProtocol
from spc.transport.closing import ALERT_LINGER, CLOSE_TIMEOUT
from spc.transport.pipeline import Sealer
from tests.common import framedAlert
from tests.fakes import QueuedLane
from tests.memory.test_channel import Server, frameBodies

HEARTBEAT = frames.Params().heartbeatInterval / 1000
DEAD_TIME = frames.Params().heartbeatMissLimit * HEARTBEAT


class HoldingTransport(StringTransport):
    """
    A transport that stays open when told to close, as TLS does while it
    waits for a handshake or a close_notify that never comes: only an
    abort ends it, and then its protocol hears of the loss.

    @ivar protocol: the connection on it.
    """

    protocol = None

    def abortConnection(self) -> None:
        if not self.disconnected:
            super().abortConnection()
            self.protocol.connectionLost(Failure(ConnectionAborted()))


def accept(server: Server, host: str = "192.0.2.1"):
    """
    A connection from C{host} to C{server}'s port 0 over a
    L{HoldingTransport}; the server has written F1, or "busy".

    @return: C{(protocol, transport)}.
    """
    protocol = server.buildServer(0, host)
    transport = HoldingTransport(peerAddress=IPv4Address("TCP", host, 40000))
    transport.protocol = protocol
    protocol.makeConnection(transport)
    return protocol, transport


def holdOpen(transport) -> list[str]:
    """
    Make an C{iosim} transport ignore C{loseConnection}, as TLS does while
    the peer withholds its close_notify.

    @return: the list in which each ignored close is recorded.
    """
    ignored: list[str] = []
    transport.loseConnection = lambda: ignored.append("close")
    return ignored


class RefusedConnectionTests(SynchronousTestCase):
    """
    Amendment A17: alert, then abort.  A connection refused before
    authentication gets its alert and a close, and is aborted
    C{ALERT_LINGER} later if it is still open; it counts against the
    pending caps until it is gone.
    """

    def assertAbortedAfterLinger(self, server: Server, transport, alert: int) -> None:
        self.assertEqual(frameBodies(transport.value())[-1], frames.Alert(alert).encode())
        self.assertTrue(transport.disconnecting)
        server.clock.advance(ALERT_LINGER - 0.01)
        self.assertFalse(transport.disconnected)
        server.clock.advance(0.01)
        self.assertTrue(transport.disconnected)

    def test_timedOut(self) -> None:
        """
        A peer that connects and sends nothing gets alert 4 at the F2
        deadline and is aborted C{ALERT_LINGER} later; then it no longer
        counts and no timer is left.
        """
        server = Server()
        protocol, transport = accept(server)
        server.clock.advance(channel.DEFAULT_REPLY_TIMEOUT)
        self.assertEqual(server.directory.pendingHandshakes(), 1)
        self.assertAbortedAfterLinger(server, transport, frames.ALERT_TIMEOUT)
        self.assertEqual(server.directory.pendingHandshakes(), 0)
        self.assertEqual(server.clock.getDelayedCalls(), [])

    def test_refused(self) -> None:
        """
        A peer refused with alert 2 (here for a frame of the wrong type) is
        aborted C{ALERT_LINGER} later.
        """
        server = Server()
        protocol, transport = accept(server)
        protocol.dataReceived(frames.framed(b"\x01\x03" + bytes(100)))
        self.assertAbortedAfterLinger(server, transport, frames.ALERT_HANDSHAKE_FAILURE)
        self.assertEqual(server.directory.pendingHandshakes(), 0)

    def test_closedInTime(self) -> None:
        """
        A peer that closes after its alert leaves no abort behind.
        """
        server = Server()
        protocol, transport = accept(server)
        server.clock.advance(channel.DEFAULT_REPLY_TIMEOUT)
        protocol.connectionLost(Failure(ConnectionAborted()))
        self.assertEqual(server.clock.getDelayedCalls(), [])
        self.assertFalse(transport.disconnected)

    def test_busy(self) -> None:
        """
        A connection over the per-source cap gets alert 3 and a close, and
        is aborted C{ALERT_LINGER} later; one that closes in time leaves no
        abort behind.
        """
        server = Server(limits=Limits(pendingPerSource=1))
        accept(server)
        busy, transport = accept(server)
        self.assertNotIsInstance(busy, ChannelProtocol)
        self.assertEqual(transport.value(), framedAlert(frames.ALERT_BUSY))
        self.assertAbortedAfterLinger(server, transport, frames.ALERT_BUSY)
        busy, transport = accept(server)
        busy.connectionLost(Failure(ConnectionAborted()))
        server.clock.advance(ALERT_LINGER)
        self.assertFalse(transport.disconnected)

    def test_countedUntilGone(self) -> None:
        """
        Refused connections that have not gone still count against their
        source, so 64 (here 2) peers that ignore the close cannot make room
        for more; once they are aborted the source is served again.
        """
        server = Server(limits=Limits(pendingPerSource=2))
        held = [accept(server) for _ in range(2)]
        for protocol, _ in held:
            protocol.dataReceived(frames.framed(b"\x02\x02"))
        self.assertEqual(server.directory.pendingHandshakes(), 2)
        busy, _ = accept(server)
        self.assertNotIsInstance(busy, ChannelProtocol)
        server.clock.advance(ALERT_LINGER)
        self.assertTrue(all(transport.disconnected for _, transport in held))
        self.assertEqual(server.directory.pendingHandshakes(), 0)
        served, _ = accept(server)
        self.assertIsInstance(served, ChannelProtocol)

    def test_evictionSkipsLeaving(self) -> None:
        """
        A16 with the global cap full of connections already refused and not
        yet gone: none can be evicted, so the newcomer is answered "busy";
        every connection still open is counted.  Once they are gone the
        next one is served.
        """
        server = Server(limits=Limits(pendingTotal=2))
        held = [accept(server, f"192.0.2.{n}") for n in (1, 2)]
        server.clock.advance(channel.DEFAULT_REPLY_TIMEOUT)
        newcomer, transport = accept(server, "192.0.2.3")
        self.assertNotIsInstance(newcomer, ChannelProtocol)
        self.assertEqual(transport.value(), framedAlert(frames.ALERT_BUSY))
        stillOpen = [t for _, t in held if not t.disconnected]
        self.assertEqual(server.directory.pendingHandshakes(), len(stillOpen))
        server.clock.advance(ALERT_LINGER)
        newcomer, _ = accept(server, "192.0.2.3")
        self.assertIsInstance(newcomer, ChannelProtocol)

    def test_evictionAborts(self) -> None:
        """
        A16: the connection evicted to make room is aborted, not merely
        forgotten, and counts until it is gone.
        """
        server = Server(limits=Limits(pendingTotal=2))
        held = [accept(server, f"192.0.2.{n}") for n in (1, 2)]
        newcomer, _ = accept(server, "192.0.2.3")
        self.assertIsInstance(newcomer, ChannelProtocol)
        self.assertEqual(sorted(t.disconnected for _, t in held), [False, True])
        self.assertEqual(server.directory.pendingHandshakes(), 2)

    def test_stopAborts(self) -> None:
        """
        A stopping server aborts the handshakes in progress, and those
        refused before are gone C{ALERT_LINGER} later.
        """
        server = Server()
        refused, refusedTransport = accept(server, "192.0.2.1")
        refused.dataReceived(frames.framed(b"\x02\x02"))
        pending, pendingTransport = accept(server, "192.0.2.2")
        server.directory.stop()
        self.assertTrue(pendingTransport.disconnected)
        server.clock.advance(ALERT_LINGER)
        self.assertTrue(refusedTransport.disconnected)
        self.assertEqual(server.directory.pendingHandshakes(), 0)


class SessionEndTests(SynchronousTestCase):
    """
    Every way a session or a channel ends closes the connection and aborts
    it if it has not closed C{CLOSE_TIMEOUT} later, however the peer
    behaves.
    """

    def endsThenAborts(self, end, limits: Limits | None = None) -> None:
        """
        Connect a client, make the server's transport ignore closes, run
        C{end(server, serverProtocol, client, pump)}, and check that the
        server's connection is aborted exactly C{CLOSE_TIMEOUT} after it
        was told to close, and then lost.
        """
        server = Server(limits=limits)
        client, owner, serverProtocol, pump = server.connect()
        ignored = holdOpen(serverProtocol.transport)
        lost: list = []
        serverProtocol.whenLost().addCallback(lost.append)
        end(server, serverProtocol, client, pump)
        pump.flush()
        self.assertEqual(ignored, ["close"])
        server.clock.advance(CLOSE_TIMEOUT - 0.01)
        pump.flush()
        self.assertEqual(lost, [])
        server.clock.advance(0.01)
        pump.flush()
        self.assertEqual(lost, [None])

    def test_terminated(self) -> None:
        """
        Revocation: the identity is no longer authorized.
        """
        def end(server, serverProtocol, client, pump):
            server.directory.setAuthorizer(AuthorizedKeys("authorized_keys", []))

        self.endsThenAborts(end)

    def test_protocolError(self) -> None:
        """
        The peer broke a session rule.
        """
        def end(server, serverProtocol, client, pump):
            serverProtocol.owner.protocolError("a test")

        self.endsThenAborts(end)

    def test_shutdown(self) -> None:
        """
        The server stops: L{Session.close} with "shutting down".
        """
        def end(server, serverProtocol, client, pump):
            serverProtocol.owner.close(records.BYE_SHUTTING_DOWN, "shutting down")

        self.endsThenAborts(end)

    def test_replaced(self) -> None:
        """
        A newer session of the same identity replaces the oldest.
        """
        def end(server, serverProtocol, client, pump):
            server.connect()

        self.endsThenAborts(end, Limits(sessionsPerIdentity=1))

    def test_peerClosedChannel(self) -> None:
        """
        The peer said goodbye to the channel.
        """
        def end(server, serverProtocol, client, pump):
            client.sendRecord(
                records.Bye(records.BYE_NORMAL, records.SCOPE_CHANNEL, "bye").encode()
            )

        self.endsThenAborts(end)

    def test_peerEndedSession(self) -> None:
        """
        The peer said goodbye to the session.
        """
        def end(server, serverProtocol, client, pump):
            client.sendRecord(
                records.Bye(records.BYE_NORMAL, records.SCOPE_SESSION, "bye").encode()
            )

        self.endsThenAborts(end)


class StalledPeerTests(SynchronousTestCase):
    """
    A peer that stops reading: what this end buffers for it is bounded, and
    its connection is let go.
    """

    def setUp(self) -> None:
        self.server = Server()
        self.client, _, self.serverProtocol, self.pump = self.server.connect()
        self.session = self.serverProtocol.owner
        self.transport = self.serverProtocol.transport

    def unsent(self) -> int:
        """
        Bytes the server wrote that the client has not read.
        """
        return sum(map(len, self.transport.stream))

    def fromClient(self, record: bytes) -> None:
        """
        The client sends C{record}; the server reads it, the client reads
        nothing.
        """
        self.serverProtocol.dataReceived(b"".join(self.client.records.seal(record)))

    def test_pausedWritesBounded(self) -> None:
        """
        Once the transport paused the connection, records of any kind are
        written until C{PAUSED_WRITE_LIMIT} bytes wait; the next one kills
        the connection instead.
        """
        self.serverProtocol.pauseProducing()
        before = self.unsent()
        answer = records.Ack(0, records.ACK_COMPLETE).encode()
        for _ in range(PAUSED_WRITE_LIMIT // len(answer) + 1):
            self.serverProtocol.sendRecord(answer)
        self.assertTrue(self.serverProtocol.dead)
        self.assertTrue(self.transport.disconnecting)
        self.assertLessEqual(self.unsent() - before, PAUSED_WRITE_LIMIT)

    def test_laneFramesNotCounted(self) -> None:
        """
        Frames handed over before the transport paused the connection, and
        sealed in its crypto lane after, are written without counting
        against C{PAUSED_WRITE_LIMIT}: only what is given while paused does.
        """
        lane = QueuedLane()
        self.serverProtocol._sealer = Sealer(lane, self.serverProtocol._writeFrame)
        data = filerecords.FileData(b"d" * 16, 0, b"x" * (PAUSED_WRITE_LIMIT // 2)).encode()
        for _ in range(3):
            self.serverProtocol.sendRecord(data)
        self.serverProtocol.pauseProducing()
        lane.runAll()
        self.assertFalse(self.serverProtocol.dead)
        self.assertGreater(self.unsent(), PAUSED_WRITE_LIMIT)

    def test_clientBounded(self) -> None:
        """
        The client end of a connection obeys the same bound.
        """
        self.client.pauseProducing()
        request = records.HeartbeatRequest(
            1, 0, 0, records.NO_EPOCH, records.NO_SEQUENCE, 0, 0
        ).encode()
        for _ in range(PAUSED_WRITE_LIMIT // len(request) + 1):
            self.client.sendRecord(request)
        self.assertTrue(self.client.dead)

    def test_resumeResetsBound(self) -> None:
        """
        The bound counts what was written since the transport paused: a
        connection whose transport resumed may be paused again and take as
        much again.
        """
        answer = records.Ack(0, records.ACK_COMPLETE).encode()
        for _ in range(3):
            self.serverProtocol.pauseProducing()
            pausedAt = self.serverProtocol.bytesSent
            while self.serverProtocol.bytesSent - pausedAt < PAUSED_WRITE_LIMIT - 1000:
                self.serverProtocol.sendRecord(answer)
            self.serverProtocol.resumeProducing()
        self.assertFalse(self.serverProtocol.dead)

    def test_duplicateFlood(self) -> None:
        """
        A client that reads nothing, answers the server's heartbeats blind
        (their ids are sequential) and replays a fragment two thousand
        times an interval: the server writes one acknowledgement per
        message and interval and its heartbeats, a few KiB in all, and
        once the connection has been paused for the heartbeat dead-time it
        is closed as dead.
        """
        size = self.session.params.fragmentSize
        last = records.Fragment(
            0, 1, 2, size + 1, records.KIND_BINARY, bytes(32), b"m"
        ).encode()
        self.fromClient(last)
        self.pump.flush()
        self.serverProtocol.pauseProducing()
        pausedAt = self.server.clock.seconds()
        before = self.unsent()
        blindID = 0
        while not self.serverProtocol.dead:
            for _ in range(2000):
                self.fromClient(last)
            self.server.clock.advance(HEARTBEAT)
            blindID += 1
            self.fromClient(
                records.HeartbeatResponse(
                    blindID, 0, 0, records.NO_EPOCH, records.NO_SEQUENCE, 0, 0
                ).encode()
            )
            self.assertLess(self.unsent() - before, 4096)
        self.assertLessEqual(self.server.clock.seconds() - pausedAt, DEAD_TIME + HEARTBEAT)
        self.assertIn("reads nothing", self.serverProtocol._lostReason)
        self.assertTrue(self.transport.disconnecting)
        self.assertIsNone(self.session.closedReason)

    def test_goneAfterSessionEnds(self) -> None:
        """
        A client that reads nothing and ignores the close once its session
        ended is cut off well within the heartbeat dead-time.
        """
        self.serverProtocol.pauseProducing()
        ignored = holdOpen(self.transport)
        lost: list = []
        self.serverProtocol.whenLost().addCallback(lost.append)
        self.session.terminate(records.BYE_REPLACED, "replaced", SessionClosed)
        self.assertEqual(ignored, ["close"])
        self.server.clock.advance(CLOSE_TIMEOUT)
        self.pump.flush()
        self.assertEqual(lost, [None])
        self.assertLess(CLOSE_TIMEOUT, DEAD_TIME)
