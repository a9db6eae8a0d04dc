# -*- test-case-name: tests.unit.test_metrics -*-
"""
Tests for L{spc.status.metrics}: the Prometheus figures from a snapshot, the page
that serves them, and the warning when other hosts may reach it.
"""

from __future__ import annotations

import importlib.util

from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Site
from twisted.web.test.requesthelper import DummyRequest

from spc.status.services import reachableFromOtherHosts, statusServices
from spc.status.snapshot import StatusSource
from tests.fakes import FakeChannel, FakeDirectory, FakeSession, clockAt
from tests.unit.test_tap import makeOptions

from spc.status.metrics import metricsFactory

if importlib.util.find_spec("prometheus_client") is None:
    skip = "prometheus_client is not installed"


reactor = MemoryReactor()
"""
The reactor the status services are made for; none of them starts.
"""


def makeSource() -> StatusSource:
    """
    A daemon with one named session of two channels and three incoming
    files.
    """
    session = FakeSession(1, 3, "secret-plans.pdf")
    session.channels = {index: FakeChannel(index) for index in range(2)}
    session.roundTrip = lambda channel: 0.004
    return StatusSource(FakeDirectory([session], {session.peer: "alice"}), clockAt(60.0), "h")


def scrape(site: Site) -> str:
    request = DummyRequest([b"metrics"])
    body = site.resource.render_GET(request)
    return body.decode()


class CollectorTests(SynchronousTestCase):
    """
    The figures of C{spc status}, as Prometheus text.
    """

    def test_figures(self) -> None:
        """
        Sessions, channels and transfers appear with their labels; file
        names do not.
        """
        text = scrape(metricsFactory(makeSource()))
        self.assertIn("spc_sessions 1.0", text)
        self.assertIn("spc_pending_handshakes 2.0", text)
        self.assertIn(
            'spc_session_age_seconds{name="alice",peer="SHA256:peer1",'
            'session="0000000000000001"} 60.0',
            text,
        )
        self.assertIn(
            'spc_channel_rtt_seconds{channel="1",peer="SHA256:peer1",'
            'session="0000000000000001",suite="A256CBC-HS512"} 0.004',
            text,
        )
        self.assertIn("spc_channel_sent_bytes_total{", text)
        self.assertIn(
            'spc_transfers{direction="in",peer="SHA256:peer1",session="0000000000000001"} 3.0',
            text,
        )
        self.assertIn(
            'spc_transfer_done_bytes{direction="in",peer="SHA256:peer1",'
            'session="0000000000000001"} 150.0',
            text,
        )
        self.assertNotIn("secret-plans", text)

    def test_contentType(self) -> None:
        """
        The page says it is Prometheus text.
        """
        site = metricsFactory(makeSource())
        request = DummyRequest([b"metrics"])
        site.resource.render_GET(request)
        [contentType] = request.responseHeaders.getRawHeaders(b"content-type")
        self.assertTrue(contentType.startswith(b"text/plain"))


class ExposureTests(SynchronousTestCase):
    """
    A C{--metrics} endpoint that other hosts may reach is warned about:
    the page has no authentication and names peers.
    """

    def test_reachable(self) -> None:
        """
        TCP endpoints without a loopback interface are reachable from other
        hosts; loopback ones, in any of the description's spellings, and
        UNIX sockets are not.
        """
        reachable = [
            "tcp:9100",
            "tcp:9100:interface=0.0.0.0",
            "tcp:port=9100:interface=10.0.0.1",
            "tcp6:9100",
            "tcp6:9100:interface=\\:\\:",
            "tcp:9100:interface=localhost",
            "ssl:9100:privateKey=k.pem",
        ]
        local = [
            "tcp:9100:interface=127.0.0.1",
            "tcp:9100:127.0.0.1",
            "tcp:9100:interface=127.0.0.2:backlog=5",
            "tcp6:9100:interface=\\:\\:1",
            "ssl:9100:privateKey=k.pem:interface=127.0.0.1",
            "unix:/run/spc/metrics.sock",
        ]
        for description in reachable:
            self.assertTrue(reachableFromOtherHosts(description), description)
        for description in local:
            self.assertFalse(reachableFromOtherHosts(description), description)

    def test_warned(self) -> None:
        """
        The daemon warns at start-up when its metrics endpoint listens on
        every interface, and names the endpoint.
        """
        with capturedLogs() as events:
            statusServices(reactor, makeSource(), metrics="tcp:9100")
        [event] = events
        self.assertEqual(event["log_level"], LogLevel.warn)
        self.assertEqual(event["endpoint"], "tcp:9100")
        self.assertIn("interface=127.0.0.1", formatEvent(event))

    def test_loopbackQuiet(self) -> None:
        """
        A loopback metrics endpoint is not warned about.
        """
        with capturedLogs() as events:
            statusServices(reactor, makeSource(), metrics="tcp:9100:interface=127.0.0.1")
        self.assertEqual(events, [])

    def test_help(self) -> None:
        """
        The option's help says to bind the page to loopback.
        """
        help = str(makeOptions("--ports", "9000", "--inbox", "in"))
        self.assertIn("interface=127.0.0.1", help)
        self.assertIn("no authentication", " ".join(help.split()))
