"""
Tests for the daemon's start-up failures (issue 12, part 3): every one is
one clear line (and, for a command line it cannot parse, the usage line),
creates nothing, and leaves no pid file.  The real C{twistd} runs in a
process of its own; L{spc.server.inboxdir} and L{spc.server.daemon} are
also driven directly.
"""

from __future__ import annotations

import errno
import os
import socket
import stat

from twisted.internet.defer import inlineCallbacks
from twisted.internet.error import CannotListenError
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from spc.errors import ConfigurationError
from spc.files.names import PARTIAL_DIRECTORY
from spc.server import inboxdir
from spc.server.daemon import StartFailed
from spc.tap import makeService
from tests.test_endtoend import EndToEndTestCase, Result, run
from tests.test_files import ANOTHER_USER
from tests.test_status import shortTemporaryDirectory
from tests.test_tap import keyDirWithIdentity, makeOptions

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


class MakeInboxTests(SynchronousTestCase):
    """
    L{inboxdir.makeInbox} makes the inbox, or says in one line why it
    cannot, and what it made can be taken away again.
    """

    def test_makesWhatIsMissing(self) -> None:
        """
        The inbox, the missing folders above it and its partial folder
        are made, mode 0700 whatever the umask; undoing removes them all
        and nothing else.
        """
        root = os.path.abspath(self.mktemp())
        os.mkdir(root)
        inbox = os.path.join(root, "a", "b", "inbox")
        old = os.umask(0o077 ^ 0o070)
        self.addCleanup(os.umask, old)
        made = inboxdir.makeInbox(inbox)
        partial = os.path.join(inbox, PARTIAL_DIRECTORY)
        expected = [os.path.join(root, "a"), os.path.join(root, "a", "b"), inbox, partial]
        self.assertEqual(made.paths, expected)
        for path in expected:
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o700, path)
        made.undo()
        self.assertEqual(os.listdir(root), [])

    def test_existingInbox(self) -> None:
        """
        In an inbox that exists only the partial folder is made, and only
        it is undone.
        """
        inbox = self.mktemp()
        os.makedirs(inbox)
        made = inboxdir.makeInbox(inbox)
        self.assertEqual(made.paths, [os.path.join(os.path.abspath(inbox), PARTIAL_DIRECTORY)])
        made.undo()
        self.assertEqual(os.listdir(inbox), [])
        inboxdir.makeInbox(inbox)
        self.assertEqual(inboxdir.makeInbox(inbox).paths, [])

    def test_undoKeepsWhatWasWritten(self) -> None:
        """
        Undoing stops at a folder that holds something: nothing written in
        the inbox is ever removed.
        """
        inbox = os.path.join(os.path.abspath(self.mktemp()), "inbox")
        made = inboxdir.makeInbox(inbox)
        with open(os.path.join(inbox, "kept"), "w"):
            pass
        made.undo()
        self.assertEqual(sorted(os.listdir(inbox)), ["kept"])

    def test_keep(self) -> None:
        """
        Once kept, the folders are the daemon's: undoing does nothing.
        """
        inbox = self.mktemp()
        made = inboxdir.makeInbox(inbox)
        made.keep()
        made.undo()
        self.assertTrue(os.path.isdir(os.path.join(inbox, PARTIAL_DIRECTORY)))

    def test_cannotMake(self) -> None:
        """
        A folder the system will not make (here: permission denied, as a
        user who is not root meets it) is one line naming it and the
        reason, and what was made before is removed.
        """
        root = os.path.abspath(self.mktemp())
        os.mkdir(root)
        realMkdir = os.mkdir

        def mkdir(path, mode=0o777):
            if path.endswith("inbox"):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
            realMkdir(path, mode)

        self.patch(inboxdir.os, "mkdir", mkdir)
        inbox = os.path.join(root, "above", "inbox")
        error = self.assertRaises(ConfigurationError, inboxdir.makeInbox, inbox)
        self.assertEqual(
            error.args[0], f"--inbox: cannot make the folder {inbox}: Permission denied"
        )
        self.assertEqual(os.listdir(root), [])

    def test_cannotWrite(self) -> None:
        """
        An inbox the daemon's user may not write in is one line too.
        """
        inbox = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(inbox, PARTIAL_DIRECTORY))
        self.patch(inboxdir.os, "access", lambda path, mode: False)
        error = self.assertRaises(ConfigurationError, inboxdir.makeInbox, inbox)
        self.assertEqual(error.args[0], f"--inbox: cannot write in {inbox}: Permission denied")

    def test_owner(self) -> None:
        """
        Made as root for C{twistd --uid USER}, the folders belong to USER.
        """
        inbox = os.path.join(os.path.abspath(self.mktemp()), "inbox")
        made = inboxdir.makeInbox(inbox, owner=(ANOTHER_USER, ANOTHER_USER))
        for path in made.paths:
            status = os.stat(path)
            self.assertEqual((status.st_uid, status.st_gid), (ANOTHER_USER, ANOTHER_USER))

    if os.geteuid() != 0:
        test_owner.skip = "only root can give folders to another user"  # type: ignore


class FailingReactor(MemoryReactorClock):
    """
    A reactor on which every TCP port is in use.
    """

    def listenTCP(self, port, factory, backlog=50, interface=""):
        raise CannotListenError(interface, port, OSError(errno.EADDRINUSE, "Address in use"))


class StartFailedTests(SynchronousTestCase):
    """
    L{StartFailed}: what the daemon raises when it cannot listen.
    """

    def test_bothKinds(self) -> None:
        """
        It is an L{Exception}, which twistd's clean-up catches (and so
        removes its pid file), and a L{SystemExit}, which Python prints as
        one line.
        """
        error = StartFailed("spc: cannot listen")
        self.assertIsInstance(error, Exception)
        self.assertIsInstance(error, SystemExit)
        self.assertEqual(error.code, "spc: cannot listen")

    def test_portInUse(self) -> None:
        """
        A port in use: the inbox made for the start is removed, and the
        line names the port.
        """
        root = os.path.abspath(self.mktemp())
        inbox = os.path.join(root, "inbox")
        service = makeService(
            makeOptions(
                "--key-dir", keyDirWithIdentity(self), "--ports", "9000", "--inbox", inbox,
                "--allow-any-client", "--control-socket", "none",
            ),
            reactor=FailingReactor(),
        )
        self.assertTrue(os.path.isdir(inbox))
        error = self.assertRaises(StartFailed, service.privilegedStartService)
        self.assertIn(":9000: Address in use", error.code)
        self.assertFalse(os.path.exists(root))

    def test_startedKeepsInbox(self) -> None:
        """
        A daemon that started keeps its inbox when it stops.
        """
        inbox = self.mktemp()
        service = makeService(
            makeOptions(
                "--key-dir", keyDirWithIdentity(self), "--ports", "9000", "--inbox", inbox,
                "--allow-any-client", "--control-socket", "none",
            ),
            reactor=MemoryReactorClock(),
        )
        service.privilegedStartService()
        service.startService()
        service.stopService()
        service.madeFolders.undo()
        self.assertTrue(os.path.isdir(inbox))
