"""
Fixtures shared by the tests of every tier: keys, and what the handshake,
record, asymmetric and channel tests drive spc's machines with.

RSA key generation is slow, so every key here is made at most once per
process (on first use) and cached at module level; tests must treat the keys
as read-only.  Besides keys this module offers the recording owners the
sans-IO machines are driven with (they record what a handshake sends and
reports), a directory for a handshake to ask (L{tests.fakes.FakeDirectory})
and a counter of server private-key operations.
"""

from __future__ import annotations

from typing import Callable

from cryptography.hazmat.primitives.asymmetric import rsa
from twisted.trial import unittest

from spc.crypto import asymmetric
from spc.crypto.suites import A256CBC_HS512, AES256_GCM, CHACHA20_POLY1305, SUITES
from spc.keys import identity
from spc.keys.identity import Identity
from spc.protocol import frames
from spc.protocol.handshake import ChannelSpec
from tests.fakes import FakeDirectory

__all__ = [
    "ALL_SUITES",
    "LOW_ORDER_SHARES",
    "PrivateOperationCounter",
    "RecordingChannelOwner",
    "RecordingClientOwner",
    "RecordingServerOwner",
    "bigIdentity",
    "cachedExchangeKey",
    "cachedIdentity",
    "cachedKey",
    "clientIdentity",
    "countPrivateOperations",
    "exchangeKey",
    "exchangeKeyDER",
    "hostIdentity",
    "makeDirectory",
    "otherClientIdentity",
    "otherExchangeKeyDER",
    "publicDER",
    "smallKey",
    "specFor",
    "unalignedIdentity",
    "withoutNullParameters",
    "exponentThreeKey",
    "framedAlert",
]

ALL_SUITES = SUITES
assert ALL_SUITES == (A256CBC_HS512, CHACHA20_POLY1305, AES256_GCM)

_cache: dict[str, object] = {}
# The real generators, so that a test may patch the module functions with
# cached keys without recursing.
_generateExchangeKey = asymmetric.generateExchangeKey


def _once(name: str, make: Callable[[], object]):
    if name not in _cache:
        _cache[name] = make()
    return _cache[name]


def publicDER(key) -> bytes:
    """
    The SubjectPublicKeyInfo DER of a private or public RSA key.
    """
    if isinstance(key, rsa.RSAPrivateKey):
        key = key.public_key()
    return identity.publicKeyDER(key)


# Identities that pass spc's key policy.


def hostIdentity() -> Identity:
    """
    The server's RSA-2048 host identity.
    """
    return _once("host", identity.generateIdentity)


def clientIdentity() -> Identity:
    """
    The usual client's RSA-2048 identity.
    """
    return _once("client", identity.generateIdentity)


def otherClientIdentity() -> Identity:
    """
    A second client identity, for "someone else" tests.
    """
    return _once("other client", identity.generateIdentity)


def bigIdentity() -> Identity:
    """
    An RSA-4096 identity, the largest spc accepts.
    """
    return _once("big", lambda: identity.generateIdentity(4096))


def unalignedIdentity() -> Identity:
    """
    An RSA-2052 identity: within the 2048..4096 policy, but its modulus
    length is not a whole number of bytes.
    """
    return _once("unaligned", lambda: identity.generateIdentity(2052))


def exchangeKey() -> rsa.RSAPrivateKey:
    """
    The usual client's RSA-2048 exchange key.
    """
    return _once("exchange", _generateExchangeKey)


def exchangeKeyDER() -> bytes:
    return publicDER(exchangeKey())


def otherExchangeKeyDER() -> bytes:
    """
    The public half of a second exchange key.
    """
    return publicDER(_once("other exchange", _generateExchangeKey))


# Keys and identities by name, for the session, service, log and TLS tests.


def cachedKey(name: str) -> rsa.RSAPrivateKey:
    """
    An RSA-2048 key made on first use and shared by every test after.
    """
    return _once(
        "key " + name, lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )


def cachedIdentity(name: str) -> Identity:
    """
    An L{Identity} for C{name} ("server", "client", ...), made once.
    """
    return _once("identity " + name, lambda: Identity(cachedKey(name)))


def cachedExchangeKey() -> rsa.RSAPrivateKey:
    """
    The client exchange key every client session of the tests uses, in
    place of a fresh one per session.
    """
    return cachedKey("exchange")


# Keys outside the policy, for negative tests.


def smallKey() -> rsa.RSAPrivateKey:
    """
    An RSA-1024 key with exponent 65537.
    """
    return _once(
        "small", lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024)
    )


def exponentThreeKey() -> rsa.RSAPrivateKey:
    """
    An RSA key with public exponent 3, of 2064 bits so that its SPKI is 294
    bytes like an RSA-2048/65537 key's: it passes F2's layout checks and
    reaches the key policy.
    """
    return _once(
        "e=3", lambda: rsa.generate_private_key(public_exponent=3, key_size=2064)
    )


