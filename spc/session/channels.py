# -*- test-case-name: tests.memory.test_channels,tests.memory.test_session -*-
"""
The connections of one session, and which of them carries what.

A L{ChannelSet} keeps the books the session's decisions need: the channels
that carry data, by index; the server's joined connections waiting for the
client's key confirmation (PROTOCOL section 4.3); when each index was lost,
for the rejoin's log line; and the linger timer that ends a session no
channel came back to (section 7.4).  It is the messenger's
L{spc.interfaces.FragmentSink}: it picks a connection for the next
fragment among those that can take data (A6), and for a control record.
What to do when a connection comes, goes or is replaced is the session's.

The channels of a session may run suites whose CPU cost differs by ten
times or more (the default map: A256CBC-HS512 on even channels, ChaCha20
on odd ones).  When every channel can take more, the machine's CPU, not
the network, sets the pace, and fragments go where they cost least: each
channel gets a share in inverse proportion to its suite's cost
(L{spc.crypto.suites.Suite.cost}), by start-time fair queueing (each
record a channel takes moves its start tag on by its length times its
cost; the channel with the lowest tag takes the next one, a channel coming
back from a pause starting level with the others).  So the costly channels keep
carrying traffic, less of it, and take more whenever the others' paths
are full.  Channels of one cost simply take turns, as they always did.

Whatever their cost, a channel takes data only while its data in flight is
within what its L{spc.session.pacing} allows, so a saturated path keeps
its queue short, and a rotation record goes on the channel with the
shortest queue.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from spc.session.pacing import Pacing
from spc.transport.channel import ChannelProtocol

__all__ = ["ChannelSet"]


class ChannelSet:
    """
    @ivar byIndex: the channels that carry data, by channel index.
    @ivar pacing: each channel's data in flight and its limit.
    """

    def __init__(
        self, clock: IReactorTime, linger: float, abandoned: Callable[[], None]
    ) -> None:
        """
        @param linger: seconds a session without a live channel waits for
            one, before C{abandoned} is called.
        """
        self._clock = clock
        self._linger = linger
        self._abandoned = abandoned
        self.byIndex: dict[int, ChannelProtocol] = {}
        self._unconfirmed: set[ChannelProtocol] = set()
        self._lostAt: dict[int, float] = {}
        self._turn = 0
        self._tags: dict[ChannelProtocol, float] = {}
        self._virtual = 0.0
        self._lingerCall: IDelayedCall | None = None
        self.pacing = Pacing(clock)

    def live(self) -> list[ChannelProtocol]:
        """
        Connections that may carry data, in channel order.
        """
        return [channel for _, channel in sorted(self.byIndex.items()) if not channel.dead]

    def connections(self) -> list[ChannelProtocol]:
        """
        Every connection that is not dead: the live channels in channel
        order, then the joined connections not yet confirmed.
        """
        return self.live() + [c for c in self._unconfirmed if not c.dead]

    def everyone(self) -> list[ChannelProtocol]:
        """
        Every connection, dead or not, confirmed or not.
        """
        return list(self.byIndex.values()) + list(self._unconfirmed)

    def attached(self, channel: ChannelProtocol, confirmed: bool) -> None:
        """
        A connection belongs to the session now: the session lingers no
        more.  An unconfirmed one carries nothing until L{confirmed}.
        """
        self._cancelLinger()
        if not confirmed:
            self._unconfirmed.add(channel)

    def confirmed(self, channel: ChannelProtocol) -> bool:
        """
        An authenticated frame arrived on C{channel}.

        @return: whether this confirmed it, so that it is to be admitted.
        """
        if channel not in self._unconfirmed:
            return False
        self._unconfirmed.discard(channel)
        return True

    def admit(self, channel: ChannelProtocol) -> tuple[ChannelProtocol | None, float | None]:
        """
        C{channel} carries data from now on, in place of any connection of
        its index.

        @return: the connection it replaces, and how long its index was
            without a connection (L{None} for either it does not apply to).
        """
        index = channel.result.keys.channel
        previous = self.byIndex.get(index)
        self.byIndex[index] = channel
        lostAt = self._lostAt.pop(index, None)
        since = None if lostAt is None else self._clock.seconds() - lostAt
        return (None if previous is channel else previous), since

    def lost(self, channel: ChannelProtocol) -> None:
        """
        C{channel}'s connection is gone.  Without a live channel left, the
        session lingers.
        """
        self._unconfirmed.discard(channel)
        index = channel.result.keys.channel
        self._tags.pop(channel, None)
        self.pacing.forget(channel)
        if self.byIndex.get(index) is channel:
            del self.byIndex[index]
            self._lostAt[index] = self._clock.seconds()

    def linger(self) -> None:
        """
        Without a live channel, end the session if none comes back within
        the linger time.
        """
        if not self.live() and self._lingerCall is None:
            self._lingerCall = self._clock.callLater(self._linger, self._abandoned)

    def clear(self) -> list[ChannelProtocol]:
        """
        The session ended: forget every connection and stop lingering.

        @return: every connection it had.
        """
        self._cancelLinger()
        connections = self.everyone()
        self.byIndex.clear()
        self._unconfirmed.clear()
        return connections

    def _cancelLinger(self) -> None:
        if self._lingerCall is not None and self._lingerCall.active():
            self._lingerCall.cancel()
        self._lingerCall = None

    # FragmentSink.

    def writableChannel(self) -> ChannelProtocol | None:
        """
        A live channel that can take data now: a channel its transport
        paused (or whose crypto lane is full), or with as much in flight
        as its pace allows, gets nothing, so a slow path never holds the
        others back (A6) nor queues more than its pace.  Channels of one
        cost take turns; of mixed costs, the one with the lowest start
        tag goes.
        """
        allows = self.pacing.allows
        ready = [
            channel for channel in self.live() if channel.canTakeData() and allows(channel)
        ]
        if not ready:
            return None
        if len({channel.cost for channel in ready}) == 1:
            self._turn = (self._turn + 1) % len(ready)
            return ready[self._turn]
        tags, virtual = self._tags, self._virtual
        return min(ready, key=lambda channel: max(tags.get(channel, 0.0), virtual))

    def sendOn(self, channel: ChannelProtocol, record: bytes) -> None:
        """
        Send C{record} on C{channel}, moving its start tag on by what the
        record costs there.
        """
        start = max(self._tags.get(channel, 0.0), self._virtual)
        self._virtual = start
        self._tags[channel] = start + channel.cost * len(record)
        channel.sendRecord(record)

    def sendControl(self, record: bytes) -> None:
        """
        Send a small control record (an acknowledgement) right away, on the
        first live channel whose transport takes data, or on the first live
        channel if none does: an answer does not wait behind a queue that
        is not moving, nor adds to it while another channel is free.  What
        the channels cost does not count: a control record is small, and
        where a rotation's records travel is part of the protocol
        (docs/protocol.rst, section 13, items 25 and 26).  Without a live
        channel, nothing is sent.
        """
        channels = self.live()
        ready = [channel for channel in channels if not channel.writePaused]
        if channels:
            (ready or channels)[0].sendRecord(record)

    def sendRotation(self, record: bytes) -> ChannelProtocol | None:
        """
        Send a rotation record at once on the live channel with the
        shortest queue (L{Pacing.shortestQueue}) among those whose
        transport takes data, or among every live one if none does: its
        answer is awaited against a deadline.

        @return: the channel it went on, or L{None} without a live channel.
        """
        channels = self.live()
        ready = [channel for channel in channels if not channel.writePaused]
        channel = self.pacing.shortestQueue(ready or channels)
        if channel is not None:
            channel.sendRecord(record)
        return channel
