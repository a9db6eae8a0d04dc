"""
Tests for L{spc.keys.identity}: fingerprints, the public key policy and key
files. The trust files are tested in L{tests.unit.test_trust}.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from twisted.trial import unittest

from spc.errors import (
    BadPublicKey,
    ConfigurationError,
    InsecureKeyFile,
    InsecurePath,
    KeyFileError,
    KeyFileExists,
)
from spc.keys import identity
from spc.keys.identity import Identity

# An RSA-2048 public key generated once for these tests. TEST_FINGERPRINT was
# computed outside Python with:
#   openssl pkey -pubin -outform DER | openssl dgst -sha256 -binary | base64
TEST_PUBLIC_PEM = b"""\
-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAysGSrFPa6xxdRkUfOMh8
bxwAY1FtcM9rsRQ71Fl/pdqCtHeVlNH+kPimjuvW8dvAIBi/L9gJMFgsbHbTT+Z4
35L2HTsNip+3oYq1JBe0aqW4SU0GkN4lcJNL5zeJIVNKg4V6UtKflkuiMh/hs8V4
8CQCizCFXBIdfgCmL315hgCpx01GJpEZ0OAgXq5RpIn53+xOBOYrFYx2ZuELxinJ
vZ+XnpaeaJWJzB1f3kb7leijC+6NiXanGPfG5fWausHtpWMhL7AwsNmwaO4CvFwL
ASbmGrcKqA8dahiFlJvZn/mYYDsI3VZZkav2ttr3aX0j+2WA/RJIG+tqWL0Viz/l
AwIDAQAB
-----END PUBLIC KEY-----
"""
TEST_FINGERPRINT = "SHA256:pzYV5mUxeYElcQ2yOiZ/Bd0pKyNlAYJSGoSnvx+x4gc"
TEST_DER = base64.b64decode(b"".join(TEST_PUBLIC_PEM.splitlines()[1:-1]))
TEST_N = serialization.load_der_public_key(TEST_DER).public_numbers().n

OTHER_FINGERPRINT = "SHA256:" + "A" * 42 + "E"


_identities: dict[int, Identity] = {}


def sharedIdentity(index: int = 0) -> Identity:
    """
    RSA identities generated once per test run, since key generation is slow.
    """
    if index not in _identities:
        _identities[index] = identity.generateIdentity()
    return _identities[index]


def spkiOf(key) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def rsaSPKI(e: int, n: int) -> bytes:
    return spkiOf(rsa.RSAPublicNumbers(e, n).public_key())


def writeFile(path: str, data: bytes, mode: int = 0o600) -> None:
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


class FingerprintTests(unittest.SynchronousTestCase):
    """
    Tests for L{identity.fingerprint}, L{identity.parseFingerprint} and
    L{identity.fingerprintsEqual}.
    """

    def test_knownAnswer(self) -> None:
        """
        The fingerprint is SHA256: and the unpadded base64 of the SHA-256 of
        the DER SubjectPublicKeyInfo, as computed by openssl and by hand.
        """
        digest = hashlib.sha256(TEST_DER).digest()
        expected = "SHA256:" + base64.b64encode(digest).decode().rstrip("=")
        self.assertEqual(identity.fingerprint(TEST_DER), expected)
        self.assertEqual(identity.fingerprint(TEST_DER), TEST_FINGERPRINT)
        self.assertEqual(len(TEST_FINGERPRINT), len("SHA256:") + 43)

    def test_parseCanonical(self) -> None:
        """
        A well-formed fingerprint is returned unchanged.
        """
        self.assertEqual(identity.parseFingerprint(TEST_FINGERPRINT), TEST_FINGERPRINT)

    def test_parseCanonicalisesUnusedBits(self) -> None:
        """
        An encoding whose unused low bits are set decodes to the same digest
        and is returned in canonical form, so it compares equal.
        """
        self.assertTrue(TEST_FINGERPRINT.endswith("c"))
        variant = TEST_FINGERPRINT[:-1] + "d"
        self.assertEqual(identity.parseFingerprint(variant), TEST_FINGERPRINT)

    def test_parseRejects(self) -> None:
        """
        A wrong prefix, a wrong length, padding or a non-base64 character is
        refused with L{ValueError}.
        """
        body = TEST_FINGERPRINT[len("SHA256:"):]
        for bad in [
            body,
            "sha256:" + body,
            "MD5:" + body,
            "SHA256:" + body[:-1],
            "SHA256:" + body + "A",
            "SHA256:" + body + "=",
            "SHA256:" + body[:-1] + "-",
            "SHA256:" + body[:-1] + "\u00e9",
            "",
        ]:
            self.assertRaises(ValueError, identity.parseFingerprint, bad)

    def test_equal(self) -> None:
        """
        L{identity.fingerprintsEqual} tells equal from different fingerprints.
        """
        self.assertTrue(identity.fingerprintsEqual(TEST_FINGERPRINT, TEST_FINGERPRINT))
        self.assertFalse(identity.fingerprintsEqual(TEST_FINGERPRINT, OTHER_FINGERPRINT))
        self.assertFalse(identity.fingerprintsEqual(TEST_FINGERPRINT, ""))


class DefaultKeyDirTests(unittest.SynchronousTestCase):
    """
    Tests for L{identity.defaultKeyDir}.
    """

    def test_spcHome(self) -> None:
        """
        C{$SPC_HOME} wins when set.
        """
        self.assertEqual(identity.defaultKeyDir({"SPC_HOME": "/srv/spc"}), "/srv/spc")

    def test_fallback(self) -> None:
        """
        Without C{$SPC_HOME}, or with it empty, the default is ~/.config/spc.
        """
        expected = os.path.expanduser("~/.config/spc")
        self.assertEqual(identity.defaultKeyDir({}), expected)
        self.assertEqual(identity.defaultKeyDir({"SPC_HOME": ""}), expected)


class LoadPublicKeyTests(unittest.SynchronousTestCase):
    """
    Tests for L{identity.loadPublicKey}, the policy for keys from peers.
    """

    def assertRefused(self, der: bytes, detail: str) -> None:
        error = self.assertRaises(BadPublicKey, identity.loadPublicKey, der)
        self.assertIn(detail, str(error))

    def test_accepts2048(self) -> None:
        """
        A canonical RSA-2048 key with e=65537 is accepted.
        """
        key = identity.loadPublicKey(TEST_DER)
        self.assertEqual(key.key_size, 2048)
        self.assertEqual(identity.publicKeyDER(key), TEST_DER)

    def test_accepts4096(self) -> None:
        """
        A 4096-bit key, the largest allowed, is accepted.
        """
        key = identity.loadPublicKey(rsaSPKI(65537, (TEST_N << 2048) | 1))
        self.assertEqual(key.key_size, 4096)

    def test_refusesSmallAndLarge(self) -> None:
        """
        Keys below 2048 bits or above 4096 bits are refused.
        """
        self.assertRefused(rsaSPKI(65537, (TEST_N >> 1024) | 1), "1024-bit")
        self.assertRefused(rsaSPKI(65537, TEST_N >> 1), "2047-bit")
        self.assertRefused(rsaSPKI(65537, (TEST_N << 2049) | 1), "4097-bit")

    def test_refusesExponent(self) -> None:
        """
        An exponent other than 65537 (here e=3) is refused.
        """
        self.assertRefused(rsaSPKI(3, TEST_N), "exponent 3")

    def test_refusesEvenModulus(self) -> None:
        """
        An even modulus cannot be RSA and is refused.
        """
        self.assertRefused(rsaSPKI(65537, TEST_N - 1), "even modulus")

    def test_refusesTrailingByte(self) -> None:
        """
        DER followed by an extra byte is refused.
        """
        self.assertRefused(TEST_DER + b"\x00", "DER")

    def test_refusesLongFormLength(self) -> None:
        """
        DER whose outer length uses more bytes than needed is refused.
        """
        self.assertEqual(TEST_DER[:2], b"\x30\x82")
        self.assertRefused(b"\x30\x83\x00" + TEST_DER[2:], "DER")

    def test_refusesNonRSA(self) -> None:
        """
        EC and Ed25519 keys are refused.
        """
        ecKey = ec.generate_private_key(ec.SECP256R1()).public_key()
        edKey = ed25519.Ed25519PrivateKey.generate().public_key()
        self.assertRefused(spkiOf(ecKey), "not an RSA key")
        self.assertRefused(spkiOf(edKey), "not an RSA key")

    def test_refusesGarbage(self) -> None:
        """
        Bytes that are not a key, and oversized input, are refused.
        """
        self.assertRefused(b"", "DER")
        self.assertRefused(b"\x30\x03\x02\x01\x01", "DER")
        self.assertRefused(b"\x30" * (identity.MAX_SPKI_SIZE + 1), "too long")


class IdentityTests(unittest.SynchronousTestCase):
    """
    Tests for L{Identity} and L{identity.generateIdentity}.
    """

    def test_attributes(self) -> None:
        """
        An identity carries its public DER and the fingerprint of it, and its
        repr shows the fingerprint only.
        """
        me = sharedIdentity()
        self.assertEqual(me.privateKey.key_size, 2048)
        self.assertEqual(me.privateKey.public_key().public_numbers().e, 65537)
        self.assertEqual(me.publicDER, spkiOf(me.privateKey.public_key()))
        self.assertEqual(me.fingerprint, identity.fingerprint(me.publicDER))
        self.assertEqual(repr(me), f"<Identity {me.fingerprint}>")

    def test_generateRefusesSize(self) -> None:
        """
        Key sizes outside 2048..4096 are a configuration error.
        """
        self.assertRaises(ConfigurationError, identity.generateIdentity, 1024)
        self.assertRaises(ConfigurationError, identity.generateIdentity, 8192)

    def test_refusesNonRSA(self) -> None:
        """
        An identity must be RSA.
        """
        self.assertRaises(BadPublicKey, Identity, ec.generate_private_key(ec.SECP256R1()))


class KeyFileTests(unittest.SynchronousTestCase):
    """
    Tests for L{identity.saveIdentity}, L{identity.loadIdentity} and the
    public key readers.
    """

    def setUp(self) -> None:
        self.keyDir = os.path.join(self.mktemp(), "keys")
        self.private = os.path.join(self.keyDir, "id_rsa")
        self.public = os.path.join(self.keyDir, "id_rsa.pub")
        previous = os.umask(0o022)
        self.addCleanup(os.umask, previous)

    def mode(self, path: str) -> int:
        return stat.S_IMODE(os.stat(path).st_mode)

    def test_saveAndLoad(self) -> None:
        """
        A saved identity loads back with the same fingerprint. The directory
        is created 0700, the private key is PKCS#8 PEM with mode 0600 and the
        public key is PEM SPKI with mode 0644. No temporary file is left.
        """
        identity.saveIdentity(sharedIdentity(), self.keyDir)
        self.assertEqual(self.mode(self.keyDir), 0o700)
        self.assertEqual(self.mode(self.private), 0o600)
        self.assertEqual(self.mode(self.public), 0o644)
        with open(self.private, "rb") as f:
            self.assertTrue(f.read().startswith(b"-----BEGIN PRIVATE KEY-----\n"))
        with open(self.public, "rb") as f:
            self.assertTrue(f.read().startswith(b"-----BEGIN PUBLIC KEY-----\n"))
        self.assertEqual(sorted(os.listdir(self.keyDir)), ["id_rsa", "id_rsa.pub"])
        loaded = identity.loadIdentity(self.keyDir)
        self.assertEqual(loaded.fingerprint, sharedIdentity().fingerprint)
        self.assertEqual(identity.readIdentityPublicKey(self.keyDir), loaded.publicDER)

    def test_privateKeyCreatedPrivate(self) -> None:
        """
        The private key is created under a temporary name with O_EXCL and
        mode 0600, and only renamed afterwards, so it is never readable by
        others and never partial under its final name.
        """
        opened = []
        realOpen = os.open

        def recordingOpen(path, flags, mode=0o777, *a, **kw):
            opened.append((os.path.basename(path), flags, mode))
            return realOpen(path, flags, mode, *a, **kw)

        self.patch(os, "open", recordingOpen)
        identity.saveIdentity(sharedIdentity(), self.keyDir)
        creations = [o for o in opened if o[1] & os.O_CREAT]
        self.assertEqual(len(creations), 2)
        (privateName, flags, mode), (publicName, _, publicMode) = creations
        self.assertTrue(privateName.startswith(".id_rsa.") and privateName.endswith(".tmp"))
        self.assertEqual(flags & os.O_EXCL, os.O_EXCL)
        self.assertEqual(mode, 0o600)
        self.assertTrue(publicName.startswith(".id_rsa.pub."))
        self.assertEqual(publicMode, 0o644)

    def test_refusesOverwrite(self) -> None:
        """
        Without force, an existing identity is not replaced and nothing is
        written, even when only the public key exists.
        """
        identity.saveIdentity(sharedIdentity(0), self.keyDir)
        error = self.assertRaises(
            KeyFileExists, identity.saveIdentity, sharedIdentity(1), self.keyDir
        )
        self.assertIn(self.private, str(error))
        self.assertIn("--force", str(error))
        self.assertEqual(
            identity.loadIdentity(self.keyDir).fingerprint, sharedIdentity(0).fingerprint
        )
        os.unlink(self.private)
        self.assertRaises(KeyFileExists, identity.saveIdentity, sharedIdentity(1), self.keyDir)
        self.assertFalse(os.path.exists(self.private))
        self.assertEqual(os.listdir(self.keyDir), ["id_rsa.pub"])

    def test_forceOverwrites(self) -> None:
        """
        With force, the old identity is replaced by the new one.
        """
        identity.saveIdentity(sharedIdentity(0), self.keyDir)
        identity.saveIdentity(sharedIdentity(1), self.keyDir, force=True)
        self.assertEqual(
            identity.loadIdentity(self.keyDir).fingerprint, sharedIdentity(1).fingerprint
        )
        self.assertEqual(
            identity.fingerprint(identity.readIdentityPublicKey(self.keyDir)),
            sharedIdentity(1).fingerprint,
        )
        self.assertEqual(self.mode(self.private), 0o600)

    def test_refusesReadableKey(self) -> None:
        """
        A private key with any group or other permission is refused, and the
        message says to chmod it.
        """
        identity.saveIdentity(sharedIdentity(), self.keyDir)
        for mode in (0o640, 0o604, 0o610):
            os.chmod(self.private, mode)
            error = self.assertRaises(InsecureKeyFile, identity.loadIdentity, self.keyDir)
            self.assertIn("chmod 600", str(error))
            self.assertIn(self.private, str(error))
        os.chmod(self.private, 0o400)
        identity.loadIdentity(self.keyDir)

    def test_refusesKeyOthersMayReplace(self) -> None:
        """
        A private key in a key directory, or below a directory, that others
        may write is refused, naming that directory and the C{chmod go-w}
        that fixes it: anyone could have put their key in its place. A
        private key that others may write is refused with its own
        C{chmod 600}, which fixes both.
        """
        identity.saveIdentity(sharedIdentity(), self.keyDir)
        parent = os.path.dirname(self.keyDir)
        for directory in (self.keyDir, parent):
            os.chmod(directory, 0o777)
            error = self.assertRaises(InsecurePath, identity.loadIdentity, self.keyDir)
            culprit = os.path.abspath(directory)
            self.assertIn(f"{self.private}: {culprit} is writable", str(error))
            self.assertIn(f"fix it with: chmod go-w {culprit}", str(error))
            os.chmod(directory, 0o755)
        os.chmod(self.private, 0o622)
        error = self.assertRaises(InsecureKeyFile, identity.loadIdentity, self.keyDir)
        self.assertIn("chmod 600", str(error))
        os.chmod(self.private, 0o600)
        identity.loadIdentity(self.keyDir)

    def test_refusesTransferSecretOthersMayReplace(self) -> None:
        """
        The transfer secret is refused, and not made, where others may
        write: they could give spc a secret of their choosing.
        """
        os.makedirs(self.keyDir)
        os.chmod(self.keyDir, 0o777)
        secret = os.path.join(self.keyDir, identity.TRANSFER_SECRET_NAME)
        error = self.assertRaises(InsecurePath, identity.loadTransferSecret, self.keyDir)
        self.assertIn(f"chmod go-w {os.path.abspath(self.keyDir)}", str(error))
        self.assertFalse(os.path.exists(secret))
        os.chmod(self.keyDir, 0o700)
        made = identity.loadTransferSecret(self.keyDir)
        os.chmod(secret, 0o666)
        error = self.assertRaises(InsecurePath, identity.loadTransferSecret, self.keyDir)
        self.assertIn(f"chmod go-w {os.path.abspath(secret)}", str(error))
        os.chmod(secret, 0o600)
        self.assertEqual(identity.loadTransferSecret(self.keyDir), made)

    def test_missingKeyDir(self) -> None:
        """
        A missing key directory is reported with the command that creates
        an identity there.
        """
        error = self.assertRaises(KeyFileError, identity.loadIdentity, self.keyDir)
        self.assertIn("does not exist", str(error))
        self.assertIn(f"spc keygen --key-dir {self.keyDir}", str(error))
        error = self.assertRaises(KeyFileError, identity.readIdentityPublicKey, self.keyDir)
        self.assertIn("spc keygen --key-dir", str(error))

    def test_missingKeyFile(self) -> None:
        """
        A key directory without id_rsa is reported as such, with the hint.
        """
        os.makedirs(self.keyDir)
        error = self.assertRaises(KeyFileError, identity.loadIdentity, self.keyDir)
        self.assertIn(f"{self.private}, no such file", str(error))
        self.assertIn("spc keygen", str(error))

    def assertBadKeyFile(self, data: bytes, detail: str) -> None:
        os.makedirs(self.keyDir, exist_ok=True)
        writeFile(self.private, data)
        error = self.assertRaises(KeyFileError, identity.loadIdentity, self.keyDir)
        self.assertIn(self.private, str(error))
        self.assertIn(detail, str(error))

    def test_refusesBadKeyFiles(self) -> None:
        """
        Garbage, non-RSA, encrypted, out-of-policy and oversized key files
        are refused with the path and a reason.
        """
        pkcs8 = serialization.PrivateFormat.PKCS8
        pem = serialization.Encoding.PEM
        ecKey = ec.generate_private_key(ec.SECP256R1())
        smallKey = rsa.generate_private_key(65537, 1024)
        plain = serialization.NoEncryption()
        secret = serialization.BestAvailableEncryption(b"secret")
        self.assertBadKeyFile(b"not a key\n", "not a PEM private key")
        self.assertBadKeyFile(ecKey.private_bytes(pem, pkcs8, plain), "not an RSA key")
        self.assertBadKeyFile(smallKey.private_bytes(pem, pkcs8, plain), "1024-bit")
        self.assertBadKeyFile(
            sharedIdentity().privateKey.private_bytes(pem, pkcs8, secret), "encrypted"
        )
        self.assertBadKeyFile(b"x" * (identity.MAX_KEY_FILE_SIZE + 1), "larger than")

    def test_unreadableKeyFile(self) -> None:
        """
        A key file that cannot be read (here, permission denied) is a
        L{KeyFileError} naming the file and the reason, for the private and
        the public key alike.
        """

        def denied(path: str, limit: int):
            raise PermissionError(13, "Permission denied", path)

        self.patch(identity, "readRegularFile", denied)
        error = self.assertRaises(KeyFileError, identity.loadIdentity, self.keyDir)
        self.assertIn(f"{self.private}, Permission denied", str(error))
        error = self.assertRaises(KeyFileError, identity.readPublicKeyFile, self.public)
        self.assertIn(f"{self.public}, Permission denied", str(error))

    def test_readPublicKeyFile(self) -> None:
        """
        A PEM or DER public key file gives the DER SubjectPublicKeyInfo.
        """
        directory = self.mktemp()
        os.makedirs(directory)
        pemPath = os.path.join(directory, "key.pem")
        derPath = os.path.join(directory, "key.der")
        writeFile(pemPath, TEST_PUBLIC_PEM, 0o644)
        writeFile(derPath, TEST_DER, 0o644)
        self.assertEqual(identity.readPublicKeyFile(pemPath), TEST_DER)
        self.assertEqual(identity.readPublicKeyFile(derPath), TEST_DER)

    def test_readPublicKeyFileRefuses(self) -> None:
        """
        A missing file, a private key file and an out-of-policy key are
        refused with the path.
        """
        identity.saveIdentity(sharedIdentity(), self.keyDir)
        missing = os.path.join(self.keyDir, "nothing")
        error = self.assertRaises(KeyFileError, identity.readPublicKeyFile, missing)
        self.assertIn(missing, str(error))
        error = self.assertRaises(KeyFileError, identity.readPublicKeyFile, self.private)
        self.assertIn(".pub", str(error))
        small = os.path.join(self.keyDir, "small.der")
        writeFile(small, rsaSPKI(65537, (TEST_N >> 1024) | 1))
        error = self.assertRaises(BadPublicKey, identity.readPublicKeyFile, small)
        self.assertIn(small, str(error))
        self.assertIn("1024-bit", str(error))
