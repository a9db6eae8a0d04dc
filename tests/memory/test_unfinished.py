# -*- test-case-name: tests.memory.test_unfinished -*-
"""
Tests for unfinished files (issue 12, part 4): one session receives a
file at a time, a newer session of the same sender taking it from an
older one (the session an interrupted C{spc send} leaves behind for a
minute), and the operator lists and removes them
(L{tests.integration.test_discard} runs C{spc discard} itself).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket

from twisted.internet import task
from twisted.internet.endpoints import connectProtocol
from twisted.protocols import amp
from twisted.trial.unittest import SynchronousTestCase

from spc.cli.status import formatJSON, formatTable
from spc.errors import DiscardRefused, TransferWithdrawn
from spc.files import receiving, store as storeModule
from spc.files.names import PARTIAL_DIRECTORY
from spc.files.receiving import IncomingFiles
from spc.files.store import FileStore
from spc.files.unfinished import REMOVED
from spc.keys.trust import AuthorizedKeys
from spc.lanes import InlineLane
from spc.protocol import filerecords, records
from spc.server.directory import SessionDirectory
from spc.status import unfinished as statusUnfinished
from spc.status.control import ControlFactory, fetchStatus
from spc.status.snapshot import StatusSource
from spc.status.unfinished import DiscardUnfinished, callerUID
from tests.common import cachedIdentity
from tests.fakes import QueuedLane
from tests.memory.test_receiving import SIZE
from tests.memory.test_status import MemoryEndpoint
from tests.unit.test_identity import OTHER_FINGERPRINT

PEER = OTHER_FINGERPRINT
TRANSFER = b"t" * 16
DATA = bytes(range(256)) * (4 * SIZE // 256)


class Receiver:
    """
    One session's L{IncomingFiles} over a shared store, and what it
    answered.

    @ivar answers: its decoded C{FAK:}s, in order.
    @ivar lane: its writer's lane: inline, or, when it works by hand, one
        that runs the disk work of an offer or of data at once and keeps
        the rest (the verification) for L{runWork}.
    """

    def __init__(
        self, testCase: SynchronousTestCase, store: FileStore, byHand: bool = False
    ) -> None:
        self.answers: list[filerecords.FileAck] = []
        self.stored: list = []
        self.lane = QueuedLane() if byHand else InlineLane()
        self.incoming = IncomingFiles(
            store, PEER, SIZE, lambda data: self.answers.append(records.decodeRecord(data)),
            task.Clock(), lambda *stored: self.stored.append(stored), self.lane,
        )
        testCase.addCleanup(self.runWork)
        testCase.addCleanup(self.incoming.close)

    def runWork(self) -> None:
        if isinstance(self.lane, QueuedLane):
            self.lane.runAll()

    def offer(self, size: int = len(DATA)) -> None:
        self.incoming.offerReceived(filerecords.FileOffer(TRANSFER, size, "big2.bin"))
        self.runWork()

    def data(self, *offsets: int) -> None:
        for offset in offsets:
            self.incoming.dataReceived(
                filerecords.FileData(TRANSFER, offset, DATA[offset : offset + SIZE])
            )
            self.runWork()

    def end(self) -> None:
        self.incoming.endReceived(filerecords.FileEnd(TRANSFER, hashlib.sha256(DATA).digest()))

    def statuses(self) -> list[int]:
        return [answer.status for answer in self.answers]


class TakeOverTests(SynchronousTestCase):
    """
    When a newer session of the same sender offers a file an older one is
    receiving, the older one's claim on it ends.
    """

    def setUp(self) -> None:
        self.store = FileStore(self.mktemp())

    def statePath(self) -> str:
        return self.store._statePath(self.store.key(PEER, TRANSFER))

    def test_newerTakesOver(self) -> None:
        """
        The older session stops receiving the file: it no longer lists it
        as in progress, and tells its sender (if still there) why, with
        reason withdrawn; the newer one is answered resume and receives it.
        """
        older, newer = Receiver(self, self.store), Receiver(self, self.store)
        older.offer()
        older.data(0)
        self.assertEqual([p.name for p in older.incoming.inProgress()], ["big2.bin"])
        newer.offer()
        self.assertEqual(older.incoming.inProgress(), [])
        refusal = older.answers[-1]
        self.assertEqual(
            (refusal.status, refusal.reason, refusal.detail),
            (filerecords.FILE_REFUSED, filerecords.REFUSED_WITHDRAWN, storeModule.TAKEN_OVER),
        )
        self.assertEqual(newer.statuses(), [filerecords.FILE_RESUME])
        self.assertEqual([p.name for p in newer.incoming.inProgress()], ["big2.bin"])

    def test_lateRecordsOfOlderDropped(self) -> None:
        """
        What reaches the older session of that file afterwards is dropped
        as late records of an ended transfer, not taken for a protocol
        error, and writes nothing.
        """
        older, newer = Receiver(self, self.store), Receiver(self, self.store)
        older.offer()
        newer.offer()
        older.data(SIZE)
        older.end()
        newer.data(0, SIZE, 2 * SIZE, 3 * SIZE)
        newer.end()
        self.assertEqual(newer.statuses()[-1], filerecords.FILE_COMPLETE)
        with open(os.path.join(self.store.directory, "big2.bin"), "rb") as f:
            self.assertEqual(f.read(), DATA)

    def test_ghostEndsAfterNewerFinished(self) -> None:
        """
        The older session ending after the newer one stored the file (its
        linger running out) writes no state file back and leaves no
        partial file.
        """
        older, newer = Receiver(self, self.store), Receiver(self, self.store)
        older.offer()
        older.data(0)
        newer.offer()
        newer.data(0, SIZE, 2 * SIZE, 3 * SIZE)
        newer.end()
        older.incoming.close()
        self.assertFalse(os.path.exists(self.statePath()))
        self.assertEqual(list(self.store.unfinished()), [])

    def test_ghostEndsWhileNewerReceives(self) -> None:
        """
        The older session ending while the newer one receives leaves the
        newer one's state as the newer one wrote it.
        """
        older, newer = Receiver(self, self.store), Receiver(self, self.store)
        older.offer()
        older.data(0, SIZE)
        newer.offer()
        with open(self.statePath()) as f:
            before = json.load(f)
        older.incoming.close()
        with open(self.statePath()) as f:
            self.assertEqual(json.load(f), before)
        [entry] = list(self.store.unfinished())
        self.assertTrue(entry.receiving)

    def test_newerRefused(self) -> None:
        """
        A newer offer refused for its sender's quota (here made smaller
        since the older offer) takes nothing: the older session goes on
        receiving the file.
        """
        older = Receiver(self, self.store)
        older.offer()
        self.store.quota = len(DATA) - 1
        newer = Receiver(self, self.store)
        newer.offer()
        self.assertEqual(
            [(a.status, a.reason) for a in newer.answers],
            [(filerecords.FILE_REFUSED, filerecords.REFUSED_LIMIT)],
        )
        self.assertEqual([p.name for p in older.incoming.inProgress()], ["big2.bin"])
        self.assertEqual(older.statuses(), [filerecords.FILE_RESUME])

    def test_olderVerifying(self) -> None:
        """
        An older session verifying the whole file keeps it: the newer
        session's offer is refused, saying to send it again, and once the
        older one stored it, the next offer is answered "already stored".
        """
        older = Receiver(self, self.store, byHand=True)
        older.offer()
        older.data(0, SIZE, 2 * SIZE, 3 * SIZE)
        older.end()
        newer = Receiver(self, self.store)
        newer.offer()
        [refusal] = newer.answers
        self.assertEqual(
            (refusal.status, refusal.reason),
            (filerecords.FILE_REFUSED, filerecords.REFUSED_WITHDRAWN),
        )
        self.assertIn("being verified", refusal.detail)
        older.runWork()
        self.assertEqual(older.statuses()[-1], filerecords.FILE_COMPLETE)
        newer.offer()
        self.assertEqual(newer.statuses()[-1], filerecords.FILE_ALREADY_STORED)


class SharedLaneTests(SynchronousTestCase):
    """
    The sessions of a daemon share one writer's lane (L{spc.lanes}): a
    takeover is ordered in it.
    """

    def test_olderClosedBeforeNewerOpens(self) -> None:
        """
        The older session's last disk work on the file (its writes, their
        fsync and claim, its close) runs before the newer session opens
        the file, so the newer one is answered with every range the older
        one claimed, and the older one's close writes no state over the
        newer one's.
        """
        self.patch(receiving, "SYNC_BYTES", SIZE)
        store = FileStore(self.mktemp())
        lane = QueuedLane()
        answers: dict[str, list] = {"older": [], "newer": []}
        sessions = {
            which: IncomingFiles(
                store, PEER, SIZE,
                lambda data, which=which: answers[which].append(records.decodeRecord(data)),
                task.Clock(), writer=lane,
            )
            for which in answers
        }
        for incoming in sessions.values():
            self.addCleanup(lane.runAll)
            self.addCleanup(incoming.close)
        offer = filerecords.FileOffer(TRANSFER, len(DATA), "big2.bin")
        sessions["older"].offerReceived(offer)
        lane.runAll()
        for offset in (0, SIZE):
            sessions["older"].dataReceived(
                filerecords.FileData(TRANSFER, offset, DATA[offset : offset + SIZE])
            )
        sessions["newer"].offerReceived(offer)
        self.assertEqual(answers["newer"], [])
        lane.runAll()
        self.assertEqual(
            [(a.status, a.reason) for a in answers["older"]][-1],
            (filerecords.FILE_REFUSED, filerecords.REFUSED_WITHDRAWN),
        )
        [resume] = answers["newer"]
        self.assertEqual(
            (resume.status, resume.ranges), (filerecords.FILE_RESUME, ((0, 2 * SIZE),))
        )
        with open(store._statePath(store.key(PEER, TRANSFER))) as f:
            self.assertEqual(json.load(f)["ranges"], [[0, 2 * SIZE]])


def daemonWith(store: FileStore) -> StatusSource:
    """
    What the control socket of a daemon with C{store} reads: its sender
    C{PEER} is called alice in its C{authorized_keys}.
    """
    directory = SessionDirectory(
        task.Clock(), cachedIdentity("server"),
        AuthorizedKeys("authorized_keys", [(PEER, "alice")]), None, 1, files=store,
    )
    return StatusSource(directory, task.Clock(), "SHA256:daemon")


class ListingTests(SynchronousTestCase):
    """
    The operator sees every unfinished file: C{FileStore.unfinished}, the
    control socket and C{spc status}.
    """

    def setUp(self) -> None:
        self.now = [1000.0]
        self.store = FileStore(self.mktemp(), now=lambda: self.now[0])
        self.key = self.store.key(PEER, TRANSFER)

    def test_store(self) -> None:
        """
        Each unfinished file with its sender, name, declared size, the
        bytes held, how long since its state was written, and whether a
        session receives it.
        """
        receiver = Receiver(self, self.store)
        receiver.offer()
        receiver.data(0, SIZE)
        self.now[0] += 90
        [entry] = list(self.store.unfinished())
        self.assertEqual(
            tuple(entry), (self.key, PEER, "big2.bin", len(DATA), 0, 90.0, True)
        )
        receiver.incoming.close()
        [entry] = list(self.store.unfinished())
        self.assertEqual((entry.held, entry.age, entry.receiving), (2 * SIZE, 0.0, False))
        self.assertEqual(list(self.store.unfinished(after=self.key)), [])

    def test_overControlSocket(self) -> None:
        """
        C{spc status} gets them with the sessions, the sender's name
        looked up, and prints them: the first digits of the id, the
        sender, the name, what is held of what size, the age.
        """
        receiver = Receiver(self, self.store)
        receiver.offer()
        receiver.data(0)
        receiver.incoming.close()
        endpoint = MemoryEndpoint(ControlFactory(daemonWith(self.store)))
        fetching = fetchStatus(endpoint)
        endpoint.flush()
        snapshot = self.successResultOf(fetching)
        [entry] = snapshot.unfinished
        self.assertEqual(
            (entry.id, entry.owner, entry.ownerName, entry.name, entry.held, entry.receiving),
            (self.key, PEER, "alice", "big2.bin", SIZE, False),
        )
        table = formatTable(snapshot)
        self.assertIn("1 unfinished file (kept a day after the last write; spc discard ID", table)
        [row] = [line for line in table.splitlines() if self.key[:12] in line]
        self.assertEqual(
            row.split(),
            [self.key[:12], "alice", "big2.bin", "16.0", "KiB", "64.0", "KiB", "0s", "-"],
        )
        self.assertIn(f'"id": "{self.key}"', formatJSON(snapshot))

    def test_manyPages(self) -> None:
        """
        However many there are, they arrive whole, page by page.
        """
        for n in range(300):
            key = self.store.key(PEER, n.to_bytes(16, "big"))
            self.store.open(key, "x" * 150, 1, PEER).close()
        endpoint = MemoryEndpoint(ControlFactory(daemonWith(self.store)))
        fetching = fetchStatus(endpoint)
        endpoint.flush()
        ids = [entry.id for entry in self.successResultOf(fetching).unfinished]
        self.assertEqual(ids, sorted(entry.key for entry in self.store.unfinished()))
        self.assertEqual(len(ids), 300)


class DiscardTests(SynchronousTestCase):
    """
    The operator removes an unfinished file: C{FileStore.discardUnfinished}
    and the control socket's write command.
    """

    def setUp(self) -> None:
        self.useStore(FileStore(self.mktemp()))

    def useStore(self, store: FileStore) -> None:
        self.store = store
        self.key = store.key(PEER, TRANSFER)
        self.endpoint = MemoryEndpoint(ControlFactory(daemonWith(store)))

    def partials(self) -> list[str]:
        return sorted(
            name for name in os.listdir(os.path.join(self.store.directory, PARTIAL_DIRECTORY))
            if name != "completed.json"
        )

    def discard(self, id: str):
        client = self.successResultOf(connectProtocol(self.endpoint, amp.AMP()))
        answers: list = []
        client.callRemote(DiscardUnfinished, id=id).addBoth(answers.append)
        self.endpoint.flush()
        [answer] = answers
        return answer

    def test_idle(self) -> None:
        """
        A file no session receives is deleted, its state with it, and its
        bytes no longer count against its sender's quota.
        """
        self.useStore(FileStore(self.mktemp(), quota=len(DATA)))
        receiver = Receiver(self, self.store)
        receiver.offer()
        receiver.data(0)
        receiver.incoming.close()
        self.assertRaises(Exception, self.store.open, "other", "o", 1, PEER)
        answer = self.discard(self.key[:8])
        self.assertEqual(
            answer, {"id": self.key, "owner": PEER, "ownerName": "alice", "name": "big2.bin",
                     "held": SIZE},
        )
        self.assertEqual(self.partials(), [])
        self.store.open("other", "o", len(DATA), PEER).close()

    def test_receiving(self) -> None:
        """
        A file a session receives is taken from it: the session tells its
        sender that the operator removed it, and the file is gone.
        """
        receiver = Receiver(self, self.store)
        receiver.offer()
        receiver.data(0)
        self.discard(self.key.upper())
        refusal = receiver.answers[-1]
        self.assertEqual(
            (refusal.status, refusal.reason, refusal.detail),
            (filerecords.FILE_REFUSED, filerecords.REFUSED_WITHDRAWN, REMOVED),
        )
        self.assertEqual(receiver.incoming.inProgress(), [])
        receiver.data(SIZE)
        self.assertEqual(self.partials(), [])

    def test_verifying(self) -> None:
        """
        A file complete and being verified is not removed: it is about to
        be stored (or refused).
        """
        receiver = Receiver(self, self.store, byHand=True)
        receiver.offer()
        receiver.data(0, SIZE, 2 * SIZE, 3 * SIZE)
        receiver.end()
        self.assertRaises(TransferWithdrawn, self.store.discardUnfinished, self.key)
        failure = self.discard(self.key)
        self.assertTrue(failure.check(DiscardRefused))
        self.assertIn("being verified", str(failure.value))
        receiver.runWork()
        self.assertEqual(receiver.statuses()[-1], filerecords.FILE_COMPLETE)

    def test_badIds(self) -> None:
        """
        An id that is too short, not hex, or names no file or several, is
        refused with the reason, and nothing is removed.
        """
        receiver = Receiver(self, self.store)
        receiver.offer()
        receiver.incoming.close()
        twin = self.key[:8] + "0" * 32 if self.key[8] != "0" else self.key[:8] + "1" * 32
        self.store.open(twin, "twin", 1, PEER).close()
        for id, why in [
            (self.key[:7], "8 or more hex digits"), ("x" * 10, "8 or more hex digits"),
            ("f" * 40 if not self.key.startswith("f") else "e" * 40, "names no file"),
            (self.key[:8], "names 2 files; give more of it"),
        ]:
            failure = self.discard(id)
            self.assertTrue(failure.check(DiscardRefused), failure)
            self.assertIn(why, str(failure.value))
        self.assertEqual(len(list(self.store.unfinished())), 2)
        self.assertRaises(KeyError, self.store.discardUnfinished, "f" * 40)

    def test_onlyTheDaemonsUser(self) -> None:
        """
        Another user (were the socket's mode ever wider) is refused, and
        nothing is removed.
        """
        receiver = Receiver(self, self.store)
        receiver.offer()
        receiver.incoming.close()
        self.patch(statusUnfinished, "callerUID", lambda transport: os.geteuid() + 1)
        failure = self.discard(self.key)
        self.assertTrue(failure.check(DiscardRefused))
        self.assertIn("only the daemon's own user", str(failure.value))
        self.assertEqual(len(list(self.store.unfinished())), 1)

    def test_callerUID(self) -> None:
        """
        On Linux the caller's user is the one of the process at the other
        end of the socket; without a socket, it is not known.
        """
        if not hasattr(socket, "SO_PEERCRED"):
            raise self.skipTest("no SO_PEERCRED here")
        ours, theirs = socket.socketpair()
        self.addCleanup(ours.close)
        self.addCleanup(theirs.close)

        class Transport:
            def getHandle(self):
                return ours

        self.assertEqual(callerUID(Transport()), os.geteuid())
        self.assertIsNone(callerUID(object()))
