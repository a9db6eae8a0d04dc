"""
Tests for L{spc.cli.target}: where C{spc send} connects, from one address
(C{--server HOST[:PORT]}) or every channel given (C{--ports},
C{--connect}), checked before anything connects.
"""

from __future__ import annotations

import io

from twisted.python import usage
from twisted.trial import unittest

from spc.cli import main
from spc.cli.target import DEFAULT_PORT, SendTarget, parseServer, sendTarget

PIN = "SHA256:" + "A" * 43


def parse(*argv: str):
    """
    The options of C{spc send --message x argv}, parsed but not run.
    """
    options = main.SPCOptions()
    options.parseOptions(["send", "--message", "x", *argv])
    return options.subOptions


class OneAddressTests(unittest.SynchronousTestCase):
    """
    C{--server} alone names the daemon by one address.
    """

    def test_hostAlone(self) -> None:
        """
        C{--server HOST} is the daemon's first port at the default port
        9000, where the README's daemon listens; the key is pinned under
        it.
        """
        self.assertEqual(DEFAULT_PORT, 9000)
        options = parse("--server", "Example.COM")
        self.assertEqual(options["endpoints"], ["tcp:Example.COM:9000"])
        self.assertEqual(options["host-port"], "example.com:9000")
        self.assertTrue(options["one-address"])

    def test_hostAndPort(self) -> None:
        """
        C{--server HOST:PORT} works without C{--ports}: its port is the
        first, and known_hosts keeps C{HOST:FIRSTPORT}.
        """
        options = parse("--server", "127.0.0.1:9100")
        self.assertEqual(options["endpoints"], ["tcp:127.0.0.1:9100"])
        self.assertEqual(options["host-port"], "127.0.0.1:9100")
        self.assertTrue(options["one-address"])

    def test_ipv6(self) -> None:
        """
        An IPv6 address is bare without a port and bracketed with one.
        """
        for text, port in (("::1", 9000), ("[::1]", 9000), ("[::1]:9100", 9100)):
            options = parse("--server", text)
            self.assertEqual(options["endpoints"], [f"tcp:[::1]:{port}"], text)
            self.assertEqual(options["host-port"], f"[::1]:{port}", text)

    def test_tls(self) -> None:
        """
        C{--server tls:HOST:PORT} names a TLS daemon by one address, its
        trust roots or pins applying to every channel.
        """
        options = parse("--server", "tls:spc.example:9443", "--tls-fingerprint", PIN)
        self.assertEqual(options["endpoints"], ["tls:spc.example:9443"])
        self.assertEqual(options["host-port"], "spc.example:9443")
        self.assertTrue(options["one-address"])
        self.assertEqual(options["tls-fingerprints"], [PIN])

    def test_badForms(self) -> None:
        """
        What is no host, port or TLS description is refused, saying which
        forms are taken.
        """
        for text, fragment in [
            ("bad!host", "HOST:PORT"),
            ("h:0", "1 to 65535"),
            ("h:x", "1 to 65535"),
            ("[::1", "[ADDRESS]:PORT"),
            ("[::1]9000", "[ADDRESS]:PORT"),
            ("tls:h", "tls:HOST:PORT"),
        ]:
            error = self.assertRaises(usage.UsageError, parseServer, text)
            self.assertIn(fragment, str(error), text)


class GivenChannelsTests(unittest.SynchronousTestCase):
    """
    C{--ports} and C{--connect} give every channel, as before.
    """

    def test_portsStillWork(self) -> None:
        """
        C{--server HOST --ports PORTS} gives one endpoint per port.
        """
        self.assertEqual(
            sendTarget("h", [9000, 9001], []),
            SendTarget(["tcp:h:9000", "tcp:h:9001"], "h:9000", False),
        )

    def test_serverPortWithPorts(self) -> None:
        """
        A port in C{--server} and C{--ports} both would name the first port
        twice: refused, saying which form to use.
        """
        error = self.assertRaises(usage.UsageError, sendTarget, "h:9000", [9000, 9001], [])
        self.assertIn("--server HOST:PORT alone", str(error))

    def test_repeated(self) -> None:
        """
        A port or an endpoint given twice is refused: it would be two
        channels on one port.
        """
        error = self.assertRaises(usage.UsageError, sendTarget, "h", [9000, 9000], [])
        self.assertIn("given twice: 9000", str(error))
        error = self.assertRaises(
            usage.UsageError, sendTarget, None, [], ["tcp:h:1", "tcp:h:1"]
        )
        self.assertIn("given twice: tcp:h:1", str(error))

    def test_connectNamedByServer(self) -> None:
        """
        With C{--connect}, C{--server HOST:PORT} names the daemon in
        known_hosts.
        """
        target = sendTarget("relay.example:7000", [], ["tcp:10.0.0.1:9000"])
        self.assertEqual(target, SendTarget(["tcp:10.0.0.1:9000"], "relay.example:7000", False))

    def test_tlsServerWithChannels(self) -> None:
        """
        C{--server tls:...} opens every channel itself: with C{--ports} or
        C{--connect} it is refused.
        """
        for ports, connect in (([9000], []), ([], ["tls:h:9444"])):
            self.assertRaises(usage.UsageError, sendTarget, "tls:h:9443", ports, connect)

    def test_usageErrorsFromTheCommand(self) -> None:
        """
        The command says so in one line with the help hint, exit code 2.
        """
        stdout, stderr = io.StringIO(), io.StringIO()
        code = main.main(
            ["send", "--server", "h", "--ports", "9000,9000", "--message", "x"],
            stdout=stdout, stderr=stderr, environ={},
        )
        self.assertEqual(code, 2)
        self.assertEqual(
            stderr.getvalue().splitlines(),
            ["spc: given twice: 9000", "Try 'spc send --help' for more information."],
        )
