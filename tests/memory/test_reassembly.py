# -*- test-case-name: tests.memory.test_reassembly -*-
"""
Tests for L{spc.session.reassembly}: the receiving half of a session's messenger,
driven directly with decoded fragments, a recording acknowledgement
callable and L{task.Clock} for its progress and abandonment timers.
"""

from __future__ import annotations

from hypothesis import given, settings, strategies as st
from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.logger import Logger, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from spc.errors import ProtocolError, ResourceLimitExceeded
from spc.logs import events
from spc.protocol import frames, records
from spc.protocol.records import messageDigest
from spc.session.reassembly import (
    ACK_DELAY,
    ACK_EVERY,
    DEFAULT_DEADLINE,
    REASSEMBLY_TIMEOUT,
    Budget,
    Reassembler,
)

SIZE = frames.MIN_FRAGMENT_SIZE


def makeParams(**overrides) -> frames.Params:
    """
    16 KiB fragments, messages up to 32 fragments, 8 in flight.
    """
    values = dict(
        fragmentSize=SIZE,
        maxInner=frames.maxInnerSize(SIZE),
        maxMessageSize=32 * SIZE,
        maxInflightMessages=8,
        reassemblyBudget=64 * SIZE,
    )
    values.update(overrides)
    return frames.Params(**values)


