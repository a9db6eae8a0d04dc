"""
Tests for L{spc.protocol.recordlayer}: sealing and opening protected frames, sequence
numbers, header checks and epoch rules (tier a: the layer alone, with keys
built directly rather than by a handshake).
"""

from __future__ import annotations

import os

from twisted.trial import unittest

from spc.crypto.suites import A256CBC_HS512, CHACHA20_POLY1305
from spc.errors import AuthenticationFailed, ProtocolError, SequenceExhausted
from spc.protocol import frames, recordlayer
from spc.protocol.recordlayer import ConnectionKeys, RecordLayer
from tests.common import ALL_SUITES

MAX_INNER = frames.maxInnerSize(frames.DEFAULT_FRAGMENT_SIZE)


def makeKeys(suite=CHACHA20_POLY1305, session=None, channel=1, thConn=None, secret=None):
    """
    The keys of one connection, from random secrets.
    """
    return ConnectionKeys(
        session or os.urandom(16),
        suite,
        channel,
        thConn or os.urandom(32),
        secret or os.urandom(32),
    )


def makeLayers(suite=CHACHA20_POLY1305, keys=None, epoch=0, epochSecret=None,
               maxInner=MAX_INNER):
    """
    The server's and the client's record layer of one connection.

    @return: C{(server, client, epochSecret)}.
    """
    keys = keys or makeKeys(suite)
    epochSecret = epochSecret or os.urandom(32)
    server = RecordLayer(keys, True, epoch, epochSecret, maxInner)
    client = RecordLayer(keys, False, epoch, epochSecret, maxInner)
    return server, client, epochSecret


def frame(sealed: tuple[bytes, bytes]) -> bytes:
    """
    The frame body (header and suite body) of what L{RecordLayer.seal}
    returned, as the framer hands it to L{RecordLayer.open}.
    """
    aad, body = sealed
    return aad[frames.LENGTH_PREFIX_SIZE :] + body


