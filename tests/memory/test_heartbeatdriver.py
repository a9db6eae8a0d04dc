"""
Tests for L{spc.session.heartbeatdriver}, the session's heartbeat timer on a
L{task.Clock}: requests every interval, silent channels closed, epochs
checked, and a client's requests for rotation.
"""

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from spc.errors import ProtocolError
from spc.protocol import records
from tests.common import cachedExchangeKey
from tests.fakes import FakeChannel
from tests.memory.test_session import decoded, makeSession


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


def clientSession():
    """
    @return: a client L{spc.session.session.Session} with a rotation machine, and
        its one L{FakeChannel}.
    """
    session = makeSession(clock=task.Clock(), exchangeKey=cachedExchangeKey())
    channel = FakeChannel(0)
    session.attach(channel, 0)
    channel.take()
    return session, channel


class RotationRequestTests(SynchronousTestCase):
    """
    A client whose key wore out or aged asks the server for a rotation,
    once until the next rotation ends.
    """

    def test_oneRequest(self) -> None:
        """
        Two worn-out signals send one C{RKR:}; an C{RKX:} allows the next.
        """
        session, channel = clientSession()
        session.keyWornOut(channel)
        session.keyWornOut(channel)
        requests = channel.take(records.RotationRequest)
        self.assertEqual([r.reason for r in requests], [records.REKEY_VOLUME])
        session.recordReceived(channel, 0, decoded(records.RotationAbort(1, 0)))
        session.keyWornOut(channel)
        self.assertEqual(len(channel.take(records.RotationRequest)), 1)
