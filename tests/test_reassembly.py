# -*- test-case-name: tests.test_reassembly -*-
"""
Tests for L{spc.reassembly}: the receiving half of a session's messenger,
driven directly with decoded fragments, a recording acknowledgement
callable and L{task.Clock} for its progress and abandonment timers.
"""

from __future__ import annotations

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from spc import records, wire
from spc.errors import ProtocolError, ResourceLimitExceeded
from spc.reassembly import (
    ACK_DELAY,
    ACK_EVERY,
    REASSEMBLY_TIMEOUT,
    Budget,
    Reassembler,
)
from spc.records import messageDigest

SIZE = wire.MIN_FRAGMENT_SIZE


def makeParams(**overrides) -> wire.Params:
    """
    16 KiB fragments, messages up to 32 fragments, 8 in flight.
    """
    values = dict(
        fragmentSize=SIZE,
        maxInner=wire.maxInnerSize(SIZE),
        maxMessageSize=32 * SIZE,
        maxInflightMessages=8,
        reassemblyBudget=64 * SIZE,
    )
    values.update(overrides)
    return wire.Params(**values)


class Receiving:
    """
    A L{Reassembler} with everything it touches recorded.

    @ivar delivered: C{(data, kind)} in delivery order.
    @ivar acks: decoded C{ACK:}s, oldest first.
    @ivar result: what the delivery callable returns.
    """

    def __init__(self, clock=None, budget=None, **params) -> None:
        self.clock = clock if clock is not None else task.Clock()
        self.delivered: list[tuple[bytes, int]] = []
        self.acks: list[records.Ack] = []
        self.result: object = None
        self.reassembler = Reassembler(
            makeParams(**params), self._deliver, self._acknowledge, self.clock, budget
        )

    def _deliver(self, data: bytes, kind: int):
        self.delivered.append((data, kind))
        return self.result

    def _acknowledge(self, record: bytes) -> None:
        self.acks.append(records.decodeRecord(record))

    def take(self) -> list[tuple[int, int, tuple]]:
        """
        C{(msgID, status, ranges)} of the ACKs sent since the last call.
        """
        acks, self.acks = self.acks, []
        return [(a.msgID, a.status, a.ranges) for a in acks]

    def receive(self, *fragments: records.Fragment) -> None:
        for fragment in fragments:
            self.reassembler.fragmentReceived(fragment)


