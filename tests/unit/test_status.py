# -*- test-case-name: tests.unit.test_status -*-
"""
Tests for L{spc.cli.status}: how C{spc status} prints a snapshot, as a table
or as JSON, and its usage errors.
"""

from __future__ import annotations

import io
import json

from twisted.trial.unittest import SynchronousTestCase

from spc.cli.main import main
from spc.cli.status import formatJSON, formatTable
from spc.status.snapshot import (
    ChannelStatus,
    DaemonStatus,
    SessionStatus,
    Snapshot,
    TransferStatus,
)


SNAPSHOT = Snapshot(
    DaemonStatus("SHA256:host", 3725.0, 4, 1, 0),
    [
        SessionStatus(
            "0123456789abcdef",
            "SHA256:client",
            "alice",
            65.0,
            3,
            (
                ChannelStatus(0, "A256CBC-HS512", 3, 0.0012, 2048, 3 * 1024 * 1024),
                ChannelStatus(1, "ChaCha20-Poly1305", 3, None, 10, 20),
            ),
            (TransferStatus("big.iso", 1000, 250, 200, "in"),),
        )
    ],
)


class FormatTests(SynchronousTestCase):
    """
    The table for people and the JSON for scripts.
    """

    def test_table(self) -> None:
        """
        The daemon line, then each session with its channels (suite, epoch,
        RTT in milliseconds, bytes in and out) and its files with percent.
        """
        text = formatTable(SNAPSHOT)
        lines = text.splitlines()
        self.assertEqual(
            lines[0],
            "spc daemon SHA256:host, up 1h02m, 4 channels, 1 session, "
            "0 handshakes pending",
        )
        self.assertEqual(
            lines[2], "session 0123456789abcdef  alice (SHA256:client)  age 1m05s  epoch 3"
        )
        self.assertEqual(lines[3].split(), ["CHANNEL", "SUITE", "EPOCH", "RTT", "ms", "IN", "OUT"])
        self.assertEqual(
            lines[4].split(), ["0", "A256CBC-HS512", "3", "1.2", "3.0", "MiB", "2.0", "KiB"]
        )
        self.assertEqual(lines[5].split(), ["1", "ChaCha20-Poly1305", "3", "-", "20", "B", "10", "B"])
        self.assertEqual(lines[7].split(), ["big.iso", "in", "25%", "1000", "B"])

    def test_json(self) -> None:
        """
        One JSON document with the snapshot's fields.
        """
        document = json.loads(formatJSON(SNAPSHOT))
        self.assertEqual(document["daemon"]["fingerprint"], "SHA256:host")
        [session] = document["sessions"]
        self.assertEqual(session["name"], "alice")
        self.assertEqual(session["channels"][0]["rtt"], 0.0012)
        self.assertEqual(session["transfers"][0]["done"], 250)
        self.assertEqual(SessionStatus.fromDict(session), SNAPSHOT.sessions[0])

    def test_jsonASCII(self) -> None:
        """
        The JSON is ASCII: characters beyond it, C1 controls included, are
        escaped, and read back as they were.
        """
        name = "caf\u00e9 \u009b2J \U0001f600"
        transfer = TransferStatus(name, 1, 0, None, "out")
        session = SessionStatus("ab", "SHA256:p", "\u00e9ve", 1.0, 0, (), (transfer,))
        text = formatJSON(Snapshot(SNAPSHOT.daemon, [session]))
        self.assertTrue(text.isascii(), text)
        [listed] = json.loads(text)["sessions"]
        self.assertEqual(listed["transfers"][0]["name"], name)
        self.assertEqual(listed["name"], "\u00e9ve")


class UsageTests(SynchronousTestCase):
    """
    C{spc status} options that cannot work are refused before anything
    connects.
    """

    def status(self, *argv: str) -> tuple[int, str]:
        err = io.StringIO()
        return main(["status", *argv], io.StringIO(), err, environ={}), err.getvalue()

    def test_both(self) -> None:
        """
        C{--key-dir} and C{--socket} together are a usage error.
        """
        code, err = self.status("--key-dir", "k", "--socket", "s")
        self.assertEqual(code, 2)
        self.assertIn("give --key-dir or --socket, not both", err)

    def test_tooLong(self) -> None:
        """
        A socket path no UNIX socket can have is a usage error.
        """
        code, err = self.status("--socket", "/tmp/" + "x" * 200)
        self.assertEqual(code, 2)
        self.assertIn("longer than the 107 bytes", err)

    def test_listed(self) -> None:
        """
        C{spc --help} lists the command.
        """
        out = io.StringIO()
        main(["--help"], out, io.StringIO(), environ={})
        self.assertIn("status", out.getvalue())
