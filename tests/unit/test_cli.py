"""
Tests for L{spc.cli.main}, the C{spc} command, driven through L{main} with
in-memory streams.
"""

from __future__ import annotations

import io
import os
import sys

from twisted.internet import protocol
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.testing import MemoryReactor
from twisted.trial import unittest

import spc
from spc.cli import keys, main
from spc.cli.command import Command
from spc.cli.options import MAX_CHANNELS, ParseOnlyReactor
from spc.cli.send import EXIT_SKIPPED
from spc.client.send import SendSummary, clientEndpoints
from spc.errors import (
    FileFailed,
    FileRefused,
    MessageAbandoned,
    ServerShuttingDown,
    SessionClosed,
)
from spc.keys import identity
from spc.keys.identity import Identity
from spc.protocol import filerecords
from spc.transport import tls

_identities: dict[int, Identity] = {}


def sharedIdentity(index: int) -> Identity:
    """
    RSA identities generated once per test run, since key generation is slow.
    """
    if index not in _identities:
        _identities[index] = identity.generateIdentity()
    return _identities[index]


class CLITestCase(unittest.SynchronousTestCase):
    """
    Run C{spc} in-process and keep what it printed.
    """

    def setUp(self) -> None:
        self.keyDir = os.path.join(self.mktemp(), "keys")
        self.environ = {"SPC_HOME": os.path.join(self.mktemp(), "home")}

    def spc(self, *argv: str) -> int:
        """
        Run C{spc argv} and record C{self.out} and C{self.err}.
        """
        stdout, stderr = io.StringIO(), io.StringIO()
        code = main.main(list(argv), stdout=stdout, stderr=stderr, environ=self.environ)
        self.out, self.err = stdout.getvalue(), stderr.getvalue()
        return code

    def useIdentity(self, index: int) -> None:
        """
        Make C{spc keygen} produce a pre-generated identity.
        """
        self.patch(keys, "generateIdentity", lambda bits: sharedIdentity(index))

    def forbidKeygen(self) -> None:
        """
        Fail the test if C{spc keygen} generates a key.
        """

        def refuse(bits: int) -> Identity:
            self.fail("a key was generated")

        self.patch(keys, "generateIdentity", refuse)

    def assertOneErrorLine(self, *fragments: str) -> None:
        self.assertEqual(self.out, "")
        self.assertEqual(self.err.count("\n"), 1, self.err)
        self.assertTrue(self.err.startswith("spc: "), self.err)
        self.assertNotIn("Traceback", self.err)
        for fragment in fragments:
            self.assertIn(fragment, self.err)

    def assertUsageError(self, command: str, *fragments: str) -> None:
        lines = self.err.splitlines()
        self.assertEqual(len(lines), 2, self.err)
        self.assertTrue(lines[0].startswith("spc: "), self.err)
        self.assertEqual(lines[1], f"Try '{command} --help' for more information.")
        for fragment in fragments:
            self.assertIn(fragment, lines[0])


