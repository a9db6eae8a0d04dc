# -*- test-case-name: tests.unit.test_names -*-
"""
Tests for L{spc.files.names}: every name from the wire, however hostile,
becomes components that stay inside the inbox and name none of the
daemon's own files, at any depth; and the rules are idempotent.
"""

from __future__ import annotations

import os
import unicodedata

from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from spc.files.names import (
    MAX_COMPONENT_BYTES,
    MAX_DEPTH,
    MESSAGES_NAME,
    PARTIAL_DIRECTORY,
    RECEIPTS_NAME,
    RESERVED_NAMES,
    isReserved,
    numbered,
    safeParts,
)
from tests.names import componentStrategy, nameStrategy

def assertSafe(testCase: SynchronousTestCase, name: str) -> list[str]:
    """
    Check what L{safeParts} makes of C{name}, and return it.
    """
    parts = safeParts(name)
    shown = repr(name)
    testCase.assertTrue(parts, shown)
    testCase.assertLessEqual(len(parts), MAX_DEPTH, shown)
    for part in parts:
        testCase.assertNotIn(part, ("", ".", ".."), shown)
        testCase.assertFalse(set(part) & {"/", "\\", "\x00"}, shown)
        testCase.assertFalse(
            any(unicodedata.category(c)[0] == "C" for c in part), shown
        )
        testCase.assertLessEqual(len(part.encode("utf-8")), MAX_COMPONENT_BYTES, shown)
        testCase.assertEqual(part, part.strip(), shown)
        testCase.assertTrue(unicodedata.is_normalized("NFC", part), shown)
        testCase.assertFalse(isReserved(part), shown)
        testCase.assertFalse(part.casefold().startswith(PARTIAL_DIRECTORY), shown)
    inbox = "/inbox"
    joined = os.path.normpath(os.path.join(inbox, *parts))
    testCase.assertTrue(joined.startswith(inbox + "/"), shown)
    return parts


class SafePartsTests(SynchronousTestCase):
    """
    L{safeParts} judges each component after normalising it.
    """

    def test_dotsRevealedByTheCut(self) -> None:
        """
        A component that becomes C{..} or C{.} only when it is cut to 255
        bytes and stripped is dropped like C{..} itself: C{..} followed by
        253 spaces and an C{x} does not lead out of the inbox.
        """
        self.assertEqual(safeParts(".." + " " * 253 + "x"), ["unnamed"])
        self.assertEqual(safeParts("a/.." + " " * 253 + "x/b"), ["a", "b"])
        self.assertEqual(safeParts("." + "\u3000" * 85 + "y"), ["unnamed"])

    def test_reservedAtAnyDepth(self) -> None:
        """
        The daemon's own files are reserved at every depth and in any case:
        such a component gets a C{_} prefix, as does one starting with the
        partial directory's name.
        """
        self.assertEqual(safeParts("messages.jsonl/x"), ["_messages.jsonl", "x"])
        self.assertEqual(safeParts("a/messages.jsonl"), ["a", "_messages.jsonl"])
        self.assertEqual(safeParts("files.jsonl"), ["_files.jsonl"])
        self.assertEqual(safeParts("MESSAGES.JSONL /y"), ["_MESSAGES.JSONL", "y"])
        self.assertEqual(safeParts("messages.jsonl."), ["_messages.jsonl."])
        self.assertEqual(safeParts("a/.SPC-partial/b"), ["a", "_.SPC-partial", "b"])
        self.assertEqual(safeParts("messages.jsonl.bak"), ["messages.jsonl.bak"])
        self.assertEqual(RESERVED_NAMES, {MESSAGES_NAME, RECEIPTS_NAME})

    def test_extraReserved(self) -> None:
        """
        A caller may reserve more names.
        """
        self.assertEqual(safeParts("a/state.db", {"State.DB"}), ["a", "_state.db"])

    def test_prefixKeepsTheLimit(self) -> None:
        """
        A reserved component of the longest length allowed still fits
        after its C{_} prefix.
        """
        long = PARTIAL_DIRECTORY + "x" * (MAX_COMPONENT_BYTES - len(PARTIAL_DIRECTORY))
        [part] = safeParts(long)
        self.assertEqual(part, "_" + long[:-1])

    @settings(max_examples=1500, deadline=None, derandomize=True)
    @given(nameStrategy)
    def test_anyComponents(self, name: str) -> None:
        """
        Any list of components (any Unicode, any length, dots, spaces,
        separators of either kind, NULs, controls, reserved names) gives
        at least one and at most C{MAX_DEPTH} components, none of them
        empty, C{.}, C{..}, reserved, prefixed like the partial directory,
        over 255 bytes, holding a separator or a control character, or not
        in NFC; joined under the inbox they stay inside it.
        """
        assertSafe(self, name)

    @settings(max_examples=500, deadline=None, derandomize=True)
    @given(st.text(max_size=600))
    def test_anyText(self, name: str) -> None:
        """
        Any string at all, surrogates included, gives safe components.
        """
        assertSafe(self, name)

    @settings(max_examples=1500, deadline=None, derandomize=True)
    @given(st.one_of(nameStrategy, st.text(max_size=600)))
    def test_idempotent(self, name: str) -> None:
        """
        The components of the joined components are the components: a
        stored name read back and sent again is stored under the same
        name, and no second pass finds anything the first one let through.
        """
        parts = safeParts(name)
        self.assertEqual(safeParts("/".join(parts)), parts)


class NumberedTests(SynchronousTestCase):
    """
    L{numbered} makes the next names to try when a name is taken.
    """

    def test_examples(self) -> None:
        """
        The number goes before the extension, if there is one.
        """
        self.assertEqual(numbered("report.pdf", 2), "report (2).pdf")
        self.assertEqual(numbered("README", 1), "README (1)")
        self.assertEqual(numbered(".bashrc", 1), ".bashrc (1)")

    def test_longExtension(self) -> None:
        """
        A name whose extension alone leaves no room for the number is
        shortened as a whole: the result still fits a component.
        """
        name = "x." + "e" * 252
        result = numbered(name, 3)
        self.assertEqual(result, name[: MAX_COMPONENT_BYTES - 4] + " (3)")

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(componentStrategy, st.integers(1, 9999))
    def test_fits(self, name: str, number: int) -> None:
        """
        A numbered name fits a component, whatever the name's stem and
        extension, and ends with the number (before any extension).
        """
        [part] = safeParts(name.replace("/", "_").replace("\\", "_")) or ["unnamed"]
        result = numbered(part, number)
        self.assertLessEqual(len(result.encode("utf-8")), MAX_COMPONENT_BYTES)
        self.assertIn(f" ({number})", result)
        self.assertNotIn(result, ("", ".", ".."))
