# -*- test-case-name: tests.integration.test_slowlink -*-
"""
End to end on a slow link: the real daemon (C{twistd -n spc}) behind
L{tests.faultproxy.FaultProxy}, which lets each channel carry only so many
bytes a second from the client to the server, as a home uplink or a
congested path does.  A file large enough to keep every channel busy
crosses it while the daemon rotates its keys, and a message sent halfway
through arrives in time (docs/protocol.rst, sections 7.1 and 8.3).

The harness (daemon process, key directories, ports, C{spc} runner) is
L{tests.integration.test_endtoend}'s.
"""

from __future__ import annotations

import os
import re
import time

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint

from spc.client.connect import connect
from spc.keys.trust import PinnedKey
from tests.faultproxy import FaultProxy
from tests.integration.test_endtoend import SPC, EndToEndTestCase, sharedIdentity, signal, spawn
from tests.integration.test_endtoend_files import randomFile, sha256

MiB = 1024 * 1024
MB = 1000 * 1000
COMMITTED = re.compile(r"Rotation to epoch (\d+) with \S+ committed")
ROLLED_BACK = re.compile(r"Rotation to epoch \d+ with \S+ rolled back")
OPENED = re.compile(r"Session \S+ opened with")
DEAD = re.compile(r"Channel \d+ of session \S+ with \S+ at \S+ dead")


SEND_TIMEOUT = 120.0
"""
Seconds C{spc send} may run before it is killed: a slow link's transfer
takes longer than the end-to-end tests' usual 30 s.
"""


def run(args: list[str], cwd: str, env: dict[str, str]) -> Deferred:
    """
    Run C{python args} to completion, killing it after L{SEND_TIMEOUT}.

    @return: a Deferred firing with its L{tests.integration.test_endtoend.Result}.
    """
    output, transport = spawn(args, cwd, env)
    kill = reactor.callLater(SEND_TIMEOUT, signal, transport, "KILL")

    def finished(result):
        if kill.active():
            kill.cancel()
        return result

    return output.whenEnded().addCallback(finished)


def sleep(seconds: float) -> Deferred:
    waiter: Deferred = Deferred()
    reactor.callLater(seconds, waiter.callback, None)
    return waiter


class SlowLinkTestCase(EndToEndTestCase):
    """
    A daemon behind a proxy that limits every channel's upstream to
    C{rate} bytes a second.
    """

    def startProxy(self, rate: float) -> FaultProxy:
        proxy = FaultProxy(reactor, self.ports)
        for channel in range(len(self.ports)):
            proxy.limit(channel, rate)
        proxy.start()
        self.addCleanup(proxy.stop)
        return proxy

    def sendThrough(self, proxy: FaultProxy, path: str):
        """
        Run C{spc send PATH}, one C{--connect} per proxy port.
        """
        args = [
            "send", "--key-dir", self.clientKeys, "--server", self.server,
            "--server-fingerprint", self.serverFingerprint, "--no-progress",
        ]
        for port in proxy.ports:
            args += ["--connect", f"tcp:127.0.0.1:{port}"]
        return run(SPC + args + [path], self.root, self.env)

    @inlineCallbacks
    def rotateWhileSending(self, rate: float, size: int, timers: list[str], rounds: int):
        """
        Send a file of C{size} bytes through the proxy at C{rate} per
        channel to a daemon started with C{timers} (first, so that no other
        test takes the ports it was given while the file is written), and
        check that the
        session was never replaced, no channel died, no rotation was rolled
        back and at least C{rounds} committed.

        @return: a Deferred firing with the transfer's seconds.
        """
        self.authorize(self.serverKeys, "client")
        daemon = yield self.startDaemon(*timers)
        path, digest = randomFile("slow.bin", size)
        proxy = self.startProxy(rate)
        started = time.monotonic()
        result = yield self.sendThrough(proxy, path)
        elapsed = time.monotonic() - started
        log = daemon.output.log
        self.assertEqual(result.code, 0, f"{result}\n{log}")
        self.assertIn("Delivered 0 message(s) and 1 file(s)", result.out)
        self.assertEqual(sha256(os.path.join(self.inbox, "slow.bin")), digest)
        self.assertEqual(len(OPENED.findall(log)), 1, log)
        self.assertEqual(DEAD.findall(log), [], log)
        self.assertEqual(ROLLED_BACK.findall(log), [], log)
        self.assertNotIn("key rotation failed", log)
        epochs = [int(epoch) for epoch in COMMITTED.findall(log)]
        self.assertGreaterEqual(len(epochs), rounds, f"{elapsed:.1f} s:\n{log}")
        return elapsed


class RotationOnSlowLinkTests(SlowLinkTestCase):
    """
    Rotation rounds commit while a file saturates every channel.
    """

    timeout = 240

    @inlineCallbacks
    def test_oneMegabytePerChannel(self):
        """
        At 1 MB/s per channel, with C{--rotate-interval 8 --ack-timeout 3
        --transition 2}, a 72 MiB file takes about 19 s: every rotation
        round that starts during the transfer (at 8 and 16 s of the daemon's
        life, and a little after, by its jitter) commits, none is rolled
        back, no channel dies and the session is the same from start to end.
        """
        elapsed = yield self.rotateWhileSending(
            1 * MB, 72 * MiB,
            ["--rotate-interval", "8", "--ack-timeout", "3", "--transition", "2"],
            rounds=2,
        )
        self.assertGreater(elapsed, 17)

    @inlineCallbacks
    def test_halfMegabytePerChannelDefaultTimers(self):
        """
        At 0.5 MB/s per channel, with the default timers (30 s interval,
        5 s acknowledgement, 10 s transition), a 72 MiB file takes about
        38 s: the round at 30 s of the daemon's life (up to 3 s later, by
        its jitter) commits, none is rolled back, the session stays.  This
        is a long test (about 45 s), kept as short as a round inside the
        transfer allows.
        """
        elapsed = yield self.rotateWhileSending(0.5 * MB, 72 * MiB, [], rounds=1)
        self.assertGreater(elapsed, 34)


class MessageOnSlowLinkTests(SlowLinkTestCase):
    """
    A message does not wait behind the file's queued megabytes.
    """

    timeout = 120

    @inlineCallbacks
    def test_messageHalfway(self):
        """
        At 1 MB/s per channel, a message sent halfway through a 48 MiB file
        is stored, and its delivery confirmed, within 1 s of being sent.
        """
        self.authorize(self.serverKeys, "client")
        yield self.startDaemon()
        path, _ = randomFile("halfway.bin", 48 * MiB)
        proxy = self.startProxy(1 * MB)
        endpoints = [TCP4ClientEndpoint(reactor, "127.0.0.1", port) for port in proxy.ports]
        session = yield connect(
            reactor,
            endpoints,
            sharedIdentity("client"),
            PinnedKey(self.serverFingerprint),
            f"127.0.0.1:{proxy.ports[0]}",
        )
        self.addCleanup(session.close)
        sent = session.sendFile(path)
        yield sleep(6.0)
        self.assertNoResult(sent)
        started = time.monotonic()
        yield session.sendMessage(b"halfway there")
        latency = time.monotonic() - started
        self.assertNoResult(sent)
        self.assertLess(latency, 1.0)
        [record] = self.storedMessages()
        self.assertEqual(record["text"], "halfway there")
        yield sent