class KeygenTests(CLITestCase):
    """
    Tests for C{spc keygen}.
    """

    def test_writesFilesAndPrintsFingerprint(self) -> None:
        """
        keygen writes a loadable identity and prints both paths and the
        fingerprint.
        """
        self.assertEqual(self.spc("keygen", "--key-dir", self.keyDir), 0)
        written = identity.loadIdentity(self.keyDir)
        private = os.path.join(self.keyDir, "id_rsa")
        self.assertEqual(
            self.out,
            f"Wrote {private} and {private}.pub\nFingerprint: {written.fingerprint}\n",
        )
        self.assertEqual(self.err, "")
        self.assertEqual(written.privateKey.key_size, 2048)

    def test_refusesOverwrite(self) -> None:
        """
        A second keygen fails with exit 1 and one line that mentions
        --force, before generating a key. The identity is unchanged.
        """
        self.useIdentity(0)
        self.assertEqual(self.spc("keygen", "--key-dir", self.keyDir), 0)
        self.forbidKeygen()
        self.assertEqual(self.spc("keygen", "--key-dir", self.keyDir), 1)
        self.assertOneErrorLine("--force", os.path.join(self.keyDir, "id_rsa"))
        self.assertEqual(
            identity.loadIdentity(self.keyDir).fingerprint, sharedIdentity(0).fingerprint
        )

    def test_force(self) -> None:
        """
        keygen --force replaces the identity.
        """
        self.useIdentity(0)
        self.assertEqual(self.spc("keygen", "--key-dir", self.keyDir), 0)
        self.useIdentity(1)
        self.assertEqual(self.spc("keygen", "--key-dir", self.keyDir, "--force"), 0)
        self.assertIn(sharedIdentity(1).fingerprint, self.out)
        self.assertEqual(
            identity.loadIdentity(self.keyDir).fingerprint, sharedIdentity(1).fingerprint
        )

    def test_spcHome(self) -> None:
        """
        Without --key-dir, keygen writes to $SPC_HOME.
        """
        self.useIdentity(0)
        self.assertEqual(self.spc("keygen"), 0)
        home = self.environ["SPC_HOME"]
        self.assertIn(f"Wrote {os.path.join(home, 'id_rsa')}", self.out)
        loaded = identity.loadIdentity(home)
        self.assertEqual(loaded.fingerprint, sharedIdentity(0).fingerprint)

    def test_bits(self) -> None:
        """
        --bits passes the size on; sizes outside 2048..4096 and non-numbers
        are usage errors (exit 2) and generate nothing.
        """
        sizes = []

        def generate(bits: int) -> Identity:
            sizes.append(bits)
            return sharedIdentity(0)

        self.patch(keys, "generateIdentity", generate)
        self.assertEqual(self.spc("keygen", "--key-dir", self.keyDir, "--bits", "3072"), 0)
        self.assertEqual(sizes, [3072])
        self.forbidKeygen()
        for bad in ["1024", "8192", "abc", "", "9" * 5000]:
            self.assertEqual(self.spc("keygen", "--key-dir", self.keyDir, "--bits", bad), 2)
            self.assertUsageError("spc keygen", "--bits")

    def test_keyDirIsAFile(self) -> None:
        """
        An operating-system error (the key directory is a file) is one line,
        exit 1.
        """
        self.useIdentity(0)
        os.makedirs(os.path.dirname(self.keyDir))
        with open(self.keyDir, "w"):
            pass
        self.assertEqual(self.spc("keygen", "--key-dir", self.keyDir), 1)
        self.assertOneErrorLine(self.keyDir)


class FingerprintTests(CLITestCase):
    """
    Tests for C{spc fingerprint}.
    """

    def setUp(self) -> None:
        super().setUp()
        self.useIdentity(0)
        self.assertEqual(self.spc("keygen", "--key-dir", self.keyDir), 0)
        self.keygenOutput = self.out

    def test_byKeyDir(self) -> None:
        """
        fingerprint --key-dir prints only the fingerprint that keygen
        printed.
        """
        self.assertEqual(self.spc("fingerprint", "--key-dir", self.keyDir), 0)
        self.assertEqual(self.out, sharedIdentity(0).fingerprint + "\n")
        self.assertIn(f"Fingerprint: {self.out}", self.keygenOutput)

    def test_byFile(self) -> None:
        """
        fingerprint PUBKEY_FILE prints the same fingerprint.
        """
        path = os.path.join(self.keyDir, "id_rsa.pub")
        self.assertEqual(self.spc("fingerprint", path), 0)
        self.assertEqual(self.out, sharedIdentity(0).fingerprint + "\n")

    def test_spcHome(self) -> None:
        """
        Without arguments, the identity in $SPC_HOME is used.
        """
        self.environ["SPC_HOME"] = self.keyDir
        self.assertEqual(self.spc("fingerprint"), 0)
        self.assertEqual(self.out, sharedIdentity(0).fingerprint + "\n")

    def test_missingKeyDir(self) -> None:
        """
        A missing key directory is one line, exit 1, with the keygen hint.
        """
        missing = os.path.join(self.mktemp(), "none")
        self.assertEqual(self.spc("fingerprint", "--key-dir", missing), 1)
        self.assertOneErrorLine("does not exist", f"spc keygen --key-dir {missing}")

    def test_notAPublicKey(self) -> None:
        """
        Pointing at the private key is one line, exit 1.
        """
        self.assertEqual(self.spc("fingerprint", os.path.join(self.keyDir, "id_rsa")), 1)
        self.assertOneErrorLine("not a PEM public key")

    def test_bothSources(self) -> None:
        """
        --key-dir and PUBKEY_FILE together, or two files, are usage errors.
        """
        path = os.path.join(self.keyDir, "id_rsa.pub")
        self.assertEqual(self.spc("fingerprint", "--key-dir", self.keyDir, path), 2)
        self.assertUsageError("spc fingerprint", "not both")
        self.assertEqual(self.spc("fingerprint", path, path), 2)
        self.assertUsageError("spc fingerprint")


