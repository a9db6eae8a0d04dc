# -*- test-case-name: tests.unit.test_lifecycle,tests.memory.test_channel -*-
"""
The life of one connection, as an explicit machine: unconnected, open,
closing (this end closed it), refused (its handshake failed), faulted (a
peer fault aborted it) and gone.

What a connection does on each event depends on which of these it is in:
a fault is acted on once, and not after the connection was refused or
closed by a fault already; a connection this end closed is not reported
dead when it goes, one that failed or faulted is; a server reports a
failed TLS handshake only for a connection nothing else ended first.  The
machine says which of the connection's actions each event takes
(L{ChannelActions}); the connection does them, and holds no flags for it.

It is a C{MethodicalMachine}, as the handshakes are, not a
C{TypeMachineBuilder} one: ending a connection can report its loss, and
its loss can end its handshake, from inside a transition, and a typed
machine would postpone such an input, or refuse it for
L{ChannelLifecycle.whenLost}, which returns a value.
"""

from __future__ import annotations

from typing import Protocol

from automat import MethodicalMachine
from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure

from spc.errors import SPCError

__all__ = ["ChannelActions", "ChannelLifecycle"]


class ChannelActions(Protocol):
    """
    What a connection does when its life changes:
    L{spc.transport.channel.ChannelProtocol}.
    """

    def markDead(self) -> None:
        """
        Read and send nothing more.
        """

    def abortForFault(self, reason: str) -> None:
        """
        Keep C{reason} for the log and abort, telling the peer nothing.
        """

    def refuseHandshake(self, code: int, reason: str) -> None:
        """
        The server's handshake failed: log, send the alert, close.
        """

    def failHandshake(self, error: SPCError) -> None:
        """
        The client's handshake failed: abort and report C{error}.
        """

    def closeGently(self, reason: str) -> None:
        """
        Close once what was written has left, or abort a little later.
        """

    def keepReason(self, reason: str) -> None:
        """
        The reason a close gives, for when the connection goes.
        """

    def connectionGone(
        self, reason: Failure, reportDead: bool, fault: bool, wasAlive: bool
    ) -> None:
        """
        The connection is lost: stop its timers, tell whoever waits for it,
        and report it.

        @param reportDead: whether an established connection is logged as
            dead (not when this end closed it).
        @param fault: whether a fault ended it, with the reason kept.
        @param wasAlive: whether it was lost before anything ended it.
        """

    def lossWaiter(self) -> Deferred:
        """
        @return: a Deferred firing once the connection is lost.
        """


def _only(values: list) -> object:
    """
    What the one output of an input returned.
    """
    return values[0]


class ChannelLifecycle:
    """
    One connection's life.
    """

    _machine = MethodicalMachine()

    def __init__(self, actions: ChannelActions) -> None:
        self._actions = actions

    # Inputs.

    @_machine.input()
    def connected(self) -> None:
        "The transport connected."

    @_machine.input()
    def fault(self, reason: str) -> None:
        "The peer broke a rule."

    @_machine.input()
    def refuse(self, code: int, reason: str) -> None:
        "The server's handshake failed, with the alert to send."

    @_machine.input()
    def fail(self, error: SPCError) -> None:
        "The client's handshake failed, with the error to report."

    @_machine.input()
    def close(self, reason: str) -> None:
        "This end closes the connection."

    @_machine.input()
    def lost(self, reason: Failure) -> None:
        "The transport is gone."

    @_machine.input()
    def whenLost(self) -> Deferred:
        "Someone waits for the connection to be gone."

    # States.

    @_machine.state(initial=True)
    def unconnected(self) -> None:
        "Not connected yet."

    @_machine.state()
    def open(self) -> None:
        "Connected and alive: in its handshake, or established."

    @_machine.state()
    def closing(self) -> None:
        "This end closed it; it goes once what was written has left."

    @_machine.state()
    def refused(self) -> None:
        "Its handshake failed; it reads and sends nothing more."

    @_machine.state()
    def faulted(self) -> None:
        "A fault aborted it; it reads and sends nothing more."

    @_machine.state()
    def gone(self) -> None:
        "The transport is gone."

    # Outputs.

    @_machine.output()
    def _markDead(self) -> None:
        self._actions.markDead()

    @_machine.output()
    def _abort(self, reason: str) -> None:
        self._actions.abortForFault(reason)

    @_machine.output()
    def _refuse(self, code: int, reason: str) -> None:
        self._actions.refuseHandshake(code, reason)

    @_machine.output()
    def _fail(self, error: SPCError) -> None:
        self._actions.failHandshake(error)

    @_machine.output()
    def _closeGently(self, reason: str) -> None:
        self._actions.closeGently(reason)

    @_machine.output()
    def _keepReason(self, reason: str) -> None:
        self._actions.keepReason(reason)

    @_machine.output()
    def _lostAlive(self, reason: Failure) -> None:
        self._actions.connectionGone(reason, reportDead=True, fault=False, wasAlive=True)

    @_machine.output()
    def _lostClosing(self, reason: Failure) -> None:
        self._actions.connectionGone(reason, reportDead=False, fault=False, wasAlive=True)

    @_machine.output()
    def _lostRefused(self, reason: Failure) -> None:
        self._actions.connectionGone(reason, reportDead=False, fault=False, wasAlive=False)

    @_machine.output()
    def _lostFaulted(self, reason: Failure) -> None:
        self._actions.connectionGone(reason, reportDead=True, fault=True, wasAlive=False)

    @_machine.output()
    def _waitForLoss(self) -> Deferred:
        return self._actions.lossWaiter()

    @_machine.output()
    def _alreadyLost(self) -> Deferred:
        return succeed(None)

    unconnected.upon(connected, enter=open, outputs=[])
    open.upon(fault, enter=faulted, outputs=[_markDead, _abort])
    open.upon(refuse, enter=refused, outputs=[_markDead, _refuse])
    open.upon(fail, enter=refused, outputs=[_markDead, _fail])
    open.upon(close, enter=closing, outputs=[_closeGently])
    open.upon(lost, enter=gone, outputs=[_markDead, _lostAlive])
    closing.upon(fault, enter=faulted, outputs=[_markDead, _abort])
    closing.upon(close, enter=closing, outputs=[_keepReason])
    closing.upon(lost, enter=gone, outputs=[_markDead, _lostClosing])
    refused.upon(fault, enter=refused, outputs=[])
    refused.upon(close, enter=refused, outputs=[])
    refused.upon(lost, enter=gone, outputs=[_lostRefused])
    faulted.upon(fault, enter=faulted, outputs=[])
    faulted.upon(close, enter=faulted, outputs=[])
    faulted.upon(lost, enter=gone, outputs=[_lostFaulted])
    gone.upon(fault, enter=gone, outputs=[])
    gone.upon(fail, enter=gone, outputs=[_fail])
    gone.upon(close, enter=gone, outputs=[])
    for _state in (unconnected, gone):
        _state.upon(whenLost, enter=_state, outputs=[_alreadyLost], collector=_only)
    for _state in (open, closing, refused, faulted):
        _state.upon(whenLost, enter=_state, outputs=[_waitForLoss], collector=_only)
    del _state
