# -*- test-case-name: tests.memory.test_session -*-
"""
A session: one peer, its set of channels, and the parts that work over
them.  Both roles use the same class; the server's directory and the
client's connector create sessions and hand them connections.

The session is the owner of every connection that belongs to it: it admits,
replaces and loses them (its L{ChannelSet} keeps the books), routes their
records to its parts, and when a channel dies its unacknowledged fragments
go out again on the others.  The parts: the messenger
(L{spc.session.messenger}) and the incoming files (L{spc.files.receiving})
carry data; the L{EpochKeys} hold the epoch secrets and give them to every
connection; the L{RotationDriver} and the L{HeartbeatDriver} own the
session's timers and what they start.
"""

from __future__ import annotations

import os
from typing import Callable

from twisted.internet.defer import Deferred, DeferredList, gatherResults, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from spc.errors import (
    ProtocolError,
    ResourceLimitExceeded,
    SessionClosed,
    SessionReset,
    ServerShuttingDown,
    SPCError,
)
from spc.files.receiving import IncomingFiles
from spc.files.sending import FileSender, FolderSender
from spc.files.store import FileStore
from spc.interfaces import IMessageReceiver
from spc.lanes import Workers, workersFor
from spc.logs import events
from spc.protocol import filerecords, frames, records
from spc.protocol.handshake import JoinTicket
from spc.session.channels import ChannelSet
from spc.session.epochkeys import EpochKeys
from spc.session.heartbeatdriver import HeartbeatDriver
from spc.session.messenger import MultiChannelMessenger
from spc.session.reassembly import Account
from spc.session.rotationdriver import RotationDriver
from spc.text import withoutControls
from spc.transport.channel import ChannelProtocol

__all__ = ["CLOSE_ERRORS", "DEFAULT_LINGER", "Session"]

DEFAULT_LINGER = 60.0
CLOSE_ERRORS = {
    records.BYE_REKEY_FAILED: SessionReset,
    records.BYE_DESYNC: SessionReset,
    records.BYE_SHUTTING_DOWN: ServerShuttingDown,
}


