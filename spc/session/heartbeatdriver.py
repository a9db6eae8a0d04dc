# -*- test-case-name: tests.memory.test_heartbeatdriver,tests.memory.test_heartbeatpace -*-
"""
The heartbeats of one session (PROTOCOL section 9): its timer, the records,
and what they say of the peer.

A L{HeartbeatDriver} beats every heartbeat interval: it closes the
connections L{spc.protocol.liveness} finds dead and asks for a heartbeat
on every other one this end has sent nothing on for an interval (amendment
A21: a channel that carries traffic needs none).  A connection whose
deadline, its last sign of life plus the dead-time, comes before the next
beat is watched until then, so a dead one is found the moment it has been
silent for the dead-time.  A session idle for C{IDLE_BEATS} intervals
beats C{STRETCH} times more slowly, and any traffic restores the interval;
the kernel's TCP keepalive, set from the same interval, backs the
heartbeats up at no cost to the process.

It answers the peer's requests within the rate limit of A18
(L{spc.protocol.liveness.RequestLimiter}), and checks what every heartbeat
says: frames and messages the peer cannot have had, and whether its
committed epoch is one the session's L{spc.session.epochkeys.EpochKeys}
can follow.  Right after a server's commit it probes every channel, so a
client that missed the commit is found when the overlap ends (section
9.4).
"""

from __future__ import annotations

from typing import Callable, Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from spc.errors import SessionReset
from spc.protocol import records
from spc.protocol.liveness import Liveness, RequestLimiter, epochsAgree
from spc.protocol.timers import MILLISECONDS, Timers
from spc.session.epochkeys import EpochKeys
from spc.transport.sockets import keepAlive

__all__ = [
    "BeatingSession",
    "Connections",
    "HeartbeatDriver",
    "IDLE_BEATS",
    "MAINTENANCE",
    "MessageCounters",
    "STRETCH",
]

IDLE_BEATS = 3
"""
Beats with no traffic after which a session stretches its interval.
"""

STRETCH = 6
"""
How many times the heartbeat interval an idle session beats at (A21).
"""

