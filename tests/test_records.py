"""
Tests for L{spc.records}: every inner record round-trips, and no input at
all makes the record decoder raise anything but L{ProtocolError}.
"""

import struct

from hypothesis import given, settings, strategies as st
from twisted.trial import unittest

from spc import records, wire
from spc.errors import ProtocolError
from tests.test_wire import fixed, u8, u32, u64


@st.composite
def fragments(draw):
    count = draw(st.integers(1, 2**32 - 1))
    return records.Fragment(
        msgID=draw(u64),
        index=draw(st.integers(0, count - 1)),
        count=count,
        totalLength=draw(u64),
        kind=draw(st.sampled_from(sorted(records.MESSAGE_KINDS))),
        digest=draw(fixed(32)),
        payload=draw(st.binary(max_size=200)),
    )


heartbeatFields = (u32, u64, u32, u32, u64, u64, u64)
innerRecords = st.one_of(
    fragments(),
    st.builds(
        records.Ack,
        u64,
        st.sampled_from(sorted(records.ACK_STATUSES)),
        st.lists(st.tuples(u32, u32), max_size=records.MAX_ACK_RANGES).map(tuple),
    ),
    st.builds(records.HeartbeatRequest, *heartbeatFields),
    st.builds(records.HeartbeatResponse, *heartbeatFields),
    st.builds(records.RotationOffer, u32, fixed(32), fixed(wire.EXCHANGE_RSA_OUTPUT_SIZE)),
    st.builds(records.RotationAck, u32, fixed(32), fixed(32)),
    st.builds(records.RotationCommit, u32),
    st.builds(
        records.FileOffer,
        fixed(16),
        u64,
        st.text(min_size=1, max_size=200).filter(
            lambda name: 0 < len(name.encode("utf-8")) <= records.MAX_FILE_NAME
        ),
    ),
    st.builds(records.FileData, fixed(16), u64, st.binary(max_size=300)),
    st.builds(records.FileEnd, fixed(16), fixed(32)),
    st.builds(
        records.FileAck,
        fixed(16),
        st.sampled_from(sorted(records.FILE_STATUSES)),
        st.lists(st.tuples(u64, u64), max_size=records.MAX_ACK_RANGES).map(tuple),
    ),
    st.builds(records.RotationAbort, u32, u8),
    st.builds(records.RotationRequest, st.sampled_from([records.REKEY_VOLUME, records.REKEY_AGE])),
    st.builds(
        records.Bye,
        st.sampled_from(sorted(records.BYE_CODES)),
        st.sampled_from([records.SCOPE_CHANNEL, records.SCOPE_SESSION]),
        st.text(max_size=60),
    ),
)


class RoundTripTests(unittest.TestCase):
    """
    C{decode(encode(x)) == x}, with the same type, for every inner record.
    """

    def assertRoundTrip(self, value, decoded):
        self.assertIs(type(decoded), type(value))
        self.assertEqual(tuple(decoded), tuple(value))

    @settings(max_examples=300)
    @given(innerRecords)
    def test_records(self, record):
        """
        Inner records round-trip through L{records.decodeRecord}.
        """
        self.assertRoundTrip(record, records.decodeRecord(record.encode()))

    def test_fragmentPayloadIsView(self):
        """
        A decoded fragment's payload is a view into the plaintext, not a
        copy.
        """
        plaintext = records.Fragment(1, 0, 1, 3, records.KIND_TEXT, bytes(32), b"abc").encode()
        fragment = records.decodeRecord(plaintext)
        self.assertIsInstance(fragment.payload, memoryview)
        self.assertEqual(bytes(fragment.payload), b"abc")


class StrictnessTests(unittest.TestCase):
    """
    The record decoder refuses anything that is not exactly a valid
    encoding.
    """

    def assertRefused(self, decoder, data):
        self.assertRaises(ProtocolError, decoder, data)

    def test_tooManyAckRanges(self):
        """
        An ACK with more ranges than allowed is refused on its count, before
        the ranges are read.
        """
        body = b"ACK:" + struct.pack("!QBH", 1, 0, records.MAX_ACK_RANGES + 1)
        self.assertRefused(records.decodeRecord, body)

    def test_unknownValues(self):
        """
        Unknown tags, kinds, statuses, alert codes, BYE codes and rotation
        reasons are refused, as is a BYE reason that is not UTF-8.
        """
        self.assertRefused(records.decodeRecord, b"XYZ:")
        fragment = records.Fragment(1, 0, 1, 1, records.KIND_TEXT, bytes(32), b"x").encode()
        self.assertRefused(records.decodeRecord, fragment[:28] + b"\x07" + fragment[29:])
        self.assertRefused(records.decodeRecord, b"ACK:" + struct.pack("!QBH", 1, 4, 0))
        self.assertRefused(wire.decodeHandshake, b"\x01\x0f\x09")
        self.assertRefused(records.decodeRecord, b"BYE:\x00\x08\x00\x00")
        self.assertRefused(records.decodeRecord, b"RKR:\x03")
        self.assertRefused(records.decodeRecord, b"BYE:\x00\x00\x00\x01\xff")

    def test_fileRecords(self):
        """
        File records refuse empty or non-UTF-8 names, unknown statuses, too
        many ranges and short bodies.
        """
        self.assertRefused(records.decodeRecord, b"FIL:" + bytes(24) + b"\x00\x00")
        self.assertRefused(records.decodeRecord, b"FIL:" + bytes(24) + b"\x00\x01\xff")
        self.assertRefused(records.decodeRecord, b"FAK:" + bytes(16) + b"\x09\x00\x00")
        self.assertRefused(
            records.decodeRecord,
            b"FAK:" + bytes(16) + b"\x00" + struct.pack("!H", records.MAX_ACK_RANGES + 1),
        )
        self.assertRefused(records.decodeRecord, b"FDT:" + bytes(23))
        self.assertRefused(records.decodeRecord, b"FEN:" + bytes(47))
        self.assertRaises(
            ValueError,
            records.FileAck(bytes(16), 0, ((0, 1),) * (records.MAX_ACK_RANGES + 1)).encode,
        )

    def test_fragmentIndex(self):
        """
        A fragment whose index is not below its count is refused.
        """
        body = records.Fragment(1, 0, 1, 1, records.KIND_TEXT, bytes(32), b"x").encode()
        bad = body[:12] + (5).to_bytes(4, "big") + body[16:]
        self.assertRefused(records.decodeRecord, bad)


class GarbageTests(unittest.TestCase):
    """
    Arbitrary bytes raise only L{ProtocolError} from the record decoder.
    """

    @settings(max_examples=500)
    @given(st.sampled_from([t.TAG for t in records.RECORD_TYPES]), st.binary(max_size=400))
    def test_records(self, tag, data):
        """
        Random bodies behind every valid tag, and random bytes alone.
        """
        for candidate in (tag + data, data):
            try:
                records.decodeRecord(candidate)
            except ProtocolError:
                pass
