"""
Tests for L{spc.protocol.paircode}: the word list and reading codes.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial import unittest

from spc.protocol.paircode import (
    MAX_SLOT,
    WORDS,
    PairCode,
    makeCode,
    parseCode,
)


class WordListTests(unittest.SynchronousTestCase):
    """
    The list the secret is drawn from.
    """

    def test_size(self) -> None:
        """
        256 distinct words: 8 bits each.
        """
        self.assertEqual(len(WORDS), 256)
        self.assertEqual(len(set(WORDS)), 256)

    def test_easyToType(self) -> None:
        """
        Lower-case ASCII letters, 3 to 6 of them, none a prefix of another.
        """
        for word in WORDS:
            self.assertTrue(word.isascii() and word.isalpha() and word.islower(), word)
            self.assertTrue(3 <= len(word) <= 6, word)
        for word in WORDS:
            self.assertEqual([w for w in WORDS if w.startswith(word)], [word])


class CodeTests(unittest.SynchronousTestCase):
    """
    Codes as users type them.
    """

    def test_parse(self) -> None:
        """
        Case and surrounding blanks do not matter; the password is the words.
        """
        code = parseCode("  4-Orbit-VELVET\n")
        self.assertEqual(code, PairCode(4, ("orbit", "velvet")))
        self.assertEqual(str(code), "4-orbit-velvet")
        self.assertEqual(code.password(), b"orbit-velvet")

    def test_reprHidesWords(self) -> None:
        """
        A code's repr, as a log or traceback might show it, holds no word.
        """
        self.assertNotIn("orbit", repr(parseCode("4-orbit-velvet")))

    def test_refused(self) -> None:
        """
        Each kind of mistake is named.
        """
        for text, reason in [
            ("orbit-velvet", "starts with a number"),
            ("0-orbit-velvet", "starts with a number"),
            (f"{MAX_SLOT + 1}-orbit-velvet", "starts with a number"),
            ("4-orbit", "2 or 3 words"),
            ("4-orbit-velvet-zinc-zebra", "2 or 3 words"),
            ("4-orbit-velvte", "'velvte' is not one of"),
            ("４-orbit-velvet", "starts with a number"),
        ]:
            with self.assertRaises(ValueError) as raised:
                parseCode(text)
            self.assertIn(reason, str(raised.exception), text)

    @given(st.text(max_size=60))
    def test_anyText(self, text: str) -> None:
        """
        Any text reads as a code or raises C{ValueError}; a code read
        prints back as what it read, ignoring case and blanks.
        """
        try:
            code = parseCode(text)
        except ValueError:
            return
        self.assertEqual(str(code), text.strip().lower())

    @given(st.integers(1, MAX_SLOT), st.integers(2, 3))
    def test_madeCodesParse(self, slot: int, count: int) -> None:
        code = makeCode(slot, count)
        self.assertEqual(parseCode(str(code)), code)
        self.assertEqual(len(code.words), count)

    def test_makeLimits(self) -> None:
        self.assertRaises(ValueError, makeCode, 0)
        self.assertRaises(ValueError, makeCode, 1, 4)
