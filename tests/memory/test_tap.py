# -*- test-case-name: tests.memory.test_tap -*-
"""
Tests for the service L{spc.tap} makes: what it listens on, on a
C{MemoryReactor}, how it starts, reloads and stops, and its control socket.
"""

from __future__ import annotations

import os
import signal

from twisted.application.service import IService, MultiService
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory
from twisted.internet.testing import MemoryReactor, MemoryReactorClock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from spc.keys.identity import saveIdentity
from spc.keys.trustfile import MAX_TRUST_FILE_SIZE
from spc.server.daemon import _listenFailure
from spc.tap import makeService
from tests.files import shortTemporaryDirectory
from tests.unit.test_identity import OTHER_FINGERPRINT, writeFile
from tests.unit.test_keyfiles import ANOTHER_USER
from tests.unit.test_tap import HOST, keyDirWithIdentity, makeOptions


UsageError = usage.UsageError


class InterfaceTests(SynchronousTestCase):
    """
    C{--interface} is the address the C{--ports} listen on.
    """

    def test_ipv4(self) -> None:
        """
        An IPv4 address goes into the description as it is.
        """
        options = makeOptions(
            "--ports", "9000", "--interface", "0.0.0.0", "--inbox", "X"
        )
        self.assertEqual(options["endpoints"], ["tcp:9000:interface=0.0.0.0"])

    def test_ipv6Escaped(self) -> None:
        """
        The colons of an IPv6 address are escaped, as the endpoint syntax
        requires; brackets around it are dropped.
        """
        for interface in ["::1", "[::1]"]:
            options = makeOptions(
                "--ports", "9000", "--interface", interface, "--inbox", "X"
            )
            self.assertEqual(options["endpoints"], ["tcp:9000:interface=\\:\\:1"])

    def test_ipv6Parses(self) -> None:
        """
        Twisted's endpoint parser reads the escaped IPv6 interface back.
        """
        options = makeOptions(
            "--ports", "9000", "--interface", "fe80::1%eth0", "--inbox", "X"
        )
        (description,) = options["endpoints"]
        reactor = MemoryReactor()
        serverFromString(reactor, description).listen(Factory())
        ((port, factory, backlog, interface),) = reactor.tcpServers
        self.assertEqual((port, interface), (9000, "fe80::1%eth0"))

    def test_notAnAddress(self) -> None:
        """
        A host name or garbage is a usage error.
        """
        for interface in ["localhost", "", "1.2.3", "::1:"]:
            error = self.assertRaises(
                usage.UsageError,
                makeOptions,
                "--ports",
                "9000",
                "--interface",
                interface,
                "--inbox",
                "X",
            )
            self.assertIn("not an IP address", str(error))


