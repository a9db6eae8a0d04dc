# -*- test-case-name: tests.memory.test_session -*-
"""
The contracts between spc's layers: what an application implements to
receive from its peers (whole verified messages, and news of stored files),
and what the session's messenger asks of whatever it sends (a L{Source},
and of a file or folder, a L{Sender}).  Kept at the bottom so that each
side depends on the contract, not on the other: an application (or the
daemon's inbox) on the interfaces rather than on L{spc.session.session},
and the file sender (L{spc.files.sending}) on L{Sender} and L{WAIT}
rather than on L{spc.session.messenger}, a layer above it, which it
never calls: it answers what it is asked, and says when it has records
again through the one callable it is given.
"""

from __future__ import annotations

from typing import Callable, Hashable, Iterable, Protocol

from zope.interface import Interface

__all__ = ["FragmentSink", "IFileReceiver", "IMessageReceiver", "Sender", "Source", "WAIT"]

WAIT = object()
"""
What L{Source.nextRecord} answers when its next records are being made
(read from disk, in a worker lane): the messenger stops asking it until
it says it is ready again.
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
        @return: C{(key, record)}; or C{None} when it has nothing more to
            send until the peer answers; or L{WAIT} when its next records
            are being made and it will say when they are there.
        """


class Sender(Source, Protocol):
    """
    A file or a folder on its way out, which the messenger starts when the
    peer's limits allow it and tells what the peer answers.

    @ivar transferID: its transfer id, known once it started; a restarted
        file goes on under a new one.
    @ivar deferred: fires with the peer's verdict.
    @ivar done: whether it is over (delivered, failed or cut off): the
        messenger forgets it and everything it kept of it.
    @ivar size: the bytes of data it has to send, once it started.
    """

    transferID: bytes | None
    done: bool
    size: int

    def start(self, ready: Callable[[], None]) -> None:
        """
        Begin (a file opens now, and may be done at once if it cannot);
        C{ready} is to be called whenever it answered L{WAIT} and has
        records again, or ended meanwhile.
        """

    def ackReceived(self, ack) -> Iterable[Hashable]:
        """
        The peer's C{FAK:} about it.

        @return: the keys of the records the answer acknowledges.
        """

    def sessionEnded(self, reason) -> None:
        """
        The session ended first: fail with C{reason}.
        """


class FragmentSink(Protocol):
    """
    The session, as its messenger sees it
    (L{spc.session.channels.ChannelSet}).
    """

    def writableChannel(self):
        """
        @return: a live channel whose transport can take data now, or
            C{None}.
        """

    def sendOn(self, channel, record: bytes) -> None:
        """
        Seal and send C{record} on C{channel}.
        """

    def sendControl(self, record: bytes) -> None:
        """
        Send a small control record on any live channel.
        """
