# -*- test-case-name: tests.memory.test_keypool -*-
"""
Tests for C{connect} and C{spc send} drawing their sessions' exchange keys
from an L{spc.client.keypool.ExchangeKeyPool}, over in-memory connections
and a fake reactor.
"""

from __future__ import annotations

import io

from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from spc.cli import send as cliSend
from spc.cli.command import Context
from spc.client.connect import connect
from spc.client.keypool import ExchangeKeyPool
from spc.keys.identity import publicKeyDER
from spc.keys.trust import PinnedKey
from spc.protocol.pairing import Paired
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

    def setUp(self) -> None:
        self.threads = FakeThreads()
        self.seen: dict[str, object] = {}

        def pool(size: int) -> ExchangeKeyPool:
            self.seen["size"] = size
            return ExchangeKeyPool(size, 1, cachedExchangeKey, self.threads.run)

        def loadIdentity(keyDir: str):
            self.seen["jobs when loading"] = len(self.threads.jobs)
            return cachedIdentity("client")

        def send(reactor, request):
            self.seen["request"] = request
            return Deferred()

        self.patch(cliSend, "ExchangeKeyPool", pool)
        self.patch(cliSend, "loadIdentity", loadIdentity)
        self.patch(cliSend, "reportIdentity", lambda context, keyDir: loadIdentity(keyDir))
        self.patch(cliSend, "loadServerTrust", lambda *args: None)
        self.patch(cliSend, "loadTransferSecret", lambda keyDir: b"\x00" * 32)
        self.patch(cliSend, "send", send)

    def run_(self, *argv: str) -> None:
        """
        Run C{spc send} with C{argv} on a fake reactor, until it sends.
        """
        options = cliSend.SendOptions()
        options.parseOptions([*argv, "--message", "hi", "--no-progress"])
        options.runWithReactor(MemoryReactorClock(), Context(io.StringIO(), io.StringIO(), {}))

    def assertKeyFromFirstPool(self) -> None:
        """
        The key was being made before the identity was loaded, by a pool
        that keeps no key in reserve, and the session takes its key from
        that pool.
        """
        self.assertEqual((self.seen["size"], self.seen["jobs when loading"]), (0, 1))
        keys = self.seen["request"].exchangeKeys
        self.threads.finish()
        self.assertEqual(self.successResultOf(keys.take()), cachedExchangeKey())
        self.assertEqual(self.threads.jobs, [])

    def test_keyStartedFirst(self) -> None:
        """
        The key is being made before the identity is loaded, and the pool
        making it, which keeps no key in reserve, is the one the session
        takes its key from.
        """
        self.run_("--server", "127.0.0.1", "--ports", "9000")
        self.assertKeyFromFirstPool()

    def test_keyMadeWhilePairing(self) -> None:
        """
        With C{--code}, the key is made while the pairing runs, and the
        session that follows the pairing takes it from the same pool.
        """
        server = cachedIdentity("server")
        paired = Paired(server.publicDER, server.fingerprint, "", False, 1)

        def pair(*args):
            self.seen["jobs when pairing"] = len(self.threads.jobs)
            return succeed(paired)

        self.patch(cliSend, "pair", pair)
        self.patch(cliSend, "reportPaired", lambda *args: None)
        self.run_("--code", "4-acorn-actor", "--server", "127.0.0.1:9000")
        self.assertEqual(self.seen["jobs when pairing"], 1)
        self.assertKeyFromFirstPool()
