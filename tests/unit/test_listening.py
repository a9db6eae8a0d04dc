# -*- test-case-name: tests.unit.test_listening -*-
"""
Tests for L{spc.server.listening}: the L{ListeningService} behind each of
the server's ports, over an endpoint whose C{listen} the test answers.
"""

from __future__ import annotations

from twisted.internet import protocol
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import CannotListenError, ConnectionRefusedError
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from spc.server.listening import ListeningService


class _ScriptedEndpoint:
    """
    A server endpoint whose C{listen} answers with a Deferred the test
    fires.

    @ivar factories: the factory of each C{listen} call.
    @ivar listening: the Deferred of the latest call.
    @ivar cancelled: whether that Deferred was cancelled.
    """

    def __init__(self, result: Deferred | None = None) -> None:
        self.factories: list = []
        self.cancelled = False
        self._result = result

    def listen(self, factory) -> Deferred:
        self.factories.append(factory)
        if self._result is not None:
            self.listening = self._result
        else:
            self.listening = Deferred(lambda d: setattr(self, "cancelled", True))
        return self.listening


class _FakePort:
    """
    A listening port that closes when the test fires C{closed}.
    """

    def __init__(self) -> None:
        self.closed: Deferred | None = None

    def stopListening(self) -> Deferred:
        self.closed = Deferred()
        return self.closed


class ListeningServiceTests(SynchronousTestCase):
    """
    L{ListeningService}: listening while it runs, a failure to listen at
    start-up raised, and the port there for the asking.
    """

    def test_failureAtStartRaises(self) -> None:
        """
        An endpoint that cannot listen at once makes
        C{privilegedStartService} raise its error, and stopping afterwards
        is quiet.
        """
        error = CannotListenError("127.0.0.1", 9000, OSError(98, "Address already in use"))
        service = ListeningService(_ScriptedEndpoint(fail(error)), protocol.Factory())
        self.assertIs(self.assertRaises(CannotListenError, service.privilegedStartService), error)
        self.assertIsNone(self.successResultOf(service.whenListening()))
        self.successResultOf(service.stopService())

    def test_laterFailureLogged(self) -> None:
        """
        A failure after start-up is logged, not raised, and the service
        reports no port.
        """
        endpoint = _ScriptedEndpoint()
        service = ListeningService(endpoint, protocol.Factory())
        service.startService()
        waiting = service.whenListening()
        with capturedLogs() as events:
            endpoint.listening.errback(ConnectionRefusedError())
        [event] = events
        self.assertEqual(event["log_level"], LogLevel.critical)
        self.assertIs(event["endpoint"], endpoint)
        self.assertEqual(len(self.flushLoggedErrors(ConnectionRefusedError)), 1)
        self.assertIsNone(self.successResultOf(waiting))

    def test_listensOnceWithTheFactoryOfTheTime(self) -> None:
        """
        C{startService} after C{privilegedStartService} does not listen
        again, and the factory is the one set when listening began.
        """
        endpoint = _ScriptedEndpoint()
        service = ListeningService(endpoint, protocol.Factory())
        replaced = protocol.Factory()
        service.factory = replaced
        service.privilegedStartService()
        service.startService()
        self.assertEqual(endpoint.factories, [replaced])

    def test_portAndStop(self) -> None:
        """
        L{ListeningService.whenListening} fires with the port, however
        often it is asked; stopping closes the port, and the service runs
        until the port is closed.
        """
        endpoint = _ScriptedEndpoint()
        service = ListeningService(endpoint, protocol.Factory())
        self.assertRaises(RuntimeError, service.whenListening)
        service.startService()
        first, second = service.whenListening(), service.whenListening()
        port = _FakePort()
        endpoint.listening.callback(port)
        self.assertIs(self.successResultOf(first), port)
        self.assertIs(self.successResultOf(second), port)
        stopping = service.stopService()
        self.assertNoResult(stopping)
        self.assertTrue(service.running)
        port.closed.callback(None)
        self.successResultOf(stopping)
        self.assertFalse(service.running)

    def test_stopWhileStarting(self) -> None:
        """
        Stopping before the endpoint listens cancels the attempt, and the
        cancellation is not logged as a failure.
        """
        endpoint = _ScriptedEndpoint()
        service = ListeningService(endpoint, protocol.Factory())
        service.startService()
        with capturedLogs() as events:
            self.successResultOf(service.stopService())
        self.assertTrue(endpoint.cancelled)
        self.assertEqual(events, [])
        self.assertFalse(service.running)
