# -*- test-case-name: tests.unit.test_status,tests.integration.test_status -*-
"""
C{spc status}: what a running daemon is doing, read over its control
socket, as a table for people or one JSON document for scripts: its
sessions, their channels and files in progress, and the unfinished files
it holds.
"""

from __future__ import annotations

import errno
import json

from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.internet.defer import TimeoutError
from twisted.internet.error import ConnectError, ConnectionClosed
from twisted.protocols import amp
from twisted.python import usage
from twisted.python.failure import Failure

from spc.cli.command import EXIT_OK, Context, KeyDirMixin, ReactorCommand
from spc.cli.options import checkSocketPath, defaultControlSocket
from spc.cli.units import formatSize
from spc.errors import ConfigurationError, DaemonNotRunning, StatusUnavailable
from spc.status.control import fetchStatus
from spc.status.snapshot import SessionStatus, Snapshot
from spc.status.unfinished import UnfinishedStatus
from spc.text import withoutControls

__all__ = ["ControlCommand", "StatusOptions", "formatJSON", "formatTable"]

STATUS_TIMEOUT = 10.0
"""
Seconds to wait for the daemon's whole answer.
"""
MAX_UNFINISHED_SHOWN = 50
SHOWN_ID = 12
"""
Hex digits of an unfinished file's id the table shows: more than the 8
C{spc discard} needs, so that one of them names the file.
"""


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if days:
        return f"{days}d{hours:02}h"
    if hours:
        return f"{hours}h{minutes:02}m"
    if minutes:
        return f"{minutes}m{seconds:02}s"
    return f"{seconds}s"


def _rows(rows: list[list[str]], indent: str = "") -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        indent + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
        for row in rows
    ]


def _session(status: SessionStatus) -> list[str]:
    who = f"{status.name} ({status.peer})" if status.name else status.peer
    lines = [
        f"session {status.session}  {who}  age {_duration(status.age)}  epoch {status.epoch}"
    ]
    rows = [["CHANNEL", "SUITE", "EPOCH", "RTT ms", "IN", "OUT"]]
    for channel in status.channels:
        rtt = "-" if channel.rtt is None else f"{channel.rtt * 1000:.1f}"
        rows.append([
            str(channel.index), channel.suite, str(channel.epoch), rtt,
            formatSize(channel.received), formatSize(channel.sent),
        ])
    lines += _rows(rows, "  ") if status.channels else ["  no live channel"]
    if status.transfers:
        rows = [["FILE", "DIRECTION", "DONE", "SIZE"]]
        for transfer in status.transfers:
            rows.append([
                transfer.name, transfer.direction,
                f"{transfer.percent:.0f}%", formatSize(transfer.size),
            ])
        lines += _rows(rows, "  ")
    if status.transfersOmitted:
        lines.append(f"  and {status.transfersOmitted} more files")
    return lines


def _unfinished(entries: list[UnfinishedStatus]) -> list[str]:
    """
    The unfinished files, oldest first, at most L{MAX_UNFINISHED_SHOWN}:
    each with the first digits of its id, which C{spc discard} takes.
    """
    plural = "" if len(entries) == 1 else "s"
    lines = [
        f"{len(entries)} unfinished file{plural} (kept a day after the last write; "
        "spc discard ID removes one)"
    ]
    rows = [["ID", "FROM", "FILE", "HELD", "SIZE", "AGE", "NOW"]]
    for entry in sorted(entries, key=lambda e: -e.age)[:MAX_UNFINISHED_SHOWN]:
        rows.append([
            entry.id[:SHOWN_ID], entry.ownerName or entry.owner or "-", entry.name,
            formatSize(entry.held), formatSize(entry.size), _duration(entry.age),
            "receiving" if entry.receiving else "-",
        ])
    lines += _rows(rows, "  ")
    if len(entries) > MAX_UNFINISHED_SHOWN:
        more = len(entries) - MAX_UNFINISHED_SHOWN
        lines.append(f"  and {more} more (spc status --json lists them all)")
    return lines