class MakeServiceTests(SynchronousTestCase):
    """
    L{makeService} builds the daemon's service.
    """

    def makeService(self, *extra: str):
        self.keyDir = keyDirWithIdentity(self)
        self.inbox = self.mktemp()
        return makeService(
            makeOptions(
                "--key-dir", self.keyDir, "--ports", "9000-9003", "--inbox", self.inbox,
                *extra,
            ),
            reactor=MemoryReactorClock(),
        )

    def test_multiService(self) -> None:
        """
        The service is a L{MultiService} named C{"spc"} with one endpoint
        service per port.
        """
        service = self.makeService("--allow-any-client")
        self.assertTrue(IService.providedBy(service))
        self.assertIsInstance(service, MultiService)
        self.assertEqual(service.name, "spc")
        self.assertEqual(len(service.endpointServices), 4)
        self.assertEqual(service.hostIdentity.fingerprint, HOST.fingerprint)

    def test_partialQuota(self) -> None:
        """
        C{--partial-quota} (default 256 GiB) becomes the file store's quota
        per sender; a non-size is a usage error naming the option.
        """
        self.assertEqual(
            self.makeService("--allow-any-client").directory.files.quota, 256 * 1024**3
        )
        service = self.makeService("--allow-any-client", "--partial-quota", "10M")
        self.assertEqual(service.directory.files.quota, 10 * 1024**2)
        error = self.assertRaises(
            usage.UsageError, makeOptions, "--inbox", "x", "--ports", "9000",
            "--partial-quota", "lots",
        )
        self.assertIn("--partial-quota", str(error))

    def test_shutdownGrace(self) -> None:
        """
        C{--shutdown-grace} (fractions allowed, default 2 s) is how long a
        stopping daemon waits for answers in flight; a non-number is a
        usage error.
        """
        self.assertEqual(self.makeService("--allow-any-client").shutdownGrace, 2.0)
        service = self.makeService("--allow-any-client", "--shutdown-grace", "0.5")
        self.assertEqual(service.shutdownGrace, 0.5)
        error = self.assertRaises(
            usage.UsageError, makeOptions, "--inbox", "x", "--ports", "9000",
            "--shutdown-grace", "soon",
        )
        self.assertIn("--shutdown-grace", str(error))

    def test_missingKey(self) -> None:
        """
        Without an identity in the key directory the daemon stops with one
        line naming the fix, not a traceback.
        """
        error = self.assertRaises(
            SystemExit,
            makeService,
            makeOptions("--key-dir", self.mktemp(), "--ports", "9000", "--inbox", "X"),
            MemoryReactor(),
        )
        self.assertIn("spc keygen", str(error))

    def test_badAuthorizedKeys(self) -> None:
        """
        An unreadable line in authorized_keys stops the daemon with its line
        number.
        """
        keyDir = keyDirWithIdentity(self)
        with open(os.path.join(keyDir, "authorized_keys"), "w") as f:
            f.write("# ok\nnot-a-fingerprint\n")
        error = self.assertRaises(
            SystemExit,
            makeService,
            makeOptions("--key-dir", keyDir, "--ports", "9000", "--inbox", "X"),
            MemoryReactor(),
        )
        self.assertIn("line 2", str(error))

    def test_noClientsAuthorized(self) -> None:
        """
        With no authorized_keys and no --allow-any-client the daemon starts,
        refuses everyone, and says so at start-up.
        """
        service = self.makeService()
        events = []
        from twisted.logger import globalLogPublisher

        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        service.startService()
        self.addCleanup(service.stopService)
        self.assertFalse(service.directory.isAuthorized(HOST.fingerprint))
        self.assertTrue(
            any("every client will be refused" in e.get("log_format", "") for e in events)
        )

    def captureLog(self) -> list[str]:
        """
        @return: A list that gets the text of every event logged from now
            until the test ends.
        """
        lines: list[str] = []

        def observe(event) -> None:
            lines.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        return lines

    def writeAuthorizedKeys(self, text: str, mode: int = 0o644) -> str:
        """
        Replace C{KEYDIR/authorized_keys}.

        @return: Its path.
        """
        path = os.path.join(self.keyDir, "authorized_keys")
        writeFile(path, text.encode("utf-8"), mode)
        return path

    def test_reload(self) -> None:
        """
        C{reload} (what SIGHUP triggers) re-reads authorized_keys: its valid
        lines replace the list and a bad line is skipped, logged with its
        file and line number but not its text. A key removed in the same
        edit as a typo is revoked all the same.
        """
        service = self.makeService()
        path = self.writeAuthorizedKeys(f"{HOST.fingerprint} someone\n")
        service.reload()
        self.assertTrue(service.directory.isAuthorized(HOST.fingerprint))
        log = self.captureLog()
        self.writeAuthorizedKeys(f"SHA256:typo-of-a-secret\n{OTHER_FINGERPRINT} other\n")
        service.reload()
        self.assertFalse(service.directory.isAuthorized(HOST.fingerprint))
        self.assertTrue(service.directory.isAuthorized(OTHER_FINGERPRINT))
        skipped = [line for line in log if line.startswith("Skipped a bad line")]
        self.assertEqual(len(skipped), 1, log)
        self.assertIn(f"{path}, line 1: ", skipped[0])
        self.assertNotIn("typo-of-a-secret", "\n".join(log))
        self.assertIn(f"Reloaded authorized keys: 1 authorized client key(s) from {path}", log)

    def test_reloadLogsFewBadLines(self) -> None:
        """
        However many lines are bad, a reload logs the first ten and counts
        the others in one line.
        """
        service = self.makeService()
        log = self.captureLog()
        path = self.writeAuthorizedKeys("bad\n" * 25 + f"{HOST.fingerprint}\n")
        service.reload()
        self.assertTrue(service.directory.isAuthorized(HOST.fingerprint))
        skipped = [line for line in log if line.startswith("Skipped")]
        self.assertEqual(len(skipped), 11, log)
        self.assertIn(f"{path}, line 10: ", skipped[9])
        self.assertEqual(skipped[10], f"Skipped 15 more bad lines of {path}")

    def test_reloadFailsClosed(self) -> None:
        """
        An authorized_keys that cannot be used at all when SIGHUP comes
        (one others may write, or one too large) admits nobody, and the log
        says so and how to fix it; the daemon keeps serving, and admits the
        listed keys again once the file is fixed and reloaded.
        """
        service = self.makeService()
        path = self.writeAuthorizedKeys(f"{HOST.fingerprint}\n")
        service.reload()
        log = self.captureLog()
        os.chmod(path, 0o666)
        service.reload()
        self.assertFalse(service.directory.isAuthorized(HOST.fingerprint))
        refusals = [line for line in log if line.startswith("Refusing every client")]
        self.assertEqual(len(refusals), 1, log)
        self.assertIn(f"chmod go-w {os.path.abspath(path)}", refusals[0])
        os.chmod(path, 0o644)
        service.reload()
        self.assertTrue(service.directory.isAuthorized(HOST.fingerprint))
        self.writeAuthorizedKeys(f"{HOST.fingerprint}\n" + "#" * MAX_TRUST_FILE_SIZE)
        service.reload()
        self.assertFalse(service.directory.isAuthorized(HOST.fingerprint))
        refusals = [line for line in log if line.startswith("Refusing every client")]
        self.assertEqual(len(refusals), 2, log)
        self.assertIn(f"{path}: larger than", refusals[1])

    def test_startRefusesFilesOthersMayWrite(self) -> None:
        """
        A key directory or an authorized_keys that others may write stops
        the daemon at start-up with one line naming it and the C{chmod} that
        fixes it.
        """
        keyDir = keyDirWithIdentity(self)
        path = os.path.join(keyDir, "authorized_keys")
        writeFile(path, f"{HOST.fingerprint}\n".encode(), 0o644)
        argv = ["--key-dir", keyDir, "--ports", "9000", "--inbox", self.mktemp()]
        for culprit in (keyDir, path):
            os.chmod(culprit, 0o777)
            error = self.assertRaises(
                SystemExit, makeService, makeOptions(*argv), MemoryReactorClock()
            )
            self.assertIn(f"chmod go-w {os.path.abspath(culprit)}", str(error))
            self.assertEqual(str(error).count("\n"), 0)
            os.chmod(culprit, 0o700)
        makeService(makeOptions(*argv), MemoryReactorClock())

    def test_startAcceptsFilesOfTwistdUser(self) -> None:
        """
        Under C{twistd --uid USER}, started as root, the key directory and
        authorized_keys may belong to USER: the daemon will run as USER.
        Files of any other user are refused.
        """
        keyDir = keyDirWithIdentity(self)
        path = os.path.join(keyDir, "authorized_keys")
        writeFile(path, f"{HOST.fingerprint}\n".encode(), 0o644)
        for owned in (keyDir, path, *(os.path.join(keyDir, n) for n in ("id_rsa", "id_rsa.pub"))):
            os.chown(owned, ANOTHER_USER, -1)
        options = makeOptions("--key-dir", keyDir, "--ports", "9000", "--inbox", self.mktemp())
        error = self.assertRaises(SystemExit, makeService, options, MemoryReactorClock())
        self.assertIn(f"belongs to user {ANOTHER_USER}", str(error))
        options.parent = {"uid": ANOTHER_USER}
        service = makeService(options, MemoryReactorClock())
        self.assertTrue(service.directory.isAuthorized(HOST.fingerprint))
        service.reload()
        self.assertTrue(service.directory.isAuthorized(HOST.fingerprint))

    if os.geteuid() != 0:
        test_startAcceptsFilesOfTwistdUser.skip = (  # type: ignore[attr-defined]
            "only root can give files to another user"
        )

    def test_sighupInstalled(self) -> None:
        """
        Starting the service installs a SIGHUP handler; stopping restores
        the previous one.
        """
        before = signal.getsignal(signal.SIGHUP)
        service = self.makeService("--allow-any-client")
        service.startService()
        self.assertNotEqual(signal.getsignal(signal.SIGHUP), before)
        service.stopService()
        self.assertEqual(signal.getsignal(signal.SIGHUP), before)

    def test_suites(self) -> None:
        """
        C{--suites} must name one suite per channel.
        """
        options = makeOptions("--ports", "9000-9001", "--inbox", "X",
                              "--suites", "aes-256-gcm,chacha20")
        self.assertEqual([s.suiteID for s in options["suites"]], [3, 2])
        self.assertRaises(UsageError, makeOptions, "--ports", "9000-9002",
                          "--inbox", "X", "--suites", "gcm")
        self.assertRaises(UsageError, makeOptions, "--ports", "9000",
                          "--inbox", "X", "--suites", "rc4")


