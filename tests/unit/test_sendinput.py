"""
Tests for L{spc.cli.sendinput} and C{spc send}'s input besides files
(issue 12, part 5): C{--message -}, C{--message-file FILE}, the file
argument C{-} with C{--name}, and stdin sent as a message when nothing
else is given and it is not a terminal.  Delivery through a real daemon
is in L{tests.integration.test_endtoend_input}.
"""

from __future__ import annotations

import io
import os
import stat

from twisted.python import usage
from twisted.trial import unittest

from spc.cli import main, sendinput
from spc.cli.command import Context
from spc.cli.sendinput import MESSAGE_LIMIT, readMessage, readMessageFile, spool

SERVER = ["--server", "h", "--ports", "9000"]


class Terminal(io.BytesIO):
    """
    A stdin that says it is a terminal.
    """

    def isatty(self) -> bool:
        return True


class Failing(io.RawIOBase):
    """
    A stream that gives some bytes, then fails as a full disk or a broken
    pipe would.
    """

    def __init__(self) -> None:
        self.given = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.given:
            raise OSError(5, "Input/output error")
        self.given = True
        buffer[:4] = b"part"
        return 4


def parse(*argv: str):
    options = main.SPCOptions()
    options.parseOptions(["send", *SERVER, *argv])
    return options.subOptions


class ReadTests(unittest.SynchronousTestCase):
    """
    Messages are read whole, up to the most a message may hold.
    """

    def setUp(self) -> None:
        self.patch(sendinput, "MESSAGE_LIMIT", 10)

    def test_upToLimit(self) -> None:
        """
        A message of the limit is read as it is, bytes and newlines kept.
        """
        self.assertEqual(readMessage(io.BytesIO(b"\xffhi\n12345\n"), "stdin"), b"\xffhi\n12345\n")

    def test_overLimit(self) -> None:
        """
        One byte more is refused, and the user told to send a file.
        """
        error = self.assertRaises(
            usage.UsageError, readMessage, io.BytesIO(b"x" * 11), "stdin"
        )
        self.assertIn("stdin holds more than 10 B, the most a message may hold", str(error))
        self.assertIn("send it as a file (spc send - --name NAME", str(error))

    def test_defaultLimit(self) -> None:
        """
        The limit is the daemon's own default for one message, 64 MiB.
        """
        self.assertEqual(MESSAGE_LIMIT, 64 << 20)

    def test_file(self) -> None:
        """
        C{--message-file} reads a file's bytes; a file it cannot read, or
        one too long, is a usage error naming it.
        """
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"notes\n")
        self.assertEqual(readMessageFile(path), b"notes\n")
        error = self.assertRaises(usage.UsageError, readMessageFile, path + ".missing")
        self.assertIn(f"--message-file: cannot read {path}.missing: No such file", str(error))
        with open(path, "wb") as f:
            f.write(b"x" * 11)
        error = self.assertRaises(usage.UsageError, readMessageFile, path)
        self.assertIn(f"--message-file {path} holds more than 10 B", str(error))
        error = self.assertRaises(usage.UsageError, readMessageFile, os.path.dirname(path))
        self.assertIn("cannot read", str(error))


class SpoolTests(unittest.SynchronousTestCase):
    """
    A file from stdin is spooled to a private temporary file.
    """

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)

    def test_copy(self) -> None:
        """
        The copy holds every byte, only its owner may read it, and it is in
        the directory asked for.
        """
        data = os.urandom(3 << 20)
        path = spool(io.BytesIO(data), self.directory)
        self.assertEqual(os.path.dirname(path), self.directory)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), data)

    def test_failureLeavesNothing(self) -> None:
        """
        A copy that fails midway is removed before the error goes on.
        """
        self.assertRaises(OSError, spool, io.BufferedReader(Failing()), self.directory)
        self.assertEqual(os.listdir(self.directory), [])


