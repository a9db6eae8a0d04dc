# -*- test-case-name: tests.memory.test_session -*-
"""
The contracts between spc's layers: what an application implements to
receive from its peers (whole verified messages, and news of stored files),
and what the session's messenger asks of whatever it sends (a L{Source}).
Kept at the bottom so that each side depends on the contract, not on the
other: an application (or the daemon's inbox) on the interfaces rather
than on L{spc.session.session}, and the file sender
(L{spc.files.sending}) on L{Source} and L{YIELD} rather than on
L{spc.session.messenger}, a layer above it.
"""

from __future__ import annotations

from typing import Protocol

from zope.interface import Interface

__all__ = ["IFileReceiver", "IMessageReceiver", "Source", "YIELD"]

YIELD = object()
"""
What L{Source.nextRecord} answers when it worked long enough and wants
to be asked again on a later turn of the reactor.
"""


class IMessageReceiver(Interface):
    """
    What an application implements to receive messages.
    """

    def messageReceived(session, data, kind):
        """
        One whole message arrived, verified.

        @param session: the L{Session} it came on; C{session.peer} is the
            sender's identity fingerprint.
        @param data: the message bytes.
        @param kind: L{spc.protocol.records.KIND_TEXT} or L{spc.protocol.records.KIND_BINARY}.
        @return: C{None}, or a Deferred; the sender is told the message was
            delivered only when it fires, and that it was abandoned if it
            fails.
        """


class IFileReceiver(Interface):
    """
    Optional: what an application implements to hear of stored files.  The
    files themselves go to the L{spc.files.store.FileStore} the session was
    given; without one, offered files are refused.
    """

    def fileReceived(session, name, path, size):
        """
        A file arrived, verified, and is stored at C{path}.

        @param name: the sender's name for it (a relative path).
        """


class Source(Protocol):
    """
    Something with records to send, which the session's messenger asks for
    them only when a channel has room
    (L{spc.session.messenger.MultiChannelMessenger.addSource}): a message,
    a file or a folder.
    """

    def nextRecord(self):
        """
        @return: C{(key, record)}, or C{None} when it has nothing to send
            now, or L{YIELD} when it worked long enough and wants to be
            asked again on a later turn of the reactor.
        """
