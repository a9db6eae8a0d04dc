"""
Tests for L{spc.protocol.handshake}: the server and client machines driven against
each other by hand (tier a), with recording owners, a recording directory
and a count of the server's private-key operations.

The attack numbers (T3, T5, ...) are those of PROTOCOL.md section 10.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from twisted.internet.task import Clock
from twisted.trial import unittest

from spc.crypto import asymmetric, keyschedule
from spc.crypto.suites import A256CBC_HS512, AES256_GCM, CHACHA20_POLY1305
from spc.errors import (
    ClientNotAuthorized,
    ConfigurationError,
    HandshakeRefused,
    ProtocolError,
    ServerBusy,
    ServerKeyChanged,
    UnknownServerKey,
)
from spc.keys import identity as identities
from spc.keys.trust import AuthorizedKeys, KnownHosts, PinnedKey
from spc.protocol import frames, handshake
from spc.protocol.clienthandshake import ClientHandshake
from spc.protocol.handshake import ChannelSpec, JoinTarget, JoinTicket
from spc.protocol.serverhandshake import ServerHandshake
from spc.server.directory import Limits, SessionDirectory
from spc.session.session import Session
from tests.common import (
    ALL_SUITES,
    LOW_ORDER_SHARES,
    RecordingClientOwner,
    RecordingServerOwner,
    bigIdentity,
    clientIdentity,
    countPrivateOperations,
    exchangeKeyDER,
    exponentThreeKey,
    hostIdentity,
    makeDirectory,
    otherClientIdentity,
    otherExchangeKeyDER,
    publicDER,
    smallKey,
    unalignedIdentity,
    withoutNullParameters,
)

HOST_PORT = "server.example:9000"

# F1 offsets with one version (docs/protocol.rst section 3.1).
F1_FIELDS = {
    "version": 0, "type": 1, "count": 2, "versions": 3, "suite": 4, "channel": 5,
    "channelCount": 7, "nonce": 9, "ephemeral": 41, "hostKeyLength": 73, "hostKey": 75,
}
# F2 offsets with RSA-2048 keys (section 3.2).
F2_FIELDS = {
    "version": 0, "type": 1, "chosenVersion": 2, "nonce": 3, "session": 35, "epoch": 51,
    "ephemeral": 55, "identityKeyLength": 87, "identityKey": 89,
    "exchangeKeyLength": 383, "exchangeKey": 385, "secretLength": 679, "secret": 681,
    "signatureLength": 937, "signature": 939,
}


def _h(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def flip(data: bytes, offset: int, mask: int = 0x01) -> bytes:
    changed = bytearray(data)
    changed[offset] ^= mask
    return bytes(changed)


def sample(length: int, dense: int, stride: int) -> list[int]:
    """
    Every offset below C{dense}, then every C{stride}-th one, and the last.
    """
    offsets = set(range(min(dense, length)))
    offsets.update(range(dense, length, stride))
    offsets.add(length - 1)
    return sorted(offsets)


def pinned(identity=None):
    """
    A server-key check pinned to C{identity} (the host by default), that
    records each fingerprint it was asked about.
    """
    trust = PinnedKey((identity or hostIdentity()).fingerprint)
    asked: list[str] = []

    def verify(fingerprint: str) -> None:
        asked.append(fingerprint)
        trust.check(HOST_PORT, fingerprint)

    verify.asked = asked
    return verify


def buildAuth(
    helloBody: bytes,
    identity=None,
    *,
    identityDER: bytes | None = None,
    exchangeDER: bytes | None = None,
    signer=None,
    signature: bytes | None = None,
    version: int = 1,
    session: bytes = frames.NEW_SESSION,
    epoch: int = 0,
    ephemeral: bytes | None = None,
    secret: bytes | None = None,
    label: bytes | None = None,
) -> bytes:
    """
    Build an F2 body by hand, following docs/protocol.rst section 4.2
    rather than the client code, so that tests can put anything in it.

    The secret is OAEP-encrypted to the host key in C{helloBody} (under
    C{label}, by default the one the docs define), and the frame is signed by
    C{signer} (by default C{identity}'s private key) unless C{signature} is
    given.
    """
    identity = identity or clientIdentity()
    hello = frames.ServerHello.decode(helloBody)
    helloFrame = frames.framed(helloBody)
    hostKey = identities.loadPublicKey(hello.hostKey)
    if label is None:
        label = b"SPC/1 hs oaep" + _h(helloFrame)
    auth = frames.ClientAuth(
        version=version,
        nonce=os.urandom(32),
        session=session,
        epoch=epoch,
        ephemeral=asymmetric.Ephemeral().public if ephemeral is None else ephemeral,
        identityKey=identity.publicDER if identityDER is None else identityDER,
        exchangeKey=exchangeKeyDER() if exchangeDER is None else exchangeDER,
        encryptedSecret=asymmetric.encrypt(
            hostKey, os.urandom(32) if secret is None else secret, label
        ),
        signature=b"",
    )
    unsigned = auth.unsigned()
    if signature is None:
        signer = signer or identity.privateKey
        length = len(unsigned) + 2 + (signer.key_size + 7) // 8
        signature = asymmetric.sign(
            signer,
            b"SPC/1 client auth\x00" + _h(helloFrame, frames.LENGTH.pack(length), unsigned),
        )
    return auth._replace(signature=signature).encode()


class Pair:
    """
    A server and a client handshake machine, with frames carried by hand.

    @ivar server: the L{ServerHandshake}.
    @ivar client: the L{ClientHandshake}.
    @ivar serverOwner: its L{RecordingServerOwner}.
    @ivar clientOwner: its L{RecordingClientOwner}.
    @ivar directory: what the server consults.
    @ivar f1, f2, f3: the frame bodies as each side received them.
    """

    def __init__(
        self,
        suite=CHACHA20_POLY1305,
        channel: int = 0,
        channelCount: int = 2,
        clientSpec: ChannelSpec | None = None,
        directory=None,
        host=None,
        client=None,
        exchangeDER: bytes | None = None,
        join: JoinTicket | None = None,
        verify=None,
        params: frames.Params = frames.Params(),
    ) -> None:
        host = host or hostIdentity()
        client = client or clientIdentity()
        spec = ChannelSpec(channel, channelCount, suite)
        self.directory = makeDirectory() if directory is None else directory
        self.serverOwner = RecordingServerOwner()
        self.clientOwner = RecordingClientOwner()
        self.verify = pinned(host) if verify is None else verify
        self.server = ServerHandshake(
            spec, host.privateKey, host.publicDER, params, self.directory, self.serverOwner
        )
        self.client = ClientHandshake(
            clientSpec or spec,
            client.privateKey,
            client.publicDER,
            exchangeKeyDER() if exchangeDER is None else exchangeDER,
            self.verify,
            self.clientOwner,
            join=join,
        )
        self.f1 = self.f2 = self.f3 = None

    def hello(self) -> bytes:
        self.server.start()
        return self.serverOwner.frames[0]

    def run(self, f1=None, f2=None, f3=None) -> Pair:
        """
        Run the whole exchange, passing each frame through the optional
        rewriting function for it (a man in the middle), and any alert from
        the server on to the client.
        """
        body = self.hello()
        self.f1 = f1(body) if f1 else body
        self.client.frameReceived(self.f1)
        if not self.clientOwner.frames:
            return self
        body = self.clientOwner.frames[0]
        self.f2 = f2(body) if f2 else body
        self.server.frameReceived(self.f2)
        if self.serverOwner.failures:
            code = self.serverOwner.failures[0][0]
            self.client.frameReceived(frames.Alert(code).encode())
            return self
        body = self.serverOwner.frames[1]
        self.f3 = f3(body) if f3 else body
        self.client.frameReceived(self.f3)
        return self

    @property
    def serverResult(self):
        return self.serverOwner.results[0] if self.serverOwner.results else None

    @property
    def clientResult(self):
        return self.clientOwner.results[0] if self.clientOwner.results else None

    @property
    def alert(self) -> int | None:
        return self.serverOwner.failures[0][0] if self.serverOwner.failures else None

    @property
    def reason(self) -> str | None:
        return self.serverOwner.failures[0][1] if self.serverOwner.failures else None

    @property
    def clientError(self):
        return self.clientOwner.failures[0] if self.clientOwner.failures else None

    def succeeded(self) -> bool:
        return bool(self.serverOwner.results or self.clientOwner.results)

    def failed(self) -> bool:
        return bool(self.serverOwner.failures or self.clientOwner.failures)


def sendAuth(pair: Pair, makeAuth) -> Pair:
    """
    Start C{pair}'s server and give it the F2 that C{makeAuth(f1Body)}
    builds, instead of the client's.
    """
    pair.f1 = pair.hello()
    pair.f2 = makeAuth(pair.f1)
    pair.server.frameReceived(pair.f2)
    return pair


def assertInteroperate(testCase, serverKeys, clientKeys, epochSecret) -> None:
    """
    Each side's send cipher is the other's receive cipher, and a frame
    reflected back to its sender does not open.
    """
    serverSend, serverReceive = serverKeys.ciphers(epochSecret, True)
    clientSend, clientReceive = clientKeys.ciphers(epochSecret, False)
    aad = b"\x00" * frames.AAD_SIZE
    sealed = clientSend.seal(0, aad, b"HBQ: from the client")
    testCase.assertEqual(serverReceive.open(0, aad, sealed), b"HBQ: from the client")
    sealed = serverSend.seal(0, aad, b"HBR: from the server")
    testCase.assertEqual(clientReceive.open(0, aad, sealed), b"HBR: from the server")
    # Reflection: a frame back to its sender.
    testCase.assertRaises(
        ProtocolError, clientReceive.open, 0, aad, clientSend.seal(0, aad, b"x")
    )
    testCase.assertRaises(
        ProtocolError, serverReceive.open, 0, aad, serverSend.seal(0, aad, b"x")
    )


def assertKeysDiffer(testCase, keys, otherKeys, epochSecret, isServer: bool) -> None:
    """
    Frames sealed under C{keys} do not open under C{otherKeys} (same role).
    """
    send, _ = keys.ciphers(epochSecret, not isServer)
    _, otherReceive = otherKeys.ciphers(epochSecret, isServer)
    aad = b"\x00" * frames.AAD_SIZE
    testCase.assertRaises(ProtocolError, otherReceive.open, 0, aad, send.seal(0, aad, b"x"))


class NewSessionTests(unittest.SynchronousTestCase):
    """
    A NEW handshake between the two machines.
    """

    def test_eachSuite(self) -> None:
        """
        For every suite, both sides finish with the same new session id,
        epoch 0, the server's params and the same S_0, and their connection
        keys interoperate in both directions while reflection fails.
        """
        for suite in ALL_SUITES:
            pair = Pair(suite=suite, channel=1, channelCount=3).run()
            server, client = pair.serverResult, pair.clientResult
            self.assertIsNotNone(server, suite)
            self.assertIsNotNone(client, suite)
            self.assertEqual(pair.serverOwner.failures + pair.clientOwner.failures, [])
            self.assertTrue(server.isNew)
            self.assertTrue(client.isNew)
            self.assertEqual(server.session, client.session)
            self.assertEqual(len(server.session), 16)
            self.assertNotEqual(server.session, frames.NEW_SESSION)
            self.assertEqual((server.epoch, client.epoch), (0, 0))
            self.assertEqual(server.params, frames.Params())
            self.assertEqual(client.params, frames.Params())
            self.assertEqual(len(server.epochSecret), 32)
            self.assertEqual(server.epochSecret, client.epochSecret)
            self.assertEqual(server.fingerprint, clientIdentity().fingerprint)
            self.assertEqual(server.exchangeKeyDER, exchangeKeyDER())
            self.assertEqual(publicDER(server.exchangeKey), exchangeKeyDER())
            self.assertEqual(client.serverKey, hostIdentity().publicDER)
            self.assertEqual(client.serverFingerprint, hostIdentity().fingerprint)
            for keys in (server.keys, client.keys):
                self.assertEqual(
                    (keys.session, keys.suite, keys.channel), (server.session, suite, 1)
                )
            assertInteroperate(self, server.keys, client.keys, server.epochSecret)
            self.assertEqual(pair.verify.asked, [hostIdentity().fingerprint])

    def test_frameSizes(self) -> None:
        """
        With RSA-2048 keys and one version, F1, F2 and F3 have the sizes
        the docs give (369, 1195 and 94 bytes), each frame is sent once,
        and the F3 fields are the session's.
        """
        pair = Pair().run()
        self.assertEqual(len(pair.f1), 369)
        self.assertEqual(len(pair.f2), 1195)
        self.assertEqual(len(pair.f3), 94)
        self.assertEqual(len(pair.serverOwner.frames), 2)
        self.assertEqual(len(pair.clientOwner.frames), 1)
        finished = frames.ServerFinished.decode(pair.f3)
        self.assertEqual(finished.session, pair.serverResult.session)
        self.assertEqual(finished.epoch, 0)
        self.assertEqual(finished.params, frames.Params())
        hello = frames.ServerHello.decode(pair.f1)
        self.assertEqual(hello.versions, frames.SUPPORTED_VERSIONS)
        self.assertEqual(hello.hostKey, hostIdentity().publicDER)
        auth = frames.ClientAuth.decode(pair.f2)
        self.assertEqual(auth.session, frames.NEW_SESSION)
        self.assertEqual(auth.epoch, 0)
        self.assertEqual(auth.identityKey, clientIdentity().publicDER)
        self.assertEqual(auth.exchangeKey, exchangeKeyDER())

    def test_clientAuthAsDocumented(self) -> None:
        """
        The client's F2 is what docs/protocol.rst section 4.2 defines: the
        secret is 32 bytes under OAEP with label C{"SPC/1 hs oaep" ||
        H(framed(F1))}, and the PSS signature covers C{"SPC/1 client auth"
        || 0x00 || H(framed(F1) || u32(len(F2)) || F2.unsigned())}.
        """
        pair = Pair().run()
        auth = frames.ClientAuth.decode(pair.f2)
        helloFrame = frames.framed(pair.f1)
        secret = asymmetric.decrypt(
            hostIdentity().privateKey,
            auth.encryptedSecret,
            b"SPC/1 hs oaep" + _h(helloFrame),
        )
        self.assertEqual(len(secret), 32)
        signed = b"SPC/1 client auth\x00" + _h(
            helloFrame, frames.LENGTH.pack(len(pair.f2)), auth.unsigned()
        )
        self.assertTrue(asymmetric.verify(clientIdentity().publicKey, auth.signature, signed))
        self.assertEqual(auth.unsigned(), pair.f2[: F2_FIELDS["signatureLength"]])

    def test_directoryAndPrivateOperation(self) -> None:
        """
        A NEW handshake asks the directory, in this order: is the identity
        authorized, may it open a session, may the server decrypt, does the
        session id exist; and decrypts exactly once, with the label bound to
        this F1.
        """
        counter = countPrivateOperations(self)
        pair = Pair().run()
        fingerprint = clientIdentity().fingerprint
        self.assertEqual(
            pair.directory.calls,
            [
                ("isAuthorized", (fingerprint,)),
                ("admitNewSession", (fingerprint,)),
                ("admitPrivateOperation", ()),
                ("sessionExists", (pair.serverResult.session,)),
            ],
        )
        self.assertEqual(counter.count, 1)
        self.assertEqual(counter.labels, [b"SPC/1 hs oaep" + _h(frames.framed(pair.f1))])

    def test_freshPerConnection(self) -> None:
        """
        Two NEW handshakes of the same client give different session ids,
        S_0 and keys: every connection has its own randomness.
        """
        first, second = Pair().run(), Pair().run()
        self.assertNotEqual(first.serverResult.session, second.serverResult.session)
        self.assertNotEqual(first.serverResult.epochSecret, second.serverResult.epochSecret)
        self.assertNotEqual(
            frames.ServerHello.decode(first.f1).nonce, frames.ServerHello.decode(second.f1).nonce
        )
        self.assertNotEqual(
            frames.ServerHello.decode(first.f1).ephemeral,
            frames.ServerHello.decode(second.f1).ephemeral,
        )
        assertKeysDiffer(
            self, first.clientResult.keys, second.serverResult.keys,
            first.serverResult.epochSecret, isServer=True,
        )

    def test_largestKeys(self) -> None:
        """
        RSA-4096 host and identity keys work, and the largest F2 (1963
        bytes) stays under the pre-handshake cap.
        """
        big = bigIdentity()
        pair = Pair(host=big, client=big).run()
        self.assertIsNotNone(pair.serverResult)
        self.assertIsNotNone(pair.clientResult)
        self.assertEqual(len(pair.f2), 1963)
        self.assertLessEqual(len(pair.f2), frames.MAX_BODY_PRE)

    def test_identityOfAnyAllowedSize(self) -> None:
        """
        An identity key of any size the policy allows (here 2052 bits, whose
        signature is 257 bytes) can open a session: the length the client
        signs is the length of the F2 it sends.
        """
        pair = Pair(client=unalignedIdentity()).run()
        self.assertIsNone(pair.reason)
        self.assertIsNotNone(pair.clientResult)

    def test_hostKeyOfAnyAllowedSize(self) -> None:
        """
        A host key of 2052 bits (a 257-byte OAEP ciphertext) works.
        """
        pair = Pair(host=unalignedIdentity()).run()
        self.assertIsNotNone(pair.serverResult)
        self.assertIsNotNone(pair.clientResult)
        self.assertEqual(len(frames.ClientAuth.decode(pair.f2).encryptedSecret), 257)

    def test_clientChecksParams(self) -> None:
        """
        Parameters no sane server sends (a fragment size below the minimum)
        make the client abort even though the F3 MAC is good.
        """
        params = frames.Params(fragmentSize=1000, maxInner=frames.maxInnerSize(1000))
        pair = Pair(params=params).run()
        self.assertIsNone(pair.clientResult)
        self.assertIsInstance(pair.clientError, ProtocolError)
        self.assertIn("fragment size", str(pair.clientError))

    def test_allZeroSessionID(self) -> None:
        """
        A NEW session whose derived id is all zeros (the NEW marker) is
        refused with alert 2.
        """
        self.patch(keyschedule, "sessionID", lambda secret, th2: frames.NEW_SESSION)
        pair = Pair().run()
        self.assertEqual(pair.alert, frames.ALERT_HANDSHAKE_FAILURE)
        self.assertIsNone(pair.serverResult)

    def test_sessionIDCollision(self) -> None:
        """
        A new session whose id equals a live session's is refused with
        alert 2.
        """
        directory = makeDirectory()
        directory.sessionExists = lambda session: True
        pair = Pair(directory=directory).run()
        self.assertEqual(pair.alert, frames.ALERT_HANDSHAKE_FAILURE)
        self.assertIsNone(pair.serverResult)
        self.assertIsInstance(pair.clientError, ClientNotAuthorized)


class MachineInputTests(unittest.SynchronousTestCase):
    """
    Timeouts, alerts and frames in the wrong state.
    """

    def test_serverTimeout(self) -> None:
        """
        A server waiting for F2 answers a timeout with alert 4; once it
        sent F3, a timeout does nothing.
        """
        pair = Pair()
        pair.hello()
        pair.server.timedOut()
        self.assertEqual(
            pair.serverOwner.failures, [(frames.ALERT_TIMEOUT, "handshake timed out")]
        )
        pair = Pair().run()
        pair.server.timedOut()
        self.assertEqual(pair.serverOwner.failures, [])

    def test_serverTimeoutThenLateAuth(self) -> None:
        """
        An F2 arriving after the timeout is ignored: no second report, no
        private-key operation.
        """
        counter = countPrivateOperations(self)
        pair = Pair()
        hello = pair.hello()
        pair.server.timedOut()
        pair.server.frameReceived(buildAuth(hello))
        self.assertEqual(len(pair.serverOwner.failures), 1)
        self.assertEqual(pair.serverOwner.results, [])
        self.assertEqual(counter.count, 0)

    def test_clientTimeout(self) -> None:
        """
        A client waiting for F1 or F3 fails with a L{ProtocolError} on a
        timeout; once established, a timeout does nothing.
        """
        pair = Pair()
        pair.client.timedOut()
        self.assertIsInstance(pair.clientError, ProtocolError)
        pair = Pair()
        pair.client.frameReceived(pair.hello())
        pair.client.timedOut()
        self.assertIsInstance(pair.clientError, ProtocolError)
        pair = Pair().run()
        pair.client.timedOut()
        self.assertEqual(pair.clientOwner.failures, [])

    def test_alerts(self) -> None:
        """
        Each alert code ends the client's handshake with its error, before
        F1 and after F2.
        """
        expected = {
            frames.ALERT_UNSUPPORTED_VERSION: HandshakeRefused,
            frames.ALERT_HANDSHAKE_FAILURE: ClientNotAuthorized,
            frames.ALERT_BUSY: ServerBusy,
            frames.ALERT_TIMEOUT: HandshakeRefused,
        }
        for code, errorType in expected.items():
            pair = Pair()
            pair.client.frameReceived(frames.Alert(code).encode())
            self.assertIsInstance(pair.clientError, errorType)
            pair = Pair()
            pair.client.frameReceived(pair.hello())
            pair.client.frameReceived(frames.Alert(code).encode())
            self.assertIsInstance(pair.clientError, errorType)
            self.assertEqual(len(pair.clientOwner.failures), 1)

    def test_clientUnexpectedFrames(self) -> None:
        """
        F3 before F1, a second F1, an F2 or garbage end the client's
        handshake with a L{ProtocolError}; later frames are ignored.
        """
        donor = Pair().run()
        cases = [
            lambda pair: [donor.f3],
            lambda pair: [pair.hello(), donor.f1],
            lambda pair: [donor.f2],
            lambda pair: [b"\x01"],
            lambda pair: [b"\x01\x10" + bytes(40)],
        ]
        for case in cases:
            pair = Pair()
            for frame in case(pair):
                pair.client.frameReceived(frame)
            self.assertEqual(len(pair.clientOwner.failures), 1, case)
            self.assertIsInstance(pair.clientError, ProtocolError)
            pair.client.frameReceived(donor.f3)
            self.assertEqual(len(pair.clientOwner.failures), 1)
            self.assertEqual(pair.clientOwner.results, [])

    def test_serverUnexpectedFrames(self) -> None:
        """
        A server sent an F1, F3, alert, protected frame or garbage instead
        of F2 answers alert 2; one before it said hello too.
        """
        donor = Pair().run()
        protected = b"\x01\x10" + bytes(40)
        for frame in (donor.f1, donor.f3, frames.Alert(2).encode(), protected, b""):
            pair = Pair()
            pair.hello()
            pair.server.frameReceived(frame)
            self.assertEqual(pair.alert, frames.ALERT_HANDSHAKE_FAILURE, frame[:2])
        pair = Pair()
        pair.server.frameReceived(donor.f2)
        self.assertEqual(pair.alert, frames.ALERT_HANDSHAKE_FAILURE)
        self.assertEqual(pair.serverOwner.frames, [])


class RefusalTests(unittest.SynchronousTestCase):
    """
    The server refuses bad F2s with the right alert, before any private-key
    operation whenever the refusal does not need one.
    """

    def setUp(self) -> None:
        self.counter = countPrivateOperations(self)

    def assertRefused(self, pair: Pair, code: int, privateOperations: int = 0) -> None:
        self.assertEqual(pair.alert, code, pair.reason)
        self.assertEqual(len(pair.serverOwner.failures), 1)
        self.assertEqual(pair.serverOwner.results, [])
        self.assertEqual(pair.clientOwner.results, [])
        self.assertEqual(len(pair.serverOwner.frames), 1, "only F1 was sent")
        self.assertEqual(self.counter.count, privateOperations)

    def test_unauthorized(self) -> None:
        """
        T11: an identity that is not authorized gets alert 2, after only the
        authorization question, with no private-key operation; the client
        reports that it was refused.
        """
        pair = Pair(directory=makeDirectory(authorized=False)).run()
        self.assertRefused(pair, frames.ALERT_HANDSHAKE_FAILURE)
        self.assertEqual(
            pair.directory.calls, [("isAuthorized", (clientIdentity().fingerprint,))]
        )
        self.assertIsInstance(pair.clientError, ClientNotAuthorized)

    def test_authorizedOtherIdentity(self) -> None:
        """
        Authorizing one identity does not admit another.
        """
        directory = makeDirectory(authorized={otherClientIdentity().fingerprint})
        self.assertRefused(Pair(directory=directory).run(), frames.ALERT_HANDSHAKE_FAILURE)

    def test_badSignature(self) -> None:
        """
        A flipped bit in F2's signature gets alert 2 before the directory is
        even asked (known and unknown identities take the same path), with no
        private-key operation.
        """
        offset = F2_FIELDS["signature"] + 100
        pair = Pair().run(f2=lambda body: flip(body, offset))
        self.assertRefused(pair, frames.ALERT_HANDSHAKE_FAILURE)
        self.assertEqual(pair.directory.calls, [])
        self.assertIn("signature", pair.reason)

    def test_knownKeyRandomSignature(self) -> None:
        """
        T12: someone with an authorized public key but not its private key
        (a random signature) gets alert 2 with no private-key operation.
        """
        pair = sendAuth(Pair(), lambda hello: buildAuth(hello, signature=os.urandom(256)))
        self.assertRefused(pair, frames.ALERT_HANDSHAKE_FAILURE)
        self.assertEqual(pair.directory.calls, [])

    def test_signedByOtherKey(self) -> None:
        """
        An F2 that names one identity key but is signed by another gets
        alert 2.
        """
        pair = sendAuth(
            Pair(),
            lambda hello: buildAuth(hello, signer=otherClientIdentity().privateKey),
        )
        self.assertRefused(pair, frames.ALERT_HANDSHAKE_FAILURE)

    def test_handBuiltAuthAccepted(self) -> None:
        """
        The hand-built F2 used by these tests is accepted when nothing in it
        is wrong, so each refusal below is caused by its one change.
        """
        pair = sendAuth(Pair(), lambda hello: buildAuth(hello))
        self.assertEqual(pair.serverOwner.failures, [])
        self.assertEqual(len(pair.serverOwner.results), 1)

    def test_newSessionRate(self) -> None:
        """
        Over the per-identity NEW limit: alert 3 (busy), no private-key
        operation, and the client reports L{ServerBusy}.
        """
        pair = Pair(directory=makeDirectory(admitNew=False)).run()
        self.assertRefused(pair, frames.ALERT_BUSY)
        self.assertEqual(pair.directory.names(), ["isAuthorized", "admitNewSession"])
        self.assertIsInstance(pair.clientError, ServerBusy)

    def test_privateOperationRate(self) -> None:
        """
        Over the server-wide private-key operation cap: alert 3, and the
        operation is not performed.
        """
        pair = Pair(directory=makeDirectory(admitPrivate=False)).run()
        self.assertRefused(pair, frames.ALERT_BUSY)

    def test_unsupportedVersion(self) -> None:
        """
        An F2 choosing a version the server did not offer (2, or 0) gets
        alert 1, with no private-key operation.
        """
        for version in (0, 2):
            pair = sendAuth(Pair(), lambda hello: buildAuth(hello, version=version))
            self.assertRefused(pair, frames.ALERT_UNSUPPORTED_VERSION)

    def test_smallIdentityKey(self) -> None:
        """
        T27: an F2 with an RSA-1024 identity key (signed by it) gets alert 2
        with no private-key operation.
        """
        key = smallKey()
        pair = sendAuth(
            Pair(),
            lambda hello: buildAuth(hello, identityDER=publicDER(key), signer=key),
        )
        self.assertRefused(pair, frames.ALERT_HANDSHAKE_FAILURE)

    def test_exponentThreeIdentityKey(self) -> None:
        """
        T27: an identity key with exponent 3 (signed by it) gets alert 2,
        refused by the key policy.
        """
        key = exponentThreeKey()
        pair = sendAuth(
            Pair(),
            lambda hello: buildAuth(hello, identityDER=publicDER(key), signer=key),
        )
        self.assertRefused(pair, frames.ALERT_HANDSHAKE_FAILURE)
        self.assertIn("exponent", pair.reason)

    def test_exponentThreeExchangeKey(self) -> None:
        """
        T27: an exchange key with exponent 3 (and an SPKI of the required 294
        bytes) gets alert 2.
        """
        pair = sendAuth(
            Pair(),
            lambda hello: buildAuth(hello, exchangeDER=publicDER(exponentThreeKey())),
        )
        self.assertRefused(pair, frames.ALERT_HANDSHAKE_FAILURE)

    def test_nonCanonicalIdentityKey(self) -> None:
        """
        T27: an identity key in non-canonical DER (it loads, but is not the
        key's one encoding, so it would have a second fingerprint) gets alert
        2, even with a good signature.
        """
        big = bigIdentity()
        pair = sendAuth(
            Pair(),
            lambda hello: buildAuth(
                hello, big, identityDER=withoutNullParameters(big.publicDER)
            ),
        )
        self.assertRefused(pair, frames.ALERT_HANDSHAKE_FAILURE)
        self.assertIn("non-canonical", pair.reason)

    def test_identityIsExchangeKey(self) -> None:
        """
        T27: an F2 whose identity key is also its exchange key (one RSA key
        for two schemes) gets alert 2.
        """
        pair = sendAuth(
            Pair(),
            lambda hello: buildAuth(hello, exchangeDER=clientIdentity().publicDER),
        )
        self.assertRefused(pair, frames.ALERT_HANDSHAKE_FAILURE)
        self.assertIn("same key", pair.reason)

    def test_lowOrderClientShare(self) -> None:
        """
        T26: an authenticated F2 with an all-zero or low-order X25519 share
        gets alert 2 and no session.
        """
        for share in LOW_ORDER_SHARES[:3]:
            pair = sendAuth(Pair(), lambda hello: buildAuth(hello, ephemeral=share))
            self.assertEqual(pair.alert, frames.ALERT_HANDSHAKE_FAILURE)
            self.assertIn("X25519", pair.reason)
            self.assertEqual(pair.serverOwner.results, [])

    def test_wrongOAEPLabel(self) -> None:
        """
        T33: a secret encrypted under another handshake's label (here, that
        of another F1) does not decrypt: alert 2.
        """
        otherHello = Pair().hello()
        label = b"SPC/1 hs oaep" + _h(frames.framed(otherHello))
        pair = sendAuth(Pair(), lambda hello: buildAuth(hello, label=label))
        self.assertRefused(pair, frames.ALERT_HANDSHAKE_FAILURE, privateOperations=1)
        self.assertIn("undecryptable", pair.reason)

    def test_secretOfWrongSize(self) -> None:
        """
        A transported secret that is not 32 bytes gets alert 2.
        """
        for size in (16, 33):
            self.counter.count = 0
            pair = sendAuth(Pair(), lambda hello: buildAuth(hello, secret=bytes(size)))
            self.assertRefused(pair, frames.ALERT_HANDSHAKE_FAILURE, privateOperations=1)


class ClientHelloCheckTests(unittest.SynchronousTestCase):
    """
    What the client checks in F1 before it sends anything: version,
    configuration (T9, T34), the server key (T10) and the X25519 share (T26).
    """

    def assertNothingSent(self, pair: Pair, errorType) -> None:
        self.assertIsInstance(pair.clientError, errorType)
        self.assertEqual(pair.clientOwner.frames, [])
        self.assertEqual(pair.clientOwner.results, [])

    def test_suiteMismatch(self) -> None:
        """
        T34: a client that expects ChaCha20-Poly1305 on channel 1 and meets
        A256CBC-HS512 aborts with a L{ConfigurationError} naming both, and
        sends nothing.
        """
        pair = Pair(
            suite=A256CBC_HS512, channel=1, clientSpec=ChannelSpec(1, 2, CHACHA20_POLY1305)
        ).run()
        self.assertNothingSent(pair, ConfigurationError)
        message = str(pair.clientError)
        self.assertIn("A256CBC-HS512", message)
        self.assertIn("ChaCha20-Poly1305", message)
        self.assertIn("port 1 of 2", message)

    def test_downgradeSuite(self) -> None:
        """
        T9: a man in the middle rewriting F1's suite from 0x02 to 0x01
        makes the client abort with a L{ConfigurationError}.
        """
        offset = F1_FIELDS["suite"]
        pair = Pair(suite=CHACHA20_POLY1305).run(f1=lambda body: flip(body, offset, 0x03))
        self.assertEqual(pair.f1[offset], A256CBC_HS512.suiteID)
        self.assertNothingSent(pair, ConfigurationError)

    def test_redirectChannel(self) -> None:
        """
        T9: F1 rewritten to another channel index or channel count makes the
        client abort with a L{ConfigurationError}.
        """
        for field, value in (("channel", 1), ("channelCount", 3)):
            def rewrite(body):
                hello = frames.ServerHello.decode(body)
                return hello._replace(**{field: value}).encode()

            pair = Pair(channel=0, channelCount=2).run(f1=rewrite)
            self.assertNothingSent(pair, ConfigurationError)

    def test_versionListRewritten(self) -> None:
        """
        T9: a rewritten version list is in the transcript the client signs,
        so the server refuses the F2 (alert 2, no private-key operation).
        """
        counter = countPrivateOperations(self)

        def rewrite(body):
            return frames.ServerHello.decode(body)._replace(versions=(3, 2, 1)).encode()

        pair = Pair().run(f1=rewrite)
        self.assertEqual(len(pair.clientOwner.frames), 1)
        self.assertEqual(frames.ClientAuth.decode(pair.f2).version, 1)
        self.assertEqual(pair.alert, frames.ALERT_HANDSHAKE_FAILURE)
        self.assertIn("signature", pair.reason)
        self.assertEqual(counter.count, 0)
        self.assertIsInstance(pair.clientError, ClientNotAuthorized)

    def test_noCommonVersion(self) -> None:
        """
        An F1 offering only versions the client lacks ends the handshake
        with a L{ProtocolError} and nothing sent.
        """

        def rewrite(body):
            return frames.ServerHello.decode(body)._replace(versions=(2,)).encode()

        self.assertNothingSent(Pair().run(f1=rewrite), ProtocolError)

    def test_pinnedKeyChanged(self) -> None:
        """
        T10: an F1 with another host key, for a client pinned to the real
        one, fails with L{ServerKeyChanged} before any F2 is sent.
        """
        impostor = otherClientIdentity()

        def rewrite(body):
            return frames.ServerHello.decode(body)._replace(hostKey=impostor.publicDER).encode()

        pair = Pair().run(f1=rewrite)
        self.assertNothingSent(pair, ServerKeyChanged)
        self.assertEqual(pair.verify.asked, [impostor.fingerprint])

    def test_unknownServerStrict(self) -> None:
        """
        T10: with strict C{known_hosts} checking and no entry, the client
        fails with L{UnknownServerKey} and sends nothing; the file is not
        created.
        """
        path = self.mktemp()
        knownHosts = KnownHosts.fromFile(path)
        pair = Pair(verify=lambda fp: knownHosts.check(HOST_PORT, fp)).run()
        self.assertNothingSent(pair, UnknownServerKey)
        self.assertFalse(os.path.exists(path))

    def test_acceptNewFirstContact(self) -> None:
        """
        T10: with C{--accept-new} and no entry, the handshake succeeds and
        the server's key is now recorded in C{known_hosts}.
        """
        path = self.mktemp()
        knownHosts = KnownHosts.fromFile(path, acceptNew=True)
        pair = Pair(verify=lambda fp: knownHosts.check(HOST_PORT, fp)).run()
        self.assertIsNotNone(pair.clientResult)
        self.assertEqual(
            KnownHosts.fromFile(path).lookup(HOST_PORT), hostIdentity().fingerprint
        )

    def test_acceptNewChangedKey(self) -> None:
        """
        T10: with C{--accept-new} and an entry for another key, the client
        fails with L{ServerKeyChanged} and the file keeps the old entry.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(f"{HOST_PORT} {otherClientIdentity().fingerprint}\n")
        knownHosts = KnownHosts.fromFile(path, acceptNew=True)
        pair = Pair(verify=lambda fp: knownHosts.check(HOST_PORT, fp)).run()
        self.assertNothingSent(pair, ServerKeyChanged)
        self.assertEqual(
            KnownHosts.fromFile(path).lookup(HOST_PORT), otherClientIdentity().fingerprint
        )

    def test_lowOrderServerShare(self) -> None:
        """
        T26: an F1 with an all-zero or low-order X25519 share ends the
        client's handshake with a L{ProtocolError}; no F2 is sent.
        """
        for share in LOW_ORDER_SHARES:
            def rewrite(body):
                return frames.ServerHello.decode(body)._replace(ephemeral=share).encode()

            self.assertNothingSent(Pair().run(f1=rewrite), ProtocolError)

    def test_swappedServerShare(self) -> None:
        """
        T10: a man in the middle forwarding the real F1 with its own X25519
        share cannot finish the handshake: the server refuses the F2 signed
        over the altered F1, and an F3 forged by the attacker (who knows its
        X25519 secret but not the transported secret) fails the client's
        Finished MAC check.
        """
        counter = countPrivateOperations(self)
        attacker = asymmetric.Ephemeral()

        def rewrite(body):
            return frames.ServerHello.decode(body)._replace(ephemeral=attacker.public).encode()

        pair = Pair().run(f1=rewrite)
        self.assertEqual(pair.alert, frames.ALERT_HANDSHAKE_FAILURE)
        self.assertEqual(counter.count, 0)

        pair = Pair()
        pair.f1 = rewrite(pair.hello())
        pair.client.frameReceived(pair.f1)
        f2 = pair.clientOwner.frames[0]
        auth = frames.ClientAuth.decode(f2)
        guess = keyschedule.handshakeSecret(attacker.exchange(auth.ephemeral), os.urandom(32))
        th2Input = frames.framed(pair.f1) + frames.framed(f2)
        th2 = _h(th2Input)
        unsigned = frames.ServerFinished(
            keyschedule.sessionID(guess, th2), 0, frames.Params(), b""
        ).unsigned()
        mac = hmac.new(
            keyschedule.finishedKey(guess, th2),
            _h(th2Input, frames.LENGTH.pack(len(unsigned) + 32), unsigned),
            hashlib.sha256,
        ).digest()
        pair.client.frameReceived(unsigned + mac)
        self.assertEqual(pair.clientOwner.results, [])
        self.assertIsInstance(pair.clientError, ProtocolError)
        self.assertIn("Finished MAC", str(pair.clientError))


class HandmadeServer:
    """
    A server written from docs/protocol.rst section 4.2 instead of the
    server code: it can send an F3 with a valid MAC but contents an honest
    server never sends.

    @ivar hello: its F1 body.
    """

    def __init__(self, spec: ChannelSpec = ChannelSpec(0, 2, CHACHA20_POLY1305)) -> None:
        self._ephemeral = asymmetric.Ephemeral()
        self.hello = frames.ServerHello(
            (1,), spec.suite.suiteID, spec.channel, spec.channelCount, os.urandom(32),
            self._ephemeral.public, hostIdentity().publicDER,
        ).encode()

    def finished(self, auth: bytes, session=None, epoch=0, params=frames.Params()):
        """
        F3 for the client's F2 C{auth}.

        @return: C{(F3 body, HS, th_conn)}.
        """
        fields = frames.ClientAuth.decode(auth)
        helloFrame = frames.framed(self.hello)
        ts = asymmetric.decrypt(
            hostIdentity().privateKey, fields.encryptedSecret,
            b"SPC/1 hs oaep" + _h(helloFrame),
        )
        secret = keyschedule.extract(
            b"SPC/1 hs", self._ephemeral.exchange(fields.ephemeral) + ts
        )
        th2Input = helloFrame + frames.framed(auth)
        th2 = _h(th2Input)
        if session is None:
            session = keyschedule.expand(secret, b"sid", th2, 16)
        unsigned = frames.ServerFinished(session, epoch, params, b"").unsigned()
        finKey = keyschedule.expand(secret, b"s fin", th2, 32)
        mac = hmac.new(
            finKey, _h(th2Input, frames.LENGTH.pack(len(unsigned) + 32), unsigned),
            hashlib.sha256,
        ).digest()
        body = unsigned + mac
        return body, secret, _h(th2Input, frames.framed(body))


class ClientFinishedCheckTests(unittest.SynchronousTestCase):
    """
    What the client checks in an authentic F3 (docs section 4.4), against
    a hand-made server.
    """

    def exchange(self, **finished):
        server = HandmadeServer()
        pair = Pair()
        pair.client.frameReceived(server.hello)
        auth = pair.clientOwner.frames[0]
        body, secret, thConn = server.finished(auth, **finished)
        pair.client.frameReceived(body)
        return pair, secret, thConn

    def test_asDocumented(self) -> None:
        """
        The client accepts the hand-made server's F3, and its S_0 is the
        documented C{LExpand(HS, "epoch", u32(0) || th_conn, 32)}.
        """
        pair, secret, thConn = self.exchange()
        result = pair.clientResult
        self.assertIsNotNone(result)
        self.assertEqual(
            result.epochSecret,
            keyschedule.expand(secret, b"epoch", b"\x00\x00\x00\x00" + thConn, 32),
        )

    def test_newSessionAtEpochOne(self) -> None:
        """
        A NEW session announced at epoch 1 is refused.
        """
        pair, _, _ = self.exchange(epoch=1)
        self.assertIsNone(pair.clientResult)
        self.assertIn("epoch 0", str(pair.clientError))

    def test_otherSessionID(self) -> None:
        """
        A NEW session whose id is not the one derived from the transcript is
        refused.
        """
        pair, _, _ = self.exchange(session=os.urandom(16))
        self.assertIsNone(pair.clientResult)
        self.assertIn("session id", str(pair.clientError))

    def test_badParams(self) -> None:
        """
        Out-of-bounds params under a valid MAC are refused.
        """
        pair, _, _ = self.exchange(params=frames.Params(heartbeatInterval=10))
        self.assertIsNone(pair.clientResult)
        self.assertIn("heartbeat interval", str(pair.clientError))


class CorruptionTests(unittest.SynchronousTestCase):
    """
    T3: a corrupted byte anywhere in F1, F2 or F3 ends the handshake, never
    in success; corruption of F1 or F2 is caught before the server's
    private-key operation.
    """

    def setUp(self) -> None:
        self.counter = countPrivateOperations(self)

    def assertFailedSafely(self, pair: Pair, what: str) -> None:
        self.assertEqual(pair.clientOwner.results, [], what)
        self.assertTrue(pair.failed(), what)

    def test_serverHello(self) -> None:
        """
        A single-bit corruption at each of the 369 bytes of F1 ends in a
        client abort or an alert, and the server never decrypts.
        """
        for offset in range(369):
            pair = Pair().run(f1=lambda body: flip(body, offset))
            self.assertFailedSafely(pair, f"F1 offset {offset}")
            self.assertEqual(pair.serverOwner.results, [], offset)
        self.assertEqual(self.counter.count, 0)

    def test_clientAuth(self) -> None:
        """
        A single-bit corruption at each of the 1195 bytes of a NEW F2 gets
        alert 1 or 2 before any private-key operation.
        """
        for offset in range(1195):
            pair = Pair().run(f2=lambda body: flip(body, offset))
            self.assertFailedSafely(pair, f"F2 offset {offset}")
            self.assertIn(pair.alert, (1, 2), offset)
            self.assertEqual(pair.serverOwner.results, [], offset)
        self.assertEqual(self.counter.count, 0)

    def test_clientAuthTruncatedOrExtended(self) -> None:
        """
        An F2 cut short or with a byte appended gets alert 2.
        """
        for change in (lambda b: b[:-1], lambda b: b + b"\x00", lambda b: b[:100]):
            pair = Pair().run(f2=change)
            self.assertEqual(pair.alert, frames.ALERT_HANDSHAKE_FAILURE)
        self.assertEqual(self.counter.count, 0)

    def test_serverFinished(self) -> None:
        """
        Every single-bit corruption of F3 (all 94 bytes) makes the client
        abort with a L{ProtocolError}.
        """
        for offset in range(94):
            pair = Pair().run(f3=lambda body: flip(body, offset))
            self.assertEqual(pair.clientOwner.results, [], offset)
            self.assertIsInstance(pair.clientError, ProtocolError, offset)

    def test_joinAuth(self) -> None:
        """
        Every sampled corruption of a JOIN F2 gets an alert before any
        private-key operation.
        """
        first = Pair().run()
        ticket = ticketFor(first)
        target = JoinTarget(first.serverResult.epochSecret, 0, frames.Params())
        self.counter.count = 0
        for offset in sample(1195, F2_FIELDS["identityKey"] + 2, 7):
            pair = Pair(
                directory=makeDirectory(target=target), join=ticket
            ).run(f2=lambda body: flip(body, offset))
            self.assertFailedSafely(pair, f"JOIN F2 offset {offset}")
            self.assertEqual(pair.serverOwner.results, [], offset)
        self.assertEqual(self.counter.count, 0)


def ticketFor(pair: Pair, epoch: int = 0, secret: bytes | None = None, acceptable=None):
    """
    The join ticket of the session C{pair} created.
    """
    result = pair.clientResult
    return JoinTicket(
        result.session,
        epoch,
        result.epochSecret if secret is None else secret,
        result.serverKey,
        result.params,
        frozenset({epoch} if acceptable is None else acceptable),
    )


class JoinTests(unittest.SynchronousTestCase):
    """
    A connection joining an existing session (amendments A1 and A9).
    """

    def setUp(self) -> None:
        self.first = Pair().run()
        self.secret = self.first.serverResult.epochSecret
        self.counter = countPrivateOperations(self)

    def test_join(self) -> None:
        """
        A join with the session's ticket succeeds on both sides: same
        session id, F3 epoch = the session's epoch, no new S_0, and the
        connection's keys interoperate but differ from the first
        connection's.
        """
        target = JoinTarget(self.secret, 0, frames.Params())
        pair = Pair(
            directory=makeDirectory(target=target), join=ticketFor(self.first), channel=1
        ).run()
        server, client = pair.serverResult, pair.clientResult
        self.assertIsNotNone(server)
        self.assertIsNotNone(client)
        self.assertFalse(server.isNew)
        self.assertFalse(client.isNew)
        self.assertEqual(server.session, self.first.serverResult.session)
        self.assertEqual(client.session, server.session)
        self.assertEqual((server.epoch, client.epoch), (0, 0))
        self.assertIsNone(server.epochSecret)
        self.assertIsNone(client.epochSecret)
        self.assertEqual(frames.ClientAuth.decode(pair.f2).session, server.session)
        self.assertEqual(frames.ServerFinished.decode(pair.f3).session, server.session)
        assertInteroperate(self, server.keys, client.keys, self.secret)
        assertKeysDiffer(
            self, client.keys, self.first.serverResult.keys, self.secret, isServer=True
        )
        assertKeysDiffer(
            self, server.keys, self.first.clientResult.keys, self.secret, isServer=False
        )
        self.assertEqual(
            pair.directory.names(),
            ["isAuthorized", "joinTarget", "admitJoin", "admitPrivateOperation"],
        )
        self.assertEqual(
            pair.directory.calls[1][1],
            (server.session, clientIdentity().fingerprint, exchangeKeyDER(), 0),
        )
        self.assertEqual(self.counter.count, 1)
        self.assertEqual(pair.verify.asked, [], "a join compares the session's key")

    def test_joinAnnouncesNewerEpoch(self) -> None:
        """
        A client joining at its committed epoch 0 while holding epoch 1 as
        pending accepts an F3 announcing epoch 1 (an implicit commit).
        """
        target = JoinTarget(self.secret, 1, frames.Params())
        pair = Pair(
            directory=makeDirectory(target=target),
            join=ticketFor(self.first, acceptable={0, 1}),
        ).run()
        self.assertEqual(pair.serverResult.epoch, 1)
        self.assertEqual(pair.clientResult.epoch, 1)
        self.assertEqual(frames.ServerFinished.decode(pair.f3).epoch, 1)

    def test_joinUnknownNewerEpoch(self) -> None:
        """
        An F3 announcing an epoch the client does not hold abandons the
        join with a L{ProtocolError}; one older than the client's is a
        L{ProtocolError} too.
        """
        target = JoinTarget(self.secret, 2, frames.Params())
        pair = Pair(directory=makeDirectory(target=target), join=ticketFor(self.first)).run()
        self.assertIsNone(pair.clientResult)
        self.assertIsInstance(pair.clientError, ProtocolError)

        ticket = ticketFor(self.first, epoch=3, acceptable={3})
        target = JoinTarget(self.secret, 2, frames.Params())
        pair = Pair(directory=makeDirectory(target=target), join=ticket).run()
        self.assertIsNone(pair.clientResult)
        self.assertIn("older epoch", str(pair.clientError))

    def test_joinChangedParams(self) -> None:
        """
        A join whose F3 carries other params than the session's is refused
        by the client.
        """
        target = JoinTarget(self.secret, 0, frames.Params(heartbeatInterval=1000))
        pair = Pair(directory=makeDirectory(target=target), join=ticketFor(self.first)).run()
        self.assertIsNone(pair.clientResult)
        self.assertIsInstance(pair.clientError, ProtocolError)

    def test_joinWithoutEpochSecret(self) -> None:
        """
        A client that does not hold the session's epoch secret cannot use a
        joined connection: the F3 MAC, keyed from the join secret, fails.
        """
        target = JoinTarget(self.secret, 0, frames.Params())
        ticket = ticketFor(self.first, secret=os.urandom(32))
        pair = Pair(directory=makeDirectory(target=target), join=ticket).run()
        self.assertIsNone(pair.clientResult)
        self.assertIn("Finished MAC", str(pair.clientError))

    def test_joinServerKeyChanged(self) -> None:
        """
        A join to a server whose F1 carries another host key than the
        session's is abandoned with a L{ProtocolError} before F2 is sent.
        """
        ticket = ticketFor(self.first)._replace(serverKey=otherClientIdentity().publicDER)
        pair = Pair(join=ticket).run()
        self.assertEqual(pair.clientOwner.frames, [])
        self.assertIsInstance(pair.clientError, ProtocolError)

    def test_joinRate(self) -> None:
        """
        Over the session's join limit: alert 3, no private-key operation.
        """
        target = JoinTarget(self.secret, 0, frames.Params())
        pair = Pair(
            directory=makeDirectory(target=target, admitJoin=False),
            join=ticketFor(self.first),
        ).run()
        self.assertEqual(pair.alert, frames.ALERT_BUSY)
        self.assertEqual(self.counter.count, 0)

    def test_joinNoTarget(self) -> None:
        """
        A join the directory has no target for gets alert 2 before the join
        rate is counted, with no private-key operation.
        """
        pair = Pair(directory=makeDirectory(target=None), join=ticketFor(self.first)).run()
        self.assertEqual(pair.alert, frames.ALERT_HANDSHAKE_FAILURE)
        self.assertEqual(pair.directory.names(), ["isAuthorized", "joinTarget"])
        self.assertEqual(self.counter.count, 0)


class SessionDirectoryJoinTests(unittest.SynchronousTestCase):
    """
    Joins checked by a real L{SessionDirectory}: only the session's own
    identity, with its exchange key, at a held epoch, may join.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        authorized = AuthorizedKeys(
            "authorized_keys",
            [
                (clientIdentity().fingerprint, "alice"),
                (otherClientIdentity().fingerprint, "bob"),
            ],
        )
        self.directory = SessionDirectory(
            self.clock, hostIdentity(), authorized, None, channelCount=2
        )
        self.first = Pair(directory=self.directory).run()
        result = self.first.serverResult
        self.session = Session(
            result.session, True, result.fingerprint, result.params, result.epoch,
            result.epochSecret, None, self.clock, exchangeKeyDER=result.exchangeKeyDER,
        )
        self.directory.sessions[result.session] = self.session
        self.counter = countPrivateOperations(self)

    def join(self, client=None, ticket=None, exchangeDER=None) -> Pair:
        return Pair(
            directory=self.directory,
            client=client,
            join=ticket or ticketFor(self.first),
            exchangeDER=exchangeDER,
            channel=1,
        ).run()

    def test_join(self) -> None:
        """
        The session's own client joins.
        """
        pair = self.join()
        self.assertIsNotNone(pair.serverResult)
        self.assertIsNotNone(pair.clientResult)
        self.assertEqual(self.counter.count, 1)

    def test_otherIdentity(self) -> None:
        """
        Another authorized identity holding the session's ticket and
        presenting the session's exchange key is refused with alert 2, with
        no private-key operation.
        """
        pair = self.join(client=otherClientIdentity())
        self.assertEqual(pair.alert, frames.ALERT_HANDSHAKE_FAILURE)
        self.assertIsNone(pair.serverResult)
        self.assertEqual(self.counter.count, 0)

    def test_otherExchangeKey(self) -> None:
        """
        The session's identity with another exchange key is refused.
        """
        pair = self.join(exchangeDER=otherExchangeKeyDER())
        self.assertEqual(pair.alert, frames.ALERT_HANDSHAKE_FAILURE)
        self.assertEqual(self.counter.count, 0)

    def test_unknownSession(self) -> None:
        """
        T31: a join for a session id the server does not know gets alert 2.
        """
        ticket = ticketFor(self.first)._replace(session=os.urandom(16))
        pair = self.join(ticket=ticket)
        self.assertEqual(pair.alert, frames.ALERT_HANDSHAKE_FAILURE)
        self.assertEqual(self.counter.count, 0)

    def test_staleEpoch(self) -> None:
        """
        T31: a join at an epoch whose secret the session no longer (or never)
        held gets alert 2.
        """
        ticket = ticketFor(self.first, epoch=5, acceptable={5})
        pair = self.join(ticket=ticket)
        self.assertEqual(pair.alert, frames.ALERT_HANDSHAKE_FAILURE)
        self.assertEqual(self.counter.count, 0)

    def test_endedSession(self) -> None:
        """
        A session that ended can no longer be joined.
        """
        self.session.close()
        self.assertEqual(self.join().alert, frames.ALERT_HANDSHAKE_FAILURE)

    def test_joinRate(self) -> None:
        """
        Joins beyond 4 x channel_count per minute get alert 3 without a
        private-key operation; a minute later joins are admitted again.
        """
        self.directory.limits = Limits(joinsPerChannelPerMinute=1)
        self.assertIsNotNone(self.join().serverResult)
        self.assertIsNotNone(self.join().serverResult)
        self.assertEqual(self.counter.count, 2)
        self.assertEqual(self.join().alert, frames.ALERT_BUSY)
        self.assertEqual(self.counter.count, 2)
        self.clock.advance(60.1)
        self.assertIsNotNone(self.join().serverResult)


class SessionDirectoryLimitTests(unittest.SynchronousTestCase):
    """
    The NEW and private-key limits of a real L{SessionDirectory}, in fake
    time.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.counter = countPrivateOperations(self)

    def directory(self, **limits) -> SessionDirectory:
        return SessionDirectory(
            self.clock, hostIdentity(), AuthorizedKeys("authorized_keys", [
                (clientIdentity().fingerprint, None),
                (otherClientIdentity().fingerprint, None),
            ]), None, channelCount=2, limits=Limits(**limits),
        )

    def test_newSessionsPerIdentity(self) -> None:
        """
        Beyond C{newSessionsPerIdentity} NEW handshakes in the window, the
        identity gets alert 3 with no private-key operation, while another
        identity is still admitted; after the window it is admitted again.
        """
        directory = self.directory(newSessionsPerIdentity=2, newSessionWindow=10.0)
        for _ in range(2):
            self.assertIsNotNone(Pair(directory=directory).run().serverResult)
        self.assertEqual(self.counter.count, 2)
        self.assertEqual(Pair(directory=directory).run().alert, frames.ALERT_BUSY)
        self.assertEqual(self.counter.count, 2)
        other = Pair(directory=directory, client=otherClientIdentity()).run()
        self.assertIsNotNone(other.serverResult)
        self.clock.advance(10.1)
        self.assertIsNotNone(Pair(directory=directory).run().serverResult)

    def test_privateOperationsPerSecond(self) -> None:
        """
        Beyond C{privateOperationsPerSecond} host-key decryptions in a
        second, any identity gets alert 3 without one; a second later the
        server decrypts again.
        """
        directory = self.directory(privateOperationsPerSecond=1)
        self.assertIsNotNone(Pair(directory=directory).run().serverResult)
        busy = Pair(directory=directory, client=otherClientIdentity()).run()
        self.assertEqual(busy.alert, frames.ALERT_BUSY)
        self.assertEqual(self.counter.count, 1)
        self.clock.advance(1.1)
        self.assertIsNotNone(Pair(directory=directory).run().serverResult)


class ReplayTests(unittest.SynchronousTestCase):
    """
    T5: a captured F2 is useless on another connection.
    """

    def test_replayNewAuth(self) -> None:
        """
        A NEW F2 replayed to a fresh server handshake (new nonce and share in
        its F1) gets alert 2 with no private-key operation.
        """
        counter = countPrivateOperations(self)
        captured = Pair().run().f2
        self.assertEqual(counter.count, 1)
        pair = sendAuth(Pair(), lambda hello: captured)
        self.assertEqual(pair.alert, frames.ALERT_HANDSHAKE_FAILURE)
        self.assertIn("signature", pair.reason)
        self.assertEqual(counter.count, 1)

    def test_replayJoinAuth(self) -> None:
        """
        A JOIN F2 replayed to a fresh server handshake gets alert 2 with no
        private-key operation.
        """
        first = Pair().run()
        target = JoinTarget(first.serverResult.epochSecret, 0, frames.Params())
        captured = Pair(directory=makeDirectory(target=target), join=ticketFor(first)).run().f2
        counter = countPrivateOperations(self)
        pair = sendAuth(Pair(directory=makeDirectory(target=target)), lambda hello: captured)
        self.assertEqual(pair.alert, frames.ALERT_HANDSHAKE_FAILURE)
        self.assertEqual(counter.count, 0)


class ConnectionKeysTests(unittest.SynchronousTestCase):
    """
    Tests for L{spc.protocol.recordlayer.ConnectionKeys}, as handshakes make them.
    """

    def test_epochsDiffer(self) -> None:
        """
        The same connection's ciphers under two epoch secrets do not
        interoperate.
        """
        pair = Pair(suite=AES256_GCM).run()
        send, _ = pair.clientResult.keys.ciphers(os.urandom(32), False)
        _, receive = pair.serverResult.keys.ciphers(pair.serverResult.epochSecret, True)
        aad = b"\x00" * frames.AAD_SIZE
        self.assertRaises(ProtocolError, receive.open, 0, aad, send.seal(0, aad, b"x"))

    def test_reprRedacted(self) -> None:
        """
        The repr names the channel but shows no secret.
        """
        keys = Pair().run().serverResult.keys
        self.assertEqual(repr(keys), "<ConnectionKeys channel=0 (redacted)>")


class CheckParamsTests(unittest.SynchronousTestCase):
    """
    Tests for L{handshake.checkParams}.
    """

    def test_defaults(self) -> None:
        """
        The default parameters pass.
        """
        handshake.checkParams(frames.Params())

    def test_each(self) -> None:
        """
        Each out-of-bounds parameter is named in the error.
        """
        cases = {
            "heartbeat interval": dict(heartbeatInterval=99),
            "heartbeat miss limit": dict(heartbeatMissLimit=0),
            "rotation interval": dict(rotationInterval=15000),
            "inner size": dict(maxInner=100),
            "message size": dict(maxMessageSize=0),
            "in-flight messages": dict(maxInflightMessages=0),
            "reassembly budget": dict(reassemblyBudget=1000),
        }
        for name, change in cases.items():
            error = self.assertRaises(
                ProtocolError, handshake.checkParams, frames.Params(**change)
            )
            self.assertIn(name, str(error))
