# -*- test-case-name: tests.unit.test_epochkeys -*-
"""
A session's epoch secrets, and the one place that gives them to its
connections.

Key rotation (L{spc.protocol.rotation}) decides which epochs a session
holds; an L{EpochKeys} holds them: each epoch's secret, the epoch this end
sends under and the one it accepts but does not send under yet.  Every
install, switch and drop reaches every connection of the session at once,
joined connections not yet admitted included (PROTOCOL section 4.3), and a
connection that attaches later gets every epoch the session holds above
its own, so no connection lags behind the session's keys.

The rotation machines read the secrets here, where they put them; the
heartbeats read the committed and pending epochs they report (section 9),
and a client's joins the epochs a server may announce (section 8.5).
"""

from __future__ import annotations

from typing import Callable, Iterable, Protocol

__all__ = ["EpochKeys", "KeyedConnection"]


class KeyedConnection(Protocol):
    """
    A connection as the epoch keys see it: L{spc.transport.channel.ChannelProtocol}.
    """

    records: object

    def activate(self, epoch: int, epochSecret: bytes) -> None:
        """
        Make the connection's record layer, with the keys of C{epoch}.
        """


class EpochKeys:
    """
    The epochs of one session.

    @ivar committed: the epoch this end sends under.
    @ivar pending: an epoch installed above the committed one and neither
        switched to nor dropped since (the client's acknowledged offer, until
        its commit or abort), or L{None}.
    """

    def __init__(
        self,
        epoch: int,
        secret: bytes,
        connections: Callable[[], Iterable[KeyedConnection]],
    ) -> None:
        """
        @param epoch: the epoch the session starts under, and its secret.
        @param connections: the session's connections that are not dead,
            asked anew at every change.
        """
        self.committed = epoch
        self.pending: int | None = None
        self._secrets = {epoch: secret}
        self._connections = connections

    def secret(self, epoch: int) -> bytes | None:
        """
        The secret of an epoch the session still holds, or L{None}.
        """
        return self._secrets.get(epoch)

    def held(self) -> frozenset[int]:
        """
        Every epoch the session holds: the committed one, the previous one
        during an overlap, the pending one.
        """
        return frozenset(self._secrets)

    def activate(self, connection: KeyedConnection, epoch: int) -> None:
        """
        Give a connection whose handshake named C{epoch} its record layer,
        and the keys of every later epoch the session holds already (the
        pending one of a client, the new one of a server in its overlap).

        @raise KeyError: if the session does not hold C{epoch}.
        """
        connection.activate(epoch, self._secrets[epoch])
        for later, secret in self._secrets.items():
            if later > epoch:
                connection.records.installEpoch(later, secret)

    def install(self, epoch: int, secret: bytes) -> None:
        """
        Keep C{secret}; every connection derives its keys for C{epoch} and
        accepts its frames.  An epoch above the committed one is pending
        until it is switched to or dropped.
        """
        self._secrets[epoch] = secret
        if epoch > self.committed:
            self.pending = epoch
        for connection in self._connections():
            connection.records.installEpoch(epoch, secret)

    def switch(self, epoch: int) -> None:
        """
        C{epoch} is committed: every connection seals its next records under
        it.
        """
        self.committed = epoch
        if self.pending is not None and self.pending <= epoch:
            self.pending = None
        for connection in self._connections():
            connection.records.switchSendEpoch(epoch)

    def drop(self, epoch: int) -> None:
        """
        Forget C{epoch}'s secret, and have every connection forget its keys.
        """
        self._secrets.pop(epoch, None)
        if epoch == self.pending:
            self.pending = None
        for connection in self._connections():
            connection.records.dropEpoch(epoch)

    def clear(self) -> None:
        """
        The session ended: forget every secret.
        """
        self._secrets.clear()
