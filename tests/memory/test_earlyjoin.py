# -*- test-case-name: tests.memory.test_earlyjoin -*-
"""
Tests for L{spc.client.connect.connect} opening every channel at once, over
in-memory connections: the joins connect while the first channel's
handshake runs, and join as soon as it made the session.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from spc.client.connect import connect
from spc.errors import ClientNotAuthorized
from spc.keys.trust import PinnedKey
from tests.common import cachedIdentity, inlineKeyPool
from tests.memory.test_session import MemoryServer


class EarlyConnectTests(SynchronousTestCase):
    """
    C{connect} opens every channel's connection at once.
    """

    def connecting(self, server: MemoryServer, identity):
        return connect(
            server.clock,
            server.endpoints(),
            identity,
            PinnedKey(server.server.fingerprint),
            "127.0.0.1:9000",
            exchangeKeys=inlineKeyPool(),
        )

    def test_allConnectAtOnce(self) -> None:
        """
        Every channel connects before the first handshake has run; the
        session then has all four, made by one NEW and three joins.
        """
        server = MemoryServer(self)
        connecting = self.connecting(server, server.client)
        self.assertEqual(len(server.network.pumps), 4)
        self.assertEqual(server.directory.sessions, {})
        server.network.flush()
        session = self.successResultOf(connecting)
        self.assertEqual(len(session.liveChannels()), 4)
        [serverSession] = server.directory.sessions.values()
        self.assertEqual(serverSession.id, session.id)

    def test_refusedFirstEndsTheRest(self) -> None:
        """
        When the first handshake is refused, C{connect} fails with its
        error and the connections started early are closed too.
        """
        server = MemoryServer(self)
        connecting = self.connecting(server, cachedIdentity("other"))
        server.network.flush()
        self.failureResultOf(connecting, ClientNotAuthorized)
        server.network.flush()
        self.assertEqual(
            [pump.client.transport.disconnected for pump in server.network.pumps],
            [True] * 4,
        )
        self.assertEqual(server.directory.pendingHandshakes(), 0)