class ControlSocketTests(SynchronousTestCase):
    """
    C{--control-socket}: where C{spc status} reaches the daemon.
    """

    def test_defaultInKeyDir(self) -> None:
        """
        By default the socket is C{control.sock} in the key directory.
        """
        options = makeOptions("--key-dir", "keys", "--ports", "9000", "--inbox", "in")
        self.assertEqual(options["control-socket"], os.path.abspath("keys/control.sock"))

    def test_none(self) -> None:
        """
        C{--control-socket none} turns the socket off.
        """
        options = makeOptions("--ports", "9000", "--inbox", "in", "--control-socket", "none")
        self.assertIsNone(options["control-socket"])

    def test_tooLong(self) -> None:
        """
        A path longer than a UNIX socket may have is refused with a clear
        message when given, and leaves the daemon without a socket when it
        is the default.
        """
        deep = "/tmp/" + "d" * 120
        error = self.assertRaises(
            UsageError, makeOptions,
            "--ports", "9000", "--inbox", "in", "--control-socket", deep + "/s",
        )
        self.assertIn("107 bytes", str(error))
        options = makeOptions("--key-dir", deep, "--ports", "9000", "--inbox", "in")
        self.assertIsNone(options["control-socket"])
        self.assertEqual(options["control-socket-skipped"], deep + "/control.sock")

    def makeService(self, *extra: str):
        self.reactor = MemoryReactorClock()
        self.keyDir = os.path.join(shortTemporaryDirectory(self), "keys")
        saveIdentity(HOST, self.keyDir)
        return makeService(
            makeOptions(
                "--key-dir", self.keyDir, "--ports", "9000", "--inbox", self.mktemp(),
                "--allow-any-client", *extra,
            ),
            reactor=self.reactor,
        )

    def test_listens(self) -> None:
        """
        The daemon listens on the socket, mode 0600, with a lock file that
        lets a restart replace a killed daemon's socket.
        """
        self.makeService().privilegedStartService()
        [(path, factory, backlog, mode, wantPID)] = self.reactor.unixServers
        self.assertEqual(path, os.path.join(os.path.abspath(self.keyDir), "control.sock"))
        self.assertEqual((mode, bool(wantPID)), (0o600, True))

    def test_off(self) -> None:
        """
        With C{--control-socket none} nothing listens on a UNIX socket.
        """
        self.makeService("--control-socket", "none").privilegedStartService()
        self.assertEqual(self.reactor.unixServers, [])

    def test_cannotListen(self) -> None:
        """
        A socket that cannot be bound stops the daemon with one line naming
        it; a lock held by another daemon says so.
        """
        self.assertEqual(
            _listenFailure(CannotListenError(None, b"/run/x.sock", OSError(13, "Permission denied"))),
            "cannot listen on the control socket /run/x.sock: Permission denied",
        )
        self.assertIn(
            "is another daemon using this socket?",
            _listenFailure(CannotListenError(None, b"/run/x.sock", "Cannot acquire lock")),
        )
