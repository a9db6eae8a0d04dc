"""
What C{spc send}, C{spc demo} and the C{spc} command print, and that it is
true (issue 12, parts 2 and 6): sizes in one unit system, a progress bar
that starts at what the daemon holds and counts only what this run sent,
the names files were stored under, what to do after a lost connection
or Ctrl-C, and help that shows examples and exit codes.
"""

from __future__ import annotations

import io
import os
import re
import tempfile

from hypothesis import given, strategies as st
from twisted.internet import task
from twisted.python import usage
from twisted.trial import unittest

from spc import tap
from spc.cli import command, main, receive
from spc.cli.command import Context
from spc.cli.progress import ProgressBar
from spc.cli.units import formatRate, formatSize
from spc.client.observer import ProgressBooks
from spc.client.send import SendSummary
from spc.errors import MessageTooLarge, ServerShuttingDown, SessionClosed

MiB = 1 << 20
SERVER = "SHA256:" + "S" * 43
IEC = re.compile(r"^(\d+ B|\d+\.\d (KiB|MiB|GiB|TiB))$")
DECIMAL_LABEL = re.compile(r"\d(k|K|M|G|T)B\b|MB/s|\dB/s")
"""
What a byte count looks like in decimal units or tqdm's own labels: the
C{MB/s} and C{3.80k} that took 1024-steps for 1000-steps.
"""


class Terminal(io.StringIO):
    """
    A stream that says it is a terminal.
    """

    def isatty(self) -> bool:
        return True


def frames(text: str) -> list[str]:
    """
    The lines a terminal showed in turn: each redraw starts with a
    carriage return.
    """
    return [frame.strip() for frame in re.split(r"[\r\n]", text) if frame.strip()]


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


