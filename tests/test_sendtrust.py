"""
Tests for what C{spc send} says and records about trust: a pin that does
not match is not a changed key, a changed key comes with the command that
forgets it, a pin given with C{--accept-new} is recorded, and TLS pins live
in C{known_hosts} beside key pins (L{spc.keys.trust}, L{spc.cli.sendtrust}).
"""

from __future__ import annotations

import io
import os

from hypothesis import given, strategies as st
from twisted.trial import unittest

from spc.cli.sendtrust import ReportingTrust, forgetCommand, recordedTLSPins
from spc.errors import (
    ServerKeyChanged,
    ServerKeyMismatch,
    TLSFailed,
    TrustFileError,
    UnknownServerKey,
)
from spc.keys.trust import KnownHosts, PinnedKey, TrustDecision, loadServerTrust
from tests.unit.test_identity import OTHER_FINGERPRINT, TEST_FINGERPRINT, writeFile


class KeyDirTestCase(unittest.TestCase):
    def setUp(self) -> None:
        self.keyDir = os.path.abspath(self.mktemp())
        os.makedirs(self.keyDir, mode=0o700)
        self.path = os.path.join(self.keyDir, "known_hosts")

    def write(self, text: str) -> None:
        writeFile(self.path, text.encode("utf-8"))

    def read(self) -> str:
        with open(self.path) as f:
            return f.read()


class PinTests(KeyDirTestCase):
    """
    C{--server-fingerprint}, alone and with C{--accept-new}.
    """

    def test_mismatchIsNotAChange(self) -> None:
        """
        A key other than the pin (a typo in the fingerprint) is a
        L{ServerKeyMismatch}: it names both fingerprints and
        C{--server-fingerprint}, and does not claim the key changed.
        """
        pin = PinnedKey(TEST_FINGERPRINT)
        error = self.assertRaises(ServerKeyMismatch, pin.check, "h:1", OTHER_FINGERPRINT)
        message = str(error)
        self.assertNotIn("CHANGED", message)
        self.assertIn("--server-fingerprint", message)
        self.assertIn("typo", message)
        self.assertIn(f"expected {TEST_FINGERPRINT}", message)
        self.assertIn(f"received {OTHER_FINGERPRINT}", message)
        self.assertEqual(error.exitCode, 3)

    def test_acceptNewRecordsThePin(self) -> None:
        """
        With C{--accept-new}, the pinned key is recorded in known_hosts
        once the server shows it; a mismatch records nothing.
        """
        trust = loadServerTrust(self.keyDir, TEST_FINGERPRINT, acceptNew=True)
        self.assertRaises(ServerKeyMismatch, trust.check, "h.example:9000", OTHER_FINGERPRINT)
        self.assertFalse(os.path.exists(self.path))
        self.assertIs(trust.check("h.example:9000", TEST_FINGERPRINT), TrustDecision.ADDED)
        self.assertEqual(self.read(), f"h.example:9000 {TEST_FINGERPRINT}\n")
        self.assertIs(
            loadServerTrust(self.keyDir).check("h.example:9000", TEST_FINGERPRINT),
            TrustDecision.KNOWN,
        )

    def test_acceptNewKeepsAnotherKey(self) -> None:
        """
        A pin that differs from the key known_hosts holds is not recorded:
        that is a changed key, refused, and the file is left alone.
        """
        self.write(f"h.example:9000 {OTHER_FINGERPRINT}\n")
        trust = loadServerTrust(self.keyDir, TEST_FINGERPRINT, acceptNew=True)
        self.assertRaises(ServerKeyChanged, trust.check, "h.example:9000", TEST_FINGERPRINT)
        self.assertEqual(self.read(), f"h.example:9000 {OTHER_FINGERPRINT}\n")

    def test_pinAloneRecordsNothing(self) -> None:
        """
        Without C{--accept-new}, a pin overrides known_hosts and writes
        nothing, as before.
        """
        trust = loadServerTrust(self.keyDir, TEST_FINGERPRINT)
        self.assertIs(trust.check("h.example:9000", TEST_FINGERPRINT), TrustDecision.KNOWN)
        self.assertFalse(os.path.exists(self.path))