def formatTable(snapshot: Snapshot) -> str:
    """
    The daemon, then each session (oldest first) with its channels and
    files in progress, then the unfinished files it holds.
    """
    daemon = snapshot.daemon
    plural = "" if daemon.sessions == 1 else "s"
    lines = [
        f"spc daemon {daemon.fingerprint}, up {_duration(daemon.uptime)}, "
        f"{daemon.channels} channels, {daemon.sessions} session{plural}, "
        f"{daemon.pendingHandshakes} handshakes pending"
    ]
    for status in sorted(snapshot.sessions, key=lambda s: -s.age):
        lines.append("")
        lines += _session(status)
    if snapshot.unfinished:
        lines.append("")
        lines += _unfinished(snapshot.unfinished)
    return "\n".join(lines) + "\n"


def formatJSON(snapshot: Snapshot) -> str:
    """
    One JSON document: C{{"daemon": {...}, "sessions": [...]}}, with the
    field names of L{spc.status.snapshot}; times in seconds, sizes in bytes.  Text
    beyond ASCII is escaped, so that no character the daemon let through
    (a C1 control such as U+009B among them) reaches the terminal raw.
    """
    return json.dumps(snapshot.asDict(), indent=2, ensure_ascii=True) + "\n"


def unreadable(failure: Failure) -> StatusUnavailable:
    """
    What went wrong once the control socket was open, in words: a daemon
    that stops or breaks mid-answer must end C{spc status} with one line,
    not a traceback.

    @param failure: a L{ConnectionClosed} or an L{amp.AmpError}.
    """
    error = failure.value
    if isinstance(error, ConnectionClosed):
        return StatusUnavailable("the daemon closed the connection before it answered")
    if isinstance(error, amp.RemoteAmpError):
        description = withoutControls(str(error.description))
        return StatusUnavailable(f"the daemon answered with an error: {description}")
    if isinstance(error, amp.TooLong):
        return StatusUnavailable("the daemon sent a field longer than AMP allows")
    return StatusUnavailable(f"the control protocol failed: {type(error).__name__}")


class ControlCommand(KeyDirMixin, ReactorCommand):
    """
    A command that talks to a running daemon over its control socket:
    C{--key-dir} or C{--socket} find it.
    """

    optParameters = [
        ["socket", None, None, "The daemon's control socket [default: KEYDIR/control.sock]."],
    ]

    def postOptions(self) -> None:
        if self["socket"] is not None and self["key-dir"] is not None:
            raise usage.UsageError("give --key-dir or --socket, not both")
        if self["socket"] is not None:
            try:
                self["socket"] = checkSocketPath(self["socket"], "--socket")
            except ConfigurationError as error:
                raise usage.UsageError(error.args[0]) from None

    def socketPath(self, context: Context) -> str:
        path = self["socket"] or defaultControlSocket(self.keyDir(context))
        return checkSocketPath(path, "--socket")

    def endpoint(self, reactor, context: Context) -> UNIXClientEndpoint:
        return UNIXClientEndpoint(reactor, self.socketPath(context), timeout=STATUS_TIMEOUT)

    def failed(self, failure: Failure, context: Context):
        """
        Why talking to the daemon failed, in words.

        @raise StatusUnavailable: when it broke off, erred or said nothing.
        @raise DaemonNotRunning: when nothing listens on the socket.
        """
        error = failure.trap(ConnectError, TimeoutError, ConnectionClosed, amp.AmpError)
        if error is TimeoutError:
            raise StatusUnavailable(f"no answer within {STATUS_TIMEOUT:g} seconds")
        if error is not ConnectError:
            raise unreadable(failure)
        if failure.value.osError in (errno.ENOENT, errno.ECONNREFUSED):
            raise DaemonNotRunning(self.socketPath(context))
        return failure


class StatusOptions(ControlCommand):
    """
    C{spc status}: sessions, channels and transfers of a running daemon,
    and the unfinished files it holds.
    """

    synopsis = "[--key-dir DIR | --socket PATH] [--json]"
    optFlags = [["json", None, "Print one JSON document instead of a table."]]

    def runWithReactor(self, reactor, context: Context):
        fetching = fetchStatus(self.endpoint(reactor, context))
        fetching.addTimeout(STATUS_TIMEOUT, reactor)

        def show(snapshot: Snapshot) -> int:
            text = formatJSON(snapshot) if self["json"] else formatTable(snapshot)
            context.stdout.write(text)
            return EXIT_OK

        return fetching.addCallbacks(show, self.failed, errbackArgs=(context,))
