# -*- test-case-name: tests.memory.test_heartbeatpace -*-
"""
Tests for the heartbeats of amendment A21 in
L{spc.session.heartbeatdriver.HeartbeatDriver}, on a L{task.Clock}: a
channel that carries traffic is asked for no heartbeat, an idle session
beats more slowly until traffic comes, a dead channel is still found within
the dead-time of the interval in force, and the sync checks still ride on
the heartbeats that are sent and on every rotation.
"""

from __future__ import annotations

from types import SimpleNamespace

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from spc.protocol import frames, records
from spc.session.channels import ChannelSet
from spc.session.epochkeys import EpochKeys
from spc.session.heartbeatdriver import IDLE_BEATS, STRETCH, HeartbeatDriver
from tests.fakes import FakeChannel, FakeSession
from tests.memory.test_session import decoded, heartbeatRequest, message

INTERVAL = 1.0
MISS_LIMIT = 3
PARAMS = frames.Params(heartbeatInterval=int(INTERVAL * 1000), overlap=2000)
DATA = message(b"a record of traffic").encode()


class Beating:
    """
    A L{HeartbeatDriver} over a real L{ChannelSet} and L{EpochKeys}, with
    C{count} admitted L{FakeChannel}s attached at time 0, and a count of
    rotation records sent the test sets.

    @ivar channels: the channels, in index order.
    @ivar rotationRecords: what the driver is told the rotation sent.
    """

    def __init__(self, count: int = 1) -> None:
        self.clock = task.Clock()
        self.session = FakeSession()
        self.channelSet = ChannelSet(self.clock, 60.0, lambda: None)
        self.keys = EpochKeys(0, b"\x00" * 32, self.channelSet.connections)
        self.rotationRecords = 0
        self.driver = HeartbeatDriver(
            self.session, self.channelSet, self.keys,
            SimpleNamespace(nextSendID=0, nextDeliveryID=0), self.clock, PARAMS.seconds,
            MISS_LIMIT, lambda: None, lambda: self.rotationRecords,
        )
        self.channels = []
        for index in range(count):
            channel = FakeChannel(index)
            channel.owner = SimpleNamespace(
                channelLost=lambda channel, reason: self.driver.forget(channel)
            )
            for name in ("installEpoch", "switchSendEpoch", "dropEpoch"):
                setattr(channel.records, name, lambda *args: None)
            self.channelSet.attached(channel, confirmed=True)
            self.channelSet.admit(channel)
            self.driver.attach(channel)
            self.channels.append(channel)

    def requests(self, channel) -> list:
        return channel.take(records.HeartbeatRequest)

    def answerAll(self) -> None:
        """
        The peer answers every request sent so far.
        """
        for channel in self.channels:
            for request in self.requests(channel):
                answer = decoded(records.HeartbeatResponse(*request))
                self.driver.answerReceived(channel, answer)
                self.driver.heard(channel, answer)

    def beatAnswered(self, times: int) -> None:
        """
        Let C{times} intervals in force pass, the peer answering every
        request at once.
        """
        for _ in range(times):
            self.clock.advance(self.driver.interval)
            self.answerAll()


class BusyChannelTests(SynchronousTestCase):
    """
    A heartbeat is asked for only on a channel this end sent nothing on for
    an interval.
    """

    def test_busyChannelNoRequest(self) -> None:
        """
        A channel that sends a record every interval gets no request; an
        idle one beside it gets one per interval.
        """
        beating = Beating(2)
        busy, idle = beating.channels
        for _ in range(6):
            beating.clock.advance(INTERVAL / 2)
            busy.sendRecord(DATA)
            beating.clock.advance(INTERVAL / 2)
            self.assertEqual(beating.requests(busy), [])
            [request] = beating.requests(idle)
            answer = decoded(records.HeartbeatResponse(*request))
            beating.driver.answerReceived(idle, answer)
            beating.driver.heard(idle, answer)
            beating.driver.heard(busy, message(b"an answer"))
        self.assertEqual((busy.fatalReason, idle.fatalReason), (None, None))

    def test_answerCountsAsSent(self) -> None:
        """
        An end that answered the peer's request within the interval has
        sent something: it asks for nothing.
        """
        beating = Beating()
        [channel] = beating.channels
        beating.clock.advance(INTERVAL / 2)
        beating.driver.requestReceived(channel, heartbeatRequest(1))
        beating.clock.advance(INTERVAL / 2)
        sent = channel.take()
        self.assertEqual([type(record) for record in sent], [records.HeartbeatResponse])

    def test_quietAfterTraffic(self) -> None:
        """
        Once the channel has been quiet for a whole interval, it is asked
        again.
        """
        beating = Beating()
        [channel] = beating.channels
        beating.clock.advance(INTERVAL / 2)
        channel.sendRecord(DATA)
        beating.clock.advance(INTERVAL / 2)
        self.assertEqual(beating.requests(channel), [])
        beating.driver.heard(channel, message(b"an answer"))
        beating.clock.advance(INTERVAL)
        self.assertEqual(len(beating.requests(channel)), 1)


