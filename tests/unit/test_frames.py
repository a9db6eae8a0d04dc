"""
Tests for L{spc.protocol.frames}: every frame round-trips, and no input at all makes
a decoder raise anything but L{ProtocolError}.  The inner records are
tested in L{tests.unit.test_records}.
"""

from hypothesis import given, settings, strategies as st
from twisted.trial import unittest

from spc.errors import ProtocolError
from spc.protocol import frames, records

u8 = st.integers(0, 2**8 - 1)
u16 = st.integers(0, 2**16 - 1)
u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)


def fixed(size):
    return st.binary(min_size=size, max_size=size)


def sized(low, high):
    return st.integers(low, high).flatmap(fixed)


@st.composite
def serverHellos(draw):
    count = draw(st.integers(1, 0xFFFF))
    return frames.ServerHello(
        versions=tuple(draw(st.lists(u8, min_size=1, max_size=frames.MAX_VERSIONS))),
        suite=draw(u8),
        channel=draw(st.integers(0, count - 1)),
        channelCount=count,
        nonce=draw(fixed(32)),
        ephemeral=draw(fixed(32)),
        hostKey=draw(sized(frames.MIN_SPKI_SIZE, frames.MAX_SPKI_SIZE)),
    )


clientAuths = st.builds(
    frames.ClientAuth,
    version=u8,
    nonce=fixed(32),
    session=fixed(16),
    epoch=u32,
    ephemeral=fixed(32),
    identityKey=sized(frames.MIN_SPKI_SIZE, frames.MAX_SPKI_SIZE),
    exchangeKey=fixed(frames.EXCHANGE_SPKI_SIZE),
    encryptedSecret=sized(frames.MIN_RSA_OUTPUT_SIZE, frames.MAX_RSA_OUTPUT_SIZE),
    signature=sized(frames.MIN_RSA_OUTPUT_SIZE, frames.MAX_RSA_OUTPUT_SIZE),
)
params = st.builds(frames.Params, u32, u16, u32, u32, u32, u32, u32, u64, u16, u32)
serverFinisheds = st.builds(frames.ServerFinished, fixed(16), u32, params, fixed(32))
alerts = st.builds(frames.Alert, st.sampled_from(sorted(frames.ALERT_CODES)))



class RoundTripTests(unittest.SynchronousTestCase):
    """
    C{decode(encode(x)) == x}, with the same type, for every frame and
    record; and encoding is canonical.
    """

    def assertRoundTrip(self, value, decoded):
        self.assertIs(type(decoded), type(value))
        self.assertEqual(tuple(decoded), tuple(value))

    @settings(max_examples=200)
    @given(st.one_of(serverHellos(), clientAuths, serverFinisheds, alerts))
    def test_handshakeFrames(self, frame):
        """
        Handshake frames round-trip through L{frames.decodeHandshake}, within
        the pre-authentication size cap.
        """
        body = frame.encode()
        self.assertLessEqual(len(body), frames.MAX_BODY_PRE)
        decoded = frames.decodeHandshake(body)
        self.assertRoundTrip(frame, decoded)
        self.assertEqual(decoded.encode(), body)

    @given(st.integers(0, 255), fixed(16), u16, u32, u64, st.integers(0, 2**20))
    def test_protectedHeader(self, suite, session, channel, epoch, seq, length):
        """
        The header decodes from the AAD it produces, past the length prefix.
        """
        header = frames.ProtectedHeader(suite, session, channel, epoch, seq)
        aad = header.aad(length)
        self.assertEqual(aad[:4], frames.LENGTH.pack(length))
        self.assertEqual(frames.ProtectedHeader.decode(aad[4:]), header)

    def test_sizes(self):
        """
        The documented sizes: F1 369 bytes with an RSA-2048 key and one
        version, F3 94, the protected header 34, an HBQ 48.
        """
        hello = frames.ServerHello((1,), 1, 0, 4, bytes(32), bytes(32), bytes(294))
        self.assertEqual(len(hello.encode()), 369)
        finished = frames.ServerFinished(bytes(16), 0, frames.Params(), bytes(32))
        self.assertEqual(len(finished.encode()), 94)
        self.assertEqual(frames.PROTECTED_HEADER_SIZE, 34)
        self.assertEqual(len(records.HeartbeatRequest(0, 0, 0, 0, 0, 0, 0).encode()), 48)

    def test_largestClientAuthFits(self):
        """
        With 4096-bit identity and server keys, F2 still fits the
        pre-authentication cap.
        """
        auth = frames.ClientAuth(1, bytes(32), bytes(16), 0, bytes(32), bytes(550),
                               bytes(294), bytes(512), bytes(512))
        self.assertLessEqual(len(auth.encode()), frames.MAX_BODY_PRE)

    def test_signedPart(self):
        """
        The signature covers the whole body before its own length field.
        """
        auth = frames.ClientAuth(1, bytes(32), bytes(16), 0, bytes(32), bytes(294),
                               bytes(294), bytes(256), b"s" * 256)
        body = auth.encode()
        self.assertEqual(body, auth.unsigned() + b"\x01\x00" + b"s" * 256)


