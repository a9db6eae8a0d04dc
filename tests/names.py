"""
Hypothesis strategies for hostile file names: dots, white space, controls,
combining marks, separators of either kind, the daemon's own names, and
lengths around the 255-byte cut.
"""

from __future__ import annotations

from hypothesis import strategies as st

__all__ = ["SPECIAL", "componentStrategy", "nameStrategy"]

SPECIAL = [
    "", ".", "..", "...", " ", " .. ", "\x00", "..\x00", ".\u200b.",
    ".spc-partial", ".SPC-PARTIAL", "messages.jsonl", "Messages.JSONL",
    "files.jsonl", "files.jsonl.", "messages.jsonl ", "~", "-", "\u202e", "e\u0301",
]
WHITESPACE = " \t\n\r\x0b\x0c\u00a0\u2028\u2029\u3000"
PADDING = WHITESPACE + "\x00\x1f\x7f\u200b\ufeff\u0301"

paddingStrategy = st.one_of(
    st.builds(lambda character, count: character * count,
              st.sampled_from(PADDING), st.integers(0, 300)),
    st.text(alphabet=WHITESPACE, min_size=80, max_size=300),
    st.text(alphabet=PADDING, max_size=300),
)

paddedStrategy = st.builds(
    lambda head, padding, tail: head + padding + tail,
    st.sampled_from(SPECIAL),
    paddingStrategy,
    st.text(alphabet="x.é ", max_size=4),
)
"""
A special component followed by enough white space, controls or combining
marks to reach the 255-byte cut: what the cut keeps must be judged again.
"""

componentStrategy = st.one_of(
    st.sampled_from(SPECIAL),
    paddedStrategy,
    st.text(max_size=300),
    st.text(alphabet=".é\u0301 e\x00\u3000", max_size=300),
    st.builds(lambda n, tail: "é" * n + tail, st.integers(120, 130), st.sampled_from(SPECIAL)),
)

nameStrategy = st.builds(
    lambda parts, separator: separator.join(parts),
    st.lists(componentStrategy, max_size=40),
    st.sampled_from(["/", "\\", "//", "/./"]),
)