class ReportingTrustTests(KeyDirTestCase):
    """
    L{ReportingTrust}: what C{spc send} prints about trust.
    """

    def reporting(self, trust, keyDirOption=None, recordTLS=None):
        self.stderr = io.StringIO()
        return ReportingTrust(trust, self.keyDir, self.stderr, keyDirOption, recordTLS)

    def test_changedKeyNamesTheCommand(self) -> None:
        """
        A key that changed since known_hosts recorded it is refused with
        the C{spc forget-host} command that removes the old line, with the
        C{--key-dir} given, quoted for a shell.
        """
        self.write(f"[::1]:9000 {TEST_FINGERPRINT}\n")
        trust = self.reporting(KnownHosts.fromFile(self.path), keyDirOption="/my keys")
        error = self.assertRaises(ServerKeyChanged, trust.check, "[::1]:9000", OTHER_FINGERPRINT)
        self.assertIn("CHANGED", str(error))
        self.assertIn(f"{self.path}, line 1", str(error))
        self.assertTrue(
            str(error).endswith(
                "if the server was given a new key, first run: "
                "spc forget-host --key-dir '/my keys' '[::1]:9000'"
            ),
            str(error),
        )
        self.assertEqual(forgetCommand("h:1", None), "spc forget-host h:1")

    def test_mismatchHasNoCommand(self) -> None:
        """
        A pin mismatch is passed on as it is: there is nothing to forget.
        """
        trust = self.reporting(PinnedKey(TEST_FINGERPRINT))
        error = self.assertRaises(ServerKeyMismatch, trust.check, "h:1", OTHER_FINGERPRINT)
        self.assertNotIn("forget-host", str(error))

    def test_addedSaysSo(self) -> None:
        """
        A key recorded on first use is reported, with the file.
        """
        trust = self.reporting(KnownHosts.fromFile(self.path, acceptNew=True))
        self.assertIs(trust.check("h:1", TEST_FINGERPRINT), TrustDecision.ADDED)
        self.assertEqual(
            self.stderr.getvalue(),
            f"spc: added h:1 {TEST_FINGERPRINT} to {self.path}; "
            "check it with the server's operator\n",
        )
        self.assertRaises(UnknownServerKey, self.reporting(KnownHosts.fromFile(
            self.path)).check, "h:2", TEST_FINGERPRINT)

    def test_recordsTLSPin(self) -> None:
        """
        A C{--tls-fingerprint} given with C{--accept-new} is recorded as
        the server's TLS pin at the first check (the first channel's TLS
        passed it by then), and said so; once only.
        """
        self.write(f"h:1 {TEST_FINGERPRINT}\n")
        trust = self.reporting(KnownHosts.fromFile(self.path), recordTLS=OTHER_FINGERPRINT)
        self.assertIs(trust.check("h:1", TEST_FINGERPRINT), TrustDecision.KNOWN)
        self.assertIs(trust.check("h:1", TEST_FINGERPRINT), TrustDecision.KNOWN)
        self.assertEqual(
            self.read(), f"h:1 {TEST_FINGERPRINT}\ntls:h:1 {OTHER_FINGERPRINT}\n"
        )
        self.assertEqual(
            self.stderr.getvalue(),
            f"spc: added tls:h:1 {OTHER_FINGERPRINT} to {self.path}; "
            "check it with the server's operator\n",
        )
        self.assertEqual(KnownHosts.fromFile(self.path).tlsPin("H:1"), OTHER_FINGERPRINT)

    def test_otherTLSPinRecorded(self) -> None:
        """
        A TLS pin other than the one recorded is not recorded over it: a
        L{TLSFailed} names both and the command that forgets the old one.
        """
        self.write(f"h:1 {TEST_FINGERPRINT}\ntls:h:1 {TEST_FINGERPRINT}\n")
        trust = self.reporting(KnownHosts.fromFile(self.path), recordTLS=OTHER_FINGERPRINT)
        error = self.assertRaises(TLSFailed, trust.check, "h:1", TEST_FINGERPRINT)
        self.assertIn(f"line 2, pins the TLS certificate of h:1 to {TEST_FINGERPRINT}", str(error))
        self.assertIn("spc forget-host h:1", str(error))


class TLSPinTests(KeyDirTestCase):
    """
    C{tls:HOST:PORT SHA256:...} lines of known_hosts.
    """

    def test_parsedBesideKeys(self) -> None:
        """
        A TLS pin and a key pin of one server are separate entries; one
        TLS pin per server, like one key.
        """
        known = KnownHosts.parse(
            f"h:1 {TEST_FINGERPRINT}\nTLS:H:1 {OTHER_FINGERPRINT}\n", "known_hosts"
        )
        self.assertEqual(known.lookup("h:1"), TEST_FINGERPRINT)
        self.assertEqual(known.tlsPin("h:1"), OTHER_FINGERPRINT)
        self.assertIsNone(known.tlsPin("h:2"))
        self.assertRaises(
            TrustFileError, KnownHosts.parse,
            f"tls:h:1 {TEST_FINGERPRINT}\ntls:h:1 {OTHER_FINGERPRINT}\n", "known_hosts",
        )

    @given(st.text(max_size=40))
    def test_strict(self, name) -> None:
        """
        Whatever follows C{tls:}, the line is a TLS pin for a canonical
        C{HOST:PORT} or the file is refused naming the line: nothing else.
        """
        try:
            known = KnownHosts.parse(f"# x\ntls:{name} {TEST_FINGERPRINT}\n", "known_hosts")
        except TrustFileError as error:
            self.assertIn("known_hosts, line 2", str(error))
            return
        [(key, _)] = known._entries.items()
        self.assertTrue(key.startswith("tls:"))
        self.assertEqual(known.tlsPin(key[4:]), TEST_FINGERPRINT)

    def test_recordedPinUsed(self) -> None:
        """
        C{spc send} to a C{tls:} server with no pin and no trust roots
        uses the recorded TLS pin; with C{trustRoots=}, or without a
        C{tls:} channel, it uses none.
        """
        self.write(f"tls:h:9443 {OTHER_FINGERPRINT}\n")
        self.assertEqual(
            recordedTLSPins(self.keyDir, "h:9443", ["tls:h:9443"]), [OTHER_FINGERPRINT]
        )
        self.assertEqual(
            recordedTLSPins(self.keyDir, "h:9443", ["tls:h:9443:trustRoots=ca.pem"]), []
        )
        self.assertEqual(recordedTLSPins(self.keyDir, "h:9443", ["tcp:h:9443"]), [])
        self.assertEqual(recordedTLSPins(self.keyDir, "h:9444", ["tls:h:9444"]), [])
