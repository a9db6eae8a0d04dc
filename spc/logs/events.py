# -*- test-case-name: tests.unit.test_logs,tests.memory.test_logs,tests.integration.test_logs -*-
"""
The events spc logs for operators and log collectors.

Each kind of event has its own namespace and one fixed format, and every
value in it is a named field: the text log reads as sentences, and the
JSON log (C{twistd spc --log-format json}) carries the same values as keys
a program can select on without parsing the sentence.

Text a peer may have chosen (a file name, a goodbye's reason, anything an
error message quotes) reaches these fields without its control characters,
so it can neither forge a line nor drive the terminal of whoever reads the
log.

Nothing secret or private reaches these fields: peers appear as identity
fingerprints, sessions as the first eight bytes of their id in hex (the id
travels in clear in every record header), files by name, size and SHA-256
digest, never by content.  The digest lets an operator check a delivery
against the sender's copy; like the name, it identifies the content to
anyone holding a candidate file, so the log deserves the inbox's
protection.

Failures of unauthenticated peers go through a L{PreAuthLog}, so that a
flood of garbage connections cannot flood the log (PROTOCOL T19); other
lines a peer can cause at will go through a L{ThrottledLog} of their own,
and names in them are cut short (L{shortName}).
"""

from __future__ import annotations

from collections import Counter

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger, LogLevel

from spc.ratelimit import TokenBuckets
from spc.text import withoutControls

__all__ = [
    "CHANNEL",
    "CLIENT",
    "DAEMON",
    "HANDSHAKE",
    "MESSAGE",
    "NAMESPACES",
    "NamedLogger",
    "PAIRING",
    "PreAuthLog",
    "ROTATION",
    "SESSION",
    "ThrottledLog",
    "TRANSFER",
    "channelDead",
    "channelRejoined",
    "fileSent",
    "fileStored",
    "handshakeAccepted",
    "rotationRound",
    "sessionClosed",
    "sessionOpened",
    "shortID",
    "shortName",
]

DAEMON = "spc.daemon"
HANDSHAKE = "spc.handshake"
SESSION = "spc.session"
CHANNEL = "spc.channel"
ROTATION = "spc.rotation"
MESSAGE = "spc.message"
TRANSFER = "spc.transfer"
PAIRING = "spc.pairing"
CLIENT = "spc.client"
NAMESPACES = (
    DAEMON, HANDSHAKE, SESSION, CHANNEL, ROTATION, MESSAGE, TRANSFER, PAIRING, CLIENT
)
"""
Every namespace spc logs under, as the README lists them: the daemon uses
all but L{CLIENT}, which is C{spc send}'s side of a session.
"""

HANDSHAKE_ACCEPTED = (
    "Handshake accepted from {source}: {mode} channel {channel} of session "
    "{session} for {peer} ({peer_name})"
)
HANDSHAKE_REFUSED = "Handshake refused from {source} ({kind}): {reason}"
PREAUTH_SUPPRESSED = (
    "Suppressed {count} pre-authentication failures in the last {seconds:.0f} s"
)
MESSAGE_REFUSED = (
    "No room for message {msgID} ({size} bytes) from {peer}: messages hold {reserved} "
    "bytes, {held} of them this peer's; refused as busy"
)
MESSAGES_REFUSED_SUPPRESSED = (
    "Suppressed {count} refusals of messages from {peer} in the last {seconds:.0f} s"
)
FILE_WARNINGS_SUPPRESSED = (
    "Suppressed {count} warnings about files from {peer} in the last {seconds:.0f} s"
)
SESSION_OPENED = "Session {session} opened with {peer} as {role}"
SESSION_CLOSED = "Session {session} with {peer} ended after {duration:.1f} s: {reason}"
CHANNEL_DEAD = "Channel {channel} of session {session} with {peer} at {source} dead: {reason}"
CHANNEL_REJOINED = (
    "Channel {channel} of session {session} with {peer} rejoined after {downtime:.1f} s"
)
ROTATION_ROUND = (
    "Rotation round {round}: {committed} committed, {rolled_back} rolled back; "
    "{sessions} sessions now"
)
FILE_STORED = (
    "Stored {name} ({bytes} bytes) from {peer} as {path} in {seconds:.2f} s "
    "({rate_mbps:.2f} MB/s), SHA-256 {digest}"
)
FILE_SENT = (
    "Sent {name} ({bytes} bytes) to {peer} in {seconds:.2f} s "
    "({rate_mbps:.2f} MB/s), SHA-256 {digest}"
)

