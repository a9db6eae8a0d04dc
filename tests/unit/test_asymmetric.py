"""
Tests for L{spc.crypto.asymmetric}: RSA-OAEP with labels, RSA-PSS with a fixed salt
length, and X25519 with low-order shares refused.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from twisted.trial import unittest

from spc.crypto import asymmetric
from tests.common import (
    LOW_ORDER_SHARES,
    clientIdentity,
    exchangeKey,
    hostIdentity,
    otherClientIdentity,
    publicDER,
)

class OAEPTests(unittest.SynchronousTestCase):
    """
    Tests for L{asymmetric.encrypt} and L{asymmetric.decrypt}.
    """

    secret = bytes(range(32))
    label = b"SPC/1 hs oaep" + b"\x11" * 32

    def test_roundTrip(self) -> None:
        """
        A secret encrypted to a public key with a label decrypts with the
        private key and the same label; the ciphertext is one modulus long.
        """
        key = hostIdentity().privateKey
        ciphertext = asymmetric.encrypt(key.public_key(), self.secret, self.label)
        self.assertEqual(len(ciphertext), 256)
        self.assertEqual(asymmetric.decrypt(key, ciphertext, self.label), self.secret)

    def test_randomized(self) -> None:
        """
        OAEP is randomized: the same secret encrypts differently each time.
        """
        public = hostIdentity().publicKey
        self.assertNotEqual(
            asymmetric.encrypt(public, self.secret, self.label),
            asymmetric.encrypt(public, self.secret, self.label),
        )

    def test_wrongLabel(self) -> None:
        """
        T33: a ciphertext made under one label (one handshake's transcript,
        one session's rotation) does not decrypt under another: C{ValueError}.
        """
        key = hostIdentity().privateKey
        ciphertext = asymmetric.encrypt(key.public_key(), self.secret, self.label)
        for other in (b"", self.label[:-1], self.label + b"\x00", b"SPC/1 rekey"):
            self.assertRaises(ValueError, asymmetric.decrypt, key, ciphertext, other)

    def test_wrongKey(self) -> None:
        """
        A ciphertext for one key does not decrypt with another.
        """
        ciphertext = asymmetric.encrypt(hostIdentity().publicKey, self.secret, self.label)
        self.assertRaises(
            ValueError, asymmetric.decrypt, exchangeKey(), ciphertext, self.label
        )

    def test_corrupted(self) -> None:
        """
        Any flipped bit in the ciphertext makes decryption fail.
        """
        key = hostIdentity().privateKey
        ciphertext = asymmetric.encrypt(key.public_key(), self.secret, self.label)
        for offset in (0, 1, 100, 255):
            bad = bytearray(ciphertext)
            bad[offset] ^= 0x01
            self.assertRaises(ValueError, asymmetric.decrypt, key, bytes(bad), self.label)


class PSSTests(unittest.SynchronousTestCase):
    """
    Tests for L{asymmetric.sign} and L{asymmetric.verify}.
    """

    data = b"SPC/1 client auth\x00" + b"\x22" * 32

    def test_roundTrip(self) -> None:
        """
        A signature verifies with the signer's public key over the same
        data; it is one modulus long.
        """
        signer = clientIdentity()
        signature = asymmetric.sign(signer.privateKey, self.data)
        self.assertEqual(len(signature), 256)
        self.assertTrue(asymmetric.verify(signer.publicKey, signature, self.data))

    def test_otherData(self) -> None:
        """
        A signature does not verify over other data.
        """
        signer = clientIdentity()
        signature = asymmetric.sign(signer.privateKey, self.data)
        self.assertFalse(asymmetric.verify(signer.publicKey, signature, self.data + b"!"))
        self.assertFalse(asymmetric.verify(signer.publicKey, signature, self.data[:-1]))

    def test_otherKey(self) -> None:
        """
        A signature does not verify with someone else's public key.
        """
        signature = asymmetric.sign(clientIdentity().privateKey, self.data)
        self.assertFalse(
            asymmetric.verify(otherClientIdentity().publicKey, signature, self.data)
        )

    def test_corruptedSignature(self) -> None:
        """
        A flipped bit or a random value in place of the signature is
        refused with C{False}, not an exception.
        """
        signer = clientIdentity()
        signature = asymmetric.sign(signer.privateKey, self.data)
        for offset in (0, 128, 255):
            bad = bytearray(signature)
            bad[offset] ^= 0x80
            self.assertFalse(asymmetric.verify(signer.publicKey, bytes(bad), self.data))
        self.assertFalse(asymmetric.verify(signer.publicKey, b"\x5a" * 256, self.data))
        self.assertFalse(asymmetric.verify(signer.publicKey, b"", self.data))

    def test_otherSaltLength(self) -> None:
        """
        The salt length is fixed at 32 and verified explicitly (never
        "auto"): a valid PSS signature with another salt length is refused,
        and so is a PKCS#1 v1.5 signature.
        """
        signer = clientIdentity()
        for saltLength in (0, 64, padding.PSS.MAX_LENGTH):
            signature = signer.privateKey.sign(
                self.data,
                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=saltLength),
                hashes.SHA256(),
            )
            self.assertFalse(asymmetric.verify(signer.publicKey, signature, self.data))
        legacy = signer.privateKey.sign(self.data, padding.PKCS1v15(), hashes.SHA256())
        self.assertFalse(asymmetric.verify(signer.publicKey, legacy, self.data))


class ExchangeKeyTests(unittest.SynchronousTestCase):
    """
    Tests for L{asymmetric.generateExchangeKey}.
    """

    def test_fresh2048(self) -> None:
        """
        Each call makes a new RSA-2048 key with exponent 65537, whose SPKI is
        the 294 bytes F2's exchange field holds.
        """
        key = asymmetric.generateExchangeKey()
        self.assertEqual(key.key_size, asymmetric.EXCHANGE_KEY_BITS)
        self.assertEqual(key.public_key().public_numbers().e, 65537)
        self.assertEqual(len(publicDER(key)), 294)
        self.assertNotEqual(publicDER(key), publicDER(exchangeKey()))


class EphemeralTests(unittest.SynchronousTestCase):
    """
    Tests for L{asymmetric.Ephemeral}.
    """

    def test_agreement(self) -> None:
        """
        Two parties exchanging public shares compute the same 32-byte secret;
        a third party's secret differs.
        """
        alice, bob, eve = (asymmetric.Ephemeral() for _ in range(3))
        self.assertEqual(len(alice.public), 32)
        shared = alice.exchange(bob.public)
        self.assertEqual(len(shared), 32)
        self.assertEqual(bob.exchange(alice.public), shared)
        self.assertNotEqual(eve.exchange(alice.public), shared)

    def test_fresh(self) -> None:
        """
        Every instance has a new key pair.
        """
        self.assertNotEqual(asymmetric.Ephemeral().public, asymmetric.Ephemeral().public)

    def test_allZeroShare(self) -> None:
        """
        T26: the all-zero share gives the all-zero secret, which is refused
        with C{ValueError}.
        """
        self.assertRaises(ValueError, asymmetric.Ephemeral().exchange, bytes(32))

    def test_lowOrderShares(self) -> None:
        """
        T26: every small-order point (and its non-canonical encodings) is
        refused with C{ValueError}.
        """
        for share in LOW_ORDER_SHARES:
            self.assertRaises(ValueError, asymmetric.Ephemeral().exchange, share)

    def test_malformedShare(self) -> None:
        """
        A share that is not 32 bytes is refused with C{ValueError}.
        """
        for share in (b"", bytes(31), bytes(33)):
            self.assertRaises(ValueError, asymmetric.Ephemeral().exchange, share)
