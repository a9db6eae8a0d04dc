"""
Tests for L{spc.protocol.liveness} and the session's heartbeat timer: liveness,
the request limit and the epoch check, all on a L{task.Clock}.
"""

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from spc.errors import ProtocolError
from spc.protocol import records
from spc.protocol.liveness import Liveness, RequestLimiter, epochsAgree
from tests.test_session import FakeChannel, decoded, makeSession


class LivenessTests(SynchronousTestCase):
    """
    A channel is dead after C{missLimit} silent intervals or that many
    unanswered requests.
    """

    def test_silence(self) -> None:
        """
        Dead once nothing was heard for more than limit × interval.
        """
        liveness = Liveness(5.0, 3, now=0.0)
        self.assertFalse(liveness.isDead(15.0))
        self.assertTrue(liveness.isDead(15.1))
        liveness.heard(15.1)
        self.assertFalse(liveness.isDead(20.0))

    def test_unanswered(self) -> None:
        """
        Three unanswered requests make a channel dead even if other frames
        arrive; an answer resets the count and measures the round trip.
        """
        liveness = Liveness(5.0, 3, now=0.0)
        first = liveness.request(0.0)
        liveness.request(5.0)
        liveness.heard(9.0)
        self.assertFalse(liveness.isDead(9.0))
        liveness.request(10.0)
        self.assertTrue(liveness.isDead(10.0))
        liveness.answered(first, 10.5)
        self.assertFalse(liveness.isDead(10.5))
        self.assertEqual(liveness.rtt, 10.5)
        liveness.answered(12345, 11.0)
        self.assertEqual(liveness.rtt, 10.5)

    def test_blocked(self) -> None:
        """
        A connection whose transport has taken nothing for more than limit
        × interval is blocked, whatever its peer sends; one that takes data
        is not.
        """
        liveness = Liveness(5.0, 3, now=0.0)
        self.assertFalse(liveness.isBlocked(None, 100.0))
        self.assertFalse(liveness.isBlocked(10.0, 25.0))
        liveness.heard(25.0)
        self.assertTrue(liveness.isBlocked(10.0, 25.1))


class LimiterTests(SynchronousTestCase):
    """
    Incoming requests: a burst of ten, then two per interval (A18).
    """

    def test_burstThenRate(self) -> None:
        """
        Ten at once are allowed, the eleventh is dropped; after half an
        interval one more is allowed.
        """
        limiter = RequestLimiter(5.0, now=0.0)
        self.assertEqual([limiter.allow(0.0) for _ in range(11)], [True] * 10 + [False])
        self.assertTrue(limiter.allow(2.5))
        self.assertFalse(limiter.abusive())

    def test_abusive(self) -> None:
        """
        Only a sustained tenfold excess counts as abuse.
        """
        limiter = RequestLimiter(1.0, now=0.0)
        for _ in range(299):
            limiter.allow(1.0)
        self.assertFalse(limiter.abusive())
        for _ in range(2):
            limiter.allow(1.0)
        self.assertTrue(limiter.abusive())

    def test_epochs(self) -> None:
        """
        The peer's epoch agrees when it is ours or one we hold.
        """
        self.assertTrue(epochsAgree(3, 3, frozenset({3})))
        self.assertTrue(epochsAgree(2, 3, frozenset({2, 3})))
        self.assertFalse(epochsAgree(1, 3, frozenset({2, 3})))