THROTTLE_BURST = 10
THROTTLE_PERIOD = 60.0
PREAUTH_BURST = THROTTLE_BURST
PREAUTH_PERIOD = THROTTLE_PERIOD
LOGGED_NAME = 64
"""
Characters of a name a log line shows; a longer one is cut, and its
length said.
"""


class NamedLogger(Logger):
    """
    A logger that keeps the namespace it is given, also as a class
    attribute.  Twisted's L{Logger} names the events of a class attribute
    after the class (C{spc.session.session.Session}); spc's events are named
    after what they are about (L{NAMESPACES}), so an operator can select
    them by the names the README lists, whichever class logs them.
    """

    def __get__(self, instance: object, owner: type | None = None) -> NamedLogger:
        return self.__class__(
            self.namespace, owner if instance is None else instance, observer=self.observer
        )


def shortName(name: str) -> str:
    """
    A name from a peer as a log line shows it: without control characters,
    and cut to C{LOGGED_NAME} characters with its full length said, so a
    peer's 4 KiB names cannot fill the log.
    """
    cleaned = withoutControls(name)
    if len(cleaned) <= LOGGED_NAME:
        return cleaned
    return f"{cleaned[:LOGGED_NAME]}… ({len(cleaned)} characters)"


def shortID(session: bytes) -> str:
    """
    How logs name a session: enough of its id to tell sessions apart.
    """
    return session.hex()[:16]


def _as(namespace: str, log: Logger) -> Logger:
    """
    C{log}, the caller's logger, under the namespace of an event kind: the
    event keeps its source and goes where the caller's events go (a test
    that gives a class its own observer sees them).
    """
    return Logger(namespace=namespace, source=log.source, observer=log.observer)


def rate(size: int, seconds: float) -> float:
    """
    Megabytes (10**6 bytes) a second; 0.0 when no time could be measured,
    so the field stays a number in JSON.
    """
    return round(size / seconds / 1e6, 3) if seconds > 0 else 0.0


def handshakeAccepted(
    log: Logger,
    source: str, mode: str, channel: int, session: bytes, peer: str, peerName: str | None
) -> None:
    """
    The server admitted a connection: C{mode} is C{"NEW"} (it made the
    session) or C{"JOIN"}.
    """
    _as(HANDSHAKE, log).info(
        HANDSHAKE_ACCEPTED,
        source=source,
        mode=mode,
        channel=channel,
        session=shortID(session),
        peer=peer,
        peer_name=peerName,
    )


def sessionOpened(log: Logger, session, role: str) -> None:
    """
    C{session} (an L{spc.session.session.Session}) began; C{role} is this end's.
    """
    _as(SESSION, log).info(
        SESSION_OPENED, session=shortID(session.id), peer=session.peer, role=role
    )


def sessionClosed(log: Logger, session, role: str, now: float) -> None:
    """
    C{session} ended, for the reason it holds: the detail the exception
    carries (its class, in C{error}, says what kind of end it was).
    """
    error = session.closedReason.value
    _as(SESSION, log).info(
        SESSION_CLOSED,
        session=shortID(session.id),
        peer=session.peer,
        role=role,
        duration=round(now - session.started, 3),
        reason=withoutControls(", ".join(str(arg) for arg in error.args) or str(error)),
        error=type(error).__name__,
        rotations=session.rotationsCommitted,
        rollbacks=session.rotationsRolledBack,
    )


def channelDead(
    log: Logger, index: int, session: bytes, peer: str, source: str, reason: str,
    fault: bool,
) -> None:
    """
    A connection of a live session went away without this end closing it;
    C{fault} says this end cut it for a peer fault (the reason is then the
    fault).
    """
    _as(CHANNEL, log).warn(
        CHANNEL_DEAD,
        channel=index,
        session=shortID(session),
        peer=peer,
        source=source,
        reason=withoutControls(reason),
        fault=fault,
    )


def channelRejoined(log: Logger, session, index: int, downtime: float) -> None:
    """
    A channel that died carries data again.
    """
    _as(CHANNEL, log).info(
        CHANNEL_REJOINED,
        channel=index,
        session=shortID(session.id),
        peer=session.peer,
        downtime=round(downtime, 3),
    )


