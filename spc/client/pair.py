# -*- test-case-name: tests.integration.test_invites -*-
"""
The client end of a pairing (amendment A20): connect to the receiver's
first channel, run L{spc.protocol.clientpairing.ClientPairing} over it, and
record the receiver's key in C{known_hosts} once its confirmation checked
out, if the receiver keeps this client's key too.

A key recorded for the address already must be the receiver's: otherwise
nothing is sent and the user sees both fingerprints, as for any changed
key.  The pairing connection then closes; what follows is an ordinary
session.
"""

from __future__ import annotations

import os

from twisted.internet import protocol
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.endpoints import connectProtocol
from twisted.python.failure import Failure

from spc.errors import ProtocolError, SPCError
from spc.keys.identity import Identity
from spc.keys.trust import KNOWN_HOSTS_NAME, KnownHosts
from spc.protocol import frames
from spc.protocol.clientpairing import ClientPairing
from spc.protocol.paircode import PairCode
from spc.protocol.pairing import Paired
from spc.transport.channel import DEFAULT_HANDSHAKE_TIMEOUT
from spc.transport.framer import Framer

__all__ = ["PairingProtocol", "pair"]


class PairingProtocol(protocol.Protocol):
    """
    One pairing connection: a framer with the pre-authentication cap, the
    client's pairing machine, and a deadline.

    @ivar done: fires with the L{Paired} result, or fails.
    """

    def __init__(
        self,
        code: PairCode,
        identityKeyDER: bytes,
        checkServerKey,
        clock: IReactorTime,
        timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    ) -> None:
        self.done: Deferred = Deferred()
        self._framer = Framer(frames.MAX_BODY_PRE)
        self._machine = ClientPairing(code, identityKeyDER, checkServerKey, self)
        self._clock = clock
        self._timeout = timeout
        self._timer: IDelayedCall | None = None

    def connectionMade(self) -> None:
        self._timer = self._clock.callLater(self._timeout, self._machine.timedOut)

    def dataReceived(self, data: bytes) -> None:
        if self.done.called:
            return
        try:
            self._framer.feed(data, self._deliver)
        except SPCError as error:
            self._machine.gotBad(error)

    def _deliver(self, body: bytes) -> bool:
        self._machine.frameReceived(body)
        return not self.done.called

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self._cancelTimer()
        if not self.done.called:
            self._machine.gotBad(ProtocolError("the connection closed during the pairing"))

    def _cancelTimer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    # ClientPairingOwner.

    def sendFrame(self, body: bytes) -> None:
        self.transport.writeSequence([frames.LENGTH.pack(len(body)), body])

    def pairingSucceeded(self, paired: Paired) -> None:
        self._cancelTimer()
        self.transport.loseConnection()
        self.done.callback(paired)

    def pairingFailed(self, error: SPCError) -> None:
        self._cancelTimer()
        self.transport.abortConnection()
        self.done.errback(error)


def pair(
    reactor,
    endpoint,
    code: PairCode,
    identity: Identity,
    keyDir: str,
    hostPort: str,
    timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
) -> Deferred:
    """
    Pair with the receiver behind C{endpoint}, its first channel, named
    C{hostPort} in C{keyDir/known_hosts}.

    @return: a Deferred firing with the L{Paired} result once the receiver
        confirmed; its key is then in C{known_hosts} if the pairing is
        permanent.
    @raise spc.errors.ServerKeyChanged: when another key is recorded for
        C{hostPort}; nothing was sent.
    """
    knownHosts = KnownHosts.fromFile(os.path.join(keyDir, KNOWN_HOSTS_NAME))

    def checkServerKey(fingerprint: str) -> None:
        if knownHosts.lookup(hostPort) is not None:
            knownHosts.check(hostPort, fingerprint)

    pairing = PairingProtocol(code, identity.publicDER, checkServerKey, reactor, timeout)

    def record(paired: Paired) -> Paired:
        if paired.permanent:
            KnownHosts.fromFile(knownHosts.path, acceptNew=True).check(
                hostPort, paired.serverFingerprint
            )
        return paired

    def notConnected(failure: Failure) -> None:
        if not pairing.done.called:
            pairing.done.errback(failure)

    connectProtocol(endpoint, pairing).addErrback(notConnected)
    return pairing.done.addCallback(record)
