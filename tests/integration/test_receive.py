"""
End-to-end tests of pairing with a one-time code (issue 13): the real
daemon, C{spc invite}, C{spc pair}, C{spc receive} and C{spc send --code},
each in its own process on loopback, with no fingerprint typed anywhere.
"""

from __future__ import annotations

import os
import re

from twisted.internet import protocol, reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, connectProtocol
from twisted.internet.task import deferLater

from spc.keys.trust import AuthorizedKeys, KnownHosts
from spc.protocol import frames
from tests.integration.test_endtoend import (
    READY_TIMEOUT,
    SPC,
    EndToEndTestCase,
    freePorts,
    sharedIdentity,
    signal,
    spawn,
)
from tests.files import shortTemporaryDirectory

CODE = re.compile(r"\b(\d+-[a-z]+-[a-z]+(?:-[a-z]+)?)\b")


def codeIn(text: str) -> str:
    return CODE.search(text).group(1)


def wrongWords(code: str) -> str:
    """
    The same slot with other words.
    """
    slot, first, second = code.split("-")[:3]
    return f"{slot}-{'zinc' if first != 'zinc' else 'zebra'}-{second}"


class PairingTestCase(EndToEndTestCase):
    """
    A daemon with no authorized_keys, and a sender whose key directory is
    empty: its key is made on first use.
    """

    def setUp(self) -> None:
        super().setUp()
        self.useSenderKeys(self.makeKeyDir("sender"))
        self.authorized = os.path.join(self.serverKeys, "authorized_keys")
        self.socket = os.path.join(shortTemporaryDirectory(self), "control.sock")

    def useSenderKeys(self, keyDir: str) -> None:
        self.senderKeys = keyDir
        self.knownHosts = os.path.join(keyDir, "known_hosts")

    def startDaemon(self, *extra: str, **kw):
        return super().startDaemon("--control-socket", self.socket, *extra, **kw)

    def invite(self, *extra: str):
        return self.spc("invite", "--socket", self.socket, *extra)

    def pair(self, code: str, port: int | None = None):
        server = f"{self.server}:{port or self.ports[0]}"
        return self.spc("pair", "--key-dir", self.senderKeys, "--server", server, code)

    def assertNothingTrusted(self) -> None:
        """
        Neither side wrote a trust file.
        """
        self.assertFalse(os.path.exists(self.authorized))
        self.assertFalse(os.path.exists(self.knownHosts))


class InviteTests(PairingTestCase):
    """
    C{spc invite} on the daemon's machine, C{spc pair} on the sender's.
    """

    @inlineCallbacks
    def test_inviteThenSend(self):
        """
        invite, pair, send: the daemon lists the sender under the invite's
        name, the sender (whose key is made on first use) pinned the
        daemon's key, and a plain C{spc send} then delivers with no
        fingerprint given.
        """
        self.useSenderKeys(os.path.join(self.root, "fresh"))
        daemon = yield self.startDaemon()
        invited = yield self.invite("--name", "alice")
        self.assertEqual(invited.code, 0, invited)
        self.assertIn(f"spc pair --server {self.server}:{self.ports[0]} ", invited.out)
        paired = yield self.pair(codeIn(invited.out))
        self.assertEqual(paired.code, 0, paired)
        self.assertIn(self.serverFingerprint, paired.out)
        self.assertIn('as "alice"', paired.out)
        [(fingerprint, name)] = AuthorizedKeys.fromFile(self.authorized)._entries
        self.assertEqual(name, "alice")
        self.assertIn(fingerprint, paired.out + paired.err)
        known = KnownHosts.fromFile(self.knownHosts)
        self.assertEqual(known.lookup(f"{self.server}:{self.ports[0]}"), self.serverFingerprint)
        sent = yield self.send("hello after pairing", keyDir=self.senderKeys, pin=False)
        self.assertDelivered(sent, 1)
        [record] = self.storedMessages()
        self.assertEqual((record["from"], record["text"]), (fingerprint, "hello after pairing"))
        self.assertIn("Paired " + fingerprint, daemon.output.log)

    @inlineCallbacks
    def test_wrongCodeBurns(self):
        """
        A wrong code fails with one line, and uses the invite up: the right
        code then finds no invite.  Nothing is trusted on either side.
        """
        daemon = yield self.startDaemon()
        invited = yield self.invite()
        code = codeIn(invited.out)
        wrong = yield self.pair(wrongWords(code))
        self.assertFailed(wrong, 3, "does not match", "used up")
        right = yield self.pair(code)
        self.assertFailed(right, 3, "no open invite numbered")
        self.assertNothingTrusted()
        self.assertIn("the code was wrong; the invite is used up", daemon.output.log)

    @inlineCallbacks
    def test_expired(self):
        """
        A code used after its time fails with one line.
        """
        daemon = yield self.startDaemon()
        invited = yield self.invite("--expires", "1s")
        yield deferLater(reactor, 1.5, lambda: None)
        late = yield self.pair(codeIn(invited.out))
        self.assertFailed(late, 3, "no open invite numbered", "expired")
        self.assertNothingTrusted()
        self.assertIn("expired unused", daemon.output.log)

    @inlineCallbacks
    def test_noDaemon(self):
        """
        With no daemon running, C{spc invite} says so.
        """
        result = yield self.invite()
        self.assertFailed(result, 1, "No spc daemon answers")


