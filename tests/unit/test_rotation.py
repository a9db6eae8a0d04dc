# -*- test-case-name: tests.unit.test_rotation -*-
"""
Tests for the sans-IO rotation machines of L{spc.protocol.rotation}
(PROTOCOL section 5, amendments A10 and A11), driven directly with a
recording L{RotationOwner}, recording L{EpochKeys} and a real RSA exchange
key, no clock; and the daemon's rotation timer options (L{spc.tap.Options}).
"""

from __future__ import annotations

import inspect
from types import SimpleNamespace

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from spc.errors import ProtocolError
from spc.protocol import records
from spc.protocol.handshake import checkParams
from spc.protocol.rotation import (
    MAX_ROLLBACKS,
    ClientRotation,
    RotationKeys,
    RotationOwner,
    ServerRotation,
    offerLabel,
)
from spc.session.epochkeys import EpochKeys
from spc.session.rotationdriver import RotationDriver
from spc.tap import Options
from tests.common import LOW_ORDER_SHARES, cachedKey

SESSION = bytes(range(1, 17))
OTHER_SESSION = bytes(range(17, 33))
S0 = b"\x5a" * 32
ACK = 5.0
OVERLAP = 10.0


def exchangeKey():
    """
    The client's RSA-2048 exchange key, made once per test process (shared
    with the sessions of L{tests.memory.test_session}).
    """
    return cachedKey("exchange")


class RecordingKeys(EpochKeys):
    """
    The session's L{EpochKeys}, without connections, recording every
    change in a shared list of calls.
    """

    def __init__(self, calls: list[tuple], epoch: int, secret: bytes) -> None:
        super().__init__(epoch, secret, lambda: ())
        self._calls = calls

    def install(self, epoch, secret):
        super().install(epoch, secret)
        self._calls.append(("installEpoch", epoch, secret))

    def switch(self, epoch):
        super().switch(epoch)
        self._calls.append(("switchEpoch", epoch))

    def drop(self, epoch):
        super().drop(epoch)
        self._calls.append(("dropEpoch", epoch))


class RecordingOwner:
    """
    A L{RotationOwner} that records every request in order, with the
    L{RecordingKeys} of its machine.

    @ivar keys: the epochs the machine holds; their changes are recorded
        among the calls.
    @ivar calls: C{(method name, arguments)} in call order; the timers as
        C{("startTimer", name, seconds)} and C{("cancelTimer", name)}, with
        the names C{"ack"}, C{"overlap"} and C{"tick"}.
    @ivar timers: running timers, name to seconds.
    @ivar ended: C{(epoch, committed, reason)} of L{rotationEnded}.
    @ivar failed: how many times L{rekeyFailed} was called.
    """

    def __init__(self, epoch: int, secret: bytes) -> None:
        self.calls: list[tuple] = []
        self.keys = RecordingKeys(self.calls, epoch, secret)
        self.timers: dict[str, float] = {}
        self.ended: list[tuple[int, bool, str]] = []
        self.failed = 0

    @property
    def secrets(self) -> dict[int, bytes]:
        """
        The epoch secrets the keys hold.
        """
        return {epoch: self.keys.secret(epoch) for epoch in self.keys.held()}

    def sendOffer(self, record):
        self.calls.append(("sendOffer", bytes(record)))

    def sendControl(self, record):
        self.calls.append(("sendControl", bytes(record)))

    def _start(self, name, seconds):
        self.timers[name] = seconds
        self.calls.append(("startTimer", name, seconds))

    def _cancel(self, name):
        self.timers.pop(name, None)
        self.calls.append(("cancelTimer", name))

    def startAckTimeout(self, seconds):
        self._start("ack", seconds)

    def cancelAckTimeout(self):
        self._cancel("ack")

    def startOverlap(self, seconds):
        self._start("overlap", seconds)

    def cancelOverlap(self):
        self._cancel("overlap")

    def rotateSoon(self):
        self._start("tick", 0)

    def rotationEnded(self, epoch, committed, reason):
        self.ended.append((epoch, committed, reason))

    def rekeyFailed(self):
        self.failed += 1

    # Views of the calls.

    def named(self, name: str) -> list[tuple]:
        return [call[1:] for call in self.calls if call[0] == name]

    def sent(self, kind: type | None = None) -> list:
        """
        Every record sent (offers and control records), decoded, keeping
        only C{kind}.
        """
        found = [
            records.decodeRecord(call[1])
            for call in self.calls
            if call[0] in ("sendOffer", "sendControl")
        ]
        return [r for r in found if kind is None or type(r) is kind]

    def installed(self) -> list[int]:
        return [epoch for epoch, _ in self.named("installEpoch")]

    def dropped(self) -> list[int]:
        return [epoch for (epoch,) in self.named("dropEpoch")]

    def switched(self) -> list[int]:
        return [epoch for (epoch,) in self.named("switchEpoch")]

    def forget(self) -> None:
        """
        Forget the calls so far (not the secrets or timers).
        """
        del self.calls[:]


