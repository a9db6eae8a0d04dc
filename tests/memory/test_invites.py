"""
Tests for the receiver's side of pairing (L{spc.server.invites}), what it
writes (L{spc.keys.pairedkeys}), the control socket's one write command,
(the loopback half is in tests.integration.test_invites).
"""

from __future__ import annotations

import os

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.logger import Logger, formatEvent
from twisted.trial import unittest

from spc.errors import (
    InsecurePath,
    InviteRefused,
)
from spc.keys.pairedkeys import PairedClients, authorizeKey, checkName
from spc.keys.trust import AuthorizedKeys
from spc.protocol.paircode import parseCode
from spc.server.invites import (
    ATTEMPTS_PER_SOURCE,
    MAX_PENDING,
    InviteDesk,
)
from spc.status import unfinished as statusUnfinished
from spc.status.control import ControlFactory, requestInvite
from tests.common import clientIdentity, otherClientIdentity
from tests.memory.test_status import MemoryEndpoint

SOURCE = "192.0.2.1:5000"


def makeDesk(clock=None, **kw):
    paired: list = []
    desk = InviteDesk(clock or Clock(), lambda *args: paired.append(args), **kw)
    desk.paired = paired
    return desk


class DeskTests(unittest.SynchronousTestCase):
    """
    Invites: made, claimed once, lapsed.
    """

    def test_claimOnce(self) -> None:
        """
        An invite is claimed once; its slot then names nothing, and no
        later invite takes that slot while it is retired.
        """
        desk = makeDesk()
        made = desk.create("alice")
        invite = desk.claimInvite(made.code.slot, SOURCE)
        self.assertEqual((invite.name, invite.password), ("alice", made.code.password()))
        self.assertIsNone(desk.claimInvite(made.code.slot, SOURCE))
        others = {desk.create().code.slot for _ in range(MAX_PENDING)}
        self.assertNotIn(made.code.slot, others)

    def test_expires(self) -> None:
        """
        At its deadline an invite lapses: the code names nothing.
        """
        clock = Clock()
        desk = makeDesk(clock)
        made = desk.create(lifetime=60)
        clock.advance(60)
        self.assertIsNone(desk.claimInvite(made.code.slot, SOURCE))
        self.assertEqual(len(desk), 0)

    def test_stillValid(self) -> None:
        clock = Clock()
        desk = makeDesk(clock)
        made = desk.create(lifetime=60)
        clock.advance(59.9)
        self.assertIsNotNone(desk.claimInvite(made.code.slot, SOURCE))

    def test_refusals(self) -> None:
        """
        A bad name, lifetime or word count, or too many open invites, make
        no invite.
        """
        desk = makeDesk()
        for kw in [
            {"name": "two\nlines"}, {"name": " padded"}, {"name": "x" * 65},
            {"lifetime": 0}, {"lifetime": 8 * 86400}, {"words": 4},
        ]:
            self.assertRaises(InviteRefused, desk.create, **kw)
        for _ in range(MAX_PENDING):
            desk.create()
        self.assertRaises(InviteRefused, desk.create)

    def test_events(self) -> None:
        """
        A success records the client and tells the watchers; a failure
        tells them why.
        """
        desk = makeDesk()
        ended: list = []
        desk.onEnded.append(lambda invite, reason: ended.append((invite.slot, reason)))
        first, second = desk.create("a"), desk.create("b", permanent=False)
        desk.invitePaired(desk.claimInvite(first.code.slot, SOURCE), "SHA256:x", SOURCE)
        desk.inviteFailed(desk.claimInvite(second.code.slot, SOURCE), "wrong", SOURCE)
        self.assertEqual(desk.paired, [("SHA256:x", "a", True)])
        self.assertEqual(ended, [(first.code.slot, None), (second.code.slot, "wrong")])

    def test_logsNoSecret(self) -> None:
        """
        The log says which invite was opened and used, never its words.
        """
        logged: list = []
        desk = makeDesk()
        desk.log = Logger(observer=logged.append)
        made = desk.create("alice", words=3)
        desk.inviteFailed(desk.claimInvite(made.code.slot, SOURCE), "the code was wrong", SOURCE)
        text = " ".join(formatEvent(event) for event in logged)
        self.assertIn(f"invite {made.code.slot}", text.lower())
        for word in made.code.words:
            self.assertNotIn(word, text)


class RateLimitTests(unittest.SynchronousTestCase):
    """
    Pairing attempts are limited before any invite is looked at.
    """

    def test_perSource(self) -> None:
        clock = Clock()
        desk = makeDesk(clock)
        admitted = [desk.admitPairing("198.51.100.1:1") for _ in range(ATTEMPTS_PER_SOURCE + 1)]
        self.assertEqual(admitted.count(True), ATTEMPTS_PER_SOURCE)
        self.assertFalse(admitted[-1])
        self.assertTrue(desk.admitPairing("198.51.100.2:1"))
        clock.advance(61)
        self.assertTrue(desk.admitPairing("198.51.100.1:2"))

    def test_ipv6Prefix(self) -> None:
        """
        Addresses of one IPv6 /64 share their limit.
        """
        desk = makeDesk(attemptsPerSource=2)
        self.assertTrue(desk.admitPairing("[2001:db8::1]:5"))
        self.assertTrue(desk.admitPairing("[2001:db8::2]:5"))
        self.assertFalse(desk.admitPairing("[2001:db8::3]:5"))
        self.assertTrue(desk.admitPairing("[2001:db8:0:1::1]:5"))

    def test_total(self) -> None:
        desk = makeDesk(attemptsTotal=3)
        results = [desk.admitPairing(f"203.0.113.{n}:1") for n in range(4)]
        self.assertEqual(results, [True, True, True, False])

    @given(st.lists(st.integers(0, 255), max_size=40))
    def test_neverOver(self, hosts) -> None:
        """
        However the attempts are spread over sources, no source gets more
        than its share and all of them no more than the total.
        """
        desk = makeDesk(attemptsPerSource=3, attemptsTotal=10)
        counts: dict = {}
        for host in hosts:
            if desk.admitPairing(f"10.0.0.{host}:1"):
                counts[host] = counts.get(host, 0) + 1
        self.assertLessEqual(sum(counts.values()), 10)
        self.assertTrue(all(count <= 3 for count in counts.values()))


