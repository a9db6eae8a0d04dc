# -*- test-case-name: tests.unit.test_pipeline -*-
"""
Tests for L{spc.transport.pipeline}: a connection's frames sealed at once
or in its crypto lane are written in sequence order; incoming frames are
opened one at a time, in order, and nothing after a frame that fails is
acted on.  The lane is run by hand (L{tests.fakes.QueuedLane}); the record
layers are real.
"""

from __future__ import annotations

from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from spc.crypto.suites import A256CBC_HS512, AES256_GCM
from spc.errors import AuthenticationFailed, ProtocolError
from spc.protocol import frames
from spc.protocol.recordlayer import ConnectionKeys, RecordLayer
from spc.transport.pipeline import BULK_BYTES, Opener, Sealer
from tests.fakes import QueuedLane

SECRET = b"e" * 32
INNER = frames.maxInnerSize(frames.DEFAULT_FRAGMENT_SIZE)


def layers(suite=A256CBC_HS512) -> tuple[RecordLayer, RecordLayer]:
    """
    The client's and the server's record layers of one connection.
    """
    keys = ConnectionKeys(b"s" * 16, suite, 0, b"t" * 32, b"c" * 32)
    return RecordLayer(keys, False, 0, SECRET, INNER), RecordLayer(keys, True, 0, SECRET, INNER)


def record(number: int, size: int) -> bytes:
    return number.to_bytes(4, "big") * (size // 4)


class SealerTests(SynchronousTestCase):
    """
    L{Sealer}: frames sealed at once or in the lane leave in sequence order.
    """

    @settings(max_examples=100, deadline=None)
    @given(
        st.lists(st.sampled_from([16, BULK_BYTES, 2 * BULK_BYTES]), min_size=1, max_size=12),
        st.lists(st.integers(0, 3), max_size=30),
    )
    def test_writtenInOrder(self, sizes: list[int], steps: list[int]) -> None:
        """
        Small records sealed at once and large ones sealed in the lane are
        written in the order they were handed over, whenever the lane runs,
        and each opens on the other end in that order.
        """
        client, server = layers()
        lane = QueuedLane()
        written: list[tuple[bytes, bytes]] = []
        sealer = Sealer(lane, lambda aad, body: written.append((aad, body)))
        for number, size in enumerate(sizes):
            aad, sealing = client.prepare(record(number, size))
            sealer.send(aad, sealing, size)
            for _ in range(steps.pop(0) if steps else 0):
                if lane.jobs:
                    lane.runOne()
        lane.runAll()
        self.assertEqual(sealer.queued, 0)
        opened = [server.open(aad[4:] + body)[1] for aad, body in written]
        self.assertEqual(opened, [record(n, size) for n, size in enumerate(sizes)])

    def test_queued(self) -> None:
        """
        A frame waiting for the lane, and the small ones after it, count as
        queued until they are written; a cleared sealer writes nothing more.
        """
        client, _ = layers()
        lane = QueuedLane()
        written: list = []
        sealer = Sealer(lane, lambda aad, body: written.append(aad))
        for size in (BULK_BYTES, 16):
            aad, sealing = client.prepare(record(0, size))
            sealer.send(aad, sealing, size)
        self.assertEqual((sealer.queued, written), (2, []))
        sealer.clear()
        lane.runAll()
        self.assertEqual((sealer.queued, written), (0, []))


class OpenerTests(SynchronousTestCase):
    """
    L{Opener}: frames opened one at a time, in order, and nothing acted on
    after one that fails.
    """

    def frames(self, *sizes: int, suite=A256CBC_HS512) -> tuple[RecordLayer, list[bytes]]:
        client, server = layers(suite)
        bodies = []
        for number, size in enumerate(sizes):
            aad, body = client.seal(record(number, size))
            bodies.append(aad[4:] + body)
        return server, bodies

    def opener(self, server: RecordLayer, lane):
        """
        An opener whose owner does what a connection does with a frame:
        tells the record layer, then keeps the plaintext.
        """
        self.acted: list = []
        self.faults: list = []
        self.ready: list = []

        def act(epoch: int, plaintext: bytes) -> None:
            server.opened(epoch, plaintext)
            self.acted.append(plaintext)

        return Opener(server, lane, act, self.faults.append, lambda: self.ready.append(True))

    def test_oneAtATime(self) -> None:
        """
        A large frame goes to the lane and holds the next one back until it
        was opened and acted on; a small one is opened at once.
        """
        server, bodies = self.frames(BULK_BYTES, 16)
        lane = QueuedLane()
        opener = self.opener(server, lane)
        self.assertFalse(opener.received(bodies[0]))
        self.assertTrue(opener.busy)
        self.assertRaises(RuntimeError, opener.received, bodies[1])
        lane.runOne()
        self.assertEqual((self.acted, self.ready), ([record(0, BULK_BYTES)], [True]))
        self.assertTrue(opener.received(bodies[1]))
        self.assertEqual(self.acted[1:], [record(1, 16)])

    def test_forgedStopsEverything(self) -> None:
        """
        A forged frame opened in the lane is a fault, and nothing more is
        acted on.
        """
        server, bodies = self.frames(BULK_BYTES, 16)
        forged = bytearray(bodies[0])
        forged[-1] ^= 1
        opener = self.opener(server, QueuedLane())
        opener.received(bytes(forged))
        opener._lane.runOne()
        [fault] = self.faults
        self.assertIsInstance(fault, AuthenticationFailed)
        self.assertEqual((self.acted, self.ready), ([], []))
        self.assertFalse(opener.received(bodies[1]))
        self.assertEqual(self.acted, [])

    def test_checkedOnlyAfterTheOneBefore(self) -> None:
        """
        The sequence number of a frame is taken only once it is opened: a
        frame out of its turn is refused when it is checked.
        """
        server, bodies = self.frames(16, 16)
        opener = self.opener(server, None)
        self.assertFalse(opener.received(bodies[1]))
        [fault] = self.faults
        self.assertIsInstance(fault, ProtocolError)

    def test_inlineLaneAtOnce(self) -> None:
        """
        With a lane that runs at once, a large frame is acted on before
        C{received} returns, which says the next may come, and C{ready} is
        not called (the caller goes on by itself).
        """
        from spc.lanes import InlineLane

        server, bodies = self.frames(BULK_BYTES, BULK_BYTES, suite=AES256_GCM)
        opener = self.opener(server, InlineLane())
        self.assertTrue(opener.received(bodies[0]))
        self.assertTrue(opener.received(bodies[1]))
        self.assertEqual(len(self.acted), 2)
        self.assertEqual(self.ready, [])

