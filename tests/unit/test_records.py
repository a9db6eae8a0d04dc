"""
Tests for L{spc.protocol.records}: every inner record round-trips, and no input at
all makes the record decoder raise anything but L{ProtocolError}.
"""

import struct

from hypothesis import given, settings, strategies as st
from twisted.trial import unittest

from spc.errors import ProtocolError
from spc.protocol import filerecords, frames, records
from tests.unit.test_frames import fixed, u8, u32, u64


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


def utf8Text(low: int, high: int):
    """
    Text whose UTF-8 encoding has C{low} to C{high} bytes.
    """
    return st.text(max_size=high).filter(lambda text: low <= len(text.encode("utf-8")) <= high)


@st.composite
def fileAcks(draw):
    """
    Every valid C{FAK:}: ranges only for progress and resume, a stored
    name for stored and already stored, a reason and a sentence for
    refused, nothing else otherwise.
    """
    status = draw(st.sampled_from(sorted(filerecords.FILE_STATUSES)))
    ranges, reason, detail = (), 0, ""
    if status in (filerecords.FILE_PROGRESS, filerecords.FILE_RESUME):
        ranges = tuple(draw(st.lists(st.tuples(u64, u64), max_size=frames.MAX_ACK_RANGES)))
    elif status in (filerecords.FILE_COMPLETE, filerecords.FILE_ALREADY_STORED):
        detail = draw(utf8Text(1, 200))
    elif status == filerecords.FILE_REFUSED:
        reason = draw(st.sampled_from(sorted(filerecords.REFUSAL_REASONS)))
        detail = draw(utf8Text(0, filerecords.MAX_REFUSAL_TEXT))
    return filerecords.FileAck(draw(fixed(16)), status, ranges, reason, detail)


heartbeatFields = (u32, u64, u32, u32, u64, u64, u64)
innerRecords = st.one_of(
    fragments(),
    st.builds(
        records.Ack,
        u64,
        st.sampled_from(sorted(records.ACK_STATUSES)),
        st.lists(st.tuples(u32, u32), max_size=frames.MAX_ACK_RANGES).map(tuple),
    ),
    st.builds(records.HeartbeatRequest, *heartbeatFields),
    st.builds(records.HeartbeatResponse, *heartbeatFields),
    st.builds(records.RotationOffer, u32, fixed(32), fixed(frames.EXCHANGE_RSA_OUTPUT_SIZE)),
    st.builds(records.RotationAck, u32, fixed(32), fixed(32)),
    st.builds(records.RotationCommit, u32),
    st.builds(
        filerecords.FileOffer,
        fixed(16),
        u64,
        st.text(min_size=1, max_size=200).filter(
            lambda name: 0 < len(name.encode("utf-8")) <= filerecords.MAX_FILE_NAME
        ),
        st.integers(-(2**63), 2**63 - 1),
    ),
    st.builds(filerecords.FileData, fixed(16), u64, st.binary(max_size=300)),
    st.builds(filerecords.FileEnd, fixed(16), fixed(32)),
    fileAcks(),
    st.builds(filerecords.FolderOffer, fixed(16), utf8Text(1, 200)),
    st.builds(records.RotationAbort, u32, u8),
    st.builds(records.RotationRequest, st.sampled_from([records.REKEY_VOLUME, records.REKEY_AGE])),
    st.builds(
        records.Bye,
        st.sampled_from(sorted(records.BYE_CODES)),
        st.sampled_from([records.SCOPE_CHANNEL, records.SCOPE_SESSION]),
        st.text(max_size=60),
    ),
)


class RoundTripTests(unittest.SynchronousTestCase):
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


