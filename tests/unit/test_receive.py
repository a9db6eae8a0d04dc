"""
Tests for L{spc.cli.receive}'s command for the sender: one address is
enough (amendment A19), so it names the first port alone, and it parses as
a send to one address.
"""

from __future__ import annotations

from twisted.trial import unittest

from spc.cli.main import SPCOptions
from spc.cli.receive import senderCommand


class SenderCommandTests(unittest.SynchronousTestCase):
    """
    L{senderCommand}.
    """

    def parse(self, command: str):
        """
        The options of C{command}, with a file in place of C{FILE...} and a
        message, so that nothing needs to exist.
        """
        argv = command.split()
        self.assertEqual(argv[:2], ["spc", "send"])
        self.assertEqual(argv[-1], "FILE...")
        options = SPCOptions()
        options.parseOptions([*argv[1:-1], "--message", "x"])
        return options.subOptions

    def test_firstPortAlone(self) -> None:
        """
        The command names the code and the receiver's first port, and no
        other port; it opens every channel from that one address.
        """
        command = senderCommand("4-orbit-velvet", "receiver.example", 9100)
        self.assertEqual(
            command, "spc send --code 4-orbit-velvet --server receiver.example:9100 FILE..."
        )
        options = self.parse(command)
        self.assertEqual(options["endpoints"], ["tcp:receiver.example:9100"])
        self.assertEqual(options["host-port"], "receiver.example:9100")
        self.assertTrue(options["one-address"])

    def test_ipv6(self) -> None:
        """
        An IPv6 receiver is written as C{[ADDRESS]:PORT}, which parses.
        """
        command = senderCommand("4-orbit-velvet", "::1", 9000)
        self.assertIn(" --server [::1]:9000 ", command)
        self.assertEqual(self.parse(command)["endpoints"], ["tcp:[::1]:9000"])
