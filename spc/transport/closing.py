# -*- test-case-name: tests.memory.test_lifetime -*-
"""
How connections end: a close waits for the peer (TCP for it to read what
is queued, TLS for its close_notify, and an alert written before a TLS
handshake for that handshake), so every close this end makes is followed
by an abort if the connection is still open a little later.  A peer that
never reads, never finishes TLS or never answers a close cannot hold a
socket (docs/protocol.rst, sections 3.4 and 7.4).
"""

from __future__ import annotations

from twisted.internet import protocol
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from spc.protocol import frames

__all__ = ["ALERT_LINGER", "BusyProtocol", "CLOSE_TIMEOUT", "closeThenAbort"]

CLOSE_TIMEOUT = 5.0
"""
Seconds a connection told to close may take to send what it was given and
see the peer close; then it is aborted.
"""

ALERT_LINGER = 1.0
"""
Seconds a connection refused before authentication (an alert, then a
close: A17) may take to carry its alert away; then it is aborted.  Over TLS
the alert waits for the TLS handshake, which takes one round trip.
"""


def closeThenAbort(transport, clock: IReactorTime, linger: float) -> IDelayedCall:
    """
    Close C{transport} once what was written has left, and abort it if it
    is still open C{linger} seconds later.  The caller cancels the returned
    call when the connection is lost.

    @return: the pending abort.
    """
    transport.loseConnection()
    return clock.callLater(linger, transport.abortConnection)


class BusyProtocol(protocol.Protocol):
    """
    Answers a connection over the pending cap with "busy", closes it and
    aborts it if it is still open C{ALERT_LINGER} later (A17), so a
    legitimate client behind a busy address backs off and retries instead
    of failing, and a peer that never reads the answer (or, over TLS,
    never finishes the TLS handshake) does not keep the socket.
    """

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._abortCall: IDelayedCall | None = None

    def connectionMade(self) -> None:
        self.transport.write(frames.framed(frames.Alert(frames.ALERT_BUSY).encode()))
        self._abortCall = closeThenAbort(self.transport, self._clock, ALERT_LINGER)

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        if self._abortCall is not None and self._abortCall.active():
            self._abortCall.cancel()
        self._abortCall = None
