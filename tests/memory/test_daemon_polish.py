# -*- test-case-name: tests.memory.test_daemon_polish -*-
"""
Tests for the daemon's smaller promises (issue 12, part 6): what it says
when it starts, what it does not say when it is idle, and what it leaves
behind.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import pkgutil
from types import ModuleType, SimpleNamespace

from twisted.application.service import Application
from twisted.internet import task
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import ILogObserver, Logger, LogLevel, formatEvent, globalLogPublisher
from twisted.scripts.twistd import ServerOptions
from twisted.trial.unittest import SynchronousTestCase

import spc
from spc.keys import identity
from spc.keys.tlscert import writeCertificate
from spc.logs import events
from spc.logs.jsonformat import jsonObserver
from spc.server.daemon import DaemonService
from spc.server.rounds import RotationRounds
from spc.status.services import listensOnEveryInterface
from spc.session.session import Session
from spc.tap import makeService
from tests.unit.test_identity import OTHER_FINGERPRINT
from tests.unit.test_tap import keyDirWithIdentity, makeOptions


class TransferSecretTests(SynchronousTestCase):
    """
    L{identity.loadTransferSecret} makes C{KEYDIR/transfer_secret} and
    nothing else.
    """

    def test_noTemporaryFileLeft(self) -> None:
        """
        Making the secret leaves the secret alone in the key directory: the
        temporary file it was staged in is gone.
        """
        keyDir = self.mktemp()
        os.makedirs(keyDir, 0o700)
        secret = identity.loadTransferSecret(keyDir)
        self.assertEqual(os.listdir(keyDir), [identity.TRANSFER_SECRET_NAME])
        self.assertEqual(identity.loadTransferSecret(keyDir), secret)
        self.assertEqual(os.listdir(keyDir), [identity.TRANSFER_SECRET_NAME])

    def test_noTemporaryFileLeftWhenAnotherWon(self) -> None:
        """
        When another process made the secret between the read and the
        install, its secret is used, and the staged one is removed.
        """
        keyDir = self.mktemp()
        os.makedirs(keyDir, 0o700)
        theirs = b"t" * identity.TRANSFER_SECRET_SIZE
        realInstall = identity.install

        def raced(temporary: str, path: str, replace: bool) -> None:
            with open(path, "wb") as f:
                f.write(theirs)
            realInstall(temporary, path, replace)

        self.patch(identity, "install", raced)
        self.assertEqual(identity.loadTransferSecret(keyDir), theirs)
        self.assertEqual(os.listdir(keyDir), [identity.TRANSFER_SECRET_NAME])


def startedDaemonLog(case: SynchronousTestCase, *argv: str) -> list[str]:
    """
    Start a daemon made from C{argv} (besides a key directory and an
    inbox) on a memory reactor, until the test ends.

    @return: the text of every event it logged meanwhile.
    """
    lines: list[str] = []

    def observe(event) -> None:
        lines.append(formatEvent(event))

    service = makeService(
        makeOptions(
            "--key-dir", keyDirWithIdentity(case), "--inbox", case.mktemp(),
            "--allow-any-client", *argv,
        ),
        reactor=MemoryReactorClock(),
    )
    globalLogPublisher.addObserver(observe)
    case.addCleanup(globalLogPublisher.removeObserver, observe)
    service.startService()
    case.addCleanup(service.stopService)
    return lines


class ServingTests(SynchronousTestCase):
    """
    The line that says the daemon serves counts its channels in words.
    """

    def test_oneChannel(self) -> None:
        """
        One channel is "1 channel".
        """
        log = startedDaemonLog(self, "--ports", "9000")
        [line] = [line for line in log if " serving " in line]
        self.assertIn(" serving 1 channel; ", line)

    def test_channels(self) -> None:
        """
        More are "N channels".
        """
        log = startedDaemonLog(self, "--ports", "9000-9002")
        [line] = [line for line in log if " serving " in line]
        self.assertIn(" serving 3 channels; ", line)


class IdleRoundsTests(SynchronousTestCase):
    """
    The rotation rounds of a daemon without sessions leave the log alone.
    """

    def rounds(self, sessions: list) -> tuple[RotationRounds, list[dict], task.Clock, dict]:
        clock = task.Clock()
        outcomes = {True: 0, False: 0}
        rounds = RotationRounds(clock, 30.0, lambda: sessions, outcomes)
        events: list[dict] = []
        rounds.log = Logger(observer=events.append)
        rounds.start()
        self.addCleanup(rounds.stop)
        return rounds, events, clock, outcomes

    def test_idleSilent(self) -> None:
        """
        A day of rounds with no session logs nothing.
        """
        rounds, events, clock, _ = self.rounds([])
        for _ in range(2880):
            clock.advance(30)
        self.assertEqual(rounds.count, 2880)
        self.assertEqual(events, [])

    def test_lastRotationsLogged(self) -> None:
        """
        A round that finds no session but rotations that ended since the
        last one (of sessions gone since) still reports them.
        """
        rounds, events, clock, outcomes = self.rounds([])
        clock.advance(30)
        outcomes[True] += 1
        clock.advance(30)
        [event] = events
        self.assertEqual((event["committed"], event["sessions"]), (1, 0))

    def test_sessionsLogged(self) -> None:
        """
        With a session, every round after the first is reported, even one
        in which nothing committed.
        """
        session = SimpleNamespace(rotate=lambda scheduled=False: None)
        rounds, events, clock, _ = self.rounds([session])
        for _ in range(3):
            clock.advance(30)
        self.assertEqual([event["round"] for event in events], [1, 2])


class EveryInterfaceTests(SynchronousTestCase):
    """
    A C{--listen} endpoint that names no interface is warned about, as a
    metrics endpoint reachable from other hosts is.
    """

    def warnings(self, *listen: str) -> list[str]:
        """
        Make a daemon listening on C{listen}.

        @return: the text of the warnings logged meanwhile.
        """
        lines: list[str] = []

        def observe(event) -> None:
            if event["log_level"] == LogLevel.warn:
                lines.append(formatEvent(event))

        argv = ["--key-dir", keyDirWithIdentity(self), "--inbox", self.mktemp()]
        argv += ["--allow-any-client", "--control-socket", "none"]
        for description in listen:
            argv += ["--listen", description]
        globalLogPublisher.addObserver(observe)
        try:
            makeService(makeOptions(*argv), reactor=MemoryReactorClock())
        finally:
            globalLogPublisher.removeObserver(observe)
        return lines

    def test_tlsWithoutInterface(self) -> None:
        """
        C{ssl:} without C{interface=} listens on every interface: the
        daemon says so, names the endpoint and the fix.
        """
        written = writeCertificate("spc.test", self.mktemp())
        description = f"ssl:9443:privateKey={written.keyPath}:certKey={written.certificatePath}"
        [line] = self.warnings(description)
        self.assertIn(description, line)
        self.assertIn("listens on every interface", line)
        self.assertIn("interface=127.0.0.1", line)

    def test_tcpWithoutInterface(self) -> None:
        """
        So does C{tcp:} without one.
        """
        [line] = self.warnings("tcp:9000", "tcp:9001:interface=127.0.0.1")
        self.assertIn("--listen tcp:9000 ", line)

    def test_interfaceNamed(self) -> None:
        """
        An endpoint that names its interface, any interface, or one that is
        no TCP endpoint, is not warned about.
        """
        written = writeCertificate("spc.test", self.mktemp())
        tls = f"ssl:9443:privateKey={written.keyPath}:certKey={written.certificatePath}"
        self.assertEqual(
            self.warnings(
                "tcp:9000:interface=127.0.0.1", "tcp:9001:0.0.0.0",
                "tcp6:9002:interface=\\:\\:1", tls + ":interface=10.1.2.3",
                "unix:" + os.path.abspath(self.mktemp()),
            ),
            [],
        )

    def test_predicate(self) -> None:
        """
        L{listensOnEveryInterface} over descriptions as the command line
        gives them.
        """
        every = ["tcp:9000", "TCP:9000", "tcp6:9000", "ssl:9443:privateKey=k",
                 "tcp:9000:interface=", "ssl:9443:privateKey=k:backlog=5"]
        named = ["tcp:9000:interface=0.0.0.0", "tcp:9000:127.0.0.1",
                 "ssl:9443:privateKey=k:interface=\\:\\:", "unix:/run/s"]
        self.assertEqual([d for d in every if not listensOnEveryInterface(d)], [])
        self.assertEqual([d for d in named if listensOnEveryInterface(d)], [])


def spcModules() -> list[ModuleType]:
    """
    Every module of the C{spc} package, imported.
    """
    return [
        importlib.import_module(info.name)
        for info in pkgutil.walk_packages(spc.__path__, "spc.")
    ]


def loggersOf(module: ModuleType) -> list[tuple[str, Logger]]:
    """
    The loggers a module holds at its top level and in its classes' own
    attributes, by where they are.
    """
    found = []
    for name, value in vars(module).items():
        if isinstance(value, Logger):
            found.append((f"{module.__name__}.{name}", value))
        elif isinstance(value, type) and value.__module__ == module.__name__:
            for attribute, member in vars(value).items():
                if isinstance(member, Logger):
                    found.append((f"{module.__name__}.{name}.{attribute}", member))
    return found


class NamespaceTests(SynchronousTestCase):
    """
    Every event spc logs is under one of the namespaces the README lists,
    so that an operator can select the daemon's events by those names.
    """

    def test_everyLoggerNamed(self) -> None:
        """
        Every logger of the package keeps one of L{events.NAMESPACES},
        also when read as a class attribute (where Twisted's own L{Logger}
        would name its events after the class).
        """
        loggers = [found for module in spcModules() for found in loggersOf(module)]
        self.assertGreater(len(loggers), 10)
        for where, logger in loggers:
            self.assertIsInstance(logger, events.NamedLogger, where)
            self.assertIn(logger.namespace, events.NAMESPACES, where)
        self.assertEqual(Session.log.namespace, events.SESSION)
        self.assertEqual(DaemonService.log.namespace, events.DAEMON)

    def test_listedInReadme(self) -> None:
        """
        The README's list of namespaces holds every one of them.
        """
        root = os.path.dirname(os.path.dirname(os.path.abspath(spc.__file__)))
        with open(os.path.join(root, "README.rst"), encoding="utf-8") as f:
            readme = f.read()
        for namespace in events.NAMESPACES:
            self.assertIn(f"``{namespace}``", readme)


class PeerNameTests(SynchronousTestCase):
    """
    In the JSON log, every event that names a C{peer} names its
    C{peer_name} too.
    """

    def test_observerAddsName(self) -> None:
        """
        The JSON observer adds the peer's name to an event that names a
        peer and not its name; an event with a name keeps it, and one
        without a peer gets none.
        """
        out = io.StringIO()
        names = {"SHA256:alice": "alice"}
        observe = jsonObserver(out, names.get)
        log = Logger(observer=observe)
        log.info("from {peer}", peer="SHA256:alice")
        log.info("from {peer}", peer="SHA256:nobody")
        log.info("from {peer} ({peer_name})", peer="SHA256:alice", peer_name="as given")
        log.info("no peer here")
        lines = [json.loads(line) for line in out.getvalue().splitlines()]
        self.assertEqual(
            [line.get("peer_name", "-") for line in lines], ["alice", None, "as given", "-"]
        )

    def test_daemonNamesPeers(self) -> None:
        """
        The daemon's JSON log looks names up in its C{authorized_keys}:
        here the end of a channel, an event logged with the fingerprint
        alone.
        """
        keyDir = keyDirWithIdentity(self)
        alice = OTHER_FINGERPRINT
        with open(os.path.join(keyDir, "authorized_keys"), "w") as f:
            f.write(f"{alice} alice\n")
        path = os.path.abspath(self.mktemp())
        config = ServerOptions()
        config.parseOptions(
            ["--logfile", path, "spc", "--key-dir", keyDir, "--ports", "9000",
             "--inbox", self.mktemp(), "--log-format", "json", "--control-socket", "none"]
        )
        application = Application("spc")
        makeService(config.subOptions, reactor=MemoryReactorClock()).setServiceParent(
            application
        )
        log = Logger(observer=ILogObserver(application))
        events.channelDead(log, 1, b"s" * 16, alice, "127.0.0.1:5000", "gone", False)
        with open(path) as f:
            [line] = [json.loads(text) for text in f.read().splitlines()]
        self.assertEqual((line["peer"], line["peer_name"]), (alice, "alice"))
