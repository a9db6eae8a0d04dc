# -*- test-case-name: tests.unit.test_earlyjoin -*-
"""
Tests for joins started before their session exists: the client's
handshake holds the server's hello until the join ticket comes
(L{spc.protocol.clienthandshake.ClientHandshake.ticketReady}).  That
L{spc.client.connect.connect} connects every channel at once is tested in
L{tests.memory.test_earlyjoin}.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from spc.errors import ProtocolError
from spc.protocol import frames
from spc.protocol.clienthandshake import ClientHandshake
from spc.protocol.channelmap import ChannelExpectation
from spc.protocol.handshake import JoinTarget
from tests.common import (
    RecordingClientOwner,
    clientIdentity,
    exchangeKeyDER,
    makeDirectory,
)
from tests.unit.test_handshake import Pair, pinned, ticketFor


class HeldHelloTests(SynchronousTestCase):
    """
    A join whose ticket comes later answers the server's hello only then.
    """

    def setUp(self) -> None:
        self.first = Pair().run()
        self.pair = Pair(
            directory=makeDirectory(
                target=JoinTarget(self.first.serverResult.epochSecret, 0, frames.Params())
            ),
            channel=1,
        )
        self.owner = RecordingClientOwner()
        client = clientIdentity()
        self.client = ClientHandshake(
            ChannelExpectation(1, 2),
            client.privateKey,
            client.publicDER,
            exchangeKeyDER(),
            pinned(),
            self.owner,
            ticketLater=True,
        )

    def finish(self) -> None:
        """
        Carry the client's F2 to the server and its F3 back.
        """
        [f2] = self.owner.frames
        self.pair.server.frameReceived(f2)
        self.client.frameReceived(self.pair.serverOwner.frames[1])

    def test_heldUntilTicket(self) -> None:
        """
        The hello gets no answer until the ticket comes; then the join
        runs to the end, into the ticket's session.
        """
        self.client.frameReceived(self.pair.hello())
        self.assertEqual((self.owner.frames, self.owner.failures), ([], []))
        self.client.ticketReady(ticketFor(self.first))
        self.finish()
        [result] = self.owner.results
        self.assertFalse(result.isNew)
        self.assertEqual(result.session, self.first.clientResult.session)
        self.assertEqual(self.pair.serverResult.session, result.session)

    def test_ticketFirst(self) -> None:
        """
        A ticket that comes before the hello lets the hello be answered at
        once.
        """
        self.client.ticketReady(ticketFor(self.first))
        self.client.frameReceived(self.pair.hello())
        self.finish()
        self.assertEqual(len(self.owner.results), 1)

    def test_heldHelloChecked(self) -> None:
        """
        The held hello is checked against the ticket: a server key other
        than the session's ends the join.
        """
        self.client.frameReceived(self.pair.hello())
        ticket = ticketFor(self.first)._replace(serverKey=b"another server key")
        self.client.ticketReady(ticket)
        self.assertEqual(self.owner.frames, [])
        [error] = self.owner.failures
        self.assertIsInstance(error, ProtocolError)

    def test_heldHelloAgainstSessionMap(self) -> None:
        """
        The held hello is checked against the channels the session's first
        connection announced: a join whose F1 announces others ends.
        """
        hello = self.pair.hello()
        announced = frames.decodeHandshake(hello).channelMap
        other = tuple(entry._replace(suite=announced[0].suite) for entry in announced)
        self.assertNotEqual(other, announced)
        self.client.frameReceived(hello)
        self.client.ticketReady(ticketFor(self.first), other)
        self.assertEqual(self.owner.frames, [])
        [error] = self.owner.failures
        self.assertIsInstance(error, ProtocolError)

    def test_heldHelloSameSessionMap(self) -> None:
        """
        A held hello announcing the session's own channels is answered.
        """
        hello = self.pair.hello()
        self.client.frameReceived(hello)
        self.client.ticketReady(ticketFor(self.first), frames.decodeHandshake(hello).channelMap)
        self.finish()
        self.assertEqual(self.owner.failures, [])

    def test_timeoutWhileHeld(self) -> None:
        """
        A join still waiting for its ticket when time runs out fails, and a
        ticket after that changes nothing.
        """
        self.client.frameReceived(self.pair.hello())
        self.client.timedOut()
        self.client.ticketReady(ticketFor(self.first))
        self.assertEqual(self.owner.frames, [])
        self.assertEqual(len(self.owner.failures), 1)

    def test_secondHello(self) -> None:
        """
        A second hello while the first is held is a protocol error.
        """
        hello = self.pair.hello()
        self.client.frameReceived(hello)
        self.client.frameReceived(hello)
        [error] = self.owner.failures
        self.assertIsInstance(error, ProtocolError)
