# -*- test-case-name: tests.test_session -*-
"""
A session: one peer, its set of channels, its epoch secrets and its
messenger.  Both roles use the same class; the server's directory and the
client's connector create sessions and hand them connections.

The session is the owner of every connection that belongs to it: it routes
their records (data to the messenger, control records answered here), and
when a channel dies its unacknowledged fragments go out again on the others.
"""

from __future__ import annotations

import os
from typing import Callable

from twisted.internet.defer import Deferred, DeferredList, gatherResults, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
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
from spc.files.store import FileStore, withoutControls
from spc.interfaces import IFileReceiver, IMessageReceiver
from spc.logs import events
from spc.protocol import frames, records
from spc.protocol.handshake import JoinTicket
from spc.protocol.liveness import Liveness, RequestLimiter
from spc.session.heartbeatdriver import SessionHeartbeats
from spc.session.messenger import MultiChannelMessenger
from spc.session.reassembly import Account
from spc.session.rotationdriver import SessionRotation
from spc.transport.channel import ChannelProtocol
from spc.transport.closing import CLOSE_TIMEOUT

__all__ = ["CLOSE_TIMEOUT", "IFileReceiver", "IMessageReceiver", "Session", "SessionClosed"]

DEFAULT_LINGER = 60.0
CLOSE_ERRORS = {
    records.BYE_REKEY_FAILED: SessionReset,
    records.BYE_DESYNC: SessionReset,
    records.BYE_SHUTTING_DOWN: ServerShuttingDown,
}


