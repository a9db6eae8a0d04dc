"""
Tests for the PAIR machines (L{spc.protocol.serverpairing},
L{spc.protocol.clientpairing}) and frames (L{spc.protocol.pairframes}):
driven against each other by hand, with recording owners and desk, through
the server's handshake as a daemon runs it, and with a count of the
server's private-key operations.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from spc.crypto import pake
from spc.crypto.suites import CHACHA20_POLY1305
from spc.errors import (
    AuthenticationFailed,
    ConfigurationError,
    NoInvite,
    PairingRefused,
    ProtocolError,
    ServerBusy,
    ServerKeyChanged,
    WrongCode,
)
from spc.keys.trust import PinnedKey
from spc.protocol import frames, pairframes
from spc.protocol.clientpairing import ClientPairing
from spc.protocol.handshake import ChannelSpec
from spc.protocol.paircode import PairCode, parseCode
from spc.protocol.pairing import Invite, pairingRefusal
from spc.protocol.serverhandshake import ServerHandshake
from tests.common import (
    clientIdentity,
    countPrivateOperations,
    hostIdentity,
    makeDirectory,
    otherClientIdentity,
)

CODE = parseCode("7-orbit-velvet")
SOURCE = "192.0.2.7:40000"


class FakeDesk:
    """
    A L{spc.protocol.pairing.PairingDesk} with one invite, recording calls.

    @ivar invites: pending invites by slot; a claim removes one.
    @ivar admit: what L{admitPairing} answers.
    @ivar paired: C{(invite, fingerprint, source)} of each success.
    @ivar failed: C{(invite, reason, source)} of each failure.
    @ivar claims: slots asked for.
    @ivar recordError: raised by L{invitePaired}, if set.
    """

    def __init__(self, code: PairCode = CODE, name: str = "alice", permanent: bool = True):
        self.invites = {code.slot: Invite(code.slot, code.password(), name, permanent)}
        self.admit = True
        self.paired: list = []
        self.failed: list = []
        self.claims: list[int] = []
        self.recordError: Exception | None = None

    def admitPairing(self, source: str) -> bool:
        return self.admit

    def claimInvite(self, slot: int, source: str):
        self.claims.append(slot)
        return self.invites.pop(slot, None)

    def invitePaired(self, invite, fingerprint: str, source: str) -> None:
        if self.recordError is not None:
            raise self.recordError
        self.paired.append((invite, fingerprint, source))

    def inviteFailed(self, invite, reason: str, source: str) -> None:
        self.failed.append((invite, reason, source))


class ServerOwner:
    """
    The server connection's side: frames sent, the alert and reason of a
    failure, whether it ended without a session.
    """

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.failures: list[tuple[int, str]] = []
        self.ended = False
        self.results: list = []

    def sendFrame(self, body: bytes) -> None:
        self.frames.append(body)

    def handshakeFailed(self, code: int, reason: str) -> None:
        self.failures.append((code, reason))

    def handshakeSucceeded(self, result) -> None:
        self.results.append(result)

    def endWithoutSession(self) -> None:
        self.ended = True

    def peerAddress(self) -> str:
        return SOURCE


class ClientOwner:
    """
    The client connection's side: frames sent, and the outcome.
    """

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.paired: list = []
        self.failures: list = []

    def sendFrame(self, body: bytes) -> None:
        self.frames.append(body)

    def pairingSucceeded(self, paired) -> None:
        self.paired.append(paired)

    def pairingFailed(self, error) -> None:
        self.failures.append(error)


def makeServer(desk=None, channel: int = 0, owner=None):
    """
    A started server handshake of channel C{channel} with a pairing desk.

    @return: the handshake, its owner and the desk.
    """
    desk = FakeDesk() if desk is None else desk
    owner = owner or ServerOwner()
    host = hostIdentity()
    handshake = ServerHandshake(
        ChannelSpec(channel, 2, CHACHA20_POLY1305),
        host.privateKey,
        host.publicDER,
        frames.Params(),
        makeDirectory(),
        owner,
        pairing=desk,
    )
    handshake.start()
    return handshake, owner, desk


def makeClient(code: PairCode = CODE, identity=None, check=None):
    identity = identity or clientIdentity()
    owner = ClientOwner()
    asked: list[str] = []

    def checkServerKey(fingerprint: str) -> None:
        asked.append(fingerprint)
        if check is not None:
            check(fingerprint)

    pairing = ClientPairing(code, identity.publicDER, checkServerKey, owner)
    pairing.asked = asked
    return pairing, owner


def pump(server, serverOwner, client, clientOwner, rewrite=lambda step, body: body):
    """
    Carry frames between the two until neither sends more; C{rewrite} may
    change each frame on the way (a man in the middle): it is given the
    frame's number in the exchange (0 for F1) and its body.
    """
    sent = {id(serverOwner): 0, id(clientOwner): 0}
    step = 0
    moved = True
    while moved:
        moved = False
        for owner, peer in ((serverOwner, client), (clientOwner, server)):
            while sent[id(owner)] < len(owner.frames):
                body = owner.frames[sent[id(owner)]]
                sent[id(owner)] += 1
                peer.frameReceived(rewrite(step, body))
                step += 1
                moved = True


class PairingTests(unittest.SynchronousTestCase):
    """
    A client and a server pairing, end to end in memory.
    """

    def test_paired(self) -> None:
        """
        With the right code each side learns the other's key: the desk is
        told the client's fingerprint, the client gets the host key it saw
        in F1, the name and the permanence, and the server ends the
        connection without a session.
        """
        server, serverOwner, desk = makeServer()
        client, clientOwner = makeClient()
        pump(server, serverOwner, client, clientOwner)
        self.assertEqual(clientOwner.failures, [])
        self.assertEqual(serverOwner.failures, [])
        [paired] = clientOwner.paired
        self.assertEqual(paired.serverKey, hostIdentity().publicDER)
        self.assertEqual(paired.serverFingerprint, hostIdentity().fingerprint)
        self.assertEqual((paired.name, paired.permanent, paired.channelCount), ("alice", True, 2))
        [(invite, fingerprint, source)] = desk.paired
        self.assertEqual(
            (invite.slot, fingerprint, source), (7, clientIdentity().fingerprint, SOURCE)
        )
        self.assertTrue(serverOwner.ended)
        self.assertEqual(serverOwner.results, [])
        self.assertEqual(client.asked, [hostIdentity().fingerprint])
        self.assertEqual([len(frame) for frame in clientOwner.frames[:1]], [3 + 2 + 33])

    def test_threeWords(self) -> None:
        """
        A three-word code pairs as well.
        """
        code = parseCode("12-zinc-acorn-tulip")
        server, serverOwner, desk = makeServer(FakeDesk(code, "", False))
        client, clientOwner = makeClient(code)
        pump(server, serverOwner, client, clientOwner)
        [paired] = clientOwner.paired
        self.assertEqual((paired.name, paired.permanent), ("", False))

    def test_wrongCode(self) -> None:
        """
        One wrong word: the server refuses frame 3 with "wrong code", the
        invite is used up and reported failed, nothing is paired, and the
        client reports L{WrongCode}.
        """
        server, serverOwner, desk = makeServer()
        client, clientOwner = makeClient(parseCode("7-orbit-violin"))
        pump(server, serverOwner, client, clientOwner)
        self.assertEqual(serverOwner.failures, [(frames.ALERT_WRONG_CODE, "the code was wrong")])
        self.assertEqual(desk.paired, [])
        self.assertEqual([(i.slot, why) for i, why, _ in desk.failed], [(7, "the code was wrong")])
        self.assertEqual(desk.invites, {})
        self.assertFalse(serverOwner.ended)
        client.frameReceived(frames.Alert(frames.ALERT_WRONG_CODE).encode())
        [error] = clientOwner.failures
        self.assertIsInstance(error, WrongCode)
        self.assertEqual(clientOwner.paired, [])

    def test_usedOnce(self) -> None:
        """
        After a failed attempt, the right code finds no invite: alert 5,
        no SPAKE2 answer.
        """
        server, serverOwner, desk = makeServer()
        client, clientOwner = makeClient(parseCode("7-orbit-violin"))
        pump(server, serverOwner, client, clientOwner)
        again, againOwner, _ = makeServer(desk)
        client, clientOwner = makeClient()
        pump(again, againOwner, client, clientOwner)
        self.assertEqual(againOwner.failures, [(frames.ALERT_NO_INVITE, "no open invite 7")])
        self.assertEqual(len(againOwner.frames), 1)
        self.assertEqual(desk.claims, [7, 7])

    def test_noInvite(self) -> None:
        """
        A code whose slot names no invite: alert 5 at once, and the client
        reports L{NoInvite} naming the number.
        """
        server, serverOwner, desk = makeServer()
        client, clientOwner = makeClient(parseCode("8-orbit-velvet"))
        pump(server, serverOwner, client, clientOwner)
        self.assertEqual(serverOwner.failures, [(frames.ALERT_NO_INVITE, "no open invite 8")])
        self.assertEqual(desk.failed, [])
        self.assertIn(7, desk.invites)
        client.frameReceived(frames.Alert(frames.ALERT_NO_INVITE).encode())
        [error] = clientOwner.failures
        self.assertIsInstance(error, NoInvite)
        self.assertIn("numbered: 8;", str(error))

    def test_rateLimited(self) -> None:
        """
        Over the desk's rate limit the attempt is answered "busy" before
        any invite is looked at, so it does not use one up.
        """
        desk = FakeDesk()
        desk.admit = False
        server, serverOwner, _ = makeServer(desk)
        client, clientOwner = makeClient()
        pump(server, serverOwner, client, clientOwner)
        self.assertEqual(serverOwner.failures[0][0], frames.ALERT_BUSY)
        self.assertEqual(desk.claims, [])
        self.assertIn(7, desk.invites)

    def test_noPrivateOperation(self) -> None:
        """
        A pairing, right or wrong, costs the server no private-key
        operation, through the handshake as the daemon runs it.
        """
        counter = countPrivateOperations(self)
        for code in (CODE, parseCode("7-orbit-violin")):
            server, serverOwner, _ = makeServer()
            client, clientOwner = makeClient(code)
            pump(server, serverOwner, client, clientOwner)
        self.assertEqual(counter.count, 0)

    def test_recordFails(self) -> None:
        """
        If the desk cannot record the client, the server says so with
        alert 2 and sends no confirmation; the invite is used up.
        """
        desk = FakeDesk()
        desk.recordError = OSError(28, "No space left on device")
        server, serverOwner, _ = makeServer(desk)
        client, clientOwner = makeClient()
        pump(server, serverOwner, client, clientOwner)
        [(code, reason)] = serverOwner.failures
        self.assertEqual(code, frames.ALERT_HANDSHAKE_FAILURE)
        self.assertIn("No space left", reason)
        self.assertEqual(clientOwner.paired, [])
        self.assertEqual(len(desk.failed), 1)

    def test_changedKeyStops(self) -> None:
        """
        A host key that differs from the one recorded for the address stops
        the client before it sends anything.
        """
        server, serverOwner, desk = makeServer()
        check = PinnedKey(otherClientIdentity().fingerprint)
        client, clientOwner = makeClient(check=lambda fp: check.check("h:1", fp))
        pump(server, serverOwner, client, clientOwner)
        self.assertEqual(clientOwner.frames, [])
        [error] = clientOwner.failures
        self.assertIsInstance(error, ServerKeyChanged)
        self.assertEqual(desk.claims, [])

    def test_notFirstChannel(self) -> None:
        """
        A client that reached another channel than the first says so and
        sends nothing.
        """
        server, serverOwner, desk = makeServer(channel=1)
        client, clientOwner = makeClient()
        pump(server, serverOwner, client, clientOwner)
        [error] = clientOwner.failures
        self.assertIsInstance(error, ConfigurationError)
        self.assertEqual(clientOwner.frames, [])

    def test_noDesk(self) -> None:
        """
        A server handshake without a desk takes a PAIR frame for a bad F2:
        alert 2, and the client reports a refusal.
        """
        owner = ServerOwner()
        host = hostIdentity()
        server = ServerHandshake(
            ChannelSpec(0, 1, CHACHA20_POLY1305), host.privateKey, host.publicDER,
            frames.Params(), makeDirectory(), owner,
        )
        server.start()
        client, clientOwner = makeClient()
        pump(server, owner, client, clientOwner)
        self.assertEqual(owner.failures[0][0], frames.ALERT_HANDSHAKE_FAILURE)
        client.frameReceived(frames.Alert(frames.ALERT_HANDSHAKE_FAILURE).encode())
        self.assertIsInstance(clientOwner.failures[0], PairingRefused)

    def test_timeOut(self) -> None:
        """
        A client that stops after frame 1 times the pairing out: alert 4,
        and the invite it used is reported failed.
        """
        server, serverOwner, desk = makeServer()
        client, clientOwner = makeClient()
        client.frameReceived(serverOwner.frames[0])
        server.frameReceived(clientOwner.frames[0])
        server.timedOut()
        self.assertEqual(serverOwner.failures, [(frames.ALERT_TIMEOUT, "the pairing timed out")])
        self.assertEqual([why for _, why, _ in desk.failed], ["the pairing timed out"])
        client.timedOut()
        self.assertIsInstance(clientOwner.failures[0], ProtocolError)

    def test_frameAfterEnd(self) -> None:
        """
        A frame after the pairing ended claims nothing more.
        """
        server, serverOwner, desk = makeServer()
        client, clientOwner = makeClient()
        pump(server, serverOwner, client, clientOwner)
        server.frameReceived(clientOwner.frames[0])
        client.frameReceived(serverOwner.frames[0])
        self.assertEqual(desk.claims, [7])
        self.assertEqual(len(clientOwner.paired), 1)


def replaceHostKey(body: bytes, key: bytes) -> bytes:
    hello = frames.ServerHello.decode(body)
    return hello._replace(hostKey=key).encode()


class ManInTheMiddleTests(unittest.SynchronousTestCase):
    """
    Someone between the two who does not know the code gets neither side's
    trust.
    """

    def test_swappedHostKey(self) -> None:
        """
        Relaying the PAIR frames but showing the client another host key in
        F1: K is the same on both ends, but the transcripts differ, so the
        server refuses frame 3 (alert 2), records nothing, and the client
        is never confirmed.
        """
        mallory = otherClientIdentity().publicDER
        server, serverOwner, desk = makeServer()
        client, clientOwner = makeClient()
        pump(
            server, serverOwner, client, clientOwner,
            lambda step, body: replaceHostKey(body, mallory) if step == 0 else body,
        )
        self.assertEqual(serverOwner.failures[0][0], frames.ALERT_HANDSHAKE_FAILURE)
        self.assertIn("man in the middle", serverOwner.failures[0][1])
        self.assertEqual(desk.paired, [])
        self.assertEqual(clientOwner.paired, [])
        self.assertEqual(desk.invites, {})

    def test_ownExchange(self) -> None:
        """
        Running SPAKE2 with each side under a guessed code (it needs no
        private key to pose as the server, since a pairing uses none): each
        side finds the code wrong, and neither trusts anyone.
        """
        guess = parseCode("7-zinc-zebra")
        server, serverOwner, desk = makeServer()
        mallory, malloryOwner = makeClient(guess, otherClientIdentity())
        pump(server, serverOwner, mallory, malloryOwner)
        fake, fakeOwner, fakeDesk = makeServer(FakeDesk(guess))
        client, clientOwner = makeClient()
        pump(fake, fakeOwner, client, clientOwner)
        self.assertEqual(serverOwner.failures[0][0], frames.ALERT_WRONG_CODE)
        self.assertEqual(fakeOwner.failures[0][0], frames.ALERT_WRONG_CODE)
        self.assertEqual((desk.paired, fakeDesk.paired), ([], []))
        self.assertEqual((malloryOwner.paired, clientOwner.paired), ([], []))


class FrameTests(unittest.SynchronousTestCase):
    """
    PAIR frames parse strictly.
    """

    @given(st.integers(1, 65535), st.binary(min_size=32, max_size=32))
    def test_startRoundTrip(self, slot: int, element: bytes) -> None:
        frame = pairframes.PairStart(slot, b"A" + element)
        self.assertEqual(pairframes.PairStart.decode(frame.encode()), frame)

    @given(st.binary(max_size=700), st.booleans(), st.text(max_size=20))
    def test_serverKeyRoundTrip(self, key: bytes, permanent: bool, name: str) -> None:
        key = (key * 600)[:400] if key else bytes(400)
        name = name.encode("utf-8")[:64].decode("utf-8", "ignore")
        inner = pairframes.ServerKey(key, permanent, name, bytes(32))
        self.assertEqual(pairframes.ServerKey.decode(inner.encode()), inner)

    @settings(max_examples=300)
    @given(st.binary(max_size=800))
    def test_garbage(self, body: bytes) -> None:
        """
        Any bytes given to any PAIR decoder give a frame or a
        L{ProtocolError}, nothing else.
        """
        decoders = [
            pairframes.PairStart.decode,
            pairframes.PairAnswer.decode,
            lambda b: pairframes.SealedKey.decode(b, pairframes.STEP_CLIENT_KEY),
            lambda b: pairframes.SealedKey.decode(b, pairframes.STEP_SERVER_KEY),
            pairframes.ClientKey.decode,
            pairframes.ServerKey.decode,
        ]
        for decode in decoders:
            try:
                decode(body)
            except ProtocolError:
                pass

    @given(st.binary(max_size=40))
    def test_anyFirstFrame(self, tail: bytes) -> None:
        """
        Whatever follows a PAIR header, the server answers with at most one
        frame or fails the attempt; it never raises.
        """
        server, owner, desk = makeServer()
        server.frameReceived(pairframes.header(pairframes.STEP_START) + tail)
        self.assertTrue(owner.failures or len(owner.frames) == 2)

    def test_oversize(self) -> None:
        """
        A PAIR frame over the pre-authentication cap is refused.
        """
        body = pairframes.header(1) + bytes(frames.MAX_BODY_PRE)
        self.assertRaises(ProtocolError, pairframes.PairStart.decode, body)

    def test_slotZero(self) -> None:
        body = pairframes.PairStart(1, b"A" + bytes(32)).encode()
        zero = body[:3] + b"\0\0" + body[5:]
        self.assertRaises(ProtocolError, pairframes.PairStart.decode, zero)

    def test_wrongSide(self) -> None:
        """
        A client's SPAKE2 message must come from side A, the server's from B.
        """
        self.assertRaises(
            ProtocolError, pairframes.PairStart.decode,
            pairframes.PairStart(1, b"B" + bytes(32)).encode(),
        )
        self.assertRaises(
            ProtocolError, pairframes.PairAnswer.decode,
            pairframes.PairAnswer(b"A" + bytes(32)).encode(),
        )

    def test_refusals(self) -> None:
        """
        Each alert a receiver sends during a pairing reads as its own error.
        """
        self.assertIsInstance(pairingRefusal(frames.ALERT_BUSY, 1), ServerBusy)
        self.assertIsInstance(pairingRefusal(frames.ALERT_WRONG_CODE, 1), WrongCode)
        self.assertIsInstance(pairingRefusal(frames.ALERT_NO_INVITE, 1), NoInvite)


class PakeTests(unittest.SynchronousTestCase):
    """
    The SPAKE2 wrapper and the keys that follow.
    """

    def test_samePassword(self) -> None:
        client = pake.Exchange(True, b"orbit-velvet")
        server = pake.Exchange(False, b"orbit-velvet")
        self.assertEqual(client.finish(server.message), server.finish(client.message))

    def test_otherPassword(self) -> None:
        client = pake.Exchange(True, b"orbit-velvet")
        server = pake.Exchange(False, b"orbit-violin")
        self.assertNotEqual(client.finish(server.message), server.finish(client.message))

    @settings(max_examples=50, deadline=None)
    @given(st.binary(min_size=33, max_size=33))
    def test_anyMessage(self, message: bytes) -> None:
        """
        Any peer message gives a key or a L{ProtocolError}.
        """
        try:
            pake.Exchange(False, b"orbit-velvet").finish(message)
        except ProtocolError:
            pass

    def test_wrongSize(self) -> None:
        exchange = pake.Exchange(False, b"x")
        self.assertRaises(ProtocolError, exchange.finish, exchange.message + b"\0")

    def test_keysDiffer(self) -> None:
        """
        The two directions' keys differ, and a box sealed for one does not
        open as the other, nor with another header.
        """
        c2s, s2c = pake.pairKeys(bytes(32))
        self.assertNotEqual(c2s, s2c)
        sealed = pake.sealBox(c2s, b"h", b"secret")
        self.assertEqual(pake.openBox(c2s, b"h", sealed), b"secret")
        self.assertRaises(AuthenticationFailed, pake.openBox, s2c, b"h", sealed)
        self.assertRaises(AuthenticationFailed, pake.openBox, c2s, b"x", sealed)

    def test_reprRedacted(self) -> None:
        keys = pake.pairKeys(bytes(32))[0]
        self.assertNotIn(keys.seal.hex(), repr(keys))
