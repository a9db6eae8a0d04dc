# -*- test-case-name: tests.memory.test_rotation -*-
"""
The key-rotation owner part of L{spc.session.session.Session}, as a mixin.

The session is the owner the rotation machines talk to: the timers and the
epoch installs on every connection live here, the logic (offers, acks,
commits, rollbacks) in L{spc.protocol.rotation}.
"""

from __future__ import annotations

from spc.errors import ProtocolError, SessionReset
from spc.logs.events import shortID
from spc.protocol import records
from spc.protocol.rotation import ClientRotation, ServerRotation
from spc.transport.channel import ChannelProtocol

__all__ = ["SessionRotation"]


class SessionRotation:
    """
    Rotation: the machine decides, the session carries it out.  Mixed into
    L{spc.session.session.Session}, whose state it uses.
    """

    def _makeRotation(self, exchangeKey):
        if exchangeKey is None:
            return None
        if self.isServer:
            return ServerRotation(
                self, self.id, exchangeKey, self.epoch,
                self.params.ackTimeout / 1000, self.params.overlap / 1000,
            )
        return ClientRotation(self, self.id, exchangeKey, self.epoch, self.params.overlap / 1000)

    def rotate(self, scheduled: bool = False) -> None:
        """
        Start a rotation now.  A session with no live channel makes no
        offer, and a scheduled round within half an interval of the last
        commit is skipped (A11): a volume or age rotation just happened.
        """
        if self.rotation is None or not self.isServer or not self.liveChannels():
            return
        sinceCommit = self._clock.seconds() - self._keyBorn
        if scheduled and self.rotationsCommitted and (
            sinceCommit < self.params.rotationInterval / 2000
        ):
            return
        self.rotation.tick()

    def epochAhead(self, channel: ChannelProtocol) -> None:
        """
        The server sends under an epoch this client never got (it missed a
        commit and the overlap is over): no repair, a new session (T30).
        The header is read before it is authenticated, so one such frame
        only closes its channel; the session is reset once no channel is
        left, when every path agrees.
        """
        if not self.isServer and not self.liveChannels():
            self.log.warn("Session with {peer} lost epoch sync", peer=self.peer)
            self.terminate(records.BYE_DESYNC, "epoch desync", SessionReset)

    def keyWornOut(self, channel: ChannelProtocol) -> None:
        """
        A send key carried a lot: the server rotates, the client asks for
        a rotation (once until the next one ends).
        """
        self._requestRotation(records.REKEY_VOLUME)

    def _requestRotation(self, reason: int) -> None:
        if self.rotation is None:
            return
        if self.isServer:
            self.rotate()
        elif not self._rotationRequested:
            self._rotationRequested = True
            self.sendControl(records.RotationRequest(reason).encode())

    def _rotationRecord(self, channel: ChannelProtocol, record) -> None:
        rotation, kind = self.rotation, type(record)
        if rotation is None:
            raise ProtocolError(f"unexpected {kind.TAG!r} record")
        if self.isServer and kind is records.RotationAck:
            rotation.ackReceived(record)
        elif self.isServer and kind is records.RotationRequest:
            self.rotate()
        elif not self.isServer and kind is records.RotationOffer:
            rotation.offerReceived(record)
        elif not self.isServer and kind is records.RotationCommit:
            self._rotationRequested = False
            rotation.committed(record.newEpoch)
        elif not self.isServer and kind is records.RotationAbort:
            self._rotationRequested = False
            rotation.aborted(record.newEpoch)
        else:
            raise ProtocolError(f"unexpected {kind.TAG!r} record")

    def sendOffer(self, record: bytes) -> None:
        channels = self.liveChannels()
        ready = [channel for channel in channels if not channel.writePaused]
        (ready or channels)[0].sendRecord(record)

    def _allConnections(self) -> list[ChannelProtocol]:
        return [c for c in list(self.channels.values()) + list(self._candidates) if not c.dead]

    def installEpoch(self, epoch: int, secret: bytes) -> None:
        self._epochSecrets[epoch] = secret
        for channel in self._allConnections():
            channel.records.installEpoch(epoch, secret)

    def switchEpoch(self, epoch: int) -> None:
        self.epoch = epoch
        for channel in self._allConnections():
            channel.records.switchSendEpoch(epoch)

    def dropEpoch(self, epoch: int) -> None:
        self._epochSecrets.pop(epoch, None)
        for channel in self._allConnections():
            channel.records.dropEpoch(epoch)

    def startTimer(self, name: str, seconds: float) -> None:
        self.cancelTimer(name)
        self._timers[name] = self._clock.callLater(seconds, self._timerFired, name)

    def cancelTimer(self, name: str) -> None:
        call = self._timers.pop(name, None)
        if call is not None and call.active():
            call.cancel()

    def _timerFired(self, name: str) -> None:
        del self._timers[name]
        rotation = self.rotation
        if name == "ack":
            rotation.ackTimedOut()
        elif name == "overlap":
            if self._desyncProven:
                self.log.warn("Session with {peer} missed a commit", peer=self.peer)
                self.terminate(records.BYE_DESYNC, "epoch desync", SessionReset)
                return
            rotation.overlapEnded()
        elif name == "tick":
            self.rotate()

    def rotationEnded(self, epoch: int, committed: bool, reason: str) -> None:
        for callback in self.onRotationEnded:
            callback(committed)
        if committed:
            self.rotationsCommitted += 1
            self._keyBorn = now = self._clock.seconds()
            if self.isServer:
                self._probeCommit(now)
        else:
            self.rotationsRolledBack += 1
        session = shortID(self.id)
        if committed:
            self.log.info(
                "Rotation to epoch {epoch} with {peer} committed",
                epoch=epoch, peer=self.peer, session=session, committed=True,
            )
        else:
            self.log.warn(
                "Rotation to epoch {epoch} with {peer} rolled back: {reason}",
                epoch=epoch, peer=self.peer, session=session, reason=reason, committed=False,
            )

    def rekeyFailed(self) -> None:
        self.log.warn("Key rotation with {peer} failed repeatedly", peer=self.peer)
        self.terminate(records.BYE_REKEY_FAILED, "key rotation failed", SessionReset)

    def _probeCommit(self, now: float) -> None:
        """
        Right after a commit, ask every channel for a heartbeat under the
        new epoch: an honest client commits on reading it, so an answer to
        one of these requests that still names the old epoch proves the
        client missed the commit, and the session is reset when the overlap
        ends (T30).  The requests are told apart by their ids, not their
        times: a request sent before the commit in the same millisecond is
        rightly answered with the old epoch.
        """
        self._desyncProven = False
        self._commitProbes = {
            channel: self._sendHeartbeat(channel, now) for channel in self.liveChannels()
        }
