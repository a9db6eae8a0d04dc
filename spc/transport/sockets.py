# -*- test-case-name: tests.integration.test_sockets -*-
"""
The socket options of a channel's TCP connection, set on the socket under
whatever transport the channel has: TCP's own, or under TLS the socket of
the TCP transport that TLS wraps.

  - C{TCP_NODELAY}: a record goes out when the reactor writes it, not
    after the peer's delayed ACK (Nagle's algorithm made a small message's
    round trip 40 ms).  Writes are still coalesced: Twisted's TCP transport
    buffers everything written in one reactor turn and hands it to the
    kernel in one C{send} when the socket is next writable, so a burst of
    records is one segment train, not a packet per record.
  - C{TCP_NOTSENT_LOWAT}: the kernel keeps little unsent data (amendment
    A10), so a slow channel is noticed at once; Linux only.
  - C{SO_KEEPALIVE}, with the idle time, probe interval and probe count of
    the heartbeats (amendment A21): the kernel finds a peer that is gone
    without a word while the connection carries nothing, at no cost to
    the process.

A socket that does not take an option (a Unix socket, another platform)
goes without it.
"""

from __future__ import annotations

import math
import socket

__all__ = ["keepAlive", "lowLatency", "socketOf"]

_TCP_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", 25)
_MAX_DEPTH = 4
"""
Transports wrapping one another that L{socketOf} looks through (TLS over
TCP is two).
"""


def socketOf(transport) -> socket.socket | None:
    """
    @return: the socket under C{transport}, or L{None} if it has none (a
        transport in memory).
    """
    for _ in range(_MAX_DEPTH):
        getHandle = getattr(transport, "getHandle", None)
        handle = getHandle() if getHandle is not None else None
        if isinstance(handle, socket.socket):
            return handle
        transport = getattr(transport, "transport", None)
        if transport is None:
            return None
    return None


def _set(sock: socket.socket, level: int, option: int, value: int) -> None:
    try:
        sock.setsockopt(level, option, value)
    except OSError:
        pass


def lowLatency(transport, notSentLowWater: int) -> None:
    """
    Send each write at once, and keep at most C{notSentLowWater} bytes
    unsent in the kernel.
    """
    sock = socketOf(transport)
    if sock is not None:
        _set(sock, socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _set(sock, socket.IPPROTO_TCP, _TCP_NOTSENT_LOWAT, notSentLowWater)


def keepAlive(transport, interval: float, count: int) -> None:
    """
    Have the kernel probe a connection idle for C{interval} seconds every
    C{interval} seconds, and drop it after C{count} probes go unanswered
    (whole seconds, at least 1).
    """
    sock = socketOf(transport)
    if sock is None:
        return
    seconds = max(1, math.ceil(interval))
    _set(sock, socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", seconds), ("TCP_KEEPINTVL", seconds),
                        ("TCP_KEEPCNT", count)):
        option = getattr(socket, name, None)
        if option is not None:
            _set(sock, socket.IPPROTO_TCP, option, value)
