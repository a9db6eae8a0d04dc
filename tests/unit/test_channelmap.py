"""
Tests for L{spc.protocol.channelmap}: the channel map of F1 (amendment A19)
is read strictly, a client accepts only what it was told to accept, and a
man in the middle who rewrites the map makes the handshake fail (T9).
"""

from __future__ import annotations

from hypothesis import given, settings, strategies as st
from twisted.trial import unittest

from spc.crypto.suites import A256CBC_HS512, AES256_GCM, CHACHA20_POLY1305, SUITES
from spc.errors import ChannelsMismatch, ConfigurationError, ProtocolError
from spc.protocol import frames
from spc.protocol.channelmap import (
    CHANNEL_ENTRY_SIZE,
    MAX_CHANNELS,
    NO_PORT,
    ChannelEntry,
    ChannelExpectation,
    decodeChannelMap,
    encodeChannelMap,
)
from spc.protocol.clienthandshake import ClientHandshake
from spc.protocol.handshake import ChannelSpec
from spc.protocol.serverhandshake import ServerHandshake
from tests.common import (
    RecordingClientOwner,
    RecordingServerOwner,
    clientIdentity,
    countPrivateOperations,
    exchangeKeyDER,
    hostIdentity,
    makeDirectory,
)

CBC, CHACHA, GCM = (suite.suiteID for suite in SUITES)
assert (CBC, CHACHA, GCM) == (A256CBC_HS512.suiteID, CHACHA20_POLY1305.suiteID, 3)

FOUR = (ChannelEntry(CBC, 9000), ChannelEntry(CHACHA, 9001), ChannelEntry(GCM, 9002),
        ChannelEntry(CHACHA, 9003))

entries = st.builds(ChannelEntry, st.integers(0, 255), st.integers(0, 0xFFFF))
maps = st.lists(entries, min_size=1, max_size=MAX_CHANNELS).map(tuple)
suiteSets = st.sets(st.sampled_from(SUITES), min_size=1).map(frozenset)


class ChannelMapCodingTests(unittest.SynchronousTestCase):
    """
    The map's bytes: three per channel, strictly read.
    """

    @given(maps)
    def test_roundTrip(self, channelMap) -> None:
        """
        A map decodes from its encoding, three bytes per channel.
        """
        data = encodeChannelMap(channelMap)
        self.assertEqual(len(data), CHANNEL_ENTRY_SIZE * len(channelMap))
        self.assertEqual(decodeChannelMap(data, len(channelMap)), channelMap)

    def test_layout(self) -> None:
        """
        Each entry is C{u8 suite ‖ u16 port}, big-endian, in channel order:
        the known answer of docs/protocol.rst section 3.1.1.
        """
        defaults = [ChannelEntry((CBC, CHACHA)[i % 2], 9000 + i) for i in range(4)]
        self.assertEqual(
            encodeChannelMap(defaults), bytes.fromhex("01 2328 02 2329 01 232a 02 232b")
        )

    @given(st.binary(max_size=64), st.integers(-1, 70000))
    def test_anyInput(self, data, count) -> None:
        """
        Whatever the bytes and count, decoding gives a map of exactly
        C{count} entries, 1 to L{MAX_CHANNELS}, or raises L{ProtocolError};
        nothing else.
        """
        try:
            decoded = decodeChannelMap(data, count)
        except ProtocolError:
            return
        self.assertTrue(1 <= count <= MAX_CHANNELS)
        self.assertEqual(len(decoded), count)
        self.assertEqual(encodeChannelMap(decoded), data)

    def test_countBounds(self) -> None:
        """
        No channel, or more than L{MAX_CHANNELS}, is refused before
        anything is read.
        """
        for count in (0, MAX_CHANNELS + 1, 0xFFFF):
            self.assertRaises(
                ProtocolError, decodeChannelMap, bytes(CHANNEL_ENTRY_SIZE * count), count
            )

    def test_helloCarriesMap(self) -> None:
        """
        F1 ends with the map; one whose entry for this channel names
        another suite than F1's, a count over 16, or a short map, is
        refused.
        """
        hello = frames.ServerHello(
            (1,), GCM, 2, 4, bytes(32), bytes(32), bytes(294), FOUR
        )
        body = hello.encode()
        self.assertEqual(body[-12:], encodeChannelMap(FOUR))
        self.assertEqual(frames.ServerHello.decode(body), hello)
        for bad in (
            hello._replace(suite=CBC),
            hello._replace(channelCount=17, channelMap=FOUR * 4 + FOUR[:1]),
            hello._replace(channelMap=FOUR[:3]),
        ):
            self.assertRaises(ProtocolError, frames.ServerHello.decode, bad.encode())


