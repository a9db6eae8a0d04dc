"""
Fakes of spc's parts, shared by the tests of the parts that use them.

Each fake offers the union of what its users read and call, so one fake
channel serves the session, the messenger and the status tests alike; a
test sets what matters to it.  Time is always a L{task.Clock}.
"""

from __future__ import annotations

from types import SimpleNamespace

from twisted.internet import task
from twisted.internet.defer import succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from spc.crypto.suites import A256CBC_HS512
from spc.files.progress import TransferProgress
from spc.protocol import records
from spc.protocol.handshake import JoinTarget

__all__ = ["FakeChannel", "FakeDirectory", "FakeSession", "QueuedLane", "clockAt"]


def clockAt(seconds: float) -> task.Clock:
    """
    A L{task.Clock} that reads C{seconds}, for code that is given the time
    (a C{now} callable or a C{seconds()} method) rather than a reactor.
    """
    clock = task.Clock()
    clock.advance(seconds)
    return clock


class FakeChannel:
    """
    A live channel: what a L{spc.session.session.Session}, a
    L{spc.session.messenger.MultiChannelMessenger}'s sink and a
    L{spc.status.snapshot.StatusSource} use of a
    L{spc.transport.channel.ChannelProtocol}, recording what it is asked to
    do.

    @ivar result: what the handshake established: C{result.keys.channel},
        its index, and C{result.keys.suite}, A256CBC-HS512.
    @ivar records: its record layer's counters: C{receivedFrames},
        C{sentFrames} (each record sent adds one) and C{sendEpoch}, 2**31:
        large numbers, so that a status page that shows them is long.
    @ivar bytesSent: bytes written to the transport: 1 TiB.
    @ivar bytesReceived: bytes read from the transport: 1 TiB.
    @ivar owner: the session it was attached to, told when it is lost.
    @ivar sent: the inner records sent, as bytes.
    @ivar closed: the reason given to L{close}, or C{None}.
    @ivar fatalReason: the reason given to L{fatal}, or C{None}.
    @ivar dead: whether its connection is gone; a dead channel sends
        nothing, and a messenger's sink no longer offers it.
    @ivar activated: the C{(epoch, secret)} it was given keys for.
    @ivar writePaused: whether its transport paused it (set by a test, or
        by a sink when L{room} runs out); a paused channel is given no data.
    @ivar pausedSince: when its transport paused it (set by a test), or
        L{None}.
    @ivar room: how many more records a messenger's sink sends on it before
        its transport pauses it, or C{None} for no limit.
    @ivar cost: what it costs to seal a byte on it, relative to the others
        (the scheduler's weight, L{spc.crypto.suites.Suite.cost}); all the
        same unless a test sets them.
    """

    bytesSent = 1 << 40
    bytesReceived = 1 << 40
    cost = 1.0

    def __init__(self, index: int = 0, receivedFrames: int = 0) -> None:
        self.result = SimpleNamespace(keys=SimpleNamespace(suite=A256CBC_HS512, channel=index))
        self.records = SimpleNamespace(
            receivedFrames=receivedFrames, sentFrames=0, sendEpoch=1 << 31
        )
        self.owner = None
        self.fatalReason: str | None = None
        self.dead = False
        self.writePaused = False
        self.pausedSince: float | None = None
        self.room: int | None = None
        self.closed: str | None = None
        self.activated: tuple[int, bytes] | None = None
        self.sent: list[bytes] = []

    def __repr__(self) -> str:
        return f"<FakeChannel {self.result.keys.channel} at {id(self):x}>"

    def canTakeData(self) -> bool:
        return not self.writePaused

    def activate(self, epoch: int, secret: bytes) -> None:
        self.activated = (epoch, secret)

    def peerAddress(self) -> str:
        return "192.0.2.10:40000"

    def sendRecord(self, plaintext: bytes) -> None:
        if not self.dead:
            self.sent.append(bytes(plaintext))
            self.records.sentFrames += 1

    def close(self, reason: str = "closed locally") -> None:
        self.closed = reason

    def fatal(self, reason: str) -> None:
        """
        A fault closed the connection, as C{ChannelProtocol.fatal} does.
        """
        if not self.dead:
            self.fatalReason = reason
            self.lose(reason)

    def whenLost(self):
        """
        A fake connection is gone as soon as it is closed.
        """
        return succeed(None)

    def lose(self, reason: str = "connection lost") -> None:
        """
        The transport went away: tell the owner, as C{connectionLost} does.
        """
        self.dead = True
        self.owner.channelLost(self, reason)

    def take(self, kind: type | None = None) -> list:
        """
        Decode and forget the records sent, keeping only C{kind}.
        """
        sent, self.sent = self.sent, []
        decoded = [records.decodeRecord(record) for record in sent]
        return [r for r in decoded if kind is None or type(r) is kind]


