# -*- test-case-name: tests.test_inbox -*-
"""
The daemon's default receiver: what arrives is stored in an inbox directory.

A message is appended to C{INBOX/messages.jsonl} as one JSON object per
line, and the line is flushed and fsynced before the sender is told the
message was delivered: a confirmed message survives a crash of the daemon.
The log's name is reserved (L{spc.files.names.RESERVED_NAMES}): no received
file can take it, nor make a folder of it, at any depth.  Applications
that want something else implement L{spc.interfaces.IMessageReceiver}
themselves.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
from typing import Callable

from zope.interface import implementer

from spc.files.names import MESSAGES_NAME
from spc.interfaces import IMessageReceiver
from spc.keys.keyfiles import fsyncDirectory
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
        self, directory: str, now: Callable[[], datetime.datetime] = _now
    ) -> None:
        self.directory = directory
        self._now = now
        os.makedirs(directory, mode=0o700, exist_ok=True)

    @property
    def messagesPath(self) -> str:
        return os.path.join(self.directory, MESSAGES_NAME)

    def messageReceived(self, session, data: bytes, kind: int) -> None:
        """
        Append the message as one line and make it durable before
        returning: the file is fsynced, and so is the inbox when the line
        is the log's first (the log's own entry in the inbox must survive a
        crash too).  A line that could not be written and fsynced whole is
        cut off again, so the next confirmed message starts on a line of
        its own instead of being glued to a torn one.

        @raise OSError: when the message could not be stored; the sender is
            then told it was not delivered.
        """
        record = messageRecord(
            session.peer, data, self._now(), getattr(session, "peerName", None)
        )
        line = json.dumps(record, ensure_ascii=False)
        payload = (line + "\n").encode("utf-8")
        descriptor = os.open(
            self.messagesPath,
            os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
        )
        try:
            start = os.fstat(descriptor).st_size
            try:
                written = 0
                while written < len(payload):
                    written += os.write(descriptor, payload[written:])
                os.fsync(descriptor)
            except BaseException:
                self._cutBack(descriptor, start)
                raise
        finally:
            os.close(descriptor)
        if start == 0:
            fsyncDirectory(self.directory)
        self.log.info(
            "Stored a message of {size} bytes from {peer}",
            size=len(data),
            peer=session.peer,
        )

    def _cutBack(self, descriptor: int, size: int) -> None:
        """
        Remove what a failed append left after C{size} bytes; a failure to
        do so is logged, and the append's own error is what the caller
        sees.
        """
        try:
            os.ftruncate(descriptor, size)
            os.fsync(descriptor)
        except OSError as error:
            self.log.error(
                "Could not remove a torn line from {path}: {error}",
                path=self.messagesPath,
                error=str(error),
            )
