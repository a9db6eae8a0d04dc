"""
Pairing against a real server on loopback: a client pairs with a one-time
code, then opens a session with no fingerprint given anywhere
(L{spc.client.pair}, L{spc.server.invites}).
"""

from __future__ import annotations

import os

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, serverFromString
from twisted.trial import unittest

from spc.client.connect import connect
from spc.client.pair import pair
from spc.errors import ConfigurationError, NoInvite, ServerKeyChanged, WrongCode
from spc.keys.trust import AuthorizedKeys, KnownHosts
from spc.server.invites import InviteDesk, authorizingIn
from spc.server.service import ServerService
from tests.common import clientIdentity, countPrivateOperations, hostIdentity, otherClientIdentity

class LoopbackTests(unittest.TestCase):
    """
    A client pairs with a real server on loopback, then opens a session
    with no fingerprint given anywhere.
    """

    @inlineCallbacks
    def setUp(self):
        self.keyDir = os.path.abspath(self.mktemp())
        self.serverKeys = os.path.abspath(self.mktemp())
        os.makedirs(self.serverKeys, mode=0o700)
        self.authorized = os.path.join(self.serverKeys, "authorized_keys")
        self.service = ServerService(
            reactor,
            [serverFromString(reactor, "tcp:0:interface=127.0.0.1") for _ in range(2)],
            hostIdentity(),
            AuthorizedKeys(self.authorized),
            None,
        )
        directory = self.service.directory
        self.desk = InviteDesk(
            reactor,
            authorizingIn(
                self.authorized, None,
                lambda: directory.setAuthorizer(AuthorizedKeys.fromFile(self.authorized)),
            ),
        )
        directory.pairing = self.desk
        self.service.startService()
        self.addCleanup(self.service.stopService)
        ports = yield self.service.whenListening()
        self.ports = [port.getHost().port for port in ports]
        self.hostPort = f"127.0.0.1:{self.ports[0]}"

    def endpoint(self, index: int = 0):
        return TCP4ClientEndpoint(reactor, "127.0.0.1", self.ports[index])

    @inlineCallbacks
    def test_pairThenSession(self):
        """
        After the pairing, the server admits the client and the client has
        the server's key in known_hosts: a session opens with the trust
        the files give.
        """
        counter = countPrivateOperations(self)
        made = self.desk.create("alice")
        paired = yield pair(
            reactor, self.endpoint(), made.code, clientIdentity(), self.keyDir, self.hostPort
        )
        self.assertEqual(counter.count, 0)
        self.assertEqual(paired.serverFingerprint, hostIdentity().fingerprint)
        self.assertEqual(paired.name, "alice")
        known = KnownHosts.fromFile(os.path.join(self.keyDir, "known_hosts"))
        self.assertEqual(known.lookup(self.hostPort), hostIdentity().fingerprint)
        self.assertEqual(
            AuthorizedKeys.fromFile(self.authorized).nameOf(clientIdentity().fingerprint),
            "alice",
        )
        session = yield connect(
            reactor, [self.endpoint(0), self.endpoint(1)], clientIdentity(), known, self.hostPort
        )
        self.assertEqual(len(session.channels), 2)
        yield session.close()

    @inlineCallbacks
    def test_wrongCode(self):
        """
        A wrong code: the client is told, nothing is written on either
        side, and the right code then finds no invite.
        """
        made = self.desk.create("alice")
        wrong = made.code._replace(words=tuple(reversed(made.code.words)) + ("zinc",))
        with self.assertRaises(WrongCode):
            yield pair(
                reactor, self.endpoint(), wrong, clientIdentity(), self.keyDir, self.hostPort
            )
        self.assertFalse(os.path.exists(self.authorized))
        self.assertFalse(os.path.exists(os.path.join(self.keyDir, "known_hosts")))
        with self.assertRaises(NoInvite):
            yield pair(
                reactor, self.endpoint(), made.code, clientIdentity(), self.keyDir, self.hostPort
            )

    @inlineCallbacks
    def test_changedKey(self):
        """
        A key recorded for the address that is not the server's stops the
        pairing before anything is sent: the invite is still open.
        """
        os.makedirs(self.keyDir, mode=0o700)
        with open(os.path.join(self.keyDir, "known_hosts"), "w") as f:
            f.write(f"{self.hostPort} {otherClientIdentity().fingerprint}\n")
        made = self.desk.create("alice")
        with self.assertRaises(ServerKeyChanged):
            yield pair(
                reactor, self.endpoint(), made.code, clientIdentity(), self.keyDir, self.hostPort
            )
        self.assertEqual(len(self.desk), 1)

    @inlineCallbacks
    def test_notFromOtherChannels(self):
        """
        Only the first channel pairs; elsewhere the invite stays open.
        """
        made = self.desk.create("alice")
        with self.assertRaises(ConfigurationError):
            yield pair(
                reactor, self.endpoint(1), made.code, clientIdentity(), self.keyDir, self.hostPort
            )
        self.assertEqual(len(self.desk), 1)
