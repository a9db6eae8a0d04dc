# -*- test-case-name: tests.memory.test_inbox_modes -*-
"""
Tests for the permissions of what the daemon stores (issue 12, part 4):
files 0600 and folders 0700 by default, whatever the process's umask, and
what C{--inbox-umask} lets the group or others have.
"""

from __future__ import annotations

import os
import stat

from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from spc.files.names import MESSAGES_NAME, PARTIAL_DIRECTORY, RECEIPTS_NAME
from spc.files.store import FileStore
from spc.protocol import records
from spc.server.inbox import InboxReceiver
from spc.tap import makeService, parseUmask
from tests.fakes import FakeSession
from tests.memory.test_receiving import Link, TransferTestCase
from tests.unit.test_tap import keyDirWithIdentity, makeOptions


def mode(path: str) -> int:
    """
    The permission bits of C{path} itself.
    """
    return stat.S_IMODE(os.lstat(path).st_mode)


def withUmask(testCase: SynchronousTestCase, mask: int) -> None:
    """
    Run the rest of the test with the process's umask C{mask}.
    """
    old = os.umask(mask)
    testCase.addCleanup(os.umask, old)


class StoreModeTests(TransferTestCase):
    """
    A store gives the files it stores, and the folders it makes for them,
    the modes it was told, whatever the process's umask.
    """

    def deliver(self, link: Link, path: str, name: str):
        """
        Send C{path} as C{name} over C{link}.

        @return: the L{spc.files.sending.Delivered}.
        """
        _, sent = link.send(path, name)
        link.flow()
        return self.successResultOf(sent)

    def test_defaults(self) -> None:
        """
        By default a stored file is 0600 and a folder made for one 0700,
        even under a umask that would allow more.
        """
        withUmask(self, 0)
        self.deliver(Link(self, self.store), self.source(b"x"), "a/b/x.txt")
        self.assertEqual(mode(os.path.join(self.inbox, "a/b/x.txt")), 0o600)
        self.assertEqual(mode(os.path.join(self.inbox, "a")), 0o700)
        self.assertEqual(mode(os.path.join(self.inbox, "a/b")), 0o700)

    def test_groupMayRead(self) -> None:
        """
        Told 0640 and 0750, a store gives stored files, folders made for
        them or on their own, and its receipts those modes, even under
        twistd's own umask for a daemon (077); partial files stay
        private.
        """
        withUmask(self, 0o077)
        store = FileStore(self.mktemp(), receipts=True, fileMode=0o640, folderMode=0o750)
        link = Link(self, store)
        self.deliver(link, self.source(b"x" * 100_000), "a/b/x.txt")
        self.assertEqual(mode(os.path.join(store.directory, "a/b/x.txt")), 0o640)
        self.assertEqual(mode(os.path.join(store.directory, "a")), 0o750)
        self.assertEqual(mode(os.path.join(store.directory, "a/b")), 0o750)
        self.assertEqual(mode(os.path.join(store.directory, RECEIPTS_NAME)), 0o640)
        self.assertEqual(mode(os.path.join(store.directory, PARTIAL_DIRECTORY)), 0o700)
        link.sendFolder("empty/inside")
        link.flow()
        self.assertEqual(mode(os.path.join(store.directory, "empty")), 0o750)
        self.assertEqual(mode(os.path.join(store.directory, "empty/inside")), 0o750)

    def test_existingFoldersKept(self) -> None:
        """
        A folder that exists keeps its mode: the store sets only what it
        makes.
        """
        store = FileStore(self.mktemp(), fileMode=0o640, folderMode=0o750)
        os.mkdir(os.path.join(store.directory, "mine"), 0o711)
        os.chmod(os.path.join(store.directory, "mine"), 0o711)
        self.deliver(Link(self, store), self.source(b"x"), "mine/x.txt")
        self.assertEqual(mode(os.path.join(store.directory, "mine")), 0o711)

    def test_stillAlreadyStored(self) -> None:
        """
        The mode is set before the file is placed: the file sent again is
        answered "already stored", its recorded change time unchanged.
        """
        store = FileStore(self.mktemp(), fileMode=0o644)
        link = Link(self, store)
        path = self.source(b"same")
        self.assertFalse(self.deliver(link, path, "same.txt").already)
        self.assertTrue(self.deliver(link, path, "same.txt").already)



class MessageModeTests(SynchronousTestCase):
    """
    C{messages.jsonl} gets the receiver's file mode when it is made.
    """

    def test_made(self) -> None:
        """
        Made with 0640 under a umask of 077, it is 0640; by default 0600
        under a umask of 0.
        """
        withUmask(self, 0o077)
        receiver = InboxReceiver(self.mktemp(), fileMode=0o640)
        receiver.messageReceived(FakeSession(peer="SHA256:sender"), b"x", records.KIND_TEXT)
        self.assertEqual(mode(receiver.messagesPath), 0o640)
        os.umask(0)
        receiver = InboxReceiver(self.mktemp())
        receiver.messageReceived(FakeSession(peer="SHA256:sender"), b"x", records.KIND_TEXT)
        self.assertEqual(mode(receiver.messagesPath), 0o600)

    def test_existingKept(self) -> None:
        """
        A log that exists keeps the mode its owner gave it.
        """
        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, MESSAGES_NAME)
        with open(path, "w"):
            pass
        os.chmod(path, 0o604)
        InboxReceiver(directory, fileMode=0o640).messageReceived(
            FakeSession(peer="SHA256:sender"), b"x", records.KIND_TEXT
        )
        self.assertEqual(mode(path), 0o604)


class InboxUmaskOptionTests(SynchronousTestCase):
    """
    The daemon's C{--inbox-umask}.
    """

    def test_parsed(self) -> None:
        """
        Octal digits, as C{umask} takes them; 077 by default.
        """
        self.assertEqual(parseUmask("027"), 0o027)
        self.assertEqual(parseUmask("0"), 0)
        self.assertEqual(parseUmask("0o22"), 0o022)
        self.assertEqual(makeOptions("--ports", "9000", "--inbox", "x")["inbox-umask"], 0o077)
        for bad in ("", "8", "-1", "abc", "0777", "700", "1000", "00000"):
            self.assertRaises(usage.UsageError, parseUmask, bad)

    def test_daemon(self) -> None:
        """
        With C{--inbox-umask 027} the daemon makes its inbox 0750, and
        stores files 0640 in folders 0750; the logs are files too.
        """
        withUmask(self, 0o077)
        inbox = os.path.join(os.path.abspath(self.mktemp()), "inbox")
        service = makeService(
            makeOptions(
                "--key-dir", keyDirWithIdentity(self), "--ports", "9000", "--inbox", inbox,
                "--allow-any-client", "--control-socket", "none", "--inbox-umask", "027",
            ),
            reactor=MemoryReactorClock(),
        )
        self.assertEqual(mode(inbox), 0o750)
        self.assertEqual(mode(os.path.dirname(inbox)), 0o750)
        self.assertEqual(mode(os.path.join(inbox, PARTIAL_DIRECTORY)), 0o700)
        files = service.directory.files
        self.assertEqual((files.fileMode, files.folderMode), (0o640, 0o750))
        receiver = service.directory.receiver
        receiver.messageReceived(FakeSession(peer="SHA256:sender"), b"x", records.KIND_TEXT)
        self.assertEqual(mode(os.path.join(inbox, MESSAGES_NAME)), 0o640)