class Receiving:
    """
    A L{Reassembler} with everything it touches recorded, reserving from
    C{budget} (a L{Budget}) as C{identity}.

    @ivar delivered: C{(data, kind)} in delivery order.
    @ivar acks: decoded C{ACK:}s, oldest first.
    @ivar result: what the delivery callable returns.
    """

    def __init__(self, clock=None, budget=None, identity: str = "peer", **params) -> None:
        self.clock = clock if clock is not None else task.Clock()
        self.delivered: list[tuple[bytes, int]] = []
        self.acks: list[records.Ack] = []
        self.result: object = None
        self.reassembler = Reassembler(
            makeParams(**params),
            self._deliver,
            self._acknowledge,
            self.clock,
            budget.account(identity) if budget is not None else None,
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
BUSY = records.ACK_BUSY


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
    gives it back once delivered.  A message the shared budget cannot take
    is refused as busy, and the session goes on.
    """

    def test_sharedBudgetExhausted(self) -> None:
        """
        Two reassemblers (two sessions of two identities) sharing a
        L{Budget}: together they may not reserve more than its limit, though
        each is within its own session budget.  The message that does not
        fit is refused with C{ACK:} busy, reserves nothing and raises
        nothing; its id is passed, and the same bytes sent again under the
        next id, once there is room, are delivered.
        """
        budget = Budget(limit=6 * SIZE)
        first = Receiving(budget=budget, identity="first")
        second = Receiving(budget=budget, identity="second")
        one, two = split(payload(4, b"1")), split(payload(4, b"2"))
        first.receive(one[0])
        self.assertEqual(budget.reserved, 4 * SIZE - 3)
        second.receive(two[0])
        self.assertEqual(second.take(), [(0, BUSY, ())])
        self.assertEqual(budget.reserved, 4 * SIZE - 3)
        self.assertEqual(second.reassembler.nextDeliveryID, 1)
        first.receive(*one[1:])
        self.assertEqual(budget.reserved, 0)
        second.receive(*split(payload(4, b"2"), msgID=1))
        self.assertEqual(second.delivered, [(payload(4, b"2"), records.KIND_BINARY)])
        self.assertEqual(second.take(), [(1, COMPLETE, ())])
        self.assertEqual(budget.reserved, 0)

    def test_perIdentityShare(self) -> None:
        """
        The sessions of one identity together reserve at most the budget's
        C{perIdentity}; beyond it their messages are refused as busy while
        another identity's still fit.
        """
        budget = Budget(limit=100 * SIZE, perIdentity=5 * SIZE)
        sessions = [Receiving(budget=budget, identity="greedy") for _ in range(2)]
        other = Receiving(budget=budget, identity="other")
        sessions[0].receive(split(payload(4))[0])
        sessions[1].receive(split(payload(4))[0])
        other.receive(split(payload(4))[0])
        self.assertEqual(sessions[1].take(), [(0, BUSY, ())])
        self.assertEqual(budget.reservedBy("greedy"), 4 * SIZE - 3)
        self.assertEqual(budget.reservedBy("other"), 4 * SIZE - 3)
        self.assertEqual(budget.reserved, 8 * SIZE - 6)

    def test_reserveAndRelease(self) -> None:
        """
        L{Budget.reserve} says whether the bytes fit and reserves nothing
        when they do not; L{Budget.release} gives them back and forgets an
        identity that holds nothing.
        """
        budget = Budget(limit=10, perIdentity=6)
        self.assertTrue(budget.reserve("a", 6))
        self.assertFalse(budget.reserve("a", 1))
        self.assertFalse(budget.reserve("b", 5))
        self.assertTrue(budget.reserve("b", 4))
        self.assertEqual((budget.reserved, budget.reservedBy("b")), (10, 4))
        budget.release("a", 6)
        budget.release("b", 4)
        self.assertEqual((budget.reserved, budget._byIdentity), (0, {}))

    def test_refusalsLogged(self) -> None:
        """
        Each refusal is logged with the message, the peer and what is held,
        at most C{THROTTLE_BURST} a minute; the rest are summed up when the
        session ends.
        """
        logged: list[dict] = []
        self.patch(Reassembler, "log", Logger(observer=logged.append))
        budget = Budget(limit=3 * SIZE)
        receiving = Receiving(budget=budget, identity="SHA256:busy", maxInflightMessages=32)
        receiving.receive(split(payload(2), 0)[0])
        for msgID in range(1, 16):
            receiving.receive(split(payload(2), msgID)[0])
        refused = [e for e in logged if e["log_format"] == events.MESSAGE_REFUSED]
        self.assertEqual(len(refused), events.THROTTLE_BURST)
        self.assertEqual(
            formatEvent(refused[0]),
            f"No room for message 1 ({2 * SIZE - 3} bytes) from SHA256:busy: messages hold "
            f"{2 * SIZE - 3} bytes, {2 * SIZE - 3} of them this peer's; refused as busy",
        )
        receiving.reassembler.close()
        [summary] = [
            e for e in logged if e["log_format"] == events.MESSAGES_REFUSED_SUPPRESSED
        ]
        self.assertEqual((summary["count"], summary["peer"]), (5, "SHA256:busy"))
        self.assertEqual(receiving.clock.getDelayedCalls(), [])

    def test_refusedPassedInOrder(self) -> None:
        """
        A refused message is answered busy at once, holds no later message
        back once the earlier ones are delivered, and is not acknowledged
        again at its turn.
        """
        budget = Budget(limit=6 * SIZE)
        receiving = Receiving(budget=budget)
        zero, one, two = split(payload(2), 0), split(payload(5), 1), split(b"two", 2)
        receiving.receive(zero[0], one[0], *two)
        self.assertEqual(receiving.take(), [(1, BUSY, ())])
        receiving.receive(zero[1])
        self.assertEqual(receiving.take(), [(0, COMPLETE, ()), (2, COMPLETE, ())])
        self.assertEqual(
            receiving.delivered,
            [(payload(2), records.KIND_BINARY), (b"two", records.KIND_BINARY)],
        )
        self.assertEqual(budget.reserved, 0)

    def test_lateFragmentsOfRefused(self) -> None:
        """
        Every later fragment of a refused message, before and after its id
        was passed, is answered busy again and stored nowhere, even when
        there is room by then.
        """
        budget = Budget(limit=3 * SIZE)
        receiving = Receiving(budget=budget)
        zero, one = split(payload(2), 0), split(payload(4), 1)
        receiving.receive(zero[0], one[0])
        receiving.take()
        receiving.receive(one[1])
        self.assertEqual(receiving.take(), [(1, BUSY, ())])
        receiving.receive(zero[1], one[2])
        self.assertEqual(receiving.take(), [(0, COMPLETE, ()), (1, BUSY, ())])
        self.assertEqual(receiving.reassembler.nextDeliveryID, 2)
        self.assertEqual(budget.reserved, 0)

    def test_reacknowledgeRefused(self) -> None:
        """
        After a channel died, a refused message waiting for its turn is
        said to be refused again.
        """
        budget = Budget(limit=3 * SIZE)
        receiving = Receiving(budget=budget)
        receiving.receive(split(payload(2), 0)[0], split(payload(4), 1)[0])
        receiving.take()
        receiving.reassembler.reacknowledge()
        self.assertEqual(receiving.take(), [(0, PROGRESS, ((0, 1),)), (1, BUSY, ())])

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
        The daemon's budget is 1 GiB, 256 MiB of it per identity, and a
        message has 30 minutes, unless configured.
        """
        budget = Budget()
        self.assertEqual(
            (budget.limit, budget.perIdentity, budget.deadline), (1 << 30, 256 << 20, 1800.0)
        )
        self.assertEqual(DEFAULT_DEADLINE, 1800.0)


_operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("fragment"), st.integers(0, 2), st.integers(0, 7), st.integers(0, 3)
        ),
        st.tuples(st.just("wait"), st.floats(0, 200)),
    ),
    max_size=60,
)


