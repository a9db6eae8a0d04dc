# -*- test-case-name: tests.test_heartbeat -*-
"""
The heartbeats of one session (PROTOCOL section 9): its timer, the records,
and what they say of the peer.

A L{HeartbeatDriver} beats every heartbeat interval: it closes the
connections L{spc.protocol.liveness} finds dead and asks every other one
for a heartbeat.  It answers the peer's requests within the rate limit of
A18 (L{spc.protocol.liveness.RequestLimiter}), and checks what every
heartbeat says: frames and messages the peer cannot have had, and
whether its committed epoch is one the session's
L{spc.session.epochkeys.EpochKeys} can follow.  Right after a server's
commit it probes every channel, so a client that missed the commit is
found when the overlap ends (section 9.4).
"""

from __future__ import annotations

from typing import Callable, Protocol

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from spc.errors import SessionReset
from spc.protocol import records
from spc.protocol.liveness import Liveness, RequestLimiter, epochsAgree
from spc.protocol.timers import MILLISECONDS, Timers
from spc.session.epochkeys import EpochKeys

__all__ = ["BeatingSession", "Connections", "HeartbeatDriver", "MessageCounters"]


class BeatingSession(Protocol):
    """
    What a heartbeat driver asks of its session (L{spc.session.session.Session}):
    to end it, for a broken rule or with a goodbye.
    """

    isServer: bool
    peer: str
    log: Logger

    def protocolError(self, reason: str) -> None: ...

    def terminate(self, code: int, reason: str, error: type) -> None: ...


class Connections(Protocol):
    """
    The session's connections (its L{spc.session.channels.ChannelSet}):
    every one that is not dead, and the live channels.
    """

    def connections(self) -> list: ...

    def live(self) -> list: ...


class MessageCounters(Protocol):
    """
    The message ids heartbeats carry: L{spc.session.messenger.MultiChannelMessenger}.
    """

    nextSendID: int
    nextDeliveryID: int


