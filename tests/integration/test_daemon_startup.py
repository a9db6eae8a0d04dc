# -*- test-case-name: tests.integration.test_daemon_startup -*-
"""
Tests for the daemon's start-up failures (issue 12, part 3), with the real
C{twistd} in a process of its own: every one is one clear line (and, for a
command line it cannot parse, the usage line), creates nothing, and leaves
no pid file.  L{tests.unit.test_inboxdir} drives the parts directly.
"""

from __future__ import annotations

import os
import socket

from twisted.internet.defer import inlineCallbacks

from tests.files import shortTemporaryDirectory
from tests.integration.test_endtoend import EndToEndTestCase, Result, run

TWISTD_WITH_PID = ["-c", "from twisted.scripts.twistd import run; run()", "-n"]
"""
C{twistd -n}, keeping its pid file (C{twistd.pid} in the working folder
unless C{--pidfile} says otherwise).
"""


def tree(root: str) -> set[str]:
    """
    Every path under C{root}, relative to it.
    """
    found = set()
    for folder, folders, files in os.walk(root):
        for name in folders + files:
            found.add(os.path.relpath(os.path.join(folder, name), root))
    return found


class StartupFailureTests(EndToEndTestCase):
    """
    The real C{twistd -n spc}, started where it cannot run.
    """

    @inlineCallbacks
    def failedStart(self, *args: str, spcArgs: tuple[str, ...] | None = None):
        """
        Run C{twistd -n spc} with the test's key directory, ports and inbox
        unless C{spcArgs} replaces them all, and C{args} after them.

        @return: a Deferred firing with its L{Result} once it exited, after
            checking it left nothing behind: no pid file, no inbox, no
            file or folder that was not there before.
        """
        before = tree(self.root)
        if spcArgs is None:
            spcArgs = ("--key-dir", self.serverKeys, "--ports", self.portList,
                       "--inbox", self.inbox, "--allow-any-client")
        result = yield run(TWISTD_WITH_PID + ["spc", *spcArgs, *args], self.root, self.env)
        self.assertFalse(os.path.lexists(os.path.join(self.root, "twistd.pid")), result)
        self.assertFalse(os.path.lexists(self.inbox), result)
        self.assertEqual(tree(self.root), before, result)
        return result

    def assertOneLine(self, result: Result, *fragments: str) -> str:
        """
        The daemon exited non-zero, without a traceback, with one line
        holding every fragment.

        @return: that line.
        """
        self.assertNotEqual(result.code, 0, result)
        output = result.out + result.err
        self.assertNotIn("Traceback", output)
        self.assertNotIn(" serving ", output)
        lines = [line for line in output.splitlines() if all(f in line for f in fragments)]
        self.assertEqual(len(lines), 1, output)
        return lines[0]

    @inlineCallbacks
    def test_unknownOption(self):
        """
        An option spc does not know gets the usage line and the reason,
        not the sixty lines of every option.
        """
        result = yield self.failedStart("--bogus")
        self.assertOneLine(result, "option --bogus not recognized")
        lines = (result.out + result.err).splitlines()
        self.assertLessEqual(len(lines), 3, lines)
        self.assertNotIn("--ack-timeout", result.out + result.err)
        self.assertIn("twistd [options] spc --inbox DIR", result.out + result.err)

    @inlineCallbacks
    def test_badValue(self):
        """
        So does an option spc knows with a value it cannot take, or a
        missing required option.
        """
        result = yield self.failedStart("--fragment-size", "lots")
        self.assertOneLine(result, "'lots' is not a size")
        self.assertLessEqual(len((result.out + result.err).splitlines()), 3)
        result = yield self.failedStart(spcArgs=("--key-dir", self.serverKeys))
        self.assertOneLine(result, "--inbox DIR is required")
        self.assertLessEqual(len((result.out + result.err).splitlines()), 3)

    @inlineCallbacks
    def test_inboxIsAFile(self):
        """
        An inbox that is a file, or below one, is refused in one line
        naming it.
        """
        path = os.path.join(self.root, "afile")
        with open(path, "w") as f:
            f.write("not a folder\n")
        for inbox in (path, os.path.join(path, "inbox")):
            result = yield self.failedStart("--inbox", inbox)
            self.assertOneLine(result, f"--inbox {path} is not a folder")

    @inlineCallbacks
    def test_inboxWhereNoFolderCanBe(self):
        """
        An inbox in C{/proc} or C{/sys}, where no folder can be made, is
        refused in one line with the system's reason.
        """
        for inbox in ("/proc/spc-inbox-test", "/sys/spc-inbox-test"):
            result = yield self.failedStart("--inbox", inbox)
            self.assertOneLine(result, f"cannot make the folder {inbox}: ")

    @inlineCallbacks
    def test_portInUse(self):
        """
        A port in use stops the daemon with one line naming it, after
        twistd wrote its pid file: the pid file is gone again, and so is
        the inbox the daemon had made.
        """
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", self.ports[2]))
        taken.listen()
        result = yield self.failedStart()
        self.assertOneLine(result, f"cannot listen on 127.0.0.1:{self.ports[2]}")

    @inlineCallbacks
    def test_controlSocketHeld(self):
        """
        A control socket another daemon holds stops the daemon with one
        line saying so; the inbox it made and the pid file are gone again.
        """
        path = os.path.join(shortTemporaryDirectory(self), "control.sock")
        os.symlink(str(os.getpid()), path + ".lock")
        result = yield self.failedStart("--control-socket", path)
        self.assertOneLine(result, "is another daemon using this socket?")

    @inlineCallbacks
    def test_controlSocketFolderMissing(self):
        """
        A control socket in a folder that does not exist stops the daemon
        with one line, not a traceback.
        """
        path = os.path.join(shortTemporaryDirectory(self), "missing", "control.sock")
        result = yield self.failedStart("--control-socket", path)
        self.assertOneLine(result, "cannot listen on the control socket", "missing")