def makeMachines(session: bytes = SESSION, clientSession: bytes | None = None, epoch: int = 0):
    """
    A L{ServerRotation} and a L{ClientRotation} at C{epoch}, sharing its
    secret, each with a L{RecordingOwner}.
    """
    serverOwner = RecordingOwner(epoch, S0)
    clientOwner = RecordingOwner(epoch, S0)
    return SimpleNamespace(
        server=ServerRotation(
            serverOwner, serverOwner.keys, session, exchangeKey().public_key(), ACK, OVERLAP
        ),
        client=ClientRotation(
            clientOwner, clientOwner.keys, clientSession or session, exchangeKey(), OVERLAP
        ),
        serverOwner=serverOwner,
        clientOwner=clientOwner,
    )


def offerFrom(machines) -> records.RotationOffer:
    """
    Tick the server; return the offer it sent.
    """
    before = len(machines.serverOwner.sent(records.RotationOffer))
    machines.server.tick()
    offers = machines.serverOwner.sent(records.RotationOffer)
    assert len(offers) == before + 1, "no offer was made"
    return offers[-1]


def answerFrom(machines, offer: records.RotationOffer) -> records.RotationAck | None:
    """
    Give the client an offer; return its answer, or C{None}.
    """
    before = len(machines.clientOwner.sent(records.RotationAck))
    machines.client.offerReceived(offer)
    acks = machines.clientOwner.sent(records.RotationAck)
    return acks[-1] if len(acks) > before else None


def commitRound(machines) -> int:
    """
    One whole rotation, overlaps included.

    @return: the epoch committed.
    """
    offer = offerFrom(machines)
    machines.server.ackReceived(answerFrom(machines, offer))
    machines.client.committed(offer.newEpoch)
    machines.server.overlapEnded()
    machines.client.overlapEnded()
    return offer.newEpoch


def rollBack(machines) -> None:
    """
    One offer the client never answers, timed out.
    """
    offerFrom(machines)
    machines.server.ackTimedOut()