class SharedBudgetPropertyTests(SynchronousTestCase):
    """
    Whatever authenticated peers send within their sessions' rules, the
    shared budget holds.
    """

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(_operations)
    def test_boundedAndTimeLimited(self, operations) -> None:
        """
        Three sessions of two identities send fragments of messages of 1 to
        4 fragments in any order, with time passing: no refusal is ever an
        error, the daemon's and each identity's reservations never exceed
        their limits, and one deadline after the last fragment nothing is
        reserved any more.
        """
        clock = task.Clock()
        budget = Budget(limit=6 * SIZE, perIdentity=4 * SIZE, deadline=300.0)
        sessions = [
            Receiving(clock, budget, identity) for identity in ("one", "one", "two")
        ]
        messages = [split(payload(msgID % 4 + 1, b"m"), msgID) for msgID in range(8)]
        for operation in operations:
            if operation[0] == "wait":
                clock.advance(operation[1])
            else:
                _, session, msgID, index = operation
                fragments = messages[msgID]
                sessions[session].receive(fragments[index % len(fragments)])
            self.assertLessEqual(budget.reserved, budget.limit)
            for identity in ("one", "two"):
                self.assertLessEqual(budget.reservedBy(identity), budget.perIdentity)
        clock.advance(budget.deadline)
        self.assertEqual(budget.reserved, 0)


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
            self.assertLessEqual(len(each), frames.MAX_ACK_RANGES)
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

    def test_absoluteDeadline(self) -> None:
        """
        A message whose fragments keep coming, one every 59 s, is abandoned
        at the budget's deadline after its first fragment all the same:
        its reservation is released and it is acknowledged abandoned.
        """
        budget = Budget(deadline=600.0)
        receiving = Receiving(budget=budget, maxMessageSize=200 * SIZE, reassemblyBudget=200 * SIZE)
        fragments = split(payload(100))
        receiving.receive(fragments[0])
        for fragment in fragments[1:11]:
            receiving.clock.advance(59)
            receiving.receive(fragment)
        receiving.clock.advance(600 - 590 - 0.1)
        self.assertNotIn(ABANDONED, [status for _, status, _ in receiving.take()])
        self.assertEqual(budget.reserved, 100 * SIZE - 3)
        receiving.clock.advance(0.1)
        self.assertEqual(receiving.take(), [(0, ABANDONED, ())])
        self.assertEqual(budget.reserved, 0)
        self.assertEqual(receiving.clock.getDelayedCalls(), [])

    def test_gatheredWaitingHasDeadline(self) -> None:
        """
        A gathered message waiting for an earlier id that never begins is
        not kept past its deadline either: it is freed then, and
        acknowledged abandoned at its turn.
        """
        budget = Budget(deadline=600.0)
        receiving = Receiving(budget=budget)
        receiving.receive(*split(payload(2), 1))
        receiving.clock.advance(599)
        self.assertEqual(budget.reserved, 2 * SIZE - 3)
        receiving.clock.advance(1)
        self.assertEqual(budget.reserved, 0)
        receiving.take()
        receiving.receive(*split(b"zero", 0))
        self.assertEqual(receiving.take(), [(0, COMPLETE, ()), (1, ABANDONED, ())])
        self.assertEqual(receiving.delivered, [(b"zero", records.KIND_BINARY)])

    def test_abandonedReleasedAtOnce(self) -> None:
        """
        An abandoned message gives its reservation back when it is
        abandoned, though its C{ACK:} waits for its turn.
        """
        budget = Budget()
        receiving = Receiving(budget=budget)
        zero, one = split(payload(2), 0), split(payload(3), 1)
        receiving.receive(one[0])
        receiving.clock.advance(REASSEMBLY_TIMEOUT / 2)
        receiving.receive(zero[0])
        receiving.clock.advance(REASSEMBLY_TIMEOUT / 2)
        self.assertEqual(budget.reserved, 2 * SIZE - 3)
        self.assertNotIn(ABANDONED, [status for _, status, _ in receiving.take()])
        receiving.receive(zero[1])
        self.assertEqual(receiving.take(), [(0, COMPLETE, ()), (1, ABANDONED, ())])

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