class SessionHeartbeatTests(SynchronousTestCase):
    """
    The session sends a request per channel every interval and closes a
    channel whose peer went silent.
    """

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.session = makeSession(clock=self.clock)
        self.channel = FakeChannel(0)
        self.session.attach(self.channel, 0)

    def test_requestsEveryInterval(self) -> None:
        """
        A request at once (key confirmation), then one per interval.
        """
        interval = self.session.params.heartbeatInterval / 1000
        self.assertEqual(len(self.channel.take(records.HeartbeatRequest)), 1)
        self.clock.advance(interval)
        self.assertEqual(len(self.channel.take(records.HeartbeatRequest)), 1)

    def test_silentChannelDies(self) -> None:
        """
        With no answer, the channel is closed as dead within
        (limit + 1) intervals; the session lingers instead of ending.
        """
        interval = self.session.params.heartbeatInterval / 1000
        for _ in range(self.session.params.heartbeatMissLimit + 1):
            self.clock.advance(interval)
        self.assertEqual(self.channel.fatalReason, "no heartbeat from the peer")
        self.assertIsNone(self.session.closedReason)

    def answerAll(self) -> None:
        for request in self.channel.take(records.HeartbeatRequest):
            self.session.recordReceived(
                self.channel, 0, decoded(records.HeartbeatResponse(*request))
            )

    def test_blockedChannelDies(self) -> None:
        """
        A peer that answers every request but reads nothing else (its
        answers can be made blind: the ids are sequential) loses the
        channel once the transport has been paused for limit × interval,
        at the next beat; the session lingers instead of ending.
        """
        interval = self.session.params.heartbeatInterval / 1000
        deadTime = self.session.params.heartbeatMissLimit * interval
        self.channel.writePaused = True
        self.channel.pausedSince = self.clock.seconds()
        while self.clock.seconds() <= deadTime:
            self.answerAll()
            self.assertIsNone(self.channel.fatalReason)
            self.clock.advance(interval)
        self.assertEqual(self.channel.fatalReason, "the peer reads nothing")
        self.assertLessEqual(self.clock.seconds(), deadTime + interval)
        self.assertIsNone(self.session.closedReason)

    def test_answeredChannelLives(self) -> None:
        """
        A peer that answers every request keeps the channel.
        """
        interval = self.session.params.heartbeatInterval / 1000
        for _ in range(20):
            for request in self.channel.take(records.HeartbeatRequest):
                self.session.recordReceived(
                    self.channel, 0, decoded(records.HeartbeatResponse(*request))
                )
            self.clock.advance(interval)
        self.assertIsNone(self.channel.fatalReason)

    def test_impossibleSequence(self) -> None:
        """
        A peer claiming to have received more frames than were sent closes
        the connection.
        """
        self.session.recordReceived(
            self.channel,
            0,
            decoded(records.HeartbeatRequest(1, 0, 0, records.NO_EPOCH, 10**6, 0, 0)),
        )
        self.assertEqual(self.channel.fatalReason, "the peer claims frames that were never sent")

    def beat(self, nextTx: int, rxLow: int) -> None:
        self.session.recordReceived(
            self.channel,
            0,
            decoded(records.HeartbeatRequest(
                1, 0, 0, records.NO_EPOCH, records.NO_SEQUENCE, nextTx, rxLow
            )),
        )

    def test_impossibleMessageIDs(self) -> None:
        """
        A peer claiming to have delivered a message this end never sent
        ends the session with BYE protocol error.
        """
        sent = self.session.sendMessage(b"one")
        self.beat(0, 1)
        self.assertIsNone(self.session.closedReason)
        self.beat(0, 2)
        self.assertIsNotNone(self.session.closedReason)
        self.assertEqual(self.channel.take(records.Bye)[-1].code, records.BYE_PROTOCOL_ERROR)
        self.failureResultOf(sent, ProtocolError)

    def test_peerBehindDelivery(self) -> None:
        """
        A heartbeat naming fewer sent messages than this end delivered is
        no fault: the messages can overtake it on another channel.
        """
        self.session.messenger.reassembler.nextDeliveryID = 3
        self.beat(1, 0)
        self.assertIsNone(self.session.closedReason)

    def test_desync(self) -> None:
        """
        A peer whose committed epoch this end does not hold, for longer
        than the overlap, ends the session with BYE desync.
        """
        def beat():
            self.session.recordReceived(
                self.channel,
                0,
                decoded(records.HeartbeatRequest(1, 0, 7, records.NO_EPOCH, records.NO_SEQUENCE, 0, 0)),
            )

        beat()
        self.assertIsNone(self.session.closedReason)
        self.clock.advance(self.session.params.overlap / 1000 + 1)
        beat()
        self.assertIsNotNone(self.session.closedReason)
        byes = self.channel.take(records.Bye)
        self.assertEqual(byes[-1].code, records.BYE_DESYNC)


class RotationRequestTests(SynchronousTestCase):
    """
    A client whose key wore out or aged asks the server for a rotation,
    once until the next rotation ends.
    """

    def test_oneRequest(self) -> None:
        """
        Two worn-out signals send one C{RKR:}; an C{RKX:} allows the next.
        """
        from tests.test_rotation_support import clientSession

        session, channel = clientSession()
        session.keyWornOut(channel)
        session.keyWornOut(channel)
        requests = channel.take(records.RotationRequest)
        self.assertEqual([r.reason for r in requests], [records.REKEY_VOLUME])
        session.recordReceived(channel, 0, decoded(records.RotationAbort(1, 0)))
        session.keyWornOut(channel)
        self.assertEqual(len(channel.take(records.RotationRequest)), 1)
