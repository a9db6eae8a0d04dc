"""
Tests for the daemon's smaller promises (issue 12, part 6): what it says
when it starts, what it does not say when it is idle, and what it leaves
behind.
"""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from spc.keys import identity


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
