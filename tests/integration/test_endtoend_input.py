"""
End-to-end tests of C{spc send}'s input from anywhere (issue 12, part 5):
the real daemon and the real C{spc send}, a message piped to it, a message
from stdin among others, a message from a file too long for the command
line, and a file from stdin, whose spooled copy is removed afterwards.
"""

from __future__ import annotations

import os

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks

from tests.integration.test_endtoend import PROCESS_TIMEOUT, SPC, EndToEndTestCase, Result, signal, spawn


class InputTests(EndToEndTestCase):
    """
    A daemon that authorizes the client, and a C{$TMPDIR} of the test's
    own, where a file from stdin is spooled.
    """

    @inlineCallbacks
    def setUp(self):
        super().setUp()
        self.authorize(self.serverKeys, "client")
        self.spool = os.path.join(self.root, "tmp")
        os.makedirs(self.spool)
        self.env["TMPDIR"] = self.spool
        self.daemon = yield self.startDaemon()

    def sendWith(self, stdin: bytes, *args: str) -> Deferred:
        """
        Run C{spc send ARGS} to the daemon with C{stdin} on its stdin.

        @return: a Deferred firing with its L{Result}.
        """
        output, transport = spawn(SPC + self.sendArgs() + list(args), self.root, self.env, stdin)
        kill = reactor.callLater(PROCESS_TIMEOUT, signal, transport, "KILL")

        def finished(result: Result) -> Result:
            if kill.active():
                kill.cancel()
            return result

        return output.whenEnded().addCallback(finished)

    def texts(self) -> list[str]:
        return [record["text"] for record in self.storedMessages()]

    @inlineCallbacks
    def test_pipedMessage(self):
        """
        C{echo hi | spc send --server ...}: stdin, given nothing else,
        is one message, stored as it came, its newline included.
        """
        result = yield self.sendWith(b"hi from a pipe\n")
        self.assertDelivered(result, 1)
        self.assertEqual(self.texts(), ["hi from a pipe\n"])

    @inlineCallbacks
    def test_messageDash(self):
        """
        C{--message -} is stdin, in its place among the other messages.
        """
        result = yield self.sendWith(b"second", "--message", "first", "--message", "-",
                                     "--message", "third")
        self.assertDelivered(result, 3)
        self.assertEqual(self.texts(), ["first", "second", "third"])

    @inlineCallbacks
    def test_messageFile(self):
        """
        A 1 MiB message, too long for one command-line argument on Linux
        (128 KiB), goes with C{--message-file}.
        """
        text = "0123456789abcdef" * 65536
        path = os.path.join(self.root, "long.txt")
        with open(path, "w") as f:
            f.write(text)
        result = yield self.sendWith(b"", "--message-file", path)
        self.assertDelivered(result, 1)
        self.assertEqual(self.texts(), [text])

    @inlineCallbacks
    def test_fileFromStdin(self):
        """
        C{spc send - --name NAME} stores stdin as the file NAME, and leaves
        no spooled copy behind.
        """
        data = os.urandom(3 << 20)
        result = yield self.sendWith(data, "-", "--name", "backup/data.bin")
        self.assertEqual(result.code, 0, result)
        self.assertIn("Delivered 0 message(s) and 1 file(s), 3.0 MiB sent in ", result.out)
        with open(os.path.join(self.inbox, "backup", "data.bin"), "rb") as f:
            self.assertEqual(f.read(), data)
        self.assertEqual(os.listdir(self.spool), [])

    @inlineCallbacks
    def test_fileFromStdinTwice(self):
        """
        The same stdin sent twice is a new file each time (its spooled copy
        is new): it is stored again, under a free name, and the sender says
        so.
        """
        yield self.sendWith(b"same", "-", "--name", "same.txt")
        result = yield self.sendWith(b"same", "-", "--name", "same.txt")
        self.assertEqual(result.code, 0, result)
        self.assertEqual(result.out.splitlines()[0], "same.txt: stored as same (1).txt")
        for name in ("same.txt", "same (1).txt"):
            with open(os.path.join(self.inbox, name), "rb") as f:
                self.assertEqual(f.read(), b"same")
