# -*- test-case-name: tests.memory.test_invites,tests.integration.test_invites -*-
"""
The receiver's side of pairing (amendment A20): its pending invites, the
limits on attempts, and what it does with a client that paired.

An invite is made by C{spc invite} (through the daemon's control socket) or
by C{spc receive}; its code names a slot and carries the secret words.  The
first PAIR frame that names the slot uses the invite up, whatever follows,
so an attacker gets one guess per code, and every attempt is logged.  An
invite also lapses at its deadline, read on the injected clock when it is
claimed: no timer is needed.  Attempts are limited per source and in all
before any invite is looked at, like every path a peer takes before it is
authenticated.
"""

from __future__ import annotations

import secrets
from typing import Callable, NamedTuple

from twisted.internet.interfaces import IReactorTime

from spc.errors import InviteRefused
from spc.keys.pairedkeys import authorizeKey, checkName
from spc.logs import events
from spc.protocol.paircode import DEFAULT_WORDS, PairCode, makeCode
from spc.protocol.pairing import Invite
from spc.ratelimit import RateWindow, sourceKey

__all__ = ["DEFAULT_LIFETIME", "InviteDesk", "MadeInvite", "authorizingIn"]

DEFAULT_LIFETIME = 600.0
MAX_LIFETIME = 7 * 24 * 3600.0
MAX_PENDING = 32
ATTEMPT_WINDOW = 60.0
ATTEMPTS_PER_SOURCE = 10
ATTEMPTS_TOTAL = 60
RECENT_SLOTS = 256
"""
Slots of ended invites kept out of use for a while, so that a stale code
does not name (and use up) a newer invite.
"""
SLOT_RETIREMENT = 3600.0


class MadeInvite(NamedTuple):
    """
    An invite as its maker sees it.

    @ivar code: the code to hand to the client, secret.
    @ivar expires: when it lapses, on the desk's clock.
    """

    code: PairCode
    expires: float


class _Pending(NamedTuple):
    invite: Invite
    expires: float


def _host(source: str) -> str:
    """
    The address of a C{host:port} or C{[address]:port} source.
    """
    if source.startswith("["):
        return source[1:].partition("]")[0]
    return source.rpartition(":")[0] or source