class ServerClientCommitTests(SynchronousTestCase):
    """
    A whole rotation between the two machines.
    """

    def test_fakeOwnerComplete(self) -> None:
        """
        The recording owner has every method of L{RotationOwner}, with the
        same parameters, so the machines meet the interface the session's
        L{RotationDriver} implements (and the driver implements it too);
        likewise the L{RotationKeys} the session's L{EpochKeys} implement.
        """
        for interface, fake, real in (
            (RotationOwner, RecordingOwner, RotationDriver),
            (RotationKeys, RecordingKeys, EpochKeys),
        ):
            for name, method in vars(interface).items():
                if name.startswith("_") or not callable(method):
                    continue
                expected = list(inspect.signature(method).parameters)
                self.assertEqual(
                    list(inspect.signature(getattr(fake, name)).parameters),
                    expected,
                    name,
                )
                self.assertEqual(
                    list(inspect.signature(getattr(real, name)).parameters)[: len(expected)],
                    expected,
                    name,
                )

    def test_commitPath(self) -> None:
        """
        Offer, acknowledgement, commit, overlap: both sides install the same
        new epoch secret S_1 (different from S_0); the client installs it
        when it answers and does not send under it yet; the server installs
        and switches only on a valid RKA, then sends RKC after switching (so
        RKC is the first frame under the new epoch) and starts the overlap
        timer; the client switches on RKC and starts its own overlap; when
        the overlaps end both drop epoch 0.
        """
        m = makeMachines()
        offer = offerFrom(m)
        self.assertEqual(offer.newEpoch, 1)
        self.assertNotIn(S0, offer.encode())
        self.assertEqual(m.serverOwner.timers, {"ack": ACK})
        self.assertEqual(m.serverOwner.installed(), [])

        ack = answerFrom(m, offer)
        self.assertEqual(ack.newEpoch, 1)
        [(epoch, clientSecret)] = m.clientOwner.named("installEpoch")
        self.assertEqual(epoch, 1)
        self.assertEqual(len(clientSecret), 32)
        self.assertNotEqual(clientSecret, S0)
        self.assertEqual(m.clientOwner.switched(), [])
        self.assertEqual(m.client.pending, 1)
        self.assertEqual(m.client.epoch, 0)

        m.server.ackReceived(ack)
        [(epoch, serverSecret)] = m.serverOwner.named("installEpoch")
        self.assertEqual((epoch, serverSecret), (1, clientSecret))
        names = [call[0] for call in m.serverOwner.calls]
        switch = m.serverOwner.calls.index(("switchEpoch", 1))
        commit = m.serverOwner.calls.index(
            ("sendControl", records.RotationCommit(1).encode())
        )
        self.assertLess(names.index("installEpoch"), switch)
        self.assertLess(switch, commit)
        self.assertIn(("cancelTimer", "ack"), m.serverOwner.calls)
        self.assertEqual(m.serverOwner.timers, {"overlap": OVERLAP})
        self.assertEqual(m.serverOwner.ended, [(1, True, "committed")])
        self.assertEqual(m.server.epoch, 1)
        self.assertEqual(m.server.rollbacks, 0)

        [commitRecord] = m.serverOwner.sent(records.RotationCommit)
        m.client.committed(commitRecord.newEpoch)
        self.assertEqual(m.clientOwner.switched(), [1])
        self.assertEqual(m.clientOwner.timers, {"overlap": OVERLAP})
        self.assertEqual((m.client.epoch, m.client.pending), (1, None))
        self.assertEqual(m.clientOwner.ended, [(1, True, "committed")])

        self.assertEqual(m.serverOwner.dropped(), [])
        self.assertEqual(m.clientOwner.dropped(), [])
        m.server.overlapEnded()
        m.client.overlapEnded()
        self.assertEqual(m.serverOwner.dropped(), [0])
        self.assertEqual(m.clientOwner.dropped(), [0])
        self.assertEqual(set(m.serverOwner.secrets), {1})
        self.assertEqual(set(m.clientOwner.secrets), {1})

    def test_secondRotationChains(self) -> None:
        """
        The next rotation derives from S_1, on both sides alike, and
        commits epoch 2 with a secret unlike both earlier ones.
        """
        m = makeMachines()
        self.assertEqual([commitRound(m), commitRound(m)], [1, 2])
        self.assertEqual(m.serverOwner.secrets, m.clientOwner.secrets)
        [(epoch, secret)] = m.serverOwner.secrets.items()
        self.assertEqual(epoch, 2)
        self.assertNotIn(secret, (S0, dict(m.serverOwner.named("installEpoch"))[1]))

    def test_epochsNeverReused(self) -> None:
        """
        An epoch rolled back is never offered again: offer 1 rolled back,
        the next offer is 2, and it commits as 2 on both sides.
        """
        m = makeMachines()
        first = offerFrom(m)
        self.assertIsNotNone(answerFrom(m, first))
        m.server.ackTimedOut()
        [abort] = m.serverOwner.sent(records.RotationAbort)
        self.assertEqual(abort.newEpoch, 1)
        self.assertEqual(m.serverOwner.ended, [(1, False, "no acknowledgement in time")])
        m.client.aborted(abort.newEpoch)
        second = offerFrom(m)
        self.assertEqual(second.newEpoch, 2)
        m.server.ackReceived(answerFrom(m, second))
        m.client.committed(2)
        self.assertEqual((m.server.epoch, m.client.epoch), (2, 2))
        self.assertEqual(m.serverOwner.installed(), [2])
        self.assertEqual(m.clientOwner.installed(), [1, 2])
        self.assertEqual(m.clientOwner.dropped(), [1])

    def test_lateAckIgnored(self) -> None:
        """
        A11: an RKA for an epoch that is not on offer (here, offer 1 was
        rolled back and offer 2 is out) is ignored, not fatal and not a
        rollback; the offer on the table still commits with its own RKA.
        An RKA arriving when nothing is on offer is ignored too.
        """
        m = makeMachines()
        late = answerFrom(m, offerFrom(m))
        m.server.ackTimedOut()
        m.client.aborted(1)
        m.server.ackReceived(late)
        m.serverOwner.forget()
        current = offerFrom(m)
        m.serverOwner.forget()
        m.server.ackReceived(late)
        self.assertEqual(m.serverOwner.calls, [])
        self.assertEqual(m.server.rollbacks, 1)
        m.server.ackReceived(answerFrom(m, current))
        self.assertEqual(m.server.epoch, 2)
        m.serverOwner.forget()
        m.server.ackReceived(late)
        self.assertEqual(m.serverOwner.calls, [])

    def test_wrongConfirm(self) -> None:
        """
        An RKA whose confirmation does not verify rolls the offer back at
        once: RKX for the epoch, nothing installed, the failure counted.
        """
        m = makeMachines()
        ack = answerFrom(m, offerFrom(m))
        bad = ack._replace(confirm=bytes(a ^ 1 for a in ack.confirm))
        m.server.ackReceived(bad)
        self.assertEqual(m.serverOwner.installed(), [])
        self.assertEqual(m.serverOwner.switched(), [])
        [abort] = m.serverOwner.sent(records.RotationAbort)
        self.assertEqual(abort.newEpoch, 1)
        [(epoch, committed, reason)] = m.serverOwner.ended
        self.assertEqual((epoch, committed), (1, False))
        self.assertIn("confirmation", reason)
        self.assertEqual(m.server.rollbacks, 1)
        self.assertNotIn("ack", m.serverOwner.timers)
        m.server.ackReceived(ack)
        self.assertEqual(m.server.epoch, 0, "the good RKA came too late")

    def test_lowOrderClientShare(self) -> None:
        """
        T26: an RKA carrying a low-order X25519 share (each of the known
        small-order points) rolls the rotation back.
        """
        for share in LOW_ORDER_SHARES:
            m = makeMachines()
            ack = answerFrom(m, offerFrom(m))
            m.server.ackReceived(ack._replace(ephemeral=share))
            self.assertEqual(m.serverOwner.installed(), [], share.hex())
            [abort] = m.serverOwner.sent(records.RotationAbort)
            self.assertEqual(abort.newEpoch, 1)
            self.assertEqual(m.server.rollbacks, 1)

    def test_lowOrderServerShare(self) -> None:
        """
        T26: an RKO carrying a low-order X25519 share is not answered, so
        the server will roll back.
        """
        for share in LOW_ORDER_SHARES:
            m = makeMachines()
            offer = offerFrom(m)
            self.assertIsNone(answerFrom(m, offer._replace(ephemeral=share)), share.hex())
            self.assertEqual(m.clientOwner.calls, [])
            self.assertIsNone(m.client.pending)

    def test_offerForAnotherSession(self) -> None:
        """
        T33: an RKO made for session A (its OAEP label names A) presented
        to session B's client does not decrypt: no answer, nothing
        installed.
        """
        m = makeMachines(session=SESSION, clientSession=OTHER_SESSION)
        self.assertIsNone(answerFrom(m, offerFrom(m)))
        self.assertEqual(m.clientOwner.calls, [])

    def test_offerForAnotherEpoch(self) -> None:
        """
        T33: the ciphertext of an RKO for epoch n presented as an RKO for
        n + 1 does not decrypt (the label names the epoch): no answer; the
        server times out and rolls back.
        """
        m = makeMachines()
        offer = offerFrom(m)
        self.assertEqual(offerLabel(SESSION, 1)[-4:], b"\x00\x00\x00\x01")
        self.assertIsNone(answerFrom(m, offer._replace(newEpoch=offer.newEpoch + 1)))
        self.assertEqual(m.clientOwner.calls, [])
        m.server.ackTimedOut()
        self.assertEqual(m.server.rollbacks, 1)

    def test_threeRollbacks(self) -> None:
        """
        MAX_ROLLBACKS (3) rotations failing in a row make the machine ask
        its owner to end the session, once, at the third.
        """
        self.assertEqual(MAX_ROLLBACKS, 3)
        m = makeMachines()
        rollBack(m)
        rollBack(m)
        self.assertEqual(m.serverOwner.failed, 0)
        rollBack(m)
        self.assertEqual(m.serverOwner.failed, 1)
        self.assertEqual(
            [abort.newEpoch for abort in m.serverOwner.sent(records.RotationAbort)], [1, 2, 3]
        )

    def test_commitResetsRollbacks(self) -> None:
        """
        Only rollbacks in a row count: two, a commit, two more do not end
        the session.
        """
        m = makeMachines()
        rollBack(m)
        rollBack(m)
        offer = offerFrom(m)
        m.server.ackReceived(answerFrom(m, offer))
        m.server.overlapEnded()
        self.assertEqual(m.server.rollbacks, 0)
        rollBack(m)
        rollBack(m)
        self.assertEqual(m.serverOwner.failed, 0)

    def test_tickWhileOfferedWaits(self) -> None:
        """
        A11: a trigger while an offer is out makes no second offer; it is
        remembered and fires once the overlap that follows the commit ends
        (the owner is asked for a C{"tick"} timer of 0 seconds).
        """
        m = makeMachines()
        offer = offerFrom(m)
        m.server.tick()
        self.assertEqual(len(m.serverOwner.sent(records.RotationOffer)), 1)
        m.server.ackReceived(answerFrom(m, offer))
        self.assertNotIn("tick", m.serverOwner.timers)
        m.server.overlapEnded()
        self.assertEqual(m.serverOwner.timers.get("tick"), 0)
        self.assertEqual(m.serverOwner.dropped(), [0])
        m.serverOwner.timers.pop("tick")
        m.server.tick()
        self.assertEqual(m.serverOwner.sent(records.RotationOffer)[-1].newEpoch, 2)

    def test_tickWhileOverlappingWaits(self) -> None:
        """
        A11: a trigger during the overlap makes no offer until the overlap
        ends, then asks for an immediate tick; with no trigger, the end of
        an overlap asks for nothing.
        """
        m = makeMachines()
        commitRound(m)
        self.assertNotIn("tick", m.serverOwner.timers)
        m.server.ackReceived(answerFrom(m, offerFrom(m)))
        m.client.committed(2)
        m.server.tick()
        m.server.tick()
        self.assertEqual(len(m.serverOwner.sent(records.RotationOffer)), 2)
        self.assertNotIn("tick", m.serverOwner.timers)
        m.server.overlapEnded()
        self.assertEqual(m.serverOwner.timers.get("tick"), 0)
        self.assertEqual(m.serverOwner.dropped(), [0, 1])


