"""
What C{spc send}, C{spc demo} and the C{spc} command print, and that it is
true (issue 12, parts 2 and 6): sizes in one unit system, a progress bar
that starts at what the daemon holds and counts only what this run sent,
the names files were stored under, what to do after a lost connection
or Ctrl-C, and help that shows examples and exit codes.
"""

from __future__ import annotations

import io
import re

from hypothesis import given, strategies as st
from twisted.trial import unittest

from spc.cli import main
from spc.cli.command import Context
from spc.cli.units import formatRate, formatSize
from spc.client.send import SendSummary

MiB = 1 << 20
SERVER = "SHA256:" + "S" * 43
IEC = re.compile(r"^(\d+ B|\d+\.\d (KiB|MiB|GiB|TiB))$")
DECIMAL_LABEL = re.compile(r"\d(k|K|M|G|T)B\b|MB/s|\dB/s")
"""
What a byte count looks like in decimal units or tqdm's own labels: the
C{MB/s} and C{3.80k} that took 1024-steps for 1000-steps.
"""


def parse(*argv: str):
    """
    Parse C{spc argv}, without running it.

    @return: the subcommand's options.
    """
    options = main.SPCOptions()
    options.parseOptions(list(argv))
    return options.subOptions


class UnitsTests(unittest.SynchronousTestCase):
    """
    L{formatSize} and L{formatRate} write IEC binary units by their names.
    """

    def test_examples(self) -> None:
        """
        Whole bytes below 1 KiB, one decimal above, never C{1024.0} of a
        unit.
        """
        cases = {
            0: "0 B", 7: "7 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB",
            MiB - 1: "1.0 MiB", 64 * MiB: "64.0 MiB", 199229440: "190.0 MiB",
            5 << 30: "5.0 GiB", 3 << 40: "3.0 TiB", 5000 << 40: "5000.0 TiB",
        }
        self.assertEqual({count: formatSize(count) for count in cases}, cases)
        self.assertEqual(formatRate(16 * MiB), "16.0 MiB/s")

    @given(st.integers(0, 1 << 52))
    def test_oneSystem(self, count: int) -> None:
        """
        Every size is IEC, its number below 1024 (but in TiB), and within
        half a tenth of its unit of the true count.
        """
        text = formatSize(count)
        self.assertRegex(text, IEC)
        number, unit = text.split(" ")
        scale = 1024 ** ["B", "KiB", "MiB", "GiB", "TiB"].index(unit)
        self.assertLessEqual(abs(float(number) * scale - count), 0.05 * scale + 0.5)
        if unit != "TiB":
            self.assertLess(float(number), 1024)


class ReportTests(unittest.SynchronousTestCase):
    """
    What C{spc send} prints once the daemon answered.
    """

    def report(self, *argv: str, **summary) -> int:
        options = parse("send", "--server", "h", "--ports", "9000", "--message", "x", *argv)
        options["skipped"] = []
        values = dict(messages=0, files=0, bytes=0, seconds=2.0, channels=4, server=SERVER)
        values.update(summary)
        stdout, stderr = io.StringIO(), io.StringIO()
        code = options._report(SendSummary(**values), Context(stdout, stderr, {}))
        self.out, self.err = stdout.getvalue(), stderr.getvalue()
        return code

    def test_summaryUnits(self) -> None:
        """
        The summary line counts what was sent in IEC units, the rate too.
        """
        self.report(files=1, bytes=199229440, seconds=1.05)
        self.assertIn(", 190.0 MiB sent in 1.05 s (181.0 MiB/s), ", self.out)
        self.assertNotRegex(self.out, DECIMAL_LABEL)
