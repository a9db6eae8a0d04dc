# -*- test-case-name: tests.integration.test_metrics -*-
"""
Tests for L{spc.status.metrics} over real TCP: a scrape of the page.
"""

from __future__ import annotations

import importlib.util

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool, readBody

from spc.status.services import statusServices
from tests.unit.test_metrics import makeSource

if importlib.util.find_spec("prometheus_client") is None:
    skip = "prometheus_client is not installed"


class ScrapeTests(TestCase):
    """
    A scrape over real HTTP.
    """

    @inlineCallbacks
    def test_scrape(self):
        """
        GET on the metrics endpoint returns the figures.
        """
        [service] = statusServices(
            reactor, makeSource(), metrics="tcp:0:interface=127.0.0.1"
        )
        service.privilegedStartService()
        service.startService()
        self.addCleanup(service.stopService)
        port = yield service.whenListening()
        url = f"http://127.0.0.1:{port.getHost().port}/metrics".encode()
        pool = HTTPConnectionPool(reactor, persistent=False)
        response = yield Agent(reactor, pool=pool).request(b"GET", url)
        body = yield readBody(response)
        self.assertEqual(response.code, 200)
        self.assertIn(b"spc_sessions 1.0", body)
