"""
Tests for L{spc.tap}: the daemon's command line and service.
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

from spc.cli.options import MAX_CHANNELS
from spc.keys.identity import generateIdentity, saveIdentity
from spc.keys.tlscert import writeCertificate
from spc.keys.trustfile import MAX_TRUST_FILE_SIZE
from spc.tap import Options, _listenFailure, makeService
from tests.test_files import ANOTHER_USER
from tests.test_identity import OTHER_FINGERPRINT, writeFile

UsageError = usage.UsageError


def makeOptions(*argv: str) -> Options:
    """
    Parse C{argv} with a new L{Options}.
    """
    options = Options()
    options.parseOptions(list(argv))
    return options


class PortsTests(SynchronousTestCase):
    """
    C{--ports} becomes one TCP endpoint description per port.
    """

    def test_range(self) -> None:
        """
        A range gives every port from low to high, inclusive, on 127.0.0.1.
        """
        options = makeOptions("--ports", "9000-9003", "--inbox", "X")
        self.assertEqual(options["ports"], [9000, 9001, 9002, 9003])
        self.assertEqual(
            options["endpoints"],
            [
                "tcp:9000:interface=127.0.0.1",
                "tcp:9001:interface=127.0.0.1",
                "tcp:9002:interface=127.0.0.1",
                "tcp:9003:interface=127.0.0.1",
            ],
        )

    def test_list(self) -> None:
        """
        A comma-separated list keeps its order; ranges and single ports mix.
        """
        self.assertEqual(
            makeOptions("--ports", "9005,9000,9001", "--inbox", "X")["ports"],
            [9005, 9000, 9001],
        )
        self.assertEqual(
            makeOptions("--ports", "9000-9001, 9005", "--inbox", "X")["ports"],
            [9000, 9001, 9005],
        )

    def test_singleAndExtremes(self) -> None:
        """
        A single port, and the ports 1 and 65535, are accepted.
        """
        self.assertEqual(makeOptions("--ports", "1", "--inbox", "X")["ports"], [1])
        self.assertEqual(
            makeOptions("--ports", "65535", "--inbox", "X")["ports"], [65535]
        )

    def test_maximumChannels(self) -> None:
        """
        Exactly L{MAX_CHANNELS} ports are accepted.
        """
        options = makeOptions(
            "--ports", f"9000-{9000 + MAX_CHANNELS - 1}", "--inbox", "X"
        )
        self.assertEqual(len(options["endpoints"]), MAX_CHANNELS)

    def assertRejected(self, *argv: str, mentioning: str) -> None:
        """
        Parsing C{argv} raises L{usage.UsageError} whose message contains
        C{mentioning}.
        """
        error = self.assertRaises(usage.UsageError, makeOptions, *argv)
        self.assertIn(mentioning, str(error))

    def test_badSyntax(self) -> None:
        """
        Anything but decimal ports, ranges and commas is a usage error.
        """
        for spec in [
            "",
            "abc",
            "9000-",
            "-9000",
            "9000,",
            "9000-9001-9002",
            "9000:9003",
            "+9000",
            "9000.0",
            "\u0669\u0660\u0660\u0660",  # Arabic-Indic digits
        ]:
            self.assertRejected(
                "--ports", spec, "--inbox", "X", mentioning="cannot parse"
            )

    def test_reversedRange(self) -> None:
        """
        A range whose low end is above its high end is a usage error.
        """
        self.assertRejected(
            "--ports", "9003-9000", "--inbox", "X", mentioning="reversed range"
        )

    def test_outOfRange(self) -> None:
        """
        Ports 0 and above 65535 are usage errors, alone or in a range.
        """
        for spec in ["0", "65536", "0-3", "65530-65536", "99999999999999999999"]:
            self.assertRejected(
                "--ports", spec, "--inbox", "X", mentioning="not in 1..65535"
            )

    def test_tooMany(self) -> None:
        """
        More than L{MAX_CHANNELS} ports is a usage error.
        """
        self.assertRejected(
            "--ports",
            f"9000-{9000 + MAX_CHANNELS}",
            "--inbox",
            "X",
            mentioning=f"at most {MAX_CHANNELS}",
        )
        self.assertRejected(
            "--ports", "1-65535", "--inbox", "X", mentioning=f"at most {MAX_CHANNELS}"
        )

    def test_duplicates(self) -> None:
        """
        A port given twice, in a list, overlapping ranges or two C{--ports},
        is a usage error naming it.
        """
        for argv in [
            ["--ports", "9000,9001,9000"],
            ["--ports", "9000-9003,9002"],
            ["--ports", "9000", "--ports", "9000"],
        ]:
            self.assertRejected(*argv, "--inbox", "X", mentioning="repeated")
        error = self.assertRaises(
            usage.UsageError, makeOptions, "--ports", "9000-9003,9002", "--inbox", "X"
        )
        self.assertIn("9002", str(error))


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


class ListenTests(SynchronousTestCase):
    """
    C{--listen} adds a server endpoint description, checked as it is parsed.
    """

    def test_repeatable(self) -> None:
        """
        Each C{--listen} is one channel, in the order given.
        """
        options = makeOptions(
            "--listen", "tcp:7001", "--listen", "tcp6:7000", "--inbox", "X"
        )
        self.assertEqual(options["listen"], ["tcp:7001", "tcp6:7000"])
        self.assertEqual(options["endpoints"], ["tcp:7001", "tcp6:7000"])

    def test_combinedWithPorts(self) -> None:
        """
        With both C{--ports} and C{--listen}, the ports come first, wherever
        the options appear on the command line.
        """
        options = makeOptions(
            "--listen", "tcp:7000", "--ports", "9000-9001", "--inbox", "X"
        )
        self.assertEqual(
            options["endpoints"],
            [
                "tcp:9000:interface=127.0.0.1",
                "tcp:9001:interface=127.0.0.1",
                "tcp:7000",
            ],
        )

    def test_countsTowardsMaximum(self) -> None:
        """
        C{--listen} entries count towards L{MAX_CHANNELS} with the ports.
        """
        error = self.assertRaises(
            usage.UsageError,
            makeOptions,
            "--ports",
            f"9000-{9000 + MAX_CHANNELS - 1}",
            "--listen",
            "tcp:7000",
            "--inbox",
            "X",
        )
        self.assertIn(f"at most {MAX_CHANNELS}", str(error))

    def test_invalid(self) -> None:
        """
        A description Twisted cannot parse is a usage error quoting it.
        """
        for description in ["bogus:1", "tcp:notaport", "tcp"]:
            error = self.assertRaises(
                usage.UsageError,
                makeOptions,
                "--listen",
                description,
                "--inbox",
                "X",
            )
            self.assertIn(repr(description), str(error))

    def test_duplicate(self) -> None:
        """
        The same description twice is a usage error.
        """
        self.assertRaises(
            usage.UsageError,
            makeOptions,
            "--listen",
            "tcp:7000",
            "--listen",
            "tcp:7000",
            "--inbox",
            "X",
        )


class TLSListenTests(SynchronousTestCase):
    """
    C{--listen ssl:...} is spc's own TLS 1.3 listener (L{spc.transport.tls}), checked
    when the command line is parsed.
    """

    def test_parsed(self) -> None:
        """
        The key and certificate are read while parsing, and the description
        is one channel like any other.
        """
        written = writeCertificate("spc.test", self.mktemp())
        description = (
            f"ssl:9443:privateKey={written.keyPath}:certKey={written.certificatePath}"
        )
        options = makeOptions("--listen", description, "--inbox", "X")
        self.assertEqual(options["endpoints"], [description])
        self.assertEqual(options["tls"][description].port, 9443)

    def test_kindWithoutCase(self) -> None:
        """
        C{SSL:} is spc's listener too, not Twisted's (which would accept
        TLS older than 1.3): endpoint kinds are read without case, as
        Twisted reads them.
        """
        written = writeCertificate("spc.test", self.mktemp())
        description = (
            f"SSL:9443:privateKey={written.keyPath}:certKey={written.certificatePath}"
        )
        options = makeOptions("--listen", description, "--inbox", "X")
        self.assertEqual(options["tls"][description].port, 9443)

    def test_usageErrors(self) -> None:
        """
        A missing key, a certificate of another key, or a parameter spc's
        listener does not take is a usage error naming it.
        """
        one = writeCertificate("one.test", self.mktemp())
        two = writeCertificate("two.test", self.mktemp())
        cases = [
            ("ssl:9443:privateKey=/nonexistent.key", "/nonexistent.key"),
            (f"ssl:9443:privateKey={one.keyPath}:certKey={two.certificatePath}",
             "is not for the key"),
            (f"ssl:9443:privateKey={one.keyPath}:sslmethod=TLSv1_METHOD", "privateKey=KEY"),
            ("ssl:9443", "privateKey=KEY"),
        ]
        for description, fragment in cases:
            error = self.assertRaises(
                usage.UsageError, makeOptions, "--listen", description, "--inbox", "X"
            )
            self.assertIn(fragment, str(error))

    def test_keyReadableByOthers(self) -> None:
        """
        A TLS key that other users may read is refused, as the identity is:
        it must be treated as leaked.
        """
        written = writeCertificate("spc.test", self.mktemp())
        os.chmod(written.keyPath, 0o640)
        error = self.assertRaises(
            usage.UsageError, makeOptions,
            "--listen", f"ssl:9443:privateKey={written.keyPath}:certKey={written.certificatePath}",
            "--inbox", "X",
        )
        self.assertIn("chmod 600", str(error))


class RequiredAndDefaultTests(SynchronousTestCase):
    """
    Required options, and defaults computed when parsing ends.
    """

    def setUp(self) -> None:
        saved = os.environ.get("SPC_HOME")

        def restore() -> None:
            if saved is None:
                os.environ.pop("SPC_HOME", None)
            else:
                os.environ["SPC_HOME"] = saved

        self.addCleanup(restore)

    def test_nothingToListenOn(self) -> None:
        """
        Without C{--ports} or C{--listen} there is nothing to do.
        """
        error = self.assertRaises(usage.UsageError, makeOptions, "--inbox", "X")
        self.assertIn("--ports", str(error))

    def test_inboxRequired(self) -> None:
        """
        C{--inbox} is required.
        """
        error = self.assertRaises(usage.UsageError, makeOptions, "--ports", "9000")
        self.assertIn("--inbox", str(error))

    def test_keyDirFromEnvironment(self) -> None:
        """
        The key directory defaults to C{$SPC_HOME}, read when parsing, and
        the authorized keys file to C{authorized_keys} in it.
        """
        os.environ["SPC_HOME"] = "/somewhere/spc"
        options = makeOptions("--ports", "9000", "--inbox", "X")
        self.assertEqual(options["key-dir"], "/somewhere/spc")
        self.assertEqual(
            options["authorized-keys"],
            os.path.join("/somewhere/spc", "authorized_keys"),
        )

    def test_keyDirExpandsHome(self) -> None:
        """
        A C{~} in C{$SPC_HOME} is expanded, as C{spc keygen} expands it, so
        the daemon and the command line agree on the key directory.
        """
        os.environ["SPC_HOME"] = os.path.join("~", "spc-keys")
        options = makeOptions("--ports", "9000", "--inbox", "X")
        self.assertEqual(
            options["key-dir"], os.path.expanduser(os.path.join("~", "spc-keys"))
        )

    def test_keyDirInHome(self) -> None:
        """
        Without C{$SPC_HOME} (or with it empty) the key directory is
        C{~/.config/spc}.
        """
        for value in [None, ""]:
            if value is None:
                os.environ.pop("SPC_HOME", None)
            else:
                os.environ["SPC_HOME"] = value
            expected = os.path.expanduser(os.path.join("~", ".config", "spc"))
            options = makeOptions("--ports", "9000", "--inbox", "X")
            self.assertEqual(options["key-dir"], expected)

    def test_explicitPaths(self) -> None:
        """
        C{--key-dir}, C{--authorized-keys} and C{--allow-any-client} are
        kept as given.
        """
        options = makeOptions(
            "--ports",
            "9000",
            "--inbox",
            "in",
            "--key-dir",
            "keys",
            "--authorized-keys",
            "clients",
            "--allow-any-client",
        )
        self.assertEqual(
            (
                options["inbox"],
                options["key-dir"],
                options["authorized-keys"],
                options["allow-any-client"],
            ),
            ("in", "keys", "clients", True),
        )

    def test_authorizedKeysFollowsKeyDir(self) -> None:
        """
        Without C{--authorized-keys}, the file is in the given C{--key-dir}.
        """
        options = makeOptions("--ports", "9000", "--inbox", "X", "--key-dir", "k")
        self.assertEqual(
            options["authorized-keys"], os.path.join("k", "authorized_keys")
        )
        self.assertFalse(options["allow-any-client"])


def keyDirWithIdentity(case) -> str:
    """
    A key directory holding the module's host identity.
    """
    keyDir = case.mktemp()
    saveIdentity(HOST, keyDir)
    return keyDir


HOST = generateIdentity()


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
        self.keyDir = keyDirWithIdentity(self)
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