class _Relay(protocol.Protocol):
    """
    A man in the middle's end toward the client: it relays every frame to
    the daemon and back, but shows the client another host key in F1.
    """

    def __init__(self, target: int, fakeKey: bytes) -> None:
        self._target = target
        self._fakeKey = fakeKey
        self._buffer = b""
        self._server = None

    def connectionMade(self) -> None:
        self.transport.pauseProducing()
        toServer = _ToServer(self)
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self._target)
        connected = connectProtocol(endpoint, toServer)
        connected.addCallback(self._connected)

    def _connected(self, server) -> None:
        self._server = server
        self.transport.resumeProducing()

    def dataReceived(self, data: bytes) -> None:
        self._server.transport.write(data)

    def fromServer(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= 4:
            length = frames.LENGTH.unpack_from(self._buffer)[0]
            if len(self._buffer) < 4 + length:
                return
            body, self._buffer = self._buffer[4 : 4 + length], self._buffer[4 + length :]
            if body[1] == frames.SERVER_HELLO:
                hello = frames.ServerHello.decode(body)
                body = hello._replace(hostKey=self._fakeKey).encode()
            self.transport.write(frames.framed(body))

    def connectionLost(self, reason=None) -> None:
        if self._server is not None:
            self._server.transport.loseConnection()


class _ToServer(protocol.Protocol):
    def __init__(self, relay: _Relay) -> None:
        self._relay = relay

    def dataReceived(self, data: bytes) -> None:
        self._relay.fromServer(data)

    def connectionLost(self, reason=None) -> None:
        self._relay.transport.loseConnection()


class ManInTheMiddleTests(PairingTestCase):
    """
    Someone who relays the pairing without knowing the code gains neither
    side's trust.
    """

    @inlineCallbacks
    def test_relayWithoutCode(self):
        """
        A relay that shows the sender its own key in F1 and passes the PAIR
        frames on: the daemon finds the transcripts differ and refuses, the
        sender refuses, and nothing is written to authorized_keys or
        known_hosts.
        """
        daemon = yield self.startDaemon()
        [proxyPort] = freePorts(1)
        fake = sharedIdentity("client").publicDER
        factory = protocol.Factory.forProtocol(lambda: _Relay(self.ports[0], fake))
        listening = yield TCP4ServerEndpoint(reactor, proxyPort, interface="127.0.0.1").listen(
            factory
        )
        self.addCleanup(listening.stopListening)
        invited = yield self.invite()
        result = yield self.pair(codeIn(invited.out), port=proxyPort)
        self.assertFailed(result, 3, "The pairing failed")
        self.assertNothingTrusted()
        self.assertIn("a man in the middle?", daemon.output.log)
        right = yield self.pair(codeIn(invited.out))
        self.assertFailed(right, 3, "no open invite numbered")


class ReceiveTests(PairingTestCase):
    """
    C{spc receive} on one machine, C{spc send --code} on the other.
    """

    def receive(self, *extra: str):
        """
        Start C{spc receive} into C{ROOT/received} on the test's ports.

        @return: its output and transport.
        """
        self.received = os.path.join(self.root, "received")
        os.makedirs(self.received)
        args = [
            "receive", "--dir", self.received, "--port", str(self.ports[0]),
            "--channels", str(len(self.ports)), "--interface", self.server, *extra,
        ]
        output, transport = spawn(SPC + args, self.root, self.env)
        self.addCleanup(signal, transport, "KILL")
        return output

    def tree(self) -> str:
        """
        A directory tree to send: files at two depths and one larger file.
        """
        source = os.path.join(self.root, "photos")
        os.makedirs(os.path.join(source, "2024", "june"))
        with open(os.path.join(source, "index.txt"), "w") as f:
            f.write("holiday\n")
        with open(os.path.join(source, "2024", "june", "beach.bin"), "wb") as f:
            f.write(os.urandom(1_500_000))
        return source

    @inlineCallbacks
    def test_tree(self):
        """
        The receiver prints the command, the sender runs it, the tree
        arrives whole under the receiver's directory, each file is printed,
        and both exit 0.  Neither side had a key before.
        """
        self.useSenderKeys(os.path.join(self.root, "fresh"))
        source = self.tree()
        receiver = self.receive()
        shown = yield receiver.waitFor("FILE...", READY_TIMEOUT)
        command = next(line for line in shown.splitlines() if "spc send --code" in line)
        args = command.split()[1:-1]
        self.assertEqual(args[args.index("--server") + 1], f"{self.server}:{self.ports[0]}")
        sent = yield self.spc(*args, "--key-dir", self.senderKeys, source)
        self.assertEqual(sent.code, 0, sent)
        self.assertIn("Delivered 0 message(s) and 2 file(s)", sent.out)
        done = yield receiver.whenEnded()
        self.assertEqual(done.code, 0, done)
        for relative in ["photos/index.txt", "photos/2024/june/beach.bin"]:
            with open(os.path.join(self.received, relative), "rb") as got:
                with open(os.path.join(self.root, relative), "rb") as expected:
                    self.assertEqual(got.read(), expected.read())
            self.assertIn(f"Stored {relative} (", done.out)
        self.assertIn("Done: 2 file(s)", done.out)
        self.assertEqual(sorted(os.listdir(self.received)), ["photos"])
        self.assertFalse(os.path.exists(self.knownHosts))
        self.assertFalse(os.path.exists(os.path.join(self.root, "home", "authorized_keys")))

    @inlineCallbacks
    def test_remember(self):
        """
        With C{--remember}, both sides keep the other's key: the sender is
        in the receiver's authorized_keys, the receiver in the sender's
        known_hosts.
        """
        receiver = self.receive("--remember", "--name", "laptop")
        shown = yield receiver.waitFor("FILE...", READY_TIMEOUT)
        sent = yield self.spc(
            "send", "--key-dir", self.senderKeys, "--code", codeIn(shown),
            "--server", f"{self.server}:{self.ports[0]}", "--ports", self.portList,
            "--message", "hi",
        )
        self.assertEqual(sent.code, 0, sent)
        done = yield receiver.whenEnded()
        self.assertEqual(done.code, 0, done)
        self.assertIn("Message: hi", done.out)
        home = os.path.join(self.root, "home")
        [(fingerprint, name)] = AuthorizedKeys.fromFile(
            os.path.join(home, "authorized_keys")
        )._entries
        self.assertEqual(name, "laptop")
        self.assertTrue(KnownHosts.fromFile(self.knownHosts).lookup(
            f"{self.server}:{self.ports[0]}"
        ))

    @inlineCallbacks
    def test_wrongCode(self):
        """
        A wrong code ends both: the sender with one line and exit 3, the
        receiver likewise, and nothing is stored or trusted.
        """
        receiver = self.receive()
        shown = yield receiver.waitFor("FILE...", READY_TIMEOUT)
        sent = yield self.spc(
            "send", "--key-dir", self.senderKeys, "--code", wrongWords(codeIn(shown)),
            "--server", f"{self.server}:{self.ports[0]}", "--ports", self.portList,
            "--message", "hi",
        )
        self.assertFailed(sent, 3, "does not match")
        done = yield receiver.whenEnded()
        self.assertEqual(done.code, 3, done)
        self.assertIn("the code was wrong", done.err)
        self.assertEqual(os.listdir(self.received), [])

    @inlineCallbacks
    def test_expires(self):
        """
        A code nobody uses in time ends the receiver with one line.
        """
        receiver = self.receive("--expires", "1s")
        done = yield receiver.whenEnded()
        self.assertEqual(done.code, 3, done)
        self.assertIn("the code was not used in time", done.err)
