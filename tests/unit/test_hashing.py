# -*- test-case-name: tests.unit.test_hashing -*-
"""
Tests for L{spc.files.hashing}: whatever the order of arrival, the
duplicates and the ranges held from an earlier attempt, the digest is the
SHA-256 of the file, and the memory kept never exceeds the window.
"""

from __future__ import annotations

import hashlib

from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from spc.files import hashing
from spc.files.hashing import EarlyWindow, InOrderHasher
from spc.files.ranges import RangeSet

PIECE = 64


@st.composite
def arrivals(draw):
    """
    A file, the pieces of it held from an earlier attempt, the order the
    others arrive in (with duplicates, held ones included), and a window.
    """
    size = draw(st.integers(min_value=0, max_value=40 * PIECE))
    data = draw(st.binary(min_size=size, max_size=size))
    offsets = list(range(0, size, PIECE))
    held = draw(st.sets(st.sampled_from(offsets))) if offsets else set()
    order = draw(st.permutations([o for o in offsets if o not in held]))
    duplicates = draw(st.lists(st.sampled_from(offsets), max_size=10)) if offsets else []
    for duplicate in duplicates:
        order.insert(draw(st.integers(0, len(order))), duplicate)
    window = draw(st.integers(min_value=0, max_value=12 * PIECE))
    return data, held, order, window


class HasherTests(SynchronousTestCase):
    """
    L{InOrderHasher} and the L{EarlyWindow} its hashers share.
    """

    @settings(max_examples=400)
    @given(arrivals(), st.integers(min_value=PIECE // 2, max_value=5 * PIECE))
    def test_anyOrder(self, arrival, block: int) -> None:
        """
        Pieces written in any order, duplicated, with any of them already on
        disk from an earlier attempt: once every byte is written the hasher
        is done and its digest is that of the file; the window is never
        exceeded, and only bytes on disk are ever read back.
        """
        self.patch(hashing, "READ_BACK_BLOCK", block)
        data, held, order, limit = arrival
        disk = bytearray(len(data))
        onDisk = RangeSet()
        for offset in held:
            disk[offset : offset + PIECE] = data[offset : offset + PIECE]
            onDisk.add(offset, min(offset + PIECE, len(data)))
        window = EarlyWindow(limit)

        def readBack(offset: int, length: int) -> bytes:
            self.assertTrue(onDisk.covers(offset, offset + length))
            return bytes(disk[offset : offset + length])

        hasher = InOrderHasher(len(data), window, readBack, RangeSet(onDisk.ranges()))
        for offset in order:
            piece = data[offset : offset + PIECE]
            if not onDisk.covers(offset, offset + len(piece)):
                disk[offset : offset + len(piece)] = piece
                onDisk.add(offset, offset + len(piece))
            hasher.written(offset, piece)
            self.assertLessEqual(window.used, limit)
        hasher.advance()
        self.assertTrue(hasher.done)
        self.assertEqual(hasher.digest(), hashlib.sha256(data).digest())
        self.assertEqual(window.used, 0)

    def test_inOrderReadsNothing(self) -> None:
        """
        Pieces arriving in order are hashed from their buffers: nothing is
        read back, and nothing is kept.
        """
        data = bytes(range(256)) * 4
        window = EarlyWindow(10 * PIECE)
        hasher = InOrderHasher(len(data), window, lambda o, n: self.fail("read back"))
        for offset in range(0, len(data), PIECE):
            hasher.written(offset, data[offset : offset + PIECE])
        self.assertEqual(hasher.digest(), hashlib.sha256(data).digest())

    def test_earlyKeptThenHashed(self) -> None:
        """
        A piece ahead of the cursor is kept while the window has room, and
        hashed from memory when the gap before it is filled.
        """
        data = b"a" * PIECE + b"b" * PIECE
        window = EarlyWindow(PIECE)
        hasher = InOrderHasher(len(data), window, lambda o, n: self.fail("read back"))
        hasher.written(PIECE, data[PIECE:])
        self.assertEqual((hasher.cursor, window.used), (0, PIECE))
        hasher.written(0, data[:PIECE])
        self.assertEqual((hasher.cursor, window.used), (2 * PIECE, 0))
        self.assertEqual(hasher.digest(), hashlib.sha256(data).digest())

    def test_overWindowReadBack(self) -> None:
        """
        A piece that does not fit the window is read back when its turn
        comes, and the digest is still right.
        """
        data = b"a" * PIECE + b"b" * PIECE
        reads: list = []

        def readBack(offset: int, length: int) -> bytes:
            reads.append((offset, length))
            return data[offset : offset + length]

        hasher = InOrderHasher(len(data), EarlyWindow(0), readBack)
        hasher.written(PIECE, data[PIECE:])
        hasher.written(0, data[:PIECE])
        self.assertEqual(reads, [(PIECE, PIECE)])
        self.assertEqual(hasher.digest(), hashlib.sha256(data).digest())

    def test_notDoneRefusesDigest(self) -> None:
        """
        The digest of a file not hashed to its end is not given.
        """
        hasher = InOrderHasher(10, EarlyWindow(0), lambda o, n: b"")
        self.assertRaises(RuntimeError, hasher.digest)

    def test_releaseGivesBack(self) -> None:
        """
        An abandoned file gives its kept pieces back to the window.
        """
        window = EarlyWindow(PIECE)
        hasher = InOrderHasher(2 * PIECE, window, lambda o, n: b"")
        hasher.written(PIECE, b"x" * PIECE)
        hasher.release()
        self.assertEqual(window.used, 0)
