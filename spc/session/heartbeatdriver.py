# -*- test-case-name: tests.memory.test_heartbeatdriver -*-
"""
The heartbeat part of L{spc.session.session.Session}, as a mixin.

The session is the owner the heartbeat counters talk to: the timer and
the records live here, the counting and the rules (liveness, request
limits, which epochs agree) in L{spc.protocol.liveness}.
"""

from __future__ import annotations

from spc.errors import SessionReset
from spc.protocol import records
from spc.protocol.liveness import epochsAgree
from spc.transport.channel import ChannelProtocol

__all__ = ["SessionHeartbeats"]

MAX_KEY_AGE_ROUNDS = 4


class SessionHeartbeats:
    """
    Heartbeats: the timer is the session's, the counting is
    L{spc.protocol.liveness}'s.  Mixed into L{spc.session.session.Session}, whose state
    it uses.
    """

    def roundTrip(self, channel: ChannelProtocol) -> float | None:
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
        now = self._clock.seconds()
        if now - self._keyBorn > MAX_KEY_AGE_ROUNDS * self.params.rotationInterval / 1000:
            self._requestRotation(records.REKEY_AGE)
        for channel in self.liveChannels() + list(self._candidates):
            liveness = self._liveness.get(channel)
            if liveness is None or channel.dead:
                continue
            if liveness.isDead(now):
                channel.fatal("no heartbeat from the peer")
                continue
            if liveness.isBlocked(channel.pausedSince, now):
                channel.fatal("the peer reads nothing")
                continue
            self._sendHeartbeat(channel, now)

    def _sendHeartbeat(self, channel: ChannelProtocol, now: float) -> int:
        """
        @return: the id of the request sent.
        """
        hbID = self._liveness[channel].request(now)
        channel.sendRecord(
            self._heartbeat(records.HeartbeatRequest, hbID, int(now * 1000), channel)
        )
        return hbID

    def _heartbeatReceived(self, channel: ChannelProtocol, request) -> None:
        limiter = self._limiters.get(channel)
        now = self._clock.seconds()
        if limiter is not None and not limiter.allow(now):
            if limiter.abusive():
                channel.fatal("heartbeat flood")
            return
        self._checkPeerState(channel, request)
        channel.sendRecord(
            self._heartbeat(
                records.HeartbeatResponse, request.hbID, request.originTime, channel
            )
        )

    def _heartbeatAnswered(self, channel: ChannelProtocol, response) -> None:
        if (
            self.isServer
            and self._commitProbes.get(channel) == response.hbID
            and response.committedEpoch != self.epoch
        ):
            self._desyncProven = True
        self._checkPeerState(channel, response)
        liveness = self._liveness.get(channel)
        if liveness is not None:
            liveness.answered(response.hbID, self._clock.seconds())

    def _checkPeerState(self, channel: ChannelProtocol, beat) -> None:
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
        if beat.rxLowMsgID > self.messenger.nextSendID:
            self.protocolError("the peer claims messages that were never sent")
            return
        if epochsAgree(beat.committedEpoch, self.epoch, frozenset(self._epochSecrets)):
            self._desyncSince = None
            return
        now = self._clock.seconds()
        if self._desyncSince is None:
            self._desyncSince = now
        elif now - self._desyncSince > self.params.overlap / 1000:
            self.log.warn("Session with {peer} lost epoch sync", peer=self.peer)
            self.terminate(records.BYE_DESYNC, "epoch desync", SessionReset)

    def _pendingEpoch(self) -> int:
        pending = getattr(self.rotation, "pending", None)
        return records.NO_EPOCH if pending is None else pending

    def _heartbeat(self, kind, hbID: int, originTime: int, channel: ChannelProtocol) -> bytes:
        received = channel.records.receivedFrames
        return kind(
            hbID,
            originTime,
            self.epoch,
            self._pendingEpoch(),
            received - 1 if received else records.NO_SEQUENCE,
            self.messenger.nextSendID,
            self.messenger.nextDeliveryID,
        ).encode()