class TopLevelTests(CLITestCase):
    """
    Tests for the C{spc} command as a whole: help, version, usage errors
    and the console-script entry point.
    """

    def test_help(self) -> None:
        """
        --help prints the commands to stdout and exits 0, at both levels.
        """
        self.assertEqual(self.spc("--help"), 0)
        self.assertIn("keygen", self.out)
        self.assertIn("fingerprint", self.out)
        self.assertTrue(self.out.startswith("Usage: spc "))
        self.assertEqual(self.err, "")
        self.assertEqual(self.spc("keygen", "--help"), 0)
        self.assertTrue(self.out.startswith("Usage: spc keygen "))
        self.assertIn("--force", self.out)

    def test_version(self) -> None:
        """
        --version prints the spc version.
        """
        self.assertEqual(self.spc("--version"), 0)
        self.assertEqual(self.out, f"spc {spc.__version__}\n")

    def test_usageErrors(self) -> None:
        """
        An unknown command, an unknown option or no command at all is one
        line plus a --help hint, exit 2.
        """
        self.assertEqual(self.spc("frobnicate"), 2)
        self.assertUsageError("spc", "frobnicate")
        self.assertEqual(self.spc("--frob"), 2)
        self.assertUsageError("spc", "frob")
        self.assertEqual(self.spc("keygen", "--frob"), 2)
        self.assertUsageError("spc keygen", "frob")
        self.assertEqual(self.spc(), 2)
        self.assertUsageError("spc", "no command")

    def test_run(self) -> None:
        """
        L{main.run} exits with L{main.main}'s code, using the process's argv
        and streams.
        """
        stdout = io.StringIO()
        self.patch(sys, "argv", ["spc", "--version"])
        self.patch(sys, "stdout", stdout)
        error = self.assertRaises(SystemExit, main.run)
        self.assertEqual(error.code, 0)
        self.assertEqual(stdout.getvalue(), f"spc {spc.__version__}\n")


def parseCommand(*argv: str) -> Command:
    """
    Parse C{spc argv} and return the subcommand's options, without running
    it.
    """
    options = main.SPCOptions()
    options.parseOptions(list(argv))
    return options.subOptions