class ProgressBarTests(unittest.SynchronousTestCase):
    """
    L{ProgressBar} as C{spc send} drives it, through L{ProgressBooks}, on
    a terminal and a clock.
    """

    def setUp(self) -> None:
        self.stream = Terminal()
        self.clock = task.Clock()
        self.bar = ProgressBar(self.stream, self.clock)
        self.addCleanup(self.bar.close)

    def books(self, *files: tuple[str, int]) -> ProgressBooks:
        return ProgressBooks(self.bar, [(name, name, size) for name, size in files])

    def test_resumeStartsAtHeld(self) -> None:
        """
        A resumed file is announced with what the daemon holds, the bar
        starts there, and the rate counts only what this run sent: 16 MiB
        in a second is 16.0 MiB/s, not the 80 the held part would make.
        """
        report = self.books(("report.pdf", 200 * MiB)).reporter("report.pdf")
        report(64 * MiB)
        self.clock.advance(1)
        report(80 * MiB)
        shown = frames(self.stream.getvalue())
        self.assertEqual(shown[0], "resuming report.pdf: 64.0 MiB already there")
        self.assertRegex(shown[1], r"^report\.pdf  32%\|#+\d? +\| 64\.0 MiB of 200\.0 MiB$")
        self.assertIn("80.0 MiB of 200.0 MiB, 16.0 MiB/s, 00:07 left", shown[-1])
        self.assertNotRegex(self.stream.getvalue(), DECIMAL_LABEL)

    def test_newFileNoResumeLine(self) -> None:
        """
        A file the daemon held nothing of, or all of, is not "resumed".
        """
        books = self.books(("a.bin", 100), ("b.bin", 100))
        books.reporter("a.bin")(0)
        books.reporter("b.bin")(100)
        self.assertNotIn("resuming", self.stream.getvalue())

    def test_heldWholeNoRate(self) -> None:
        """
        A file held whole counts as held, not as sent: no rate at all.
        """
        self.books(("a.bin", 100 * MiB)).reporter("a.bin")(100 * MiB)
        self.clock.advance(1)
        self.bar.fileDelivered("a.bin")
        self.assertNotIn("/s", self.stream.getvalue())

    def test_manyFiles(self) -> None:
        """
        With many files the bar counts files delivered of all, and names
        the one started last.
        """
        files = [(f"photos/img{i:04}.jpg", 4) for i in range(1000)]
        books = self.books(*files)
        for name, size in files[:313]:
            books.reporter(name)(0)
            self.clock.advance(0.2)
            books.reporter(name)(size)
            if name != files[312][0]:
                books.delivered(None, name)
        last = frames(self.stream.getvalue())[-1]
        self.assertTrue(last.startswith("312/1000 files  31%|"), last)
        self.assertTrue(last.endswith("| 19 B/s, 02:17 left, photos/img0312.jpg"), last)
        self.assertNotRegex(self.stream.getvalue(), DECIMAL_LABEL)

    def test_longName(self) -> None:
        """
        On the bar, a long name is shown by its end.
        """
        name = "folder/" + "x" * 100 + "/end.bin"
        books = self.books((name, 10), ("other", 10))
        books.reporter(name)(0)
        last = frames(self.stream.getvalue())[-1]
        self.assertTrue(last.endswith("…" + name[-29:]), last)

    def test_connectionLost(self) -> None:
        """
        While no channel is up the bar says so and for how long, in place
        of the rate; once one is back, the rate returns.
        """
        report = self.books(("big.bin", 100 * MiB)).reporter("big.bin")
        report(0)
        self.clock.advance(1)
        report(10 * MiB)
        self.bar.connectionLost(0, 60)
        self.clock.advance(12)
        self.bar.connectionLost(12, 60)
        lost = frames(self.stream.getvalue())[-1]
        self.assertTrue(
            lost.endswith("| connection lost, reconnecting (12 s; gives up after 60 s)"), lost
        )
        self.assertNotIn("/s", lost)
        self.bar.connectionBack()
        self.assertIn("/s, ", frames(self.stream.getvalue())[-1])

    def test_totalsOnly(self) -> None:
        """
        What knows only totals (C{spc receive}) gets a byte count with no
        file's name, whose total may grow.
        """
        self.bar.update(0, 100 * MiB)
        self.clock.advance(1)
        self.bar.update(10 * MiB, 200 * MiB)
        last = frames(self.stream.getvalue())[-1]
        self.assertTrue(last.startswith("receiving   5%|"), last)
        self.assertTrue(last.endswith("| 10.0 MiB of 200.0 MiB, 10.0 MiB/s, 00:19 left"), last)

    def test_closeClears(self) -> None:
        """
        Closing the bar clears its line, and passes a result on.
        """
        self.books(("a.bin", 100)).reporter("a.bin")(50)
        self.assertEqual(self.bar.close("result"), "result")
        self.assertTrue(self.stream.getvalue().endswith("\r"))
        self.assertEqual(frames(self.stream.getvalue().rsplit("\r", 2)[-2]), [])

    def test_closedForGood(self) -> None:
        """
        Once closed (Ctrl-C closes it as the reactor begins to stop, before
        the connections drop), the bar draws nothing more: neither a lost
        connection nor a file.
        """
        books = self.books(("a.bin", 100), ("b.bin", 100))
        books.reporter("a.bin")(50)
        self.bar.close()
        written = self.stream.getvalue()
        self.bar.connectionLost(0, 60)
        books.reporter("b.bin")(50)
        self.bar.fileDelivered("a.bin")
        self.assertEqual(self.stream.getvalue(), written)

    def test_notATerminal(self) -> None:
        """
        On a stream that is not a terminal nothing is written, not even a
        resumed file's line: a log gets the summary alone.
        """
        stream = io.StringIO()
        bar = ProgressBar(stream, self.clock)
        books = ProgressBooks(bar, [("a", "a.bin", 100)])
        books.reporter("a")(50)
        bar.connectionLost(1, 60)
        bar.close()
        self.assertEqual(stream.getvalue(), "")

    def test_disabled(self) -> None:
        """
        With C{--no-progress} (C{enabled=False}), nothing is written.
        """
        bar = ProgressBar(self.stream, self.clock, enabled=False)
        ProgressBooks(bar, [("a", "a.bin", 100)]).reporter("a")(50)
        bar.close()
        self.assertEqual(self.stream.getvalue(), "")


