# -*- test-case-name: tests.memory.test_file_times -*-
"""
Tests for the modification times of received files (issue 12, part 4):
C{FIL:} carries the sender's C{mtime}, strictly parsed, and the stored
file keeps it, as C{scp -p} and C{rsync -t} keep it.
"""

from __future__ import annotations

import hashlib
import os
import struct
import time

from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from spc.errors import ProtocolError
from spc.files.store import FileStore
from spc.protocol import filerecords, records
from tests.memory.test_receiving import Link, TransferTestCase

i64 = st.integers(-(2**63), 2**63 - 1)
names = st.text(min_size=1, max_size=100).filter(
    lambda name: 0 < len(name.encode("utf-8")) <= filerecords.MAX_FILE_NAME
)
WHEN_NS = 1_000_000_000_123_456_789
"""
2001-09-09T01:46:40.123456789Z, with every digit of its nanoseconds.
"""


class OfferTests(SynchronousTestCase):
    """
    C{FIL:} as its bytes.
    """

    @settings(max_examples=200, deadline=None)
    @given(st.binary(min_size=16, max_size=16), st.integers(0, 2**64 - 1), i64, names)
    def test_roundTrip(self, transferID, size, mtime, name) -> None:
        """
        Every id, size, C{mtime} and name comes back as it was sent.
        """
        offer = filerecords.FileOffer(transferID, size, name, mtime)
        self.assertEqual(records.decodeRecord(offer.encode()), offer)

    def test_layout(self) -> None:
        """
        The C{mtime} is a signed 64-bit number after the size, before the
        name; without one it is L{filerecords.NO_MTIME}, -2**63.
        """
        encoded = filerecords.FileOffer(b"i" * 16, 5, "n", -2).encode()
        self.assertEqual(encoded, b"FIL:" + b"i" * 16 + struct.pack("!QqH", 5, -2, 1) + b"n")
        self.assertEqual(filerecords.FileOffer(b"i" * 16, 5, "n").mtime, -(2**63))
        self.assertEqual(
            filerecords.FileOffer(b"i" * 16, 5, "n").encode()[28:36], b"\x80" + b"\x00" * 7
        )

    @settings(max_examples=200, deadline=None)
    @given(st.binary(min_size=16, max_size=16), i64, names, st.data())
    def test_truncatedOrLonger(self, transferID, mtime, name, data) -> None:
        """
        A C{FIL:} cut anywhere, or with a byte more, is refused.
        """
        encoded = filerecords.FileOffer(transferID, 7, name, mtime).encode()
        cut = data.draw(st.integers(4, len(encoded) - 1))
        self.assertRaises(ProtocolError, records.decodeRecord, encoded[:cut])
        self.assertRaises(ProtocolError, records.decodeRecord, encoded + b"\0")

    def test_senderSendsItsMtime(self) -> None:
        """
        The sender offers the file's modification time as C{fstat} gives
        it, to the nanosecond.
        """
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"timed")
        os.utime(path, ns=(WHEN_NS, WHEN_NS))
        link = Link(self, FileStore(self.mktemp()))
        link.send(path, "timed.txt")
        link.flow()
        [offer] = link.sent(filerecords.FileOffer)
        self.assertEqual(offer.mtime, os.stat(path).st_mtime_ns)


class StoredTimeTests(TransferTestCase):
    """
    A stored file keeps the sender's modification time.
    """

    def deliver(self, link: Link, path: str, name: str):
        """
        Send C{path} as C{name} over C{link}.

        @return: the L{spc.files.sending.Delivered}.
        """
        _, sent = link.send(path, name)
        link.flow()
        return self.successResultOf(sent)

    def test_kept(self) -> None:
        """
        The stored file has the sender's modification time, to the
        nanosecond where the file system keeps them.
        """
        path = self.source(os.urandom(100_000))
        os.utime(path, ns=(WHEN_NS, WHEN_NS))
        kept = os.stat(path).st_mtime_ns
        self.deliver(Link(self, self.store), path, "old.bin")
        self.assertEqual(os.stat(os.path.join(self.inbox, "old.bin")).st_mtime_ns, kept)

    def test_stillAlreadyStored(self) -> None:
        """
        The time is set before the file is placed: sent again, the file is
        answered "already stored", the times recorded when it was placed
        being its own.
        """
        path = self.source(b"again")
        os.utime(path, ns=(WHEN_NS, WHEN_NS))
        link = Link(self, self.store)
        self.assertFalse(self.deliver(link, path, "again.txt").already)
        self.assertTrue(self.deliver(link, path, "again.txt").already)

    def test_noMtime(self) -> None:
        """
        An offer without a time leaves the file the time it arrived.
        """
        link = Link(self, self.store)
        before = time.time_ns()
        transfer = b"n" * 16
        link.incoming.offerReceived(filerecords.FileOffer(transfer, 3, "now.txt"))
        link.incoming.dataReceived(filerecords.FileData(transfer, 0, b"abc"))
        link.incoming.endReceived(
            filerecords.FileEnd(transfer, hashlib.sha256(b"abc").digest())
        )
        stored = os.stat(os.path.join(self.inbox, "now.txt")).st_mtime_ns
        self.assertGreaterEqual(stored, before - 10**9)

    @settings(max_examples=30, deadline=None)
    @given(i64)
    def test_anyTime(self, mtime) -> None:
        """
        Whatever the time, far past or far future, the file is stored: with
        that time where the file system holds it, with its time of arrival
        otherwise.
        """
        store = FileStore(self.mktemp())
        link = Link(self, store)
        transfer = b"a" * 16
        link.incoming.offerReceived(filerecords.FileOffer(transfer, 1, "any.txt", mtime))
        link.incoming.dataReceived(filerecords.FileData(transfer, 0, b"z"))
        link.incoming.endReceived(
            filerecords.FileEnd(transfer, hashlib.sha256(b"z").digest())
        )
        self.assertTrue(os.path.isfile(os.path.join(store.directory, "any.txt")))
