# -*- test-case-name: tests.memory.test_status -*-
"""
What an operator may see of a running daemon: its sessions, their channels
and the files in progress, as plain data.

A L{StatusSource} reads the live objects when asked and copies the figures
out; nothing here holds on to a session or changes one, and nothing secret
(keys, epoch secrets, payloads) is ever copied.  The same records travel
over the control socket (L{spc.status.control}), print as a table or JSON
(L{spc.cli.status}) and feed the Prometheus collector (L{spc.status.metrics}).

Every list is bounded so that one session always fits in one control
answer: at most L{MAX_TRANSFERS_LISTED} files per session, names cut to
L{MAX_NAME}.  Names are also stripped of control characters (Unicode
category C), since they end up on an operator's terminal.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from twisted.internet.interfaces import IReactorTime

from spc.logs.events import shortID
from spc.server.directory import SessionDirectory
from spc.session.session import Session
from spc.status.unfinished import unfinishedStatuses
from spc.text import withoutControls

__all__ = [
    "ChannelStatus",
    "DaemonStatus",
    "SessionStatus",
    "Snapshot",
    "StatusSource",
    "TransferStatus",
]

MAX_TRANSFERS_LISTED = 16
MAX_NAME = 200


def _shown(text: str | None) -> str | None:
    """
    A name as an operator may safely see it: a file name is the sender's
    raw UTF-8 and a peer's name comes from C{authorized_keys}, so either
    could hold a terminal escape; those characters go, and what is left is
    cut to L{MAX_NAME}.
    """
    if text is None:
        return None
    text = withoutControls(text)
    if len(text) <= MAX_NAME:
        return text
    return text[: MAX_NAME - 1] + "…"


@dataclass(frozen=True)
class ChannelStatus:
    """
    One live connection of a session.

    @ivar index: the channel's place in the daemon's port list.
    @ivar suite: its cipher suite's name.
    @ivar epoch: the key epoch it sends under.
    @ivar rtt: the last heartbeat round trip in seconds, or C{None}.
    @ivar sent: bytes written, framing included.
    @ivar received: bytes read.
    """

    index: int
    suite: str
    epoch: int
    rtt: float | None
    sent: int
    received: int


@dataclass(frozen=True)
class TransferStatus:
    """
    One file on its way in or out.

    @ivar name: the sender's name for it.
    @ivar size: its declared size.
    @ivar done: bytes the receiver has written.
    @ivar held: bytes fsynced on the receiving end; C{None} when this end
        sends (it is not told).
    @ivar direction: C{"in"} or C{"out"}.
    """

    name: str
    size: int
    done: int
    held: int | None
    direction: str

    @property
    def percent(self) -> float:
        return 100.0 if not self.size else 100.0 * self.done / self.size


@dataclass(frozen=True)
class SessionStatus:
    """
    One peer's session.

    @ivar session: the first hex digits of the session id, as the log
        shows them.
    @ivar peer: the peer's identity fingerprint.
    @ivar name: its name in C{authorized_keys}, if any.
    @ivar age: seconds since the session began.
    @ivar epoch: its committed key epoch.
    @ivar channels: its live channels, by index.
    @ivar transfers: files in progress, at most L{MAX_TRANSFERS_LISTED}.
    @ivar transfersOmitted: files in progress beyond those listed.
    """

    session: str
    peer: str
    name: str | None
    age: float
    epoch: int
    channels: tuple[ChannelStatus, ...] = ()
    transfers: tuple[TransferStatus, ...] = ()
    transfersOmitted: int = 0

    @classmethod
    def fromDict(cls, data: dict[str, Any]) -> SessionStatus:
        """
        The inverse of C{asdict}, for a record that crossed the control
        socket as JSON.

        @raise KeyError, TypeError: for a record of another shape.
        """
        return cls(
            str(data["session"]),
            str(data["peer"]),
            data["name"],
            float(data["age"]),
            int(data["epoch"]),
            tuple(ChannelStatus(**channel) for channel in data["channels"]),
            tuple(TransferStatus(**transfer) for transfer in data["transfers"]),
            int(data["transfersOmitted"]),
        )


@dataclass(frozen=True)
class DaemonStatus:
    """
    The daemon as a whole.

    @ivar fingerprint: its host key's fingerprint.
    @ivar uptime: seconds since the daemon was set up (just before it
        started listening).
    @ivar channels: how many channels (ports) it serves.
    @ivar sessions: how many sessions are live.
    @ivar pendingHandshakes: connections counted against the
        pending-handshake caps: still in their handshake, or refused and
        not yet gone.
    """

    fingerprint: str
    uptime: float
    channels: int
    sessions: int
    pendingHandshakes: int


@dataclass(frozen=True)
class Snapshot:
    """
    Everything C{spc status} shows, taken at one moment.

    @ivar unfinished: the unfinished files the daemon holds
        (L{spc.status.unfinished.UnfinishedStatus}).
    """

    daemon: DaemonStatus
    sessions: list[SessionStatus] = field(default_factory=list)
    unfinished: list = field(default_factory=list)

    def asDict(self) -> dict[str, Any]:
        return asdict(self)


def channelStatuses(session: Session) -> tuple[ChannelStatus, ...]:
    """
    The session's channels that carry data (a joining connection counts
    once its key is confirmed).
    """
    statuses = []
    for index, channel in sorted(session.channels.items()):
        if channel.records is None:
            continue
        statuses.append(
            ChannelStatus(
                index,
                channel.result.keys.suite.name,
                channel.records.sendEpoch,
                session.roundTrip(channel),
                channel.bytesSent,
                channel.bytesReceived,
            )
        )
    return tuple(statuses)


def transferStatuses(session: Session) -> tuple[list[TransferStatus], int]:
    """
    @return: the first L{MAX_TRANSFERS_LISTED} files in progress, incoming
        first, and how many more there are.
    """
    progress = list(session.incomingFiles.inProgress())
    progress += [sender.progress() for sender in session.messenger.outgoingFiles()]
    listed = [
        TransferStatus(
            _shown(item.name), item.size, item.done, item.held, "out" if item.outgoing else "in"
        )
        for item in progress[:MAX_TRANSFERS_LISTED]
    ]
    return listed, max(0, len(progress) - MAX_TRANSFERS_LISTED)


def sessionStatus(session: Session, now: float, nameOf) -> SessionStatus:
    """
    @param nameOf: gives a client's name from its fingerprint, or C{None}.
    """
    transfers, omitted = transferStatuses(session)
    return SessionStatus(
        shortID(session.id),
        session.peer,
        _shown(nameOf(session.peer)),
        max(0.0, now - session.started),
        session.epoch,
        channelStatuses(session),
        tuple(transfers),
        omitted,
    )


class StatusSource:
    """
    Reads a daemon's state on demand.

    @ivar directory: the daemon's L{SessionDirectory}.
    @ivar fingerprint: the daemon's host key fingerprint.
    """

    def __init__(
        self, directory: SessionDirectory, clock: IReactorTime, fingerprint: str
    ) -> None:
        self.directory = directory
        self.fingerprint = fingerprint
        self._clock = clock
        self._started = clock.seconds()

    def daemon(self) -> DaemonStatus:
        directory = self.directory
        return DaemonStatus(
            self.fingerprint,
            self._clock.seconds() - self._started,
            directory.channelCount,
            len(self._live()),
            directory.pendingHandshakes(),
        )

    def _live(self) -> list[Session]:
        return [s for s in self.directory.sessions.values() if s.closedReason is None]

    def sessions(self, after: str = "") -> Iterable[SessionStatus]:
        """
        The live sessions in order of their id, from the first one after
        C{after}: a reader that pages through them sees each session that
        lived throughout exactly once, however many came and went.
        """
        now = self._clock.seconds()
        nameOf = self.directory.authorizer.nameOf
        keyed = sorted(
            ((shortID(session.id), session) for session in self._live()),
            key=lambda pair: pair[0],
        )
        for key, session in keyed:
            if key > after:
                yield sessionStatus(session, now, nameOf)

    def snapshot(self) -> Snapshot:
        return Snapshot(
            self.daemon(), list(self.sessions()), list(unfinishedStatuses(self.directory))
        )
