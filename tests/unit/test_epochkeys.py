# -*- test-case-name: tests.unit.test_epochkeys -*-
"""
Tests for L{spc.session.epochkeys}: a session's epoch secrets, which epoch
is committed and which pending, and every change reaching every
connection.
"""

from __future__ import annotations

from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from spc.session.epochkeys import EpochKeys

S0 = b"\x00" * 32


def secretOf(epoch: int) -> bytes:
    return bytes([epoch % 256]) * 32


class FakeRecords:
    """
    A connection's record layer as the epoch keys change it.

    @ivar epochs: the secret of each epoch it accepts.
    @ivar sendEpoch: the epoch it seals under.
    """

    def __init__(self, epoch: int, secret: bytes) -> None:
        self.epochs = {epoch: secret}
        self.sendEpoch = epoch

    def installEpoch(self, epoch: int, secret: bytes) -> None:
        self.epochs[epoch] = secret

    def switchSendEpoch(self, epoch: int) -> None:
        self.sendEpoch = epoch

    def dropEpoch(self, epoch: int) -> None:
        self.epochs.pop(epoch, None)


class FakeConnection:
    """
    A connection that gets its record layer from L{activate}.
    """

    def __init__(self) -> None:
        self.records: FakeRecords | None = None

    def activate(self, epoch: int, epochSecret: bytes) -> None:
        self.records = FakeRecords(epoch, epochSecret)


def makeKeys(*connections: FakeConnection, epoch: int = 0):
    """
    L{EpochKeys} at C{epoch} over a list of connections a test may grow,
    each given its keys at C{epoch}.
    """
    live = list(connections)
    keys = EpochKeys(epoch, secretOf(epoch), lambda: live)
    for connection in connections:
        keys.activate(connection, epoch)
    return keys, live


class EpochKeysTests(SynchronousTestCase):
    """
    What each change does to the keys and to the connections.
    """

    def test_installPending(self) -> None:
        """
        An epoch installed above the committed one is held and pending, and
        every connection accepts it without sending under it.
        """
        connection = FakeConnection()
        keys, _ = makeKeys(connection)
        keys.install(1, secretOf(1))
        self.assertEqual((keys.committed, keys.pending), (0, 1))
        self.assertEqual(keys.held(), frozenset({0, 1}))
        self.assertEqual(keys.secret(1), secretOf(1))
        self.assertEqual(connection.records.epochs, {0: S0, 1: secretOf(1)})
        self.assertEqual(connection.records.sendEpoch, 0)

    def test_switchCommits(self) -> None:
        """
        Switching to the pending epoch commits it: nothing is pending, and
        every connection sends under it while still accepting the previous
        one.
        """
        connection = FakeConnection()
        keys, _ = makeKeys(connection)
        keys.install(1, secretOf(1))
        keys.switch(1)
        self.assertEqual((keys.committed, keys.pending), (1, None))
        self.assertEqual(connection.records.sendEpoch, 1)
        self.assertEqual(set(connection.records.epochs), {0, 1})

    def test_dropPending(self) -> None:
        """
        Dropping the pending epoch (an abort) leaves nothing pending and
        forgets its secret everywhere.
        """
        connection = FakeConnection()
        keys, _ = makeKeys(connection)
        keys.install(1, secretOf(1))
        keys.drop(1)
        self.assertEqual((keys.committed, keys.pending), (0, None))
        self.assertIsNone(keys.secret(1))
        self.assertEqual(connection.records.epochs, {0: S0})

    def test_dropPrevious(self) -> None:
        """
        Dropping the previous epoch at the end of an overlap leaves a
        newer pending epoch pending.
        """
        keys, _ = makeKeys()
        keys.install(1, secretOf(1))
        keys.switch(1)
        keys.install(2, secretOf(2))
        keys.drop(0)
        self.assertEqual((keys.committed, keys.pending), (1, 2))
        self.assertEqual(keys.held(), frozenset({1, 2}))

    def test_activateGivesLaterEpochs(self) -> None:
        """
        A connection that attaches under an epoch gets that epoch's secret
        and every later epoch the session holds, not the earlier ones.
        """
        keys, live = makeKeys()
        keys.install(1, secretOf(1))
        keys.switch(1)
        keys.install(2, secretOf(2))
        late = FakeConnection()
        keys.activate(late, 1)
        live.append(late)
        self.assertEqual(late.records.epochs, {1: secretOf(1), 2: secretOf(2)})
        self.assertEqual(late.records.sendEpoch, 1)
        keys.switch(2)
        self.assertEqual(late.records.sendEpoch, 2)

    def test_activateUnheld(self) -> None:
        """
        An epoch the session does not hold gives no keys.
        """
        keys, _ = makeKeys()
        self.assertRaises(KeyError, keys.activate, FakeConnection(), 5)

    def test_clear(self) -> None:
        """
        A session that ended holds no secret.
        """
        keys, _ = makeKeys()
        keys.install(1, secretOf(1))
        keys.clear()
        self.assertEqual(keys.held(), frozenset())
        self.assertIsNone(keys.secret(0))

    @settings(deadline=None)
    @given(
        st.lists(
            st.tuples(st.sampled_from(["install", "switch", "drop"]), st.integers(0, 6)),
            max_size=30,
        )
    )
    def test_connectionsFollow(self, changes) -> None:
        """
        Whatever the changes, every connection accepts exactly the epochs
        the keys hold, with their secrets, and sends under the committed
        one; a pending epoch is one held above the committed one.
        """
        first, second = FakeConnection(), FakeConnection()
        keys, _ = makeKeys(first, second)
        for change, epoch in changes:
            if change == "install":
                keys.install(epoch, secretOf(epoch))
            elif change == "switch" and keys.secret(epoch) is not None:
                keys.switch(epoch)
            elif change == "drop" and epoch != keys.committed:
                keys.drop(epoch)
            held = {epoch: keys.secret(epoch) for epoch in keys.held()}
            for connection in (first, second):
                self.assertEqual(connection.records.epochs, held)
                self.assertEqual(connection.records.sendEpoch, keys.committed)
            if keys.pending is not None:
                self.assertIn(keys.pending, held)
                self.assertGreater(keys.pending, keys.committed)
