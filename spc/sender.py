# -*- test-case-name: tests.test_sender -*-
"""
What C{spc send} does once its options are parsed: open a session with the
daemon, send every item, and succeed only when the daemon confirmed each
one as stored.
"""

from __future__ import annotations

import random
from typing import NamedTuple, Sequence

from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.internet.endpoints import HostnameEndpoint, clientFromString
from twisted.internet.error import ConnectError
from twisted.logger import Logger

from spc import records
from spc.client import connect
from spc.errors import ConnectFailed, ServerBusy
from spc.identity import Identity
from spc.suites import Suite
from spc.trust import ServerTrust

__all__ = ["SendRequest", "SendSummary", "send", "clientEndpoints"]

log = Logger()

# A busy server (amendment A8) is asked again after a growing, jittered wait.
BUSY_ATTEMPTS = 8
BUSY_FIRST_DELAY = 0.25
BUSY_MAX_DELAY = 4.0


class SendRequest(NamedTuple):
    """
    Everything C{spc send} was asked to do.

    @ivar identity: the sender's identity.
    @ivar trust: how the server key is checked.
    @ivar hostPort: the name the server key is pinned under.
    @ivar endpoints: one client endpoint description per channel.
    @ivar messages: the texts to send.
    @ivar suites: the per-channel suite map, or C{None} for the default.
    """

    identity: Identity
    trust: ServerTrust
    hostPort: str
    endpoints: Sequence[str]
    messages: Sequence[bytes]
    suites: Sequence[Suite] | None = None


class SendSummary(NamedTuple):
    """
    @ivar messages: how many messages the daemon confirmed.
    @ivar bytes: how many message bytes that was.
    @ivar channels: how many channels the session ran on.
    @ivar server: the server key fingerprint.
    """

    messages: int
    bytes: int
    channels: int
    server: str


def clientEndpoints(reactor, descriptions: Sequence[str]) -> list:
    """
    Client endpoints from C{--server}/C{--ports} (C{tcp:HOST:PORT}, resolved
    with L{HostnameEndpoint} so IPv6 and IPv4 both work) or C{--connect}
    strings.
    """
    endpoints = []
    for description in descriptions:
        kind, _, rest = description.partition(":")
        host, _, port = rest.rpartition(":")
        if kind == "tcp" and host and port.isdigit() and "=" not in rest:
            endpoints.append(HostnameEndpoint(reactor, host.strip("[]"), int(port)))
        else:
            endpoints.append(clientFromString(reactor, description))
    return endpoints


@inlineCallbacks
def send(reactor, request: SendRequest):
    """
    Send every message of C{request} and wait for the daemon's
    confirmations.

    @return: a Deferred firing with a L{SendSummary}.
    @raise ConnectFailed: if the first channel cannot be reached.
    """
    delay = BUSY_FIRST_DELAY
    for attempt in range(BUSY_ATTEMPTS):
        try:
            session = yield connect(
                reactor,
                clientEndpoints(reactor, request.endpoints),
                request.identity,
                request.trust,
                request.hostPort,
                suites=request.suites,
            )
        except ConnectError as error:
            raise ConnectFailed(f"{request.hostPort}: {error}") from None
        except ServerBusy:
            if attempt == BUSY_ATTEMPTS - 1:
                raise
            log.info("The server is busy; retrying in {delay:.2f} s", delay=delay)
            yield deferLater(reactor, delay * random.uniform(0.8, 1.2), lambda: None)
            delay = min(delay * 2, BUSY_MAX_DELAY)
        else:
            break
    try:
        channels = len(session.channels)
        yield gatherResults(
            [session.sendMessage(text, records.KIND_TEXT) for text in request.messages],
            consumeErrors=True,
        ).addErrback(lambda failure: failure.value.subFailure)
    finally:
        yield session.close()
    return SendSummary(
        len(request.messages),
        sum(len(text) for text in request.messages),
        channels,
        session.peer,
    )
