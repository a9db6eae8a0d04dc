# -*- test-case-name: tests.test_rotationdriver -*-
"""
Tests for L{spc.session.rotationdriver}: the timers a rotation machine asks
for, each a named delayed call on a L{task.Clock} that becomes the
machine's input; the triggers that start a rotation; the records each role
takes.  The machines themselves are L{tests.test_rotation}'s.
"""

from __future__ import annotations

from twisted.internet import task
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

from spc.errors import SessionReset
from spc.protocol import frames, records
from spc.protocol.rotation import ClientRotation, ServerRotation
from spc.session.epochkeys import EpochKeys
from spc.session.rotationdriver import MAX_KEY_AGE_ROUNDS, RotationDriver
from tests.test_session import cachedKey

TIMERS = frames.Params(rotationInterval=30_000, ackTimeout=5_000, overlap=10_000).seconds
SESSION = bytes(range(16))


class FakeSession:
    """
    What a rotation driver asks of a session, recorded.

    @ivar live: the live channels it reports; rotation records go on the
        first.
    @ivar roundTrips: the round trip under load it reports, by channel.
    @ivar sent: the control records sent, decoded.
    @ivar ended: C{(code, reason, error)} of each L{terminate}.
    @ivar events: what it logged.
    """

    id = SESSION
    peer = "SHA256:peer"

    def __init__(self, isServer: bool) -> None:
        self.isServer = isServer
        self.live: list[object] = ["a channel"]
        self.roundTrips: dict[object, float] = {}
        self.sent: list[object] = []
        self.ended: list[tuple[int, str, type]] = []
        self.events: list[dict] = []
        self.log = Logger(observer=self.events.append)

    def liveChannels(self) -> list:
        return self.live

    def sendControl(self, record: bytes) -> None:
        self.sent.append(records.decodeRecord(record))

    def sendRotation(self, record: bytes) -> object:
        self.sent.append(records.decodeRecord(record))
        return self.live[0] if self.live else None

    def loadedRoundTrip(self, channel: object) -> float | None:
        return self.roundTrips.get(channel)

    def terminate(self, code: int, reason: str, error: type) -> None:
        self.ended.append((code, reason, error))


class FakeProbe:
    """
    The heartbeats' commit probe.

    @ivar probes: how many times a commit was probed.
    @ivar missed: what L{commitMissed} answers.
    """

    def __init__(self) -> None:
        self.probes = 0
        self.missed = False

    def probeCommit(self) -> None:
        self.probes += 1

    def commitMissed(self) -> bool:
        return self.missed


class FakeMachine:
    """
    A rotation machine that records its inputs.
    """

    def __init__(self) -> None:
        self.inputs: list[tuple] = []

    def __getattr__(self, name: str):
        return lambda *args: self.inputs.append((name, *args))


def makeDriver(isServer: bool = True, fake: bool = True, exchange: bool = True):
    """
    A driver with a fake session and probe, real epoch keys at epoch 0
    and a clock; with C{fake}, its machine is a L{FakeMachine}.
    """
    clock = task.Clock()
    session, probe = FakeSession(isServer), FakeProbe()
    keys = EpochKeys(0, b"\x00" * 32, lambda: ())
    key = cachedKey("exchange")
    exchangeKey = (key.public_key() if isServer else key) if exchange else None
    driver = RotationDriver(session, keys, probe, clock, TIMERS, exchangeKey)
    if fake and exchange:
        driver.machine = FakeMachine()
    return driver, session, probe, keys, clock


