# -*- test-case-name: tests.integration.test_status -*-
"""
Tests for the daemon's control socket (L{spc.status.control},
L{spc.status.services}) on disk with the real reactor, how C{spc status}
fails when the daemon is gone or broken, and C{spc status} against the real
daemon.
"""

from __future__ import annotations

import io
import json
import os
import socket
import stat

from twisted.internet import protocol, reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, UNIXClientEndpoint, UNIXServerEndpoint
from twisted.internet.error import CannotListenError
from twisted.logger import LogLevel, capturedLogs
from twisted.protocols import amp
from twisted.trial.unittest import TestCase

from spc.cli.command import Context
from spc.cli.status import StatusOptions
from spc.client.connect import connect
from spc.errors import DaemonNotRunning, StatusUnavailable
from spc.keys.trust import PinnedKey
from spc.status import control
from spc.status.control import fetchStatus
from spc.status.services import statusServices
from spc.status.snapshot import StatusSource
from tests.fakes import FakeDirectory, FakeSession
from tests.files import shortTemporaryDirectory
from tests.integration.test_endtoend import (
    PROCESS_TIMEOUT,
    SPC,
    EndToEndTestCase,
    sharedIdentity,
    signal,
    spawn,
)


DEAD_PID = 999_999_999
"""
A process id above Linux's largest, so no process has it.
"""


class SocketTests(TestCase):
    """
    The control socket on disk, over the real reactor.
    """

    def setUp(self) -> None:
        self.path = os.path.join(shortTemporaryDirectory(self), "control.sock")
        self.source = StatusSource(FakeDirectory([FakeSession(1)]), reactor, "SHA256:h")

    def listen(self):
        [service] = statusServices(reactor, self.source, controlSocket=self.path)
        service.privilegedStartService()
        service.startService()
        self.addCleanup(service.stopService)
        return service

    def test_plainValues(self) -> None:
        """
        The services are built from plain values, with no parsed command
        line: no socket and no metrics make no service, and a default
        socket path that was too long is reported.
        """
        with capturedLogs() as events:
            services = statusServices(reactor, self.source, skippedSocket="/deep/control.sock")
        self.assertEqual(services, [])
        [event] = events
        self.assertEqual(event["log_level"], LogLevel.warn)
        self.assertEqual(event["path"], "/deep/control.sock")

    @inlineCallbacks
    def test_modeAndAnswer(self):
        """
        Only the owner may use the socket (mode 0600), and it answers.
        """
        self.listen()
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        snapshot = yield fetchStatus(UNIXClientEndpoint(reactor, self.path))
        self.assertEqual([s.peer for s in snapshot.sessions], ["SHA256:peer1"])

    @inlineCallbacks
    def test_staleSocket(self):
        """
        A socket file left by a killed daemon does not stop a new one.
        """
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(self.path)
        stale.close()
        os.symlink(str(DEAD_PID), self.path + ".lock")
        self.listen()
        snapshot = yield fetchStatus(UNIXClientEndpoint(reactor, self.path))
        self.assertEqual(snapshot.daemon.sessions, 1)

    def test_inUse(self) -> None:
        """
        A second daemon on the same socket cannot listen.
        """
        self.listen()
        [second] = statusServices(reactor, self.source, controlSocket=self.path)
        self.assertRaises(CannotListenError, second.privilegedStartService)

    @inlineCallbacks
    def test_noDaemon(self):
        """
        C{spc status} with nothing listening fails with L{DaemonNotRunning},
        which names the socket.
        """
        options = StatusOptions()
        options.parseOptions(["--socket", self.path])
        context = Context(io.StringIO(), io.StringIO(), {})
        error = yield self.assertFailure(
            options.runWithReactor(reactor, context), DaemonNotRunning
        )
        self.assertIn(self.path, str(error))
        self.assertIn("is it running?", str(error))

    @inlineCallbacks
    def test_command(self):
        """
        C{spc status --json} prints the daemon's snapshot.
        """
        self.listen()
        options = StatusOptions()
        options.parseOptions(["--socket", self.path, "--json"])
        out = io.StringIO()
        code = yield options.runWithReactor(reactor, Context(out, io.StringIO(), {}))
        self.assertEqual(code, 0)
        self.assertEqual(json.loads(out.getvalue())["sessions"][0]["epoch"], 7)


class _HalfAnswer(protocol.Protocol):
    """
    A daemon that dies mid-answer: the start of a box, then the end.
    """

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(b"\x00\x04_ans")
        self.transport.loseConnection()


class _OverlongKey(protocol.Protocol):
    """
    A daemon that answers with a key longer than AMP allows.
    """

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(b"\x01\x00" + b"k" * 256)


class _GetDaemonFailing(control.GetDaemon):
    """
    L{control.GetDaemon} as a daemon that reports its failures by name
    declares it.
    """

    commandName = b"GetDaemon"
    errors = {RuntimeError: b"BROKEN"}


class _Failing(amp.AMP):
    """
    A daemon whose status command fails, with a description that would
    clear the screen.
    """

    @_GetDaemonFailing.responder
    def getDaemon(self):
        raise RuntimeError("\x1b[2Jbroken")


