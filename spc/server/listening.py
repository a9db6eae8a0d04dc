# -*- test-case-name: tests.unit.test_listening -*-
"""
A service that listens on one endpoint while it runs, and fails to start
when the endpoint cannot listen.

Twisted's C{StreamServerEndpointService} logs a port it cannot bind and
runs on without it, unless a private attribute says otherwise, and keeps
the listening port where only its own code may read it.  The daemon needs
both in public: a port it cannot bind must stop it with the reason (twistd
prints the exception C{privilegedStartService} raises), and an application
that asked for port 0 must learn which port it got.
"""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, maybeDeferred
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure

from spc.logs import events

__all__ = ["ListeningService"]


class ListeningService(Service):
    """
    Listens on C{endpoint} with C{factory} from the time it starts until it
    stops.

    @ivar endpoint: where to listen.
    @ivar factory: what builds the connections; read when listening starts,
        so it may be replaced until then.
    @ivar _listening: the endpoint's C{listen} result once listening began,
        or L{None} before: it fires with the L{IListeningPort}, or with
        L{None} if listening failed (the failure was raised or logged).
    """

    log = events.NamedLogger(events.DAEMON)

    def __init__(self, endpoint: IStreamServerEndpoint, factory: Factory) -> None:
        self.endpoint = endpoint
        self.factory = factory
        self._listening: Deferred | None = None

    def privilegedStartService(self) -> None:
        """
        Start listening, before twistd gives up its privileges, so that a
        port below 1024 can be bound.

        @raise Exception: whatever the endpoint failed with, when it fails
            before this returns (a port in use, a socket path that cannot
            be bound).  A failure that comes later is logged.
        """
        super().privilegedStartService()
        failedNow: list[Failure] = []
        starting = True

        def failed(failure: Failure) -> None:
            if starting:
                failedNow.append(failure)
            elif not failure.check(CancelledError):
                self.log.failure("Cannot listen on {endpoint}", failure, endpoint=self.endpoint)

        self._listening = self.endpoint.listen(self.factory)
        self._listening.addErrback(failed)
        starting = False
        if failedNow:
            failedNow[0].raiseException()

    def startService(self) -> None:
        """
        Start listening, unless L{privilegedStartService} did already.
        """
        super().startService()
        if self._listening is None:
            self.privilegedStartService()

    def whenListening(self) -> Deferred:
        """
        @return: a Deferred that fires with the L{IListeningPort} once the
            endpoint listens, or with L{None} if it could not.
        @raise RuntimeError: if the service has not started.
        """
        if self._listening is None:
            raise RuntimeError("the service has not started listening")
        seen: Deferred = Deferred()

        def passOn(port: IListeningPort | None) -> IListeningPort | None:
            seen.callback(port)
            return port

        self._listening.addCallback(passOn)
        return seen

    def stopService(self) -> Deferred:
        """
        Stop listening, or give up an attempt still under way.

        @return: a Deferred that fires once the port is closed; the
            service counts as running until then.
        """
        listening, self._listening = self._listening, None
        if listening is None:
            return maybeDeferred(super().stopService)
        listening.cancel()

        def stopListening(port: IListeningPort | None):
            if port is not None:
                return port.stopListening()

        def stopped(result):
            Service.stopService(self)
            return result

        return listening.addCallback(stopListening).addBoth(stopped)
