# -*- test-case-name: tests.memory.test_channel -*-
"""
Who a connection reports to: the server's session directory or the
client's connector while its handshake runs, then the session it belongs
to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from spc.errors import SPCError
from spc.protocol.handshake import ClientResult, ServerResult

if TYPE_CHECKING:
    from spc.transport.channel import ChannelProtocol

__all__ = ["ChannelOwner", "HandshakeOwner"]


class ChannelOwner(Protocol):
    """
    Who a connection reports to: the server's session directory or the
    client's connector, then the session it belongs to.
    """

    def channelEstablished(
        self, channel: ChannelProtocol, result: ServerResult | ClientResult
    ) -> None:
        ...

    def channelFailed(self, channel: ChannelProtocol, error: SPCError) -> None:
        """
        The handshake failed (client side: with the error to report).
        """

    def recordReceived(self, channel: ChannelProtocol, epoch: int, record: object) -> None:
        ...

    def channelLost(self, channel: ChannelProtocol, reason: str) -> None:
        ...

    def channelWritable(self, channel: ChannelProtocol) -> None:
        """
        The connection's send buffer drained: it can take more data.
        """

    def malformedRecord(self, channel: ChannelProtocol, reason: str) -> None:
        """
        An authenticated record does not parse: the peer itself, not the
        network, broke the protocol.
        """

    def keyWornOut(self, channel: ChannelProtocol) -> None:
        """
        The connection's send key passed its soft volume limit.
        """

    def epochAhead(self, channel: ChannelProtocol) -> None:
        """
        The peer sent under an epoch this end does not hold.
        """

    def handshakeRefused(
        self, channel: ChannelProtocol, kind: str, reason: str, alert: int | None
    ) -> None:
        """
        The server ended a connection before the peer authenticated: log
        it, rate-limited (kinds as L{spc.logs.events.PreAuthLog.refused}).
        """


class HandshakeOwner:
    """
    What owns a connection until its handshake ends: no record can reach it
    yet, so the events that only a session hears are refused or ignored
    here once, for the server's directory and the client's connector alike.
    """

    def recordReceived(self, channel: ChannelProtocol, epoch: int, record: object) -> None:
        raise RuntimeError("a record reached a connection without a session")

    def malformedRecord(self, channel: ChannelProtocol, reason: str) -> None:
        raise RuntimeError("a record reached a connection without a session")

    def channelWritable(self, channel: ChannelProtocol) -> None:
        pass

    def handshakeRefused(
        self, channel: ChannelProtocol, kind: str, reason: str, alert: int | None
    ) -> None:
        pass

    def keyWornOut(self, channel: ChannelProtocol) -> None:
        pass

    def epochAhead(self, channel: ChannelProtocol) -> None:
        pass