class BrokenDaemonTests(TestCase):
    """
    C{spc status} against control sockets that do not answer as they
    should ends in L{StatusUnavailable} (one line, exit 1), never a
    traceback.
    """

    def setUp(self) -> None:
        self.path = os.path.join(shortTemporaryDirectory(self), "control.sock")

    @inlineCallbacks
    def status(self, factory):
        port = yield UNIXServerEndpoint(reactor, self.path).listen(factory)
        self.addCleanup(port.stopListening)
        options = StatusOptions()
        options.parseOptions(["--socket", self.path])
        out = io.StringIO()
        error = yield self.assertFailure(
            options.runWithReactor(reactor, Context(out, io.StringIO(), {})),
            StatusUnavailable,
        )
        self.assertEqual(out.getvalue(), "")
        self.assertEqual(error.exitCode, 1)
        self.assertEqual(len(str(error).splitlines()), 1)
        return str(error)

    @inlineCallbacks
    def test_closedMidAnswer(self):
        """
        A daemon that closes the connection halfway through an answer.
        """
        message = yield self.status(protocol.Factory.forProtocol(_HalfAnswer))
        self.assertIn("closed the connection before it answered", message)

    @inlineCallbacks
    def test_errorAnswer(self):
        """
        A daemon that answers with an AMP error; its description is shown
        without control characters.
        """
        message = yield self.status(protocol.Factory.forProtocol(_Failing))
        self.assertIn("answered with an error: [2Jbroken", message)

    @inlineCallbacks
    def test_tooLong(self):
        """
        A daemon that sends a key past AMP's length limit.
        """
        message = yield self.status(protocol.Factory.forProtocol(_OverlongKey))
        self.assertIn("longer than AMP allows", message)


class EndToEndTests(EndToEndTestCase):
    """
    C{spc status} against a real C{twistd -n spc}.
    """

    def setUp(self) -> None:
        super().setUp()
        self.authorize(self.serverKeys, "client")
        self.socket = os.path.join(shortTemporaryDirectory(self), "control.sock")

    def startWithSocket(self):
        return self.startDaemon("--control-socket", self.socket)

    @inlineCallbacks
    def openSession(self):
        """
        Hold a session open from this process, as a sender would.
        """
        session = yield connect(
            reactor,
            [TCP4ClientEndpoint(reactor, self.server, port) for port in self.ports],
            sharedIdentity("client"),
            PinnedKey(self.serverFingerprint),
            f"{self.server}:{self.ports[0]}",
        )
        self.addCleanup(session.close)
        return session

    @inlineCallbacks
    def test_listsSession(self):
        """
        A connected session is listed with its identity, name, epoch and
        four channels, in JSON; the socket is the owner's only.
        """
        yield self.startWithSocket()
        self.assertEqual(stat.S_IMODE(os.stat(self.socket).st_mode), 0o600)
        session = yield self.openSession()
        yield session.sendMessage(b"hello")
        result = yield self.spc("status", "--socket", self.socket, "--json")
        self.assertEqual(result.code, 0, result.err)
        document = json.loads(result.out)
        self.assertEqual(document["daemon"]["fingerprint"], self.serverFingerprint)
        [listed] = document["sessions"]
        self.assertEqual(listed["peer"], sharedIdentity("client").fingerprint)
        self.assertEqual(listed["name"], "client")
        self.assertEqual(listed["session"], session.id.hex()[:16])
        self.assertEqual([c["index"] for c in listed["channels"]], [0, 1, 2, 3])
        self.assertGreater(sum(c["received"] for c in listed["channels"]), 0)

    @inlineCallbacks
    def test_noDaemon(self):
        """
        Without a daemon C{spc status} prints one line and exits 1.
        """
        result = yield self.spc("status", "--socket", self.socket)
        self.assertEqual(result.code, 1)
        self.assertEqual(result.out, "")
        self.assertEqual(len(result.err.splitlines()), 1, result.err)
        self.assertIn("is it running?", result.err)

    @inlineCallbacks
    def test_restartAfterKill(self):
        """
        A daemon killed with SIGKILL leaves its socket behind; the next one
        starts anyway and answers on it.
        """
        daemon = yield self.startWithSocket()
        daemon.signal("KILL")
        yield daemon.output.whenEnded()
        self.assertTrue(os.path.exists(self.socket))
        yield self.startWithSocket()
        result = yield self.spc("status", "--socket", self.socket)
        self.assertEqual(result.code, 0, result.err)
        self.assertIn("0 sessions", result.out)

    @inlineCallbacks
    def test_interrupted(self):
        """
        C{spc status} waiting for a daemon that took its connection and
        says nothing stops at Ctrl-C (SIGINT) with one line, C{spc:
        interrupted}, and exit code 130, as a shell expects of an
        interrupted command.
        """
        accepted: Deferred = Deferred()
        port = reactor.listenUNIX(
            self.socket, protocol.Factory.forProtocol(lambda: _Silent(accepted))
        )
        self.addCleanup(port.stopListening)
        output, transport = spawn(SPC + ["status", "--socket", self.socket], self.root, self.env)
        kill = reactor.callLater(PROCESS_TIMEOUT, signal, transport, "KILL")
        self.addCleanup(lambda: kill.cancel() if kill.active() else None)
        server = yield accepted
        signal(transport, "INT")
        result = yield output.whenEnded()
        yield server.lost
        self.assertEqual((result.code, result.out, result.err), (130, "", "spc: interrupted\n"))


class _Silent(protocol.Protocol):
    """
    Takes a connection and says nothing.

    @ivar accepted: fires with this protocol once connected.
    @ivar lost: fires once the connection is gone.
    """

    def __init__(self, accepted: Deferred) -> None:
        self.accepted = accepted
        self.lost: Deferred = Deferred()

    def connectionMade(self) -> None:
        self.accepted.callback(self)

    def connectionLost(self, reason) -> None:
        self.lost.callback(None)