class AuthorizeKeyTests(unittest.SynchronousTestCase):
    """
    What a pairing adds to authorized_keys.
    """

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory, mode=0o700)
        self.path = os.path.join(self.directory, "authorized_keys")

    def test_appends(self) -> None:
        """
        A new line is added, every old one kept, and the file read back
        authorizes the key under its name.
        """
        with open(self.path, "w") as f:
            f.write(f"# mine\n{otherClientIdentity().fingerprint} bob")
        os.chmod(self.path, 0o640)
        self.assertTrue(authorizeKey(self.path, clientIdentity().fingerprint, "alice"))
        keys = AuthorizedKeys.fromFile(self.path)
        self.assertEqual(keys.nameOf(clientIdentity().fingerprint), "alice")
        self.assertEqual(keys.nameOf(otherClientIdentity().fingerprint), "bob")
        with open(self.path) as f:
            self.assertTrue(f.read().startswith("# mine\n"))
        self.assertEqual(os.stat(self.path).st_mode & 0o777, 0o640)
        self.assertEqual([n for n in os.listdir(self.directory) if n.endswith(".tmp")], [])

    def test_once(self) -> None:
        self.assertTrue(authorizeKey(self.path, clientIdentity().fingerprint, ""))
        self.assertFalse(authorizeKey(self.path, clientIdentity().fingerprint, "again"))
        self.assertEqual(len(AuthorizedKeys.fromFile(self.path)), 1)
        self.assertEqual(os.stat(self.path).st_mode & 0o777, 0o600)

    def test_unsafeFile(self) -> None:
        """
        A file others could write is not added to.
        """
        os.chmod(self.directory, 0o777)
        self.addCleanup(os.chmod, self.directory, 0o700)
        self.assertRaises(InsecurePath, authorizeKey, self.path, clientIdentity().fingerprint, "")
        self.assertFalse(os.path.exists(self.path))

    @given(st.text(max_size=80))
    def test_namesStayOneLine(self, name: str) -> None:
        """
        Any name an invite accepts reads back as itself from one line.
        """
        try:
            checkName(name)
        except ValueError:
            return
        text = f"{clientIdentity().fingerprint} {name}".rstrip() + "\n"
        keys = AuthorizedKeys.parse(text, "x")
        self.assertEqual(keys.nameOf(clientIdentity().fingerprint), name or None)

    def test_pairedClients(self) -> None:
        """
        A key paired for one run is admitted, by name, beside the file's.
        """
        trust = PairedClients(AuthorizedKeys.parse(f"{otherClientIdentity().fingerprint} b", "x"))
        self.assertFalse(trust.isAuthorized(clientIdentity().fingerprint))
        trust.add(clientIdentity().fingerprint, "alice")
        self.assertTrue(trust.isAuthorized(clientIdentity().fingerprint))
        self.assertTrue(trust.isAuthorized(otherClientIdentity().fingerprint))
        self.assertEqual(trust.nameOf(clientIdentity().fingerprint), "alice")
        self.assertFalse(trust.isAuthorized("not a fingerprint"))


class ControlTests(unittest.SynchronousTestCase):
    """
    C{spc invite}'s command on the control socket.
    """

    def test_created(self) -> None:
        desk = makeDesk()
        desk.address = ("127.0.0.1", 9000)
        endpoint = MemoryEndpoint(ControlFactory(None, desk))
        asking = requestInvite(endpoint, "alice", 60.0, 3)
        endpoint.flush()
        answer = self.successResultOf(asking)
        code = parseCode(answer["code"])
        self.assertEqual(len(code.words), 3)
        self.assertEqual((answer["interface"], answer["port"]), ("127.0.0.1", 9000))
        self.assertEqual(desk.claimInvite(code.slot, SOURCE).name, "alice")

    def test_refused(self) -> None:
        """
        A refusal reaches the caller in the daemon's words, once.
        """
        endpoint = MemoryEndpoint(ControlFactory(None, makeDesk()))
        asking = requestInvite(endpoint, "two\nlines", 60.0, 2)
        endpoint.flush()
        error = self.failureResultOf(asking, InviteRefused).value
        self.assertEqual(str(error).count("made no invite"), 1)
        self.assertIn("printable", str(error))

    def test_otherUser(self) -> None:
        """
        A caller that is neither the daemon's user nor root opens no invite,
        even if the socket's mode let it connect.
        """
        self.patch(statusUnfinished, "callerUID", lambda transport: os.geteuid() + 1)
        desk = makeDesk()
        desk.address = ("127.0.0.1", 9000)
        endpoint = MemoryEndpoint(ControlFactory(None, desk))
        asking = requestInvite(endpoint, "mallory", 60.0, 2)
        endpoint.flush()
        error = self.failureResultOf(asking, InviteRefused).value
        self.assertIn("only the daemon's own user", str(error))
        self.assertEqual(desk.paired, [])

    def test_noDesk(self) -> None:
        """
        A control socket without a desk refuses the command.
        """
        endpoint = MemoryEndpoint(ControlFactory(None))
        asking = requestInvite(endpoint, "", 1.0, 2)
        endpoint.flush()
        error = self.failureResultOf(asking, InviteRefused).value
        self.assertIn("takes no invites", str(error))
