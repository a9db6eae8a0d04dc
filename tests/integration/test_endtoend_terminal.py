"""
End-to-end tests of what C{spc send} and C{spc demo} show on a terminal
(issue 12, parts 2 and 6): the real programs on a pseudo-terminal, so that
the progress bar is drawn, against the real daemon behind the byte-counting
relay of L{tests.integration.test_endtoend_files}.  A resumed file says what the daemon
held, a daemon gone mid-transfer is shown as a lost connection, Ctrl-C says
so on a line of its own, and a demo stopped by Ctrl-C leaves no temporary
files.
"""

from __future__ import annotations

import glob
import os
import re
import sys

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater

from spc.files.names import PARTIAL_DIRECTORY
from tests.integration.test_endtoend import PROCESS_TIMEOUT, SPC, EndToEndTestCase, Output, signal, spawn
from tests.integration.test_endtoend_files import BIG_SIZE, FileTestCase, Relay, bigFile, heldBytes

POLL_INTERVAL = 0.02
HELD_TIMEOUT = 30.0
SHOWN_TIMEOUT = 20.0


def spawnOnTerminal(args: list[str], cwd: str, env: dict[str, str]):
    """
    Start C{python args} in C{cwd} on a pseudo-terminal: its stdin, stdout
    and stderr are one terminal, whose output the L{Output} gets as stdout.

    @return: the L{Output} protocol and the process transport.
    """
    output = Output()
    transport = reactor.spawnProcess(
        output, sys.executable, [sys.executable, *args], env=env, path=cwd, usePTY=True
    )
    kill = reactor.callLater(PROCESS_TIMEOUT * 2, signal, transport, "KILL")
    output.whenEnded().addCallback(lambda result: kill.active() and kill.cancel())
    return output, transport


def frames(text: str) -> list[str]:
    """
    What a terminal showed in turn: lines and the redraws of the bar.
    """
    return [frame.strip() for frame in re.split(r"[\r\n]", text) if frame.strip()]