class ChannelExpectationTests(unittest.SynchronousTestCase):
    """
    What a client accepts of an announcement.
    """

    def test_oneAddressTakesTheMap(self) -> None:
        """
        With nothing given, any channel of any count is accepted, and its
        own suite is the connection's.
        """
        self.assertIs(ChannelExpectation().check(2, FOUR), AES256_GCM)
        self.assertIs(ChannelExpectation().check(0, FOUR[:1]), A256CBC_HS512)

    def test_countMismatch(self) -> None:
        """
        Given channels (C{--ports}, C{--connect}) must be as many as the
        daemon's: the error says both counts and the ports announced.
        """
        error = self.assertRaises(
            ChannelsMismatch, ChannelExpectation(0, 1).check, 0, FOUR
        )
        self.assertEqual(error.exitCode, 2)
        self.assertIsInstance(error, ConfigurationError)
        self.assertTrue(
            str(error).startswith(
                "the daemon has 4 channels (ports 9000, 9001, 9002, 9003); you gave 1"
            ),
            str(error),
        )

    def test_wrongOrder(self) -> None:
        """
        A given address that reaches another channel than its place in
        the list is refused, naming the daemon's ports in order.
        """
        error = self.assertRaises(
            ChannelsMismatch, ChannelExpectation(0, 4).check, 1, FOUR
        )
        self.assertIn("reached the daemon's channel 1", str(error))
        self.assertIn("(ports 9000, 9001, 9002, 9003)", str(error))

    def test_suiteRefused(self) -> None:
        """
        A suite outside the accepted set, on any channel, is refused,
        naming the channel, the suite and what is accepted.
        """
        expect = ChannelExpectation(allowed=frozenset({A256CBC_HS512, CHACHA20_POLY1305}))
        error = self.assertRaises(ChannelsMismatch, expect.check, 0, FOUR)
        self.assertEqual(
            str(error),
            "the daemon's channel 2 uses AES-256-GCM, which this client does not "
            "accept (--suites allows A256CBC-HS512, ChaCha20-Poly1305)",
        )
        unknown = FOUR[:3] + (ChannelEntry(0x7F, 9003),)
        error = self.assertRaises(ChannelsMismatch, ChannelExpectation().check, 0, unknown)
        self.assertIn("an unknown suite (0x7f)", str(error))

    def test_joinKeepsTheMap(self) -> None:
        """
        A connection that joins a session is refused if its F1 announces
        other suites or another count than the session's first; ports may
        differ (they depend on how each connection arrived).
        """
        expect = ChannelExpectation(1, None, frozenset(SUITES), FOUR)
        moved = tuple(entry._replace(port=NO_PORT) for entry in FOUR)
        self.assertIs(expect.check(1, moved), CHACHA20_POLY1305)
        swapped = (FOUR[1], FOUR[0]) + FOUR[2:]
        self.assertRaises(ProtocolError, expect.check, 1, swapped)
        self.assertRaises(ProtocolError, expect.check, 1, FOUR[:3])

    @settings(max_examples=300)
    @given(maps, st.data(), suiteSets, st.one_of(st.none(), st.integers(1, MAX_CHANNELS)))
    def test_neverAcceptsOutsideItsSet(self, channelMap, data, allowed, given) -> None:
        """
        Whatever a server announces: the client accepts the connection only
        if every announced suite is in its set and, when it was given
        channels, their count is the map's; the suite it then uses is the
        channel's own.  Anything else is refused, with nothing but
        L{ChannelsMismatch}.
        """
        channel = data.draw(st.integers(0, len(channelMap) - 1))
        expect = ChannelExpectation(None, given, allowed)
        accepted = {suite.suiteID for suite in allowed}
        try:
            suite = expect.check(channel, channelMap)
        except ChannelsMismatch:
            refused = True
        else:
            refused = False
            self.assertEqual(suite.suiteID, channelMap[channel].suite)
        self.assertEqual(
            refused,
            not all(entry.suite in accepted for entry in channelMap)
            or (given is not None and given != len(channelMap)),
        )


