"""
Tests for L{spc.cli.demo}: C{spc demo} runs a server and a client in one
process, on loopback, under the real reactor.
"""

from __future__ import annotations

import io
import re

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest

from spc.cli.demo import runDemo
from spc.crypto.suites import defaultSuiteFor


class RunDemoTests(unittest.TestCase):
    """
    L{runDemo} reports a verified round trip over every channel.
    """

    timeout = 60

    @inlineCallbacks
    def checkDemo(self, channels: int):
        """
        Run the demo with C{channels} channels and check its exit code and
        report.

        @return: a Deferred firing with the report.
        """
        out = io.StringIO()
        code = yield runDemo(reactor, out, channels, size=4 * 1024 * 1024)
        report = out.getvalue()
        self.assertEqual(code, 0, report)
        self.assertIn("verified", report)
        self.assertNotIn("DIFFERENT", report)
        self.assertRegex(report, r"Server key SHA256:[A-Za-z0-9+/]{43}\n")
        self.assertRegex(report, r"Client key SHA256:[A-Za-z0-9+/]{43}\n")
        (session,) = re.findall(r"Session over (\d+) channels on ports ([\d, ]+): (.*)\n", report)
        count, ports, suites = session
        self.assertEqual(int(count), channels)
        self.assertEqual(len(ports.split(", ")), channels)
        self.assertEqual(
            suites,
            ", ".join(f"{index}={defaultSuiteFor(index).name}" for index in range(channels)),
        )
        return report

    def test_twoChannels(self):
        """
        With two channels the demo uses both default suites (even channel
        AES-256-CBC, odd channel ChaCha20) and verifies the content.
        """
        return self.checkDemo(2)

    @inlineCallbacks
    def test_fourChannels(self):
        """
        With four channels, the default of C{spc demo}, every channel is
        listed with its suite, the messages are counted each way with the
        throughput, and the content is verified.
        """
        report = yield self.checkDemo(4)
        self.assertIn("Client -> server: 8 messages; server -> client: 1 message\n", report)
        self.assertRegex(
            report, r"File: 4\.0 MiB in \d+\.\d\d s, \d+\.\d [KMG]iB/s, SHA-256 OK"
        )
        self.assertIn("Content verified\n", report)

    @inlineCallbacks
    def test_oneChannel(self):
        """
        A single channel is enough for a verified demo.
        """
        report = yield self.checkDemo(1)
        self.assertIn("0=" + defaultSuiteFor(0).name, report)