class _Listing:
    """
    A session's incoming files or messenger as a status reads them.
    """

    def __init__(self, items) -> None:
        self._items = items

    def inProgress(self):
        return self._items

    def outgoingFiles(self):
        return []


class FakeSession:
    """
    What the parts around a L{spc.session.session.Session} use of it: a
    receiver (L{spc.server.inbox.InboxReceiver}) and a
    L{spc.status.snapshot.StatusSource} read it, without channels unless a
    test adds some; its drivers (L{spc.session.rotationdriver.RotationDriver},
    L{spc.session.heartbeatdriver.HeartbeatDriver}) log, send control
    records and end it through it, each recorded.

    @ivar id: the session id: C{number} in its first 8 bytes.
    @ivar peer: the peer's identity fingerprint: C{peer}, or
        C{"SHA256:peer<number>"}.
    @ivar peerName: the peer's name in C{authorized_keys}, or L{None}.
    @ivar isServer: whether it is the server's end of the session.
    @ivar channels: the live channels by index, as a status lists them (set
        by a test).
    @ivar live: the channels L{liveChannels} reports to a driver: one by
        default (set by a test); rotation records go on the first.
    @ivar roundTrips: the round trip under load L{loadedRoundTrip} reports,
        by channel (set by a test).
    @ivar incomingFiles: C{transfers} files called C{name} half received,
        as C{inProgress()} lists them.
    @ivar messenger: a messenger sending no file.
    @ivar closedReason: C{None}: the session is live.
    @ivar onChannelLost: what is called with the index of a channel lost
        (a test calls them).
    @ivar epoch: its key epoch.
    @ivar started: when it started.
    @ivar events: the events logged through C{log}.
    @ivar log: a logger whose events land in C{events}.
    @ivar sent: the control and rotation records sent, decoded.
    @ivar errors: the reasons given to L{protocolError}.
    @ivar ended: C{(code, reason, error)} of each L{terminate}.
    """

    closedReason = None
    epoch = 7
    started = 0.0

    def __init__(
        self,
        number: int = 1,
        transfers: int = 0,
        name: str = "file",
        peer: str | None = None,
        *,
        isServer: bool = True,
        peerName: str | None = None,
    ) -> None:
        self.id = number.to_bytes(8, "big") + bytes(8)
        self.peer = peer if peer is not None else f"SHA256:peer{number}"
        self.peerName = peerName
        self.isServer = isServer
        self.channels: dict = {}
        self.live: list = ["a channel"]
        self.roundTrips: dict = {}
        self.onChannelLost: list = []
        progress = [TransferProgress(name, 100, 50, 25, False) for _ in range(transfers)]
        self.incomingFiles = _Listing(progress)
        self.messenger = _Listing([])
        self.events: list[dict] = []
        self.log = Logger(observer=self.events.append)
        self.sent: list = []
        self.errors: list[str] = []
        self.ended: list[tuple[int, str, type]] = []

    def roundTrip(self, channel):
        """
        No round trip measured yet.
        """
        return None

    def liveChannels(self) -> list:
        return self.live

    def sendControl(self, record: bytes) -> None:
        self.sent.append(records.decodeRecord(record))

    def sendRotation(self, record: bytes) -> object:
        self.sent.append(records.decodeRecord(record))
        return self.live[0] if self.live else None

    def loadedRoundTrip(self, channel: object) -> float | None:
        return self.roundTrips.get(channel)

    def protocolError(self, reason: str) -> None:
        self.errors.append(reason)

    def terminate(self, code: int, reason: str, error: type) -> None:
        self.ended.append((code, reason, error))