def handshake(expect: ChannelExpectation, rewrite=None, channelMap=FOUR, channel=0):
    """
    Run a server handshake announcing C{channelMap} against a client that
    expects C{expect}, passing F1 through C{rewrite}.

    @return: C{(serverOwner, clientOwner)}.
    """
    host, client = hostIdentity(), clientIdentity()
    serverOwner, clientOwner = RecordingServerOwner(), RecordingClientOwner()
    suite = next(s for s in SUITES if s.suiteID == channelMap[channel].suite)
    server = ServerHandshake(
        ChannelSpec(channel, len(channelMap), suite), host.privateKey, host.publicDER,
        frames.Params(), makeDirectory(), serverOwner, channelMap=channelMap,
    )
    clientMachine = ClientHandshake(
        expect, client.privateKey, client.publicDER, exchangeKeyDER(),
        lambda fingerprint: None, clientOwner,
    )
    server.start()
    f1 = serverOwner.frames[0]
    clientMachine.frameReceived(rewrite(f1) if rewrite else f1)
    if clientOwner.frames:
        server.frameReceived(clientOwner.frames[0])
        if len(serverOwner.frames) > 1:
            clientMachine.frameReceived(serverOwner.frames[1])
    return serverOwner, clientOwner


class AnnouncementHandshakeTests(unittest.SynchronousTestCase):
    """
    The map in a real handshake, and a man in the middle who rewrites it.
    """

    def test_clientLearnsTheMap(self) -> None:
        """
        A client with one address ends its handshake with the server's map
        and the suite and index of the channel it reached.
        """
        serverOwner, clientOwner = handshake(ChannelExpectation(), channel=2)
        [result] = clientOwner.results
        self.assertEqual(result.channelMap, FOUR)
        self.assertEqual((result.keys.channel, result.keys.suite), (2, AES256_GCM))
        self.assertEqual(serverOwner.results[0].keys.suite, AES256_GCM)

    def test_refusedBeforeAnythingSecret(self) -> None:
        """
        A client that does not accept a suite of the map sends no F2.
        """
        expect = ChannelExpectation(allowed=frozenset({CHACHA20_POLY1305}))
        serverOwner, clientOwner = handshake(expect)
        self.assertEqual(clientOwner.frames, [])
        self.assertIsInstance(clientOwner.failures[0], ChannelsMismatch)

    def test_everyRewrittenMapByteFails(self) -> None:
        """
        T9: a man in the middle who changes any bit of any byte of the map
        in F1 (a suite, a port, both) never gets a session: the client
        refuses F1, or signs it as it saw it and the server refuses F2
        (alert 2) before any private-key operation.
        """
        counter = countPrivateOperations(self)
        for index in range(CHANNEL_ENTRY_SIZE * len(FOUR)):
            for mask in (0x01, 0x02, 0x80):
                def rewrite(body, index=index, mask=mask):
                    changed = bytearray(body)
                    changed[len(body) - 12 + index] ^= mask
                    return bytes(changed)

                serverOwner, clientOwner = handshake(ChannelExpectation(), rewrite)
                where = f"byte {index}, mask {mask:#x}"
                self.assertEqual(serverOwner.results + clientOwner.results, [], where)
                if clientOwner.frames:
                    self.assertEqual(serverOwner.failures[0][0], frames.ALERT_HANDSHAKE_FAILURE)
                    self.assertIn("signature", serverOwner.failures[0][1], where)
                else:
                    self.assertIsInstance(
                        clientOwner.failures[0], (ProtocolError, ChannelsMismatch), where
                    )
        self.assertEqual(counter.count, 0)
