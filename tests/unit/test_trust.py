"""
Tests for L{spc.keys.trust} and L{spc.addresses}: host names,
C{known_hosts}, C{authorized_keys} and the choice between them and their
overrides.
"""

from __future__ import annotations

import os
import re
import stat

from hypothesis import given, strategies as st
from twisted.trial import unittest

from spc import addresses
from spc.errors import (
    ConfigurationError,
    InsecurePath,
    ServerKeyChanged,
    TrustFileError,
    UnknownServerKey,
)
from spc.keys import trust, trustfile
from spc.keys.trust import AllowAny, AuthorizedKeys, KnownHosts, PinnedKey, TrustDecision
from tests.unit.test_identity import OTHER_FINGERPRINT, TEST_FINGERPRINT, writeFile


class HostPortTests(unittest.SynchronousTestCase):
    """
    Tests for L{addresses.formatHostPort} and L{addresses.parseHostPort}.
    """

    def test_format(self) -> None:
        """
        Host names are lower-cased, IPv6 addresses bracketed and shortened.
        """
        self.assertEqual(addresses.formatHostPort("Example.COM", 9000), "example.com:9000")
        self.assertEqual(addresses.formatHostPort("127.0.0.1", 1), "127.0.0.1:1")
        self.assertEqual(addresses.formatHostPort("0:0::1", 9000), "[::1]:9000")

    def test_parse(self) -> None:
        """
        Both forms parse to the canonical host and the port.
        """
        self.assertEqual(addresses.parseHostPort("[::1]:9000"), ("::1", 9000))
        self.assertEqual(addresses.parseHostPort("[Host]:22"), ("host", 22))
        self.assertEqual(addresses.parseHostPort("h.example:65535"), ("h.example", 65535))

    def test_parseRejects(self) -> None:
        """
        Missing or bad ports, bare IPv6 and odd host names are refused.
        """
        for bad in ["host", "host:", "host:0", "host:65536", "host:x", "::1:9000",
                    "[::1]9000", "[::1", ":9000", "ho/st:9000", "host:٣"]:
            self.assertRaises(ValueError, addresses.parseHostPort, bad)
        self.assertRaises(ValueError, addresses.formatHostPort, "host", 0)


KNOWN_HOSTS = f"""\
# servers I trust

example.com:9000 {TEST_FINGERPRINT}
   [::1]:9000\t{OTHER_FINGERPRINT}   \r
# a trailing comment
10.0.0.1:9000 {TEST_FINGERPRINT}
example.com:9000 {TEST_FINGERPRINT}
"""


