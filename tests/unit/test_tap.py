"""
Tests for L{spc.tap}: the daemon's command line.
"""

from __future__ import annotations

import os

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from spc.cli.options import MAX_CHANNELS
from spc.keys.identity import generateIdentity, saveIdentity
from spc.keys.tlscert import writeCertificate
from spc.tap import Options


def makeOptions(*argv: str) -> Options:
    """
    Parse C{argv} with a new L{Options}.
    """
    options = Options()
    options.parseOptions(list(argv))
    return options


def keyDirWithIdentity(case) -> str:
    """
    A key directory holding the module's host identity.
    """
    keyDir = case.mktemp()
    saveIdentity(HOST, keyDir)
    return keyDir


HOST = generateIdentity()


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