class ReceiverLinesTests(unittest.SynchronousTestCase):
    """
    C{spc receive} writes sizes in the same units.
    """

    def test_stored(self) -> None:
        """
        Each stored file's line gives its size in IEC units.
        """
        out = io.StringIO()
        directory = os.path.abspath(self.mktemp())
        printer = receive._Printer(out, directory)
        printer.fileReceived(None, "big.bin", os.path.join(directory, "big.bin"), 3 * MiB)
        self.assertEqual(out.getvalue(), "Stored big.bin (3.0 MiB)\n")


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

    def test_renamed(self) -> None:
        """
        A file stored under another name than the one sent is listed with
        its stored name.
        """
        code = self.report(files=2, bytes=8, renamed=(("big.bin", "big (1).bin"),))
        self.assertEqual(code, 0)
        self.assertEqual(self.out.splitlines()[0], "big.bin: stored as big (1).bin")
        self.assertEqual(len(self.out.splitlines()), 2)

    def test_manyRenamed(self) -> None:
        """
        Of a thousand files stored under other names, twenty are listed
        and the rest counted; C{--verbose} lists every one.  Files held
        already are listed the same way.
        """
        renamed = tuple((f"f{i}", f"f{i} (1)") for i in range(1000))
        already = tuple((f"g{i}", f"g{i}") for i in range(30))
        self.report(files=1030, renamed=renamed, already=already)
        lines = self.out.splitlines()
        self.assertEqual(lines[:20], [f"f{i}: stored as f{i} (1)" for i in range(20)])
        self.assertEqual(
            lines[20], "... and 980 more files stored under other names (--verbose lists them)"
        )
        self.assertEqual(lines[21], "g0: already delivered as g0")
        self.assertEqual(
            lines[41], "... and 10 more files delivered already (--verbose lists them)"
        )
        self.assertEqual(len(lines), 43)
        self.report("--verbose", files=1030, renamed=renamed, already=already)
        self.assertEqual(len(self.out.splitlines()), 1031)

    def test_lostConnectionResumes(self) -> None:
        """
        Items not delivered because the session ended (its connection was
        lost for good) are followed by what to do: run the same command
        again, which resumes.
        """
        lost = SessionClosed("no channel rejoined in time")
        code = self.report(failed=(("big.bin", lost), ("b.bin", lost)))
        self.assertEqual(code, 4)
        self.assertEqual(
            self.err.splitlines()[2:],
            [
                "spc: run the same command again to resume: what the daemon holds is not "
                "sent again",
                "spc: 0 of 2 items delivered",
            ],
        )

    def test_shuttingDownSaysItself(self) -> None:
        """
        A daemon shutting down says already that the same command resumes;
        it is not said twice.
        """
        self.report(failed=(("big.bin", ServerShuttingDown()),))
        self.assertNotIn("run the same command again to resume:", self.err)

    def test_messageTooLarge(self) -> None:
        """
        A message over the daemon's limit says both sizes and what to do.
        """
        self.report(failed=(('message 1 ("x")', MessageTooLarge(80 * MiB, 64 * MiB)),))
        self.assertEqual(
            self.err.splitlines()[0],
            'spc: message 1 ("x") was not delivered: it holds 80.0 MiB, more than the daemon '
            "takes in one message (64.0 MiB); send it as a file",
        )


