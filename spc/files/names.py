# -*- test-case-name: tests.unit.test_names -*-
"""
The rules that turn a file name from the wire into path components the
inbox can take.

A name is only the sender's wish.  Each component is first normalised
(NFC, control characters removed, white space stripped, cut to 255 bytes
of UTF-8 and stripped again) and only then judged, so no later step can
turn an accepted component into C{..}: a check made before a normalising
step is no check.  Empty, C{.} and C{..} components are dropped; a
component naming the daemon's own files (L{RESERVED_NAMES}, or anything
starting with L{PARTIAL_DIRECTORY}) gets a C{_} prefix at any depth.  The
rules are idempotent: the components of the joined components are the
components themselves.
"""

from __future__ import annotations

import unicodedata
from typing import Iterable

from spc.text import withoutControls

__all__ = [
    "MAX_COMPONENT_BYTES",
    "MAX_DEPTH",
    "MESSAGES_NAME",
    "PARTIAL_DIRECTORY",
    "RECEIPTS_NAME",
    "RESERVED_NAMES",
    "UNNAMED",
    "isReserved",
    "numbered",
    "safeParts",
]

PARTIAL_DIRECTORY = ".spc-partial"
MESSAGES_NAME = "messages.jsonl"
RECEIPTS_NAME = "files.jsonl"
RESERVED_NAMES = frozenset({MESSAGES_NAME, RECEIPTS_NAME})
MAX_COMPONENT_BYTES = 255
MAX_DEPTH = 32
UNNAMED = "unnamed"
_DROPPED = frozenset({"", ".", ".."})


def _fitted(text: str) -> str:
    """
    C{text} cut to L{MAX_COMPONENT_BYTES} bytes of UTF-8, never inside a
    character, and stripped: the cut may leave white space at the end.
    """
    encoded = text.encode("utf-8")
    if len(encoded) <= MAX_COMPONENT_BYTES:
        return text.strip()
    return encoded[:MAX_COMPONENT_BYTES].decode("utf-8", "ignore").strip()


def isReserved(component: str, reserved: Iterable[str] = RESERVED_NAMES) -> bool:
    """
    Whether a component names one of the daemon's own files or its partial
    directory.  Compared case-folded, and without trailing dots and spaces,
    so that file systems which ignore case or such endings (as some
    mounted from other systems do) cannot make it the same entry.
    """
    folded = component.casefold()
    if folded.startswith(PARTIAL_DIRECTORY):
        return True
    return folded.rstrip(". ") in {name.casefold() for name in reserved}


def _component(raw: str, reserved: Iterable[str]) -> str | None:
    """
    One component, normalised and then judged.

    @return: the component to use, or L{None} to drop it.
    """
    cleaned = _fitted(unicodedata.normalize("NFC", withoutControls(raw)))
    if cleaned in _DROPPED:
        return None
    if isReserved(cleaned, reserved):
        cleaned = _fitted("_" + cleaned)
    return cleaned


def safeParts(name: str, reserved: Iterable[str] = RESERVED_NAMES) -> list[str]:
    """
    Reduce a path from the wire to components that stay inside a directory.

    Separators of either kind split; each component is normalised, then
    dropped when empty, C{.} or C{..}, and prefixed with C{_} when it is
    reserved (L{isReserved}); only the last L{MAX_DEPTH} are kept.  A name
    with nothing left becomes L{UNNAMED}.

    @param reserved: names no component may take, in any case.
    @return: at least one component; none empty, C{.}, C{..}, reserved,
        over L{MAX_COMPONENT_BYTES} bytes, or holding a separator or a
        control character.
    """
    reserved = frozenset(reserved)
    parts = []
    for raw in name.replace("\\", "/").split("/"):
        component = _component(raw, reserved)
        if component is not None:
            parts.append(component)
    return parts[-MAX_DEPTH:] or [UNNAMED]


def numbered(name: str, number: int) -> str:
    """
    C{name (number).ext}, with the stem shortened (never inside a UTF-8
    character) so the result still fits a file-name component.
    """
    stem, dot, extension = name.rpartition(".")
    if not stem or not dot:
        stem, extension = name, ""
    suffix = f" ({number})" + (f".{extension}" if extension else "")
    if len(suffix.encode("utf-8")) >= MAX_COMPONENT_BYTES:
        stem, suffix = name, f" ({number})"
    room = MAX_COMPONENT_BYTES - len(suffix.encode("utf-8"))
    stem = stem.encode("utf-8")[: max(room, 1)].decode("utf-8", "ignore") or "_"
    return stem + suffix