class KnownHostsTests(unittest.SynchronousTestCase):
    """
    Tests for L{KnownHosts} and L{PinnedKey}, the client's trust sources.
    """

    def setUp(self) -> None:
        self.keyDir = self.mktemp()
        self.path = os.path.join(self.keyDir, "known_hosts")

    def test_parse(self) -> None:
        """
        Comments, blank lines, CRLF, surrounding whitespace, IPv6 and
        identical duplicates are accepted, and lookups use canonical names.
        """
        known = KnownHosts.parse(KNOWN_HOSTS, "kh")
        self.assertEqual(len(known), 3)
        self.assertEqual(known.lookup("EXAMPLE.com:9000"), TEST_FINGERPRINT)
        self.assertEqual(known.lookup("[0::1]:9000"), OTHER_FINGERPRINT)
        self.assertEqual(known.lookup("10.0.0.1:9000"), TEST_FINGERPRINT)
        self.assertIsNone(known.lookup("example.com:9001"))

    def test_malformed(self) -> None:
        """
        Each malformed line is reported with the path, its line number and
        a reason.
        """
        cases = [
            ("example.com:9000", "found 1 fields"),
            (f"example.com:9000 {TEST_FINGERPRINT} extra", "found 3 fields"),
            (f"example.com {TEST_FINGERPRINT}", "HOST:PORT"),
            (f"example.com:99999 {TEST_FINGERPRINT}", "port"),
            (f"::1:9000 {TEST_FINGERPRINT}", "[ADDRESS]:PORT"),
            ("example.com:9000 SHA256:abc", "43"),
            (f"example.com:9000 {TEST_FINGERPRINT[7:]}", "SHA256:"),
            (f"example.com:9000 {OTHER_FINGERPRINT}", "different key on line 3"),
        ]
        for line, reason in cases:
            text = KNOWN_HOSTS + "\n" + line + "\n"
            number = KNOWN_HOSTS.count("\n") + 2
            error = self.assertRaises(TrustFileError, KnownHosts.parse, text, "/x/known_hosts")
            self.assertIn(f"/x/known_hosts, line {number}: ", str(error))
            self.assertIn(reason, str(error))

    def test_fileLimits(self) -> None:
        """
        A missing file is empty. Invalid UTF-8 is reported with its line
        number, and a file over the size limit is refused before parsing.
        """
        self.assertEqual(len(KnownHosts.fromFile(self.path)), 0)
        os.makedirs(self.keyDir)
        writeFile(self.path, b"# ok\n# \xff\n")
        error = self.assertRaises(TrustFileError, KnownHosts.fromFile, self.path)
        self.assertIn(f"{self.path}, line 2: not UTF-8", str(error))
        writeFile(self.path, b"#" * (trustfile.MAX_TRUST_FILE_SIZE + 1))
        error = self.assertRaises(TrustFileError, KnownHosts.fromFile, self.path)
        self.assertIn("larger than", str(error))

    def test_refusesFileOthersMayWrite(self) -> None:
        """
        A known_hosts that others may write, or one in a directory they may
        write (where it could be made), is refused with the C{chmod go-w}
        that fixes it: anyone could replace a pinned key. Nothing is
        recorded there either.
        """
        os.makedirs(self.keyDir)
        os.chmod(self.keyDir, 0o777)
        directory = os.path.abspath(self.keyDir)
        for acceptNew in (False, True):
            error = self.assertRaises(InsecurePath, KnownHosts.fromFile, self.path, acceptNew)
            self.assertIn(f"chmod go-w {directory}", str(error))
        os.chmod(self.keyDir, 0o700)
        known = KnownHosts.fromFile(self.path, acceptNew=True)
        os.chmod(self.keyDir, 0o777)
        self.assertRaises(InsecurePath, known.check, "example.com:9000", TEST_FINGERPRINT)
        self.assertFalse(os.path.exists(self.path))
        os.chmod(self.keyDir, 0o700)
        writeFile(self.path, KNOWN_HOSTS.encode(), 0o666)
        error = self.assertRaises(InsecurePath, KnownHosts.fromFile, self.path)
        self.assertIn(f"chmod go-w {os.path.abspath(self.path)}", str(error))
        self.assertRaises(InsecurePath, trust.loadServerTrust, self.keyDir)

    def test_unreadable(self) -> None:
        """
        A trust file that cannot be read is a L{TrustFileError} naming it,
        not a traceback.
        """

        def denied(path: str, limit: int):
            raise PermissionError(13, "Permission denied", path)

        self.patch(trustfile, "readRegularFile", denied)
        error = self.assertRaises(TrustFileError, KnownHosts.fromFile, self.path)
        self.assertIn(f"{self.path}: Permission denied", str(error))

    def test_strictUnknown(self) -> None:
        """
        In strict mode an unknown server is refused with exit code 3, and
        nothing is written.
        """
        known = KnownHosts.fromFile(self.path)
        error = self.assertRaises(
            UnknownServerKey, known.check, "example.com:9000", TEST_FINGERPRINT
        )
        self.assertIn("example.com:9000", str(error))
        self.assertIn(TEST_FINGERPRINT, str(error))
        self.assertEqual(error.exitCode, 3)
        self.assertFalse(os.path.exists(self.keyDir))

    def test_known(self) -> None:
        """
        A matching entry gives L{TrustDecision.KNOWN}.
        """
        known = KnownHosts.parse(KNOWN_HOSTS, self.path)
        self.assertIs(known.check("example.com:9000", TEST_FINGERPRINT), TrustDecision.KNOWN)
        self.assertIs(known.check("[::1]:9000", OTHER_FINGERPRINT), TrustDecision.KNOWN)

    def test_acceptNewAddsAndPersists(self) -> None:
        """
        With acceptNew, first contact records the key (mode 0600, parent
        directory created) and says so. The next load knows it.
        """
        known = KnownHosts.fromFile(self.path, acceptNew=True)
        self.assertIs(known.check("[::1]:9000", TEST_FINGERPRINT), TrustDecision.ADDED)
        self.assertIs(known.check("[::1]:9000", TEST_FINGERPRINT), TrustDecision.KNOWN)
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        with open(self.path) as f:
            self.assertEqual(f.read(), f"[::1]:9000 {TEST_FINGERPRINT}\n")
        reloaded = KnownHosts.fromFile(self.path)
        self.assertIs(reloaded.check("[::1]:9000", TEST_FINGERPRINT), TrustDecision.KNOWN)

    def test_acceptNewPreservesLines(self) -> None:
        """
        Adding keeps every existing line and comment and the file's mode,
        even without a final newline.
        """
        os.makedirs(self.keyDir)
        original = KNOWN_HOSTS.rstrip("\n")
        writeFile(self.path, original.encode(), 0o644)
        known = KnownHosts.fromFile(self.path, acceptNew=True)
        self.assertIs(known.check("new.example:1", OTHER_FINGERPRINT), TrustDecision.ADDED)
        with open(self.path, newline="") as f:
            self.assertEqual(f.read(), f"{original}\nnew.example:1 {OTHER_FINGERPRINT}\n")
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o644)
        self.assertEqual(sorted(os.listdir(self.keyDir)), ["known_hosts"])

    def test_acceptNewRereadsFile(self) -> None:
        """
        If another process recorded the host after the file was loaded, the
        file's entry decides: a different key is refused, not overwritten.
        """
        known = KnownHosts.fromFile(self.path, acceptNew=True)
        os.makedirs(self.keyDir)
        writeFile(self.path, f"example.com:9000 {OTHER_FINGERPRINT}\n".encode())
        self.assertRaises(ServerKeyChanged, known.check, "example.com:9000", TEST_FINGERPRINT)
        with open(self.path) as f:
            self.assertNotIn(TEST_FINGERPRINT, f.read())

    def test_changedKey(self) -> None:
        """
        A changed key is refused even with acceptNew. Both fingerprints and
        the offending line are shown, and the file is not touched.
        """
        os.makedirs(self.keyDir)
        writeFile(self.path, KNOWN_HOSTS.encode())
        for acceptNew in (False, True):
            known = KnownHosts.fromFile(self.path, acceptNew=acceptNew)
            error = self.assertRaises(
                ServerKeyChanged, known.check, "example.com:9000", OTHER_FINGERPRINT
            )
            message = str(error)
            self.assertIn(f"expected {TEST_FINGERPRINT}", message)
            self.assertIn(f"received {OTHER_FINGERPRINT}", message)
            self.assertIn(f"{self.path}, line 3", message)
            self.assertEqual(error.exitCode, 3)
        with open(self.path, newline="") as f:
            self.assertEqual(f.read(), KNOWN_HOSTS)

    def test_pinned(self) -> None:
        """
        A pinned key accepts only its own fingerprint, on any host.
        """
        pin = PinnedKey.fromOption(f"  {TEST_FINGERPRINT}\n")
        self.assertIs(pin.check("any.example:1", TEST_FINGERPRINT), TrustDecision.KNOWN)
        error = self.assertRaises(
            ServerKeyChanged, pin.check, "any.example:1", OTHER_FINGERPRINT
        )
        self.assertIn(f"expected {TEST_FINGERPRINT}", str(error))
        self.assertIn(f"received {OTHER_FINGERPRINT}", str(error))

    def test_pinnedBadOption(self) -> None:
        """
        A malformed --server-fingerprint is a configuration error (exit 2).
        """
        error = self.assertRaises(ConfigurationError, PinnedKey.fromOption, "SHA256:short")
        self.assertIn("--server-fingerprint", str(error))
        self.assertEqual(error.exitCode, 2)

    def test_loadServerTrust(self) -> None:
        """
        A pin overrides known_hosts. Otherwise KEYDIR/known_hosts is used
        with the acceptNew setting.
        """
        pin = trust.loadServerTrust(self.keyDir, TEST_FINGERPRINT, acceptNew=True)
        self.assertIsInstance(pin, PinnedKey)
        known = trust.loadServerTrust(self.keyDir, acceptNew=True)
        self.assertIsInstance(known, KnownHosts)
        self.assertEqual(known.path, self.path)
        self.assertTrue(known.acceptNew)


