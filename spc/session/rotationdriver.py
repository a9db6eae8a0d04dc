# -*- test-case-name: tests.memory.test_rotationdriver,tests.memory.test_rotation -*-
"""
The key rotation of one session: its machine, the timers the machine asks
for, and the triggers that start a rotation.

The machines of L{spc.protocol.rotation} decide and hold no timer (STYLE
habit 2).  A L{RotationDriver} holds each of them as a named
L{IDelayedCall} (the ACK timeout, the end of the overlap, the rotation a
trigger during the last one asked for) and turns its expiry into the
machine's input; it starts a rotation on the triggers of PROTOCOL section
8.1 (a round, the key's volume or age, the client's request) and routes
the rotation records to the machine.  The epochs themselves are the
session's L{spc.session.epochkeys.EpochKeys}, which the machine changes
directly.

Rotation records go on the channel with the shortest queue, and an offer's
acknowledgement is given as long as that channel's round trip under load
asks for, within what the rotation interval leaves
(L{spc.session.pacing.ackDeadline}): a saturated slow link delays the
answer, it does not roll the rotation back.
"""

from __future__ import annotations

from typing import Callable, Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from spc.errors import SessionReset
from spc.logs.events import shortID
from spc.protocol import records
from spc.protocol.rotation import ClientRotation, RotationKeys, ServerRotation
from spc.protocol.timers import Timers
from spc.session.pacing import ackDeadline

__all__ = ["CommitProbe", "MAX_KEY_AGE_ROUNDS", "RotatingSession", "RotationDriver"]

MAX_KEY_AGE_ROUNDS = 4
"""
A key older than this many rotation intervals is rotated, whatever the
rounds do (section 8.1).
"""


class RotatingSession(Protocol):
    """
    What a rotation driver asks of its session (L{spc.session.session.Session}):
    its live channels, to send a control or rotation record on one of them
    at once, a channel's round trip under load, and to end with a goodbye.
    """

    id: bytes
    isServer: bool
    peer: str
    log: Logger

    def liveChannels(self) -> list: ...

    def sendControl(self, record: bytes) -> None: ...

    def sendRotation(self, record: bytes) -> object | None: ...

    def loadedRoundTrip(self, channel: object) -> float | None: ...

    def terminate(self, code: int, reason: str, error: type) -> None: ...


class CommitProbe(Protocol):
    """
    What tells a server whether its client missed a commit (section 9.4):
    the session's L{spc.session.heartbeatdriver.HeartbeatDriver} asks every
    channel for a heartbeat right after a commit, and says whether an
    answer named another epoch.
    """

    def probeCommit(self) -> None: ...

    def commitMissed(self) -> bool: ...


def _cancel(call: IDelayedCall | None) -> None:
    """
    Cancel C{call} if it is still to come.
    """
    if call is not None and call.active():
        call.cancel()