class SecondsTests(unittest.SynchronousTestCase):
    """
    L{frames.Params.seconds}: the one place the wire's milliseconds become
    the seconds every timer counts.
    """

    def test_defaults(self):
        """
        The default parameters: heartbeats every 5 s, rotations every 30 s,
        an ACK within 5 s and a 10 s overlap.
        """
        self.assertEqual(tuple(frames.Params().seconds), (5.0, 30.0, 5.0, 10.0))

    @given(params)
    def test_everyTimer(self, value):
        """
        Each timer is its field in milliseconds over a thousand, by name;
        the fields without a unit of time are not timers.
        """
        seconds = value.seconds
        for name in seconds._fields:
            self.assertEqual(getattr(seconds, name), getattr(value, name) / 1000)


class StrictnessTests(unittest.SynchronousTestCase):
    """
    Decoders refuse anything that is not exactly a valid encoding.
    """

    hello = frames.ServerHello((1,), 1, 0, 4, bytes(32), bytes(32), bytes(294)).encode()

    def assertRefused(self, decoder, data):
        self.assertRaises(ProtocolError, decoder, data)

    def test_trailingBytes(self):
        """
        One extra byte after any frame or record is refused.
        """
        self.assertRefused(frames.decodeHandshake, self.hello + b"\x00")
        self.assertRefused(records.decodeRecord, records.RotationCommit(1).encode() + b"\x00")
        self.assertRefused(records.decodeRecord, records.Ack(1, 0, ()).encode() + b"\x00")

    def test_truncation(self):
        """
        Every proper prefix of a frame is refused.
        """
        for size in range(len(self.hello)):
            self.assertRefused(frames.decodeHandshake, self.hello[:size])

    def test_badVersionAndType(self):
        """
        A wrong wire version or a type not allowed before keys is refused;
        a protected header with a handshake type is refused.
        """
        self.assertRefused(frames.decodeHandshake, b"\x02" + self.hello[1:])
        self.assertRefused(frames.decodeHandshake, b"\x01\x10" + self.hello[2:])
        self.assertRefused(frames.decodeHandshake, b"\x01\x03" + self.hello[2:])
        self.assertRefused(frames.ProtectedHeader.decode, b"\x01\x01" + bytes(32))

    def test_reservedFlags(self):
        """
        A protected header with reserved flags set is refused.
        """
        body = frames.ProtectedHeader(1, bytes(16), 0, 0, 0).aad(40)[4:]
        self.assertRefused(frames.ProtectedHeader.decode, body[:3] + b"\x01" + body[4:])

    def test_oversizedHandshake(self):
        """
        A handshake body over the cap is refused without being parsed.
        """
        self.assertRefused(frames.decodeHandshake, self.hello + bytes(frames.MAX_BODY_PRE))

    def test_keyLengthLimits(self):
        """
        Host keys shorter or longer than RSA-2048..4096 SPKIs are refused.
        """
        for size in (frames.MIN_SPKI_SIZE - 1, frames.MAX_SPKI_SIZE + 1):
            hello = frames.ServerHello((1,), 1, 0, 4, bytes(32), bytes(32), bytes(size))
            self.assertRefused(frames.decodeHandshake, hello.encode())

    def test_channelOutOfRange(self):
        """
        A channel index not below the channel count is refused.
        """
        hello = frames.ServerHello((1,), 1, 4, 4, bytes(32), bytes(32), bytes(294))
        self.assertRefused(frames.decodeHandshake, hello.encode())

    def test_versionList(self):
        """
        Empty or over-long version lists are refused.
        """
        self.assertRefused(frames.decodeHandshake, b"\x01\x01\x00" + self.hello[4:])
        self.assertRefused(frames.decodeHandshake, b"\x01\x01\x09" + self.hello[3:])

    def test_limits(self):
        """
        The post-handshake cap follows the fragment size.
        """
        inner = frames.maxInnerSize(frames.DEFAULT_FRAGMENT_SIZE)
        self.assertEqual(inner, 4 + 57 + 262144)
        self.assertEqual(frames.maxProtectedBody(inner), 34 + 64 + inner)


class GarbageTests(unittest.SynchronousTestCase):
    """
    Arbitrary bytes raise only L{ProtocolError}, from every decoder.
    """

    @settings(max_examples=500)
    @given(st.binary(max_size=3000))
    def test_handshake(self, data):
        """
        Random bytes into the handshake decoder.
        """
        try:
            frames.decodeHandshake(data)
        except ProtocolError:
            pass

    @settings(max_examples=300)
    @given(st.binary(max_size=80))
    def test_protectedHeader(self, data):
        """
        Random bytes into the protected-header decoder.
        """
        try:
            frames.ProtectedHeader.decode(data)
        except ProtocolError:
            pass

    @settings(max_examples=300)
    @given(st.one_of(serverHellos(), clientAuths, serverFinisheds), st.data())
    def test_mutations(self, frame, data):
        """
        Valid frames with one byte changed, cut or added either decode or
        raise L{ProtocolError}.
        """
        body = bytearray(frame.encode())
        position = data.draw(st.integers(0, len(body) - 1))
        body[position] = data.draw(u8)
        for candidate in (bytes(body), bytes(body[:position]), bytes(body) + b"\x00"):
            try:
                frames.decodeHandshake(candidate)
            except ProtocolError:
                pass