class TerminalTests(FileTestCase):
    """
    C{spc send} of the large file through the relay, on a terminal.
    """

    @inlineCallbacks
    def setUp(self):
        yield super().setUp()
        self.relay = Relay(self.ports)
        self.addCleanup(self.relay.stop)

    def relayArgs(self, path: str) -> list[str]:
        args = [
            "send", "--key-dir", self.clientKeys, "--server", self.server,
            "--server-fingerprint", self.serverFingerprint,
        ]
        for port in self.relay.ports:
            args += ["--connect", f"tcp:127.0.0.1:{port}"]
        return args + [path]

    @inlineCallbacks
    def untilHeld(self, least: int, sender: Output):
        """
        Wait until the daemon claims C{least} bytes of the file.
        """
        deadline = reactor.seconds() + HELD_TIMEOUT
        while heldBytes(self.inbox) < least:
            if sender.status is not None or reactor.seconds() > deadline:
                self.fail(f"the daemon did not hold {least} bytes:\n{sender.log}\n"
                          f"{self.daemon.output.log}")
            yield deferLater(reactor, POLL_INTERVAL, lambda: None)

    @inlineCallbacks
    def stalledSend(self, terminal: bool):
        """
        Start sending the large file through the relay, which forwards only
        three quarters of it, and wait until the daemon holds a fifth.

        @return: the sender's L{Output} and transport.
        """
        path, _ = bigFile()
        self.relay.reset(budget=BIG_SIZE * 3 // 4)
        start = spawnOnTerminal if terminal else spawn
        sender, transport = start(SPC + self.relayArgs(path), self.root, self.env)
        yield self.untilHeld(BIG_SIZE // 5, sender)
        return sender, transport

    @inlineCallbacks
    def test_resumeShown(self):
        """
        Run again after it was killed, C{spc send} says how much of the
        file the daemon held, and its bar starts there, not at 0%.
        """
        sender, transport = yield self.stalledSend(terminal=False)
        held = heldBytes(self.inbox)
        signal(transport, "KILL")
        yield sender.whenEnded()
        self.relay.reset()
        path, _ = bigFile()
        sender, _ = spawnOnTerminal(SPC + self.relayArgs(path), self.root, self.env)
        result = yield sender.whenEnded()
        self.assertEqual(result.code, 0, result)
        shown = frames(result.out)
        [resumed] = [i for i, frame in enumerate(shown) if frame.startswith("resuming ")]
        self.assertRegex(shown[resumed], r"^resuming big\.bin: \d+\.\d MiB already there$")
        claimed = float(shown[resumed].split()[2]) * (1 << 20)
        self.assertGreaterEqual(claimed, 0.95 * held)
        first = shown[resumed + 1]
        self.assertTrue(first.startswith("big.bin "), first)
        self.assertGreaterEqual(int(first.split()[1].split("%")[0]), 19, first)
        self.assertNotRegex(result.out, r"MB/s|\d[kMG]B\b")

    @inlineCallbacks
    def test_connectionLostShown(self):
        """
        The daemon is killed in the middle of the file: the bar says the
        connection is lost and for how long, and once the daemon is back
        the same run finishes.
        """
        sender, _ = yield self.stalledSend(terminal=True)
        self.daemon.signal("KILL")
        yield self.daemon.output.whenEnded()
        yield sender.waitFor("connection lost, reconnecting (", SHOWN_TIMEOUT)
        yield sender.waitFor(" s; gives up after 60 s)", SHOWN_TIMEOUT)
        self.relay.reset()
        self.daemon = yield self.startDaemon()
        result = yield sender.whenEnded()
        self.assertEqual(result.code, 0, result)
        shown = frames(result.out)
        self.assertTrue(shown[-1].startswith("Delivered 0 message(s) and 1 file(s)"), shown)
        self.assertNotIn("connection lost", shown[-2])

    @inlineCallbacks
    def test_interruptedOnFreshLine(self):
        """
        Ctrl-C while the bar is drawn: the message clears the bar's line
        and stands alone, says that the same command resumes, and the
        exit code is 130.
        """
        sender, transport = yield self.stalledSend(terminal=True)
        yield sender.waitFor("%|", SHOWN_TIMEOUT)
        signal(transport, "INT")
        result = yield sender.whenEnded()
        self.assertEqual(result.code, 130, result)
        self.assertTrue(
            result.out.endswith(
                "\r\x1b[Kspc: interrupted; run the same command again to resume\r\n"
            ),
            repr(result.out[-300:]),
        )
        self.assertNotIn("connection lost", result.out)


class DemoInterruptedTests(EndToEndTestCase):
    """
    C{spc demo} stopped by Ctrl-C.
    """

    @inlineCallbacks
    def test_temporaryFilesRemoved(self):
        """
        Interrupted while it sends its file (the daemon in it has begun to
        write the file), the demo says so, exits 130 and leaves nothing in
        the temporary directory.
        """
        temporary = os.path.join(self.root, "tmp")
        os.makedirs(temporary)
        self.env["TMPDIR"] = temporary
        demo, transport = spawn(SPC + ["demo", "--size", "512M"], self.root, self.env)
        receiving = os.path.join(temporary, "spc-demo-*", "inbox", PARTIAL_DIRECTORY, "*")
        deadline = reactor.seconds() + HELD_TIMEOUT
        while not glob.glob(receiving):
            if demo.status is not None or reactor.seconds() > deadline:
                self.fail(f"the demo did not start sending:\n{demo.log}")
            yield deferLater(reactor, POLL_INTERVAL, lambda: None)
        signal(transport, "INT")
        result = yield demo.whenEnded()
        self.assertEqual(result.code, 130, result)
        self.assertEqual(result.err, "spc: interrupted\n")
        self.assertEqual(os.listdir(temporary), [])
