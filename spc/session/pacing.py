# -*- test-case-name: tests.unit.test_pacing,tests.memory.test_pacing -*-
"""
How much data each channel may have in flight, so that a busy link keeps
its queues short.

TCP sends as long as the receiver's window allows, so on a slow path the
bytes handed to a connection wait in the bottleneck's buffer, and every
control record written after them (a rotation's acknowledgement, a
heartbeat's answer, a message) waits as long.  Amendment A10 orders what
is still in spc's hands; it cannot reach what TCP already holds.  So each
channel's data in flight, from the moment a record is handed to the
connection until the peer acknowledges it, is held near what that channel
delivers in C{TARGET_DELAY}: a delay-based limit in the spirit of LEDBAT
and BBR, not a fixed window.

A L{ChannelPace} measures a channel's delivery rate from the peer's
acknowledgements, as BBR does: each record remembers how much the channel
had delivered, and when, at the moment it was sent; its acknowledgement
then gives the bytes delivered since over the time since.  The estimate is
the largest sample of the last C{RATE_WINDOW} seconds (ack batching and a
busy reader make single samples low, never high for long).  The limit is
C{max(floor, rate x TARGET_DELAY)}, and never fewer than C{MIN_RECORDS}
records: the fastest channel gets the most; a
channel that is faster than its estimate delivers more than the estimate
within the target (its queue is empty, and the acknowledgement comes
within one round trip plus the receiver's acknowledgement delay, both well
under the target), so its estimate, and its limit, grow until the path is
full and the queue holds about C{TARGET_DELAY} of data.  Before the first
acknowledgement a channel may have C{INITIAL} in flight.  On a fast link
(loopback) the rate is hundreds of megabytes a second and the limit far
above the messenger's send window: it costs no throughput.

The same acknowledgements give each channel a smoothed round trip under
load, from a record's hand-off to its acknowledgement; heartbeat round
trips (L{spc.session.heartbeatdriver}) feed it too, so an end that only
receives still knows how long its peer's answers take.  L{ackDeadline}
turns it into the deadline a rotation's acknowledgement is given
(docs/protocol.rst, section 8.3).

Everything here is arithmetic on the times the clock gives: no timer, no
I/O.
"""

from __future__ import annotations

from typing import Hashable, Iterable

from twisted.internet.interfaces import IReactorTime

from spc.protocol.timers import ROUND_JITTER, Timers

__all__ = [
    "ACK_RTTS",
    "ChannelPace",
    "FLOOR",
    "INITIAL",
    "MIN_RECORDS",
    "MIN_SAMPLE",
    "Pacing",
    "RATE_WINDOW",
    "TARGET_DELAY",
    "ackDeadline",
    "ackDeadlineCap",
]

TARGET_DELAY = 0.5
"""
Seconds of its delivery rate a channel may have in flight.  Above the
receiver's acknowledgement delay (C{spc.protocol.acks.ACK_DELAY}, 0.25 s)
and a path's round trip, so that the limit grows while the path has room.
"""
FLOOR = 256 * 1024
"""
Bytes a channel may always have in flight, whatever its rate: A10's floor
for unsent data, so at least one default fragment is always on its way.
"""
MIN_RECORDS = 2
"""
Records a channel may always have in flight, whatever their size: one
crossing the path while the acknowledgement of the other is on its way
back.  With one, a channel slower than a fragment per target delay (1 MB/s
at the default 256 KiB) would idle while each acknowledgement is awaited.
"""
INITIAL = 1024 * 1024
"""
Bytes a channel may have in flight before its first acknowledgement: with
four channels, the C{ACK_EVERY} fragments of 256 KiB after which a receiver
answers at once are in flight before the first answer.
"""
MIN_SAMPLE = 64 * 1024
"""
Bytes a delivery-rate sample must span: the acknowledgement of a lone
small record (a file's offer, answered once the receiver opened the file)
says how long the receiver took, not how fast the path is.
"""
RATE_WINDOW = 2.0
"""
Seconds over which the largest delivery-rate sample is the estimate.
"""
SRTT_GAIN = 0.125
"""
Weight of a new round-trip sample in the smoothed round trip (RFC 6298).
"""
ACK_RTTS = 4
"""
Smoothed round trips a rotation's acknowledgement may take, when that is
longer than the configured C{ackTimeout}.
"""


