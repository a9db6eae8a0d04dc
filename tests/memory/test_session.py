# -*- test-case-name: tests.memory.test_session -*-
"""
Tests for L{spc.session.session}: how a session routes its channels' records, what
happens when channels come, go and are replaced, and how it ends.

Two tiers: L{Session} driven directly with recording fake channels, and
whole client and server sessions over real L{spc.transport.channel.ChannelProtocol}s
connected in memory by L{twisted.test.iosim}, with L{task.Clock} for time.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import formatEvent, globalLogPublisher
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from spc.client.connect import ClientSessionFactory, connect
from spc.crypto import asymmetric
from spc.crypto.suites import defaultSuiteFor
from spc.errors import ProtocolError, SessionClosed, SessionReset, SPCError, TransferFailed
from spc.files.store import FileStore
from spc.interfaces import IMessageReceiver
from spc.keys.identity import fingerprint
from spc.keys.trust import AllowAny, AuthorizedKeys, PinnedKey
from spc.protocol import filerecords, frames, records
from spc.protocol.handshake import ServerResult, channelSpecs
from spc.protocol.records import messageDigest
from spc.server.directory import SessionDirectory
from spc.server.service import ServerChannelFactory
from spc.session.session import DEFAULT_LINGER, Session
from tests.common import cachedExchangeKey, cachedIdentity
from tests.fakes import FakeChannel


PEER = fingerprint(b"the peer")
OTHER_PEER = fingerprint(b"another peer")
SESSION_ID = bytes(range(1, 17))
SECRET = b"S" * 32
PARAMS = frames.Params(
    fragmentSize=frames.MIN_FRAGMENT_SIZE, maxInner=frames.maxInnerSize(frames.MIN_FRAGMENT_SIZE)
)
SIZE = PARAMS.fragmentSize
RETRY_DELAY = 1.0


@implementer(IMessageReceiver)
class RecordingReceiver:
    """
    An application that records every message.

    @ivar messages: C{(session, data, kind)} in arrival order.
    @ivar result: what L{messageReceived} returns.
    """

    def __init__(self) -> None:
        self.messages: list[tuple[Session, bytes, int]] = []
        self.result: object = None

    def messageReceived(self, session, data, kind):
        self.messages.append((session, data, kind))
        return self.result

    def data(self) -> list[bytes]:
        return [data for _, data, _ in self.messages]


def makeSession(isServer: bool = False, receiver=None, clock=None, **kw) -> Session:
    """
    A session with no channel yet.
    """
    return Session(
        SESSION_ID,
        isServer,
        PEER,
        PARAMS,
        0,
        SECRET,
        receiver,
        clock if clock is not None else task.Clock(),
        **kw,
    )


def confirm(session: Session, channel: FakeChannel) -> None:
    """
    Deliver the client's key-confirming heartbeat on C{channel}.
    """
    session.recordReceived(channel, 0, heartbeatRequest(hbID=99))
    channel.take()


def attached(session: Session, *indexes: int) -> list[FakeChannel]:
    """
    Attach and (on the server) confirm one fake channel per index; forget
    what they sent on the way.
    """
    channels = []
    for index in indexes:
        channel = FakeChannel(index)
        session.attach(channel, 0)
        if session.isServer:
            confirm(session, channel)
        channel.take()
        channels.append(channel)
    return channels


def decoded(record) -> object:
    """
    A record as a channel hands it to its owner: encoded then decoded.
    """
    return records.decodeRecord(record.encode())


def heartbeatRequest(hbID: int = 1, originTime: int = 0) -> records.HeartbeatRequest:
    return decoded(
        records.HeartbeatRequest(hbID, originTime, 0, records.NO_EPOCH, records.NO_SEQUENCE, 0, 0)
    )


def message(data: bytes, msgID: int = 0, kind: int = records.KIND_BINARY) -> records.Fragment:
    """
    A one-fragment message as received.
    """
    return decoded(
        records.Fragment(msgID, 0, 1, len(data), kind, messageDigest(kind, data), data)
    )


def serverResult(
    sessionID: bytes = SESSION_ID,
    peer: str = PEER,
    channel: int = 0,
    isNew: bool = True,
    exchangeKeyDER: bytes = b"exchange key",
    params: frames.Params = PARAMS,
) -> ServerResult:
    """
    What a server handshake reports, with fake connection keys.
    """
    return ServerResult(
        sessionID,
        isNew,
        peer,
        None,
        exchangeKeyDER,
        0,
        SECRET if isNew else None,
        params,
        SimpleNamespace(channel=channel),
    )


class RoutingTests(SynchronousTestCase):
    """
    L{Session.recordReceived} sends data records to the messenger and
    answers or acts on control records itself.
    """

    def test_fragmentDelivered(self) -> None:
        """
        A complete message is handed to the application's
        L{IMessageReceiver} with the session and kind, and acknowledged.
        """
        receiver = RecordingReceiver()
        verifyObject(IMessageReceiver, receiver)
        session = makeSession(receiver=receiver)
        [channel] = attached(session, 0)
        session.recordReceived(channel, 0, message(b"hello", kind=records.KIND_TEXT))
        self.assertEqual(receiver.messages, [(session, b"hello", records.KIND_TEXT)])
        [ack] = channel.take(records.Ack)
        self.assertEqual((ack.msgID, ack.status), (0, records.ACK_COMPLETE))

    def test_noReceiver(self) -> None:
        """
        An end without a receiver abandons the message it gets, telling the
        peer, and the session goes on.
        """
        session = makeSession(receiver=None)
        [channel] = attached(session, 0)
        session.recordReceived(channel, 0, message(b"unwanted"))
        [ack] = channel.take(records.Ack)
        self.assertEqual(ack.status, records.ACK_ABANDONED)
        self.assertIsNone(session.closedReason)
        self.assertEqual(len(self.flushLoggedErrors(SPCError)), 1)

    def test_ackRouted(self) -> None:
        """
        An C{ACK:} completes the matching L{Session.sendMessage} Deferred.
        """
        session = makeSession()
        [channel] = attached(session, 0)
        sent = session.sendMessage(b"data")
        [fragment] = channel.take(records.Fragment)
        self.assertEqual(bytes(fragment.payload), b"data")
        self.assertNoResult(sent)
        session.recordReceived(channel, 0, decoded(records.Ack(0, records.ACK_COMPLETE)))
        self.successResultOf(sent)

    def test_heartbeatAnswered(self) -> None:
        """
        An C{HBQ:} is answered at once with an C{HBR:} on the same channel,
        echoing its id and origin time and giving this end's view: the
        committed epoch, the last sequence number received on that channel,
        and both message watermarks.
        """
        session = makeSession()
        first, second = attached(session, 0, 1)
        second.records.receivedFrames = 5
        session.sendMessage(b"one")
        first.take()
        second.take()
        session.recordReceived(second, 0, heartbeatRequest(hbID=7, originTime=123456))
        self.assertEqual(first.sent, [])
        [response] = second.take()
        self.assertEqual(
            response,
            records.HeartbeatResponse(7, 123456, 0, records.NO_EPOCH, 4, 1, 0),
        )

    def test_heartbeatBeforeAnyFrame(self) -> None:
        """
        With nothing received yet on the channel, the last sequence number
        is "none".
        """
        session = makeSession()
        [channel] = attached(session, 0)
        channel.records.receivedFrames = 0
        session.recordReceived(channel, 0, heartbeatRequest())
        [response] = channel.take()
        self.assertEqual(response.lastSeqReceived, records.NO_SEQUENCE)

    def test_heartbeatResponseIgnored(self) -> None:
        """
        An C{HBR:} needs no answer.
        """
        session = makeSession()
        [channel] = attached(session, 0)
        session.recordReceived(
            channel, 0, decoded(records.HeartbeatResponse(1, 2, 0, records.NO_EPOCH, 0, 0, 0))
        )
        self.assertEqual(channel.sent, [])
        self.assertIsNone(session.closedReason)

    def test_byeSession(self) -> None:
        """
        C{BYE:} with session scope ends the session with L{SessionClosed}:
        every channel is closed and outstanding sends fail.
        """
        session = makeSession()
        first, second = attached(session, 0, 1)
        sent = session.sendMessage(b"pending")
        closed = session.whenClosed()
        session.recordReceived(
            second, 0, decoded(records.Bye(records.BYE_NORMAL, records.SCOPE_SESSION, "done"))
        )
        self.assertIsInstance(self.successResultOf(closed), SessionClosed)
        self.assertIn("done", str(session.closedReason.value))
        self.failureResultOf(sent, SessionClosed)
        self.assertIsNotNone(first.closed)
        self.assertIsNotNone(second.closed)
        self.assertEqual(session.liveChannels(), [])

    def test_goodbyeKept(self) -> None:
        """
        The session keeps the peer's goodbye to the session, so that a
        receiver can tell a sender that finished from a session that ended
        any other way; a goodbye to one channel, or none, leaves it unset.
        """
        session = makeSession()
        first, second = attached(session, 0, 1)
        channelBye = records.Bye(records.BYE_NORMAL, records.SCOPE_CHANNEL, "this one")
        session.recordReceived(second, 0, decoded(channelBye))
        self.assertIsNone(session.goodbye)
        bye = records.Bye(records.BYE_NORMAL, records.SCOPE_SESSION, "done")
        session.recordReceived(first, 0, decoded(bye))
        self.assertEqual(session.goodbye, bye)
        other = makeSession()
        other.terminate(records.BYE_NORMAL, "closed here")
        self.assertIsNone(other.goodbye)

    def test_byeReasonWithoutControls(self) -> None:
        """
        The peer chooses a C{BYE:} reason: a newline or a terminal escape in
        it would forge a line in the log, or in what C{spc send} prints, so
        both the logged reason and the session's reason lose their control
        characters, as file names do.
        """
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        session = makeSession()
        [channel] = attached(session, 0)
        forged = "bye\n2026-01-01T00:00:00+0000 [spc.session#info] forged\x1b[2J\u202e"
        session.recordReceived(
            channel, 0, decoded(records.Bye(records.BYE_NORMAL, records.SCOPE_SESSION, forged))
        )
        cleaned = "bye2026-01-01T00:00:00+0000 [spc.session#info] forged[2J"
        self.assertEqual(
            str(session.closedReason.value),
            f"The session closed before the peer confirmed everything: "
            f"the peer closed the session: {cleaned}",
        )
        [said] = [event for event in events if "said goodbye" in event.get("log_format", "")]
        self.assertEqual(said["reason"], cleaned)
        for event in events:
            text = formatEvent(event)
            self.assertNotIn("\n", text)
            self.assertNotIn("\x1b", text)

    def test_byeChannel(self) -> None:
        """
        C{BYE:} with channel scope closes that channel only; when it is gone
        the session carries on over the others.
        """
        session = makeSession()
        first, second = attached(session, 0, 1)
        session.recordReceived(
            second, 0, decoded(records.Bye(records.BYE_NORMAL, records.SCOPE_CHANNEL, "this one"))
        )
        self.assertIsNotNone(second.closed)
        self.assertIsNone(first.closed)
        second.lose()
        self.assertIsNone(session.closedReason)
        self.assertEqual(session.liveChannels(), [first])

    def test_unexpectedRecord(self) -> None:
        """
        An C{RKO:} this end does not expect is a session protocol error:
        C{BYE:} protocol_error (session scope) on every channel, then the
        session ends with L{ProtocolError}.
        """
        session = makeSession()
        channels = attached(session, 0, 1, 2)
        closed = session.whenClosed()
        session.recordReceived(
            channels[1], 0, decoded(records.RotationOffer(1, bytes(32), bytes(256)))
        )
        self.assertIsInstance(self.successResultOf(closed), ProtocolError)
        for channel in channels:
            [bye] = channel.take()
            self.assertEqual(
                (type(bye), bye.code, bye.scope),
                (records.Bye, records.BYE_PROTOCOL_ERROR, records.SCOPE_SESSION),
            )
            self.assertIsNotNone(channel.closed)

    def test_messengerProtocolError(self) -> None:
        """
        A hostile fragment (T24: the same message id with another count)
        ends the session the same way.
        """
        session = makeSession(receiver=RecordingReceiver())
        [channel] = attached(session, 0)
        digest = messageDigest(records.KIND_BINARY, b"x" * (2 * SIZE))
        session.recordReceived(
            channel,
            0,
            decoded(records.Fragment(0, 0, 2, 2 * SIZE, records.KIND_BINARY, digest, b"x" * SIZE)),
        )
        session.recordReceived(
            channel,
            0,
            decoded(records.Fragment(0, 1, 3, 3 * SIZE, records.KIND_BINARY, digest, b"x" * SIZE)),
        )
        self.assertIsInstance(session.closedReason.value, ProtocolError)
        [bye] = channel.take(records.Bye)
        self.assertEqual(bye.code, records.BYE_PROTOCOL_ERROR)

    def test_nothingDeliveredAfterEnd(self) -> None:
        """
        Records a channel still hands over after the session ended (frames
        read in the same chunk as a session-scope C{BYE:}, before the
        transport stops reading) are not delivered to the application.
        """
        receiver = RecordingReceiver()
        session = makeSession(receiver=receiver)
        [channel] = attached(session, 0)
        session.recordReceived(
            channel, 0, decoded(records.Bye(records.BYE_NORMAL, records.SCOPE_SESSION, "done"))
        )
        session.recordReceived(channel, 0, message(b"after the end"))
        self.assertEqual(receiver.messages, [])


class ChannelLossTests(SynchronousTestCase):
    """
    L{Session.channelLost}: survivors take over what the dead channel
    carried; after the last loss a session of either role lingers, and ends
    only if no channel rejoins in time.
    """

    def test_survivorsResend(self) -> None:
        """
        When a channel dies and others live, what the dead channel carried
        and the peer did not acknowledge goes out again on the survivors;
        what the survivors carried is not sent twice.

        Changed with the window scheduler: before, every unacknowledged
        fragment of the session went out again; now the session tells the
        messenger which channel died (C{channelDied}) and only its fragments
        are resent.
        """
        session = makeSession()
        first, second = attached(session, 0, 1)
        session.sendMessage(b"m" * (3 * SIZE + 1))
        onFirst = sorted(f.index for f in first.take(records.Fragment))
        onSecond = sorted(f.index for f in second.take(records.Fragment))
        self.assertEqual(sorted(onFirst + onSecond), [0, 1, 2, 3])
        self.assertTrue(onFirst and onSecond)
        first.lose()
        self.assertIsNone(session.closedReason)
        self.assertEqual(sorted(f.index for f in second.take(records.Fragment)), onFirst)
        self.assertEqual(session.liveChannels(), [second])

    def test_acknowledgedNotResent(self) -> None:
        """
        Fragments of the dead channel that a progress C{ACK:} already
        covered are not resent; the others are.
        """
        session = makeSession()
        first, second = attached(session, 0, 1)
        session.sendMessage(b"m" * (4 * SIZE))
        onFirst = sorted(f.index for f in first.take(records.Fragment))
        second.take()
        acked, *rest = onFirst
        session.recordReceived(
            second, 0, decoded(records.Ack(0, records.ACK_PROGRESS, ((acked, 1),)))
        )
        first.lose()
        self.assertEqual(sorted(f.index for f in second.take(records.Fragment)), rest)

    def test_onChannelLost(self) -> None:
        """
        Every C{onChannelLost} callback hears the index of a channel that
        died (the client's factory rejoins it from there), but not after the
        session ended.
        """
        session = makeSession()
        first, second, third = attached(session, 0, 1, 2)
        lost: list[int] = []
        session.onChannelLost.append(lost.append)
        second.lose()
        self.assertEqual(lost, [1])
        session.close()
        first.lose()
        self.assertEqual(lost, [1])

    def test_clientLastChannelLingers(self) -> None:
        """
        A client session whose last channel dies lingers like the server's,
        so its factory can rejoin channels and transfers resume: sends stay
        pending; if nothing rejoins within the linger, it ends with
        L{SessionClosed}, outstanding sends fail, and so do later ones.

        Changed: a client session used to end at once when its last channel
        dropped.
        """
        clock = task.Clock()
        session = makeSession(isServer=False, clock=clock)
        [channel] = attached(session, 0)
        sent = session.sendMessage(b"pending")
        closed = session.whenClosed()
        channel.lose("reset by peer")
        self.assertNoResult(closed)
        self.assertNoResult(sent)
        self.assertIsNone(session.closedReason)
        clock.advance(DEFAULT_LINGER - 0.5)
        self.assertNoResult(closed)
        clock.advance(0.5)
        self.assertIsInstance(self.successResultOf(closed), SessionClosed)
        self.failureResultOf(sent, SessionClosed)
        self.failureResultOf(session.sendMessage(b"later"), SessionClosed)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_clientRejoinDuringLinger(self) -> None:
        """
        A client channel attached during the linger cancels it, and what was
        unacknowledged or sent meanwhile goes out on it.
        """
        clock = task.Clock()
        session = makeSession(isServer=False, clock=clock)
        [channel] = attached(session, 0)
        session.sendMessage(b"before")
        channel.take()
        channel.lose()
        session.sendMessage(b"during")
        rejoined = FakeChannel(0)
        session.attach(rejoined, 0)
        clock.advance(DEFAULT_LINGER)
        self.assertIsNone(session.closedReason)
        self.assertEqual(
            sorted(bytes(f.payload) for f in rejoined.take(records.Fragment)),
            [b"before", b"during"],
        )

    def makeServer(self, clock: task.Clock):
        """
        A directory's session with one confirmed channel.
        """
        directory = SessionDirectory(
            clock, cachedIdentity("server"), AllowAny, RecordingReceiver(), 4
        )
        channel = FakeChannel(0)
        directory.channelEstablished(channel, serverResult())
        session = directory.sessions[SESSION_ID]
        confirm(session, channel)
        return directory, session, channel

    def test_serverLingers(self) -> None:
        """
        A server session whose last channel dies lingers for 60 s, so the
        client can rejoin; then it ends with L{SessionClosed}, its sends
        fail, and its directory forgets it.
        """
        clock = task.Clock()
        directory, session, channel = self.makeServer(clock)
        sent = session.sendMessage(b"unacknowledged")
        channel.lose()
        self.assertIsNone(session.closedReason)
        self.assertIn(SESSION_ID, directory.sessions)
        clock.advance(DEFAULT_LINGER - 0.5)
        self.assertIsNone(session.closedReason)
        self.assertNoResult(sent)
        clock.advance(0.5)
        self.assertIsInstance(session.closedReason.value, SessionClosed)
        self.failureResultOf(sent, SessionClosed)
        self.assertNotIn(SESSION_ID, directory.sessions)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_rejoinCancelsLinger(self) -> None:
        """
        A connection that joins during the linger cancels it; the session
        lives on past the 60 s (the rejoined peer answers its heartbeats,
        so the channel stays alive).
        """
        clock = task.Clock()
        directory, session, channel = self.makeServer(clock)
        channel.lose()
        clock.advance(30)
        rejoined = FakeChannel(0)
        session.attach(rejoined, 0)
        confirm(session, rejoined)
        for _ in range(int(DEFAULT_LINGER)):
            clock.advance(1)
            for request in rejoined.take(records.HeartbeatRequest):
                session.recordReceived(
                    rejoined, 0, decoded(records.HeartbeatResponse(*request))
                )
        self.assertIsNone(session.closedReason)
        self.assertEqual(session.liveChannels(), [rejoined])
        self.assertIn(SESSION_ID, directory.sessions)

    def test_rejoinResumes(self) -> None:
        """
        PROTOCOL 7.4: the linger exists "so JOINs can resume unfinished
        transfers": a message unacknowledged when the last channel died, and
        one sent while none was live, both go out on the rejoined channel.
        """
        clock = task.Clock()
        directory, session, channel = self.makeServer(clock)
        session.sendMessage(b"before")
        channel.take()
        channel.lose()
        session.sendMessage(b"during")
        rejoined = FakeChannel(0)
        session.attach(rejoined, 0)
        session.recordReceived(rejoined, 0, heartbeatRequest())
        self.assertEqual(
            sorted(bytes(f.payload) for f in rejoined.take(records.Fragment)),
            [b"before", b"during"],
        )

    def test_unconfirmedRejoinDies(self) -> None:
        """
        A joining connection that dies before confirming its keys leaves the
        session lingering again: it ends 60 s later.
        """
        clock = task.Clock()
        directory, session, channel = self.makeServer(clock)
        channel.lose()
        candidate = FakeChannel(0)
        session.attach(candidate, 0)
        candidate.lose()
        clock.advance(DEFAULT_LINGER)
        self.assertIsInstance(session.closedReason.value, SessionClosed)
        self.assertNotIn(SESSION_ID, directory.sessions)


class CloseTests(SynchronousTestCase):
    """
    Ending a session locally: L{Session.close} and L{Session.terminate}.
    """

    def test_close(self) -> None:
        """
        L{Session.close} sends C{BYE:} normal with session scope on every
        channel, closes them, fails outstanding sends, and fires the
        returned Deferred and L{Session.whenClosed}.
        """
        session = makeSession()
        channels = attached(session, 0, 1, 2, 3)
        sent = session.sendMessage(b"pending")
        for channel in channels:
            channel.take()
        earlier = session.whenClosed()
        closing = session.close()
        for channel in channels:
            [bye] = channel.take()
            self.assertEqual(
                (type(bye), bye.code, bye.scope), (records.Bye, records.BYE_NORMAL, records.SCOPE_SESSION)
            )
            self.assertIsNotNone(channel.closed)
        self.assertIsInstance(self.successResultOf(closing), SessionClosed)
        self.assertIsInstance(self.successResultOf(earlier), SessionClosed)
        self.assertIsInstance(self.successResultOf(session.whenClosed()), SessionClosed)
        self.failureResultOf(sent, SessionClosed)

    def test_closeTwice(self) -> None:
        """
        Closing again says nothing more and fires at once.
        """
        session = makeSession()
        [channel] = attached(session, 0)
        session.close()
        channel.take()
        self.successResultOf(session.close())
        self.assertEqual(channel.sent, [])

    def test_onEnd(self) -> None:
        """
        Every C{onEnd} callback is called once, with the session.
        """
        session = makeSession()
        attached(session, 0)
        ended: list[Session] = []
        session.onEnd.append(ended.append)
        session.close()
        session.terminate(records.BYE_REPLACED, "again")
        self.assertEqual(ended, [session])

    def test_terminate(self) -> None:
        """
        L{Session.terminate} sends C{BYE:} with the given code and reason
        on every channel and ends the session.
        """
        session = makeSession()
        channels = attached(session, 0, 1)
        session.terminate(records.BYE_SHUTTING_DOWN, "stopping")
        for channel in channels:
            [bye] = channel.take()
            self.assertEqual(
                bye, records.Bye(records.BYE_SHUTTING_DOWN, records.SCOPE_SESSION, "stopping")
            )
        self.assertIsInstance(session.closedReason.value, SessionClosed)

    def test_closeReachesCandidates(self) -> None:
        """
        A server session's goodbye also reaches connections that joined but
        have not confirmed their keys yet.
        """
        session = makeSession(isServer=True)
        [confirmed] = attached(session, 0)
        candidate = FakeChannel(1)
        session.attach(candidate, 0)
        session.close()
        self.assertEqual(len(confirmed.take(records.Bye)), 1)
        self.assertEqual(len(candidate.take(records.Bye)), 1)
        self.assertIsNotNone(candidate.closed)


class KeyConfirmationTests(SynchronousTestCase):
    """
    A9: on the server a joining connection counts as a channel only after
    its first authenticated record; the client confirms at once.
    """

    def test_clientConfirms(self) -> None:
        """
        A client session gives an attached connection its keys, counts it
        at once, and confirms the keys with an C{HBQ:} on it.
        """
        session = makeSession(isServer=False)
        channel = FakeChannel(2)
        session.attach(channel, 0)
        self.assertEqual(channel.activated, (0, SECRET))
        self.assertIs(channel.owner, session)
        self.assertEqual(session.channels, {2: channel})
        [request] = channel.take()
        self.assertIsInstance(request, records.HeartbeatRequest)

    def test_candidateNotScheduled(self) -> None:
        """
        On the server a joined connection has keys but carries no data until
        its first record arrives; then it is a channel like the others.
        """
        session = makeSession(isServer=True)
        [first] = attached(session, 0)
        candidate = FakeChannel(1)
        session.attach(candidate, 0)
        self.assertEqual(candidate.activated, (0, SECRET))
        self.assertEqual(candidate.sent, [])
        self.assertEqual(session.liveChannels(), [first])
        session.sendMessage(b"m" * (3 * SIZE))
        self.assertEqual(len(first.take(records.Fragment)), 3)
        self.assertEqual(candidate.sent, [])
        session.recordReceived(candidate, 0, heartbeatRequest(hbID=3))
        self.assertEqual(session.liveChannels(), [first, candidate])
        [response] = candidate.take()
        self.assertEqual((type(response), response.hbID), (records.HeartbeatResponse, 3))

    def test_replacesOnlyAfterConfirmation(self) -> None:
        """
        A joined connection for an index already live replaces the old one
        only after its first record: then the old one gets C{BYE:} replaced
        (channel scope) and is closed, and unacknowledged fragments go out
        again at once on the new one (as L{Session._admit} and
        L{MultiChannelMessenger.resendAll} promise: "what was sent ... on a
        connection this one replaces, goes out again"), not only when the
        old connection finally finishes closing; and they are not sent a
        third time when it does.
        """
        session = makeSession(isServer=True)
        [old] = attached(session, 0)
        session.sendMessage(b"unacknowledged")
        old.take()
        new = FakeChannel(0)
        session.attach(new, 0)
        self.assertIs(session.channels[0], old)
        self.assertIsNone(old.closed)
        self.assertEqual(old.sent, [])
        session.recordReceived(new, 0, heartbeatRequest())
        self.assertIs(session.channels[0], new)
        [bye] = old.take()
        self.assertEqual((bye.code, bye.scope), (records.BYE_REPLACED, records.SCOPE_CHANNEL))
        self.assertIsNotNone(old.closed)
        self.assertEqual(
            [bytes(f.payload) for f in new.take(records.Fragment)], [b"unacknowledged"]
        )
        old.lose()
        self.assertIs(session.channels[0], new)
        self.assertIsNone(session.closedReason)
        self.assertEqual(new.take(records.Fragment), [])

    def test_unconfirmedLossHarmless(self) -> None:
        """
        A joined connection that dies unconfirmed leaves the live one on its
        index alone.
        """
        session = makeSession(isServer=True)
        [old] = attached(session, 0)
        candidate = FakeChannel(0)
        session.attach(candidate, 0)
        candidate.lose()
        self.assertEqual(session.channels, {0: old})
        self.assertIsNone(old.closed)
        self.assertIsNone(session.closedReason)


class SchedulingTests(SynchronousTestCase):
    """
    The session's channels as the messenger's sink: which channel gets data
    (L{ChannelSet.writableChannel}), when a paused channel gets it again
    (L{Session.channelWritable}), and where control records go
    (L{Session.sendControl}).
    """

    def test_takesTurns(self) -> None:
        """
        Fragments go to the live channels in turn.
        """
        session = makeSession()
        channels = attached(session, 0, 1, 2)
        session.sendMessage(b"t" * (6 * SIZE))
        self.assertEqual([len(c.take(records.Fragment)) for c in channels], [2, 2, 2])

    def test_pausedChannelSkipped(self) -> None:
        """
        A6: a channel whose transport paused it gets no fragment; the others
        carry the message.
        """
        session = makeSession()
        first, second, third = attached(session, 0, 1, 2)
        second.writePaused = True
        session.sendMessage(b"p" * (4 * SIZE))
        self.assertEqual(second.sent, [])
        self.assertEqual(
            len(first.take(records.Fragment)) + len(third.take(records.Fragment)), 4
        )

    def test_channelWritable(self) -> None:
        """
        With every channel paused nothing is sent; when a transport resumes
        and says so (L{Session.channelWritable}), the waiting fragments go
        out on it.
        """
        session = makeSession()
        first, second = attached(session, 0, 1)
        first.writePaused = second.writePaused = True
        sent = session.sendMessage(b"w" * (2 * SIZE))
        self.assertEqual((first.sent, second.sent), ([], []))
        second.writePaused = False
        session.channelWritable(second)
        self.assertEqual(first.sent, [])
        self.assertEqual([f.index for f in second.take(records.Fragment)], [0, 1])
        self.assertNoResult(sent)

    def test_controlIgnoresPause(self) -> None:
        """
        A10: acknowledgements are control records; they go out at once on
        the first live channel even while its transport paused data.
        """
        session = makeSession(receiver=RecordingReceiver())
        first, second = attached(session, 0, 1)
        first.writePaused = second.writePaused = True
        session.recordReceived(second, 0, message(b"hello"))
        [ack] = first.take(records.Ack)
        self.assertEqual((ack.msgID, ack.status), (0, records.ACK_COMPLETE))
        self.assertEqual(second.sent, [])

    def test_controlPrefersUnpaused(self) -> None:
        """
        An acknowledgement goes on the first live channel whose transport
        takes data: it does not wait behind, nor add to, a queue that is
        not moving while another channel is free.
        """
        session = makeSession(receiver=RecordingReceiver())
        first, second, third = attached(session, 0, 1, 2)
        first.writePaused = True
        session.recordReceived(first, 0, message(b"hello"))
        self.assertEqual(first.sent, [])
        [ack] = second.take(records.Ack)
        self.assertEqual((ack.msgID, ack.status), (0, records.ACK_COMPLETE))
        self.assertEqual(third.sent, [])

    def test_controlWithoutChannel(self) -> None:
        """
        With no live channel a control record is dropped, not queued and not
        an error (the peer's retransmission will ask again).
        """
        session = makeSession()
        session.sendControl(records.Ack(0, records.ACK_COMPLETE).encode())
        self.assertIsNone(session.closedReason)


def runNow(function, *args, **kwargs) -> Deferred:
    """
    A synchronous stand-in for C{deferToThread}.
    """
    try:
        return succeed(function(*args, **kwargs))
    except BaseException:
        return fail()


class LinkedChannel(FakeChannel):
    """
    A fake channel whose records reach a peer session when L{Link.flush}
    runs.
    """

    def __init__(self, link: Link, index: int) -> None:
        super().__init__(index)
        self.link = link
        self.peer: LinkedChannel | None = None

    def sendRecord(self, plaintext: bytes) -> None:
        if not self.dead:
            self.link.queue.append((self.peer, bytes(plaintext)))


class Link:
    """
    Two sessions joined by pairs of L{LinkedChannel}s.
    """

    def __init__(self, client: Session, server: Session, channels: int = 1) -> None:
        self.queue: list[tuple[LinkedChannel, bytes]] = []
        for index in range(channels):
            near, far = LinkedChannel(self, index), LinkedChannel(self, index)
            near.peer, far.peer = far, near
            server.attach(far, 0)
            client.attach(near, 0)

    def flush(self) -> None:
        while self.queue:
            channel, record = self.queue.pop(0)
            channel.owner.recordReceived(channel, 0, records.decodeRecord(record))


@implementer(IMessageReceiver)
class FileRecordingReceiver(RecordingReceiver):
    """
    Also records the files it is told of, as an C{IFileReceiver}.
    """

    def __init__(self) -> None:
        super().__init__()
        self.files: list[tuple[Session, str, str, int]] = []

    def fileReceived(self, session, name, path, size):
        self.files.append((session, name, path, size))


class FileRoutingTests(SynchronousTestCase):
    """
    C{FIL:}, C{FDT:} and C{FEN:} go to the session's L{IncomingFiles};
    C{FAK:} goes to the messenger's file senders.
    """

    def test_sendFileBetweenSessions(self) -> None:
        """
        L{Session.sendFile} streams a file to the peer session, which stores
        it in its L{FileStore} under the given name and tells its
        application's C{fileReceived}; the sender's Deferred fires.
        """
        inbox = self.mktemp()
        source = self.mktemp()
        data = os.urandom(5 * SIZE + 17)
        with open(source, "wb") as f:
            f.write(data)
        receiver = FileRecordingReceiver()
        client = makeSession(isServer=False)
        server = makeSession(isServer=True, receiver=receiver, files=FileStore(inbox))
        server.incomingFiles._runInThread = runNow
        link = Link(client, server, channels=2)
        link.flush()
        sent = client.sendFile(source, "sub/dir/report.bin")
        link.flush()
        self.successResultOf(sent)
        [(session, name, path, size)] = receiver.files
        self.assertEqual(
            (session, name, size), (server, "sub/dir/report.bin", len(data))
        )
        self.assertEqual(path, os.path.join(inbox, "sub", "dir", "report.bin"))
        with open(path, "rb") as f:
            self.assertEqual(f.read(), data)

    def test_offerWithoutStore(self) -> None:
        """
        A session without a file store refuses an offered file with C{FAK:}
        refused, on a control channel, and goes on.
        """
        session = makeSession()
        [channel] = attached(session, 0)
        session.recordReceived(channel, 0, decoded(filerecords.FileOffer(b"t" * 16, 10, "f")))
        [answer] = channel.take(filerecords.FileAck)
        self.assertEqual(
            (answer.transferID, answer.status), (b"t" * 16, filerecords.FILE_REFUSED)
        )
        self.assertIsNone(session.closedReason)

    def test_refusalFailsSendFile(self) -> None:
        """
        C{FIL:} goes out for L{Session.sendFile}; the peer's C{FAK:} refused
        reaches the sender, whose Deferred fails with L{TransferFailed}.
        """
        source = self.mktemp()
        with open(source, "wb") as f:
            f.write(b"content")
        session = makeSession()
        [channel] = attached(session, 0)
        sent = session.sendFile(source)
        [offer] = channel.take(filerecords.FileOffer)
        self.assertEqual((offer.size, offer.name), (7, os.path.basename(source)))
        refusal = filerecords.FileAck(
            offer.transferID, filerecords.FILE_REFUSED, (), filerecords.REFUSED_LIMIT, "too big"
        )
        session.recordReceived(channel, 0, decoded(refusal))
        self.failureResultOf(sent, TransferFailed)

    def test_unknownFileData(self) -> None:
        """
        C{FDT:} or C{FEN:} for a transfer never offered is a protocol error:
        the session ends with C{BYE:} protocol_error.
        """
        for record in (
            filerecords.FileData(b"u" * 16, 0, b"data"),
            filerecords.FileEnd(b"u" * 16, bytes(32)),
        ):
            session = makeSession(files=FileStore(self.mktemp()))
            [channel] = attached(session, 0)
            session.recordReceived(channel, 0, decoded(record))
            self.assertIsInstance(session.closedReason.value, ProtocolError)
            [bye] = channel.take(records.Bye)
            self.assertEqual(bye.code, records.BYE_PROTOCOL_ERROR)

    def test_sessionEndFailsSendFile(self) -> None:
        """
        A file still on its way when the session ends fails with the
        session's reason.
        """
        source = self.mktemp()
        with open(source, "wb") as f:
            f.write(b"x" * (3 * SIZE))
        session = makeSession()
        attached(session, 0)
        sent = session.sendFile(source)
        session.close()
        self.failureResultOf(sent, SessionClosed)


# Tier (b): real channels in memory.


class MemoryNetwork:
    """
    Client endpoints that connect to server factories in memory, one
    L{iosim.IOPump} per connection.

    @ivar pumps: every connection made, oldest first.
    """

    def __init__(self, clock: task.Clock) -> None:
        self.clock = clock
        self.pumps: list[iosim.IOPump] = []
        self._port = 40000

    def endpoint(self, serverFactory, host: str = "192.0.2.10") -> _MemoryEndpoint:
        return _MemoryEndpoint(self, serverFactory, host)

    def connect(self, serverFactory, clientFactory, host: str) -> iosim.IOPump:
        self._port += 1
        clientAddress = IPv4Address("TCP", host, self._port)
        serverAddress = IPv4Address("TCP", "127.0.0.1", 9000)
        server = serverFactory.buildProtocol(clientAddress)
        client = clientFactory.buildProtocol(serverAddress)
        pump = iosim.connect(
            server,
            iosim.FakeTransport(server, True, serverAddress, clientAddress),
            client,
            iosim.FakeTransport(client, False, clientAddress, serverAddress),
            greet=False,
            clock=self.clock,
        )
        self.pumps.append(pump)
        return pump

    def flush(self) -> None:
        """
        Move bytes on every connection until none moves.
        """
        while True:
            moved = [pump.flush() for pump in list(self.pumps)]
            if not any(moved):
                return

    def cut(self, pump: iosim.IOPump) -> None:
        """
        Drop what is in flight on one connection and close it abruptly.
        """
        pump.clientIO.stream = []
        pump.serverIO.stream = []
        pump.clientIO.abortConnection()
        pump.serverIO.abortConnection()

    def pumpFor(self, protocol) -> iosim.IOPump:
        [pump] = [p for p in self.pumps if protocol in (p.client, p.server)]
        return pump


class _MemoryEndpoint:
    def __init__(self, network: MemoryNetwork, serverFactory, host: str) -> None:
        self._network = network
        self._serverFactory = serverFactory
        self._host = host

    def connect(self, factory) -> Deferred:
        pump = self._network.connect(self._serverFactory, factory, self._host)
        return succeed(pump.client)


class MemoryServer:
    """
    A server's directory and port factories over a L{MemoryNetwork}, and a
    client connecting to it.

    @ivar retryPolicy: the client's rejoin delay for each attempt; a
        constant L{RETRY_DELAY} instead of the jittered default, so tests
        know when a rejoin happens.
    """

    def __init__(self, testCase: SynchronousTestCase, channels: int = 4) -> None:
        testCase.patch(asymmetric, "generateExchangeKey", cachedExchangeKey)
        self.retryPolicy = lambda attempt: RETRY_DELAY
        self.clock = task.Clock()
        self.network = MemoryNetwork(self.clock)
        self.serverReceiver = RecordingReceiver()
        self.clientReceiver = RecordingReceiver()
        self.client = cachedIdentity("client")
        self.server = cachedIdentity("server")
        self.directory = SessionDirectory(
            self.clock,
            self.server,
            AuthorizedKeys("authorized_keys", [(self.client.fingerprint, "client")]),
            self.serverReceiver,
            channels,
        )
        self.factories = [
            ServerChannelFactory(self.directory, spec) for spec in channelSpecs(channels)
        ]

    def endpoints(self, host: str = "192.0.2.10") -> list[_MemoryEndpoint]:
        return [self.network.endpoint(factory, host) for factory in self.factories]

    def clientFactory(self) -> ClientSessionFactory:
        return ClientSessionFactory(
            self.clock,
            self.endpoints(),
            self.client,
            PinnedKey(self.server.fingerprint),
            "127.0.0.1:9000",
            receiver=self.clientReceiver,
            retryPolicy=self.retryPolicy,
        )

    def connect(self, testCase: SynchronousTestCase) -> Session:
        connecting = connect(
            self.clock,
            self.endpoints(),
            self.client,
            PinnedKey(self.server.fingerprint),
            "127.0.0.1:9000",
            receiver=self.clientReceiver,
            retryPolicy=self.retryPolicy,
        )
        self.network.flush()
        return testCase.successResultOf(connecting)

    def serverSession(self) -> Session:
        [session] = self.directory.sessions.values()
        return session


class OverChannelsTests(SynchronousTestCase):
    """
    Client and server sessions over real channels, in memory.
    """

    def setUp(self) -> None:
        self.server = MemoryServer(self)
        self.session = self.server.connect(self)
        self.network = self.server.network

    def test_fourChannels(self) -> None:
        """
        L{connect} makes one session of four channels on both ends, each
        with the suite of the default map, each end naming the other by its
        key's fingerprint.
        """
        client = self.session
        server = self.server.serverSession()
        self.assertEqual(client.id, server.id)
        self.assertEqual(sorted(client.channels), [0, 1, 2, 3])
        self.assertEqual(sorted(server.channels), [0, 1, 2, 3])
        for index in range(4):
            self.assertIs(client.channels[index].result.keys.suite, defaultSuiteFor(index))
            self.assertIs(server.channels[index].result.keys.suite, defaultSuiteFor(index))
        self.assertEqual(client.peer, self.server.server.fingerprint)
        self.assertEqual(server.peer, self.server.client.fingerprint)
        self.assertEqual(self.server.directory.pendingHandshakes(), 0)

    def test_messagesBothWays(self) -> None:
        """
        Messages go both ways over the four channels, intact, and each
        sender's Deferred fires once the other end has them.
        """
        upstream = os.urandom(5 * 64 * 1024 + 3)
        sent = self.session.sendMessage(upstream)
        self.network.flush()
        self.successResultOf(sent)
        server = self.server.serverSession()
        self.assertEqual(
            self.server.serverReceiver.messages, [(server, upstream, records.KIND_BINARY)]
        )
        downstream = server.sendMessage(b"reply", records.KIND_TEXT)
        self.network.flush()
        self.successResultOf(downstream)
        self.assertEqual(
            self.server.clientReceiver.messages, [(self.session, b"reply", records.KIND_TEXT)]
        )

    def test_heartbeatAnswered(self) -> None:
        """
        The client's key-confirming C{HBQ:} on each channel was answered:
        every client channel has received a frame.
        """
        for channel in self.session.channels.values():
            self.assertEqual(channel.records.receivedFrames, 1)

    def test_closeEndsBoth(self) -> None:
        """
        L{Session.close} on the client ends the server's session too (it
        got the C{BYE:}, so it does not linger), and every connection
        closes.
        """
        server = self.server.serverSession()
        closing = self.session.close()
        self.network.flush()
        self.assertIsInstance(self.successResultOf(closing), SessionClosed)
        self.assertIsInstance(self.successResultOf(server.whenClosed()), SessionClosed)
        self.assertEqual(self.server.directory.sessions, {})
        self.assertEqual(self.server.clock.getDelayedCalls(), [])
        for pump in self.network.pumps:
            self.assertTrue(pump.client.dead and pump.server.dead)

    def test_channelCutMidMessage(self) -> None:
        """
        T8/T18: one connection cut with fragments in flight; the message
        completes over the others and is delivered once.
        """
        data = os.urandom(8 * 64 * 1024)
        sent = self.session.sendMessage(data)
        self.network.cut(self.network.pumpFor(self.session.channels[1]))
        self.network.flush()
        self.successResultOf(sent)
        self.assertEqual(self.server.serverReceiver.data(), [data])
        self.assertEqual(sorted(self.session.channels), [0, 2, 3])
        self.assertEqual(sorted(self.server.serverSession().channels), [0, 2, 3])

    def test_cutChannelRejoins(self) -> None:
        """
        A cut channel is joined again by the client after its retry delay,
        into the same session on both ends, and carries data again.
        """
        self.network.cut(self.network.pumpFor(self.session.channels[2]))
        self.network.flush()
        self.assertEqual(sorted(self.session.channels), [0, 1, 3])
        self.server.clock.advance(RETRY_DELAY)
        self.network.flush()
        self.assertEqual(sorted(self.session.channels), [0, 1, 2, 3])
        server = self.server.serverSession()
        self.assertEqual(sorted(server.channels), [0, 1, 2, 3])
        self.assertEqual(self.server.directory.sessions, {self.session.id: server})
        sent = self.session.sendMessage(os.urandom(8 * 64 * 1024))
        self.network.flush()
        self.successResultOf(sent)

    def test_allCutClientRejoins(self) -> None:
        """
        Every connection cut: neither session ends.  The server's lingers;
        the client's lingers too and rejoins every channel after its retry
        delay, so a message sent during the outage is delivered once, and
        both ends keep their session.

        Changed: the client session used to end at once when its last
        channel dropped.
        """
        clientClosed = self.session.whenClosed()
        server = self.server.serverSession()
        for pump in list(self.network.pumps):
            self.network.cut(pump)
        self.network.flush()
        self.assertNoResult(clientClosed)
        self.assertEqual(self.session.channels, {})
        self.assertIsNone(server.closedReason)
        sent = self.session.sendMessage(b"during the outage")
        self.server.clock.advance(RETRY_DELAY)
        self.network.flush()
        self.successResultOf(sent)
        self.assertEqual(self.server.serverReceiver.data(), [b"during the outage"])
        self.assertEqual(sorted(self.session.channels), [0, 1, 2, 3])
        self.assertEqual(sorted(server.channels), [0, 1, 2, 3])
        self.server.clock.advance(DEFAULT_LINGER)
        self.assertNoResult(clientClosed)
        self.assertIsNone(server.closedReason)

    def test_allCutServerGone(self) -> None:
        """
        Every connection cut and the server's session gone: the first
        refused rejoin ends the client's session with L{SessionReset} (a
        caller may start a new one), long before its linger, and no retry
        stays scheduled.
        """
        clientClosed = self.session.whenClosed()
        server = self.server.serverSession()
        for pump in list(self.network.pumps):
            self.network.cut(pump)
        self.network.flush()
        server.terminate(records.BYE_SHUTTING_DOWN, "gone")
        self.assertEqual(self.server.directory.sessions, {})
        attempts = 0
        while self.session.closedReason is None:
            before = len(self.network.pumps)
            self.server.clock.advance(RETRY_DELAY)
            self.network.flush()
            attempts += len(self.network.pumps) > before
            self.assertEqual(self.session.channels, {})
        self.assertIsInstance(self.successResultOf(clientClosed), SessionReset)
        self.assertEqual(attempts, 1)
        self.assertEqual(self.server.directory.sessions, {})
        self.server.directory.preAuthLog.flush()
        self.assertEqual(self.server.clock.getDelayedCalls(), [])


class JoinTests(SynchronousTestCase):
    """
    Joining and replacing connections with real handshakes.
    """

    def setUp(self) -> None:
        self.server = MemoryServer(self)
        self.network = self.server.network
        self.factory = self.server.clientFactory()
        opening = self.factory.openChannel(0)
        self.network.flush()
        self.successResultOf(opening)
        self.session = self.factory.session

    def join(self, index: int):
        joining = self.factory.openChannel(index)
        self.network.flush()
        return self.successResultOf(joining)

    def test_rejoinAfterCut(self) -> None:
        """
        A cut channel rejoins the same session and carries data again.
        """
        first = self.join(1)
        self.network.cut(self.network.pumpFor(first))
        self.network.flush()
        self.assertEqual(sorted(self.session.channels), [0])
        second = self.join(1)
        server = self.server.serverSession()
        self.assertEqual(sorted(server.channels), [0, 1])
        self.assertIs(server.channels[1], self.network.pumpFor(second).server)
        sent = self.session.sendMessage(b"j" * (4 * 64 * 1024))
        self.network.flush()
        self.successResultOf(sent)

    def test_replace(self) -> None:
        """
        A second connection joined on a live index replaces the first once
        confirmed: the old connection closes on both ends, the session
        goes on.
        """
        old = self.join(1)
        oldServer = self.network.pumpFor(old).server
        new = self.join(1)
        server = self.server.serverSession()
        self.assertIs(server.channels[1], self.network.pumpFor(new).server)
        self.assertIs(self.session.channels[1], new)
        self.assertTrue(old.dead and oldServer.dead)
        self.assertIsNone(server.closedReason)
        self.assertIsNone(self.session.closedReason)
        sent = self.session.sendMessage(b"after")
        self.network.flush()
        self.successResultOf(sent)
        self.assertEqual(self.server.serverReceiver.data(), [b"after"])
