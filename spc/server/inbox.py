# -*- test-case-name: tests.unit.test_inbox -*-
"""
The daemon's default receiver: what arrives is stored in an inbox directory.

A message is appended to C{INBOX/messages.jsonl} as one JSON object per
line (L{spc.files.journal}), and the line is fsynced before the sender is
told the message was delivered: a confirmed message survives a crash of
the daemon.
The log's name is reserved (L{spc.files.names.RESERVED_NAMES}): no received
file can take it, nor make a folder of it, at any depth.  Applications
that want something else implement L{spc.interfaces.IMessageReceiver}
themselves.
"""

from __future__ import annotations

import base64
import datetime
import os
from typing import Callable

from zope.interface import implementer

from spc.files.journal import Journal
from spc.files.names import MESSAGES_NAME
from spc.interfaces import IMessageReceiver
from spc.logs import events

__all__ = ["InboxReceiver", "messageRecord"]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def messageRecord(
    sender: str, data: bytes, received: datetime.datetime, senderName: str | None = None
) -> dict:
    """
    The JSON object stored for one message: text when it is UTF-8, base64
    otherwise, so every message can be stored whatever its bytes.

    @param senderName: the sender's name in C{authorized_keys}, stored as
        C{from_name} beside its fingerprint (C{null} when it has none), so
        that a reader need not look the fingerprint up.
    """
    record = {
        "from": sender,
        "from_name": senderName,
        "received": received.isoformat(timespec="milliseconds"),
        "bytes": len(data),
    }
    try:
        record["text"] = data.decode("utf-8")
    except UnicodeDecodeError:
        record["base64"] = base64.b64encode(data).decode("ascii")
    return record


@implementer(IMessageReceiver)
class InboxReceiver:
    """
    Stores messages in an inbox directory.

    @ivar directory: the inbox.
    """

    log = events.NamedLogger(events.MESSAGE)

    def __init__(
        self,
        directory: str,
        now: Callable[[], datetime.datetime] = _now,
        fileMode: int = 0o600,
    ) -> None:
        """
        @param fileMode: the permissions C{messages.jsonl} gets when it is
            made.
        """
        self.directory = directory
        self._now = now
        self._journal = Journal(directory, MESSAGES_NAME, self.log, fileMode)
        os.makedirs(directory, mode=0o700, exist_ok=True)

    @property
    def messagesPath(self) -> str:
        return self._journal.path

    def messageReceived(self, session, data: bytes, kind: int) -> None:
        """
        Append the message as one line and make it durable before
        returning (L{Journal.append}).

        @raise OSError: when the message could not be stored; the sender is
            then told it was not delivered.
        """
        record = messageRecord(
            session.peer, data, self._now(), getattr(session, "peerName", None)
        )
        self._journal.append(record)
        self.log.info(
            "Stored a message of {size} bytes from {peer}",
            size=len(data),
            peer=session.peer,
        )