class SendOptionsTests(CLITestCase):
    """
    Tests for the command line of C{spc send}: what is checked before any
    connection is made. Delivery itself is in L{tests.integration.test_send} and
    L{tests.integration.test_endtoend}.
    """

    def test_missingMessage(self) -> None:
        """
        Nothing to send is a usage error (exit 2) naming --message.
        """
        self.assertEqual(self.spc("send", "--server", "127.0.0.1", "--ports", "9000"), 2)
        self.assertUsageError("spc send", "nothing to send", "--message")

    def test_optionsAfterFiles(self) -> None:
        """
        Options may follow the files, as with GNU tools, values included;
        after C{--} everything is a file, even what looks like an option.
        """
        folder = self.mktemp()
        os.makedirs(folder)
        first, dashed = os.path.join(folder, "a.bin"), os.path.join(folder, "--no-progress")
        for path in (first, dashed):
            with open(path, "wb") as f:
                f.write(b"x")
        options = parseCommand(
            "send", first, "--server", "127.0.0.1", "--ports", "9000", "--no-progress",
            "--message", "--not-an-option",
        )
        self.assertEqual(options["paths"], [first])
        self.assertTrue(options["no-progress"])
        self.assertEqual(options["messages"], [b"--not-an-option"])
        options = parseCommand(
            "send", "--server", "127.0.0.1", "--ports", "9000", "--", first, dashed,
        )
        self.assertEqual(options["paths"], [first, dashed])
        self.assertFalse(options["no-progress"])

    def test_portsWithoutServer(self) -> None:
        """
        --ports without --server is a usage error.
        """
        self.assertEqual(self.spc("send", "--ports", "9000-9003", "--message", "x"), 2)
        self.assertUsageError("spc send", "--ports needs --server")

    def test_noDestination(self) -> None:
        """
        Neither --server/--ports nor --connect is a usage error.
        """
        self.assertEqual(self.spc("send", "--message", "x"), 2)
        self.assertUsageError("spc send", "--connect")
        self.assertEqual(self.spc("send", "--server", "127.0.0.1", "--message", "x"), 2)
        self.assertUsageError("spc send", "--server HOST --ports PORTS")

    def test_badPorts(self) -> None:
        """
        A malformed or reversed --ports is a usage error.
        """
        for ports in ["9003-9000", "abc", "0", "70000"]:
            code = self.spc("send", "--server", "h", "--ports", ports, "--message", "x")
            self.assertEqual(code, 2, ports)
            self.assertUsageError("spc send", "--ports")

    def test_tooManyChannels(self) -> None:
        """
        More channels than a daemon can serve is a usage error.
        """
        argv = ["send", "--server", "h", "--ports", "9000-9016", "--message", "x"]
        self.assertEqual(self.spc(*argv), 2)
        self.assertUsageError("spc send", f"at most {MAX_CHANNELS} channels")
        argv[4] = "9000-9015"
        self.assertEqual(len(parseCommand(*argv)["endpoints"]), MAX_CHANNELS)

    def test_suitesLengthMismatch(self) -> None:
        """
        A --suites map must name one suite per channel.
        """
        argv = ["send", "--server", "h", "--ports", "9000-9003", "--message", "x"]
        self.assertEqual(self.spc(*argv, "--suites", "aes-256-cbc,chacha20"), 2)
        self.assertUsageError("spc send", "one suite per channel")

    def test_unknownSuite(self) -> None:
        """
        An unknown suite name is a usage error naming the known suites.
        """
        argv = ["send", "--server", "h", "--ports", "9000", "--message", "x"]
        self.assertEqual(self.spc(*argv, "--suites", "rot13"), 2)
        self.assertUsageError("spc send", "--suites", "rot13", "ChaCha20-Poly1305")

    def test_suites(self) -> None:
        """
        --suites is parsed into the suite of each channel.
        """
        from spc.crypto.suites import parseSuiteMap

        text = "aes-256-gcm,chacha20,aes-256-cbc,chacha20"
        options = parseCommand(
            "send", "--server", "h", "--ports", "9000-9003", "--message", "x", "--suites", text
        )
        self.assertEqual(options["suites"], parseSuiteMap(text))

    def test_serverAndPorts(self) -> None:
        """
        --server and --ports give one C{tcp:HOST:PORT} endpoint per port, and
        the server key is pinned under the host and the first port.
        """
        options = parseCommand(
            "send", "--server", "127.0.0.1", "--ports", "9000-9002", "--message", "x"
        )
        self.assertEqual(
            options["endpoints"],
            ["tcp:127.0.0.1:9000", "tcp:127.0.0.1:9001", "tcp:127.0.0.1:9002"],
        )
        self.assertEqual(options["host-port"], "127.0.0.1:9000")

    def test_ipv6Server(self) -> None:
        """
        An IPv6 --server is bracketed in the endpoints and in the
        known_hosts name.
        """
        options = parseCommand(
            "send", "--server", "::1", "--ports", "9000,9005", "--message", "x"
        )
        self.assertEqual(options["endpoints"], ["tcp:[::1]:9000", "tcp:[::1]:9005"])
        self.assertEqual(options["host-port"], "[::1]:9000")

    def test_bracketedIPv6Server(self) -> None:
        """
        C{--server [::1]}, the form the daemon's C{--interface} also
        accepts, means the same as C{--server ::1}.
        """
        options = parseCommand(
            "send", "--server", "[::1]", "--ports", "9000,9005", "--message", "x"
        )
        self.assertEqual(options["endpoints"], ["tcp:[::1]:9000", "tcp:[::1]:9005"])
        self.assertEqual(options["host-port"], "[::1]:9000")

    def test_hostNameCanonical(self) -> None:
        """
        The known_hosts name of a server is lower-cased, so one server has
        one entry whatever case the user types.
        """
        options = parseCommand("send", "--server", "Example.COM", "--ports", "9000", "--message", "x")
        self.assertEqual(options["host-port"], "example.com:9000")

    def test_badServer(self) -> None:
        """
        A --server that is neither a host name nor an IP address is a usage
        error (exit 2), not a traceback.
        """
        self.assertEqual(
            self.spc("send", "--server", "bad!host", "--ports", "9000", "--message", "x"), 2
        )
        self.assertUsageError("spc send", "bad!host")

    def test_portsThenConnect(self) -> None:
        """
        --connect endpoints come after the --ports channels; the key is still
        pinned under --server and the first port.
        """
        options = parseCommand(
            "send", "--server", "127.0.0.1", "--ports", "9000",
            "--connect", "tcp:10.0.0.1:9100", "--message", "x",
        )
        self.assertEqual(options["endpoints"], ["tcp:127.0.0.1:9000", "tcp:10.0.0.1:9100"])
        self.assertEqual(options["host-port"], "127.0.0.1:9000")

    def test_connectCheckedOnParseOnlyReactor(self) -> None:
        """
        --connect and --tls-fingerprint are checked by building their
        endpoints on a L{ParseOnlyReactor}, with no warning from Twisted;
        an endpoint built on it cannot connect.
        """
        parseCommand(
            "send", "--connect", "tcp:example.com:9000",
            "--connect", "tls:example.com:9443", "--tls-fingerprint", "SHA256:" + "A" * 43,
            "--message", "x",
        )
        self.assertEqual(self.flushWarnings(), [])
        endpoint = HostnameEndpoint(ParseOnlyReactor(), "example.com", 9000)
        self.assertRaises(RuntimeError, endpoint.connect, protocol.Factory())

    def test_connectHostPort(self) -> None:
        """
        With --connect alone, the known_hosts name comes from the first
        endpoint's host and port.
        """
        options = parseCommand(
            "send", "--connect", "tcp:Example.COM:9000", "--connect", "tcp:example.com:9001",
            "--message", "x",
        )
        self.assertEqual(options["endpoints"], ["tcp:Example.COM:9000", "tcp:example.com:9001"])
        self.assertEqual(options["host-port"], "example.com:9000")

    def test_connectWithServer(self) -> None:
        """
        With --server and --connect (no --ports), the key is pinned under
        --server and the first endpoint's port.
        """
        options = parseCommand(
            "send", "--server", "10.0.0.1", "--connect", "tcp:relay.example:9000",
            "--message", "x",
        )
        self.assertEqual(options["host-port"], "10.0.0.1:9000")

    def test_connectIPv6(self) -> None:
        """
        C{--connect tcp:[ADDRESS]:PORT}, which the sender accepts
        (L{spc.client.send.clientEndpoints}), gives the bracketed known_hosts name.
        """
        options = parseCommand("send", "--connect", "tcp:[::1]:9000", "--message", "x")
        self.assertEqual(options["endpoints"], ["tcp:[::1]:9000"])
        self.assertEqual(options["host-port"], "[::1]:9000")

    def test_connectWithoutHostPort(self) -> None:
        """
        When the server's host and port cannot be told from --connect, the
        user is told to give --server and --ports.
        """
        self.assertEqual(self.spc("send", "--connect", "unix:path=/tmp/s", "--message", "x"), 2)
        self.assertUsageError("spc send", "--server and --ports")

    def test_connectPortOutOfRange(self) -> None:
        """
        A --connect port outside 1..65535 is a usage error, not a
        traceback.
        """
        self.assertEqual(self.spc("send", "--connect", "tcp:h:70000", "--message", "x"), 2)
        self.assertUsageError("spc send", "70000")

    def test_connectTLS(self) -> None:
        """
        C{--connect tls:HOST:PORT} is pinned in known_hosts under its host
        and port; C{--tls-fingerprint} is kept in canonical form.
        """
        pin = "SHA256:" + "A" * 43
        options = parseCommand(
            "send", "--connect", "tls:spc.example:9443", "--tls-fingerprint", pin,
            "--message", "x",
        )
        self.assertEqual(options["host-port"], "spc.example:9443")
        self.assertEqual(options["tls-fingerprints"], [pin])

    def test_connectKindsWithoutCase(self) -> None:
        """
        Endpoint kinds are read without case, as Twisted reads them: C{TLS:}
        is spc's TLS, with its pin; Twisted's C{ssl:} client, which checks
        no certificate, is refused in any case.
        """
        pin = "SHA256:" + "A" * 43
        options = parseCommand(
            "send", "--connect", "TLS:spc.example:9443", "--tls-fingerprint", pin,
            "--message", "x",
        )
        self.patch(tls, "clientEndpoint", lambda reactor, text, pins: (text, pins))
        self.assertEqual(
            clientEndpoints(MemoryReactor(), options["endpoints"], [pin]),
            [("tls:spc.example:9443", [pin])],
        )
        for kind in ("ssl", "SSL"):
            self.assertEqual(
                self.spc("send", "--connect", f"{kind}:h:9443", "--message", "x"), 2
            )
            self.assertUsageError("spc send", "use tls:HOST:PORT")

    def test_connectEscapedKind(self) -> None:
        """
        C{--connect 's\\sl:HOST:PORT'}, which Twisted's parser reads as its
        unchecked C{ssl:} client, is a usage error naming the kinds spc
        connects with.
        """
        self.assertEqual(
            self.spc("send", "--connect", "s\\sl:h:9443", "--message", "x"), 2
        )
        self.assertUsageError("spc send", "tcp:, tls:, unix:")

    def test_tlsUsageErrors(self) -> None:
        """
        A bad TLS fingerprint, one without a tls: channel, one with
        trustRoots=, a tls: description spc does not know, or trust roots
        that cannot be read are usage errors naming the problem.
        """
        pin = "SHA256:" + "A" * 43
        cases = [
            (["--connect", "tls:h:9443", "--tls-fingerprint", "SHA256:nope"], "--tls-fingerprint"),
            (["--server", "h", "--ports", "9000", "--tls-fingerprint", pin], "tls:HOST:PORT"),
            (["--connect", "tls:h:9443:trustRoots=/nonexistent", "--tls-fingerprint", pin],
             "/nonexistent"),
            (["--connect", "tls:h:9443:timeout=3"], "tls:HOST:PORT[:trustRoots=PATH]"),
        ]
        for args, fragment in cases:
            self.assertEqual(self.spc("send", *args, "--message", "x"), 2, args)
            self.assertUsageError("spc send", fragment)

    def test_messages(self) -> None:
        """
        Each --message is one message, in order, encoded as UTF-8.
        """
        options = parseCommand(
            "send", "--server", "h", "--ports", "9000",
            "--message", "hello", "--message", "wörld", "--message", "",
        )
        self.assertEqual(options["messages"], [b"hello", "wörld".encode("utf-8"), b""])

    def test_messageNotUTF8(self) -> None:
        """
        Item 15: a --message whose bytes are not UTF-8 is sent as those
        bytes (the daemon stores it as base64), not a traceback.
        """
        text = os.fsdecode(b"caf\xe9")
        options = parseCommand("send", "--server", "h", "--ports", "9000", "--message", text)
        self.assertEqual(options["messages"], [b"caf\xe9"])

    def test_unsendableNamedFile(self) -> None:
        """
        Items 15 and 17: a named file that cannot be sent (a name that is
        not UTF-8, a file that does not exist) is a usage error before any
        connection, naming the file.
        """
        folder = os.fsencode(os.path.abspath(self.mktemp()))
        os.makedirs(folder)
        path = os.fsdecode(folder + b"/caf\xe9.txt")
        with open(path, "wb") as f:
            f.write(b"x")
        self.assertEqual(self.spc("send", "--server", "h", "--ports", "9000", path), 2)
        self.assertUsageError("spc send", "caf\\xe9.txt", "not valid UTF-8")
        missing = os.fsdecode(folder + b"/missing.txt")
        self.assertEqual(self.spc("send", "--server", "h", "--ports", "9000", missing), 2)
        self.assertUsageError("spc send", "missing.txt", "does not exist")

    def test_folderLists(self) -> None:
        """
        A folder's files, folders to make and entries that cannot be sent
        are parsed before anything connects.
        """
        folder = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(folder, "empty"))
        os.mkfifo(os.path.join(folder, "pipe"))
        options = parseCommand(
            "send", "--server", "h", "--ports", "9000", folder, "--skip-unsendable"
        )
        name = os.path.basename(folder)
        self.assertEqual(options["files"], [])
        self.assertEqual(options["folders"], [f"{name}/empty"])
        self.assertEqual(options["skipped"], [(f"{name}/pipe", "it is a named pipe")])
        self.assertTrue(options["skip-unsendable"])

    def test_defaults(self) -> None:
        """
        Without trust options, known_hosts is used strictly: no pin, no
        --accept-new; no suite map means the default one.
        """
        options = parseCommand("send", "--server", "h", "--ports", "9000", "--message", "x")
        self.assertIsNone(options["server-fingerprint"])
        self.assertFalse(options["accept-new"])
        self.assertIsNone(options["suites"])
        self.assertIsNone(options["key-dir"])

    def test_help(self) -> None:
        """
        C{spc send --help} names the trust options.
        """
        self.assertEqual(self.spc("send", "--help"), 0)
        self.assertTrue(self.out.startswith("Usage: spc send "), self.out)
        for option in ["--server-fingerprint", "--accept-new", "--message", "--ports"]:
            self.assertIn(option, self.out)


