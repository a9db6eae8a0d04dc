# -*- test-case-name: tests.unit.test_asymmetric -*-
"""
The public-key operations of SPC/1, each with its parameters fixed in one
place: RSA-OAEP (MGF1-SHA256, SHA-256, a label binding the ciphertext to its
context), RSA-PSS (MGF1-SHA256, SHA-256, salt length 32, verified with that
explicit length and never C{AUTO}), and X25519 with all-zero results refused.

Each RSA key has one purpose (RFC 8017 section 6): the server's host key and
the client's exchange key only decrypt, the client's identity key only signs.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "EXCHANGE_KEY_BITS",
    "Ephemeral",
    "decrypt",
    "encrypt",
    "generateExchangeKey",
    "sign",
    "verify",
]

EXCHANGE_KEY_BITS = 2048
PSS_SALT_LENGTH = 32


def _oaep(label: bytes) -> padding.OAEP:
    return padding.OAEP(
        mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=label
    )


_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=PSS_SALT_LENGTH)


def encrypt(key: rsa.RSAPublicKey, secret: bytes, label: bytes) -> bytes:
    """
    RSA-OAEP-encrypt a short secret, bound to C{label}.
    """
    return key.encrypt(secret, _oaep(label))


def decrypt(key: rsa.RSAPrivateKey, ciphertext: bytes, label: bytes) -> bytes:
    """
    RSA-OAEP-decrypt; a wrong key, label or ciphertext raises C{ValueError}.
    """
    return key.decrypt(ciphertext, _oaep(label))


def sign(key: rsa.RSAPrivateKey, data: bytes) -> bytes:
    """
    RSA-PSS-SHA256 signature.
    """
    return key.sign(data, _PSS, hashes.SHA256())


def verify(key: rsa.RSAPublicKey, signature: bytes, data: bytes) -> bool:
    """
    Check an RSA-PSS-SHA256 signature made by L{sign}.
    """
    try:
        key.verify(signature, data, _PSS, hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def generateExchangeKey() -> rsa.RSAPrivateKey:
    """
    A fresh RSA-2048 exchange key: the client's "own public key" of the
    original design, made per session so rotation secrets gain forward
    secrecy from the RSA layer too.
    """
    return rsa.generate_private_key(public_exponent=65537, key_size=EXCHANGE_KEY_BITS)


class Ephemeral:
    """
    One X25519 key pair, used for one exchange and then dropped.

    @ivar public: the 32-byte public share to send.
    """

    __slots__ = ("_private", "public")

    def __init__(self) -> None:
        self._private = X25519PrivateKey.generate()
        self.public = self._private.public_key().public_bytes(
            Encoding.Raw, PublicFormat.Raw
        )

    def exchange(self, peer: bytes) -> bytes:
        """
        The shared secret with a peer's share.

        @raise ValueError: for a malformed share or a low-order point that
            gives the all-zero secret.
        """
        if self._private is None:
            raise RuntimeError("an ephemeral key is used for one exchange only")
        shared = self._private.exchange(X25519PublicKey.from_public_bytes(peer))
        self._private = None
        return shared
