# -*- test-case-name: tests.integration.test_hostile -*-
"""
Attack tests of PROTOCOL section 10 (T1, T2, T4, T6, T7, T8, T18, T23, T24,
T25) over real loopback TCP, between a real L{ServerService} and real
L{spc.client.connect.connect} sessions, through the man in the middle of
L{tests.faultproxy}.

Every fault is tied to a frame (the N-th data fragment of a direction of a
connection), or applied on demand at a point the test reached by waiting on
an event, so no outcome depends on timing.  Each test checks the outcome the
table expects (who closed, why, that nothing tampered reached the
application, that the message arrived exactly once) and then that the
session, or a fresh one, is still served.
"""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from types import SimpleNamespace

from twisted.application.service import MultiService
from twisted.internet import protocol, reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, serverFromString
from twisted.internet.task import deferLater
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from spc.client.connect import connect
from spc.crypto import asymmetric, suites
from spc.crypto.suites import A256CBC_HS512, AES256_GCM, CHACHA20_POLY1305
from spc.errors import AuthenticationFailed, ProtocolError, SessionClosed, SessionReset
from spc.files.names import PARTIAL_DIRECTORY
from spc.files.store import FileStore
from spc.interfaces import IFileReceiver, IMessageReceiver
from spc.keys.identity import generateIdentity
from spc.keys.trust import AuthorizedKeys, PinnedKey
from spc.logs.events import CHANNEL_DEAD
from spc.protocol import frames, records
from spc.server.service import ServerService
from spc.session.session import Session
from spc.transport.channel import ChannelProtocol
from tests.faultproxy import (
    BODY,
    CHANNEL,
    DOWN,
    EPOCH,
    FLAGS,
    SEQ,
    SESSION,
    SUITE,
    TYPE,
    UP,
    VERSION,
    FaultProxy,
    big,
    protected,
)

CHANNELS = 4
FRAGMENT = frames.MIN_FRAGMENT_SIZE
PARAMS = frames.Params(fragmentSize=FRAGMENT, maxInner=frames.maxInnerSize(FRAGMENT))
# Twelve fragments: three on each of the four channels, so every channel's
# first data frame is followed by two more on the same connection.
FRAGMENTS = 12
RETRY = 0.05
POLL = 0.05
WAIT = 15.0
AUTH_FAILED = str(AuthenticationFailed())
GCM_SUITES = [A256CBC_HS512, CHACHA20_POLY1305, AES256_GCM, AES256_GCM]
# Heartbeats every 200 ms: a silent channel is dead after 3 of them
# (PROTOCOL section 8, amendment A7).
FAST_HEARTBEAT = PARAMS._replace(heartbeatInterval=200)
# How long a test waits for what the protocol promises before calling it a
# failure: several times anything the parameters imply.
PROMPTLY = 5.0

# RSA keys are slow to make: each is made once per module, on first use.
_keys: dict[str, object] = {}


def identityNamed(name: str):
    """
    The L{spc.keys.identity.Identity} called C{name} ("server", "client",
    "other"), made once.
    """
    if name not in _keys:
        _keys[name] = generateIdentity()
    return _keys[name]


def cachedExchangeKey():
    """
    One client exchange key for every session of this module.
    """
    if "exchange" not in _keys:
        _keys["exchange"] = _generateExchangeKey()
    return _keys["exchange"]


_generateExchangeKey = asymmetric.generateExchangeKey


def message(fragments: int, seed: bytes) -> bytes:
    """
    Deterministic message bytes filling exactly C{fragments} fragments.
    """
    return hashlib.shake_256(seed).digest(fragments * FRAGMENT)


