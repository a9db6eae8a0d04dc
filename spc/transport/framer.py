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

_PREFIX = frames.LENGTH_PREFIX_SIZE


class Framer:
    """
    Splits a byte stream into length-prefixed frames, copying each body
    at most once.

    A body that lies whole inside one chunk of received data is delivered
    as a C{memoryview} of that chunk, with no copy at all.  A body that
    spans chunks gets its own C{bytearray}, allocated once when its length
    prefix has arrived and filled from the chunks as they come; it is
    delivered as it is, and the framer keeps no reference to it.  Nothing
    is re-concatenated or trimmed (amendment A17).  The length is checked
    against C{maxBody} as soon as its prefix arrives, before anything of
    the body is allocated.

    @ivar maxBody: the largest body the current phase accepts.
    """

    def __init__(self, maxBody: int) -> None:
        self.maxBody = maxBody
        self._prefix = bytearray()
        self._body: bytearray | None = None
        self._filled = 0
        self._held = b""

    def feed(self, data: bytes, deliver: Callable[[bytes | bytearray | memoryview], bool]) -> None:
        """
        Add C{data} and pass each complete body to C{deliver}, which returns
        C{False} to stop (the connection died); what follows is kept, and
        delivered on the next call.

        @raise ProtocolError: when a prefix announces more than L{maxBody}.
        """
        if self._held:
            data, self._held = self._held + data, b""
        view = memoryview(data)
        size = len(view)
        position = 0
        while position < size:
            body = self._body
            if body is not None:
                take = min(len(body) - self._filled, size - position)
                body[self._filled : self._filled + take] = view[position : position + take]
                self._filled += take
                position += take
                if self._filled < len(body):
                    return
                self._body = None
                if not deliver(body):
                    self._held = bytes(view[position:])
                    return
                continue
            if self._prefix or size - position < _PREFIX:
                take = min(_PREFIX - len(self._prefix), size - position)
                self._prefix += view[position : position + take]
                position += take
                if len(self._prefix) < _PREFIX:
                    return
                (length,) = frames.LENGTH.unpack(self._prefix)
                self._prefix.clear()
            else:
                (length,) = frames.LENGTH.unpack_from(view, position)
                position += _PREFIX
            if length > self.maxBody:
                raise ProtocolError(f"frame of {length} bytes exceeds {self.maxBody}")
            if size - position >= length:
                whole = view[position : position + length]
                position += length
                if not deliver(whole):
                    self._held = bytes(view[position:])
                    return
            else:
                self._body = bytearray(length)
                self._filled = 0

    def pending(self) -> int:
        """
        Bytes received but not yet delivered.
        """
        filling = 0 if self._body is None else _PREFIX + self._filled
        return len(self._prefix) + filling + len(self._held)