class ClientMachineTests(SynchronousTestCase):
    """
    The client's pending epoch: what drops it, what commits it.
    """

    def test_abortDropsPending(self) -> None:
        """
        A11: RKX(n) after the client sent RKA(n) drops n; a later RKC(n) or
        frame under n then commits nothing.
        """
        m = makeMachines()
        answerFrom(m, offerFrom(m))
        m.client.aborted(1)
        self.assertEqual(m.clientOwner.dropped(), [1])
        self.assertIsNone(m.client.pending)
        m.client.committed(1)
        self.assertEqual(m.clientOwner.switched(), [])
        self.assertEqual(m.client.epoch, 0)

    def test_supersedingOffer(self) -> None:
        """
        A11: an RKO(n') with n' > n while n is pending (its RKX was lost)
        drops n and answers n'; n' then commits normally.
        """
        m = makeMachines()
        answerFrom(m, offerFrom(m))
        m.server.ackTimedOut()
        second = offerFrom(m)
        m.clientOwner.forget()
        ack = answerFrom(m, second)
        self.assertEqual(
            [call[:2] for call in m.clientOwner.calls],
            [("dropEpoch", 1), ("installEpoch", 2), ("sendControl", ack.encode())],
        )
        self.assertEqual(m.client.pending, 2)
        m.server.ackReceived(ack)
        m.client.committed(2)
        self.assertEqual((m.server.epoch, m.client.epoch), (2, 2))
        self.assertEqual(m.serverOwner.secrets[2], m.clientOwner.secrets[2])

    def test_oldOffer(self) -> None:
        """
        An offer for an epoch not above every epoch the client has seen
        (its committed epoch, or the one pending) is a protocol error.
        """
        m = makeMachines()
        first = offerFrom(m)
        answerFrom(m, first)
        self.assertRaises(ProtocolError, m.client.offerReceived, first)
        m.server.ackReceived(m.clientOwner.sent(records.RotationAck)[-1])
        m.client.committed(1)
        self.assertRaises(ProtocolError, m.client.offerReceived, first)
        self.assertRaises(
            ProtocolError, m.client.offerReceived, first._replace(newEpoch=0)
        )

    def test_offerDuringOverlap(self) -> None:
        """
        An offer that arrives during the client's overlap ends the overlap
        early (the previous epoch is dropped) and is answered.
        """
        m = makeMachines()
        m.server.ackReceived(answerFrom(m, offerFrom(m)))
        m.client.committed(1)
        m.server.overlapEnded()
        offer = offerFrom(m)
        m.clientOwner.forget()
        self.assertIsNotNone(answerFrom(m, offer))
        self.assertIn(("cancelTimer", "overlap"), m.clientOwner.calls)
        self.assertEqual(m.clientOwner.dropped(), [0])
        self.assertEqual(m.client.pending, 2)

    def test_strayAbortIgnored(self) -> None:
        """
        A11: an RKX for an epoch the client does not hold is ignored.  Here
        n + 1 is pending when a late RKX(n) arrives (RKX(n) went out on a
        backed-up channel, RKO(n + 1) overtook it on another): n + 1 stays
        pending and still commits on its RKC.
        """
        m = makeMachines()
        answerFrom(m, offerFrom(m))
        m.server.ackTimedOut()
        ack = answerFrom(m, offerFrom(m))
        m.client.aborted(1)
        self.assertEqual(m.client.pending, 2)
        m.server.ackReceived(ack)
        m.client.committed(2)
        self.assertEqual(m.clientOwner.switched(), [2])
        self.assertEqual(m.client.epoch, 2)

    def test_strayCommitIgnored(self) -> None:
        """
        An RKC naming an epoch other than the pending one commits nothing
        and leaves the pending epoch able to commit on its own RKC (or its
        first frame).
        """
        m = makeMachines()
        answerFrom(m, offerFrom(m))
        m.client.committed(7)
        self.assertEqual(m.clientOwner.switched(), [])
        self.assertEqual(m.client.pending, 1)
        m.client.committed(1)
        self.assertEqual(m.clientOwner.switched(), [1])
        self.assertEqual(m.client.epoch, 1)


