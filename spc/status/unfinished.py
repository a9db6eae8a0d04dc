# -*- test-case-name: tests.memory.test_unfinished -*-
"""
The daemon's unfinished files over its control socket: listed with its
sessions (L{GetUnfinished}, read like every other command) and removed one
at a time (L{DiscardUnfinished}, C{spc discard}).

L{DiscardUnfinished} is a write command (the control socket's other one
opens pairing invites): it deletes what a sender has sent.  It is kept
apart from the reads, in its own command, and answers only the daemon's
own user (and root): the socket's mode (0600) says so already, and on
Linux the caller's user is checked too (C{SO_PEERCRED}, L{isDaemonUser}),
so a socket given wider permissions by mistake still lets nobody else
remove files.
"""

from __future__ import annotations

import json
import os
import socket
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import connectProtocol
from twisted.protocols import amp

from spc.errors import DiscardRefused, StatusUnavailable
from spc.files.unfinished import Unfinished
from spc.text import withoutControls

if TYPE_CHECKING:
    from spc.status.snapshot import StatusSource

__all__ = [
    "DiscardUnfinished",
    "GetUnfinished",
    "MIN_ID",
    "UnfinishedCommands",
    "UnfinishedStatus",
    "discardUnfinished",
    "fetchUnfinished",
    "unfinishedStatuses",
]

MIN_ID = 8
"""
The fewest hex digits of an id L{DiscardUnfinished} takes: enough that a
typo names no other file by chance.
"""
MAX_NAME = 200
MAX_PAGES = 1024


@dataclass(frozen=True)
class UnfinishedStatus:
    """
    One unfinished file, as C{spc status} shows it.

    @ivar id: its key in the daemon's store, 40 hex digits; any unique
        prefix of 8 or more names it to C{spc discard}.
    @ivar owner: its sender's identity fingerprint.
    @ivar ownerName: the sender's name in C{authorized_keys}, or L{None}.
    @ivar name: the sender's name for it, without control characters and
        cut to 200 characters.
    @ivar size: the size the sender declared, in bytes.
    @ivar held: the bytes held (written and fsynced), which a resume skips.
    @ivar age: seconds since it was last written.
    @ivar receiving: whether a session is receiving it now.
    """

    id: str
    owner: str
    ownerName: str | None
    name: str
    size: int
    held: int
    age: float
    receiving: bool


def _shown(text: str | None) -> str | None:
    if text is None:
        return None
    text = withoutControls(text)
    return text if len(text) <= MAX_NAME else text[: MAX_NAME - 1] + "…"


def _status(entry: Unfinished, nameOf) -> UnfinishedStatus:
    return UnfinishedStatus(
        entry.key, entry.owner, _shown(nameOf(entry.owner) if entry.owner else None),
        _shown(entry.name) or "", entry.size, entry.held, round(entry.age, 3), entry.receiving,
    )


def unfinishedStatuses(directory, after: str = "") -> Iterable[UnfinishedStatus]:
    """
    The unfinished files of the daemon behind C{directory} (a
    L{spc.server.directory.SessionDirectory}) whose ids sort after
    C{after}, in order of id; none for a daemon that keeps no files.
    """
    files = getattr(directory, "files", None)
    if files is None:
        return
    nameOf = directory.authorizer.nameOf
    for entry in files.unfinished(after):
        yield _status(entry, nameOf)


class GetUnfinished(amp.Command):
    """
    One page of unfinished files: those whose id sorts after C{after}, as
    a JSON list of L{UnfinishedStatus} records, and whether more follow.
    """

    arguments = [(b"after", amp.Unicode())]
    response = [(b"page", amp.String()), (b"more", amp.Boolean())]


class DiscardUnfinished(amp.Command):
    """
    Write: delete the unfinished file whose id starts with C{id}, stopping
    the session that receives it, if one does.  The answer is what it was.
    """

    arguments = [(b"id", amp.Unicode())]
    response = [
        (b"id", amp.Unicode()),
        (b"owner", amp.Unicode()),
        (b"ownerName", amp.Unicode(optional=True)),
        (b"name", amp.Unicode()),
        (b"held", amp.Integer()),
    ]
    errors = {DiscardRefused: b"DISCARD_REFUSED"}