class TimerTests(SynchronousTestCase):
    """
    Each timer the machine asks for fires its input once, at its time;
    starting one again restarts it; cancelling or stopping ends it.
    """

    def test_ackTimeout(self) -> None:
        """
        The ACK timeout becomes C{ackTimedOut} at its time, and a restart
        counts from the restart.
        """
        driver, _, _, _, clock = makeDriver()
        driver.startAckTimeout(5)
        clock.advance(3)
        driver.startAckTimeout(5)
        clock.advance(4.99)
        self.assertEqual(driver.machine.inputs, [])
        clock.advance(0.01)
        self.assertEqual(driver.machine.inputs, [("ackTimedOut",)])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_cancelled(self) -> None:
        """
        A cancelled ACK timeout or overlap fires nothing.
        """
        driver, _, _, _, clock = makeDriver()
        driver.startAckTimeout(5)
        driver.startOverlap(10)
        driver.cancelAckTimeout()
        driver.cancelOverlap()
        clock.advance(10)
        self.assertEqual(driver.machine.inputs, [])

    def test_overlapEnds(self) -> None:
        """
        The end of the overlap becomes C{overlapEnded}.
        """
        driver, session, _, _, clock = makeDriver()
        driver.startOverlap(10)
        clock.advance(10)
        self.assertEqual(driver.machine.inputs, [("overlapEnded",)])
        self.assertEqual(session.ended, [])

    def test_missedCommitResets(self) -> None:
        """
        When the heartbeats proved the client missed the commit, the end of
        the overlap resets the session (C{BYE:} desync) instead of dropping
        the old epoch.
        """
        driver, session, probe, _, clock = makeDriver()
        probe.missed = True
        driver.startOverlap(10)
        clock.advance(10)
        self.assertEqual(driver.machine.inputs, [])
        self.assertEqual(session.ended, [(records.BYE_DESYNC, "epoch desync", SessionReset)])

    def test_rotateSoon(self) -> None:
        """
        A remembered trigger rotates on the next turn of the clock, not at
        once.
        """
        driver, _, _, _, clock = makeDriver()
        driver.rotateSoon()
        self.assertEqual(driver.machine.inputs, [])
        clock.advance(0)
        self.assertEqual(driver.machine.inputs, [("tick",)])

    def test_stop(self) -> None:
        """
        A session that ended leaves no rotation timer behind.
        """
        driver, _, _, _, clock = makeDriver()
        driver.startAckTimeout(5)
        driver.startOverlap(10)
        driver.rotateSoon()
        driver.stop()
        self.assertEqual(clock.getDelayedCalls(), [])


class TriggerTests(SynchronousTestCase):
    """
    What starts a rotation (section 8.1).
    """

    def test_onlyServerWithChannel(self) -> None:
        """
        Only a server with a live channel and a machine ticks.
        """
        driver, session, _, _, _ = makeDriver()
        session.live = []
        driver.rotate()
        self.assertEqual(driver.machine.inputs, [])
        session.live = ["a channel"]
        driver.rotate()
        self.assertEqual(driver.machine.inputs, [("tick",)])
        client, _, _, _, _ = makeDriver(isServer=False)
        client.rotate()
        self.assertEqual(client.machine.inputs, [])
        never, _, _, _, _ = makeDriver(exchange=False)
        self.assertIsNone(never.machine)
        never.rotate()
        never.keyWornOut()

    def test_roundSoonAfterCommitSkipped(self) -> None:
        """
        A round within half an interval of a commit is skipped; later, and
        any trigger that is not a round, ticks.
        """
        driver, _, _, _, clock = makeDriver()
        driver.rotationEnded(1, True, "committed")
        clock.advance(TIMERS.rotationInterval / 2 - 0.01)
        driver.rotate(scheduled=True)
        self.assertEqual(driver.machine.inputs, [])
        driver.rotate()
        clock.advance(0.01)
        driver.rotate(scheduled=True)
        self.assertEqual(driver.machine.inputs, [("tick",), ("tick",)])

    def test_keyAge(self) -> None:
        """
        Past C{MAX_KEY_AGE_ROUNDS} intervals since the last commit, the
        server ticks at the key age check.
        """
        driver, _, _, _, clock = makeDriver()
        clock.advance(MAX_KEY_AGE_ROUNDS * TIMERS.rotationInterval)
        driver.checkKeyAge()
        self.assertEqual(driver.machine.inputs, [])
        clock.advance(0.01)
        driver.checkKeyAge()
        self.assertEqual(driver.machine.inputs, [("tick",)])

    def test_clientAsksOnce(self) -> None:
        """
        A client asks for a rotation (C{RKR:}) once, until the server's
        commit or abort of any epoch arrives.
        """
        driver, session, _, _, clock = makeDriver(isServer=False)
        routes = driver.routes()
        driver.keyWornOut()
        clock.advance(MAX_KEY_AGE_ROUNDS * TIMERS.rotationInterval + 1)
        driver.checkKeyAge()
        self.assertEqual(session.sent, [records.RotationRequest(records.REKEY_VOLUME)])
        routes[records.RotationCommit](None, records.RotationCommit(9))
        driver.checkKeyAge()
        routes[records.RotationAbort](None, records.RotationAbort(9, 0))
        driver.keyWornOut()
        self.assertEqual(
            [r.reason for r in session.sent],
            [records.REKEY_VOLUME, records.REKEY_AGE, records.REKEY_VOLUME],
        )
        self.assertEqual(
            driver.machine.inputs, [("committed", 9), ("aborted", 9)]
        )