class DemoOptionsTests(CLITestCase):
    """
    Tests for the command line of C{spc demo}; the demo itself is in
    L{tests.integration.test_demo}.
    """

    def test_default(self) -> None:
        """
        The demo uses four channels by default.
        """
        self.assertEqual(parseCommand("demo")["channels"], 4)

    def test_bounds(self) -> None:
        """
        One to sixteen channels are accepted.
        """
        for text, count in [("1", 1), ("16", 16), (str(MAX_CHANNELS), MAX_CHANNELS)]:
            self.assertEqual(parseCommand("demo", "--channels", text)["channels"], count)

    def test_outOfBounds(self) -> None:
        """
        Zero, too many, negative or non-numeric channel counts are usage
        errors (exit 2) naming the range.
        """
        for text in ["0", "17", "-1", "", "four", "4.0", "9" * 400]:
            self.assertEqual(self.spc("demo", "--channels", text), 2, text)
            self.assertUsageError("spc demo", "--channels must be 1 to 16")

    def test_nonASCIIDigits(self) -> None:
        """
        Characters that are digits but not decimal numbers (a superscript
        two) are a usage error, not a traceback.
        """
        for text in ["\u00b2", "\u2460"]:
            self.assertEqual(self.spc("demo", "--channels", text), 2, text)
            self.assertUsageError("spc demo", "--channels must be 1 to 16")