class ChannelPace:
    """
    One channel's data in flight, delivery rate and round trip.

    @ivar inFlight: bytes handed to the channel and not yet acknowledged.
    @ivar delivered: bytes acknowledged so far.
    @ivar rate: the delivery-rate estimate, bytes per second, or L{None}
        before the first sample.
    @ivar srtt: the smoothed round trip under load, in seconds, or L{None}
        before the first sample.
    """

    def __init__(
        self,
        clock: IReactorTime,
        target: float = TARGET_DELAY,
        floor: int = FLOOR,
        initial: int = INITIAL,
    ) -> None:
        self._clock = clock
        self._target = target
        self._floor = floor
        self._initial = max(floor, initial)
        self.inFlight = 0
        self.delivered = 0
        self.rate: float | None = None
        self.srtt: float | None = None
        self._deliveredAt = clock.seconds()
        self._records: dict[Hashable, tuple[float, int, int, float]] = {}
        self._windowStart = self._deliveredAt
        self._best = 0.0
        self._previousBest = 0.0

    @property
    def limit(self) -> int:
        """
        Bytes this channel may have in flight now.
        """
        if self.rate is None:
            return self._initial
        return max(self._floor, int(self.rate * self._target))

    def allows(self) -> bool:
        """
        Whether one more record may go: the check is made before each
        record, so the limit is exceeded by at most one; below
        C{MIN_RECORDS} records in flight, one always may.
        """
        return self.inFlight < self.limit or len(self._records) < MIN_RECORDS

    def sent(self, key: Hashable, size: int) -> None:
        """
        A record of C{size} bytes was handed to the channel.
        """
        now = self._clock.seconds()
        previous = self._records.pop(key, None)
        if previous is not None:
            self.inFlight -= previous[1]
        if not self.inFlight:
            # Idle until now: the time it was idle is no delivery time.
            self._deliveredAt = now
        self._records[key] = (now, size, self.delivered, self._deliveredAt)
        self.inFlight += size

    def acked(self, keys: Iterable[Hashable]) -> None:
        """
        The peer acknowledged the records of C{keys}, those this channel
        carried: each is a round-trip sample, and a delivery-rate sample if
        it spans at least C{MIN_SAMPLE} bytes delivered.
        """
        now = self._clock.seconds()
        for key in keys:
            record = self._records.pop(key, None)
            if record is None:
                continue
            sentAt, size, deliveredThen, deliveredAtThen = record
            self.inFlight -= size
            self.delivered += size
            self.roundTrip(now - sentAt)
            elapsed, spanned = now - deliveredAtThen, self.delivered - deliveredThen
            if elapsed > 0 and spanned >= MIN_SAMPLE:
                self._rateSample(spanned / elapsed, now)
        self._deliveredAt = now

    def roundTrip(self, seconds: float) -> None:
        """
        A round trip measured on this channel (an acknowledged record, or a
        heartbeat's answer).
        """
        seconds = max(0.0, seconds)
        if self.srtt is None:
            self.srtt = seconds
        else:
            self.srtt += SRTT_GAIN * (seconds - self.srtt)

    def _rateSample(self, rate: float, now: float) -> None:
        """
        Keep the largest sample of the current half window and of the one
        before: the estimate is the largest of the last C{RATE_WINDOW}
        seconds, or a little more, and costs two numbers.
        """
        half = RATE_WINDOW / 2
        if now - self._windowStart >= half:
            stale = now - self._windowStart >= 2 * half
            self._previousBest = 0.0 if stale else self._best
            self._best = 0.0
            self._windowStart = now
        self._best = max(self._best, rate)
        self.rate = max(self._best, self._previousBest)


class Pacing:
    """
    The L{ChannelPace} of every channel of a session, by channel.
    """

    def __init__(
        self,
        clock: IReactorTime,
        target: float = TARGET_DELAY,
        floor: int = FLOOR,
        initial: int = INITIAL,
    ) -> None:
        self._newPace = lambda: ChannelPace(clock, target, floor, initial)
        self._paces: dict[object, ChannelPace] = {}

    def pace(self, channel: object) -> ChannelPace:
        """
        C{channel}'s pace, new if it had none.
        """
        pace = self._paces.get(channel)
        if pace is None:
            pace = self._newPace()
            self._paces[channel] = pace
        return pace

    def allows(self, channel: object) -> bool:
        pace = self._paces.get(channel)
        return pace is None or pace.allows()

    def sent(self, channel: object, key: Hashable, size: int) -> None:
        self.pace(channel).sent(key, size)

    def acked(self, channel: object, keys: Iterable[Hashable]) -> None:
        pace = self._paces.get(channel)
        if pace is not None:
            pace.acked(keys)

    def roundTrip(self, channel: object, seconds: float) -> None:
        """
        A heartbeat's round trip on C{channel}.
        """
        self.pace(channel).roundTrip(seconds)

    def smoothedRoundTrip(self, channel: object) -> float | None:
        pace = self._paces.get(channel)
        return None if pace is None else pace.srtt

    def inFlight(self, channel: object) -> int:
        pace = self._paces.get(channel)
        return 0 if pace is None else pace.inFlight

    def forget(self, channel: object) -> None:
        """
        C{channel} is gone; what it carried is sent again elsewhere.
        """
        self._paces.pop(channel, None)

    def shortestQueue(self, channels: list) -> object | None:
        """
        Of C{channels} (in channel order), the one with the fewest bytes
        in flight; among equals, the one whose round trip is shortest (an
        end that only receives sees its peer's queue there), then the first.
        """
        if not channels:
            return None

        def queue(indexed):
            index, channel = indexed
            srtt = self.smoothedRoundTrip(channel)
            return (self.inFlight(channel), float("inf") if srtt is None else srtt, index)

        return min(enumerate(channels), key=queue)[1]


def ackDeadlineCap(configured: float, timers: Timers) -> float:
    """
    The longest a rotation's acknowledgement may be given: what the
    rotation interval leaves once the transition is taken out, so that the
    offer, and its overlap, end before the next round can start one
    (each round starts a session's rotation up to C{ROUND_JITTER} of an
    interval late).  Never below the C{configured} timeout, which the
    daemon's own checks keep below it.
    """
    room = timers.rotationInterval * (1 - ROUND_JITTER) - timers.overlap
    return max(configured, room)


def ackDeadline(configured: float, roundTrip: float | None, timers: Timers) -> float:
    """
    The deadline of a rotation's acknowledgement: the C{configured}
    timeout or C{ACK_RTTS} smoothed round trips under load of the channel
    the offer went on, whichever is longer, but never past
    L{ackDeadlineCap}.

    @param roundTrip: that channel's smoothed round trip, or L{None} if
        none was measured.
    """
    if roundTrip is None:
        return configured
    return min(ackDeadlineCap(configured, timers), max(configured, ACK_RTTS * roundTrip))
