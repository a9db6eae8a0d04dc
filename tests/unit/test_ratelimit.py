# -*- test-case-name: tests.unit.test_ratelimit -*-
"""
Tests for L{spc.ratelimit}: sliding windows that forget idle keys, and the
key a source address is counted under.
"""

from __future__ import annotations

from hypothesis import given, settings, strategies as st
from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from spc.ratelimit import RateWindow, sourceKey


class RateWindowTests(SynchronousTestCase):
    """
    L{RateWindow} remembers only the keys with events in its window.
    """

    def test_forgetsIdleKeys(self) -> None:
        """
        A thousand keys seen once are all forgotten once their events left
        the window; a key still within it is kept.
        """
        clock = task.Clock()
        window = RateWindow(clock, 10.0)
        for key in range(1000):
            self.assertTrue(window.admit(key, 1))
        self.assertEqual(len(window), 1000)
        clock.advance(5)
        self.assertTrue(window.admit("recent", 1))
        clock.advance(5)
        self.assertTrue(window.admit("new", 1))
        self.assertEqual(len(window), 2)
        self.assertFalse(window.admit("recent", 1))
        clock.advance(5)
        self.assertTrue(window.admit("recent", 1))

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(
            st.tuples(
                st.floats(min_value=0, max_value=3, allow_nan=False),
                st.integers(min_value=0, max_value=5),
                st.integers(min_value=0, max_value=3),
            ),
            max_size=60,
        )
    )
    def test_sameAnswersAsCountingAll(self, steps) -> None:
        """
        Whatever the keys, limits and delays, the window answers as one
        that keeps every event it counted would, and remembers exactly the
        keys with an event in the window.
        """
        clock = task.Clock()
        period = 2.0
        window = RateWindow(clock, period)
        counted: dict[int, list[float]] = {}
        for delay, key, limit in steps:
            clock.advance(delay)
            now = clock.seconds()
            recent = [t for t in counted.get(key, []) if t > now - period]
            expected = len(recent) < limit
            self.assertEqual(window.admit(key, limit), expected)
            if expected:
                counted.setdefault(key, []).append(now)
            live = {k for k, times in counted.items() if any(t > now - period for t in times)}
            self.assertEqual(len(window), len(live))

    def test_refusedKeyForgotten(self) -> None:
        """
        A key refused over and over is forgotten like any other once its
        counted events are out of the window, and counts afresh after.
        """
        clock = task.Clock()
        window = RateWindow(clock, 1.0)
        self.assertTrue(window.admit("busy", 2))
        self.assertTrue(window.admit("busy", 2))
        for _ in range(10):
            clock.advance(0.05)
            self.assertFalse(window.admit("busy", 2))
        clock.advance(1)
        self.assertTrue(window.admit("other", 2))
        self.assertEqual(len(window), 1)
        self.assertEqual([window.admit("busy", 2) for _ in range(3)], [True, True, False])


class SourceKeyTests(SynchronousTestCase):
    """
    L{sourceKey}: the unit per-source limits count (A16).
    """

    def test_ipv4(self) -> None:
        """
        An IPv4 address counts alone.
        """
        self.assertEqual(sourceKey("192.0.2.1"), "192.0.2.1")
        self.assertNotEqual(sourceKey("192.0.2.1"), sourceKey("192.0.2.2"))

    def test_ipv6Prefix(self) -> None:
        """
        IPv6 addresses count by /64.
        """
        self.assertEqual(sourceKey("2001:db8:1:2::1"), "2001:db8:1:2::/64")
        self.assertEqual(
            sourceKey("2001:db8:1:2:ffff:ffff:ffff:ffff"), sourceKey("2001:DB8:1:2::7")
        )
        self.assertNotEqual(sourceKey("2001:db8:1:2::1"), sourceKey("2001:db8:1:3::1"))

    def test_mapped(self) -> None:
        """
        An IPv4-mapped IPv6 address counts as its IPv4 address.
        """
        self.assertEqual(sourceKey("::ffff:192.0.2.1"), "192.0.2.1")

    def test_notAnAddress(self) -> None:
        """
        Anything else (a UNIX socket path) counts as itself.
        """
        self.assertEqual(sourceKey("/run/spc.sock"), "/run/spc.sock")