class RotationDriver:
    """
    Rotation: the machine decides, the driver keeps its time and carries
    out what it asks.

    @ivar machine: the session's L{ServerRotation} or L{ClientRotation};
        L{None} for a session made without the client's exchange key, which
        never rotates.
    @ivar committed: the rotations this end committed.
    @ivar rolledBack: the rotations the server rolled back.
    @ivar onEnded: called with whether each rotation committed.
    @ivar recordsSent: the rotation records this end sent, which keep the
        session going but are not traffic (A21).
    """

    def __init__(
        self,
        session: RotatingSession,
        keys: RotationKeys,
        probe: CommitProbe,
        clock: IReactorTime,
        timers: Timers,
        exchangeKey=None,
    ) -> None:
        """
        @param exchangeKey: the client's exchange key: its public half on
            the server, its private half on the client.
        """
        self._session = session
        self._keys = keys
        self._probe = probe
        self._clock = clock
        self._timers = timers
        self.committed = 0
        self.rolledBack = 0
        self.recordsSent = 0
        self.onEnded: list[Callable[[bool], None]] = []
        self._requested = False
        self._keyBorn = clock.seconds()
        self._ackTimeout: IDelayedCall | None = None
        self._overlapEnd: IDelayedCall | None = None
        self._nextRotation: IDelayedCall | None = None
        self._offerChannel: object | None = None
        self.machine = self._makeMachine(exchangeKey)

    def _makeMachine(self, exchangeKey) -> ServerRotation | ClientRotation | None:
        if exchangeKey is None:
            return None
        session, timers = self._session, self._timers
        if session.isServer:
            return ServerRotation(
                self, self._keys, session.id, exchangeKey, timers.ackTimeout, timers.overlap
            )
        return ClientRotation(self, self._keys, session.id, exchangeKey, timers.overlap)

    # Triggers.

    def rotate(self, scheduled: bool = False) -> None:
        """
        Start a rotation now.  A session with no live channel makes no
        offer, and a scheduled round within half an interval of the last
        commit is skipped (A11): a volume or age rotation just happened.
        """
        session = self._session
        if self.machine is None or not session.isServer or not session.liveChannels():
            return
        sinceCommit = self._clock.seconds() - self._keyBorn
        if scheduled and self.committed and sinceCommit < self._timers.rotationInterval / 2:
            return
        self.machine.tick()

    def keyWornOut(self) -> None:
        """
        A send key carried a lot: the server rotates, the client asks for
        a rotation (once until the next one ends).
        """
        self._request(records.REKEY_VOLUME)

    def checkKeyAge(self) -> None:
        """
        At every heartbeat beat: a key older than C{MAX_KEY_AGE_ROUNDS}
        intervals is rotated as a worn-out one is.
        """
        age = self._clock.seconds() - self._keyBorn
        if age > MAX_KEY_AGE_ROUNDS * self._timers.rotationInterval:
            self._request(records.REKEY_AGE)

    def _request(self, reason: int) -> None:
        if self.machine is None:
            return
        if self._session.isServer:
            self.rotate()
        elif not self._requested:
            self._requested = True
            self.sendControl(records.RotationRequest(reason).encode())

    # Records and frames.

    def routes(self) -> dict:
        """
        The rotation records this end's role takes, and who takes each; a
        session that never rotates takes none, and any record not here is
        unexpected (a protocol error).  The machine is looked up when a
        record comes, not now.
        """
        if self.machine is None:
            return {}
        if self._session.isServer:
            return {
                records.RotationAck: lambda channel, ack: self.machine.ackReceived(ack),
                records.RotationRequest: lambda channel, request: self.rotate(),
            }
        return {
            records.RotationOffer: lambda channel, offer: self.machine.offerReceived(offer),
            records.RotationCommit: self._commitReceived,
            records.RotationAbort: self._abortReceived,
        }

    def _commitReceived(self, channel, commit: records.RotationCommit) -> None:
        self._requested = False
        self.machine.committed(commit.newEpoch)

    def _abortReceived(self, channel, abort: records.RotationAbort) -> None:
        self._requested = False
        self.machine.aborted(abort.newEpoch)

    def frameReceived(self, epoch: int) -> None:
        """
        An authenticated frame arrived under C{epoch}: on the client, the
        first one under the pending epoch commits it (section 8.4).
        """
        if not self._session.isServer and epoch == self._keys.pending:
            self.machine.committed(epoch)

    def epochAhead(self) -> None:
        """
        The server sends under an epoch this client never got (it missed a
        commit and the overlap is over): no repair, a new session (T30).
        The header is read before it is authenticated, so one such frame
        only closes its channel; the session is reset once no channel is
        left, when every path agrees.
        """
        session = self._session
        if not session.isServer and not session.liveChannels():
            session.log.warn("Session with {peer} lost epoch sync", peer=session.peer)
            session.terminate(records.BYE_DESYNC, "epoch desync", SessionReset)

    def stop(self) -> None:
        """
        The session ended: no timer of its rotation fires any more.
        """
        for call in (self._ackTimeout, self._overlapEnd, self._nextRotation):
            _cancel(call)
        self._ackTimeout = self._overlapEnd = self._nextRotation = None

    # RotationOwner, for the machine.

    def sendOffer(self, record: bytes) -> None:
        """
        L{rotate} offers only with a live channel, so the offer goes out
        at once, on the channel with the shortest queue, whose round trip
        sets the deadline of its acknowledgement.
        """
        self.recordsSent += 1
        self._offerChannel = self._session.sendRotation(record)

    def sendControl(self, record: bytes) -> None:
        self.recordsSent += 1
        self._session.sendRotation(record)

    def startAckTimeout(self, seconds: float) -> None:
        """
        Wait C{seconds} (the configured C{ackTimeout}) for the offer's
        acknowledgement, or longer on a loaded path (L{ackDeadline}).
        """
        channel = self._offerChannel
        roundTrip = None if channel is None else self._session.loadedRoundTrip(channel)
        seconds = ackDeadline(seconds, roundTrip, self._timers)
        _cancel(self._ackTimeout)
        self._ackTimeout = self._clock.callLater(seconds, self._ackTimedOut)

    def cancelAckTimeout(self) -> None:
        _cancel(self._ackTimeout)
        self._ackTimeout = None

    def _ackTimedOut(self) -> None:
        self._ackTimeout = None
        self.machine.ackTimedOut()

    def startOverlap(self, seconds: float) -> None:
        _cancel(self._overlapEnd)
        self._overlapEnd = self._clock.callLater(seconds, self._overlapEnded)

    def cancelOverlap(self) -> None:
        _cancel(self._overlapEnd)
        self._overlapEnd = None

    def _overlapEnded(self) -> None:
        """
        A client that answered the heartbeats right after the commit with
        the old epoch missed the commit: the session is reset now, rather
        than its old epoch dropped under it.
        """
        self._overlapEnd = None
        session = self._session
        if self._probe.commitMissed():
            session.log.warn("Session with {peer} missed a commit", peer=session.peer)
            session.terminate(records.BYE_DESYNC, "epoch desync", SessionReset)
            return
        self.machine.overlapEnded()

    def rotateSoon(self) -> None:
        _cancel(self._nextRotation)
        self._nextRotation = self._clock.callLater(0, self._rotateNow)

    def _rotateNow(self) -> None:
        self._nextRotation = None
        self.rotate()

    def rotationEnded(self, epoch: int, committed: bool, reason: str) -> None:
        """
        Count and log how a rotation ended; a commit makes the key young
        again and, on the server, asks every channel for a heartbeat under
        the new epoch.
        """
        for callback in self.onEnded:
            callback(committed)
        session = self._session
        if committed:
            self.committed += 1
            self._keyBorn = self._clock.seconds()
            if session.isServer:
                self._probe.probeCommit()
            session.log.info(
                "Rotation to epoch {epoch} with {peer} committed",
                epoch=epoch, peer=session.peer, session=shortID(session.id), committed=True,
            )
        else:
            self.rolledBack += 1
            session.log.warn(
                "Rotation to epoch {epoch} with {peer} rolled back: {reason}",
                epoch=epoch, peer=session.peer, session=shortID(session.id), reason=reason,
                committed=False,
            )

    def rekeyFailed(self) -> None:
        session = self._session
        session.log.warn("Key rotation with {peer} failed repeatedly", peer=session.peer)
        session.terminate(records.BYE_REKEY_FAILED, "key rotation failed", SessionReset)