def parse(*argv: str) -> Options:
    options = Options()
    options.parseOptions(["--inbox", "X", "--ports", "9000-9003", *argv])
    return options


class TimerOptionTests(SynchronousTestCase):
    """
    C{--rotate-interval}, C{--ack-timeout}, C{--transition} and
    C{--heartbeat-interval} become the session parameters (A7).
    """

    def test_fractions(self) -> None:
        """
        Fractional seconds are accepted and become milliseconds; parameters
        the daemon accepts are ones its clients accept too.
        """
        params = parse(
            "--rotate-interval", "1.5", "--ack-timeout", "0.5", "--transition", "0.5",
            "--heartbeat-interval", "0.25",
        )["params"]
        self.assertEqual(
            (params.rotationInterval, params.ackTimeout, params.overlap,
             params.heartbeatInterval),
            (1500, 500, 500, 250),
        )
        checkParams(params)

    def test_defaults(self) -> None:
        """
        Without options: rotation every 30 s, ACK within 5 s, 10 s overlap,
        heartbeats every 5 s.
        """
        params = parse()["params"]
        self.assertEqual(
            (params.rotationInterval, params.ackTimeout, params.overlap,
             params.heartbeatInterval),
            (30_000, 5_000, 10_000, 5_000),
        )

    def test_intervalTooShort(self) -> None:
        """
        An interval that does not exceed ACK timeout plus transition with
        the 10 % jitter to spare is refused with a message naming the three
        options; just above the bound is accepted.
        """
        for interval in ("1", "1.1", "0.5"):
            error = self.assertRaises(
                usage.UsageError,
                parse,
                "--rotate-interval", interval, "--ack-timeout", "0.5", "--transition", "0.5",
            )
            for name in ("--rotate-interval", "--ack-timeout", "--transition"):
                self.assertIn(name, str(error))
        params = parse(
            "--rotate-interval", "1.12", "--ack-timeout", "0.5", "--transition", "0.5"
        )["params"]
        checkParams(params)

    def test_heartbeatBounds(self) -> None:
        """
        The heartbeat interval may be 0.1 to 60 s; outside, or not a
        number, it is refused with a message naming the option.
        """
        for good, ms in (("0.1", 100), ("60", 60_000)):
            params = parse("--heartbeat-interval", good)["params"]
            self.assertEqual(params.heartbeatInterval, ms)
            checkParams(params)
        for bad in ("0.09", "60.5", "0", "-1", "often", "nan"):
            error = self.assertRaises(usage.UsageError, parse, "--heartbeat-interval", bad)
            self.assertIn("--heartbeat-interval", str(error))

    def test_notNumbers(self) -> None:
        """
        A timer that is not a positive number of seconds is refused,
        naming the option.
        """
        for name in ("--rotate-interval", "--ack-timeout", "--transition"):
            for bad in ("soon", "-2", "0", "inf"):
                error = self.assertRaises(usage.UsageError, parse, name, bad)
                self.assertIn(name, str(error))
