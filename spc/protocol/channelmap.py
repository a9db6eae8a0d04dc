# -*- test-case-name: tests.unit.test_channelmap,tests.unit.test_frames -*-
"""
The channel map a server announces in F1 (amendment A19): how many channels
it serves and, for each, its cipher suite and the port a client reaches it
on, so that one address is enough to open every channel of a session.

The map travels inside F1, so whatever binds F1 binds it: the OAEP label of
the client's secret, the client's signature over the transcript and the
server's Finished MAC.  A man in the middle who rewrites it makes the
handshake fail, which is why a client may follow it; and the client refuses
a suite outside the set it accepts before it sends anything secret, so the
map cannot talk it down to a suite it did not accept
(C{docs/protocol.rst}, sections 3.1 and 4.4).

L{decodeChannelMap} is strict and bounded like every decoder of
L{spc.protocol.frames}, which puts the map in F1; L{ChannelExpectation} is
what a client checks of one connection's announcement.
"""

from __future__ import annotations

import struct
from typing import NamedTuple, Sequence

from spc.crypto.suites import SUITES, Suite, suiteByID
from spc.errors import ChannelsMismatch, ProtocolError

__all__ = [
    "CHANNEL_ENTRY_SIZE",
    "MAX_CHANNELS",
    "NO_PORT",
    "ChannelEntry",
    "ChannelExpectation",
    "decodeChannelMap",
    "encodeChannelMap",
]

MAX_CHANNELS = 16
"""
The most channels a session spans: a larger count in F1 is refused.
"""

NO_PORT = 0
"""
The port of a channel a client cannot reach the way it reached this one:
not a TCP port of the same kind (plain or TLS) on the same address.
"""

_ENTRY = struct.Struct("!BH")
CHANNEL_ENTRY_SIZE = _ENTRY.size


class ChannelEntry(NamedTuple):
    """
    One channel of a server, as F1 announces it.

    @ivar suite: the channel's suite id.
    @ivar port: its TCP port, or L{NO_PORT}.
    """

    suite: int
    port: int


def encodeChannelMap(entries: Sequence[ChannelEntry]) -> bytes:
    """
    The map as F1 carries it: C{u8 suite ‖ u16 port} per channel, in channel
    order; its count is F1's C{channel_count}.
    """
    return b"".join(_ENTRY.pack(*entry) for entry in entries)


def decodeChannelMap(data: bytes, count: int) -> tuple[ChannelEntry, ...]:
    """
    Read the map of C{count} channels, after checking the count.

    @raise ProtocolError: for a count outside 1 to L{MAX_CHANNELS}, or
        C{data} of another length than C{count} entries.
    """
    if not 1 <= count <= MAX_CHANNELS:
        raise ProtocolError(f"a channel count of {count}")
    if len(data) != CHANNEL_ENTRY_SIZE * count:
        raise ProtocolError("truncated channel map")
    return tuple(
        ChannelEntry(*_ENTRY.unpack_from(data, offset))
        for offset in range(0, len(data), CHANNEL_ENTRY_SIZE)
    )


def _suiteName(suiteID: int) -> str:
    try:
        return suiteByID(suiteID).name
    except KeyError:
        return f"an unknown suite (0x{suiteID:02x})"


def _portList(channelMap: Sequence[ChannelEntry]) -> str:
    ports = [str(entry.port) for entry in channelMap if entry.port != NO_PORT]
    return f" (ports {', '.join(ports)})" if len(ports) == len(channelMap) else ""


class ChannelExpectation(NamedTuple):
    """
    What a client accepts in the announcement of one connection's F1.

    @ivar channel: the channel index this connection was opened for, or
        L{None} for the first connection to a server named by one address,
        which may be any of its channels.
    @ivar channelCount: how many channels the client was given
        (C{--ports}, C{--connect}, a list of endpoints), or L{None} to take
        the server's.
    @ivar allowed: the suites the client accepts, on every channel.
    @ivar sessionMap: for a connection that joins a session, the map the
        session's first connection announced: its count and suites may not
        change.
    """

    channel: int | None = None
    channelCount: int | None = None
    allowed: frozenset[Suite] = frozenset(SUITES)
    sessionMap: tuple[ChannelEntry, ...] | None = None

    def check(self, channel: int, channelMap: Sequence[ChannelEntry]) -> Suite:
        """
        Check an announcement before anything secret is sent.

        @param channel: the channel index F1 gives this connection.
        @param channelMap: F1's map, whose entry for C{channel} the decoder
            checked against F1's suite.
        @return: this connection's suite.
        @raise ChannelsMismatch: for another count than the client was
            given, a suite it does not accept, or another channel than
            this connection was opened for.
        @raise ProtocolError: for a join whose map differs from the
            session's.
        """
        count = len(channelMap)
        if self.sessionMap is not None:
            if [entry.suite for entry in channelMap] != [e.suite for e in self.sessionMap]:
                raise ProtocolError("the server announced other channels within a session")
        elif self.channelCount is not None and count != self.channelCount:
            raise ChannelsMismatch(
                f"the daemon has {count} channels{_portList(channelMap)}; "
                f"you gave {self.channelCount}: give all of them, in order, "
                "or only the first address"
            )
        accepted = {suite.suiteID for suite in self.allowed}
        for index, entry in enumerate(channelMap):
            if entry.suite not in accepted:
                names = ", ".join(sorted(suite.name for suite in self.allowed))
                raise ChannelsMismatch(
                    f"the daemon's channel {index} uses {_suiteName(entry.suite)}, "
                    f"which this client does not accept (--suites allows {names})"
                )
        if self.channel is not None and channel != self.channel:
            raise ChannelsMismatch(
                f"the address given for channel {self.channel} reached the daemon's "
                f"channel {channel}; give its {count} channels in order"
                f"{_portList(channelMap)}"
            )
        return suiteByID(channelMap[channel].suite)