def flipBit(data: bytes, bit: int) -> bytes:
    changed = bytearray(data)
    changed[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(changed)


class RoundTripTests(unittest.SynchronousTestCase):
    """
    Frames sealed by one end open at the other.
    """

    def test_eachSuiteBothWays(self) -> None:
        """
        For every suite, records go client to server and server to client,
        each opening with its epoch and plaintext.
        """
        for suite in ALL_SUITES:
            server, client, _ = makeLayers(suite)
            for index in range(3):
                message = b"MSG:" + bytes([index]) * (index * 100)
                self.assertEqual(server.open(frame(client.seal(message))), (0, message))
                reply = b"ACK:" + bytes([index])
                self.assertEqual(client.open(frame(server.seal(reply))), (0, reply))
            self.assertEqual((client.sentFrames, server.receivedFrames), (3, 3))
            self.assertEqual((server.sentFrames, client.receivedFrames), (3, 3))

    def test_emptyAndLargest(self) -> None:
        """
        An empty record and one of exactly C{maxInner} bytes both travel,
        and the sealed frame fits the post-handshake cap.
        """
        for suite in ALL_SUITES:
            server, client, _ = makeLayers(suite)
            self.assertEqual(server.open(frame(client.seal(b""))), (0, b""))
            largest = os.urandom(MAX_INNER)
            body = frame(client.seal(largest))
            self.assertLessEqual(len(body), frames.maxProtectedBody(MAX_INNER))
            self.assertEqual(server.open(body), (0, largest))

    def test_aad(self) -> None:
        """
        C{seal} returns the length prefix and header, which are exactly the
        documented AAD: the whole frame body's length, then the header with
        this connection's suite, session, channel, epoch and sequence number.
        """
        keys = makeKeys(A256CBC_HS512, channel=3)
        _, client, _ = makeLayers(keys=keys)
        client.seal(b"first")
        aad, body = client.seal(b"HBQ:" + bytes(44))
        self.assertEqual(len(aad), frames.AAD_SIZE)
        self.assertEqual(
            aad,
            frames.protectedAAD(
                frames.PROTECTED_HEADER_SIZE + len(body), 0x01, keys.session, 3, 0, 1
            ),
        )
        header = frames.ProtectedHeader.decode(aad[4:])
        self.assertEqual(header, frames.ProtectedHeader(0x01, keys.session, 3, 0, 1))

    def test_byteCounting(self) -> None:
        """
        C{sentBytes} counts the plaintext sealed under the current send key.
        """
        _, client, _ = makeLayers()
        client.seal(b"12345")
        client.seal(b"678")
        self.assertEqual(client.sentBytes, 8)

    def test_samePlaintextDiffers(self) -> None:
        """
        The same record sealed twice gives different suite bodies (nonce
        from the sequence number, or a random IV).
        """
        for suite in ALL_SUITES:
            _, client, _ = makeLayers(suite)
            self.assertNotEqual(client.seal(b"same")[1], client.seal(b"same")[1])


class SequenceTests(unittest.SynchronousTestCase):
    """
    The sequence number must be exactly the next one (T4, T6, T7).
    """

    def setUp(self) -> None:
        self.server, self.client, _ = makeLayers()
        self.frames = [frame(self.client.seal(b"HBQ:" + bytes([i]))) for i in range(3)]

    def test_replay(self) -> None:
        """
        A frame opened once is refused the second time.
        """
        self.server.open(self.frames[0])
        error = self.assertRaises(ProtocolError, self.server.open, self.frames[0])
        self.assertIn("sequence 0 where 1 was due", str(error))

    def test_reorder(self) -> None:
        """
        Two frames swapped are refused.
        """
        self.assertRaises(ProtocolError, self.server.open, self.frames[1])

    def test_gap(self) -> None:
        """
        A deleted frame is noticed at the next one.
        """
        self.server.open(self.frames[0])
        self.assertRaises(ProtocolError, self.server.open, self.frames[2])

    def test_refusalKeepsState(self) -> None:
        """
        A refused frame does not advance the expected sequence number: the
        right frames still open in order afterwards.
        """
        self.assertRaises(ProtocolError, self.server.open, self.frames[2])
        for index, body in enumerate(self.frames):
            self.assertEqual(self.server.open(body), (0, b"HBQ:" + bytes([index])))

    def test_reflection(self) -> None:
        """
        T4: a frame reflected back to its sender fails authentication: the
        two directions have different keys.
        """
        self.assertRaises(AuthenticationFailed, self.client.open, self.frames[0])

    def test_exhausted(self) -> None:
        """
        The sender stops at the sequence hard limit with L{SequenceExhausted}
        (a L{ProtocolError}), rather than wrap.
        """
        self.patch(recordlayer, "MAX_SEQUENCE", 5)
        self.client.seal(b"3")
        self.client.seal(b"4")
        self.assertRaises(SequenceExhausted, self.client.seal, b"5")
        self.assertEqual(self.client.sentFrames, 5)
        self.assertTrue(issubclass(SequenceExhausted, ProtocolError))

    def test_exhaustedAtRealLimit(self) -> None:
        """
        The real limit is 2**48 frames: the last number is usable.
        """
        self.assertEqual(recordlayer.MAX_SEQUENCE, 2 ** 48)
        self.client.sentFrames = recordlayer.MAX_SEQUENCE - 1
        aad, _ = self.client.seal(b"last")
        self.assertEqual(frames.ProtectedHeader.decode(aad[4:]).seq, 2 ** 48 - 1)
        self.assertRaises(SequenceExhausted, self.client.seal, b"one too many")


class HeaderTests(unittest.SynchronousTestCase):
    """
    Every header field is checked or authenticated (T1, T25).
    """

    def test_otherSession(self) -> None:
        """
        A frame of another session is refused by its header.
        """
        keys = makeKeys()
        server, _, secret = makeLayers(keys=keys)
        other = makeKeys(session=os.urandom(16), channel=keys.channel)
        _, stranger, _ = makeLayers(keys=other, epochSecret=secret)
        error = self.assertRaises(ProtocolError, server.open, frame(stranger.seal(b"x")))
        self.assertIn("another session", str(error))

    def test_otherChannel(self) -> None:
        """
        A frame of another channel of the same session is refused.
        """
        keys = makeKeys()
        server, _, secret = makeLayers(keys=keys)
        other = makeKeys(session=keys.session, channel=keys.channel + 1)
        _, stranger, _ = makeLayers(keys=other, epochSecret=secret)
        self.assertRaises(ProtocolError, server.open, frame(stranger.seal(b"x")))

    def test_otherSuite(self) -> None:
        """
        A frame naming another suite is refused.
        """
        keys = makeKeys(CHACHA20_POLY1305)
        server, _, secret = makeLayers(keys=keys)
        other = makeKeys(A256CBC_HS512, session=keys.session, channel=keys.channel)
        _, stranger, _ = makeLayers(keys=other, epochSecret=secret)
        error = self.assertRaises(ProtocolError, server.open, frame(stranger.seal(b"x")))
        self.assertIn("another suite", str(error))

    def test_otherConnection(self) -> None:
        """
        T4/T25: a frame from another connection of the same session, channel
        and epoch secret (another transcript) fails authentication.
        """
        keys = makeKeys()
        server, _, secret = makeLayers(keys=keys)
        other = makeKeys(session=keys.session, channel=keys.channel)
        _, stranger, _ = makeLayers(keys=other, epochSecret=secret)
        self.assertRaises(AuthenticationFailed, server.open, frame(stranger.seal(b"x")))

    def test_everyHeaderBit(self) -> None:
        """
        T1: flipping any one of the 272 header bits gets the frame refused,
        for every suite; the untouched frame still opens afterwards.
        """
        for suite in ALL_SUITES:
            server, client, _ = makeLayers(suite)
            good = frame(client.seal(b"MSG:payload"))
            for bit in range(frames.PROTECTED_HEADER_SIZE * 8):
                self.assertRaises(ProtocolError, server.open, flipBit(good, bit))
            self.assertEqual(server.open(good), (0, b"MSG:payload"))

    def test_suiteBodyBits(self) -> None:
        """
        T2: flipping bits in the IV, ciphertext or tag gets the frame refused
        with L{AuthenticationFailed}, for every suite.
        """
        for suite in ALL_SUITES:
            server, client, _ = makeLayers(suite)
            good = frame(client.seal(b"MSG:" + bytes(40)))
            start = frames.PROTECTED_HEADER_SIZE * 8
            for bit in range(start, len(good) * 8, 13):
                self.assertRaises(AuthenticationFailed, server.open, flipBit(good, bit))
            self.assertEqual(server.open(good), (0, b"MSG:" + bytes(40)))

    def test_truncatedAndExtended(self) -> None:
        """
        A frame cut short (in the header or the body) or with a byte
        appended is refused.
        """
        for suite in ALL_SUITES:
            server, client, _ = makeLayers(suite)
            good = frame(client.seal(b"MSG:abc"))
            for bad in (good[:10], good[:frames.PROTECTED_HEADER_SIZE], good[:-1], good + b"\0"):
                self.assertRaises(ProtocolError, server.open, bad)
            self.assertEqual(server.open(good), (0, b"MSG:abc"))

    def test_handshakeFramesRefused(self) -> None:
        """
        T32: a plaintext handshake frame (alert or F1) is never accepted by
        the record layer.
        """
        server, client, _ = makeLayers()
        alert = frames.Alert(frames.ALERT_BUSY).encode()
        self.assertRaises(ProtocolError, client.open, alert)
        self.assertRaises(ProtocolError, client.open, alert + bytes(40))
        hello = bytes([frames.WIRE_VERSION, frames.SERVER_HELLO]) + bytes(400)
        self.assertRaises(ProtocolError, client.open, hello)


class InnerSizeTests(unittest.SynchronousTestCase):
    """
    The session's inner size limit.
    """

    def test_largerThanMaxInner(self) -> None:
        """
        A record larger than the receiver's C{maxInner} is refused; one of
        exactly C{maxInner} bytes is accepted.
        """
        keys = makeKeys()
        secret = os.urandom(32)
        server = RecordLayer(keys, True, 0, secret, 100)
        client = RecordLayer(keys, False, 0, secret, 1000)
        self.assertEqual(server.open(frame(client.seal(bytes(100)))), (0, bytes(100)))
        error = self.assertRaises(ProtocolError, server.open, frame(client.seal(bytes(101))))
        self.assertIn("larger", str(error))


class EpochTests(unittest.SynchronousTestCase):
    """
    Epoch acceptance and key retirement (docs section 5.4, amendment A10).
    """

    def setUp(self) -> None:
        self.keys = makeKeys()
        self.s0, self.s1 = os.urandom(32), os.urandom(32)
        self.server, self.client, _ = makeLayers(keys=self.keys, epochSecret=self.s0)

    def test_switch(self) -> None:
        """
        After both ends install epoch 1 and the client switches, its frames
        carry epoch 1 and open; sequence numbers continue across the switch,
        and the byte count restarts.
        """
        self.server.open(frame(self.client.seal(b"HBQ:0")))
        self.server.installEpoch(1, self.s1)
        self.client.installEpoch(1, self.s1)
        self.assertEqual(self.server.receiveEpochs(), frozenset({0, 1}))
        self.client.switchSendEpoch(1)
        self.assertEqual((self.client.sendEpoch, self.client.sentBytes), (1, 0))
        aad, body = self.client.seal(b"HBQ:1")
        header = frames.ProtectedHeader.decode(aad[4:])
        self.assertEqual((header.epoch, header.seq), (1, 1))
        self.assertEqual(self.server.open(aad[4:] + body), (1, b"HBQ:1"))

    def test_overlap(self) -> None:
        """
        With epoch 1 installed but not yet used by the peer, epoch-0 frames
        are still accepted.
        """
        self.server.installEpoch(1, self.s1)
        self.assertEqual(self.server.open(frame(self.client.seal(b"x"))), (0, b"x"))

    def test_retiredAfterNewerFrame(self) -> None:
        """
        A10: once an epoch-1 frame was authenticated on a connection, an
        epoch-0 frame (even with the right sequence number and valid keys)
        is refused, and the epoch-0 receive key is gone.
        """
        self.server.installEpoch(1, self.s1)
        self.client.installEpoch(1, self.s1)
        # Someone who still holds the epoch-0 send key of this connection.
        stale = RecordLayer(self.keys, False, 0, self.s0, MAX_INNER)
        self.client.switchSendEpoch(1)
        self.server.open(frame(self.client.seal(b"new")))
        stale.sentFrames = 1
        late = frame(stale.seal(b"old"))
        error = self.assertRaises(ProtocolError, self.server.open, late)
        self.assertIn("epoch 0", str(error))
        self.assertEqual(self.server.receiveEpochs(), frozenset({1}))

    def test_staleFrameAcceptedBeforeRetirement(self) -> None:
        """
        The same late epoch-0 frame is accepted if no epoch-1 frame came
        first: retirement, not the key, is what refuses it above.
        """
        self.server.installEpoch(1, self.s1)
        stale = RecordLayer(self.keys, False, 0, self.s0, MAX_INNER)
        self.assertEqual(self.server.open(frame(stale.seal(b"old"))), (0, b"old"))

    def test_dropEpoch(self) -> None:
        """
        After C{dropEpoch(0)} an epoch-0 frame is refused.
        """
        self.server.installEpoch(1, self.s1)
        self.server.dropEpoch(0)
        self.assertEqual(self.server.receiveEpochs(), frozenset({1}))
        self.assertRaises(ProtocolError, self.server.open, frame(self.client.seal(b"x")))

    def test_dropRolledBackOffer(self) -> None:
        """
        Dropping an installed epoch that was never used (a rolled-back
        offer) keeps the current one working and makes the dropped one
        unusable for sending.
        """
        self.client.installEpoch(1, self.s1)
        self.client.dropEpoch(1)
        self.assertRaises(RuntimeError, self.client.switchSendEpoch, 1)
        self.assertEqual(self.server.open(frame(self.client.seal(b"x"))), (0, b"x"))

    def test_dropSendEpochKeepsSending(self) -> None:
        """
        Dropping the current send epoch's receive key does not stop sending
        under it.
        """
        self.client.dropEpoch(0)
        self.assertEqual(self.server.open(frame(self.client.seal(b"x"))), (0, b"x"))

    def test_unknownEpoch(self) -> None:
        """
        A frame under an epoch the receiver never installed is refused.
        """
        self.client.installEpoch(2, self.s1)
        self.client.switchSendEpoch(2)
        error = self.assertRaises(
            ProtocolError, self.server.open, frame(self.client.seal(b"x"))
        )
        self.assertIn("epoch 2", str(error))

    def test_wrongEpochSecret(self) -> None:
        """
        Two ends that installed different secrets for epoch 1 cannot talk
        under it.
        """
        self.server.installEpoch(1, self.s1)
        self.client.installEpoch(1, os.urandom(32))
        self.client.switchSendEpoch(1)
        sealed = frame(self.client.seal(b"x"))
        self.assertRaises(AuthenticationFailed, self.server.open, sealed)

    def test_switchRules(self) -> None:
        """
        The send epoch never goes back, never to an uninstalled epoch, and
        older send keys are forgotten (local misuse raises L{RuntimeError}).
        """
        self.assertRaises(RuntimeError, self.client.switchSendEpoch, 1)
        self.client.installEpoch(1, self.s1)
        self.client.switchSendEpoch(1)
        self.assertRaises(RuntimeError, self.client.switchSendEpoch, 0)
        self.client.installEpoch(0, self.s0)
        self.assertRaises(RuntimeError, self.client.switchSendEpoch, 0)

    def test_oldEpochNotReinstalled(self) -> None:
        """
        Installing an epoch older than the last one received does not make
        its frames acceptable again.
        """
        self.server.installEpoch(1, self.s1)
        self.client.installEpoch(1, self.s1)
        self.client.switchSendEpoch(1)
        self.server.open(frame(self.client.seal(b"x")))
        self.server.installEpoch(0, self.s0)
        self.assertEqual(self.server.receiveEpochs(), frozenset({1}))

    def test_startAtLaterEpoch(self) -> None:
        """
        A connection that joins at epoch 3 seals and accepts epoch 3 only.
        """
        server, client, _ = makeLayers(epoch=3)
        aad, body = client.seal(b"x")
        self.assertEqual(frames.ProtectedHeader.decode(aad[4:]).epoch, 3)
        self.assertEqual(server.open(aad[4:] + body), (3, b"x"))
        self.assertEqual(server.receiveEpochs(), frozenset({3}))


class VolumeTests(unittest.SynchronousTestCase):
    """
    PROTOCOL 4.5: a send key past its soft limit asks for a rotation; past
    the hard limit it seals nothing more; a new epoch resets both.
    """

    def test_soft(self):
        """
        C{keyWornOut} turns true at the soft byte or frame limit.
        """
        self.patch(recordlayer, "SOFT_BYTES", 10)
        self.patch(recordlayer, "SOFT_FRAMES", 3)
        _, client, _ = makeLayers()
        client.seal(b"12345")
        self.assertFalse(client.keyWornOut())
        client.seal(b"67890")
        self.assertTrue(client.keyWornOut())
        _, other, _ = makeLayers()
        for _ in range(3):
            other.seal(b"x")
        self.assertTrue(other.keyWornOut())

    def test_hard(self):
        """
        At the hard limit sealing fails with L{SequenceExhausted}; after
        a switch to a new epoch the counts start again.
        """
        self.patch(recordlayer, "HARD_FRAMES", 2)
        _, client, _ = makeLayers()
        client.seal(b"a")
        client.seal(b"b")
        self.assertRaises(SequenceExhausted, client.seal, b"c")
        client.installEpoch(1, b"N" * 32)
        client.switchSendEpoch(1)
        client.seal(b"d")
