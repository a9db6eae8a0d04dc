# -*- test-case-name: tests.memory.test_metrics -*-
"""
Tests for the C{--metrics} option of L{spc.tap}: the page of
L{spc.status.metrics} listens where it is told, on a C{MemoryReactor}.
"""

from __future__ import annotations

import importlib.util

from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Site

from spc.errors import ConfigurationError
from spc.status.metrics import checkAvailable
from spc.tap import makeService
from tests.unit.test_tap import keyDirWithIdentity, makeOptions

if importlib.util.find_spec("prometheus_client") is None:
    skip = "prometheus_client is not installed"


class OptionTests(SynchronousTestCase):
    """
    C{twistd spc --metrics ENDPOINT}.
    """

    def test_invalidEndpoint(self) -> None:
        """
        A description that is no endpoint is refused when parsing.
        """
        error = self.assertRaises(
            usage.UsageError, makeOptions,
            "--ports", "9000", "--inbox", "in", "--metrics", "bogus:1",
        )
        self.assertIn("--metrics", str(error))

    def test_notInstalled(self) -> None:
        """
        Without prometheus_client, C{--metrics} says what to install.
        """
        real = importlib.util.find_spec
        self.patch(
            importlib.util, "find_spec",
            lambda name, *a: None if name == "prometheus_client" else real(name, *a),
        )
        error = self.assertRaises(
            usage.UsageError, makeOptions,
            "--ports", "9000", "--inbox", "in", "--metrics", "tcp:9100",
        )
        self.assertIn("pip install 'spc[metrics]'", str(error))

    def test_notInstalledIsConfiguration(self) -> None:
        """
        L{checkAvailable} speaks for the configuration, not the command
        line: it raises L{ConfigurationError}, which the option layer turns
        into a usage error.
        """
        real = importlib.util.find_spec
        self.patch(
            importlib.util, "find_spec",
            lambda name, *a: None if name == "prometheus_client" else real(name, *a),
        )
        error = self.assertRaises(ConfigurationError, checkAvailable)
        self.assertIn("pip install 'spc[metrics]'", str(error))

    def test_listens(self) -> None:
        """
        The daemon serves the figures on the endpoint given.
        """
        memory = MemoryReactorClock()
        service = makeService(
            makeOptions(
                "--key-dir", keyDirWithIdentity(self), "--ports", "9000",
                "--inbox", self.mktemp(), "--allow-any-client",
                "--control-socket", "none", "--metrics", "tcp:9100:interface=127.0.0.1",
            ),
            reactor=memory,
        )
        service.privilegedStartService()
        [daemonPort, metricsPort] = memory.tcpServers
        self.assertEqual(metricsPort[0], 9100)
        self.assertIsInstance(metricsPort[1], Site)
