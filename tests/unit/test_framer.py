# -*- test-case-name: tests.unit.test_framer -*-
"""
Tests for L{spc.transport.framer}: length-prefixed frames cut from a byte
stream, and the bound on a frame checked before it is buffered; whatever
the chunking of the stream, the same bodies come out, none over the cap is
ever buffered, and a body is copied at most once.
"""

from __future__ import annotations

from hypothesis import given, settings, strategies as st
from twisted.trial import unittest

from spc.errors import ProtocolError
from spc.protocol import frames
from spc.transport.framer import Framer


class FramerTests(unittest.SynchronousTestCase):
    """
    Tests for L{Framer}.
    """

    def test_split(self) -> None:
        """
        Frames arriving in arbitrary pieces come out whole, in order.
        """
        stream = b"".join(frames.framed(bytes([i]) * i) for i in range(1, 40))
        bodies = []
        framer = Framer(100)
        for start in range(0, len(stream), 7):
            framer.feed(stream[start : start + 7], lambda body: bodies.append(body) or True)
        self.assertEqual(bodies, [bytes([i]) * i for i in range(1, 40)])
        self.assertEqual(framer.pending(), 0)

    def test_capOnPrefix(self) -> None:
        """
        A prefix over the cap raises at once, before any body byte arrives;
        one at the cap waits for its body.
        """
        framer = Framer(2048)
        framer.feed(frames.LENGTH.pack(2048), lambda body: True)
        self.assertEqual(framer.pending(), 4)
        framer = Framer(2048)
        self.assertRaises(
            ProtocolError, framer.feed, frames.LENGTH.pack(2049), lambda body: True
        )

    def test_stop(self) -> None:
        """
        When delivery returns C{False}, later frames stay buffered.
        """
        framer = Framer(100)
        seen = []
        framer.feed(
            frames.framed(b"a") + frames.framed(b"b"), lambda body: seen.append(body) and False
        )
        self.assertEqual(seen, [b"a"])
        self.assertEqual(framer.pending(), 5)


CAP = 300


def chunked(stream: bytes, cuts: list[int]) -> list[bytes]:
    """
    C{stream} cut at the offsets C{cuts} (any order, any repeats).
    """
    points = sorted({0, len(stream), *(cut % (len(stream) + 1) for cut in cuts)})
    return [stream[start:end] for start, end in zip(points, points[1:])]


class FramerPropertyTests(unittest.SynchronousTestCase):
    """
    Any chunking of any frames: the same bodies, none over the cap kept.
    """

    @settings(max_examples=300)
    @given(
        st.lists(st.binary(max_size=CAP), max_size=12),
        st.lists(st.integers(min_value=0, max_value=10_000), max_size=40),
    )
    def test_anyChunking(self, bodies: list[bytes], cuts: list[int]) -> None:
        """
        Frames cut into any chunks come out as the same bodies, in order,
        with nothing left over, and the framer never holds more than one
        frame's prefix and body.
        """
        stream = b"".join(frames.framed(body) for body in bodies)
        framer = Framer(CAP)
        out: list[bytes] = []
        for chunk in chunked(stream, cuts):
            framer.feed(chunk, lambda body: out.append(bytes(body)) or True)
            self.assertLessEqual(framer.pending(), frames.LENGTH_PREFIX_SIZE + CAP)
        self.assertEqual(out, bodies)
        self.assertEqual(framer.pending(), 0)

    @settings(max_examples=300)
    @given(
        st.lists(st.binary(max_size=CAP), max_size=5),
        st.integers(min_value=CAP + 1, max_value=2**32 - 1),
        st.lists(st.integers(min_value=0, max_value=10_000), max_size=20),
        st.binary(max_size=100),
    )
    def test_overCapNeverBuffered(self, before, length, cuts, after) -> None:
        """
        A prefix over the cap, however it is chunked, raises once its
        fourth byte arrives, after every frame before it was delivered and
        before a byte of its body is kept.
        """
        stream = b"".join(frames.framed(body) for body in before)
        stream += frames.LENGTH.pack(length) + after
        framer = Framer(CAP)
        out: list[bytes] = []
        with self.assertRaises(ProtocolError):
            for chunk in chunked(stream, cuts):
                framer.feed(chunk, lambda body: out.append(bytes(body)) or True)
        self.assertEqual(out, before)
        self.assertLessEqual(framer.pending(), frames.LENGTH_PREFIX_SIZE)


class CopyTests(unittest.SynchronousTestCase):
    """
    A body is delivered without a copy, or filled once into its own buffer.
    """

    def test_wholeBodyNotCopied(self) -> None:
        """
        A body that lies whole inside one chunk is delivered as a view of
        that chunk: no copy.
        """
        chunk = frames.framed(b"first") + frames.framed(b"second")
        out: list = []
        Framer(CAP).feed(chunk, lambda body: out.append(body) or True)
        self.assertEqual([bytes(body) for body in out], [b"first", b"second"])
        for body in out:
            self.assertIsInstance(body, memoryview)
            self.assertIs(body.obj, chunk)

    def test_splitBodyFilledOnce(self) -> None:
        """
        A body spanning chunks is one buffer of its length, delivered as it
        is, and the framer keeps nothing of it afterwards.
        """
        stream = frames.framed(b"x" * 200)
        out: list = []
        framer = Framer(CAP)
        for start in range(0, len(stream), 50):
            framer.feed(stream[start : start + 50], lambda body: out.append(body) or True)
        [body] = out
        self.assertIsInstance(body, bytearray)
        self.assertEqual(body, b"x" * 200)
        self.assertIsNone(framer._body)