def rotationRound(log: Logger, number: int, committed: int, rolledBack: int, sessions: int) -> None:
    """
    How the previous server-wide rotation round ended.
    """
    _as(ROTATION, log).info(
        ROTATION_ROUND,
        round=number,
        committed=committed,
        rolled_back=rolledBack,
        sessions=sessions,
    )


def fileStored(
    log: Logger,
    name: str, size: int, peer: str, path: str, seconds: float, digest: bytes
) -> None:
    """
    The receiving end stored and verified a file; C{seconds} run from the
    offer to the verified file.
    """
    _as(TRANSFER, log).info(
        FILE_STORED,
        name=shortName(name),
        bytes=size,
        peer=peer,
        path=path,
        seconds=round(seconds, 3),
        rate_mbps=rate(size, seconds),
        digest=digest.hex(),
    )


def fileSent(
    log: Logger, name: str, size: int, peer: str, seconds: float, digest: bytes | None
) -> None:
    """
    The peer confirmed it stored and verified a file this end sent;
    C{digest} is L{None} when the peer already had the whole file and
    nothing was read.
    """
    _as(TRANSFER, log).info(
        FILE_SENT,
        name=shortName(name),
        bytes=size,
        peer=peer,
        seconds=round(seconds, 3),
        rate_mbps=rate(size, seconds),
        digest=digest.hex() if digest is not None else None,
    )


class ThrottledLog:
    """
    Lines that a peer can cause at will, written without letting it flood
    the log: each group of lines may write C{burst} of them, refilled at
    C{burst} per C{period} seconds.  What is held back is counted, and one
    warning, C{summary} with C{count}, C{seconds} and C{kinds} (the counts
    by group) and the C{fields} given here, sums it up C{period} seconds
    after the first line held back (or at L{flush}).

    @ivar suppressed: lines held back since the last summary, by group.
    """

    def __init__(
        self,
        clock: IReactorTime,
        log: Logger,
        summary: str,
        burst: int = THROTTLE_BURST,
        period: float = THROTTLE_PERIOD,
        **fields: object,
    ) -> None:
        self._clock = clock
        self._log = log
        self._format = summary
        self._fields = fields
        self._period = period
        self._buckets = TokenBuckets(clock, burst / period, burst)
        self.suppressed: Counter[str] = Counter()
        self._since = 0.0
        self._summary: IDelayedCall | None = None

    def emit(self, group: str, level: LogLevel, format: str, **fields: object) -> None:
        """
        Write one line of C{group}, or count it if the group wrote its
        share.
        """
        if self._buckets.admit(group):
            self._log.emit(level, format, **fields)
            return
        if not self.suppressed:
            self._since = self._clock.seconds()
            self._summary = self._clock.callLater(self._period, self.flush)
        self.suppressed[group] += 1

    def flush(self) -> None:
        """
        Write the summary of what was held back now, if anything was.
        """
        if self._summary is not None and self._summary.active():
            self._summary.cancel()
        self._summary = None
        if not self.suppressed:
            return
        counts, self.suppressed = dict(self.suppressed), Counter()
        self._log.warn(
            self._format,
            count=sum(counts.values()),
            seconds=self._clock.seconds() - self._since,
            kinds=counts,
            **self._fields,
        )


class PreAuthLog(ThrottledLog):
    """
    The failures of peers that have not authenticated, each kind of
    failure throttled on its own.
    """

    def __init__(
        self,
        clock: IReactorTime,
        log: Logger,
        burst: int = PREAUTH_BURST,
        period: float = PREAUTH_PERIOD,
    ) -> None:
        super().__init__(clock, _as(HANDSHAKE, log), PREAUTH_SUPPRESSED, burst, period)

    def refused(self, kind: str, source: str, reason: str, **fields: object) -> None:
        """
        A connection from C{source} failed before authentication, for
        C{reason}; C{kind} groups failures for the rate limit (C{"refused"},
        C{"timeout"}, C{"aborted"}, C{"busy"}, C{"tls"}).
        """
        self.emit(
            kind,
            LogLevel.info,
            HANDSHAKE_REFUSED,
            kind=kind,
            source=source,
            reason=withoutControls(reason),
            **fields,
        )