AUTHORIZED_KEYS = f"""\
# who may send
{TEST_FINGERPRINT} alice's laptop  

{OTHER_FINGERPRINT}
"""


class AuthorizedKeysTests(unittest.SynchronousTestCase):
    """
    Tests for L{AuthorizedKeys} and L{AllowAny}, the server's trust sources.
    """

    def test_parse(self) -> None:
        """
        Entries, with or without a name (the rest of the line), are read and
        comments and blank lines are skipped.
        """
        keys = AuthorizedKeys.parse(AUTHORIZED_KEYS, "ak")
        self.assertEqual(len(keys), 2)
        self.assertTrue(keys.isAuthorized(TEST_FINGERPRINT))
        self.assertTrue(keys.isAuthorized(OTHER_FINGERPRINT))
        self.assertEqual(keys.nameOf(TEST_FINGERPRINT), "alice's laptop")
        self.assertIsNone(keys.nameOf(OTHER_FINGERPRINT))
        self.assertIn("2 authorized", keys.describe())

    def test_notAuthorized(self) -> None:
        """
        Unknown and malformed fingerprints are not authorized.
        """
        keys = AuthorizedKeys.parse(f"{TEST_FINGERPRINT}\n", "ak")
        self.assertFalse(keys.isAuthorized(OTHER_FINGERPRINT))
        self.assertFalse(keys.isAuthorized("garbage"))
        self.assertIsNone(keys.nameOf(OTHER_FINGERPRINT))

    def test_comparesEveryEntry(self) -> None:
        """
        The check compares against every entry, even after a match, so the
        time taken does not reveal which entry matched.
        """
        calls = []
        realEqual = trust.fingerprintsEqual

        def counting(a: str, b: str) -> bool:
            calls.append(a)
            return realEqual(a, b)

        self.patch(trust, "fingerprintsEqual", counting)
        keys = AuthorizedKeys.parse(AUTHORIZED_KEYS, "ak")
        self.assertTrue(keys.isAuthorized(TEST_FINGERPRINT))
        self.assertEqual(calls, [TEST_FINGERPRINT, OTHER_FINGERPRINT])

    def test_malformed(self) -> None:
        """
        Malformed lines are reported with the path and line number.
        """
        body = TEST_FINGERPRINT[len("SHA256:"):]
        cases = [
            ("alice", "starts with 'SHA256:'"),
            (f"{TEST_FINGERPRINT[:-1]} alice", "not 42"),
            (f"{TEST_FINGERPRINT}AA", "not 45"),
            (f"{body} alice", "SHA256:"),
            (f"SHA256:{body[:-1]}! alice", "base64"),
            (f"{TEST_FINGERPRINT} al\x1bice", "control characters"),
        ]
        for line, reason in cases:
            text = AUTHORIZED_KEYS + line + "\n"
            number = text.count("\n")
            error = self.assertRaises(TrustFileError, AuthorizedKeys.parse, text, "/x/ak")
            self.assertIn(f"/x/ak, line {number}: ", str(error))
            self.assertIn(reason, str(error))

    def test_fromFile(self) -> None:
        """
        The file is read from disk, and a missing file authorizes nobody and
        says so.
        """
        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, "authorized_keys")
        empty = AuthorizedKeys.fromFile(path)
        self.assertEqual(len(empty), 0)
        self.assertIn("--allow-any-client", empty.describe())
        writeFile(path, AUTHORIZED_KEYS.encode(), 0o644)
        loaded = AuthorizedKeys.fromFile(path)
        self.assertTrue(loaded.isAuthorized(TEST_FINGERPRINT))

    def test_parseValid(self) -> None:
        """
        L{AuthorizedKeys.parseValid}, what a reload uses, keeps the valid
        lines and reports each bad one by path and line number, without
        quoting it; L{AuthorizedKeys.parse}, used at start-up, refuses the
        whole file for the first bad line.
        """
        text = (
            f"{TEST_FINGERPRINT} alice\n"
            "SHA256:not-a-secret-but-a-typo bob\n"
            "# comment \n"
            f"{OTHER_FINGERPRINT} carol\x07\n"
            f"{OTHER_FINGERPRINT} carol\n"
        )
        keys, problems = AuthorizedKeys.parseValid(text, "/x/ak")
        self.assertEqual(len(keys), 2)
        self.assertTrue(keys.isAuthorized(TEST_FINGERPRINT))
        self.assertEqual(keys.nameOf(OTHER_FINGERPRINT), "carol")
        self.assertEqual(
            [str(problem.args[0]).split(":")[0] for problem in problems],
            ["/x/ak, line 2", "/x/ak, line 4"],
        )
        for problem in problems:
            self.assertIsInstance(problem, TrustFileError)
            self.assertNotIn("typo", str(problem))
            self.assertNotIn("bob", str(problem))
        error = self.assertRaises(TrustFileError, AuthorizedKeys.parse, text, "/x/ak")
        self.assertEqual(str(error), str(problems[0]))

    def test_notUTF8LineSkipped(self) -> None:
        """
        A line that is not UTF-8 is one bad line: L{AuthorizedKeys.fromFile}
        refuses the file for it, L{AuthorizedKeys.fromFileValid} skips it
        and keeps the others.
        """
        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, "authorized_keys")
        writeFile(path, f"{TEST_FINGERPRINT} \xff\n{OTHER_FINGERPRINT}\n".encode("latin-1"))
        error = self.assertRaises(TrustFileError, AuthorizedKeys.fromFile, path)
        self.assertIn(f"{path}, line 1: not UTF-8 text", str(error))
        keys, problems = AuthorizedKeys.fromFileValid(path)
        self.assertEqual(len(keys), 1)
        self.assertTrue(keys.isAuthorized(OTHER_FINGERPRINT))
        self.assertFalse(keys.isAuthorized(TEST_FINGERPRINT))
        self.assertEqual([str(problem) for problem in problems], [str(error)])

    def test_refusesFileOthersMayWrite(self) -> None:
        """
        An authorized_keys that others may write, or in a directory they
        may write, is refused as a whole, by both readers: anyone could add
        a key.
        """
        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, "authorized_keys")
        for reader in (AuthorizedKeys.fromFile, AuthorizedKeys.fromFileValid):
            os.chmod(directory, 0o777)
            error = self.assertRaises(InsecurePath, reader, path)
            self.assertIn(f"chmod go-w {os.path.abspath(directory)}", str(error))
            os.chmod(directory, 0o700)
            writeFile(path, AUTHORIZED_KEYS.encode(), 0o666)
            error = self.assertRaises(InsecurePath, reader, path)
            self.assertIn(f"chmod go-w {os.path.abspath(path)}", str(error))
            os.chmod(path, 0o644)
            self.assertEqual(len(AuthorizedKeys.fromFile(path)), 2)
            os.unlink(path)
        os.chmod(directory, 0o777)
        self.assertRaises(InsecurePath, AuthorizedKeys.fromFile, path)

    @given(
        st.lists(
            st.one_of(
                st.builds(
                    str.__add__,
                    st.sampled_from([TEST_FINGERPRINT, OTHER_FINGERPRINT]),
                    st.sampled_from(["", " alice", " bob's laptop", " x\x1b"]),
                ),
                st.text(max_size=60).map(lambda text: text.replace("\n", " ")),
                st.sampled_from(["", "# note", "   "]),
            ),
            max_size=12,
        )
    )
    def test_parseValidKeepsExactlyTheValidLines(self, lines: list[str]) -> None:
        """
        Whatever the lines, L{AuthorizedKeys.parseValid} admits the
        fingerprints of the lines that L{AuthorizedKeys.parse} accepts on
        their own and no others, reports every other line that is not a
        comment by its number, and L{AuthorizedKeys.parse} accepts the
        whole file exactly when nothing is reported.
        """
        text = "\n".join(lines)
        keys, problems = AuthorizedKeys.parseValid(text, "ak")
        admitted: set[str] = set()
        badNumbers = []
        for number, line in enumerate(lines, start=1):
            if not line.strip() or line.strip().startswith("#"):
                continue
            try:
                admitted.update(f for f, _ in AuthorizedKeys.parse(line, "ak")._entries)
            except TrustFileError:
                badNumbers.append(number)
        reported = [int(re.match(r"ak, line (\d+): ", p.args[0]).group(1)) for p in problems]
        self.assertEqual(reported, badNumbers)
        for fingerprint in (TEST_FINGERPRINT, OTHER_FINGERPRINT):
            self.assertEqual(keys.isAuthorized(fingerprint), fingerprint in admitted)
        if badNumbers:
            self.assertRaises(TrustFileError, AuthorizedKeys.parse, text, "ak")
        else:
            self.assertEqual(len(AuthorizedKeys.parse(text, "ak")), len(keys))

    def test_allowAny(self) -> None:
        """
        L{AllowAny} authorizes every client and names none.
        """
        self.assertTrue(AllowAny.isAuthorized(OTHER_FINGERPRINT))
        self.assertIsNone(AllowAny.nameOf(OTHER_FINGERPRINT))
        self.assertIn("--allow-any-client", AllowAny.describe())
