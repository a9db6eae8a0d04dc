"""
Tests for L{spc.session.heartbeatdriver}, the session's heartbeat timer on a
L{task.Clock}: requests every interval, silent channels closed, epochs
checked, and a client's requests for rotation; and the L{HeartbeatDriver}
on its own, over a real L{ChannelSet} and real L{EpochKeys}.  What
L{spc.protocol.liveness} decides is tested in L{tests.unit.test_liveness}.
"""

from types import SimpleNamespace

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from spc.errors import ProtocolError
from spc.protocol import frames, records
from spc.session.channels import ChannelSet
from spc.session.epochkeys import EpochKeys
from spc.session.heartbeatdriver import HeartbeatDriver
from tests.common import cachedExchangeKey
from tests.fakes import FakeChannel, FakeSession
from tests.memory.test_session import decoded, heartbeatRequest, makeSession


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


def makeDriver():
    """
    A L{HeartbeatDriver} over a real L{ChannelSet} and real L{EpochKeys},
    with one admitted L{FakeChannel} attached.
    """
    clock = task.Clock()
    session = FakeSession()
    channels = ChannelSet(clock, 60.0, lambda: None)
    keys = EpochKeys(0, b"\x00" * 32, channels.connections)
    beats: list[float] = []
    messages = SimpleNamespace(nextSendID=5, nextDeliveryID=3)
    driver = HeartbeatDriver(
        session, channels, keys, messages, clock, DRIVER_PARAMS.seconds,
        DRIVER_PARAMS.heartbeatMissLimit, lambda: beats.append(clock.seconds()),
    )
    channel = FakeChannel(0)
    channel.owner = SimpleNamespace(channelLost=lambda channel, reason: None)
    for name in ("installEpoch", "switchSendEpoch", "dropEpoch"):
        setattr(channel.records, name, lambda *args: None)
    channels.attached(channel, confirmed=True)
    channels.admit(channel)
    driver.attach(channel)
    return SimpleNamespace(
        driver=driver, session=session, keys=keys, channel=channel, clock=clock, beats=beats
    )


DRIVER_PARAMS = frames.Params(heartbeatInterval=1000, overlap=2000)


class HeartbeatDriverTests(SynchronousTestCase):
    """
    L{HeartbeatDriver} on its own: its timer, what its requests say, and the
    commit probe.
    """

    def test_beats(self) -> None:
        """
        The first beat comes one interval after the first attach, the key
        age check before the requests; once stopped, no timer is left.
        """
        made = makeDriver()
        self.assertEqual(made.channel.take(), [])
        made.clock.advance(1.0)
        self.assertEqual(made.beats, [1.0])
        self.assertEqual(len(made.channel.take(records.HeartbeatRequest)), 1)
        made.driver.stop()
        self.assertEqual(made.clock.getDelayedCalls(), [])

    def test_requestSaysEpochs(self) -> None:
        """
        A request carries the committed epoch and the pending one the
        epoch keys hold (C{NO_EPOCH} without one), and the message ids.
        """
        made = makeDriver()
        made.driver.request(made.channel)
        made.keys.install(1, b"\x01" * 32)
        made.driver.request(made.channel)
        first, second = made.channel.take(records.HeartbeatRequest)
        self.assertEqual((first.committedEpoch, first.pendingEpoch), (0, records.NO_EPOCH))
        self.assertEqual((second.committedEpoch, second.pendingEpoch), (0, 1))
        self.assertEqual((second.nextTxMsgID, second.rxLowMsgID), (5, 3))

    def answer(self, made, hbID: int, committed: int) -> None:
        made.driver.answerReceived(made.channel, decoded(records.HeartbeatResponse(
            hbID, 0, committed, records.NO_EPOCH, records.NO_SEQUENCE, 0, 0
        )))

    def test_commitProbe(self) -> None:
        """
        After a commit, an answer to a probe that names another epoch proves
        a missed commit; an answer to an earlier request does not, nor one
        naming the new epoch.
        """
        made = makeDriver()
        early = made.driver.request(made.channel)
        made.keys.install(1, b"\x01" * 32)
        made.keys.switch(1)
        made.driver.probeCommit()
        [_, probe] = made.channel.take(records.HeartbeatRequest)
        self.answer(made, early, 0)
        self.assertFalse(made.driver.commitMissed())
        self.answer(made, probe.hbID, 1)
        self.assertFalse(made.driver.commitMissed())
        self.answer(made, probe.hbID, 0)
        self.assertTrue(made.driver.commitMissed())
        made.driver.probeCommit()
        self.assertFalse(made.driver.commitMissed())

    def test_flood(self) -> None:
        """
        Requests past the bucket are not answered; a flood closes the
        connection.
        """
        made = makeDriver()
        for hbID in range(301):
            made.driver.requestReceived(made.channel, heartbeatRequest(hbID))
        self.assertEqual(len(made.channel.take(records.HeartbeatResponse)), 10)
        self.assertEqual(made.channel.fatalReason, "heartbeat flood")
