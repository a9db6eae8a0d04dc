"""
Tests for L{spc.server.announced}: what each connection is told of the
server's channels (amendment A19), by the kind of its transport and the
address it arrived at.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.interfaces import ISSLTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from spc.crypto.suites import A256CBC_HS512, AES256_GCM, CHACHA20_POLY1305
from spc.protocol.channelmap import NO_PORT, ChannelEntry
from spc.protocol.handshake import channelSpecs
from spc.server.announced import AnnouncedChannels

CBC, CHACHA, GCM = (s.suiteID for s in (A256CBC_HS512, CHACHA20_POLY1305, AES256_GCM))


class FakePort:
    def __init__(self, address) -> None:
        self._address = address

    def getHost(self):
        return self._address


class FakeTransport:
    def __init__(self, address) -> None:
        self._address = address

    def getHost(self):
        return self._address


@implementer(ISSLTransport)
class FakeTLSTransport(FakeTransport):
    def getPeerCertificate(self):
        return None


def announced(*listeners, tlsChannels=()):
    """
    L{AnnouncedChannels} for one channel per listening address in
    C{listeners} (L{None}: it did not listen), with the default suites.
    """
    channels = AnnouncedChannels(
        channelSpecs(len(listeners)), [i in tlsChannels for i in range(len(listeners))]
    )
    for index, address in enumerate(listeners):
        channels.listening(index, None if address is None else FakePort(address))
    return channels


def tcp(host: str, port: int):
    return (IPv6Address if ":" in host else IPv4Address)("TCP", host, port)


class AnnouncedChannelsTests(SynchronousTestCase):
    """
    Which ports a connection is told: those it can reach the way it came.
    """

    def test_sameAddress(self) -> None:
        """
        Every channel listening on the address a connection arrived at is
        announced with its port, with every channel's suite.
        """
        channels = announced(*(tcp("127.0.0.1", 9000 + i) for i in range(4)))
        self.assertEqual(
            channels.forConnection(FakeTransport(tcp("127.0.0.1", 9000))),
            (ChannelEntry(CBC, 9000), ChannelEntry(CHACHA, 9001),
             ChannelEntry(CBC, 9002), ChannelEntry(CHACHA, 9003)),
        )

    def test_everyAddress(self) -> None:
        """
        A listener on every IPv4 address is reachable at any IPv4 address
        (an IPv4 address mapped into IPv6 included) but not at an IPv6 one;
        one on C{::} at any address.
        """
        channels = announced(tcp("0.0.0.0", 9000), tcp("::", 9001))
        for arrived, ports in [
            (tcp("10.1.2.3", 9000), [9000, 9001]),
            (tcp("::ffff:10.1.2.3", 9001), [9000, 9001]),
            (tcp("fe80::1", 9001), [NO_PORT, 9001]),
        ]:
            entries = channels.forConnection(FakeTransport(arrived))
            self.assertEqual([entry.port for entry in entries], ports, arrived)

    def test_otherAddress(self) -> None:
        """
        A channel that listens on another address than the connection
        reached, or not over TCP, or did not listen, is announced without
        a port, with its suite.
        """
        channels = announced(
            tcp("127.0.0.1", 9000), tcp("127.0.0.2", 9001), UNIXAddress("/tmp/s"), None
        )
        entries = channels.forConnection(FakeTransport(tcp("127.0.0.1", 9000)))
        self.assertEqual([entry.port for entry in entries], [9000, NO_PORT, NO_PORT, NO_PORT])
        self.assertEqual([entry.suite for entry in entries], [CBC, CHACHA, CBC, CHACHA])

    def test_sameKind(self) -> None:
        """
        A connection over TLS is told the TLS ports, a plain one the plain
        ports.
        """
        channels = announced(
            tcp("127.0.0.1", 9443), tcp("127.0.0.1", 9000), tcp("127.0.0.1", 9444),
            tlsChannels=(0, 2),
        )
        overTLS = channels.forConnection(FakeTLSTransport(tcp("127.0.0.1", 9443)))
        self.assertEqual([entry.port for entry in overTLS], [9443, NO_PORT, 9444])
        plain = channels.forConnection(FakeTransport(tcp("127.0.0.1", 9000)))
        self.assertEqual([entry.port for entry in plain], [NO_PORT, 9000, NO_PORT])

    def test_unixConnection(self) -> None:
        """
        A connection over a UNIX socket is told no port at all.
        """
        channels = announced(tcp("0.0.0.0", 9000))
        entries = channels.forConnection(FakeTransport(UNIXAddress("/tmp/s")))
        self.assertEqual(entries, (ChannelEntry(CBC, NO_PORT),))