class InterruptTests(unittest.SynchronousTestCase):
    """
    Ctrl-C (or SIGTERM): C{react} ends early and the command is
    interrupted.
    """

    def interrupt(self, stderr, *argv: str, **kw) -> int:
        """
        Run C{spc argv} with a reactor that is stopped at once.
        """

        def react(work, *args, **kwargs):
            raise KeyboardInterrupt()

        self.patch(command, "react", react)
        return main.main(list(argv), stdout=io.StringIO(), stderr=stderr, environ={}, **kw)

    def sendArgs(self, *more: str) -> list[str]:
        return ["send", "--server", "h", "--ports", "9000", *more]

    def test_freshLineOnTerminal(self) -> None:
        """
        On a terminal the message clears the line first (it may hold the
        bar or the echoed C{^C}); it says that the same command resumes;
        the exit code is 130.
        """
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"data")
        stderr = Terminal()
        self.assertEqual(self.interrupt(stderr, *self.sendArgs(path)), 130)
        self.assertEqual(
            stderr.getvalue(), "\r\x1b[Kspc: interrupted; run the same command again to resume\n"
        )

    def test_notATerminal(self) -> None:
        """
        Elsewhere the message is a plain line.
        """
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"data")
        stderr = io.StringIO()
        self.assertEqual(self.interrupt(stderr, *self.sendArgs(path)), 130)
        self.assertEqual(
            stderr.getvalue(), "spc: interrupted; run the same command again to resume\n"
        )

    def test_messagesMayRepeat(self) -> None:
        """
        Messages are not resumed but sent again, so the hint says they
        may arrive twice.
        """
        stderr = io.StringIO()
        self.interrupt(stderr, *self.sendArgs("--message", "hi"))
        self.assertEqual(
            stderr.getvalue(),
            "spc: interrupted; messages delivered before the interruption would arrive "
            "twice if sent again\n",
        )

    def test_stdinCannotResume(self) -> None:
        """
        What was read from stdin is gone: the hint says to send it again,
        and its spooled copy is removed.
        """
        spoolDirectory = self.mktemp()
        os.makedirs(spoolDirectory)
        self.patch(tempfile, "tempdir", spoolDirectory)
        stderr = io.StringIO()
        self.interrupt(
            stderr, *self.sendArgs("-", "--name", "x.bin"), stdin=io.BytesIO(b"data")
        )
        self.assertEqual(
            stderr.getvalue(),
            "spc: interrupted; what was read from stdin cannot resume: send it again\n",
        )
        self.assertEqual(os.listdir(spoolDirectory), [])

    def test_otherCommands(self) -> None:
        """
        Other commands say only that they were interrupted.
        """
        stderr = io.StringIO()
        self.assertEqual(self.interrupt(stderr, "demo", "--size", "1K"), 130)
        self.assertEqual(stderr.getvalue(), "spc: interrupted\n")


class HelpTests(unittest.SynchronousTestCase):
    """
    Issue 12, part 6: help that helps.
    """

    def spc(self, *argv: str) -> int:
        stdout, stderr = io.StringIO(), io.StringIO()
        code = main.main(list(argv), stdout=stdout, stderr=stderr, environ={})
        self.out, self.err = stdout.getvalue(), stderr.getvalue()
        return code

    def test_shortHelp(self) -> None:
        """
        C{-h} is C{--help}, at the top and for every command.
        """
        for argv in [(), ("send",), ("demo",), ("status",), ("keygen",)]:
            self.assertEqual(self.spc(*argv, "-h"), 0, self.err)
            long = self.out
            self.assertEqual(self.spc(*argv, "--help"), 0)
            self.assertEqual(self.out, long)
            self.assertTrue(long.startswith("Usage: spc"), long)
            self.assertEqual(self.err, "")

    def test_sendExamplesAndExitCodes(self) -> None:
        """
        C{spc send --help} ends with examples, kept as written, stdin's
        among them, and every exit code.
        """
        self.spc("send", "--help")
        examples = self.out[self.out.index("\nExamples:\n") :]
        self.assertIn(
            "\n  echo 'backup done' | spc send --server HOST --ports 9000-9003\n", examples
        )
        self.assertIn(" - --name photos.tar\n", examples)
        codes = self.out[self.out.index("\nExit codes:\n") :].splitlines()[2:]
        self.assertEqual(
            [line.split()[0] for line in codes], ["0", "1", "2", "3", "4", "5", "130"]
        )

    def test_noStraySpacing(self) -> None:
        """
        No option's help, in any command or in the daemon's, has a run of
        spaces within its text (a docstring's indentation).
        """
        commands = [
            cls() for _, _, cls, _ in main.SPCOptions.subCommands
        ] + [tap.Options()]
        for options in commands:
            for name, doc in options.docs.items():
                text = " ".join((doc or "").split("\n"))
                self.assertNotRegex(text.strip(), r"\S {2,}\S", f"{type(options)} --{name}")
        self.spc("send", "--help")
        self.assertIn("(default: even channels AES-256-CBC, odd ChaCha20)", " ".join(
            line.strip() for line in self.out.splitlines()
        ))


class DemoSizeTests(unittest.SynchronousTestCase):
    """
    C{spc demo --size} is bounded: the demo writes the file twice.
    """

    def test_bounded(self) -> None:
        """
        Up to 1 GiB is accepted; more is a usage error naming the bound.
        """
        self.assertEqual(parse("demo", "--size", "1G")["size"], 1 << 30)
        error = self.assertRaises(usage.UsageError, parse, "demo", "--size", "1025M")
        self.assertIn("--size: at most 1.0 GiB", str(error))