class RecordTests(SynchronousTestCase):
    """
    Each role takes its own rotation records, and the client commits on
    its first frame under the pending epoch.
    """

    def test_routesPerRole(self) -> None:
        """
        The server takes C{RKA:} and C{RKR:}, the client C{RKO:}, C{RKC:}
        and C{RKX:}, a session that never rotates none.
        """
        server, _, _, _, _ = makeDriver(fake=False)
        client, _, _, _, _ = makeDriver(isServer=False, fake=False)
        never, _, _, _, _ = makeDriver(exchange=False)
        self.assertIsInstance(server.machine, ServerRotation)
        self.assertIsInstance(client.machine, ClientRotation)
        self.assertEqual(
            set(server.routes()), {records.RotationAck, records.RotationRequest}
        )
        self.assertEqual(
            set(client.routes()),
            {records.RotationOffer, records.RotationCommit, records.RotationAbort},
        )
        self.assertEqual(never.routes(), {})

    def test_requestRotates(self) -> None:
        """
        An C{RKR:} makes the server tick.
        """
        driver, _, _, _, _ = makeDriver()
        driver.routes()[records.RotationRequest](None, records.RotationRequest(2))
        self.assertEqual(driver.machine.inputs, [("tick",)])

    def test_frameUnderPending(self) -> None:
        """
        On the client, a frame under the pending epoch commits it; one under
        another epoch does not; the server has nothing pending to commit.
        """
        driver, _, _, keys, _ = makeDriver(isServer=False)
        driver.frameReceived(1)
        keys.install(1, b"\x01" * 32)
        driver.frameReceived(0)
        driver.frameReceived(1)
        self.assertEqual(driver.machine.inputs, [("committed", 1)])
        server, _, _, _, _ = makeDriver()
        server.frameReceived(0)
        self.assertEqual(server.machine.inputs, [])


class OutcomeTests(SynchronousTestCase):
    """
    How a rotation ended: counted, told, logged, and probed on the server.
    """

    def test_commit(self) -> None:
        """
        A commit counts, tells every callback, makes the key young again
        and, on the server only, probes the channels.
        """
        driver, session, probe, _, clock = makeDriver()
        told: list[bool] = []
        driver.onEnded.append(told.append)
        clock.advance(100)
        driver.rotationEnded(1, True, "committed")
        self.assertEqual((driver.committed, driver.rolledBack, told), (1, 0, [True]))
        self.assertEqual(probe.probes, 1)
        clock.advance(MAX_KEY_AGE_ROUNDS * TIMERS.rotationInterval)
        driver.checkKeyAge()
        self.assertEqual(driver.machine.inputs, [])
        [event] = session.events
        self.assertEqual((event["epoch"], event["committed"]), (1, True))
        client, _, clientProbe, _, _ = makeDriver(isServer=False)
        client.rotationEnded(1, True, "committed")
        self.assertEqual(clientProbe.probes, 0)

    def test_rollbackAndFailure(self) -> None:
        """
        A rollback counts and is logged with its reason; repeated failure
        resets the session with C{BYE:} rekey_failed.
        """
        driver, session, probe, _, _ = makeDriver()
        driver.rotationEnded(1, False, "no acknowledgement in time")
        self.assertEqual((driver.committed, driver.rolledBack, probe.probes), (0, 1, 0))
        self.assertEqual(session.events[0]["reason"], "no acknowledgement in time")
        driver.rekeyFailed()
        self.assertEqual(
            session.ended, [(records.BYE_REKEY_FAILED, "key rotation failed", SessionReset)]
        )

    def test_epochAhead(self) -> None:
        """
        A frame under an epoch the client never got resets its session once
        no channel is left; a server, or a client with a live channel, goes
        on.
        """
        for isServer, live, ended in ((True, [], 0), (False, ["a channel"], 0), (False, [], 1)):
            driver, session, _, _, _ = makeDriver(isServer=isServer)
            session.live = live
            driver.epochAhead()
            self.assertEqual(len(session.ended), ended)
