# -*- test-case-name: tests.unit.test_inboxdir -*-
"""
Tests for the parts of the daemon's start that make nothing when it fails
(issue 12, part 3): L{spc.server.inboxdir} makes the inbox or says in one
line why it cannot, and takes what it made away again, and
L{spc.server.daemon.StartFailed} leaves no pid file.  The real C{twistd}
is L{tests.integration.test_daemon_startup}'s.
"""

from __future__ import annotations

import errno
import os
import stat

from twisted.internet.error import CannotListenError
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from spc.errors import ConfigurationError
from spc.files.names import PARTIAL_DIRECTORY
from spc.server import inboxdir
from spc.server.daemon import StartFailed
from spc.tap import makeService
from tests.unit.test_keyfiles import ANOTHER_USER
from tests.unit.test_tap import keyDirWithIdentity, makeOptions


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