def fragmentFrameBody(suite) -> int:
    """
    The body length of a protected frame carrying one full fragment.
    """
    inner = frames.maxInnerSize(FRAGMENT)
    if suite is A256CBC_HS512:
        sealed = 16 + (inner // 16 + 1) * 16 + 32
    else:
        sealed = inner + 16
    return frames.PROTECTED_HEADER_SIZE + sealed


def lowestBit(value: int, set: bool) -> int:
    """
    The lowest bit of C{value}'s low byte that is set (or clear).
    """
    for bit in range(8):
        if bool(value >> bit & 1) == set:
            return bit
    raise ValueError(value)


@implementer(IMessageReceiver, IFileReceiver)
class Receiver:
    """
    An application that records what it receives.

    @ivar messages: C{(session, data)} in delivery order.
    @ivar files: C{(session, name, path, size)} in storage order.
    """

    def __init__(self) -> None:
        self.messages: list = []
        self.files: list = []

    def messageReceived(self, session, data, kind):
        self.messages.append((session, data))

    def fileReceived(self, session, name, path, size):
        self.files.append((session, name, path, size))

    def data(self, session=None) -> list[bytes]:
        """
        The messages received (on C{session} only, if given).
        """
        return [data for s, data in self.messages if session is None or s is session]


class Observer:
    """
    Reads spc's log: why each connection was closed for a fault (the one
    exit, L{ChannelProtocol.fatal}, whose reason the channel's "dead" event
    carries) and which goodbyes sessions received.

    @ivar closes: C{{ChannelProtocol: reason}}.
    @ivar byes: C{(receiving session, code, scope)}.
    """

    def __init__(self) -> None:
        self.closes: dict = {}
        self.byes: list = []

    def __call__(self, event) -> None:
        source = event.get("log_source")
        text = event.get("log_format") or ""
        if isinstance(source, ChannelProtocol) and text == CHANNEL_DEAD and event["fault"]:
            self.closes[source] = event["reason"]
        elif isinstance(source, Session) and text.startswith("Peer {peer} said goodbye"):
            self.byes.append((source, event["code"], event["scope"]))


def _trackLost(connection, lost: list) -> None:
    done: Deferred = Deferred()
    original = connection.connectionLost

    def connectionLost(reason=protocol.connectionDone):
        try:
            original(reason)
        finally:
            done.callback(None)

    connection.connectionLost = connectionLost
    lost.append(done)


class _ServerTracking(protocol.Factory):
    """
    Wraps a server port's factory: records each connection by its peer's
    port (the proxy's port towards the server) and waits for its end.
    """

    noisy = False

    def __init__(self, wrapped, network: Network) -> None:
        self.wrapped = wrapped
        self.network = network

    def buildProtocol(self, addr):
        connection = self.wrapped.buildProtocol(addr)
        if connection is not None:
            self.network.serverChannels[addr.port] = connection
            _trackLost(connection, self.network.lost)
        return connection


class _ClientTracking:
    """
    Wraps a client endpoint: records each connection and waits for its end.
    """

    def __init__(self, wrapped, network: Network) -> None:
        self.wrapped = wrapped
        self.network = network

    def connect(self, factory) -> Deferred:
        def track(connection):
            connection.localPort = connection.transport.getHost().port
            self.network.clientChannels.append(connection)
            _trackLost(connection, self.network.lost)
            return connection

        return self.wrapped.connect(factory).addCallback(track)


class Network:
    """
    A server on four loopback ports, a L{FaultProxy} in front of it, and the
    clients that connect through the proxy.

    @ivar receiver: the server's application.
    @ivar service: the L{ServerService}.
    @ivar proxy: the L{FaultProxy}.
    @ivar observer: the L{Observer} of spc's log.
    @ivar inbox: the server's file inbox.
    """

    def __init__(self, testCase: TestCase, suites=None, params: frames.Params = PARAMS) -> None:
        self.testCase = testCase
        self.suites = suites
        self.params = params
        self.receiver = Receiver()
        self.observer = Observer()
        self.sessions: list[Session] = []
        self.serverChannels: dict[int, ChannelProtocol] = {}
        self.clientChannels: list[ChannelProtocol] = []
        self.lost: list[Deferred] = []

    @inlineCallbacks
    def start(self):
        testCase = self.testCase
        testCase.patch(asymmetric, "generateExchangeKey", cachedExchangeKey)
        self.inbox = os.path.abspath(testCase.mktemp())
        os.makedirs(self.inbox)
        authorized = AuthorizedKeys.parse(
            "".join(f"{identityNamed(n).fingerprint} {n}\n" for n in ("client", "other")),
            "authorized_keys",
        )
        self.service = ServerService(
            reactor,
            [serverFromString(reactor, "tcp:0:interface=127.0.0.1") for _ in range(CHANNELS)],
            identityNamed("server"),
            authorized,
            self.receiver,
            suites=self.suites,
            params=self.params,
            files=FileStore(self.inbox),
        )
        for child in self.service.endpointServices:
            child.factory = _ServerTracking(child.factory, self)
        self.application = MultiService()
        self.service.setServiceParent(self.application)
        self.application.startService()
        globalLogPublisher.addObserver(self.observer)
        testCase.addCleanup(self.cleanUp)
        listening = yield self.service.whenListening()
        self.proxy = FaultProxy(reactor, [port.getHost().port for port in listening])
        yield self.proxy.start()

    @inlineCallbacks
    def cleanUp(self):
        globalLogPublisher.removeObserver(self.observer)
        closing = [session.close() for session in self.sessions]
        if getattr(self, "proxy", None) is not None:
            yield self.proxy.stop()
        yield gatherResults(closing)
        if self.application.running:
            yield self.application.stopService()
        yield gatherResults(self.lost)

    @inlineCallbacks
    def connect(self, who: str = "client", ready: bool = True, **options):
        """
        Open a client session through the proxy.

        @param ready: wait until both ends count every channel.
        @return: the client's L{Session}.
        """
        options.setdefault("retryPolicy", lambda attempt: RETRY)
        options.setdefault("suites", self.suites)
        options.setdefault("receiver", Receiver())
        endpoints = [
            _ClientTracking(TCP4ClientEndpoint(reactor, "127.0.0.1", port), self)
            for port in self.proxy.ports
        ]
        session = yield connect(
            reactor,
            endpoints,
            identityNamed(who),
            PinnedKey(identityNamed("server").fingerprint),
            f"127.0.0.1:{self.proxy.ports[0]}",
            **options,
        )
        self.sessions.append(session)
        if ready:
            yield self.ready(session)
        return session

    # Looking things up.

    def serverSession(self, session: Session) -> Session | None:
        return self.service.directory.sessions.get(session.id)

    def serverChannel(self, connection) -> ChannelProtocol:
        """
        The server's end of a proxied connection.
        """
        return self.serverChannels[connection.serverPort()]

    def clientChannel(self, connection) -> ChannelProtocol:
        """
        The client's end of a proxied connection.
        """
        port = connection.clientPort()
        for channel in self.clientChannels:
            if channel.localPort == port:
                return channel
        raise KeyError(port)

    # Waiting for events.

    def until(self, predicate, what: str, timeout: float = WAIT) -> Deferred:
        """
        Fire once C{predicate()} holds.  It is checked after every frame
        and connection event the proxy sees (which is how the ends' state
        changes become visible) and, as a backstop, every L{POLL} seconds;
        after C{timeout} the wait fails, naming C{what}.
        """
        if predicate():
            return succeed(None)
        result: Deferred = Deferred()
        calls = {}

        def finish():
            if check in self.proxy.onActivity:
                self.proxy.onActivity.remove(check)
            for call in calls.values():
                if call.active():
                    call.cancel()

        def check():
            if result.called:
                return
            if predicate():
                finish()
                result.callback(None)

        def poll():
            check()
            if not result.called:
                calls["poll"] = reactor.callLater(POLL, poll)

        def expire():
            if not result.called:
                finish()
                result.errback(AssertionError(f"timed out waiting for {what}"))

        self.proxy.onActivity.append(check)
        calls["poll"] = reactor.callLater(POLL, poll)
        calls["timeout"] = reactor.callLater(timeout, expire)
        return result

    def isReady(self, session: Session) -> bool:
        server = self.serverSession(session)
        return (
            session.closedReason is None
            and len(session.liveChannels()) == CHANNELS
            and server is not None
            and len(server.liveChannels()) == CHANNELS
        )

    def rejoined(self, session: Session, channel: int, number: int = 1) -> Deferred:
        """
        Fire once connection C{number} of C{channel} belongs to C{session}
        and both ends count every channel live again.
        """

        def joined():
            try:
                connection = self.proxy.connection(channel, number)
            except KeyError:
                return False
            return connection.sessionID == session.id and self.isReady(session)

        return self.until(joined, f"channel {channel} to rejoin")

    def ready(self, session: Session) -> Deferred:
        """
        Fire once the client and the server both count all four channels
        of C{session} as live (after a fault: once the dead ones rejoined).
        """
        return self.until(lambda: self.isReady(session), "every channel to be live")


@inlineCallbacks
def makeNetwork(testCase: TestCase, **kw):
    """
    A started L{Network} that cleans up after C{testCase}.
    """
    network = Network(testCase, **kw)
    yield network.start()
    return network


class PaddingSpy:
    """
    Watches suite 0x01: every opening of a frame, whether it succeeded, and
    how many PKCS7 unpadders it made.

    @ivar opens: C{(succeeded, unpadders made)} per opening, in order.
    """

    def __init__(self, testCase: TestCase) -> None:
        self.unpadders = 0
        self.opens: list[tuple[bool, int]] = []
        real = suites.padding
        spy = self

        class PKCS7:
            def __init__(self, bits):
                self._real = real.PKCS7(bits)

            def padder(self):
                return self._real.padder()

            def unpadder(self):
                spy.unpadders += 1
                return self._real.unpadder()

        testCase.patch(suites, "padding", SimpleNamespace(PKCS7=PKCS7))
        realOpen = suites._CBCHMACCipher.open

        def open(cipher, seq, aad, body):
            before = spy.unpadders
            try:
                opened = realOpen(cipher, seq, aad, body)
            except AuthenticationFailed:
                spy.opens.append((False, spy.unpadders - before))
                raise
            spy.opens.append((True, spy.unpadders - before))
            return opened

        testCase.patch(suites._CBCHMACCipher, "open", open)

    def failures(self) -> list[int]:
        """
        Unpadders made by each failed opening.
        """
        return [made for ok, made in self.opens if not ok]


class _HostileTestCase(TestCase):
    """
    A L{Network} per test, and the scenario most tests share.
    """

    timeout = 30
    suites = None
    params = PARAMS

    @inlineCallbacks
    def setUp(self):
        self.net = yield makeNetwork(self, suites=self.suites, params=self.params)

    def within(self, waited: Deferred, seconds: float, what: str) -> Deferred:
        """
        Fire as C{waited} does, or fail naming C{what} if it has not after
        C{seconds}: a hang becomes a failure, not a test timeout.
        C{waited} itself is left alone (it is not cancelled).
        """
        result: Deferred = Deferred()

        def expire():
            if not result.called:
                result.errback(AssertionError(f"{what} did not happen within {seconds} s"))

        timer = reactor.callLater(seconds, expire)

        def done(value):
            if timer.active():
                timer.cancel()
            if not result.called:
                if isinstance(value, Failure):
                    result.errback(value)
                else:
                    result.callback(value)
            return None

        waited.addBoth(done)
        return result

    @inlineCallbacks
    def tampered(self, channel: int, configure, reason: str | None, direction: str = UP,
                 closer: str | None = None, accepted: int | None = None):
        """
        Fault C{direction} of the first connection on C{channel} with
        C{configure(plan)}, send a message of L{FRAGMENTS} fragments that
        way, and check:

            - the message arrives exactly once, intact;
            - the faulted connection was closed by C{closer} (by default the
              receiving end; C{"proxy"} for a cut) for C{reason} (a fault
              of the record layer), or, with C{reason=None}, without a fault
              being logged;
            - the closing end (the receiving end for a cut) accepted
              C{accepted} protected frames on that connection (by default:
              those before the faulted one);
            - the other channels' connections stayed up;
            - the channel rejoined, and a second message is served.

        @return: the client session and the faulted connection.
        """
        net = self.net
        configure(net.proxy.plan(channel, direction))
        session = yield net.connect()
        server = net.serverSession(session)
        if direction == UP:
            sender, target, receiving = session, net.receiver, server
        else:
            sender, target, receiving = server, session.receiver, session
        first = message(FRAGMENTS, b"first")
        yield sender.sendMessage(first)
        connection = net.proxy.connection(channel)
        yield connection.lost
        receivingEnd = "server" if direction == UP else "client"
        closer = closer or receivingEnd
        checked = receivingEnd if closer == "proxy" else closer
        end = (net.serverChannel if checked == "server" else net.clientChannel)(connection)
        self.assertEqual(connection.firstLost, closer)
        if reason is None:
            self.assertNotIn(end, net.observer.closes)
        else:
            self.assertIn(reason, net.observer.closes.get(end, "not closed for a fault"))
        stream = connection.stream(direction)
        if accepted is None:
            accepted = stream.applied[0].info.seq
        self.assertEqual(end.records.receivedFrames, accepted)
        others = [net.proxy.connection(c).isLost for c in range(CHANNELS) if c != channel]
        self.assertEqual(others, [False] * (CHANNELS - 1))
        self.assertEqual(target.data(receiving), [first])
        yield net.rejoined(session, channel)
        second = message(2, b"second")
        yield sender.sendMessage(second)
        self.assertEqual(target.data(receiving), [first, second])
        return session, connection

    @inlineCallbacks
    def servedAfterwards(self, session: Session | None = None):
        """
        A good message (on C{session}, or on a fresh session if it is
        gone) is delivered.
        """
        if session is None or session.closedReason is not None:
            session = yield self.net.connect()
        good = message(2, b"good")
        yield session.sendMessage(good)
        self.assertEqual(self.net.receiver.data(self.net.serverSession(session))[-1:], [good])


class HeaderTamperingTests(_HostileTestCase):
    """
    T1: a bit flipped in each field of a protected frame's header, in the
    first data fragment of one connection, mid-message.  The receiving end
    closes that connection (and only it) at that frame, before any of it
    reaches the application; the message still arrives once and intact,
    over the other channels and the rejoined one.
    """

    def test_lengthHuge(self):
        """
        The length's top bit: the prefix announces over 2 GiB.  The server
        aborts on the prefix alone: only the 38 bytes of prefix and header
        reached it, the rest of the frame (held by the proxy) never did.
        """

        def configure(plan):
            plan.flip(big(0), 0, 7).hold(big(0), keep=BODY)

        def check(result):
            session, connection = result
            held = connection.up.applied[-1]
            self.assertEqual(held.action, "hold")
            self.assertEqual(connection.up.bytesOut, held.bytesOut + BODY)

        return self.tampered(0, configure, "exceeds").addCallback(check)

    def test_lengthShorter(self):
        """
        A set bit of the length cleared: the frame ends early, and its tag
        (which covers the length) fails.
        """
        body = fragmentFrameBody(CHACHA20_POLY1305)
        bit = lowestBit(body, set=True)
        return self.tampered(1, lambda plan: plan.flip(big(0), 3, bit), AUTH_FAILED)

    def test_lengthLonger(self):
        """
        A clear bit of the length set: the frame swallows the start of the
        next one, and its tag fails.
        """
        body = fragmentFrameBody(A256CBC_HS512)
        bit = lowestBit(body, set=False)
        return self.tampered(2, lambda plan: plan.flip(big(0), 3, bit), AUTH_FAILED)

    def test_version(self):
        """
        The wire version.
        """
        return self.tampered(
            3, lambda plan: plan.flip(big(0), VERSION, 1), "wire version 3 not supported"
        )

    def test_type(self):
        """
        The frame type.
        """
        return self.tampered(
            0, lambda plan: plan.flip(big(0), TYPE, 0), "not allowed after keys"
        )

    def test_suite(self):
        """
        The suite id.
        """
        return self.tampered(1, lambda plan: plan.flip(big(0), SUITE, 1), "another suite")

    def test_flags(self):
        """
        The reserved flags.
        """
        return self.tampered(2, lambda plan: plan.flip(big(0), FLAGS, 7), "reserved flags")

    def test_sessionID(self):
        """
        A bit in the middle of the session id.
        """
        return self.tampered(
            3, lambda plan: plan.flip(big(0), SESSION + 7, 3), "another session or channel"
        )

    def test_channel(self):
        """
        The channel index.
        """
        return self.tampered(
            0, lambda plan: plan.flip(big(0), CHANNEL + 1, 1), "another session or channel"
        )

    def test_epoch(self):
        """
        The epoch: epoch 1 was never installed.
        """
        return self.tampered(
            1, lambda plan: plan.flip(big(0), EPOCH + 3, 0), "epoch 1 is ahead of every key this end holds"
        )

    def test_seqLow(self):
        """
        The sequence number's low byte.
        """
        return self.tampered(
            2, lambda plan: plan.flip(big(0), SEQ + 7, 2), "sequence 5 where 1 was due"
        )

    def test_seqHigh(self):
        """
        The sequence number's high byte.
        """
        return self.tampered(3, lambda plan: plan.flip(big(0), SEQ, 7), "where 1 was due")

    def test_serverToClient(self):
        """
        The same holds the other way: a flipped sequence number in a
        fragment the server sends makes the client close the connection;
        the server's message arrives once, over the other channels.
        """
        return self.tampered(
            1, lambda plan: plan.flip(big(0), SEQ + 7, 0), "sequence 0 where 1 was due",
            direction=DOWN,
        )


class BodyTamperingTests(_HostileTestCase):
    """
    T2: a bit flipped in the IV, ciphertext or tag of a data fragment, for
    each suite (channel 0 A256CBC-HS512, channel 1 ChaCha20-Poly1305,
    channels 2 and 3 AES-256-GCM): authentication fails and the connection
    closes; the message arrives once.  For A256CBC-HS512 the failing
    opening never made a PKCS7 unpadder: the tag is checked first.
    """

    suites = GCM_SUITES

    @inlineCallbacks
    def cbc(self, offset: int, bit: int = 0, direction: str = UP):
        spy = PaddingSpy(self)
        yield self.tampered(
            0, lambda plan: plan.flip(big(0), offset, bit), AUTH_FAILED, direction=direction
        )
        self.assertEqual(spy.failures(), [0])
        self.assertEqual({made for ok, made in spy.opens if ok}, {1})

    def test_suites(self):
        """
        The suites are those configured, on both ends.
        """

        @inlineCallbacks
        def check():
            session = yield self.net.connect()
            server = self.net.serverSession(session)
            for end in (session, server):
                self.assertEqual(
                    [end.channels[c].result.keys.suite for c in range(CHANNELS)], GCM_SUITES
                )

        return check()

    def test_cbcIV(self):
        """
        Suite 0x01, a bit of the IV.
        """
        return self.cbc(BODY + 5, 2)

    def test_cbcCiphertext(self):
        """
        Suite 0x01, a bit of the first ciphertext block.
        """
        return self.cbc(BODY + 16 + 3, 4)

    def test_cbcPaddingBlock(self):
        """
        Suite 0x01, the last byte of the second-to-last ciphertext block:
        decrypted, it would corrupt the padding; it is never decrypted.
        """
        return self.cbc(-(32 + 16 + 1), 0)

    def test_cbcTag(self):
        """
        Suite 0x01, the tag.
        """
        return self.cbc(-1, 7)

    def test_cbcServerToClient(self):
        """
        Suite 0x01 the other way: the client checks the tag before
        unpadding too.
        """
        return self.cbc(-(32 + 16 + 1), 0, direction=DOWN)

    def test_chachaCiphertext(self):
        """
        Suite 0x02, the ciphertext.
        """
        return self.tampered(1, lambda plan: plan.flip(big(0), BODY + 100, 5), AUTH_FAILED)

    def test_chachaTag(self):
        """
        Suite 0x02, the tag.
        """
        return self.tampered(1, lambda plan: plan.flip(big(0), -1, 0), AUTH_FAILED)

    def test_gcmCiphertext(self):
        """
        Suite 0x03, the ciphertext.
        """
        return self.tampered(2, lambda plan: plan.flip(big(0), BODY + 1000, 6), AUTH_FAILED)

    def test_gcmTag(self):
        """
        Suite 0x03, the tag.
        """
        return self.tampered(2, lambda plan: plan.flip(big(0), -16, 3), AUTH_FAILED)

    def test_gcmServerToClient(self):
        """
        Suite 0x03 the other way.
        """
        return self.tampered(
            3, lambda plan: plan.flip(big(0), -5, 1), AUTH_FAILED, direction=DOWN
        )


class ReplayTests(_HostileTestCase):
    """
    T4: a captured protected frame replayed on the same connection (sequence
    mismatch), on another channel, on a later connection of the same
    channel, into another session, or reflected to its sender.  Replays
    whose clear header the proxy rewrote to exactly what the receiver
    expects (I{retargeted}) reach the cryptography, and fail authentication
    there: keys differ per connection and direction.
    """

    def test_sameConnectionLater(self):
        """
        A fragment replayed after a later one on the same connection.
        """
        return self.tampered(
            1,
            lambda plan: plan.capture(big(0), "replay").inject(big(1), "replay"),
            "sequence 1 where 3 was due",
            accepted=3,
        ).addCallback(lambda _: None)

    def test_duplicate(self):
        """
        A fragment sent twice in a row.
        """
        return self.tampered(
            2, lambda plan: plan.duplicate(big(0)), "sequence 1 where 2 was due", accepted=2
        ).addCallback(lambda _: None)

    @inlineCallbacks
    def replayIdle(self, fromChannel: int, inject, reason: str, closer: str = "server"):
        """
        Capture the first fragment on C{fromChannel}; once the message is
        delivered, C{inject(frame, session)} it somewhere.

        @return: the connection C{inject} returned, once it closed for
            C{reason}, and the session.
        """
        net = self.net
        net.proxy.plan(fromChannel, UP).capture(big(0), "replay")
        session = yield net.connect()
        first = message(FRAGMENTS, b"first")
        yield session.sendMessage(first)
        frame = yield net.proxy.whenCaptured("replay")
        connection = inject(frame, session)
        end = (net.serverChannel if closer == "server" else net.clientChannel)(connection)
        yield connection.lost
        self.assertEqual(connection.firstLost, closer)
        self.assertIn(reason, net.observer.closes.get(end, "not closed for a fault"))
        yield net.ready(session)
        second = message(2, b"second")
        yield session.sendMessage(second)
        self.assertEqual(net.receiver.data(), [first, second])
        return connection, session

    def test_otherChannel(self):
        """
        Replayed as is on another channel of the same suite: the header's
        channel gives it away.
        """

        def inject(frame, session):
            connection = self.net.proxy.connection(3)
            connection.up.inject(frame)
            return connection

        return self.replayIdle(1, inject, "another session or channel")

    def test_otherChannelRetargeted(self):
        """
        Replayed on another channel with its header rewritten to match:
        authentication fails.
        """

        def inject(frame, session):
            connection = self.net.proxy.connection(2)
            connection.up.inject(frame, retarget=True)
            return connection

        return self.replayIdle(0, inject, AUTH_FAILED)

    @inlineCallbacks
    def test_laterConnectionSameChannel(self):
        """
        Replayed on the next connection of the same channel of the same
        session, at the sequence number it carried: the header is the one
        the server expects, but the connection's keys are new.
        """
        net = self.net
        net.proxy.plan(1, UP).capture(big(0), "replay")
        session = yield net.connect()
        yield session.sendMessage(message(FRAGMENTS, b"first"))
        net.proxy.connection(1).kill()
        yield net.rejoined(session, 1)
        later = net.proxy.connection(1, 1)
        frame = net.proxy.captured["replay"]
        self.assertEqual(later.up.protectedOut, 1)
        self.assertEqual(later.up.retarget(frame), frame)
        later.up.inject(frame)
        yield later.lost
        self.assertEqual(later.firstLost, "server")
        self.assertEqual(net.observer.closes.get(net.serverChannel(later)), AUTH_FAILED)
        yield net.ready(session)
        yield self.servedAfterwards(session)

    @inlineCallbacks
    def test_otherSession(self):
        """
        Replayed into another session's connection on the same channel:
        as is, the session id gives it away; retargeted, authentication
        fails.  The replaying session is untouched.
        """
        net = self.net
        net.proxy.plan(1, UP).capture(big(0), "replay")
        session = yield net.connect()
        victim = yield net.connect("other")
        yield session.sendMessage(message(FRAGMENTS, b"first"))
        frame = yield net.proxy.whenCaptured("replay")
        for retarget, reason in ((False, "another session or channel"), (True, AUTH_FAILED)):
            connection = net.proxy.latest(victim.id, 1)
            connection.up.inject(frame, retarget=retarget)
            yield connection.lost
            self.assertEqual(connection.firstLost, "server")
            self.assertIn(reason, net.observer.closes.get(net.serverChannel(connection), ""))
            yield net.rejoined(victim, 1, connection.number + 1)
        lost = [c for c in net.proxy.connections if c.sessionID == session.id and c.isLost]
        self.assertEqual(lost, [])
        yield self.servedAfterwards(victim)
        yield self.servedAfterwards(session)

    def test_reflected(self):
        """
        A fragment the client sent, reflected back to it at the sequence
        number it expects: the client's receive key is not its send key, so
        the client closes the connection; the message still arrives once.
        """
        # The client had received one frame on that connection, the
        # server's answer to its key confirmation: the server sends every
        # other control record on its first channel.
        return self.tampered(
            3, lambda plan: plan.reflect(big(0)), AUTH_FAILED, closer="client", accepted=1
        ).addCallback(lambda _: None)


class ReorderTests(_HostileTestCase):
    """
    T6: reordering within a connection is fatal for it; delay across
    channels is not, and delivery stays in message-id order.
    """

    def test_swapped(self):
        """
        Two consecutive fragments of one connection swapped.
        """
        return self.tampered(
            2, lambda plan: plan.swap(big(0)), "sequence 2 where 1 was due"
        ).addCallback(lambda _: None)

    @inlineCallbacks
    def test_delayedChannel(self):
        """
        One channel's frames are held for about a second while a later,
        one-fragment message completes over another: it is not delivered
        before the earlier one; once the channel is released both arrive,
        in message-id order, and no connection was closed.
        """
        net = self.net
        session = yield net.connect()
        placed: list[tuple[int, int]] = []
        sendOn = session.channelSet.sendOn

        def spy(channel, record):
            if record[:4] == records.Fragment.TAG:
                fragment = records.Fragment.decode(memoryview(record)[4:])
                placed.append((channel.result.keys.channel, fragment.msgID))
            sendOn(channel, record)

        session.channelSet.sendOn = spy
        earlier, later = message(FRAGMENTS, b"earlier"), message(1, b"later")
        sentEarlier = session.sendMessage(earlier)
        sentLater = session.sendMessage(later)
        [laterChannel] = [c for c, msgID in placed if msgID == 1]
        delayed = next(c for c, msgID in placed if msgID == 0 and c != laterChannel)
        held = net.proxy.connection(delayed)
        held.up.hold()
        started = reactor.seconds()
        server = net.serverSession(session)

        def laterComplete():
            incoming = server.messenger.reassembler._incoming.get(1)
            return incoming is not None and incoming.gathered

        yield net.until(laterComplete, "the later message to be complete")
        yield deferLater(reactor, max(0.0, 1.0 - (reactor.seconds() - started)), lambda: None)
        self.assertEqual(net.receiver.data(), [])
        self.assertFalse(sentLater.called)
        held.up.release()
        yield gatherResults([sentEarlier, sentLater])
        self.assertEqual(net.receiver.data(), [earlier, later])
        self.assertEqual([c for c in net.proxy.connections if c.isLost], [])
        self.assertEqual(held.up.dropped, 0)


class DeletionTests(_HostileTestCase):
    """
    T7: a frame deleted mid-stream.  The next frame on the connection shows
    the gap and the connection closes; the missing fragment goes out again
    on another channel and the message arrives once.
    """

    def test_deleted(self):
        """
        A client fragment deleted.
        """
        return self.tampered(
            3, lambda plan: plan.drop(big(0)), "sequence 2 where 1 was due"
        ).addCallback(lambda _: None)

    def test_deletedServerToClient(self):
        """
        A server fragment deleted: the client sees the gap.
        """
        return self.tampered(
            0, lambda plan: plan.drop(big(0)), "sequence 2 where 1 was due", direction=DOWN
        ).addCallback(lambda _: None)


class TruncationTests(_HostileTestCase):
    """
    T8: connections cut mid-frame or mid-message, one or all of them, with
    the server alive or gone.
    """

    def test_truncatedMidFrame(self):
        """
        Half a fragment, then a clean close: the channel is dead (not a
        fault of the peer, so nothing is logged as one), the partial frame
        is never opened, and the message completes via the others.
        """
        return self.tampered(
            1,
            lambda plan: plan.truncate(big(0), fragmentFrameBody(CHACHA20_POLY1305) // 2),
            None,
            closer="proxy",
        ).addCallback(lambda _: None)

    @inlineCallbacks
    def test_killedMidMessage(self):
        """
        One connection aborted after its first fragment: the message
        completes via the others and the channel rejoins.
        """
        net = self.net
        net.proxy.plan(2, UP).kill(big(0))
        session = yield net.connect()
        first = message(FRAGMENTS, b"first")
        yield session.sendMessage(first)
        killed = net.proxy.connection(2)
        self.assertTrue(killed.isLost)
        self.assertEqual(killed.firstLost, "proxy")
        self.assertEqual(net.receiver.data(), [first])
        yield net.ready(session)
        yield self.servedAfterwards(session)
        self.assertEqual(net.receiver.data(), [first, message(2, b"good")])

    @inlineCallbacks
    def holdAllThenKill(self, **options):
        """
        Connect, send a message whose first fragment on every channel gets
        through while the rest is held, then abort every connection at
        once.  The message is long enough for the costly channels of the
        default map, which the scheduler gives fewer fragments, to carry
        two of them too.

        @return: the session, the message and its send Deferred.
        """
        net = self.net
        for channel in range(CHANNELS):
            net.proxy.plan(channel, UP).hold(big(1))
        session = yield net.connect(**options)
        livePerLoss: list[int] = []
        session.onChannelLost.append(lambda index: livePerLoss.append(len(session.liveChannels())))
        first = message(4 * FRAGMENTS, b"first")
        sent = session.sendMessage(first)
        connections = [net.proxy.connection(c) for c in range(CHANNELS)]
        yield net.until(
            lambda: all(c.up.holding for c in connections), "every channel to hold"
        )
        self.assertEqual(net.receiver.data(), [])
        return session, first, sent, connections, livePerLoss

    @inlineCallbacks
    def test_allKilledServerAlive(self):
        """
        Every connection aborted mid-message while the server lives: the
        client is left without a channel, rejoins every one (with backoff),
        and the message completes, once.
        """
        net = self.net
        session, first, sent, connections, livePerLoss = yield self.holdAllThenKill()
        for connection in connections:
            connection.kill()
        yield sent
        self.assertIn(0, livePerLoss)
        self.assertEqual(net.receiver.data(), [first])
        yield net.ready(session)
        for channel in range(CHANNELS):
            self.assertEqual(net.proxy.connection(channel, 1).sessionID, session.id)
        yield self.servedAfterwards(session)

    @inlineCallbacks
    def test_allKilledSessionForgotten(self):
        """
        Every connection aborted mid-message and the server forgot the
        session meanwhile (as a restarted daemon has): the first refused
        join resets the session at once, long before its linger, so a
        caller can start a new one; nothing partial was delivered.
        """
        net = self.net
        session, first, sent, connections, livePerLoss = yield self.holdAllThenKill(
            linger=30.0, retryPolicy=lambda attempt: 0.2
        )
        started = reactor.seconds()
        for connection in connections:
            connection.kill()
        net.service.directory.sessions[session.id].terminate(
            records.BYE_SHUTTING_DOWN, "forgotten"
        )
        error = yield self.assertFailure(sent, SessionReset)
        self.assertIn("no longer has this session", str(error))
        self.assertLess(reactor.seconds() - started, 5.0)
        self.assertEqual(net.receiver.data(), [])

    @inlineCallbacks
    def test_allKilledServerGone(self):
        """
        Every connection aborted mid-message and the server stopped (so
        its goodbye never reaches the client): the client retries, finds
        nobody, and after its linger (1 s) the send fails; nothing partial
        was ever delivered.
        """
        net = self.net
        session, first, sent, connections, livePerLoss = yield self.holdAllThenKill(
            linger=1.0, retryPolicy=lambda attempt: 0.2
        )
        started = reactor.seconds()
        for connection in connections:
            connection.kill()
        stopping = net.application.stopService()
        error = yield self.assertFailure(sent, SessionClosed)
        self.assertIn("no channel rejoined in time", str(error))
        self.assertGreaterEqual(reactor.seconds() - started, 1.0)
        yield stopping
        self.assertIn(0, livePerLoss)
        self.assertEqual(net.receiver.data(), [])
        self.assertEqual(net.service.directory.budget.reserved, 0)
        retries = [c for c in net.proxy.connections if c.number > 0]
        self.assertTrue(retries)
        self.assertEqual({c.firstLost for c in retries}, {"server"})


    @inlineCallbacks
    def test_acknowledgementsLostWithTheirChannel(self):
        """
        The connection carrying the server's acknowledgements (every
        C{ACK:} goes on its first live channel) dies with them in flight,
        after all four one-fragment messages were delivered.  Only the
        message whose fragment travelled on that connection is re-sent; the
        other three are not, so the sender learns of them only if an
        acknowledgement is sent again.  Every send must fire, and each
        message is delivered once.
        """
        net = self.net
        net.proxy.plan(0, DOWN).hold(protected(1))
        session = yield net.connect()
        data = [message(1, bytes([n])) for n in range(CHANNELS)]
        sent = [session.sendMessage(d) for d in data]
        acknowledgements = net.proxy.connection(0)
        yield net.until(
            lambda: len(net.receiver.data()) == CHANNELS
            and acknowledgements.down.protectedIn == 1 + CHANNELS,
            "four deliveries and their acknowledgements",
        )
        self.assertTrue(acknowledgements.down.holding)
        self.assertEqual([d.called for d in sent], [False] * CHANNELS)
        acknowledgements.kill()
        yield net.rejoined(session, 0)
        yield self.within(
            gatherResults(sent, consumeErrors=True), PROMPTLY, "every send firing"
        )
        self.assertEqual(net.receiver.data(), data)
        yield self.servedAfterwards(session)


class SilentLossTests(_HostileTestCase):
    """
    Losses nothing on the connection itself reveals, only the heartbeats
    of PROTOCOL section 8 (here every 200 ms): the last frame on a
    connection deleted (T7), and a channel black-holed with TCP left open
    (T29).
    """

    params = FAST_HEARTBEAT

    @inlineCallbacks
    def test_lastFrameDeleted(self):
        """
        T7: the last fragment a connection carries is deleted.  No later
        data frame shows the gap; the next heartbeat on that connection
        does, the connection closes, the fragment goes out again, and the
        message arrives once.
        """
        net = self.net
        net.proxy.plan(1, UP).drop(big(FRAGMENTS // CHANNELS - 1))
        session = yield net.connect()
        first = message(FRAGMENTS, b"first")
        yield self.within(session.sendMessage(first), PROMPTLY, "delivery")
        connection = net.proxy.connection(1)
        self.assertEqual(connection.up.dropped, 1)
        yield self.within(connection.lost, PROMPTLY, "the connection closing")
        self.assertEqual(connection.firstLost, "server")
        self.assertIn("sequence", net.observer.closes.get(net.serverChannel(connection), ""))
        self.assertEqual(net.receiver.data(), [first])
        yield net.rejoined(session, 1)
        yield self.servedAfterwards(session)

    @inlineCallbacks
    def test_blackHoled(self):
        """
        T29: everything the client sends on one channel vanishes from its
        first data frame on, TCP open.  Within a few heartbeat intervals an
        end declares the channel dead and closes it; its fragments go out
        on the others, the message arrives once, the channel rejoins.
        """
        net = self.net
        net.proxy.plan(2, UP).blackhole(big(0))
        session = yield net.connect()
        first = message(FRAGMENTS, b"first")
        yield self.within(session.sendMessage(first), PROMPTLY, "delivery")
        connection = net.proxy.connection(2)
        yield self.within(connection.lost, PROMPTLY, "the connection closing")
        self.assertIn(connection.firstLost, ("client", "server"))
        self.assertEqual(net.receiver.data(), [first])
        yield net.rejoined(session, 2)
        yield self.servedAfterwards(session)


class FileChannelDeathTests(_HostileTestCase):
    """
    T18: channels aborted mid-file-transfer.  The file completes on the
    survivors with the right SHA-256, the application hears of it once and
    the inbox holds one copy; the dead channels rejoin.
    """

    SIZE = 64 * FRAGMENT + 1000

    def makeFile(self) -> tuple[str, bytes]:
        path = os.path.abspath(self.mktemp())
        data = hashlib.shake_256(b"file").digest(self.SIZE)
        with open(path, "wb") as f:
            f.write(data)
        return path, data

    def inboxFiles(self) -> list[str]:
        found = []
        for folder, folders, files in os.walk(self.net.inbox):
            folders[:] = [f for f in folders if f != PARTIAL_DIRECTORY]
            found.extend(os.path.join(folder, name) for name in files)
        return found

    @inlineCallbacks
    def transfer(self, session, killing):
        path, data = self.makeFile()
        sending = session.sendFile(path, "received.bin")
        yield killing()
        delivered = yield sending
        self.assertEqual(delivered[:3], ("received.bin", "received.bin", False))
        server = self.net.serverSession(session)
        [(who, stored, where, size)] = self.net.receiver.files
        self.assertEqual((who, stored, size), (server, "received.bin", self.SIZE))
        self.assertEqual(self.inboxFiles(), [where])
        with open(where, "rb") as f:
            self.assertEqual(
                hashlib.sha256(f.read()).hexdigest(), hashlib.sha256(data).hexdigest()
            )
        yield self.net.ready(session)
        yield self.servedAfterwards(session)
        self.assertEqual(len(self.net.receiver.files), 1)
        self.assertEqual(self.inboxFiles(), [where])

    @inlineCallbacks
    def test_oneOfFour(self):
        """
        One channel aborted after its fourth data frame.
        """
        net = self.net
        net.proxy.plan(1, UP).kill(big(3))
        session = yield net.connect()
        killed = net.proxy.connection(1)
        yield self.transfer(session, lambda: killed.lost)
        self.assertEqual(killed.firstLost, "proxy")
        self.assertEqual(net.proxy.connection(1, 1).sessionID, session.id)

    @inlineCallbacks
    def test_threeOfFour(self):
        """
        Three channels aborted at once, each after its second data frame.
        """
        net = self.net
        for channel in (1, 2, 3):
            net.proxy.plan(channel, UP).hold(big(2))
        session = yield net.connect()
        doomed = [net.proxy.connection(c) for c in (1, 2, 3)]

        @inlineCallbacks
        def killing():
            yield net.until(lambda: all(c.up.holding for c in doomed), "three channels to hold")
            self.assertEqual(net.receiver.files, [])
            for connection in doomed:
                connection.kill()

        yield self.transfer(session, killing)
        self.assertFalse(net.proxy.connection(0).isLost)
        for channel in (1, 2, 3):
            self.assertEqual(net.proxy.connection(channel, 1).sessionID, session.id)


    @inlineCallbacks
    def test_completionLostWithItsChannel(self):
        """
        The server's word that the file is stored (C{FAK:} complete, on its
        first channel like every control record) dies with that channel.
        The client sent nothing on that channel (its transport was paused,
        as a slow path's is, so the file went on the other three), so
        nothing is re-sent there; the sender learns the file arrived only
        if the answer is given again.  The send fires, and the file is
        stored once.
        """
        net = self.net
        net.proxy.plan(0, DOWN).hold(protected(2))
        session = yield net.connect()
        control = net.proxy.connection(0)
        session.channels[0].pauseProducing()
        path, data = self.makeFile()
        sending = session.sendFile(path, "received.bin")
        yield net.until(lambda: net.receiver.files, "the file to be stored")
        self.assertFalse(sending.called)
        self.assertTrue(control.down.holding)
        self.assertEqual(control.up.bigIn, 0)
        session.channels[0].resumeProducing()
        control.kill()
        yield net.rejoined(session, 0)
        delivered = yield self.within(sending, PROMPTLY, "the file send firing")
        self.assertEqual(delivered[:3], ("received.bin", "received.bin", False))
        [(_, _, where, size)] = net.receiver.files
        self.assertEqual((self.inboxFiles(), size), ([where], self.SIZE))
        yield self.servedAfterwards(session)


    @inlineCallbacks
    def test_offerAnswerLostWithItsChannel(self):
        """
        The server's answer to the file offer (C{FAK:} resume, which lets
        the sender start streaming) dies with the server's first channel;
        the offer itself went on another channel, so nothing is re-sent.
        The transfer must still start and complete.
        """
        net = self.net
        net.proxy.plan(0, DOWN).hold(protected(1))
        session = yield net.connect()
        control = net.proxy.connection(0)
        session.channels[0].pauseProducing()
        path, data = self.makeFile()
        sending = session.sendFile(path, "received.bin")
        yield net.until(lambda: control.down.protectedIn == 2, "the answer to the offer")
        self.assertTrue(control.down.holding)
        self.assertEqual(control.up.protectedIn, 1)
        session.channels[0].resumeProducing()
        control.kill()
        yield net.rejoined(session, 0)
        delivered = yield self.within(sending, PROMPTLY, "the file send firing")
        self.assertEqual(delivered[:3], ("received.bin", "received.bin", False))
        [(_, _, where, size)] = net.receiver.files
        self.assertEqual((self.inboxFiles(), size), ([where], self.SIZE))
        with open(where, "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).digest(), hashlib.sha256(data).digest())
        yield self.servedAfterwards(session)


class HostilePeerTests(_HostileTestCase):
    """
    T23 and T24: an authenticated client that breaks the session's rules,
    driven directly: records sealed on one of its live channels.  The
    server ends the session and tells the client why with C{BYE:}; memory
    stays bounded; other clients are still served.
    """

    def fragment(self, msgID: int, total: int, index: int = 0, count: int | None = None,
                 digest: bytes = bytes(32), payload: bytes | None = None) -> bytes:
        if count is None:
            count = max(1, -(-total // FRAGMENT))
        if payload is None:
            last = index == count - 1
            payload = b"h" * (total - FRAGMENT * (count - 1) if last else FRAGMENT)
        return records.Fragment(
            msgID, index, count, total, records.KIND_BINARY, digest, payload
        ).encode()

    @inlineCallbacks
    def hostile(self, sent: list[bytes], code: int, reason: str, memory: int | None = None):
        """
        Send C{sent} on channel 1 of a fresh session and check that the
        server ended the session for C{reason} with C{BYE:} C{code}, with
        nothing delivered and no budget left reserved; with C{memory}, that
        the server allocated less than that meanwhile.
        """
        net = self.net
        session = yield net.connect()
        server = net.serverSession(session)
        if memory is not None:
            tracemalloc.start()
            self.addCleanup(tracemalloc.stop)
        channel = session.channels[1]
        # The burst bypasses the scheduler: let the transport buffer all of
        # it without pausing, which would cut the connection at this end.
        channel.transport.bufferSize += sum(map(len, sent))
        for record in sent:
            channel.sendRecord(record)
        ended = yield session.whenClosed()
        if memory is not None:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            self.assertLess(peak, memory)
        self.assertIsInstance(ended, SessionClosed)
        self.assertIn((session, code, "session"), net.observer.byes)
        self.assertIsInstance(server.closedReason.value, ProtocolError)
        self.assertIn(reason, str(server.closedReason.value))
        self.assertNotIn(session.id, net.service.directory.sessions)
        self.assertEqual(net.service.directory.budget.reserved, 0)
        self.assertEqual(net.receiver.data(), [])
        yield self.servedAfterwards()

    def test_hugeDeclaredLength(self):
        """
        T23: a first fragment declaring 2**40 bytes: resource limit, and
        nothing near that size is allocated.
        """
        return self.hostile(
            [self.fragment(0, 2**40)], records.BYE_RESOURCE_LIMIT,
            "larger than the session allows", memory=4 * 2**20,
        )

    def test_beyondInflightWindow(self):
        """
        T23: 32 messages begun (the session's in-flight limit) and a 33rd:
        resource limit.
        """
        sent = [
            self.fragment(msgID, 2 * FRAGMENT)
            for msgID in range(PARAMS.maxInflightMessages + 1)
        ]
        return self.hostile(sent, records.BYE_RESOURCE_LIMIT, "beyond the in-flight window")

    def test_farAhead(self):
        """
        T23: a message id far ahead of the next one to deliver.
        """
        return self.hostile(
            [self.fragment(10**6, FRAGMENT)], records.BYE_RESOURCE_LIMIT,
            "beyond the in-flight window",
        )

    def test_reassemblyBudget(self):
        """
        T23: two 64 MiB messages declared (the whole 128 MiB budget), then a
        third: resource limit; the reservations were bookkeeping only.
        """
        largest = PARAMS.maxMessageSize
        sent = [self.fragment(0, largest), self.fragment(1, largest), self.fragment(2, FRAGMENT)]
        return self.hostile(
            sent, records.BYE_RESOURCE_LIMIT, "reassembly budget exceeded", memory=4 * 2**20
        )

    def test_differentCount(self):
        """
        T24: a second fragment of a message with another fragment count
        (and size).
        """
        sent = [
            self.fragment(0, 2 * FRAGMENT, 0),
            self.fragment(0, 3 * FRAGMENT, 1),
        ]
        return self.hostile(sent, records.BYE_PROTOCOL_ERROR, "fragments of one message disagree")

    def test_differentDigest(self):
        """
        T24: a second fragment of a message with another digest.
        """
        sent = [
            self.fragment(0, 2 * FRAGMENT, 0, digest=b"a" * 32),
            self.fragment(0, 2 * FRAGMENT, 1, digest=b"b" * 32),
        ]
        return self.hostile(sent, records.BYE_PROTOCOL_ERROR, "fragments of one message disagree")

    def test_differentDuplicateHeader(self):
        """
        T24 with A14: a duplicate of a fragment whose kept header fields
        differ (here the digest) is fatal, even for the same index.
        """
        sent = [
            self.fragment(0, 2 * FRAGMENT, 0, digest=b"a" * 32),
            self.fragment(0, 2 * FRAGMENT, 0, digest=b"b" * 32),
        ]
        return self.hostile(sent, records.BYE_PROTOCOL_ERROR, "fragments of one message disagree")

    def test_corruptPayload(self):
        """
        T24: a fragment whose payload is not the message's: the digest
        catches it when the message completes; nothing is delivered.
        """
        data = message(2, b"real")
        digest = records.messageDigest(records.KIND_BINARY, data)
        sent = [
            self.fragment(0, 2 * FRAGMENT, 0, digest=digest, payload=b"x" * FRAGMENT),
            self.fragment(0, 2 * FRAGMENT, 1, digest=digest, payload=data[FRAGMENT:]),
        ]
        return self.hostile(sent, records.BYE_PROTOCOL_ERROR, "message digest mismatch")

    @inlineCallbacks
    def test_differingDuplicatePayloadDropped(self):
        """
        A14: a duplicate with the same header but another payload is
        dropped unread: the message made of the first copies is delivered,
        once, and the session goes on.
        """
        net = self.net
        session = yield net.connect()
        data = message(2, b"real")
        digest = records.messageDigest(records.KIND_BINARY, data)
        channel = session.channels[2]
        for payload, index in ((data[:FRAGMENT], 0), (b"x" * FRAGMENT, 0), (data[FRAGMENT:], 1)):
            channel.sendRecord(
                self.fragment(0, 2 * FRAGMENT, index, digest=digest, payload=payload)
            )
        yield net.until(lambda: net.receiver.data(), "the message")
        self.assertEqual(net.receiver.data(), [data])
        self.assertIsNone(session.closedReason)
        self.assertIsNone(net.serverSession(session).closedReason)
        yield self.servedAfterwards()


class CrossSessionTests(_HostileTestCase):
    """
    T25: frames of one session injected into another session's connection
    while both are sending.
    """

    @inlineCallbacks
    def inject(self, retarget: bool, reason: str):
        """
        Two sessions send at once; the first fragment of session A on
        channel 1 is injected into session B's channel-1 connection right
        after B's own first fragment there.  B's connection closes for
        C{reason}; both messages arrive once; A loses no connection; both
        sessions are served afterwards.
        """
        net = self.net
        net.proxy.plan(1, UP, connection=0).capture(big(0), "a")
        net.proxy.plan(1, UP, connection=1).inject(big(0), "a", retarget=retarget)
        a = yield net.connect()
        b = yield net.connect("other")
        self.assertEqual(net.proxy.connection(1, 1).sessionID, b.id)
        dataA, dataB = message(FRAGMENTS, b"A"), message(FRAGMENTS, b"B")
        sentA = a.sendMessage(dataA)
        yield net.proxy.whenCaptured("a")
        sentB = b.sendMessage(dataB)
        yield gatherResults([sentA, sentB])
        victim = net.proxy.connection(1, 1)
        yield victim.lost
        self.assertEqual(victim.firstLost, "server")
        self.assertIn(reason, net.observer.closes.get(net.serverChannel(victim), ""))
        serverA, serverB = net.serverSession(a), net.serverSession(b)
        self.assertEqual(net.receiver.data(serverA), [dataA])
        self.assertEqual(net.receiver.data(serverB), [dataB])
        lostOfA = [c for c in net.proxy.connections if c.sessionID == a.id and c.isLost]
        self.assertEqual(lostOfA, [])
        yield net.ready(b)
        yield self.servedAfterwards(a)
        yield self.servedAfterwards(b)

    def test_injectedAsIs(self):
        """
        As is: the session id in the header gives it away.
        """
        return self.inject(False, "another session or channel")

    def test_injectedRetargeted(self):
        """
        With the header rewritten to B's: authentication fails.
        """
        return self.inject(True, AUTH_FAILED)