class StrictnessTests(unittest.SynchronousTestCase):
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
        body = b"ACK:" + struct.pack("!QBH", 1, 0, frames.MAX_ACK_RANGES + 1)
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
        self.assertRefused(frames.decodeHandshake, b"\x01\x0f\x09")
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
            b"FAK:" + bytes(16) + b"\x00" + struct.pack("!H", frames.MAX_ACK_RANGES + 1),
        )
        self.assertRefused(records.decodeRecord, b"FDT:" + bytes(23))
        self.assertRefused(records.decodeRecord, b"FEN:" + bytes(47))
        self.assertRaises(
            ValueError,
            filerecords.FileAck(bytes(16), 0, ((0, 1),) * (frames.MAX_ACK_RANGES + 1)).encode,
        )

    def test_fileAnswerDetails(self):
        """
        A C{FAK:} carries ranges only when it is progress or resume, a
        reason only when it is refused (and then one of the known reasons),
        a name of 1 to 4096 bytes when the file is stored or already
        stored, a sentence of at most 255 bytes when refused, and no detail
        otherwise; the detail is UTF-8.  The encoder refuses what the
        decoder would.
        """
        tid = bytes(16)

        def fak(status, ranges=(), reason=0, detail=b""):
            body = b"FAK:" + tid + bytes([status]) + struct.pack("!H", len(ranges))
            body += b"".join(struct.pack("!QQ", *pair) for pair in ranges)
            return body + bytes([reason]) + struct.pack("!H", len(detail)) + detail

        refused = [
            fak(filerecords.FILE_COMPLETE, ranges=[(0, 1)], detail=b"a"),
            fak(filerecords.FILE_RESTART, ranges=[(0, 1)]),
            fak(filerecords.FILE_PROGRESS, reason=filerecords.REFUSED_LIMIT),
            fak(filerecords.FILE_REFUSED),
            fak(filerecords.FILE_REFUSED, reason=6),
            fak(filerecords.FILE_REFUSED, reason=255),
            fak(
                filerecords.FILE_REFUSED, reason=1,
                detail=b"x" * (filerecords.MAX_REFUSAL_TEXT + 1),
            ),
            fak(filerecords.FILE_REFUSED, reason=1, detail=b"\xff"),
            fak(filerecords.FILE_COMPLETE),
            fak(filerecords.FILE_ALREADY_STORED),
            fak(filerecords.FILE_COMPLETE, detail=b"x" * (filerecords.MAX_FILE_NAME + 1)),
            fak(filerecords.FILE_ALREADY_STORED, detail=b"\xc3"),
            fak(filerecords.FILE_RESUME, detail=b"a"),
            fak(filerecords.FILE_RESTART, detail=b"a"),
            fak(filerecords.FILE_PROGRESS)[:-1],
            fak(filerecords.FILE_PROGRESS) + b"\x00",
            fak(filerecords.FILE_REFUSED, reason=1, detail=b"why")[:-1],
        ]
        for body in refused:
            self.assertRefused(records.decodeRecord, body)
        accepted = [
            fak(filerecords.FILE_COMPLETE, detail=b"x" * filerecords.MAX_FILE_NAME),
            fak(filerecords.FILE_REFUSED, reason=4, detail=b"x" * filerecords.MAX_REFUSAL_TEXT),
            fak(filerecords.FILE_REFUSED, reason=1),
        ]
        for body in accepted:
            self.assertEqual(records.decodeRecord(body).encode(), body)
        invalid = [
            filerecords.FileAck(tid, filerecords.FILE_COMPLETE, ((0, 1),), 0, "a"),
            filerecords.FileAck(tid, filerecords.FILE_COMPLETE),
            filerecords.FileAck(tid, filerecords.FILE_PROGRESS, (), filerecords.REFUSED_NAME),
            filerecords.FileAck(tid, filerecords.FILE_REFUSED),
            filerecords.FileAck(tid, filerecords.FILE_REFUSED, (), 9, "why"),
            filerecords.FileAck(tid, filerecords.FILE_REFUSED, (), 1, "é" * 128),
            filerecords.FileAck(tid, filerecords.FILE_RESTART, (), 0, "a"),
        ]
        for answer in invalid:
            self.assertRaises(ValueError, answer.encode)

    @settings(max_examples=500)
    @given(
        st.integers(0, 7), st.lists(st.tuples(u64, u64), max_size=3), u8,
        st.binary(max_size=300),
    )
    def test_fileAnswerRule(self, status, ranges, reason, detail):
        """
        Over all statuses, ranges, reasons and details, a C{FAK:} decodes
        exactly when it follows the rule of L{test_fileAnswerDetails}, and
        then re-encodes to the same bytes.
        """
        body = b"FAK:" + bytes(16) + bytes([status]) + struct.pack("!H", len(ranges))
        body += b"".join(struct.pack("!QQ", *pair) for pair in ranges)
        body += bytes([reason]) + struct.pack("!H", len(detail)) + detail
        try:
            text = detail.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if status == filerecords.FILE_REFUSED:
            valid = reason in filerecords.REFUSAL_REASONS and len(detail) <= 255
        elif status in (filerecords.FILE_COMPLETE, filerecords.FILE_ALREADY_STORED):
            valid = reason == 0 and 1 <= len(detail) <= 4096
        else:
            valid = reason == 0 and not detail
        valid = valid and text is not None and status <= 5
        valid = valid and (
            not ranges or status in (filerecords.FILE_PROGRESS, filerecords.FILE_RESUME)
        )
        if valid:
            self.assertEqual(records.decodeRecord(body).encode(), body)
        else:
            self.assertRefused(records.decodeRecord, body)

    def test_folderOffer(self):
        """
        C{DIR:} refuses an empty name, one over 4096 bytes, one that is
        not UTF-8, a short id and trailing bytes.
        """
        for body in (
            b"DIR:" + bytes(16) + b"\x00\x00",
            b"DIR:" + bytes(16) + b"\x00\x01\xff",
            b"DIR:" + bytes(16) + struct.pack("!H", 4097) + b"x" * 4097,
            b"DIR:" + bytes(15),
            b"DIR:" + bytes(16) + b"\x00\x01a\x00",
        ):
            self.assertRefused(records.decodeRecord, body)

    def test_fragmentIndex(self):
        """
        A fragment whose index is not below its count is refused.
        """
        body = records.Fragment(1, 0, 1, 1, records.KIND_TEXT, bytes(32), b"x").encode()
        bad = body[:12] + (5).to_bytes(4, "big") + body[16:]
        self.assertRefused(records.decodeRecord, bad)


