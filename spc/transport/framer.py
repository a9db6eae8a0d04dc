# -*- test-case-name: tests.unit.test_framer -*-
"""
The framer of a connection: it knows only length prefixes and the size cap
of the current phase (docs/protocol.rst, section 2), nothing of what the
frames hold.
"""

from __future__ import annotations

from typing import Callable

from spc.errors import ProtocolError
from spc.protocol import frames

__all__ = ["Framer"]


class Framer:
    """
    Splits a byte stream into length-prefixed frames.

    The buffer is one C{bytearray} that grows by appending and is trimmed
    once per L{feed}, so a large frame arriving in many small reads is not
    copied over and over.  The length is checked against C{maxBody} as soon
    as its prefix arrives, before any of the body is buffered.

    @ivar maxBody: the largest body the current phase accepts.
    """

    def __init__(self, maxBody: int) -> None:
        self.maxBody = maxBody
        self._buffer = bytearray()

    def feed(self, data: bytes, deliver: Callable[[bytes], bool]) -> None:
        """
        Add C{data} and pass each complete body to C{deliver}, which returns
        C{False} to stop (the connection died, or the phase changed and
        later frames must wait for the new limit).

        @raise ProtocolError: when a prefix announces more than L{maxBody}.
        """
        buffer = self._buffer
        buffer += data
        offset = 0
        try:
            while len(buffer) - offset >= frames.LENGTH_PREFIX_SIZE:
                (length,) = frames.LENGTH.unpack_from(buffer, offset)
                if length > self.maxBody:
                    raise ProtocolError(f"frame of {length} bytes exceeds {self.maxBody}")
                end = offset + frames.LENGTH_PREFIX_SIZE + length
                if len(buffer) < end:
                    break
                body = bytes(memoryview(buffer)[offset + frames.LENGTH_PREFIX_SIZE : end])
                offset = end
                if not deliver(body):
                    break
        finally:
            del buffer[:offset]

    def pending(self) -> int:
        """
        Bytes received but not yet delivered.
        """
        return len(self._buffer)