class DaemonReadinessTests(SynchronousTestCase):
    """
    The daemon's "serving" line is what these tests, and any supervisor,
    take to mean that the daemon is ready: everything it promises must be in
    place by then.
    """

    def test_hangupHandlerBeforeServing(self):
        """
        The SIGHUP handler is installed before the daemon logs that it is
        serving; otherwise a SIGHUP sent on that line (to reload
        authorized_keys) takes the default action and kills the daemon.
        """
        from twisted.internet.testing import MemoryReactorClock as MemoryReactor
        from twisted.logger import globalLogPublisher

        import signal as signalModule

        from spc import tap

        root = os.path.abspath(self.mktemp())
        keyDir = os.path.join(root, "server")
        saveIdentity(HOST, keyDir)
        events: list[str] = []

        def recordSignal(number, handler):
            events.append(f"signal {number}")
            return signalModule.SIG_DFL

        def recordLog(event):
            if " serving " in (event.get("log_format") or ""):
                events.append("serving")

        self.patch(signalModule, "signal", recordSignal)
        globalLogPublisher.addObserver(recordLog)
        self.addCleanup(globalLogPublisher.removeObserver, recordLog)
        config = tap.Options()
        config.parseOptions(
            ["--key-dir", keyDir, "--ports", "9000", "--inbox", os.path.join(root, "inbox"),
             "--allow-any-client"]
        )
        service = tap.makeService(config, reactor=MemoryReactor())
        service.startService()
        self.addCleanup(service.stopService)
        self.assertIn("serving", events)
        self.assertIn(f"signal {signalModule.SIGHUP}", events)
        self.assertLess(
            events.index(f"signal {signalModule.SIGHUP}"), events.index("serving"), events
        )