def callerUID(transport) -> int | None:
    """
    The user of the process at the other end of a UNIX socket, where the
    platform tells (Linux: C{SO_PEERCRED}); L{None} elsewhere.
    """
    option = getattr(socket, "SO_PEERCRED", None)
    handle = getattr(transport, "getHandle", lambda: None)()
    if option is None or not isinstance(handle, socket.socket):
        return None
    try:
        credentials = handle.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    except OSError:
        return None
    return struct.unpack("3i", credentials)[1]


def isDaemonUser(transport) -> bool:
    """
    Whether the caller on a control connection may change the daemon: it
    runs as the daemon's own user or as root, or the platform does not
    tell (then the socket's mode is the only guard).
    """
    return callerUID(transport) in (None, 0, os.geteuid())


class UnfinishedCommands(amp.CommandLocator):
    """
    The control protocol's write command, apart from its reads
    (L{spc.status.control.ControlProtocol} has both); its C{_source} is the
    daemon's L{StatusSource}, its C{transport} the control connection.
    """

    _source: StatusSource
    transport: object

    @DiscardUnfinished.responder
    def discardUnfinished(self, id: str) -> dict:
        """
        @raise DiscardRefused: for a caller that is not the daemon's user
            or root, an id that names no file or several, or a file that
            is complete and being verified.
        """
        if not isDaemonUser(self.transport):
            raise DiscardRefused("only the daemon's own user may remove files")
        files = getattr(self._source.directory, "files", None)
        wanted = id.strip().lower()
        if len(wanted) < MIN_ID or any(digit not in "0123456789abcdef" for digit in wanted):
            raise DiscardRefused(f"{id!r} is not an id of {MIN_ID} or more hex digits")
        keys = [] if files is None else [
            entry.key for entry in files.unfinished() if entry.key.startswith(wanted)
        ]
        if len(keys) != 1:
            many = f"names {len(keys)} files; give more of it" if keys else "names no file"
            raise DiscardRefused(f"{wanted} {many}")
        try:
            entry = files.discardUnfinished(keys[0])
        except KeyError:
            raise DiscardRefused(f"{wanted} names no file") from None
        except Exception as error:
            raise DiscardRefused(f"{wanted}: {error}") from None
        status = _status(entry, self._source.directory.authorizer.nameOf)
        return {
            "id": status.id, "owner": status.owner, "ownerName": status.ownerName,
            "name": status.name, "held": status.held,
        }


@inlineCallbacks
def fetchUnfinished(client: amp.AMP):
    """
    Every unfinished file, page by page, over a connected control client.

    @raise StatusUnavailable: when an answer is not what this version
        expects.
    """
    found: list[UnfinishedStatus] = []
    after = ""
    for _ in range(MAX_PAGES):
        answer = yield client.callRemote(GetUnfinished, after=after)
        try:
            page = [UnfinishedStatus(**item) for item in json.loads(answer["page"])]
        except (ValueError, KeyError, TypeError) as error:
            raise StatusUnavailable(str(error)) from None
        found.extend(page)
        if not answer["more"] or not page:
            break
        after = page[-1].id
    return found


@inlineCallbacks
def discardUnfinished(endpoint, id: str):
    """
    Ask the daemon behind C{endpoint} to remove the unfinished file C{id}.

    @return: a Deferred firing with the L{DiscardUnfinished} answer.
    @raise DiscardRefused: with the daemon's reason, without control
        characters.
    """
    client = yield connectProtocol(endpoint, amp.AMP())
    try:
        answer = yield client.callRemote(DiscardUnfinished, id=id)
    except DiscardRefused as error:
        # The daemon's sentence already starts with this error's own.
        detail = str(error.args[0]) if error.args else ""
        detail = detail.removeprefix(str(DiscardRefused())).strip()
        raise DiscardRefused(withoutControls(detail)) from None
    finally:
        client.transport.loseConnection()
    return answer
