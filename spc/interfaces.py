# -*- test-case-name: tests.memory.test_session -*-
"""
What an application implements to receive from its peers: whole verified
messages, and news of stored files.  Kept apart from L{spc.session.session} so an
application (or the daemon's inbox) depends on the interfaces, not on the
session's machinery.
"""

from __future__ import annotations

from zope.interface import Interface

__all__ = ["IFileReceiver", "IMessageReceiver"]


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
