"""
Tests for the daemon's smaller promises (issue 12, part 6): what it says
when it starts, what it does not say when it is idle, and what it leaves
behind.
"""

from __future__ import annotations

import os

from twisted.internet.testing import MemoryReactorClock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from spc.keys import identity
from spc.tap import makeService
from tests.test_tap import keyDirWithIdentity, makeOptions


class TransferSecretTests(SynchronousTestCase):
    """
    L{identity.loadTransferSecret} makes C{KEYDIR/transfer_secret} and
    nothing else.
    """

    def test_noTemporaryFileLeft(self) -> None:
        """
        Making the secret leaves the secret alone in the key directory: the
        temporary file it was staged in is gone.
        """
        keyDir = self.mktemp()
        os.makedirs(keyDir, 0o700)
        secret = identity.loadTransferSecret(keyDir)
        self.assertEqual(os.listdir(keyDir), [identity.TRANSFER_SECRET_NAME])
        self.assertEqual(identity.loadTransferSecret(keyDir), secret)
        self.assertEqual(os.listdir(keyDir), [identity.TRANSFER_SECRET_NAME])

    def test_noTemporaryFileLeftWhenAnotherWon(self) -> None:
        """
        When another process made the secret between the read and the
        install, its secret is used, and the staged one is removed.
        """
        keyDir = self.mktemp()
        os.makedirs(keyDir, 0o700)
        theirs = b"t" * identity.TRANSFER_SECRET_SIZE
        realInstall = identity.install

        def raced(temporary: str, path: str, replace: bool) -> None:
            with open(path, "wb") as f:
                f.write(theirs)
            realInstall(temporary, path, replace)

        self.patch(identity, "install", raced)
        self.assertEqual(identity.loadTransferSecret(keyDir), theirs)
        self.assertEqual(os.listdir(keyDir), [identity.TRANSFER_SECRET_NAME])


def startedDaemonLog(case: SynchronousTestCase, *argv: str) -> list[str]:
    """
    Start a daemon made from C{argv} (besides a key directory and an
    inbox) on a memory reactor, until the test ends.

    @return: the text of every event it logged meanwhile.
    """
    lines: list[str] = []

    def observe(event) -> None:
        lines.append(formatEvent(event))

    service = makeService(
        makeOptions(
            "--key-dir", keyDirWithIdentity(case), "--inbox", case.mktemp(),
            "--allow-any-client", *argv,
        ),
        reactor=MemoryReactorClock(),
    )
    globalLogPublisher.addObserver(observe)
    case.addCleanup(globalLogPublisher.removeObserver, observe)
    service.startService()
    case.addCleanup(service.stopService)
    return lines


class ServingTests(SynchronousTestCase):
    """
    The line that says the daemon serves counts its channels in words.
    """

    def test_oneChannel(self) -> None:
        """
        One channel is "1 channel".
        """
        [line] = [line for line in startedDaemonLog(self, "--ports", "9000") if " serving " in line]
        self.assertIn(" serving 1 channel; ", line)

    def test_channels(self) -> None:
        """
        More are "N channels".
        """
        log = startedDaemonLog(self, "--ports", "9000-9002")
        [line] = [line for line in log if " serving " in line]
        self.assertIn(" serving 3 channels; ", line)
