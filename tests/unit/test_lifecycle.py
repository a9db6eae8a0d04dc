# -*- test-case-name: tests.unit.test_lifecycle -*-
"""
Tests for L{spc.transport.lifecycle}: which of a connection's actions each
event takes in each part of its life, with recording actions and no
transport or clock.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from spc.errors import ProtocolError
from spc.transport.lifecycle import ChannelActions, ChannelLifecycle

LOST = Failure(ConnectionDone())


class RecordingActions:
    """
    L{ChannelActions} that record each call.

    @ivar calls: C{(action, arguments...)} in call order.
    @ivar waiters: the Deferreds L{lossWaiter} made.
    """

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.waiters: list[Deferred] = []

    def markDead(self):
        self.calls.append(("markDead",))

    def abortForFault(self, reason):
        self.calls.append(("abortForFault", reason))

    def refuseHandshake(self, code, reason):
        self.calls.append(("refuseHandshake", code, reason))

    def failHandshake(self, error):
        self.calls.append(("failHandshake", error))

    def closeGently(self, reason):
        self.calls.append(("closeGently", reason))

    def keepReason(self, reason):
        self.calls.append(("keepReason", reason))

    def connectionGone(self, reason, reportDead, fault, wasAlive):
        self.calls.append(("connectionGone", reportDead, fault, wasAlive))

    def lossWaiter(self):
        waiter: Deferred = Deferred()
        self.waiters.append(waiter)
        return waiter

    def taken(self) -> list[tuple]:
        calls, self.calls = self.calls, []
        return calls


def connected():
    actions = RecordingActions()
    life = ChannelLifecycle(actions)
    life.connected()
    return life, actions


class LifecycleTests(SynchronousTestCase):
    """
    Each part of a connection's life, and what each event does there.
    """

    def test_actionsComplete(self) -> None:
        """
        The recording actions have every method of L{ChannelActions}, as
        the connection does.
        """
        from spc.transport.channel import ChannelProtocol

        for name in vars(ChannelActions):
            if not name.startswith("_"):
                self.assertTrue(callable(getattr(RecordingActions, name)), name)
                self.assertTrue(callable(getattr(ChannelProtocol, name)), name)

    def test_unconnected(self) -> None:
        """
        A connection not made yet has nothing to wait for.
        """
        life = ChannelLifecycle(RecordingActions())
        self.assertIsNone(self.successResultOf(life.whenLost()))

    def test_fault(self) -> None:
        """
        A fault marks the connection dead and aborts it, once; a close after
        it does nothing; its loss is reported as dead by that fault.
        """
        life, actions = connected()
        life.fault("bad frame")
        life.fault("another")
        life.close("session ended")
        self.assertEqual(actions.taken(), [("markDead",), ("abortForFault", "bad frame")])
        waiting = life.whenLost()
        life.lost(LOST)
        self.assertEqual(actions.taken(), [("connectionGone", True, True, False)])
        self.assertIs(waiting, actions.waiters[0])

    def test_close(self) -> None:
        """
        A close closes gently; a second one only gives its reason; the
        loss is not reported as dead, and the connection was alive.
        """
        life, actions = connected()
        life.close("replaced")
        life.close("session ended")
        life.lost(LOST)
        self.assertEqual(
            actions.taken(),
            [
                ("closeGently", "replaced"),
                ("keepReason", "session ended"),
                ("markDead",),
                ("connectionGone", False, False, True),
            ],
        )

    def test_faultWhileClosing(self) -> None:
        """
        A fault of a connection this end is closing still aborts it, and
        its loss is reported as that fault.
        """
        life, actions = connected()
        life.close("session ended")
        life.fault("the peer reads nothing")
        life.lost(LOST)
        self.assertEqual(
            actions.taken()[1:],
            [
                ("markDead",),
                ("abortForFault", "the peer reads nothing"),
                ("connectionGone", True, True, False),
            ],
        )

    def test_refused(self) -> None:
        """
        The server's failed handshake marks the connection dead and refuses
        it; no fault or close acts after that, and its loss is no death.
        """
        life, actions = connected()
        life.refuse(2, "not authorized")
        life.fault("late frame")
        life.close("closed")
        life.lost(LOST)
        self.assertEqual(
            actions.taken(),
            [
                ("markDead",),
                ("refuseHandshake", 2, "not authorized"),
                ("connectionGone", False, False, False),
            ],
        )

    def test_clientFailure(self) -> None:
        """
        The client's failed handshake is reported, before the loss or, when
        the loss ended it, after.
        """
        error = ProtocolError("the connection closed during the handshake")
        life, actions = connected()
        life.fail(error)
        self.assertEqual(actions.taken(), [("markDead",), ("failHandshake", error)])
        life, actions = connected()
        life.lost(LOST)
        life.fail(error)
        self.assertEqual(
            actions.taken(),
            [("markDead",), ("connectionGone", True, False, True), ("failHandshake", error)],
        )

    def test_gone(self) -> None:
        """
        A lost connection has nothing to wait for, and nothing acts on it.
        """
        life, actions = connected()
        life.lost(LOST)
        actions.taken()
        life.fault("late")
        life.close("late")
        self.assertEqual(actions.taken(), [])
        self.assertIsNone(self.successResultOf(life.whenLost()))