class HeartbeatDriver:
    """
    Heartbeats: the timer is the driver's, the counting is
    L{spc.protocol.liveness}'s.
    """

    def __init__(
        self,
        session: BeatingSession,
        connections: Connections,
        keys: EpochKeys,
        messages: MessageCounters,
        clock: IReactorTime,
        timers: Timers,
        missLimit: int,
        onBeat: Callable[[], None],
        onRoundTrip: Callable[[object, float], None] | None = None,
    ) -> None:
        """
        @param timers: the session's timers: it beats every heartbeat
            interval, and its epochs may disagree with the peer's for the
            overlap.
        @param missLimit: silent intervals, or unanswered requests, that
            make a connection dead.
        @param onBeat: called at every beat, before the connections are
            looked at (the key age check of section 8.1).
        @param onRoundTrip: called with a channel and each round trip
            measured on it (the session's L{spc.session.pacing}).
        """
        self._session = session
        self._connections = connections
        self._keys = keys
        self._messages = messages
        self._clock = clock
        self._interval = timers.heartbeatInterval
        self._missLimit = missLimit
        self._overlap = timers.overlap
        self._onBeat = onBeat
        self._onRoundTrip = onRoundTrip
        self._beats = LoopingCall(self._beat)
        self._beats.clock = clock
        self._liveness: dict[object, Liveness] = {}
        self._requests = RequestLimiter(clock, self._interval)
        self._desyncSince: float | None = None
        self._commitProbes: dict[object, int] = {}
        self._commitMissed = False

    def attach(self, channel) -> None:
        """
        Watch a new connection; the first one starts the beats, the first
        of which comes one interval later.
        """
        now = self._clock.seconds()
        self._liveness[channel] = Liveness(self._interval, self._missLimit, now)
        self._requests.start(channel)
        if not self._beats.running:
            self._beats.start(self._interval, now=False)

    def heard(self, channel) -> None:
        """
        An authenticated record arrived on C{channel}: a sign of life.
        """
        liveness = self._liveness.get(channel)
        if liveness is not None:
            liveness.heard(self._clock.seconds())

    def forget(self, channel) -> None:
        """
        C{channel} is gone.
        """
        self._liveness.pop(channel, None)
        self._requests.forget(channel)
        self._commitProbes.pop(channel, None)

    def stop(self) -> None:
        """
        The session ended.
        """
        if self._beats.running:
            self._beats.stop()
        for channel in list(self._liveness):
            self.forget(channel)

    def roundTrip(self, channel) -> float | None:
        """
        The last heartbeat round trip measured on C{channel}, in seconds on
        this end's clock, or C{None} before the first answer.
        """
        liveness = self._liveness.get(channel)
        return None if liveness is None else liveness.rtt

    def _beat(self) -> None:
        """
        Every heartbeat interval: a channel silent for too long, or whose
        peer has read nothing for as long, is dead (its fragments go
        elsewhere and the client rejoins it); the others get a heartbeat
        request.
        """
        self._onBeat()
        now = self._clock.seconds()
        for channel in self._connections.connections():
            liveness = self._liveness.get(channel)
            if liveness is None or channel.dead:
                continue
            if liveness.isDead(now):
                channel.fatal("no heartbeat from the peer")
                continue
            if liveness.isBlocked(channel.pausedSince, now):
                channel.fatal("the peer reads nothing")
                continue
            self.request(channel)

    def request(self, channel) -> int:
        """
        Send a heartbeat request on C{channel} now.

        @return: the id of the request sent.
        """
        now = self._clock.seconds()
        hbID = self._liveness[channel].request(now)
        channel.sendRecord(
            self._heartbeat(records.HeartbeatRequest, hbID, int(now * MILLISECONDS), channel)
        )
        return hbID

    def probeCommit(self) -> None:
        """
        Right after a commit, ask every channel for a heartbeat under the
        new epoch: an honest client commits on reading it, so an answer to
        one of these requests that still names the old epoch proves the
        client missed the commit (T30).  The requests are told apart by
        their ids, not their times: a request sent before the commit in the
        same millisecond is rightly answered with the old epoch.
        """
        self._commitMissed = False
        self._commitProbes = {
            channel: self.request(channel) for channel in self._connections.live()
        }

    def commitMissed(self) -> bool:
        return self._commitMissed

    def routes(self) -> dict:
        """
        The heartbeat records, and who takes each.
        """
        return {
            records.HeartbeatRequest: self.requestReceived,
            records.HeartbeatResponse: self.answerReceived,
        }

    def requestReceived(self, channel, request: records.HeartbeatRequest) -> None:
        if not self._requests.allow(channel):
            if self._requests.abusive(channel):
                channel.fatal("heartbeat flood")
            return
        self._checkPeerState(channel, request)
        channel.sendRecord(
            self._heartbeat(
                records.HeartbeatResponse, request.hbID, request.originTime, channel
            )
        )

    def answerReceived(self, channel, response: records.HeartbeatResponse) -> None:
        if (
            self._session.isServer
            and self._commitProbes.get(channel) == response.hbID
            and response.committedEpoch != self._keys.committed
        ):
            self._commitMissed = True
        self._checkPeerState(channel, response)
        liveness = self._liveness.get(channel)
        if liveness is not None and liveness.answered(response.hbID, self._clock.seconds()):
            if self._onRoundTrip is not None:
                self._onRoundTrip(channel, liveness.rtt)

    def _checkPeerState(self, channel, beat) -> None:
        """
        What a heartbeat says of the peer must be possible: it cannot have
        received more frames than were sent (a connection-level fault), nor
        have delivered messages this end never sent (a session-level one:
        this end's next message id only grows, so no reordering across
        channels excuses it; the converse check would not be sound, as a
        message can overtake an older heartbeat on another channel); its
        committed epoch must be one this end can follow, and a disagreement
        that outlives the rotation overlap ends the session (desync).
        """
        sent = channel.records.sentFrames
        if beat.lastSeqReceived != records.NO_SEQUENCE and beat.lastSeqReceived >= sent:
            channel.fatal("the peer claims frames that were never sent")
            return
        session = self._session
        if beat.rxLowMsgID > self._messages.nextSendID:
            session.protocolError("the peer claims messages that were never sent")
            return
        if epochsAgree(beat.committedEpoch, self._keys.committed, self._keys.held()):
            self._desyncSince = None
            return
        now = self._clock.seconds()
        if self._desyncSince is None:
            self._desyncSince = now
        elif now - self._desyncSince > self._overlap:
            session.log.warn("Session with {peer} lost epoch sync", peer=session.peer)
            session.terminate(records.BYE_DESYNC, "epoch desync", SessionReset)

    def _heartbeat(self, kind, hbID: int, originTime: int, channel) -> bytes:
        received = channel.records.receivedFrames
        pending = self._keys.pending
        return kind(
            hbID,
            originTime,
            self._keys.committed,
            records.NO_EPOCH if pending is None else pending,
            received - 1 if received else records.NO_SEQUENCE,
            self._messages.nextSendID,
            self._messages.nextDeliveryID,
        ).encode()