class KnownEncodingTests(unittest.SynchronousTestCase):
    """
    The file records' bytes, as C{docs/protocol.rst} gives them.
    """

    def test_fileAnswers(self):
        """
        C{FAK:}: id, status, the range list, the reason, then the detail
        with its u16 length.
        """
        tid = bytes(range(16))
        cases = [
            (filerecords.FileAck(tid, filerecords.FILE_PROGRESS, ((1, 2),)),
             b"\x00" + b"\x00\x01" + (1).to_bytes(8, "big") + (2).to_bytes(8, "big")
             + b"\x00" + b"\x00\x00"),
            (filerecords.FileAck(tid, filerecords.FILE_RESUME), b"\x02\x00\x00\x00\x00\x00"),
            (filerecords.FileAck(tid, filerecords.FILE_COMPLETE, detail="a/b.txt"),
             b"\x01\x00\x00\x00\x00\x07a/b.txt"),
            (filerecords.FileAck(tid, filerecords.FILE_ALREADY_STORED, detail="r.pdf"),
             b"\x05\x00\x00\x00\x00\x05r.pdf"),
            (filerecords.FileAck(tid, filerecords.FILE_RESTART), b"\x03\x00\x00\x00\x00\x00"),
            (filerecords.FileAck(
                tid, filerecords.FILE_REFUSED, (), filerecords.REFUSED_LIMIT, "full"),
             b"\x04\x00\x00\x02\x00\x04full"),
        ]
        for answer, body in cases:
            self.assertEqual(answer.encode(), b"FAK:" + tid + body)
            self.assertEqual(records.decodeRecord(b"FAK:" + tid + body), answer)

    def test_folderOffer(self):
        """
        C{DIR:}: id, then the name with its u16 length.
        """
        tid = bytes(range(16))
        offer = filerecords.FolderOffer(tid, "album/empty")
        self.assertEqual(offer.encode(), b"DIR:" + tid + b"\x00\x0balbum/empty")
        self.assertEqual(records.decodeRecord(offer.encode()), offer)

    def test_refusalReasons(self):
        """
        The reason codes of a refusal.
        """
        self.assertEqual(
            (filerecords.REFUSED_NO_FILES, filerecords.REFUSED_LIMIT, filerecords.REFUSED_NAME,
             filerecords.REFUSED_STORAGE, filerecords.REFUSED_WITHDRAWN),
            (1, 2, 3, 4, 5),
        )
        self.assertEqual(filerecords.REFUSAL_REASONS, frozenset({1, 2, 3, 4, 5}))


class GarbageTests(unittest.SynchronousTestCase):
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