class InviteDesk:
    """
    Pending invites and pairing attempts.

    @ivar onPaired: called with C{(fingerprint, name, permanent)} when a
        client paired; it records the trust, and what it raises refuses the
        pairing.
    @ivar onEnded: called with C{(invite, reason)} when an attempt used an
        invite up; C{reason} is L{None} when it paired.
    @ivar address: the interface and port of channel 0, where clients pair
        (port 0 when it is no TCP port), for the command an invite prints.
    """

    log = events.NamedLogger(events.PAIRING)

    def __init__(
        self,
        clock: IReactorTime,
        onPaired: Callable[[str, str, bool], object],
        attemptsPerSource: int = ATTEMPTS_PER_SOURCE,
        attemptsTotal: int = ATTEMPTS_TOTAL,
        choose: Callable = secrets.choice,
    ) -> None:
        self._clock = clock
        self.onPaired = onPaired
        self.onEnded: list[Callable[[Invite, str | None], object]] = []
        self.address: tuple[str, int] = ("", 0)
        self._attemptsPerSource = attemptsPerSource
        self._attemptsTotal = attemptsTotal
        self._choose = choose
        self._pending: dict[int, _Pending] = {}
        self._retired: dict[int, float] = {}
        self._attempts = RateWindow(clock, ATTEMPT_WINDOW)

    def __len__(self) -> int:
        """
        How many invites are pending.
        """
        self._lapse()
        return len(self._pending)

    def create(
        self,
        name: str = "",
        lifetime: float = DEFAULT_LIFETIME,
        words: int = DEFAULT_WORDS,
        permanent: bool = True,
    ) -> MadeInvite:
        """
        Open an invite.

        @param name: what the client will be called in C{authorized_keys}.
        @param lifetime: seconds until it lapses.
        @param words: how many secret words its code has (2 or 3).
        @param permanent: whether the client's key is to be kept.
        @raise InviteRefused: for a bad name, lifetime or word count, or
            when L{MAX_PENDING} invites are open already.
        """
        self._lapse()
        try:
            checkName(name)
        except ValueError as error:
            raise InviteRefused(str(error)) from None
        if not 0 < lifetime <= MAX_LIFETIME:
            raise InviteRefused("an invite lasts more than 0 seconds and at most 7 days")
        if words not in (2, 3):
            raise InviteRefused("a code has 2 or 3 words")
        if len(self._pending) >= MAX_PENDING:
            raise InviteRefused(f"{MAX_PENDING} invites are open already")
        code = makeCode(self._freeSlot(), words, self._choose)
        expires = self._clock.seconds() + lifetime
        invite = Invite(code.slot, code.password(), name, permanent)
        self._pending[code.slot] = _Pending(invite, expires)
        self.log.info(
            "Opened invite {slot} for {name} ({words} words), valid {lifetime:.0f} s",
            slot=code.slot, name=name or "a client", words=words, lifetime=lifetime,
        )
        return MadeInvite(code, expires)

    def _freeSlot(self) -> int:
        """
        A slot no pending or recently ended invite has: a random one of
        1 to 99 while any is free, so codes stay short and guessing which
        slot is open gains nothing.
        """
        taken = self._pending.keys() | self._retired.keys()
        low, high = 1, 99
        while True:
            free = [slot for slot in range(low, high + 1) if slot not in taken]
            if free:
                return self._choose(free)
            low, high = high + 1, high * 10 + 9

    def _lapse(self) -> None:
        now = self._clock.seconds()
        for slot, pending in list(self._pending.items()):
            if pending.expires <= now:
                del self._pending[slot]
                self._retire(slot)
                self.log.info("Invite {slot} expired unused", slot=slot)
        for slot, since in list(self._retired.items()):
            if now - since > SLOT_RETIREMENT:
                del self._retired[slot]

    def _retire(self, slot: int) -> None:
        self._retired[slot] = self._clock.seconds()
        while len(self._retired) > RECENT_SLOTS:
            del self._retired[next(iter(self._retired))]

    # PairingDesk.

    def admitPairing(self, source: str) -> bool:
        """
        At most C{attemptsPerSource} attempts a minute from one address (an
        IPv6 /64), and C{attemptsTotal} in all.
        """
        if not self._attempts.admit(sourceKey(_host(source)), self._attemptsPerSource):
            return False
        return self._attempts.admit(None, self._attemptsTotal)

    def claimInvite(self, slot: int, source: str) -> Invite | None:
        self._lapse()
        pending = self._pending.pop(slot, None)
        if pending is None:
            return None
        self._retire(slot)
        self.log.info(
            "Invite {slot} ({name}) is used by a pairing attempt from {source}",
            slot=slot, name=pending.invite.name or "no name", source=source,
        )
        return pending.invite

    def invitePaired(self, invite: Invite, fingerprint: str, source: str) -> None:
        self.onPaired(fingerprint, invite.name, invite.permanent)
        self.log.info(
            "Paired {peer} ({name}) from {source} with invite {slot}",
            peer=fingerprint, name=invite.name or "no name", source=source, slot=invite.slot,
        )
        for callback in self.onEnded:
            callback(invite, None)

    def inviteFailed(self, invite: Invite, reason: str, source: str) -> None:
        self.log.warn(
            "Pairing from {source} with invite {slot} failed: {reason}; the invite "
            "is used up",
            source=source, slot=invite.slot, reason=reason,
        )
        for callback in self.onEnded:
            callback(invite, reason)


def authorizingIn(
    path: str, uid: int | None, reload: Callable[[], object]
) -> Callable[[str, str, bool], None]:
    """
    The daemon's C{onPaired}: add the client to C{authorized_keys} at
    C{path} and apply it at once, as a SIGHUP would.
    """

    def paired(fingerprint: str, name: str, permanent: bool) -> None:
        authorizeKey(path, fingerprint, name, uid)
        reload()

    return paired
