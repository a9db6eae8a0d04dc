# -*- test-case-name: tests.test_handshake -*-
"""
The SPC/1 handshake, one sans-IO machine per role.

The user's three steps stay: the server sends its cipher choice and RSA
public key (F1), the client answers with a secret encrypted to that key plus
its own public key (F2), and the server takes the secret and the channel is
up (F3).  Each step gained what makes it sound: X25519 shares mixed into
every key (forward secrecy), a client signature over the transcript (the
client proves its key), a Finished MAC only the holder of the server's key
can compute (the server proves its key), and a pinned server key (no
man in the middle).

Bytes are parsed and checked in plain code first; the machines only ever
see frames that passed (C{gotGood...}) or a reason to stop (C{gotBad}).
They have no sockets and no clocks: the channel protocol feeds them frames
and timeouts and implements the small owner interfaces below.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Callable, NamedTuple, Protocol

from automat import MethodicalMachine
from cryptography.hazmat.primitives.asymmetric import rsa

from spc import asymmetric, identity, keyschedule, wire
from spc.errors import (
    BadPublicKey,
    ClientNotAuthorized,
    ConfigurationError,
    HandshakeRefused,
    ProtocolError,
    ServerBusy,
    SPCError,
)
from spc.suites import RecordCipher, Suite, suiteByID

__all__ = [
    "ChannelSpec",
    "ClientHandshake",
    "ClientResult",
    "ConnectionKeys",
    "JoinTarget",
    "JoinTicket",
    "ServerHandshake",
    "ServerResult",
    "checkParams",
    "refusalFor",
]

CLIENT_AUTH_CONTEXT = b"SPC/1 client auth\x00"
HANDSHAKE_OAEP_LABEL = b"SPC/1 hs oaep"
SECRET_SIZE = 32

# Bounds a client accepts for the parameters a server announces (A7).
MIN_HEARTBEAT_MS = 100
MAX_HEARTBEAT_MS = 60_000
MAX_MISS_LIMIT = 100
MAX_MESSAGE_SIZE = 1 << 40
MAX_INFLIGHT = 1024


def _h(*parts: bytes) -> bytes:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.digest()


def _mac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


class ChannelSpec(NamedTuple):
    """
    What both sides configure for one port: they must agree, and nothing
    here is negotiated.

    @ivar channel: the port's index in the configured list.
    @ivar channelCount: how many ports the session spans.
    @ivar suite: the port's cipher suite.
    """

    channel: int
    channelCount: int
    suite: Suite


class ConnectionKeys:
    """
    What a finished handshake leaves one connection: the secret from which
    its traffic keys for every epoch are derived.

    @ivar session: the session id.
    @ivar suite: the connection's suite.
    @ivar channel: its channel index.
    """

    __slots__ = ("session", "suite", "channel", "_thConn", "_secret")

    def __init__(
        self, session: bytes, suite: Suite, channel: int, thConn: bytes, secret: bytes
    ) -> None:
        self.session = session
        self.suite = suite
        self.channel = channel
        self._thConn = thConn
        self._secret = secret

    def ciphers(
        self, epochSecret: bytes, isServer: bool
    ) -> tuple[RecordCipher, RecordCipher]:
        """
        The (send, receive) ciphers of this connection under one epoch.
        """
        suite = self.suite
        made = []
        for direction in (keyschedule.SERVER_TO_CLIENT, keyschedule.CLIENT_TO_SERVER):
            secrets = keyschedule.trafficSecrets(
                epochSecret, self._secret, suite.suiteID, self.channel, direction,
                self._thConn, suite.keyLength, suite.ivLength,
            )
            made.append(suite.cipher(secrets.key, secrets.iv))
        serverToClient, clientToServer = made
        if isServer:
            return serverToClient, clientToServer
        return clientToServer, serverToClient

    def __repr__(self) -> str:
        return f"<ConnectionKeys channel={self.channel} (redacted)>"


def _suiteName(suiteID: int) -> str:
    try:
        return suiteByID(suiteID).name
    except KeyError:
        return f"unknown suite 0x{suiteID:02x}"


def checkParams(params: wire.Params) -> None:
    """
    Refuse session parameters no sane server sends, before they size any
    buffer or timer.

    @raise ProtocolError: naming the parameter.
    """
    problems = []
    if not MIN_HEARTBEAT_MS <= params.heartbeatInterval <= MAX_HEARTBEAT_MS:
        problems.append("heartbeat interval")
    if not 1 <= params.heartbeatMissLimit <= MAX_MISS_LIMIT:
        problems.append("heartbeat miss limit")
    if params.rotationInterval <= params.ackTimeout + params.overlap:
        problems.append("rotation interval")
    if not wire.MIN_FRAGMENT_SIZE <= params.fragmentSize <= wire.MAX_FRAGMENT_SIZE:
        problems.append("fragment size")
    if params.maxInner != wire.maxInnerSize(params.fragmentSize):
        problems.append("inner size")
    if not 1 <= params.maxMessageSize <= MAX_MESSAGE_SIZE:
        problems.append("message size")
    if not 1 <= params.maxInflightMessages <= MAX_INFLIGHT:
        problems.append("in-flight messages")
    if params.reassemblyBudget < params.fragmentSize:
        problems.append("reassembly budget")
    if problems:
        raise ProtocolError("unacceptable session parameters: " + ", ".join(problems))


def refusalFor(alertCode: int) -> SPCError:
    """
    The error a client reports for a server's alert.  Alerts are not
    authenticated, so they only ever stop a handshake, never start anything.
    """
    if alertCode == wire.ALERT_HANDSHAKE_FAILURE:
        return ClientNotAuthorized()
    if alertCode == wire.ALERT_BUSY:
        return ServerBusy()
    if alertCode == wire.ALERT_TIMEOUT:
        return HandshakeRefused("the server timed the handshake out")
    return HandshakeRefused("the server supports no protocol version this client speaks")


# The server.


class JoinTarget(NamedTuple):
    """
    What the server's session directory tells a joining handshake.

    @ivar joinSecret: S_e of the epoch the client named.
    @ivar epoch: the session's committed epoch E, announced in F3.
    @ivar params: the session's parameters.
    """

    joinSecret: bytes
    epoch: int
    params: wire.Params


class ServerResult(NamedTuple):
    """
    A client the server accepted on this connection.

    @ivar session: the session id (new, or the one joined).
    @ivar isNew: whether this handshake created the session.
    @ivar fingerprint: the client identity's fingerprint.
    @ivar exchangeKey: the client's RSA exchange key, for rotation offers.
    @ivar exchangeKeyDER: the same, as sent.
    @ivar epoch: the epoch the connection starts in.
    @ivar epochSecret: S_0 for a new session; C{None} for a join.
    @ivar params: the session parameters.
    @ivar keys: the connection's keys.
    """

    session: bytes
    isNew: bool
    fingerprint: str
    exchangeKey: rsa.RSAPublicKey
    exchangeKeyDER: bytes
    epoch: int
    epochSecret: bytes | None
    params: wire.Params
    keys: ConnectionKeys


class ServerDirectory(Protocol):
    """
    What the server handshake asks of the daemon: authorization, limits
    and the sessions that connections may join.
    """

    def isAuthorized(self, fingerprint: str) -> bool:
        ...

    def admitNewSession(self, fingerprint: str) -> bool:
        ...

    def admitJoin(self, session: bytes) -> bool:
        ...

    def admitPrivateOperation(self) -> bool:
        ...

    def joinTarget(
        self, session: bytes, fingerprint: str, exchangeKey: bytes, epoch: int
    ) -> JoinTarget | None:
        ...

    def sessionExists(self, session: bytes) -> bool:
        ...


class ServerOwner(Protocol):
    """
    The connection that carries a server handshake.
    """

    def sendFrame(self, body: bytes) -> None:
        ...

    def handshakeSucceeded(self, result: ServerResult) -> None:
        ...

    def handshakeFailed(self, alertCode: int, reason: str) -> None:
        """
        Send the alert, log the reason (never to the peer), and close.
        """


class _Refusal(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class _Accepted(NamedTuple):
    session: bytes
    fingerprint: str
    exchangeKey: rsa.RSAPublicKey
    exchangeKeyDER: bytes
    th2Input: bytes
    secret: bytes
    join: JoinTarget | None


class ServerHandshake:
    """
    The server's side of one connection's handshake.

    The order of checks is the security argument: strict parse, then the
    client's signature (a public-key operation), then authorization and
    limits, and only then the one private-key operation; every refusal
    before that point costs the server no private-key work and tells the
    client only "handshake failure".
    """

    _machine = MethodicalMachine()

    def __init__(
        self,
        spec: ChannelSpec,
        hostKey: rsa.RSAPrivateKey,
        hostKeyDER: bytes,
        params: wire.Params,
        directory: ServerDirectory,
        owner: ServerOwner,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._spec = spec
        self._hostKey = hostKey
        self._hostKeyDER = hostKeyDER
        self._params = params
        self._directory = directory
        self._owner = owner
        self._random = random
        self._ephemeral: asymmetric.Ephemeral | None = None
        self._helloFrame = b""

    # Inputs.

    @_machine.input()
    def start(self) -> None:
        "The connection is up: say hello."

    @_machine.input()
    def gotGoodAuth(self, accepted: _Accepted) -> None:
        "A CLIENT_AUTH passed every check."

    @_machine.input()
    def gotBad(self, code: int, reason: str) -> None:
        "The peer sent something that ends the handshake."

    @_machine.input()
    def timedOut(self) -> None:
        "The peer took too long."

    def frameReceived(self, body: bytes) -> None:
        """
        Parse and check one pre-authentication frame, then feed the machine.
        """
        try:
            accepted = self._check(body)
        except _Refusal as refusal:
            self.gotBad(refusal.code, refusal.reason)
        except SPCError as error:
            self.gotBad(wire.ALERT_HANDSHAKE_FAILURE, str(error))
        else:
            self.gotGoodAuth(accepted)

    # States.

    @_machine.state(initial=True)
    def idle(self) -> None:
        "Nothing sent yet."

    @_machine.state()
    def awaitingAuth(self) -> None:
        "F1 sent; the client's F2 is due."

    @_machine.state()
    def established(self) -> None:
        "F3 sent: the connection belongs to a session."

    @_machine.state()
    def closed(self) -> None:
        "The handshake failed; the connection is being closed."

    # Outputs.

    @_machine.output()
    def _sendHello(self) -> None:
        self._ephemeral = asymmetric.Ephemeral()
        hello = wire.ServerHello(
            versions=wire.SUPPORTED_VERSIONS,
            suite=self._spec.suite.suiteID,
            channel=self._spec.channel,
            channelCount=self._spec.channelCount,
            nonce=self._random(wire.NONCE_SIZE),
            ephemeral=self._ephemeral.public,
            hostKey=self._hostKeyDER,
        ).encode()
        self._helloFrame = wire.framed(hello)
        self._owner.sendFrame(hello)

    @_machine.output()
    def _finish(self, accepted: _Accepted) -> None:
        self._owner.handshakeSucceeded(self._finishWith(accepted))

    @_machine.output()
    def _refuse(self, code: int, reason: str) -> None:
        self._forget()
        self._owner.handshakeFailed(code, reason)

    @_machine.output()
    def _timeOut(self) -> None:
        self._forget()
        self._owner.handshakeFailed(wire.ALERT_TIMEOUT, "handshake timed out")

    idle.upon(start, enter=awaitingAuth, outputs=[_sendHello])
    idle.upon(gotBad, enter=closed, outputs=[_refuse])
    idle.upon(timedOut, enter=closed, outputs=[_timeOut])
    awaitingAuth.upon(gotGoodAuth, enter=established, outputs=[_finish])
    awaitingAuth.upon(gotBad, enter=closed, outputs=[_refuse])
    awaitingAuth.upon(timedOut, enter=closed, outputs=[_timeOut])
    established.upon(gotBad, enter=closed, outputs=[_refuse])
    established.upon(timedOut, enter=established, outputs=[])
    closed.upon(gotBad, enter=closed, outputs=[])
    closed.upon(timedOut, enter=closed, outputs=[])

    # Plain code: the checks, in their security order.

    def _forget(self) -> None:
        self._ephemeral = None

    def _check(self, body: bytes) -> _Accepted:
        if self._ephemeral is None:
            raise ProtocolError("frame before or after the handshake")
        frame = wire.decodeHandshake(body)
        if not isinstance(frame, wire.ClientAuth):
            raise ProtocolError("expected CLIENT_AUTH")
        if frame.version not in wire.SUPPORTED_VERSIONS:
            raise _Refusal(wire.ALERT_UNSUPPORTED_VERSION, "unsupported version")
        identityKey = identity.loadPublicKey(frame.identityKey)
        exchangeKey = identity.loadPublicKey(frame.exchangeKey)
        if exchangeKey.key_size != asymmetric.EXCHANGE_KEY_BITS:
            raise BadPublicKey("exchange key must be RSA-2048")
        if frame.identityKey == frame.exchangeKey:
            raise BadPublicKey("identity and exchange keys are the same key")
        authFrame = wire.framed(body)
        signed = self._signedData(frame, body)
        if not asymmetric.verify(identityKey, frame.signature, signed):
            raise _Refusal(wire.ALERT_HANDSHAKE_FAILURE, "bad client signature")
        fingerprint = identity.fingerprint(frame.identityKey)
        if not self._directory.isAuthorized(fingerprint):
            raise _Refusal(
                wire.ALERT_HANDSHAKE_FAILURE, f"client {fingerprint} is not authorized"
            )
        join = None
        if frame.session == wire.NEW_SESSION:
            if not self._directory.admitNewSession(fingerprint):
                raise _Refusal(wire.ALERT_BUSY, f"new-session limit for {fingerprint}")
        else:
            join = self._directory.joinTarget(
                frame.session, fingerprint, frame.exchangeKey, frame.epoch
            )
            if join is None:
                raise _Refusal(wire.ALERT_HANDSHAKE_FAILURE, "no such session to join")
            if not self._directory.admitJoin(frame.session):
                raise _Refusal(wire.ALERT_BUSY, "join limit for the session")
        if not self._directory.admitPrivateOperation():
            raise _Refusal(wire.ALERT_BUSY, "private-key operation limit")
        try:
            secret = asymmetric.decrypt(
                self._hostKey,
                frame.encryptedSecret,
                HANDSHAKE_OAEP_LABEL + _h(self._helloFrame),
            )
        except ValueError:
            raise _Refusal(wire.ALERT_HANDSHAKE_FAILURE, "undecryptable secret") from None
        if len(secret) != SECRET_SIZE:
            raise _Refusal(wire.ALERT_HANDSHAKE_FAILURE, "secret of the wrong size")
        ephemeral, self._ephemeral = self._ephemeral, None
        try:
            shared = ephemeral.exchange(frame.ephemeral)
        except ValueError:
            raise _Refusal(wire.ALERT_HANDSHAKE_FAILURE, "bad X25519 share") from None
        th2Input = self._helloFrame + authFrame
        if join is None:
            keySecret = keyschedule.handshakeSecret(shared, secret)
            session = keyschedule.sessionID(keySecret, _h(th2Input))
            if session == wire.NEW_SESSION or self._directory.sessionExists(session):
                raise _Refusal(wire.ALERT_HANDSHAKE_FAILURE, "session id collision")
        else:
            session = frame.session
            keySecret = keyschedule.joinSecret(
                join.joinSecret, session, frame.epoch, shared, secret
            )
        return _Accepted(
            session, fingerprint, exchangeKey, frame.exchangeKey, th2Input, keySecret, join
        )

    def _signedData(self, frame: wire.ClientAuth, body: bytes) -> bytes:
        unsigned = body[: len(body) - 2 - len(frame.signature)]
        return CLIENT_AUTH_CONTEXT + _h(
            self._helloFrame, wire.LENGTH.pack(len(body)), unsigned
        )

    def _finishWith(self, accepted: _Accepted) -> ServerResult:
        isNew = accepted.join is None
        epoch, params = (0, self._params) if isNew else accepted.join[1:]
        th2 = _h(accepted.th2Input)
        unsigned = wire.ServerFinished(accepted.session, epoch, params, b"").unsigned()
        body = unsigned + _mac(
            keyschedule.finishedKey(accepted.secret, th2),
            _h(
                accepted.th2Input,
                wire.LENGTH.pack(len(unsigned) + wire.MAC_SIZE),
                unsigned,
            ),
        )
        thConn = _h(accepted.th2Input, wire.framed(body))
        self._owner.sendFrame(body)
        keys = ConnectionKeys(
            accepted.session,
            self._spec.suite,
            self._spec.channel,
            thConn,
            keyschedule.connectionSecret(accepted.secret, thConn),
        )
        return ServerResult(
            accepted.session,
            isNew,
            accepted.fingerprint,
            accepted.exchangeKey,
            accepted.exchangeKeyDER,
            epoch,
            keyschedule.initialEpochSecret(accepted.secret, thConn) if isNew else None,
            params,
            keys,
        )


# The client.


class JoinTicket(NamedTuple):
    """
    What a client needs to add a connection to its session.

    @ivar session: the session id.
    @ivar epoch: the client's committed epoch e.
    @ivar epochSecret: S_e.
    @ivar serverKey: the server key the session was made with, as DER.
    @ivar params: the session's parameters.
    @ivar acceptableEpochs: epochs F3 may announce (e and any pending one).
    """

    session: bytes
    epoch: int
    epochSecret: bytes
    serverKey: bytes
    params: wire.Params
    acceptableEpochs: frozenset[int]


class ClientResult(NamedTuple):
    """
    The client's view of a finished handshake.

    @ivar session: the session id.
    @ivar isNew: whether this handshake created the session.
    @ivar epoch: the epoch F3 announced.
    @ivar epochSecret: S_0 for a new session; C{None} for a join.
    @ivar params: the session parameters.
    @ivar serverKey: the server's host key, as DER.
    @ivar serverFingerprint: its fingerprint.
    @ivar keys: the connection's keys.
    """

    session: bytes
    isNew: bool
    epoch: int
    epochSecret: bytes | None
    params: wire.Params
    serverKey: bytes
    serverFingerprint: str
    keys: ConnectionKeys


class ClientOwner(Protocol):
    """
    The connection that carries a client handshake.
    """

    def sendFrame(self, body: bytes) -> None:
        ...

    def handshakeSucceeded(self, result: ClientResult) -> None:
        ...

    def handshakeFailed(self, error: SPCError) -> None:
        """
        Close the connection and report C{error}.
        """


class _Answer(NamedTuple):
    hello: wire.ServerHello
    body: bytes
    th2Input: bytes
    secret: bytes
    fingerprint: str


class ClientHandshake:
    """
    The client's side of one connection's handshake.

    @ivar _verifyServerKey: called with the server's fingerprint before
        anything secret is sent; raises L{spc.errors.TrustError} to stop.
    """

    _machine = MethodicalMachine()

    def __init__(
        self,
        spec: ChannelSpec,
        identityKey: rsa.RSAPrivateKey,
        identityKeyDER: bytes,
        exchangeKeyDER: bytes,
        verifyServerKey: Callable[[str], None],
        owner: ClientOwner,
        join: JoinTicket | None = None,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._spec = spec
        self._identityKey = identityKey
        self._identityKeyDER = identityKeyDER
        self._exchangeKeyDER = exchangeKeyDER
        self._verifyServerKey = verifyServerKey
        self._owner = owner
        self._join = join
        self._random = random
        self._answer: _Answer | None = None

    @_machine.input()
    def gotGoodHello(self, answer: _Answer) -> None:
        "F1 checked out and F2 is ready."

    @_machine.input()
    def gotGoodFinished(self, result: ClientResult) -> None:
        "F3 checked out."

    @_machine.input()
    def gotBad(self, error: SPCError) -> None:
        "Something ends the handshake."

    @_machine.input()
    def timedOut(self) -> None:
        "The server took too long."

    def frameReceived(self, body: bytes) -> None:
        """
        Parse and check one pre-authentication frame, then feed the machine.
        """
        try:
            frame = wire.decodeHandshake(body)
            if isinstance(frame, wire.Alert):
                raise refusalFor(frame.code)
            if isinstance(frame, wire.ServerHello) and self._answer is None:
                self.gotGoodHello(self._answerHello(frame))
            elif isinstance(frame, wire.ServerFinished) and self._answer is not None:
                self.gotGoodFinished(self._checkFinished(frame, body))
            else:
                raise ProtocolError("unexpected handshake frame")
        except SPCError as error:
            self.gotBad(error)

    @_machine.state(initial=True)
    def awaitingHello(self) -> None:
        "Connected; the server speaks first."

    @_machine.state()
    def awaitingFinished(self) -> None:
        "F2 sent."

    @_machine.state()
    def established(self) -> None:
        "The connection has keys."

    @_machine.state()
    def closed(self) -> None:
        "The handshake failed."

    @_machine.output()
    def _sendAuth(self, answer: _Answer) -> None:
        self._answer = answer
        self._owner.sendFrame(answer.body)

    @_machine.output()
    def _succeed(self, result: ClientResult) -> None:
        self._answer = None
        self._owner.handshakeSucceeded(result)

    @_machine.output()
    def _fail(self, error: SPCError) -> None:
        self._answer = None
        self._owner.handshakeFailed(error)

    @_machine.output()
    def _timeOut(self) -> None:
        self._answer = None
        self._owner.handshakeFailed(
            ProtocolError("the server did not complete the handshake in time")
        )

    awaitingHello.upon(gotGoodHello, enter=awaitingFinished, outputs=[_sendAuth])
    awaitingHello.upon(gotBad, enter=closed, outputs=[_fail])
    awaitingHello.upon(timedOut, enter=closed, outputs=[_timeOut])
    awaitingFinished.upon(gotGoodFinished, enter=established, outputs=[_succeed])
    awaitingFinished.upon(gotBad, enter=closed, outputs=[_fail])
    awaitingFinished.upon(timedOut, enter=closed, outputs=[_timeOut])
    established.upon(gotBad, enter=closed, outputs=[_fail])
    established.upon(timedOut, enter=established, outputs=[])
    closed.upon(gotBad, enter=closed, outputs=[])
    closed.upon(timedOut, enter=closed, outputs=[])

    def _answerHello(self, hello: wire.ServerHello) -> _Answer:
        common = set(hello.versions) & set(wire.SUPPORTED_VERSIONS)
        if not common:
            raise ProtocolError("the server supports no version this client speaks")
        spec = self._spec
        if (hello.channel, hello.channelCount, hello.suite) != (
            spec.channel,
            spec.channelCount,
            spec.suite.suiteID,
        ):
            raise ConfigurationError(
                f"the server's port {hello.channel} of {hello.channelCount} uses "
                f"{_suiteName(hello.suite)}; this client expected port "
                f"{spec.channel} of {spec.channelCount} with {spec.suite.name} "
                "(both ends need the same ports and --suites)"
            )
        serverKey = identity.loadPublicKey(hello.hostKey)
        fingerprint = identity.fingerprint(hello.hostKey)
        if self._join is not None:
            if not hmac.compare_digest(hello.hostKey, self._join.serverKey):
                raise ProtocolError("the server key changed within a session")
        else:
            self._verifyServerKey(fingerprint)
        helloFrame = wire.framed(hello.encode())
        ephemeral = asymmetric.Ephemeral()
        secret = self._random(SECRET_SIZE)
        join = self._join
        auth = wire.ClientAuth(
            version=max(common),
            nonce=self._random(wire.NONCE_SIZE),
            session=join.session if join else wire.NEW_SESSION,
            epoch=join.epoch if join else 0,
            ephemeral=ephemeral.public,
            identityKey=self._identityKeyDER,
            exchangeKey=self._exchangeKeyDER,
            encryptedSecret=asymmetric.encrypt(
                serverKey, secret, HANDSHAKE_OAEP_LABEL + _h(helloFrame)
            ),
            signature=b"",
        )
        unsigned = auth.unsigned()
        signedLength = len(unsigned) + 2 + (self._identityKey.key_size + 7) // 8
        signature = asymmetric.sign(
            self._identityKey,
            CLIENT_AUTH_CONTEXT + _h(helloFrame, wire.LENGTH.pack(signedLength), unsigned),
        )
        body = auth._replace(signature=signature).encode()
        try:
            shared = ephemeral.exchange(hello.ephemeral)
        except ValueError:
            raise ProtocolError("the server's X25519 share is invalid") from None
        if join is None:
            keySecret = keyschedule.handshakeSecret(shared, secret)
        else:
            keySecret = keyschedule.joinSecret(
                join.epochSecret, join.session, join.epoch, shared, secret
            )
        return _Answer(hello, body, helloFrame + wire.framed(body), keySecret, fingerprint)

    def _checkFinished(self, finished: wire.ServerFinished, body: bytes) -> ClientResult:
        answer = self._answer
        th2 = _h(answer.th2Input)
        unsigned = body[: len(body) - wire.MAC_SIZE]
        expected = _mac(
            keyschedule.finishedKey(answer.secret, th2),
            _h(answer.th2Input, wire.LENGTH.pack(len(body)), unsigned),
        )
        if not hmac.compare_digest(expected, finished.mac):
            raise ProtocolError("the server's Finished MAC is wrong")
        join = self._join
        if join is None:
            if finished.session != keyschedule.sessionID(answer.secret, th2):
                raise ProtocolError("the server announced the wrong session id")
            if finished.epoch != 0:
                raise ProtocolError("a new session must start at epoch 0")
        else:
            if finished.session != join.session or finished.params != join.params:
                raise ProtocolError("the server changed the session in a join")
            if finished.epoch < join.epoch:
                raise ProtocolError("the server went back to an older epoch")
            if finished.epoch not in join.acceptableEpochs:
                raise ProtocolError("the session moved on to an epoch this client lacks")
        checkParams(finished.params)
        thConn = _h(answer.th2Input, wire.framed(body))
        keys = ConnectionKeys(
            finished.session,
            self._spec.suite,
            self._spec.channel,
            thConn,
            keyschedule.connectionSecret(answer.secret, thConn),
        )
        return ClientResult(
            finished.session,
            join is None,
            finished.epoch,
            keyschedule.initialEpochSecret(answer.secret, thConn) if join is None else None,
            finished.params,
            answer.hello.hostKey,
            answer.fingerprint,
            keys,
        )