class SendReportTests(CLITestCase):
    """
    What C{spc send} prints once the daemon answered, and its exit code
    (issue 9, items 13, 14 and 17): every line a claim the user can act on.
    """

    SERVER = "SHA256:" + "S" * 43

    def report(self, summary: SendSummary, *argv: str, skipped=()) -> int:
        options = parseCommand("send", "--server", "h", "--ports", "9000", "--message", "x", *argv)
        options["skipped"] = list(skipped)
        stdout, stderr = io.StringIO(), io.StringIO()
        code = options._report(summary, main.Context(stdout, stderr, {}))
        self.out, self.err = stdout.getvalue(), stderr.getvalue()
        return code

    def summary(self, **kw) -> SendSummary:
        values = dict(messages=0, files=0, bytes=0, seconds=2.0, channels=4, server=self.SERVER)
        values.update(kw)
        return SendSummary(**values)

    def test_allDelivered(self) -> None:
        """
        Everything delivered: one line on stdout, with the bytes sent and
        the rate; nothing on stderr; exit 0.
        """
        code = self.report(self.summary(messages=1, files=2, bytes=4_000_000))
        self.assertEqual(code, 0)
        self.assertEqual(
            self.out,
            "Delivered 1 message(s) and 2 file(s), 3.8 MiB sent in 2.00 s (1.9 MiB/s), "
            f"over 4 channel(s) to {self.SERVER}\n",
        )
        self.assertEqual(self.err, "")

    def test_alreadyDelivered(self) -> None:
        """
        Item 13: a file the daemon held already is named, with its stored
        name, and counts no bytes and no rate.
        """
        code = self.report(
            self.summary(files=1, already=(("report.pdf", "report.pdf"),))
        )
        self.assertEqual(code, 0)
        self.assertEqual(
            self.out.splitlines(),
            [
                "report.pdf: already delivered as report.pdf",
                "Delivered 0 message(s) and 1 file(s) (1 already there), 0 B sent in "
                f"2.00 s, over 4 channel(s) to {self.SERVER}",
            ],
        )
        self.assertEqual(self.err, "")

    def test_partial(self) -> None:
        """
        Item 17: what was delivered on stdout; each item that was not, with
        the daemon's reason, and the count, on stderr; exit 4.
        """
        refused = FileRefused(
            "big.bin", filerecords.REFUSED_LIMIT, "over this sender's quota of unfinished files"
        )
        code = self.report(
            self.summary(messages=1, files=1, bytes=7, failed=(("big.bin", refused),))
        )
        self.assertEqual(code, 4)
        self.assertTrue(self.out.startswith("Delivered 1 message(s) and 1 file(s), 7 B"))
        self.assertEqual(
            self.err.splitlines(),
            [
                "spc: big.bin was not delivered: refused by the daemon: over this sender's "
                "quota of unfinished files",
                "spc: 2 of 3 items delivered",
            ],
        )

    def test_nothingDelivered(self) -> None:
        """
        With nothing delivered, stdout stays empty; every failure has its
        line, and the exit code is the first failure's.
        """
        failed = (
            ('message 1 ("x")', MessageAbandoned("message 0")),
            ("a.bin", FileFailed("a.bin", "changed while it was being sent")),
            ("b.bin", ServerShuttingDown()),
        )
        code = self.report(self.summary(failed=failed))
        self.assertEqual(code, 4)
        self.assertEqual(self.out, "")
        self.assertEqual(
            self.err.splitlines(),
            [
                'spc: message 1 ("x") was not delivered: the daemon could not deliver it',
                "spc: a.bin was not delivered: it changed while it was being sent",
                f"spc: b.bin was not delivered: {ServerShuttingDown()}",
                "spc: 0 of 3 items delivered",
            ],
        )

    def test_skipped(self) -> None:
        """
        Item 14: entries of a folder that were not sent are listed, with
        the count; the exit code is L{EXIT_SKIPPED} (5), or 0 with
        C{--skip-unsendable}, which still lists them.
        """
        skipped = [("album/pipe", "it is a named pipe")]
        summary = self.summary(files=2, folders=1, bytes=10)
        self.assertEqual(self.report(summary, skipped=skipped), EXIT_SKIPPED)
        self.assertEqual(EXIT_SKIPPED, 5)
        self.assertIn("Delivered 0 message(s) and 2 file(s), 1 empty folder(s), ", self.out)
        expected = [
            "spc: album/pipe was not sent: it is a named pipe",
            "spc: 3 of 4 items delivered",
        ]
        self.assertEqual(self.err.splitlines(), expected)
        self.assertEqual(self.report(summary, "--skip-unsendable", skipped=skipped), 0)
        self.assertEqual(self.err.splitlines(), expected)

    def test_peerTextCleaned(self) -> None:
        """
        A session's end that quotes the daemon's goodbye is shown without
        its control characters.
        """
        failed = (("a.bin", SessionClosed("the peer closed the session: \x1b[2Jbye\r")),)
        self.report(self.summary(failed=failed))
        self.assertIn("the peer closed the session: [2Jbye\n", self.err)
        self.assertNotIn("\x1b", self.err)

    def test_failureBeatsSkipped(self) -> None:
        """
        A failed item decides the exit code even when entries were skipped
        too.
        """
        failed = (("a.bin", FileFailed("a.bin", "arrived corrupt twice")),)
        code = self.report(self.summary(files=1, failed=failed), skipped=[("p", "it is a socket")])
        self.assertEqual(code, 4)
