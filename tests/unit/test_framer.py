# -*- test-case-name: tests.unit.test_framer -*-
"""
Tests for L{spc.transport.framer}: length-prefixed frames cut from a byte
stream, and the bound on a frame checked before it is buffered.
"""

from __future__ import annotations

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