class Session(SessionRotation, SessionHeartbeats):
    """
    @ivar id: the session id.
    @ivar isServer: which end this is.
    @ivar peer: the peer's identity fingerprint (the server's host key
        fingerprint on the client side).
    @ivar params: the session parameters.
    @ivar epoch: the committed epoch.
    @ivar channels: live connections by channel index.
    @ivar messenger: the session's L{MultiChannelMessenger}.
    @ivar started: when the session was made, on the session's clock.
    @ivar goodbye: the peer's goodbye to the session, if it said one.
    """

    log = Logger()

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
        runInThread: Callable[..., Deferred] = deferToThread,
        exchangeKey=None,
    ) -> None:
        self.id = sessionID
        self.isServer = isServer
        self.peer = peer
        self.params = params
        self.epoch = epoch
        self._epochSecrets = {epoch: epochSecret}
        self.receiver = receiver
        self._clock = clock
        self._linger = linger
        self.exchangeKeyDER = exchangeKeyDER
        self.serverKey = serverKey
        self.channels: dict[int, ChannelProtocol] = {}
        self._lostAt: dict[int, float] = {}
        self._candidates: set[ChannelProtocol] = set()
        self.messenger = MultiChannelMessenger(self, params, self._deliver, clock, budget)
        self.incomingFiles = IncomingFiles(
            files,
            peer,
            params.fragmentSize,
            self.sendControl,
            clock,
            self._fileStored,
            runInThread,
            duplicateInterval=params.heartbeatInterval / 1000,
        )
        self._transferSecret = transferSecret or os.urandom(32)
        self._turn = 0
        self._handlers = self._routes()
        self._beatInterval = params.heartbeatInterval / 1000
        self._beats = LoopingCall(self._beat)
        self._beats.clock = clock
        self._liveness: dict[ChannelProtocol, Liveness] = {}
        self._limiters: dict[ChannelProtocol, RequestLimiter] = {}
        self._desyncSince: float | None = None
        self._timers: dict[str, IDelayedCall] = {}
        self.rotationsCommitted = 0
        self.rotationsRolledBack = 0
        self.rotation = self._makeRotation(exchangeKey)
        self._rotationRequested = False
        self.started = self._keyBorn = clock.seconds()
        self._commitProbes: dict[ChannelProtocol, int] = {}
        self._desyncProven = False
        self.onChannelLost: list[Callable[[int], None]] = []
        self.onRotationEnded: list[Callable[[bool], None]] = []
        self._lingerCall: IDelayedCall | None = None
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
        sender = FileSender(
            path,
            name or os.path.basename(path),
            self._transferSecret,
            self.peer,
            self.params.fragmentSize,
            self._clock,
            progress,
        )
        return self.messenger.sendFile(sender)

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
        channels = list(self.channels.values()) + list(self._candidates)
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
        return [
            channel
            for _, channel in sorted(self.channels.items())
            if not channel.dead
        ]

    def joinTicket(self) -> JoinTicket:
        """
        What a client needs to add another connection to this session.
        """
        return JoinTicket(
            self.id,
            self.epoch,
            self._epochSecrets[self.epoch],
            self.serverKey,
            self.params,
            frozenset(self._epochSecrets),
        )

    def epochSecret(self, epoch: int) -> bytes | None:
        """
        The secret of an epoch this session still holds.
        """
        return self._epochSecrets.get(epoch)

    # Connections.

    def attach(self, channel: ChannelProtocol, epoch: int) -> None:
        """
        Take over a connection whose handshake just finished, and give it
        keys.  On the server a joining connection counts as a channel only
        once the client has sent an authenticated frame on it (key
        confirmation); the client confirms at once with a heartbeat.
        """
        if self._lingerCall is not None and self._lingerCall.active():
            self._lingerCall.cancel()
        self._lingerCall = None
        channel.owner = self
        channel.activate(epoch, self._epochSecrets[epoch])
        for other, secret in self._epochSecrets.items():
            if other > epoch:
                channel.records.installEpoch(other, secret)
        now = self._clock.seconds()
        self._liveness[channel] = Liveness(self._beatInterval, self.params.heartbeatMissLimit, now)
        self._limiters[channel] = RequestLimiter(self._beatInterval, now)
        if not self._beats.running:
            self._beats.start(self._beatInterval, now=False)
        if self.isServer:
            self._candidates.add(channel)
        else:
            self._admit(channel)
            self._sendHeartbeat(channel, now)

    def _admit(self, channel: ChannelProtocol) -> None:
        """
        Make C{channel} carry data.  What was sent while no channel was
        live, or on a connection this one replaces, goes out again.
        """
        index = channel.result.keys.channel
        wasIdle = not self.liveChannels()
        previous = self.channels.get(index)
        self.channels[index] = channel
        lostAt = self._lostAt.pop(index, None)
        if lostAt is not None:
            events.channelRejoined(self.log, self, index, self._clock.seconds() - lostAt)
        if previous is not None and previous is not channel and not previous.dead:
            previous.sendRecord(
                records.Bye(records.BYE_REPLACED, records.SCOPE_CHANNEL, "replaced").encode()
            )
            previous.close("replaced by a newer connection")
        if previous is not None and previous is not channel:
            self.messenger.channelDied(previous)
        if wasIdle:
            self.messenger.resendAll()

    def sendOn(self, channel: ChannelProtocol, record: bytes) -> None:
        channel.sendRecord(record)

    def writableChannel(self) -> ChannelProtocol | None:
        """
        A live channel whose transport can take data now, taking turns among
        them: a channel its transport paused gets nothing, so a slow path
        never holds the others back (A6).
        """
        ready = [channel for channel in self.liveChannels() if not channel.writePaused]
        if not ready:
            return None
        self._turn = (self._turn + 1) % len(ready)
        return ready[self._turn]

    def channelWritable(self, channel: ChannelProtocol) -> None:
        self.messenger.pump()

    def sendControl(self, record: bytes) -> None:
        """
        Send a small control record (an acknowledgement) right away, on the
        first live channel whose transport takes data, or on the first live
        channel if none does: an answer does not wait behind a queue that
        is not moving, nor adds to it while another channel is free.
        """
        channels = self.liveChannels()
        ready = [channel for channel in channels if not channel.writePaused]
        if channels:
            (ready or channels)[0].sendRecord(record)

    def recordReceived(self, channel: ChannelProtocol, epoch: int, record: object) -> None:
        if self.closedReason is not None:
            return
        liveness = self._liveness.get(channel)
        if liveness is not None:
            liveness.heard(self._clock.seconds())
        if not self.isServer and self.rotation is not None and epoch == self.rotation.pending:
            self.rotation.committed(epoch)
        if channel in self._candidates:
            self._candidates.discard(channel)
            self._admit(channel)
        try:
            self._dispatch(channel, record)
        except ResourceLimitExceeded as error:
            self.protocolError(str(error), records.BYE_RESOURCE_LIMIT)
        except ProtocolError as error:
            self.protocolError(str(error))

    def malformedRecord(self, channel: ChannelProtocol, reason: str) -> None:
        self.protocolError(f"malformed record: {reason}")

    def _dispatch(self, channel: ChannelProtocol, record: object) -> None:
        handler = self._handlers.get(type(record))
        if handler is None:
            raise ProtocolError(f"unexpected {type(record).TAG!r} record")
        handler(channel, record)

    def _routes(self) -> dict:
        """
        Which part of the session takes each kind of record.
        """
        messenger, files = self.messenger, self.incomingFiles
        return {
            records.Fragment: lambda channel, r: messenger.fragmentReceived(r),
            records.FileData: lambda channel, r: files.dataReceived(r),
            records.Ack: lambda channel, r: messenger.ackReceived(r),
            records.FileAck: lambda channel, r: messenger.fileAckReceived(r),
            records.FileOffer: lambda channel, r: files.offerReceived(r),
            records.FileEnd: lambda channel, r: files.endReceived(r),
            records.FolderOffer: lambda channel, r: files.folderOffered(r),
            records.HeartbeatRequest: self._heartbeatReceived,
            records.HeartbeatResponse: self._heartbeatAnswered,
            records.Bye: self._byeReceived,
            records.RotationOffer: self._rotationRecord,
            records.RotationAck: self._rotationRecord,
            records.RotationCommit: self._rotationRecord,
            records.RotationAbort: self._rotationRecord,
            records.RotationRequest: self._rotationRecord,
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

    def channelLost(self, channel: ChannelProtocol, reason: str) -> None:
        self._candidates.discard(channel)
        self._liveness.pop(channel, None)
        self._limiters.pop(channel, None)
        self._commitProbes.pop(channel, None)
        index = channel.result.keys.channel
        if self.channels.get(index) is channel:
            del self.channels[index]
            self._lostAt[index] = self._clock.seconds()
        if self.closedReason is not None:
            return
        self.messenger.channelDied(channel)
        self.messenger.reassembler.reacknowledge()
        self.incomingFiles.reacknowledge()
        for callback in self.onChannelLost:
            callback(index)
        if not self.liveChannels() and self._lingerCall is None:
            self._lingerCall = self._clock.callLater(
                self._linger,
                self._end,
                Failure(SessionClosed("no channel rejoined in time")),
            )

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
        for channel in list(self.channels.values()) + list(self._candidates):
            if not channel.dead:
                channel.sendRecord(bye)

    def _end(self, reason: Failure) -> None:
        if self.closedReason is not None:
            return
        self.closedReason = reason
        if self._beats.running:
            self._beats.stop()
        self._liveness.clear()
        self._limiters.clear()
        for name in list(self._timers):
            self.cancelTimer(name)
        if self._lingerCall is not None and self._lingerCall.active():
            self._lingerCall.cancel()
        self._lingerCall = None
        channels = list(self.channels.values()) + list(self._candidates)
        self.channels.clear()
        self._candidates.clear()
        for channel in channels:
            channel.close("session ended")  # aborted if not gone in CLOSE_TIMEOUT
        self.messenger.failAll(reason)
        self.incomingFiles.close()
        self._epochSecrets.clear()
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