class IdleStretchTests(SynchronousTestCase):
    """
    A session idle for C{IDLE_BEATS} intervals beats C{STRETCH} times more
    slowly; any traffic brings the interval back.
    """

    def stretched(self, count: int = 1) -> Beating:
        beating = Beating(count)
        beating.beatAnswered(IDLE_BEATS)
        self.assertEqual(beating.driver.interval, INTERVAL * STRETCH)
        return beating

    def test_stretches(self) -> None:
        """
        After the third idle interval, requests come every six intervals,
        and the channel lives on the peer's answers.
        """
        beating = Beating()
        [channel] = beating.channels
        beating.beatAnswered(IDLE_BEATS - 1)
        self.assertEqual(beating.driver.interval, INTERVAL)
        beating.beatAnswered(1)
        self.assertEqual(beating.driver.interval, INTERVAL * STRETCH)
        beating.clock.advance(INTERVAL * STRETCH - INTERVAL / 10)
        self.assertEqual(beating.requests(channel), [])
        beating.clock.advance(INTERVAL / 10)
        self.assertEqual(len(beating.requests(channel)), 1)
        beating.answerAll()
        beating.beatAnswered(10)
        self.assertIsNone(channel.fatalReason)

    def test_maintenanceIsNotTraffic(self) -> None:
        """
        The peer's heartbeats and rotation records, and the rotation
        records this end sends, do not end the stretch.
        """
        beating = self.stretched()
        [channel] = beating.channels
        beating.driver.requestReceived(channel, heartbeatRequest(1))
        beating.driver.heard(channel, heartbeatRequest(1))
        beating.driver.heard(channel, decoded(records.RotationCommit(1)))
        beating.driver.heard(channel, decoded(records.RotationRequest(records.REKEY_AGE)))
        channel.sendRecord(records.RotationCommit(1).encode())
        beating.rotationRecords += 1
        beating.beatAnswered(2)
        self.assertEqual(beating.driver.interval, INTERVAL * STRETCH)

    def test_heardTrafficRestores(self) -> None:
        """
        Traffic heard restores the interval at once: the next beat comes
        one interval later.
        """
        beating = self.stretched()
        [channel] = beating.channels
        beating.clock.advance(INTERVAL)
        beating.driver.heard(channel, message(b"traffic"))
        self.assertEqual(beating.driver.interval, INTERVAL)
        beating.clock.advance(INTERVAL)
        self.assertEqual(len(beating.requests(channel)), 1)

    def test_sentTrafficRestores(self) -> None:
        """
        Traffic sent restores the interval at the next beat; a paused
        transport, with data waiting, is traffic too.
        """
        beating = self.stretched(2)
        first, second = beating.channels
        first.sendRecord(DATA)
        beating.beatAnswered(1)
        self.assertEqual(beating.driver.interval, INTERVAL)
        beating.beatAnswered(IDLE_BEATS)
        self.assertEqual(beating.driver.interval, INTERVAL * STRETCH)
        second.writePaused = True
        second.pausedSince = beating.clock.seconds()
        beating.beatAnswered(1)
        self.assertEqual(beating.driver.interval, INTERVAL)


