# -*- test-case-name: tests.unit.test_paircode -*-
"""
Pairing codes (amendment A20): C{<slot>-<word>-<word>[-<word>]}, such as
C{4-orbit-velvet}.

The slot is a small decimal number that names one pending invite of the
receiver; it is no secret.  The words are the secret, the password of the
SPAKE2 exchange (L{spc.crypto.pake}): each is one of the 256 words of
L{WORDS}, so each carries 8 bits.  An active attacker gets one guess per
code, since the receiver uses an invite up on its first attempt, right or
wrong: two words give it 1 chance in 65,536, three words 1 in 16,777,216.

The words are short, common, distinct English words in lower case, none a
prefix of another; a code is read without regard to case or to spaces
around it.  Nothing here does I/O.
"""

from __future__ import annotations

import secrets
from typing import Callable, NamedTuple, Sequence

__all__ = [
    "DEFAULT_WORDS",
    "MAX_SLOT",
    "MAX_WORDS",
    "MIN_WORDS",
    "PairCode",
    "WORDS",
    "makeCode",
    "parseCode",
]

WORDS: tuple[str, ...] = tuple(
    """
    acorn actor agent alarm album alpha amber angle apple apron arrow aspen
    atlas attic bacon badge baker bamboo banjo basil beach berry bison blade
    blaze bloom board bonus brave bread brick bridge brook brush bucket
    cabin cable cactus camel canal candle canoe canyon cedar chalk charm
    cherry chess circus cliff clock cloud clover coast cocoa comet coral
    cotton crane crown daisy dance delta desert dragon dune eagle earth echo
    elbow ember falcon fence fern ferry field flame flute foam forest frost
    garden ginger glove goat grape guitar hammer harbor harp hazel hedge
    heron honey horse hotel igloo iris island ivory jacket jade jaguar jazz
    jelly jewel juice jungle kayak kettle kite kiwi koala label ladder
    lagoon lamp lava lemon lion lizard lotus lunar magnet mango maple marble
    market meadow medal melon mirror monkey moose motor nectar needle nickel
    noodle north oasis ocean olive onion opal opera orbit orchid otter oven
    paddle panda paper parrot pasta peach pearl pebble pencil pepper piano
    pilot pizza planet plaza plum polar pony poppy potato puzzle quartz
    quilt rabbit radar radio raft raven reef rhino ribbon ridge river robin
    robot rocket ruby saddle safari salad satin scarf scout shark shell silk
    silver slate sled smoke sofa solar sonar spice spider sponge spoon stamp
    stone storm straw sugar summit sunset swan table talon tango temple
    tennis tiger timber toast tomato topaz torch tower trail train tulip
    tuna tundra turtle twig valley velvet violin viper waffle wagon walnut
    walrus water whale wheat willow window winter wizard wolf yacht yogurt
    zebra zenith zinc zipper
    """.split()
)
"""
The 256 code words, each standing for 8 bits of a code's secret.
"""

MIN_WORDS = 2
MAX_WORDS = 3
DEFAULT_WORDS = 2
MAX_SLOT = 65535
_KNOWN = frozenset(WORDS)


class PairCode(NamedTuple):
    """
    A code, parsed.

    @ivar slot: the invite it names.
    @ivar words: its secret words, in lower case.
    """

    slot: int
    words: tuple[str, ...]

    def password(self) -> bytes:
        """
        The SPAKE2 password: the words joined by C{-}, in ASCII.
        """
        return "-".join(self.words).encode("ascii")

    def __str__(self) -> str:
        return "-".join((str(self.slot), *self.words))

    def __repr__(self) -> str:
        return f"<PairCode slot={self.slot} ({len(self.words)} words, redacted)>"


def parseCode(text: str) -> PairCode:
    """
    Read a code as a user typed it.

    @raise ValueError: saying what is wrong with it.
    """
    slot, *words = text.strip().lower().split("-")
    if not (slot.isascii() and slot.isdigit() and len(slot) <= 5):
        slot = "0"
    if not 0 < int(slot) <= MAX_SLOT:
        raise ValueError(
            f"a code starts with a number from 1 to {MAX_SLOT}, as in 4-orbit-velvet"
        )
    if not MIN_WORDS <= len(words) <= MAX_WORDS:
        raise ValueError(
            f"a code has {MIN_WORDS} or {MAX_WORDS} words after its number, "
            "as in 4-orbit-velvet"
        )
    for word in words:
        if word not in _KNOWN:
            raise ValueError(f"{word!r} is not one of spc's code words (a typo?)")
    return PairCode(int(slot), tuple(words))


def makeCode(
    slot: int,
    count: int = DEFAULT_WORDS,
    choose: Callable[[Sequence[str]], str] = secrets.choice,
) -> PairCode:
    """
    A fresh code for the invite in C{slot}, its words drawn uniformly by
    C{choose}: the operating system's randomness, unless a test gives
    another.

    @raise ValueError: for a slot or a word count outside the limits.
    """
    if not 0 < slot <= MAX_SLOT or not MIN_WORDS <= count <= MAX_WORDS:
        raise ValueError("slot or word count out of range")
    return PairCode(slot, tuple(choose(WORDS) for _ in range(count)))