MAINTENANCE = frozenset({
    records.HeartbeatRequest,
    records.HeartbeatResponse,
    records.RotationOffer,
    records.RotationAck,
    records.RotationCommit,
    records.RotationAbort,
    records.RotationRequest,
})
"""
The records that keep a session going, which are not traffic: an idle
session still beats and rotates.
"""


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

    @ivar interval: the heartbeat interval in force: the session's, or
        C{STRETCH} times it while the session is idle.
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
        maintenanceSent: Callable[[], int] = lambda: 0,
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
        @param maintenanceSent: how many rotation records the session has
            sent so far, which are not traffic.
        @param onRoundTrip: called with a channel and each round trip
            measured on it (the session's L{spc.session.pacing}).
        """
        self._session = session
        self._connections = connections
        self._keys = keys
        self._messages = messages
        self._clock = clock
        self._baseInterval = self.interval = timers.heartbeatInterval
        self._missLimit = missLimit
        self._overlap = timers.overlap
        self._onBeat = onBeat
        self._maintenanceSent = maintenanceSent
        self._onRoundTrip = onRoundTrip
        self._beats = LoopingCall(self._beat)
        self._beats.clock = clock
        self._beating = False
        self._liveness: dict[object, Liveness] = {}
        self._requests = RequestLimiter(clock, self.interval)
        self._desyncSince: float | None = None
        self._commitProbes: dict[object, int] = {}
        self._commitMissed = False
        self._sentAtBeat: dict[object, int] = {}
        self._ownSent = 0
        self._maintenanceAtBeat = 0
        self._trafficHeard = False
        self._idleBeats = 0
        self._watch: IDelayedCall | None = None

    def attach(self, channel) -> None:
        """
        Watch a new connection; the first one starts the beats, the first
        of which comes one interval later.  The kernel probes the
        connection too, when it carries nothing (L{keepAlive}).
        """
        keepAlive(getattr(channel, "transport", None), self._baseInterval, self._missLimit)
        now = self._clock.seconds()
        self._liveness[channel] = Liveness(self.interval, self._missLimit, now)
        self._sentAtBeat[channel] = channel.records.sentFrames
        self._requests.start(channel)
        if not self._beats.running:
            self._beats.start(self.interval, now=False)

    def heard(self, channel, record: object) -> None:
        """
        An authenticated record arrived on C{channel}: a sign of life, and
        unless it only keeps the session going (L{MAINTENANCE}), traffic,
        which ends an idle stretch at once.
        """
        liveness = self._liveness.get(channel)
        if liveness is not None:
            liveness.heard(self._clock.seconds())
        if type(record) not in MAINTENANCE:
            self._trafficHeard = True
            if self.interval != self._baseInterval:
                self._pace(self._baseInterval)

    def forget(self, channel) -> None:
        """
        C{channel} is gone.
        """
        self._liveness.pop(channel, None)
        self._sentAtBeat.pop(channel, None)
        self._requests.forget(channel)
        self._commitProbes.pop(channel, None)

    def stop(self) -> None:
        """
        The session ended.
        """
        if self._beats.running:
            self._beats.stop()
        self._cancelWatch()
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
        Every interval in force: a channel silent for too long, or whose
        peer has read nothing for as long, is dead (its fragments go
        elsewhere and the client rejoins it); a channel this end has sent
        nothing on for an interval gets a heartbeat request.  Then the
        session's pace follows its traffic, and the channels whose deadline
        comes before the next beat are watched.
        """
        self._beating = True
        try:
            self._onBeat()
            now = self._clock.seconds()
            traffic = self._trafficSinceBeat()
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
                liveness.sent(channel.records.sentFrames, now)
                if liveness.quiet(now):
                    self.request(channel)
            self._followTraffic(traffic)
            self._markBeat()
            self._watchDeadlines(now)
        finally:
            self._beating = False

    def _trafficSinceBeat(self) -> bool:
        """
        Whether there was traffic since the last beat: heard (counted as it
        came), sent (frames beyond this end's own heartbeats and the
        rotation's records), or waiting to be sent on a channel whose
        transport paused it.
        """
        connections = self._connections.connections()
        sent = sum(
            channel.records.sentFrames - self._sentAtBeat.get(channel, 0)
            for channel in connections
        )
        maintenance = self._maintenanceSent() - self._maintenanceAtBeat
        return (
            self._trafficHeard
            or sent > self._ownSent + maintenance
            or any(channel.writePaused for channel in connections)
        )

    def _markBeat(self) -> None:
        for channel in self._connections.connections():
            self._sentAtBeat[channel] = channel.records.sentFrames
        self._ownSent = 0
        self._maintenanceAtBeat = self._maintenanceSent()
        self._trafficHeard = False

    def _followTraffic(self, traffic: bool) -> None:
        """
        After C{IDLE_BEATS} beats without traffic the session beats
        C{STRETCH} times more slowly; traffic brings the interval back.
        """
        if traffic:
            self._idleBeats = 0
            if self.interval != self._baseInterval:
                self._pace(self._baseInterval)
            return
        self._idleBeats += 1
        if self._idleBeats >= IDLE_BEATS and self.interval == self._baseInterval:
            self._pace(self._baseInterval * STRETCH)

    def _pace(self, interval: float) -> None:
        """
        Beat every C{interval} from now on, the next beat one C{interval}
        from now; every channel's dead-time follows.
        """
        self.interval = interval
        now = self._clock.seconds()
        for liveness in self._liveness.values():
            liveness.pace(interval, now)
        beats = self._beats
        beats.interval = interval
        if self._beating:
            # The loop schedules the next beat from its start when this
            # one returns.
            beats.starttime = now
        elif beats.running:
            beats.reset()
            self._watchDeadlines(now)

    def _watchDeadlines(self, now: float) -> None:
        """
        Check the channels whose deadline comes before the next beat at
        their deadline, so that each is found dead the moment it has been
        silent for the dead-time, not at the beat after.
        """
        self._cancelWatch()
        nextBeat = now + self.interval
        due = [
            (liveness.deadline(), channel, liveness)
            for channel, liveness in self._liveness.items()
            if liveness.deadline() < nextBeat
        ]
        if due:
            due.sort(key=lambda entry: entry[0])
            self._watch = self._clock.callLater(
                max(0.0, due[0][0] - now), self._deadlineReached, due
            )

    def _deadlineReached(self, due: list) -> None:
        """
        The first of C{due} reached its deadline: each channel whose
        deadline this is and that heard nothing since is dead.
        """
        self._watch = None
        deadline = due[0][0]
        for when, channel, liveness in due:
            if when > deadline:
                break
            if (
                self._liveness.get(channel) is liveness
                and liveness.deadline() == when
                and not channel.dead
            ):
                channel.fatal("no heartbeat from the peer")
        later = [entry for entry in due if entry[0] > deadline]
        if later:
            self._watch = self._clock.callLater(
                max(0.0, later[0][0] - self._clock.seconds()), self._deadlineReached, later
            )

    def _cancelWatch(self) -> None:
        if self._watch is not None and self._watch.active():
            self._watch.cancel()
        self._watch = None

    def request(self, channel) -> int:
        """
        Send a heartbeat request on C{channel} now.

        @return: the id of the request sent.
        """
        now = self._clock.seconds()
        liveness = self._liveness[channel]
        hbID = liveness.request(now)
        channel.sendRecord(
            self._heartbeat(records.HeartbeatRequest, hbID, int(now * MILLISECONDS), channel)
        )
        self._ownSent += 1
        liveness.sent(channel.records.sentFrames, now)
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
        self._ownSent += 1
        liveness = self._liveness.get(channel)
        if liveness is not None:
            liveness.sent(channel.records.sentFrames, self._clock.seconds())

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
