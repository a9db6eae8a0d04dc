# -*- test-case-name: tests.unit.test_names,tests.memory.test_logs -*-
"""
Text a peer chose, made safe to show.

A file name, a refusal's sentence or the reason a peer gave for closing
reaches a terminal, a log line and a file system; control characters in it
could move the cursor, forge a log line or hide what a name really is.
Every layer that shows such text cleans it the same way, here.
"""

from __future__ import annotations

import unicodedata

__all__ = ["withoutControls"]


def withoutControls(text: str) -> str:
    """
    C{text} without its characters of Unicode category C (controls, format
    characters such as bidirectional overrides, surrogates, private use and
    unassigned): a name from the wire may carry a terminal escape or a
    carriage return, which must reach neither a file system nor a screen.
    """
    return "".join(
        character for character in text if unicodedata.category(character)[0] != "C"
    )
