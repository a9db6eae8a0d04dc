# -*- test-case-name: tests.unit.test_frames -*-
"""
A session's timers in seconds.

The wire counts time in milliseconds (the parameters of F3, a heartbeat's
origin time); everything past the wire counts in seconds, as Twisted's
clocks do.  L{spc.protocol.frames.Params.seconds} converts once, here, so
no part of a session divides by a thousand on its own.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["MILLISECONDS", "ROUND_JITTER", "Timers"]

MILLISECONDS = 1000
"""
Milliseconds in a second: the wire's unit of time.
"""
ROUND_JITTER = 0.1
"""
The part of the rotation interval over which a server's round spreads its
sessions' rotations (L{spc.server.rounds}); the timers of a session leave
room for it (L{spc.session.pacing.ackDeadlineCap}).
"""


class Timers(NamedTuple):
    """
    The timed parameters of a session, in seconds.

    @ivar heartbeatInterval: between two heartbeat requests on a connection.
    @ivar rotationInterval: between two rotation rounds.
    @ivar ackTimeout: how long an offer waits for its acknowledgement.
    @ivar overlap: how long the previous epoch is still accepted after a
        commit.
    """

    heartbeatInterval: float
    rotationInterval: float
    ackTimeout: float
    overlap: float

    @classmethod
    def fromMilliseconds(cls, params) -> Timers:
        """
        @param params: the session's L{spc.protocol.frames.Params}.
        """
        return cls(
            params.heartbeatInterval / MILLISECONDS,
            params.rotationInterval / MILLISECONDS,
            params.ackTimeout / MILLISECONDS,
            params.overlap / MILLISECONDS,
        )
