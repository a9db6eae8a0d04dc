# -*- test-case-name: tests.memory.test_keypool -*-
"""
Tests for C{connect} and C{spc send} drawing their sessions' exchange keys
from an L{spc.client.keypool.ExchangeKeyPool}, over in-memory connections
and a fake reactor.
"""

from __future__ import annotations

import io

from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from spc.cli import send as cliSend
from spc.cli.command import Context
from spc.client.connect import connect
from spc.client.keypool import ExchangeKeyPool
from spc.keys.identity import publicKeyDER
from spc.keys.trust import PinnedKey
from tests.common import cachedExchangeKey, cachedIdentity
from tests.memory.test_session import MemoryServer
from tests.unit.test_keypool import FakeThreads


class ConnectTests(SynchronousTestCase):
    """
    C{connect} takes its session's exchange key from a pool and waits for
    it without blocking.
    """

    def test_keyFromPool(self) -> None:
        """
        Until the pool's thread made the key, C{connect} has not begun; then
        the session runs with that key.
        """
        server = MemoryServer(self)
        threads = FakeThreads()
        pool = ExchangeKeyPool(0, 1, cachedExchangeKey, threads.run)
        connecting = connect(
            server.clock,
            server.endpoints(),
            server.client,
            PinnedKey(server.server.fingerprint),
            "127.0.0.1:9000",
            exchangeKeys=pool,
        )
        server.network.flush()
        self.assertNoResult(connecting)
        self.assertEqual(server.directory.sessions, {})
        threads.finish()
        server.network.flush()
        session = self.successResultOf(connecting)
        self.assertEqual(session.exchangeKeyDER, publicKeyDER(cachedExchangeKey().public_key()))
        self.assertEqual(len(session.liveChannels()), 4)


class SendCommandTests(SynchronousTestCase):
    """
    C{spc send} starts its session's key first thing, in a thread.
    """

    def test_keyStartedFirst(self) -> None:
        """
        The key is being made before the identity is loaded, and the pool
        making it, which keeps no key in reserve, is the one the session
        takes its key from.
        """
        threads = FakeThreads()
        seen: dict[str, object] = {}

        def pool(size: int) -> ExchangeKeyPool:
            seen["size"] = size
            return ExchangeKeyPool(size, 1, cachedExchangeKey, threads.run)

        def loadIdentity(keyDir: str):
            seen["jobs when loading"] = len(threads.jobs)
            return cachedIdentity("client")

        def send(reactor, request):
            seen["request"] = request
            return Deferred()

        self.patch(cliSend, "ExchangeKeyPool", pool)
        self.patch(cliSend, "loadIdentity", loadIdentity)
        self.patch(cliSend, "loadServerTrust", lambda *args: None)
        self.patch(cliSend, "loadTransferSecret", lambda keyDir: b"\x00" * 32)
        self.patch(cliSend, "send", send)
        options = cliSend.SendOptions()
        options.parseOptions(
            ["--server", "127.0.0.1", "--ports", "9000", "--message", "hi", "--no-progress"]
        )
        options.runWithReactor(MemoryReactorClock(), Context(io.StringIO(), io.StringIO(), {}))
        self.assertEqual((seen["size"], seen["jobs when loading"]), (0, 1))
        keys = seen["request"].exchangeKeys
        threads.finish()
        self.assertEqual(self.successResultOf(keys.take()), cachedExchangeKey())
        self.assertEqual(threads.jobs, [])