def split(data: bytes, msgID: int = 0, kind: int = records.KIND_BINARY) -> list:
    """
    A message's fragments as the peer sends them (encoded, then decoded).
    """
    count = max(1, -(-len(data) // SIZE))
    digest = messageDigest(kind, data)
    return [
        records.decodeRecord(
            records.Fragment(
                msgID, index, count, len(data), kind, digest,
                data[index * SIZE : (index + 1) * SIZE],
            ).encode()
        )
        for index in range(count)
    ]


def payload(fragments: int, fill: bytes = b"p") -> bytes:
    return fill * (fragments * SIZE - 3)


COMPLETE, PROGRESS, ABANDONED = records.ACK_COMPLETE, records.ACK_PROGRESS, records.ACK_ABANDONED


class OrderTests(SynchronousTestCase):
    """
    Messages are delivered whole, once, in message-id order, whatever the
    order of their fragments.
    """

    def test_inOrder(self) -> None:
        """
        Fragments of messages 2, 0 and 1, interleaved and reversed, deliver
        0, 1, 2, each acknowledged complete once it is delivered.
        """
        receiving = Receiving()
        messages = [payload(3, b"a"), payload(1, b"b"), payload(2, b"c")]
        parts = [split(data, msgID) for msgID, data in enumerate(messages)]
        order = [parts[2][1], parts[0][2], parts[2][0], parts[1][0], parts[0][1]]
        receiving.receive(*order)
        self.assertEqual(receiving.delivered, [])
        self.assertEqual(receiving.take(), [])
        receiving.receive(parts[0][0])
        self.assertEqual(
            receiving.delivered, [(data, records.KIND_BINARY) for data in messages]
        )
        self.assertEqual(receiving.take(), [(0, COMPLETE, ()), (1, COMPLETE, ()), (2, COMPLETE, ())])
        self.assertEqual(receiving.reassembler.nextDeliveryID, 3)

    def test_kindKept(self) -> None:
        """
        The kind each message was sent as is the kind it is delivered as.
        """
        receiving = Receiving()
        receiving.receive(*split(b"text", 0, records.KIND_TEXT))
        receiving.receive(*split(b"", 1, records.KIND_BINARY))
        self.assertEqual(
            receiving.delivered, [(b"text", records.KIND_TEXT), (b"", records.KIND_BINARY)]
        )


class BudgetTests(SynchronousTestCase):
    """
    A message reserves its declared length from the session's budget and
    from the daemon-wide L{Budget} when its first fragment arrives, and
    gives it back once delivered.
    """

    def test_sharedBudgetExhausted(self) -> None:
        """
        Two reassemblers (two sessions) sharing a L{Budget}: together they
        may not reserve more than its limit, though each is within its own
        session budget; the refusal is L{ResourceLimitExceeded}, and a
        refused message reserves nothing.
        """
        budget = Budget(limit=6 * SIZE)
        first, second = Receiving(budget=budget), Receiving(budget=budget)
        one, two = split(payload(4, b"1")), split(payload(4, b"2"))
        first.receive(one[0])
        self.assertEqual(budget.reserved, 4 * SIZE - 3)
        self.assertRaises(ResourceLimitExceeded, second.receive, two[0])
        self.assertEqual(budget.reserved, 4 * SIZE - 3)
        first.receive(*one[1:])
        self.assertEqual(budget.reserved, 0)
        second.receive(*two)
        self.assertEqual(len(second.delivered), 1)
        self.assertEqual(budget.reserved, 0)

    def test_releasedOnDelivery(self) -> None:
        """
        A message keeps its reservation while the application's delivery
        Deferred is pending, and releases it when that fires.
        """
        budget = Budget()
        receiving = Receiving(budget=budget)
        receiving.result = Deferred()
        receiving.receive(*split(payload(2)))
        self.assertEqual(budget.reserved, 2 * SIZE - 3)
        receiving.result.callback(None)
        self.assertEqual(budget.reserved, 0)

    def test_sessionBudget(self) -> None:
        """
        The session's own C{reassemblyBudget} is checked too, before the
        shared one is touched.
        """
        budget = Budget()
        receiving = Receiving(budget=budget, reassemblyBudget=5 * SIZE)
        receiving.receive(split(payload(4), 0)[0])
        self.assertRaises(ResourceLimitExceeded, receiving.receive, split(payload(2), 1)[0])
        self.assertEqual(budget.reserved, 4 * SIZE - 3)

    def test_closeReleases(self) -> None:
        """
        L{Reassembler.close} gives back every reservation and cancels every
        timer.
        """
        budget = Budget()
        receiving = Receiving(budget=budget)
        receiving.receive(split(payload(3), 0)[0], split(payload(2), 1)[1])
        self.assertEqual(budget.reserved, 5 * SIZE - 6)
        receiving.reassembler.close()
        self.assertEqual(budget.reserved, 0)
        self.assertEqual(receiving.clock.getDelayedCalls(), [])

    def test_defaultLimit(self) -> None:
        """
        The daemon's budget is 1 GiB unless configured.
        """
        self.assertEqual(Budget().limit, 1 << 30)


class ProgressTests(SynchronousTestCase):
    """
    Progress C{ACK:}s tell the sender which fragments arrived, so it can
    forget them and its send window moves: after every C{ACK_EVERY}
    fragments of a message, or C{ACK_DELAY} after the first unacknowledged
    one.
    """

    def test_constants(self) -> None:
        """
        Every 16 fragments, or after 0.25 s.
        """
        self.assertEqual((ACK_EVERY, ACK_DELAY), (16, 0.25))

    def test_everySixteen(self) -> None:
        """
        The 16th fragment received triggers a progress ACK at once, listing
        the indexes held as C{(start, count)} runs.
        """
        receiving = Receiving()
        fragments = split(payload(20))
        receiving.receive(*fragments[:15])
        self.assertEqual(receiving.take(), [])
        receiving.receive(fragments[16])
        self.assertEqual(receiving.take(), [(0, PROGRESS, ((0, 15), (16, 1)))])
        receiving.receive(*fragments[17:19])
        self.assertEqual(receiving.take(), [])

    def test_afterDelay(self) -> None:
        """
        Fewer than 16 fragments are acknowledged C{ACK_DELAY} after the
        first of them, once; more fragments schedule the next one.
        """
        receiving = Receiving()
        fragments = split(payload(6))
        receiving.receive(fragments[0], fragments[2])
        receiving.clock.advance(ACK_DELAY - 0.01)
        self.assertEqual(receiving.take(), [])
        receiving.clock.advance(0.01)
        self.assertEqual(receiving.take(), [(0, PROGRESS, ((0, 1), (2, 1)))])
        receiving.clock.advance(ACK_DELAY)
        self.assertEqual(receiving.take(), [])
        receiving.receive(fragments[1])
        receiving.clock.advance(ACK_DELAY)
        self.assertEqual(receiving.take(), [(0, PROGRESS, ((0, 3),))])

    def test_completeNeedsNoProgress(self) -> None:
        """
        A message that completes before the delay is acknowledged complete,
        with no progress ACK after it.
        """
        receiving = Receiving()
        receiving.receive(*split(payload(3)))
        receiving.clock.advance(ACK_DELAY)
        self.assertEqual(receiving.take(), [(0, COMPLETE, ())])

    def test_rangesBounded(self) -> None:
        """
        A progress ACK carries at most C{MAX_ACK_RANGES} runs, the lowest.
        """
        receiving = Receiving(maxMessageSize=200 * SIZE, reassemblyBudget=400 * SIZE)
        fragments = split(payload(200))
        receiving.receive(*fragments[0:200:2])
        receiving.clock.advance(ACK_DELAY)
        ranges = [ack[2] for ack in receiving.take() if ack[1] == PROGRESS]
        for each in ranges:
            self.assertLessEqual(len(each), records.MAX_ACK_RANGES)
        self.assertEqual(ranges[-1][0], (0, 1))


class TimeoutTests(SynchronousTestCase):
    """
    A message that stops making progress is abandoned after
    C{REASSEMBLY_TIMEOUT}, so a peer cannot pin memory by withholding one
    fragment.
    """

    def test_abandoned(self) -> None:
        """
        60 s after its last fragment, an incomplete message is abandoned:
        ACK abandoned, its reservation released, and the next message,
        complete and waiting, is delivered.
        """
        self.assertEqual(REASSEMBLY_TIMEOUT, 60.0)
        budget = Budget()
        receiving = Receiving(budget=budget)
        receiving.receive(split(payload(2, b"0"), 0)[0])
        receiving.receive(*split(b"next", 1))
        receiving.clock.advance(ACK_DELAY)
        receiving.take()
        receiving.clock.advance(REASSEMBLY_TIMEOUT - ACK_DELAY - 0.1)
        self.assertEqual(receiving.delivered, [])
        receiving.clock.advance(0.1)
        self.assertEqual(receiving.take(), [(0, ABANDONED, ()), (1, COMPLETE, ())])
        self.assertEqual(receiving.delivered, [(b"next", records.KIND_BINARY)])
        self.assertEqual(budget.reserved, 0)
        self.assertEqual(receiving.reassembler.nextDeliveryID, 2)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_progressResetsTimer(self) -> None:
        """
        Each new fragment gives the message another 60 s.
        """
        receiving = Receiving()
        fragments = split(payload(3))
        receiving.receive(fragments[0])
        receiving.clock.advance(59)
        receiving.receive(fragments[1])
        receiving.clock.advance(59)
        self.assertNotIn(ABANDONED, [status for _, status, _ in receiving.take()])
        receiving.clock.advance(1)
        self.assertIn((0, ABANDONED, ()), receiving.take())

    def test_completeWaitingNotAbandoned(self) -> None:
        """
        A complete message waiting for an earlier one is not abandoned by
        its own timer.
        """
        receiving = Receiving()
        receiving.receive(*split(b"one", 1))
        zero = split(payload(2), 0)
        receiving.receive(zero[0])
        receiving.clock.advance(REASSEMBLY_TIMEOUT - 1)
        receiving.receive(zero[1])
        receiving.clock.advance(REASSEMBLY_TIMEOUT)
        self.assertEqual(
            [(msgID, status) for msgID, status, _ in receiving.take() if status != PROGRESS],
            [(0, COMPLETE), (1, COMPLETE)],
        )
        self.assertEqual(len(receiving.delivered), 2)

    def test_lateFragmentOfAbandoned(self) -> None:
        """
        A fragment of an abandoned message that arrives later (the sender
        resends it because the first ACK abandoned was lost with its
        channel) is re-acknowledged with the same verdict, abandoned: never
        complete, which would tell the sender a message that was never
        delivered was.
        """
        receiving = Receiving()
        fragments = split(payload(2))
        receiving.receive(fragments[0])
        receiving.clock.advance(REASSEMBLY_TIMEOUT)
        self.assertEqual(receiving.take()[-1], (0, ABANDONED, ()))
        receiving.receive(fragments[1])
        self.assertEqual(receiving.take(), [(0, ABANDONED, ())])
        self.assertEqual(receiving.delivered, [])

    def test_failedDeliveryStaysAbandoned(self) -> None:
        """
        Likewise for a message the application failed to take: a duplicate
        fragment of it is answered abandoned, not complete.
        """
        receiving = Receiving()
        receiving.result = Deferred()
        fragment = split(b"refused")[0]
        receiving.receive(fragment)
        receiving.result.errback(ValueError("no room"))
        self.assertEqual(receiving.take(), [(0, ABANDONED, ())])
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        receiving.receive(fragment)
        self.assertEqual(receiving.take(), [(0, ABANDONED, ())])


class DuplicateTests(SynchronousTestCase):
    """
    A14: duplicates are compared on the header fields kept, their payload
    is dropped unread, and they are acknowledged again.
    """

    def test_inProgressDuplicate(self) -> None:
        """
        A duplicate of a fragment of a message still being gathered is
        answered at once with a progress ACK of what is held, and stored
        once.
        """
        receiving = Receiving()
        fragments = split(payload(3))
        receiving.receive(fragments[0], fragments[2], fragments[0])
        self.assertEqual(receiving.take(), [(0, PROGRESS, ((0, 1), (2, 1)))])
        receiving.receive(fragments[1])
        self.assertEqual(receiving.delivered, [(payload(3), records.KIND_BINARY)])

    def test_deliveredDuplicate(self) -> None:
        """
        A duplicate of a delivered message is re-acknowledged complete, once
        per heartbeat interval, and not delivered again.
        """
        receiving = Receiving()
        fragments = split(payload(2))
        receiving.receive(*fragments)
        receiving.take()
        receiving.receive(fragments[1], fragments[0])
        self.assertEqual(receiving.take(), [(0, COMPLETE, ())])
        receiving.clock.advance(makeParams().heartbeatInterval / 1000)
        receiving.receive(fragments[1], fragments[0])
        self.assertEqual(receiving.take(), [(0, COMPLETE, ())])
        self.assertEqual(len(receiving.delivered), 1)

    def test_duplicateAnswersCoalesced(self) -> None:
        """
        A peer replaying fragments gets at most one answer per message per
        heartbeat interval, whether the message is being gathered or
        delivered: ten thousand replays of a 16 KiB fragment within an
        interval cost two C{ACK:}s, not ten thousand.
        """
        receiving = Receiving()
        interval = makeParams().heartbeatInterval / 1000
        gathering = split(payload(3), msgID=0)
        done = split(payload(1), msgID=1)
        receiving.receive(gathering[0], gathering[2], *done)
        receiving.take()
        for _ in range(5000):
            receiving.receive(gathering[0], done[0])
        self.assertEqual(
            receiving.take(), [(0, PROGRESS, ((0, 1), (2, 1))), (1, PROGRESS, ((0, 1),))]
        )
        receiving.clock.advance(interval - 0.001)
        receiving.receive(gathering[2], done[0])
        self.assertEqual(receiving.take(), [])
        receiving.clock.advance(0.001)
        receiving.receive(gathering[2], gathering[0])
        self.assertEqual(receiving.take(), [(0, PROGRESS, ((0, 1), (2, 1)))])
        receiving.receive(gathering[1])
        self.assertEqual(receiving.take(), [(0, COMPLETE, ()), (1, COMPLETE, ())])
        for _ in range(5000):
            receiving.receive(gathering[1], done[0])
        self.assertEqual(receiving.take(), [(1, COMPLETE, ())])
        self.assertEqual(len(receiving.delivered), 2)

    def test_payloadNotCompared(self) -> None:
        """
        The payload of a duplicate is not read: a duplicate with other bytes
        of the right length changes nothing (the digest vouches for what
        was kept).
        """
        receiving = Receiving()
        data = payload(2)
        fragments = split(data)
        receiving.receive(fragments[0])
        forged = fragments[0]._replace(payload=b"X" * SIZE)
        receiving.receive(forged, fragments[1])
        self.assertEqual(receiving.delivered, [(data, records.KIND_BINARY)])

    def test_headerMismatchFatal(self) -> None:
        """
        A duplicate whose kept fields differ is a protocol error.
        """
        receiving = Receiving()
        fragments = split(payload(2))
        receiving.receive(fragments[0])
        self.assertRaises(
            ProtocolError,
            receiving.receive,
            fragments[0]._replace(kind=records.KIND_TEXT),
        )


class ReacknowledgeTests(SynchronousTestCase):
    """
    L{Reassembler.reacknowledge}: after a channel died, perhaps with
    acknowledgements on it, the receiver says again what it has.
    """

    def test_progressAndFinal(self) -> None:
        """
        Every message in progress gets a progress ACK listing all it
        received, and the latest finished messages their final status.
        """
        receiving = Receiving()
        first, second = split(payload(1)), split(payload(3, b"q"), msgID=1)
        receiving.receive(*first)
        receiving.receive(second[0], second[2])
        receiving.take()
        receiving.reassembler.reacknowledge()
        self.assertEqual(
            receiving.take(),
            [(1, PROGRESS, ((0, 1), (2, 1))), (0, COMPLETE, ())],
        )

    def test_nothingToSay(self) -> None:
        """
        With nothing received, nothing is sent.
        """
        receiving = Receiving()
        receiving.reassembler.reacknowledge()
        self.assertEqual(receiving.take(), [])
