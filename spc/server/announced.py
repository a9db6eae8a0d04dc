# -*- test-case-name: tests.unit.test_announced,tests.integration.test_connect -*-
"""
What a server tells each connection of its channels (amendment A19): every
channel's suite, and the port of every channel that a client can reach the
way it reached this connection, so that it can open them all from one
address.

A port is announced only where following it can work: a TCP listener of
the same kind as this connection (plain TCP, or TLS), listening on the
address this connection arrived at or on every address.  Any other channel
(a UNIX socket, a port of the other kind, an address this client may not
reach) is announced with L{NO_PORT}: a client skips it, and one that must
reach it gives every channel itself (C{--connect}).
"""

from __future__ import annotations

import ipaddress
from typing import Sequence

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IListeningPort, ISSLTransport

from spc.protocol.channelmap import NO_PORT, ChannelEntry
from spc.protocol.handshake import ChannelSpec

__all__ = ["AnnouncedChannels"]


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """
    An address as compared here: an IPv4 address mapped into IPv6 is the
    IPv4 address; a host that is no IP address is L{None}.
    """
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _reachable(listening: str, arrived: str) -> bool:
    """
    Whether a listener on C{listening} takes connections to C{arrived}.
    Twisted listens on both IPv4 and IPv6 for C{::}.
    """
    if listening in ("", "::"):
        return True
    listener, local = _ip(listening), _ip(arrived)
    if listener is None or local is None:
        return False
    if listener.is_unspecified:
        return listener.version == local.version
    return listener == local


class AnnouncedChannels:
    """
    The channel map of one server, filled in as its channels listen.

    @ivar _suites: each channel's suite id, in channel order.
    @ivar _tls: whether each channel listens with TLS.
    @ivar _listening: each channel's listening address once it listens
        over TCP, else L{None}.
    """

    def __init__(self, specs: Sequence[ChannelSpec], tls: Sequence[bool]) -> None:
        self._suites = [spec.suite.suiteID for spec in specs]
        self._tls = list(tls)
        self._listening: list[IPv4Address | IPv6Address | None] = [None] * len(specs)

    def listening(self, index: int, port: IListeningPort | None) -> None:
        """
        Channel C{index} listens on C{port} (L{None}: it could not).
        """
        address = port.getHost() if port is not None else None
        if isinstance(address, (IPv4Address, IPv6Address)) and address.type == "TCP":
            self._listening[index] = address

    def forConnection(self, transport) -> tuple[ChannelEntry, ...]:
        """
        The map to announce on a connection that arrived on C{transport}.
        """
        arrived = transport.getHost()
        tls = ISSLTransport.providedBy(transport)
        entries = []
        for suite, listenerTLS, address in zip(self._suites, self._tls, self._listening):
            port = NO_PORT
            if (
                address is not None
                and isinstance(arrived, (IPv4Address, IPv6Address))
                and listenerTLS == tls
                and _reachable(address.host, arrived.host)
            ):
                port = address.port
            entries.append(ChannelEntry(suite, port))
        return tuple(entries)
