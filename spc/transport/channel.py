# -*- test-case-name: tests.memory.test_channel,tests.memory.test_lifetime -*-
"""
One TCP connection of a session: framing, the handshake, the record layer.

L{ChannelProtocol} wires three layers and nothing else: a L{Framer} that
knows only length prefixes and the size cap of the current phase, the sans-IO
handshake machine until F3, and the L{RecordLayer} after it.  Its life (open,
closing, refused, faulted, gone) is the machine of
L{spc.transport.lifecycle}, which says what each event does.  Every peer
fault takes one exit, L{ChannelProtocol.fatal}: it marks the connection dead
before anything else (so no buffered frame is processed after the fault),
keeps the reason for the operator's log, and aborts without telling the peer
anything it could use as an oracle.  Before authentication the reason goes
to the owner's rate-limited log; after it, the reason is that of the
"channel dead" event once the connection is gone.  A failed TLS handshake
below takes the same path, in the words of L{spc.transport.tls.explainFailure}.

The factories carry per-port configuration; what a connection joins or
creates is the business of the L{ChannelOwner} it reports to
(L{spc.transport.owners}).  How a connection ends, and how long it may
take, is L{spc.transport.closing}'s.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet import protocol
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from spc.addresses import peerText
from spc.errors import (
    EpochAhead,
    NoAnswer,
    NotTLS,
    ProtocolError,
    SequenceExhausted,
    SPCError,
    TLSFailed,
)
from spc.logs import events
from spc.protocol import frames, records
from spc.protocol.clienthandshake import ClientHandshake
from spc.protocol.handshake import ClientResult, ServerResult
from spc.protocol.recordlayer import RecordLayer
from spc.protocol.serverhandshake import ServerHandshake
from spc.transport.closing import ALERT_LINGER, CLOSE_TIMEOUT, closeThenAbort
from spc.transport.framer import Framer
from spc.transport.lifecycle import ChannelLifecycle
from spc.transport.owners import ChannelOwner, HandshakeOwner
from spc.transport.deadlines import HandshakeDeadlines
from spc.transport.pipeline import MAX_QUEUED, Opener, ReadPauses, Sealer
from spc.transport.sockets import lowLatency
from spc.transport.tls import TLSPeer, explainFailure

__all__ = [
    "ChannelOwner",
    "ChannelProtocol",
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_REPLY_TIMEOUT",
    "HandshakeOwner",
    "PAUSED_WRITE_LIMIT",
]

DEFAULT_HANDSHAKE_TIMEOUT = 10.0
DEFAULT_REPLY_TIMEOUT = 3.0
SEND_BUFFER = 256 * 1024
NOTSENT_LOWAT = 128 * 1024

PAUSED_WRITE_LIMIT = 256 * 1024
"""
Bytes of sealed records a connection may be given while its transport has
paused it: in practice control records, as the scheduler gives a paused
connection no data (frames handed over before the pause and still in its
crypto lane do not count).  A peer that reads nothing cannot make this end buffer
more: one more record and the connection is dead.  With the C{SEND_BUFFER}
at which the transport pauses and the frame that made it pause, a
connection holds at most C{SEND_BUFFER + PAUSED_WRITE_LIMIT} bytes and one
frame unsent in user space: 768 KiB with the default fragment size.
"""


class ChannelProtocol(protocol.Protocol):
    """
    One connection.

    @ivar owner: where events go; the session replaces the directory or
        connector as owner once the connection belongs to it.
    @ivar records: the record layer, from F3 on.
    @ivar result: what the handshake established.
    @ivar dead: set first thing on any fatal error, a failed handshake or
        the loss of the connection: it reads and sends nothing more.
    @ivar writePaused: whether the transport asked for a pause: the
        scheduler gives this connection no data until it resumes.
    @ivar pausedSince: when the transport paused this connection, on its
        clock; L{None} while it takes data.
    @ivar bytesSent: bytes written to the transport, framing included.
    @ivar bytesReceived: bytes read from the transport.
    @ivar tlsPeer: how the client named the server of this connection, if
        it runs over TLS (set by L{spc.transport.tls.tlsClientEndpoint}), so that a
        failed TLS handshake is reported in those words.
    @ivar cryptoLane: where its bulk frames are sealed and opened, if its
        suite is worth a hand-off (L{spc.crypto.suites.Suite.inLane}) and
        its owner gave it one before L{activate}; otherwise they are sealed
        and opened at once.
    """

    log = events.NamedLogger(events.CHANNEL)

    def __init__(
        self,
        owner: ChannelOwner,
        makeHandshake: Callable[[ChannelProtocol], ServerHandshake | ClientHandshake],
        clock: IReactorTime,
        handshakeTimeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        isServer: bool = True,
        replyTimeout: float = DEFAULT_REPLY_TIMEOUT,
    ) -> None:
        self.owner = owner
        self._makeHandshake = makeHandshake
        self._clock = clock
        self._handshakeTimeout = handshakeTimeout
        self._replyTimeout = replyTimeout
        self.isServer = isServer
        self._framer = Framer(frames.MAX_BODY_PRE)
        self._handshake: ServerHandshake | ClientHandshake | None = None
        self._deadlines = HandshakeDeadlines(clock, self._timedOut)
        self.records: RecordLayer | None = None
        self.result: ServerResult | ClientResult | None = None
        self.dead = False
        self.writePaused = False
        self.pausedSince: float | None = None
        self._pausedBytes = 0
        self._abortCall: IDelayedCall | None = None
        self._lostReason = "connection closed"
        self._lostWaiters: list[Deferred] = []
        self._life = ChannelLifecycle(self)
        self.bytesSent = 0
        self.bytesReceived = 0
        self.tlsPeer: TLSPeer | None = None
        self.cryptoLane = None
        self._lane = None
        self._sealer: Sealer | None = None
        self._opener: Opener | None = None
        self._readPauses = ReadPauses()

    # Transport events.

    def connectionMade(self) -> None:
        self._life.connected()
        self._limitBuffering()
        self.transport.registerProducer(self, True)
        self._deadlines.start(self._handshakeTimeout, self._replyTimeout if self.isServer else None)
        self._handshake = self._makeHandshake(self)
        if self.isServer:
            self._handshake.start()

    def _limitBuffering(self) -> None:
        """
        Keep unsent data short-lived (amendment A10): Twisted pauses this
        connection as a producer once C{SEND_BUFFER} bytes wait in user
        space, and on Linux the kernel keeps at most C{NOTSENT_LOWAT}
        unsent bytes, so a slow channel is noticed at once and the
        scheduler gives fragments to the others.  Records leave without
        Nagle's wait for the peer's delayed ACK (L{lowLatency}).
        """
        self.transport.bufferSize = SEND_BUFFER
        lowLatency(self.transport, NOTSENT_LOWAT)

    # IPushProducer: the transport says when it can take more.

    def pauseProducing(self) -> None:
        if not self.writePaused:
            self.pausedSince = self._clock.seconds()
        self.writePaused = True

    def resumeProducing(self) -> None:
        self.writePaused = False
        self.pausedSince = None
        self._pausedBytes = 0
        if self.records is not None and not self.dead:
            self.owner.channelWritable(self)

    def stopProducing(self) -> None:
        self.pauseProducing()

    @property
    def cost(self) -> float:
        """
        What a byte sent on it costs, relative to the cheapest suite.
        """
        return self.result.keys.suite.cost

    def canTakeData(self) -> bool:
        """
        Whether the scheduler may give it a fragment now: its transport has
        not paused it, and no more than C{MAX_QUEUED} frames wait for its
        crypto lane.
        """
        return not self.writePaused and self._sealer.queued < MAX_QUEUED

    def pauseReading(self, reason: str = "owner") -> None:
        """
        Read nothing more from the peer until L{resumeReading} for every
        reason given (L{ReadPauses}): its owner's, or its opener's.
        """
        self._readPauses.pause(self.transport, reason)

    def resumeReading(self, reason: str = "owner") -> None:
        self._readPauses.resume(None if self.dead else self.transport, reason)

    def _openerReady(self) -> None:
        """
        The frame the crypto lane opened was acted on: go on with the bytes
        that waited for it, then read again.
        """
        self.dataReceived(b"")
        if not (self.dead or self._opener.busy):
            self.resumeReading("opening")

    def dataReceived(self, data: bytes) -> None:
        if self.dead:
            return
        self.bytesReceived += len(data)
        try:
            self._framer.feed(data, self._deliver)
        except SPCError as error:
            self.fatal(str(error))

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self._life.lost(reason)

    def connectionGone(
        self, reason: Failure, reportDead: bool, fault: bool, wasAlive: bool
    ) -> None:
        """
        The lifecycle's report of a lost connection
        (L{spc.transport.lifecycle.ChannelActions.connectionGone}).
        """
        self._deadlines.cancel()
        if self._abortCall is not None and self._abortCall.active():
            self._abortCall.cancel()
        self._abortCall = None
        reason = explainFailure(reason, self.tlsPeer or TLSPeer(self.peerAddress(), ""))
        waiters, self._lostWaiters = self._lostWaiters, []
        for waiter in waiters:
            waiter.callback(None)
        if self.result is not None and reportDead:
            self._logDead(reason, fault)
        if self.result is None and self.isServer and wasAlive and reason.check(TLSFailed, NotTLS):
            self.owner.handshakeRefused(self, "tls", str(reason.value), None)
        if self.result is not None or self.isServer:
            self.owner.channelLost(self, self._lostReason)
        elif not self.isServer and self._handshake is not None:
            # TLS may have said why, in words a user can act on.
            error = reason.value if isinstance(reason.value, SPCError) else None
            if error is None and self.bytesReceived == 0:
                error = NoAnswer(self._serverName(), None, self.tlsPeer is not None)
            self._handshake.gotBad(
                error or ProtocolError("the connection closed during the handshake")
            )

    # Frames.

    def _deliver(self, body: bytes | bytearray | memoryview) -> bool:
        if self.dead:
            return False
        if self.records is None:
            self._deadlines.replied()
            self._handshake.frameReceived(bytes(body))
            return not self.dead
        if self._opener.received(body):
            return not self.dead
        if self._opener.busy:
            self.pauseReading("opening")
        return False

    def _opened(self, epoch: int, plaintext: bytes) -> None:
        """
        A frame was opened (at once, or by the crypto lane), in order: the
        record layer takes it, then the owner.
        """
        try:
            self.records.opened(epoch, plaintext)
        except SPCError as error:
            self._openFailed(error)
            return
        try:
            record = records.decodeRecord(plaintext)
        except ProtocolError as error:
            self.owner.malformedRecord(self, str(error))
            return
        self.owner.recordReceived(self, epoch, record)

    def _openFailed(self, error: SPCError) -> None:
        self.fatal(str(error))
        if isinstance(error, EpochAhead):
            self.owner.epochAhead(self)

    def sendFrame(self, body: bytes) -> None:
        """
        Write one handshake frame.
        """
        self.bytesSent += frames.LENGTH_PREFIX_SIZE + len(body)
        self.transport.writeSequence([frames.LENGTH.pack(len(body)), body])

    def sendRecord(self, plaintext: bytes) -> None:
        """
        Seal and write one inner record under the current send epoch (its
        sequence number and epoch are assigned now, A22).  A paused
        connection takes at most C{PAUSED_WRITE_LIMIT} bytes of them: past
        that its peer is not reading, and it is dead.
        """
        if self.dead:
            return
        try:
            aad, sealing = self.records.prepare(plaintext)
        except SequenceExhausted as error:
            self.fatal(str(error))
            return
        if self.writePaused:
            self._pausedBytes += frames.LENGTH_PREFIX_SIZE + frames.LENGTH.unpack_from(aad)[0]
            if self._pausedBytes > PAUSED_WRITE_LIMIT:
                self.fatal(f"the peer reads nothing; {self._pausedBytes} bytes wait to be sent")
                return
        self._sealer.send(aad, sealing, len(plaintext))
        if self.records.keyWornOut():
            self.owner.keyWornOut(self)

    def _writeFrame(self, aad: bytes, body: bytes) -> None:
        if self.dead:
            return
        self.bytesSent += len(aad) + len(body)
        self.transport.writeSequence([aad, body])
        if self._lane is not None and not self._sealer.queued and not self.writePaused:
            self.owner.channelWritable(self)

    # Handshake owner interface (both roles).

    def handshakeSucceeded(self, result: ServerResult | ClientResult) -> None:
        self._deadlines.cancel()
        self.result = result
        self._handshake = None
        self._framer.maxBody = frames.maxProtectedBody(result.params.maxInner)
        self.owner.channelEstablished(self, result)

    def activate(self, epoch: int, epochSecret: bytes) -> None:
        """
        Give the connection its record layer: called by whoever owns the
        session's epoch secrets, synchronously inside L{handshakeSucceeded}
        so that no frame is read without keys (amendment A17).
        """
        self.records = RecordLayer(
            self.result.keys,
            self.isServer,
            epoch,
            epochSecret,
            self.result.params.maxInner,
        )
        if self.result.keys.suite.inLane:
            self._lane = self.cryptoLane
        self._sealer = Sealer(self._lane, self._writeFrame)
        self._opener = Opener(
            self.records, self._lane, self._opened, self._openFailed, self._openerReady
        )

    def handshakeFailed(self, codeOrError, reason: str = "") -> None:
        """
        Server: send the alert, log the reason, close.  Client: close and
        report the error.
        """
        if self.isServer:
            self._life.refuse(codeOrError, reason)
        else:
            if isinstance(codeOrError, NoAnswer) and codeOrError.where is None:
                codeOrError = NoAnswer(
                    self._serverName(), self._handshakeTimeout, self.tlsPeer is not None
                )
            self._life.fail(codeOrError)

    def endWithoutSession(self) -> None:
        """
        Server: the connection served a pairing (A20), not a session; close
        it once the last frame left, as after an alert.
        """
        self._deadlines.cancel()
        self.dead = True
        self._loseConnection(ALERT_LINGER)

    # Faults and timers.

    def fatal(self, reason: str) -> None:
        """
        The one exit for peer faults: mark dead, keep the reason, abort.  A
        client's handshake ends through its machine, which says why.
        """
        if self.result is None and not self.isServer and self._handshake is not None:
            self._handshake.gotBad(ProtocolError(reason))
        else:
            self._life.fault(reason)

    def close(self, reason: str = "closed locally") -> None:
        """
        Close after flushing what was written, and abort if that takes more
        than C{CLOSE_TIMEOUT}; closing is this end's choice, so the
        connection is not reported dead.
        """
        self._life.close(reason)

    def whenLost(self) -> Deferred:
        """
        @return: a Deferred firing once the connection is closed, so what
            was written before a close (a goodbye) has left.
        """
        return self._life.whenLost()

    # ChannelActions, for the lifecycle.

    def markDead(self) -> None:
        self.dead = True
        if self._sealer is not None:
            self._sealer.clear()
        if self._opener is not None:
            self._opener.stop()

    def abortForFault(self, reason: str) -> None:
        self._lostReason = reason
        if self.result is None:
            self.owner.handshakeRefused(self, "aborted", reason, None)
        self._deadlines.cancel()
        self.transport.abortConnection()

    def refuseHandshake(self, code: int, reason: str) -> None:
        self._deadlines.cancel()
        kind = "timeout" if code == frames.ALERT_TIMEOUT else "refused"
        self.owner.handshakeRefused(self, kind, reason, code)
        self.sendFrame(frames.Alert(code).encode())
        self._loseConnection(ALERT_LINGER)

    def failHandshake(self, error: SPCError) -> None:
        self._deadlines.cancel()
        self.transport.abortConnection()
        self.owner.channelFailed(self, error)

    def closeGently(self, reason: str) -> None:
        self._lostReason = reason
        self._loseConnection(CLOSE_TIMEOUT)

    def keepReason(self, reason: str) -> None:
        self._lostReason = reason

    def lossWaiter(self) -> Deferred:
        waiter: Deferred = Deferred()
        self._lostWaiters.append(waiter)
        return waiter

    def _loseConnection(self, linger: float) -> None:
        """
        Close once what was written has left, or abort C{linger} seconds
        from now.  This connection stops being the transport's producer
        first: TLS waits for its producer to go before it sends its close,
        where plain TCP does not.
        """
        self.transport.unregisterProducer()
        self._abortCall = closeThenAbort(self.transport, self._clock, linger)

    def peerAddress(self) -> str:
        """
        The peer's address, C{host:port}, for logs.
        """
        return peerText(self.transport)

    def _serverName(self) -> str:
        """
        The server of a client connection as the user named it, if TLS
        knows that name, else its address.
        """
        return self.tlsPeer.where if self.tlsPeer is not None else self.peerAddress()

    def _logDead(self, reason: Failure, fault: bool) -> None:
        result = self.result
        events.channelDead(
            self.log,
            result.keys.channel,
            result.session,
            result.fingerprint if self.isServer else result.serverFingerprint,
            self.peerAddress(),
            self._lostReason if fault else reason.getErrorMessage(),
            fault,
        )

    def _timedOut(self) -> None:
        if self._handshake is not None:
            self._handshake.timedOut()
        if not self.dead:
            self.fatal("handshake timed out")