class Session:
    """
    @ivar id: the session id.
    @ivar isServer: which end this is.
    @ivar peer: the peer's identity fingerprint (the server's host key
        fingerprint on the client side).
    @ivar peerName: the server's name for its client in C{authorized_keys}
        when the session opened, or L{None} (a client without a name, and
        the server seen from a client).
    @ivar params: the session parameters.
    @ivar channels: live connections by channel index.
    @ivar channelSet: the L{ChannelSet} that keeps them, and picks the one
        for each record.
    @ivar messenger: the session's L{MultiChannelMessenger}.
    @ivar incomingFiles: the files the peer sends.
    @ivar epochKeys: the epochs the session holds, and their secrets.
    @ivar heartbeats: the session's L{HeartbeatDriver}.
    @ivar rotations: the session's L{RotationDriver}.
    @ivar onRotationEnded: called with whether each rotation committed.
    @ivar onChannelLost: called with the index of each channel lost.
    @ivar onEnd: called with the session once it ended.
    @ivar closedReason: why the session ended, once it did.
    @ivar started: when the session was made, on the session's clock.
    @ivar goodbye: the peer's goodbye to the session, if it said one.
    @ivar workers: the lanes its bulk work runs in (L{spc.lanes}).
    @ivar readingPaused: whether it stopped reading from its peer, until
        the file data it received is written.
    """

    log = events.NamedLogger(events.SESSION)

    def __init__(
        self,
        sessionID: bytes,
        isServer: bool,
        peer: str,
        params: frames.Params,
        epoch: int,
        epochSecret: bytes,
        receiver: IMessageReceiver | None,
        clock: IReactorTime,
        linger: float = DEFAULT_LINGER,
        exchangeKeyDER: bytes = b"",
        serverKey: bytes = b"",
        files: FileStore | None = None,
        budget: Account | None = None,
        transferSecret: bytes | None = None,
        exchangeKey=None,
        peerName: str | None = None,
        workers: Workers | None = None,
    ) -> None:
        """
        @param workers: the lanes for bulk work; those of C{clock}
            (L{workersFor}) if not given: threads for a real reactor,
            inline for a test's clock.
        """
        self.id = sessionID
        self.isServer = isServer
        self.peer = peer
        self.peerName = peerName
        self.params = params
        self.receiver = receiver
        self._clock = clock
        self.exchangeKeyDER = exchangeKeyDER
        self.serverKey = serverKey
        self._transferSecret = transferSecret or os.urandom(32)
        self.started = clock.seconds()
        self.workers = workers if workers is not None else workersFor(clock)
        self.readingPaused = False
        self.channelSet = ChannelSet(clock, linger, self._abandoned)
        self.channels = self.channelSet.byIndex
        timers = params.seconds
        self.messenger = MultiChannelMessenger(
            self.channelSet, params, self._deliver, clock, budget,
            pacing=self.channelSet.pacing,
        )
        self.incomingFiles = IncomingFiles(
            files, peer, params.fragmentSize, self.sendControl, clock, self._fileStored,
            self.workers.writer, duplicateInterval=timers.heartbeatInterval,
            onBacklog=self._pauseReading, peerName=peerName,
        )
        self.epochKeys = EpochKeys(epoch, epochSecret, self.channelSet.connections)
        self.heartbeats = HeartbeatDriver(
            self, self.channelSet, self.epochKeys, self.messenger, clock, timers,
            params.heartbeatMissLimit, lambda: self.rotations.checkKeyAge(),
            lambda: self.rotations.recordsSent,
            self.channelSet.pacing.roundTrip,
        )
        self.rotations = RotationDriver(
            self, self.epochKeys, self.heartbeats, clock, timers, exchangeKey
        )
        self._handlers = self._routes()
        self.onRotationEnded = self.rotations.onEnded
        self.onChannelLost: list[Callable[[int], None]] = []
        self.onEnd: list[Callable[[Session], None]] = []
        self._closedWaiters: list[Deferred] = []
        self.closedReason: Failure | None = None
        self.goodbye: records.Bye | None = None
        self.onEnd: list[Callable[[Session], None]] = []

    def __repr__(self) -> str:
        return f"<Session {self.id.hex()[:8]} peer={self.peer}>"

    # Public API.

    def sendMessage(self, data: bytes, kind: int = records.KIND_BINARY) -> Deferred:
        """
        Send C{data} to the peer.

        @return: a Deferred firing once the peer confirmed delivery.
        """
        return self.messenger.send(bytes(data), kind)

    def sendFile(
        self,
        path: str,
        name: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Deferred:
        """
        Send the file at C{path}, streamed from disk; if an earlier attempt
        with the same file was interrupted, only what the peer lacks is
        sent.

        @param name: the name the peer stores it under (a relative path);
            the file's own name by default.
        @param progress: called with the number of bytes the peer has
            acknowledged so far.
        @return: a Deferred firing with a L{spc.files.sending.Delivered} once
            the peer stored and verified the file, or held it already.
        """
        name = name or os.path.basename(path)
        return self.messenger.sendFile(FileSender(
            path, name, self._transferSecret, self.peer, self.params.fragmentSize, self._clock,
            progress, self.workers.reader,
        ))

    def sendFolder(self, name: str) -> Deferred:
        """
        Have the peer make the folder C{name} (a relative path), for a
        folder with nothing in it to send.

        @return: a Deferred firing with a L{spc.files.sending.Delivered}.
        """
        return self.messenger.sendFile(FolderSender(name))

    def close(self, code: int = records.BYE_NORMAL, reason: str = "closed") -> Deferred:
        """
        Say goodbye (C{code}, C{reason}) on every channel and end the
        session.

        @return: a Deferred firing with the reason (as L{whenClosed}) when
            the session has ended and every connection has closed, so the
            goodbye reached the peer (a connection that does not close
            within C{CLOSE_TIMEOUT} is aborted).
        """
        channels = self.channelSet.everyone()
        waiter = self.whenClosed()
        if self.closedReason is None:
            self._sayBye(code, reason)
            self._end(Failure(SessionClosed("closed locally")))
        flushed = [channel.whenLost() for channel in channels]
        return DeferredList([waiter, *flushed]).addCallback(lambda results: results[0][1])

    def whenSettled(self) -> Deferred:
        """
        @return: a Deferred firing once no answer the peer waits for is
            still being worked out (a message's delivery, a file's
            verification), so a goodbye after it loses none.
        """
        return gatherResults([
            self.messenger.reassembler.delivering.whenIdle(),
            self.incomingFiles.verifying.whenIdle(),
        ], consumeErrors=True)

    def terminate(self, code: int, reason: str, error: type = SessionClosed) -> None:
        """
        End the session for a local reason the peer should know: revoked,
        replaced, shutting down, keys out of step.
        """
        if self.closedReason is None:
            self._sayBye(code, reason)
            self._end(Failure(error(reason)))

    def whenClosed(self) -> Deferred:
        """
        @return: a Deferred firing with the reason (an exception) once the
            session ended.
        """
        if self.closedReason is not None:
            return succeed(self.closedReason.value)
        waiter: Deferred = Deferred()
        self._closedWaiters.append(waiter)
        return waiter

    def liveChannels(self) -> list[ChannelProtocol]:
        """
        Connections that may carry data, in channel order.
        """
        return self.channelSet.live()

    def rotate(self, scheduled: bool = False) -> None:
        """
        Start a rotation now (L{RotationDriver.rotate}).
        """
        self.rotations.rotate(scheduled)

    @property
    def epoch(self) -> int:
        """
        The committed epoch.
        """
        return self.epochKeys.committed

    @property
    def rotationsCommitted(self) -> int:
        return self.rotations.committed

    @property
    def rotationsRolledBack(self) -> int:
        return self.rotations.rolledBack

    def roundTrip(self, channel: ChannelProtocol) -> float | None:
        """
        The last heartbeat round trip measured on C{channel}, in seconds.
        """
        return self.heartbeats.roundTrip(channel)

    def epochSecret(self, epoch: int) -> bytes | None:
        """
        The secret of an epoch this session still holds.
        """
        return self.epochKeys.secret(epoch)

    def joinTicket(self) -> JoinTicket:
        """
        What a client needs to add another connection to this session.
        """
        keys = self.epochKeys
        return JoinTicket(
            self.id, keys.committed, keys.secret(keys.committed), self.serverKey, self.params,
            keys.held(),
        )

    # Connections.

    def attach(self, channel: ChannelProtocol, epoch: int) -> None:
        """
        Take over a connection whose handshake just finished, and give it
        keys.  On the server a joining connection counts as a channel only
        once the client has sent an authenticated frame on it (key
        confirmation); the client confirms at once with a heartbeat.
        """
        channel.owner = self
        if self.readingPaused:
            channel.pauseReading()
        channel.cryptoLane = self.workers.cryptoLane()
        self.epochKeys.activate(channel, epoch)
        self.heartbeats.attach(channel)
        self.channelSet.attached(channel, confirmed=not self.isServer)
        if not self.isServer:
            self._admit(channel)
            self.heartbeats.request(channel)

    def _admit(self, channel: ChannelProtocol) -> None:
        """
        Make C{channel} carry data.  What was sent while no channel was
        live, or on a connection this one replaces, goes out again.
        """
        wasIdle = not self.liveChannels()
        previous, since = self.channelSet.admit(channel)
        if since is not None:
            events.channelRejoined(self.log, self, channel.result.keys.channel, since)
        if previous is not None and not previous.dead:
            previous.sendRecord(
                records.Bye(records.BYE_REPLACED, records.SCOPE_CHANNEL, "replaced").encode()
            )
            previous.close("replaced by a newer connection")
        if previous is not None:
            self.messenger.channelDied(previous)
        if wasIdle:
            self.messenger.resendAll()

    def sendControl(self, record: bytes) -> None:
        """
        Send a small control record at once (L{ChannelSet.sendControl}).
        """
        self.channelSet.sendControl(record)

    def sendRotation(self, record: bytes) -> ChannelProtocol | None:
        """
        Send a rotation record at once (L{ChannelSet.sendRotation}).

        @return: the channel it went on.
        """
        return self.channelSet.sendRotation(record)

    def loadedRoundTrip(self, channel: ChannelProtocol) -> float | None:
        """
        C{channel}'s smoothed round trip under load (L{spc.session.pacing}).
        """
        return self.channelSet.pacing.smoothedRoundTrip(channel)

    def _pauseReading(self, pause: bool) -> None:
        """
        Stop reading from the peer while the file data it sent waits to be
        written beyond what its send window allows, and read again once
        it is written (L{spc.files.writing}).
        """
        self.readingPaused = pause
        for channel in self.channelSet.connections():
            if pause:
                channel.pauseReading()
            else:
                channel.resumeReading()

    # ChannelOwner.

    def channelWritable(self, channel: ChannelProtocol) -> None:
        self.messenger.pump()

    def recordReceived(self, channel: ChannelProtocol, epoch: int, record: object) -> None:
        if self.closedReason is not None:
            return
        self.heartbeats.heard(channel, record)
        self.rotations.frameReceived(epoch)
        if self.channelSet.confirmed(channel):
            self._admit(channel)
        handler = self._handlers.get(type(record))
        try:
            if handler is None:
                raise ProtocolError(f"unexpected {type(record).TAG!r} record")
            handler(channel, record)
        except ResourceLimitExceeded as error:
            self.protocolError(str(error), records.BYE_RESOURCE_LIMIT)
        except ProtocolError as error:
            self.protocolError(str(error))

    def malformedRecord(self, channel: ChannelProtocol, reason: str) -> None:
        self.protocolError(f"malformed record: {reason}")

    def keyWornOut(self, channel: ChannelProtocol) -> None:
        self.rotations.keyWornOut()

    def epochAhead(self, channel: ChannelProtocol) -> None:
        self.rotations.epochAhead()

    def channelLost(self, channel: ChannelProtocol, reason: str) -> None:
        self.channelSet.lost(channel)
        self.heartbeats.forget(channel)
        if self.closedReason is not None:
            return
        self.messenger.channelDied(channel)
        self.messenger.reassembler.reacknowledge()
        self.incomingFiles.reacknowledge()
        for callback in self.onChannelLost:
            callback(channel.result.keys.channel)
        self.channelSet.linger()

    def _routes(self) -> dict:
        """
        Which part of the session takes each kind of record; any other kind
        is unexpected.
        """
        messenger, files = self.messenger, self.incomingFiles
        return {
            records.Fragment: lambda channel, r: messenger.fragmentReceived(r),
            filerecords.FileData: lambda channel, r: files.dataReceived(r),
            records.Ack: lambda channel, r: messenger.ackReceived(r),
            filerecords.FileAck: lambda channel, r: messenger.fileAckReceived(r),
            filerecords.FileOffer: lambda channel, r: files.offerReceived(r),
            filerecords.FileEnd: lambda channel, r: files.endReceived(r),
            filerecords.FolderOffer: lambda channel, r: files.folderOffered(r),
            records.Bye: self._byeReceived,
            **self.heartbeats.routes(),
            **self.rotations.routes(),
        }

    def _byeReceived(self, channel: ChannelProtocol, bye: records.Bye) -> None:
        """
        The peer's reason is its own text: without its control characters,
        it can forge no line in the log nor on a terminal.
        """
        reason = withoutControls(bye.reason)
        self.log.info(
            "Peer {peer} said goodbye ({scope}): code {code} {reason!r}",
            peer=self.peer,
            scope="session" if bye.scope == records.SCOPE_SESSION else "channel",
            code=bye.code,
            reason=reason,
        )
        if bye.scope == records.SCOPE_SESSION:
            self.goodbye = bye
            error = CLOSE_ERRORS.get(bye.code, SessionClosed)
            self._end(Failure(error(f"the peer closed the session: {reason}")))
        else:
            channel.close("the peer closed the channel")

    def protocolError(self, reason: str, code: int = records.BYE_PROTOCOL_ERROR) -> None:
        """
        The peer broke a session rule: tell it, log it, end the session.
        """
        self.log.warn("Session with {peer} failed: {reason}", peer=self.peer, reason=reason)
        self._sayBye(
            code, "resource limit" if code == records.BYE_RESOURCE_LIMIT else "protocol error"
        )
        self._end(Failure(ProtocolError(reason)))

    # Ending.

    def _sayBye(self, code: int, reason: str) -> None:
        bye = records.Bye(code, records.SCOPE_SESSION, reason).encode()
        for channel in self.channelSet.everyone():
            if not channel.dead:
                channel.sendRecord(bye)

    def _abandoned(self) -> None:
        self._end(Failure(SessionClosed("no channel rejoined in time")))

    def _end(self, reason: Failure) -> None:
        if self.closedReason is not None:
            return
        self.closedReason = reason
        self.heartbeats.stop()
        self.rotations.stop()
        for channel in self.channelSet.clear():
            channel.close("session ended")  # aborted if not gone in CLOSE_TIMEOUT
        self.messenger.failAll(reason)
        self.incomingFiles.close()
        self.epochKeys.clear()
        for callback in self.onEnd:
            callback(self)
        waiters, self._closedWaiters = self._closedWaiters, []
        for waiter in waiters:
            waiter.callback(reason.value)

    # Delivery to the application.

    def _fileStored(self, name: str, path: str, size: int) -> None:
        notify = getattr(self.receiver, "fileReceived", None)
        if notify is not None:
            notify(self, name, path, size)

    def _deliver(self, data: bytes, kind: int) -> object:
        if self.receiver is None:
            raise SPCError("this end does not accept messages")
        return self.receiver.messageReceived(self, data, kind)