class SendOptionsTests(unittest.SynchronousTestCase):
    """
    How C{spc send} takes its input from stdin and files.
    """

    def read(self, options, stdin) -> list[str]:
        """
        Read stdin as C{spc send} does before it runs.

        @return: the paths spooled.
        """
        spooled: list[str] = []
        self.addCleanup(lambda: [os.unlink(path) for path in spooled])
        options._readStdin(Context(io.StringIO(), io.StringIO(), {}, stdin), spooled)
        return spooled

    def test_messageFromStdin(self) -> None:
        """
        C{--message -} is stdin's bytes, in its place among the messages.
        """
        options = parse("--message", "a", "--message", "-", "--message", "b")
        self.read(options, io.BytesIO(b"from stdin\n"))
        self.assertEqual(options["messages"], [b"a", b"from stdin\n", b"b"])

    def test_messageFile(self) -> None:
        """
        C{--message-file FILE} is the file's bytes, in its place.
        """
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"long\x00text")
        options = parse("--message", "a", "--message-file", path)
        self.assertEqual(options["messages"], [b"a", b"long\x00text"])

    def test_pipedMessage(self) -> None:
        """
        With no message and no file, stdin that is not a terminal is the
        message.
        """
        options = parse()
        self.read(options, io.BytesIO(b"hi\n"))
        self.assertEqual(options["messages"], [b"hi\n"])

    def test_nothingOnTerminal(self) -> None:
        """
        With no message, no file and stdin a terminal, there is nothing to
        send: a usage error saying what to give.
        """
        error = self.assertRaises(usage.UsageError, self.read, parse(), Terminal(b"hi"))
        self.assertEqual(
            str(error), "nothing to send: give --message TEXT or files, or a message on stdin"
        )

    def test_nothingPiped(self) -> None:
        """
        Empty stdin is nothing to send either (a script run with
        C{</dev/null} that forgot its --message).
        """
        error = self.assertRaises(usage.UsageError, self.read, parse(), io.BytesIO())
        self.assertIn("nothing to send: stdin was empty", str(error))

    def test_terminalNotReadWithMessage(self) -> None:
        """
        With a message given, stdin is not read, whatever it is.
        """
        options = parse("--message", "x")
        stdin = io.BytesIO(b"not for us")
        self.read(options, stdin)
        self.assertEqual((options["messages"], stdin.tell()), ([b"x"], 0))

    def test_fileFromStdin(self) -> None:
        """
        The file argument C{-} is stdin, spooled, sent under C{--name}.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        self.patch(sendinput.tempfile, "tempdir", directory)
        options = parse("-", "--name", "backup/photos.tar")
        [path] = self.read(options, io.BytesIO(b"tar data"))
        self.assertEqual(options["files"], [(path, "backup/photos.tar")])
        self.assertEqual(os.path.dirname(path), directory)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"tar data")

    def test_stdinNeedsName(self) -> None:
        """
        C{-} needs C{--name}, a name that can be sent; C{--name} needs
        C{-}; stdin is read once.
        """
        cases = {
            ("-",): "give the name to store stdin under: - --name NAME",
            ("-", "--name", ""): "--name: ",
            ("-", "--name", "x" * 5000): "--name: ",
            ("--name", "x"): "--name names the file read from stdin: give - too",
            ("-", "-", "--name", "x"): "stdin can be read once",
            ("-", "--name", "x", "--message", "-"): "stdin can be read once",
        }
        for argv, expected in cases.items():
            error = self.assertRaises(usage.UsageError, parse, *argv)
            self.assertIn(expected, str(error), argv)


class MainTests(unittest.SynchronousTestCase):
    """
    Usage errors found when stdin is read look like every other.
    """

    def test_usageErrorFromStdin(self) -> None:
        """
        Nothing to send, found only once stdin was read, is one line and
        the help hint, exit 2.
        """
        stdout, stderr = io.StringIO(), io.StringIO()
        code = main.main(["send", *SERVER], stdout, stderr, environ={}, stdin=io.BytesIO())
        self.assertEqual(code, 2)
        self.assertEqual(
            stderr.getvalue().splitlines(),
            [
                "spc: nothing to send: stdin was empty; give --message TEXT or files",
                "Try 'spc send --help' for more information.",
            ],
        )