class FakeDirectory:
    """
    A server's directory of sessions, both as a handshake asks it questions
    (L{spc.protocol.handshake.ServerDirectory}), with fixed answers and
    every call recorded in order as C{(method name, arguments)}, and as a
    status reads it, holding L{FakeSession}s.

    @ivar authorized: C{True}/C{False} for everyone, or a collection of
        authorized fingerprints.
    @ivar admitNew: what L{admitNewSession} answers.
    @ivar admitJoinAnswer: what L{admitJoin} answers.
    @ivar admitPrivate: what L{admitPrivateOperation} answers.
    @ivar target: what L{joinTarget} answers (a L{JoinTarget} or C{None}).
    @ivar existing: session ids L{sessionExists} reports.
    @ivar calls: the handshake's questions, in order.
    @ivar sessions: the sessions a status lists, by id.
    @ivar authorizer: what names peers for a status: the directory itself,
        by the C{names} it was given.
    @ivar channelCount: the daemon's channels per session.
    """

    channelCount = 4

    def __init__(
        self,
        sessions=(),
        names=None,
        *,
        authorized=True,
        admitNew: bool = True,
        admitJoin: bool = True,
        admitPrivate: bool = True,
        target: JoinTarget | None = None,
        existing=(),
    ) -> None:
        self.authorized = authorized
        self.admitNew = admitNew
        self.admitJoinAnswer = admitJoin
        self.admitPrivate = admitPrivate
        self.target = target
        self.existing = set(existing)
        self.calls: list[tuple[str, tuple]] = []
        self.sessions = {session.id: session for session in sessions}
        self._names = names or {}
        self.authorizer = self

    def names(self) -> list[str]:
        """
        The names of the methods called, in order.
        """
        return [name for name, _ in self.calls]

    def isAuthorized(self, fingerprint: str) -> bool:
        self.calls.append(("isAuthorized", (fingerprint,)))
        if isinstance(self.authorized, bool):
            return self.authorized
        return fingerprint in self.authorized

    def admitNewSession(self, fingerprint: str) -> bool:
        self.calls.append(("admitNewSession", (fingerprint,)))
        return self.admitNew

    def admitJoin(self, session: bytes) -> bool:
        self.calls.append(("admitJoin", (session,)))
        return self.admitJoinAnswer

    def admitPrivateOperation(self) -> bool:
        self.calls.append(("admitPrivateOperation", ()))
        return self.admitPrivate

    def joinTarget(self, session, fingerprint, exchangeKey, epoch):
        self.calls.append(("joinTarget", (session, fingerprint, exchangeKey, epoch)))
        return self.target

    def sessionExists(self, session: bytes) -> bool:
        self.calls.append(("sessionExists", (session,)))
        return session in self.existing

    def nameOf(self, fingerprint: str):
        """
        The name C{authorized_keys} gives C{fingerprint}, or C{None}.
        """
        return self._names.get(fingerprint)

    def pendingHandshakes(self) -> int:
        return 2

class QueuedLane:
    """
    A worker lane (L{spc.lanes}) the test runs by hand: jobs wait until the
    test runs them, in order, and each is reported as soon as it ran, as a
    real lane's would be on the reactor thread.

    @ivar jobs: C{(job, report)} pairs not yet run, oldest first.
    @ivar ran: how many jobs ran so far.
    """

    name = "queued"

    def __init__(self) -> None:
        self.jobs: list = []
        self.ran = 0

    @property
    def pending(self) -> int:
        return len(self.jobs)

    def submit(self, job, report) -> None:
        self.jobs.append((job, report))

    def runOne(self) -> None:
        """
        Run the oldest job and report it.
        """
        job, report = self.jobs.pop(0)
        try:
            result = job()
        except BaseException:
            result = Failure()
        self.ran += 1
        report(result)

    def runAll(self) -> None:
        """
        Run jobs, those their reports submit included, until none is left.
        """
        while self.jobs:
            self.runOne()

    def stop(self) -> None:
        pass