class DeadChannelTests(SynchronousTestCase):
    """
    A dead channel is found within C{MISS_LIMIT} times the interval in force
    after its last sign of life, between beats as at them.
    """

    def silentUntilDead(self, beating: Beating, channel) -> float:
        """
        Let time pass in small steps, with no answer, until the channel is
        dead.

        @return: how long after its last sign of life it was found dead.
        """
        heard = beating.driver._liveness[channel].lastHeard
        step = INTERVAL / 20
        while channel.fatalReason is None:
            beating.clock.advance(step)
            self.assertLess(beating.clock.seconds() - heard, 100 * INTERVAL)
        return beating.clock.seconds() - heard

    def test_deadBetweenBeats(self) -> None:
        """
        A busy channel whose peer falls silent just after a beat is found
        dead the moment it has been silent for three intervals, not at the
        beat after.
        """
        beating = Beating()
        [channel] = beating.channels
        beating.clock.advance(INTERVAL + INTERVAL / 8)
        beating.answerAll()
        heard = beating.clock.seconds()
        step = INTERVAL / 16
        while channel.fatalReason is None:
            beating.clock.advance(step)
            channel.sendRecord(DATA)
            self.assertLess(beating.clock.seconds() - heard, 10 * INTERVAL)
        silence = beating.clock.seconds() - heard
        self.assertEqual(channel.fatalReason, "no heartbeat from the peer")
        self.assertLessEqual(silence, MISS_LIMIT * INTERVAL + 1e-9)
        self.assertGreater(silence, MISS_LIMIT * INTERVAL - step)

    def test_deadWhileStretched(self) -> None:
        """
        On an idle session the dead-time is that of the stretched interval.
        """
        beating = Beating()
        [channel] = beating.channels
        beating.beatAnswered(IDLE_BEATS)
        beating.clock.advance(INTERVAL / 10)
        silence = self.silentUntilDead(beating, channel)
        self.assertLessEqual(silence, MISS_LIMIT * INTERVAL * STRETCH + 1e-9)

    def test_aliveWhileHeard(self) -> None:
        """
        A channel the peer sends on, though it never answers, lives: it is
        asked for nothing while it sends, and heard.
        """
        beating = Beating()
        [channel] = beating.channels
        for _ in range(40):
            beating.clock.advance(INTERVAL / 2)
            channel.sendRecord(DATA)
            beating.driver.heard(channel, message(b"traffic"))
        self.assertIsNone(channel.fatalReason)

    def test_stopCancelsWatch(self) -> None:
        """
        Once the driver stops, no timer of it is left.
        """
        beating = Beating()
        beating.clock.advance(INTERVAL * 2.5)
        beating.driver.stop()
        self.assertEqual(beating.clock.getDelayedCalls(), [])


class SyncCheckTests(SynchronousTestCase):
    """
    The sync checks ride on the heartbeats that are sent and on every
    rotation.
    """

    def test_commitProbesBusyChannels(self) -> None:
        """
        After a commit every live channel is asked, the busy ones too, and
        the answers are checked.
        """
        beating = Beating(2)
        busy, idle = beating.channels
        beating.clock.advance(INTERVAL / 2)
        busy.sendRecord(DATA)
        beating.clock.advance(INTERVAL / 2)
        self.assertEqual(beating.requests(busy), [])
        beating.keys.install(1, b"\x01" * 32)
        beating.keys.switch(1)
        beating.driver.probeCommit()
        [probe] = beating.requests(busy)
        self.assertEqual(probe.committedEpoch, 1)
        beating.driver.answerReceived(busy, decoded(records.HeartbeatResponse(
            probe.hbID, 0, 0, records.NO_EPOCH, records.NO_SEQUENCE, 0, 0
        )))
        self.assertTrue(beating.driver.commitMissed())

    def test_desyncOnSentHeartbeats(self) -> None:
        """
        On a stretched session, a disagreeing epoch in the answers that
        still come ends the session once it outlasts the overlap.
        """
        beating = Beating()
        [channel] = beating.channels
        beating.beatAnswered(IDLE_BEATS)
        for _ in range(2):
            beating.clock.advance(beating.driver.interval)
            [request] = beating.requests(channel)
            beating.driver.answerReceived(channel, decoded(records.HeartbeatResponse(
                request.hbID, 0, 7, records.NO_EPOCH, records.NO_SEQUENCE, 0, 0
            )))
        self.assertEqual(
            [ended[0] for ended in beating.session.ended], [records.BYE_DESYNC]
        )