def withoutNullParameters(spkiDER: bytes) -> bytes:
    """
    Re-encode an RSA SubjectPublicKeyInfo without the NULL parameters of
    its AlgorithmIdentifier: C{cryptography} still loads it, but it is not
    the canonical DER of the key (two bytes shorter).
    """
    algorithm = bytes.fromhex("300d06092a864886f70d0101010500")
    assert spkiDER[0:2] == b"\x30\x82" and spkiDER[4:19] == algorithm
    body = bytes.fromhex("300b06092a864886f70d010101") + spkiDER[19:]
    return b"\x30\x82" + len(body).to_bytes(2, "big") + body


# u-coordinates of small-order points on Curve25519 (and non-canonical
# encodings of them): each makes the X25519 result all zeros.
LOW_ORDER_SHARES = [
    bytes.fromhex(text)
    for text in (
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    )
]


# Channel configuration.


def specFor(suite=CHACHA20_POLY1305, channel: int = 0, channelCount: int = 2) -> ChannelSpec:
    return ChannelSpec(channel, channelCount, suite)


# Recording owners.


class RecordingServerOwner:
    """
    A L{spc.protocol.handshake.ServerOwner} that records.

    @ivar frames: bodies passed to C{sendFrame}.
    @ivar results: L{ServerResult}s passed to C{handshakeSucceeded}.
    @ivar failures: C{(alertCode, reason)} passed to C{handshakeFailed}.
    """

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.results: list = []
        self.failures: list[tuple[int, str]] = []

    def sendFrame(self, body: bytes) -> None:
        self.frames.append(body)

    def handshakeSucceeded(self, result) -> None:
        self.results.append(result)

    def handshakeFailed(self, alertCode: int, reason: str) -> None:
        self.failures.append((alertCode, reason))


class RecordingClientOwner:
    """
    A L{spc.protocol.handshake.ClientOwner} that records.

    @ivar frames: bodies passed to C{sendFrame}.
    @ivar results: L{ClientResult}s passed to C{handshakeSucceeded}.
    @ivar failures: errors passed to C{handshakeFailed}.
    """

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.results: list = []
        self.failures: list = []

    def sendFrame(self, body: bytes) -> None:
        self.frames.append(body)

    def handshakeSucceeded(self, result) -> None:
        self.results.append(result)

    def handshakeFailed(self, error) -> None:
        self.failures.append(error)


class RecordingChannelOwner:
    """
    A L{spc.transport.channel.ChannelOwner} for a client connection: it gives an
    established connection its record layer at once (as a session would)
    and records every event.

    @ivar established: C{(channel, result)} pairs.
    @ivar failed: C{(channel, error)} pairs.
    @ivar records: C{(channel, epoch, record)} triples.
    @ivar lost: C{(channel, reason)} pairs.
    """

    def __init__(self) -> None:
        self.established: list = []
        self.failed: list = []
        self.records: list = []
        self.lost: list = []

    def channelEstablished(self, channel, result) -> None:
        self.established.append((channel, result))
        channel.activate(result.epoch, result.epochSecret)

    def channelFailed(self, channel, error) -> None:
        self.failed.append((channel, error))

    def recordReceived(self, channel, epoch, record) -> None:
        self.records.append((channel, epoch, record))

    def channelLost(self, channel, reason) -> None:
        self.lost.append((channel, reason))


# The server's directory.


def makeDirectory(**kw) -> FakeDirectory:
    """
    A L{FakeDirectory} that admits everything unless told otherwise.
    """
    return FakeDirectory(**kw)


# Counting private-key operations.


class PrivateOperationCounter:
    """
    Counts calls of L{spc.crypto.asymmetric.decrypt}, the only private-key
    operation a server performs in a handshake.

    @ivar count: calls so far.
    @ivar labels: the OAEP label of each call.
    """

    def __init__(self) -> None:
        self.count = 0
        self.labels: list[bytes] = []

    def install(self, testCase: unittest.TestCase) -> PrivateOperationCounter:
        original = asymmetric.decrypt

        def counting(key, ciphertext, label):
            self.count += 1
            self.labels.append(label)
            return original(key, ciphertext, label)

        testCase.patch(asymmetric, "decrypt", counting)
        return self


def countPrivateOperations(testCase: unittest.TestCase) -> PrivateOperationCounter:
    """
    Patch L{spc.crypto.asymmetric.decrypt} for the duration of C{testCase} with a
    counting wrapper, and return the counter.
    """
    return PrivateOperationCounter().install(testCase)


def framedAlert(code: int) -> bytes:
    """
    An HS_ALERT frame as it appears on the wire.
    """
    return frames.framed(frames.Alert(code).encode())
