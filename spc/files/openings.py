# -*- test-case-name: tests.memory.test_unfinished,tests.memory.test_receiving -*-
"""
Opening the files one session is offered, and the session's claims on
them (issue 12: one session receives a file at a time).

An offer is looked up in the writer's lane (L{spc.files.writing}): the
file may be stored already, or its partial file is opened, or it is
refused.  Before that, the session claims the file in the store
(L{spc.files.store.FileStore.takeOver}), on the reactor thread: a session
that receives the same file (one that lingers after its sender was
interrupted, or runs beside this one) is asked to let it go first, and
keeps it while it verifies it.  So that an offer refused (over its
sender's quota, say) takes nothing from the other session, an offer of a
file another session receives is checked in the lane first
(L{spc.files.store.FileStore.admit}), and claimed only once it passed.

The lane runs jobs in order, so the other session's last jobs on the file
(its writes, and the closing of its partial file once it let go) run
before this session opens it.
"""

from __future__ import annotations

from typing import Callable

from twisted.python.failure import Failure

from spc.errors import TransferWithdrawn
from spc.files.partial import PartialFile
from spc.files.store import FileStore
from spc.files.writing import DiskQueue
from spc.protocol import filerecords

__all__ = ["Claim", "Openings"]


class Claim:
    """
    A session's claim on a file it receives, as the store keeps it
    (L{spc.files.unfinished.Receiver}): what an operator's listing shows
    of the file before its state file is written, and how the store asks
    the session to let the file go.

    @ivar key: the file's key in the store.
    @ivar name: the sender's name for it.
    """

    __slots__ = ("key", "name", "_transfer", "_held", "_release")

    def __init__(
        self,
        transfer: bytes,
        key: str,
        name: str,
        held: Callable[[bytes], int],
        release: Callable[[bytes, str], bool],
    ) -> None:
        self.key = key
        self.name = name
        self._transfer = transfer
        self._held = held
        self._release = release

    def heldBytes(self) -> int:
        return self._held(self._transfer)

    def release(self, reason: str) -> bool:
        return self._release(self._transfer, reason)


class Openings:
    """
    The offers one session is opening, and its claims in the store on the
    files it receives.
    """

    def __init__(
        self,
        store: FileStore,
        peer: str,
        peerName: str | None,
        disk: DiskQueue,
        held: Callable[[bytes], int],
        release: Callable[[bytes, str], bool],
    ) -> None:
        """
        @param held: the bytes of a transfer's file the session holds.
        @param release: asks the session to let a transfer's file go, for a
            reason; answers whether it did.
        """
        self._store = store
        self._peer = peer
        self._peerName = peerName
        self._disk = disk
        self._held = held
        self._release = release
        self._opening: dict[bytes, Claim] = {}
        self._claims: dict[bytes, Claim] = {}

    def __contains__(self, transfer: bytes) -> bool:
        return transfer in self._opening

    def __len__(self) -> int:
        return len(self._opening)

    def open(self, offer: filerecords.FileOffer, done: Callable[[object], None]) -> None:
        """
        Claim the file offered and look the offer up in the writer's lane.
        C{done} gets, on the reactor thread, the name it is stored under
        already, its open L{PartialFile}, or the L{Failure} that refuses
        it; unless the session stopped opening it meanwhile (L{withdraw},
        L{close}): then a file opened is closed again, and C{done} is not
        called.
        """
        transfer = offer.transferID
        key = self._store.key(self._peer, transfer)
        claim = Claim(transfer, key, offer.name, self._held, self._release)
        self._opening[transfer] = claim
        if self._store.receiver(key) is None:
            self._lookUp(offer, claim, done)
        else:
            self._disk.admit(
                self._peer, offer, lambda result: self._admitted(offer, claim, result, done)
            )

    def _admitted(
        self,
        offer: filerecords.FileOffer,
        claim: Claim,
        result: object,
        done: Callable[[object], None],
    ) -> None:
        """
        The lane checked an offer of a file another session receives: if
        it passed, the other session is asked to let the file go.
        """
        transfer = offer.transferID
        if self._opening.get(transfer) is not claim:
            return
        if not isinstance(result, Failure):
            try:
                self._lookUp(offer, claim, done)
                return
            except TransferWithdrawn:
                result = Failure()
        del self._opening[transfer]
        done(result)

    def _lookUp(
        self, offer: filerecords.FileOffer, claim: Claim, done: Callable[[object], None]
    ) -> None:
        """
        Claim the file, then look the offer up in the lane.

        @raise TransferWithdrawn: when another session is verifying it.
        """
        self._store.takeOver(claim.key, claim)
        self._claims[offer.transferID] = claim

        def found(result: object) -> None:
            if self._opening.get(offer.transferID) is not claim:
                if isinstance(result, PartialFile):
                    self._disk.close(result)
                return
            del self._opening[offer.transferID]
            if not isinstance(result, PartialFile):
                self.letGo(offer.transferID)
            done(result)

        self._disk.offer(self._peer, self._peerName, offer, found)

    def withdraw(self, transfer: bytes) -> Claim | None:
        """
        Stop opening the file of C{transfer}, if it is being opened.

        @return: its claim, or L{None}.
        """
        claim = self._opening.pop(transfer, None)
        if claim is not None:
            self.letGo(transfer)
        return claim

    def letGo(self, transfer: bytes) -> None:
        """
        The session receives the file of C{transfer} no more: the store
        forgets its claim.
        """
        claim = self._claims.pop(transfer, None)
        if claim is not None:
            self._store.letGo(claim.key, claim)

    def close(self) -> None:
        """
        The session ended: stop opening every file.
        """
        for transfer in list(self._opening):
            self.withdraw(transfer)
