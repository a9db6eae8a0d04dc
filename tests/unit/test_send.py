# -*- test-case-name: tests.unit.test_send -*-
"""
Tests for L{spc.client.send.clientEndpoints}: the endpoints C{spc send}
connects to, from its endpoint descriptions.
"""

from __future__ import annotations

from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, UNIXClientEndpoint
from twisted.internet.testing import MemoryReactor
from twisted.trial import unittest

from spc.client.send import clientEndpoints
from spc.errors import ConfigurationError


reactor = MemoryReactor()
"""
The reactor the endpoints are made for; none of them connects.
"""


class ClientEndpointsTests(unittest.SynchronousTestCase):
    """
    L{clientEndpoints} turns C{--server}/C{--ports} and C{--connect}
    descriptions into client endpoints.
    """

    def endpoint(self, description: str):
        (endpoint,) = clientEndpoints(reactor, [description])
        return endpoint

    def assertHostname(self, endpoint, host: str, port: int) -> None:
        self.assertIsInstance(endpoint, HostnameEndpoint)
        self.assertEqual((endpoint._hostText, endpoint._port), (host, port))

    def test_ipv4(self) -> None:
        """
        C{tcp:HOST:PORT} is resolved with L{HostnameEndpoint}.
        """
        self.assertHostname(self.endpoint("tcp:127.0.0.1:9000"), "127.0.0.1", 9000)

    def test_hostName(self) -> None:
        """
        A host name is kept for L{HostnameEndpoint} to resolve, to IPv6 or
        IPv4.
        """
        self.assertHostname(self.endpoint("tcp:example.com:9000"), "example.com", 9000)

    def test_ipv6(self) -> None:
        """
        C{tcp:[ADDRESS]:PORT} loses its brackets.
        """
        self.assertHostname(self.endpoint("tcp:[::1]:9000"), "::1", 9000)

    def test_keywords(self) -> None:
        """
        Any other description is an ordinary Twisted endpoint string.
        """
        endpoint = self.endpoint("tcp:host=example.com:port=9001:timeout=7")
        self.assertIsInstance(endpoint, TCP4ClientEndpoint)
        self.assertEqual(
            (endpoint._host, endpoint._port, endpoint._timeout), ("example.com", 9001, 7)
        )

    def test_extraArguments(self) -> None:
        """
        A positional C{tcp:} description with more arguments goes to
        Twisted's parser too.
        """
        endpoint = self.endpoint("tcp:example.com:9000:timeout=5")
        self.assertIsInstance(endpoint, TCP4ClientEndpoint)
        self.assertEqual((endpoint._host, endpoint._port), ("example.com", 9000))

    def test_unix(self) -> None:
        """
        A non-TCP endpoint, such as a UNIX socket, is accepted.
        """
        endpoint = self.endpoint("unix:path=/tmp/spc.sock")
        self.assertIsInstance(endpoint, UNIXClientEndpoint)
        self.assertEqual(endpoint._path, "/tmp/spc.sock")

    def test_order(self) -> None:
        """
        The endpoints keep the order of the descriptions: channel order.
        """
        endpoints = clientEndpoints(
            reactor, [f"tcp:127.0.0.1:{port}" for port in (9003, 9001, 9002)]
        )
        self.assertEqual([e._port for e in endpoints], [9003, 9001, 9002])

    def test_unknownType(self) -> None:
        """
        An endpoint kind spc does not know is refused with a
        L{ConfigurationError} naming the kinds it knows, before Twisted's
        parser (which would look for a plugin) sees it.
        """
        for description in ("bogus:host:9000", "tcp6:host:9000", " tcp:host:9000"):
            error = self.assertRaises(
                ConfigurationError, clientEndpoints, reactor, [description]
            )
            self.assertIn("tcp:, tls:, unix:", str(error))

    def test_escapedKinds(self) -> None:
        """
        A kind with a backslash escape, which Twisted's parser would read as
        C{ssl:} (its client checks no certificate) or as any other kind, is
        refused as written, in any case.
        """
        for description in (
            "s\\sl:example.com:443",
            "\\ssl:example.com:443",
            "S\\SL:example.com:443",
            "ss\\l:host=example.com:port=443",
            "t\\cp:example.com:9000",
        ):
            self.assertRaises(ConfigurationError, clientEndpoints, reactor, [description])
