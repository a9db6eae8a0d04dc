"""
Tests for L{spc.cli.sendtrust}, what C{spc send} says and records about
trust: a changed key comes with the command that forgets it, a key or TLS
pin recorded is said so, and a recorded TLS pin stands in for
C{--tls-fingerprint}.
"""

from __future__ import annotations

import io

from spc.cli.sendtrust import ReportingTrust, forgetCommand, recordedTLSPins
from spc.errors import ServerKeyChanged, ServerKeyMismatch, TLSFailed, UnknownServerKey
from spc.keys.trust import KnownHosts, PinnedKey, TrustDecision
from tests.unit.test_identity import OTHER_FINGERPRINT, TEST_FINGERPRINT
from tests.unit.test_trust import KeyDirTestCase


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


class RecordedTLSPinTests(KeyDirTestCase):
    """
    L{recordedTLSPins}: the C{tls:HOST:PORT} line of C{known_hosts} in use.
    """

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
