# -*- test-case-name: tests.memory.test_rotation -*-
"""
The server's rotation rounds (PROTOCOL section 8.1): every rotation
interval each session rotates, at its own random moment early in the
interval.

A session's own rotation timers are its
L{spc.session.rotationdriver.RotationDriver}'s; the rounds are the one
rotation timer of the whole server, held by L{RotationRounds}, which the
L{spc.server.service.ServerService} starts and stops with itself.
"""

from __future__ import annotations

import random
from typing import Callable, Iterable, Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall

from spc.logs import events
from spc.protocol.timers import ROUND_JITTER

__all__ = ["ROUND_JITTER", "RotationRounds"]


class Rotatable(Protocol):
    """
    What a round asks of a session: L{spc.session.session.Session}.
    """

    def rotate(self, scheduled: bool = False) -> None:
        ...


class RotationRounds:
    """
    @ivar count: the rounds run so far.
    """

    log = events.NamedLogger(events.ROTATION)

    def __init__(
        self,
        clock: IReactorTime,
        interval: float,
        sessions: Callable[[], Iterable[Rotatable]],
        outcomes: dict[bool, int],
    ) -> None:
        """
        @param interval: seconds between two rounds.
        @param sessions: the server's live sessions, asked at every round.
        @param outcomes: the rotations committed (C{True}) and rolled back
            (C{False}) since the last round, counted by the sessions'
            owner; each round reports them and starts them again at 0.
        """
        self._clock = clock
        self._interval = interval
        self._sessions = sessions
        self._outcomes = outcomes
        self._loop = LoopingCall(self.runRound)
        self._loop.clock = clock
        self._rotations: list[IDelayedCall] = []
        self.count = 0

    def start(self) -> None:
        """
        Run a round every interval, the first one interval from now.
        """
        self._loop.start(self._interval, now=False)

    def stop(self) -> None:
        """
        Run no more rounds, and cancel the rotations the last round had
        scheduled: no key change starts while sessions wind down.
        """
        if self._loop.running:
            self._loop.stop()
        for call in self._rotations:
            if call.active():
                call.cancel()
        self._rotations = []

    def runRound(self) -> None:
        """
        Each session rotates, at a random moment within the first
        C{ROUND_JITTER} of the interval, so the RSA work of many sessions
        is spread out.  The outcome of the previous round is logged as a
        whole, unless there is nothing to say: an idle daemon would
        otherwise log one line every interval (2,880 a day at 30 s).
        """
        sessions = list(self._sessions())
        outcomes = self._outcomes
        if self.count and (sessions or outcomes[True] or outcomes[False]):
            events.rotationRound(
                self.log, self.count, outcomes[True], outcomes[False], len(sessions)
            )
        outcomes[True] = outcomes[False] = 0
        self.count += 1
        spread = self._interval * ROUND_JITTER
        self._rotations = [
            self._clock.callLater(random.uniform(0, spread), session.rotate, True)
            for session in sessions
        ]
