# -*- test-case-name: tests.integration.test_logs -*-
"""
Tests for spc's structured logs over real connections: C{twistd spc
--log-format json} writes one JSON object per line, and no key, secret or
plaintext of a whole session over loopback TCP ever reaches a log line.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os

from cryptography.hazmat.primitives import serialization
from twisted.internet import reactor, task
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, serverFromString
from twisted.logger import eventAsJSON, formatEvent, globalLogPublisher
from twisted.trial import unittest
from zope.interface import implementer

from spc.client.connect import connect
from spc.crypto import asymmetric, keyschedule
from spc.files.store import FileStore
from spc.interfaces import IFileReceiver, IMessageReceiver
from spc.keys.trust import AuthorizedKeys, PinnedKey
from spc.logs import events
from spc.protocol import frames
from spc.server.service import ServerService
from tests.common import cachedExchangeKey, cachedIdentity
from tests.integration.test_endtoend import GOODBYE_TIMEOUT, EndToEndTestCase, sharedIdentity
from tests.memory.test_logs import named


FRAGMENT = frames.MIN_FRAGMENT_SIZE


class JSONDaemonTests(EndToEndTestCase):
    """
    A real C{twistd -n spc --log-format json} and a real C{spc send}.
    """

    @inlineCallbacks
    def test_jsonLines(self):
        """
        Every line the daemon writes is one JSON object; the handshakes and
        the session carry their fields by name.
        """
        self.authorize(self.serverKeys, "client")
        daemon = yield self.startDaemon("--log-format", "json")
        result = yield self.send("hello")
        self.assertDelivered(result, 1)
        yield daemon.output.waitFor(events.SESSION_CLOSED, GOODBYE_TIMEOUT)
        yield daemon.stop()
        lines = daemon.output.stdout.decode("utf-8").splitlines()
        logged = [json.loads(line) for line in lines]
        self.assertTrue(all(isinstance(event, dict) for event in logged))
        client = sharedIdentity("client").fingerprint
        accepted = named(logged, events.HANDSHAKE_ACCEPTED)
        self.assertEqual(sorted(e["mode"] for e in accepted), ["JOIN"] * 3 + ["NEW"])
        self.assertEqual(sorted(e["channel"] for e in accepted), [0, 1, 2, 3])
        for event in accepted:
            self.assertEqual((event["peer"], event["peer_name"]), (client, "client"))
            self.assertTrue(event["source"].startswith("127.0.0.1:"), event)
            self.assertEqual(event["log_namespace"], events.HANDSHAKE)
        [opened] = named(logged, events.SESSION_OPENED)
        [closed] = named(logged, events.SESSION_CLOSED)
        self.assertEqual((opened["peer"], opened["role"]), (client, "server"))
        self.assertEqual(closed["session"], opened["session"])
        self.assertEqual(len(closed["session"]), 16)
        self.assertIsInstance(closed["duration"], float)
        self.assertIn("closed", closed["reason"])
        self.assertIn(f"opened with {client} as server", opened["log_text"])
        self.assertNotIn("{", opened["log_text"])


MESSAGE_MARKER = b"message-marker-" + os.urandom(6).hex().encode()


FILE_MARKER = b"file-marker-" + os.urandom(6).hex().encode()


ROTATION_COMMITTED = "Rotation to epoch {epoch} with {peer} committed"


WAIT = 10.0


class KeyMaterial:
    """
    Every secret the key schedule takes in or derives during a test, as
    the code asks for it: C{keyschedule.extract} and
    C{keyschedule.hkdfExpand} are wrapped, which covers the X25519 and
    RSA-transported secrets, handshake, join, connection and epoch
    secrets, finished and confirmation keys, and every traffic key and
    IV.  The session id is the one output left out: it is public.

    @ivar secrets: the values recorded.
    """

    def __init__(self, testCase: unittest.TestCase) -> None:
        self.secrets: list[bytes] = []
        extract, expand = keyschedule.extract, keyschedule.hkdfExpand

        def recordExtract(salt: bytes, ikm: bytes) -> bytes:
            out = extract(salt, ikm)
            if salt != keyschedule.HANDSHAKE_SALT:
                self.add(salt)
            self.add(ikm, ikm[:32], ikm[32:], out)
            return out

        def recordExpand(prk: bytes, info: bytes, length: int) -> bytes:
            out = expand(prk, info, length)
            self.add(prk)
            if not info.startswith(keyschedule.PREFIX + b"sid\x00"):
                self.add(out)
            return out

        testCase.patch(keyschedule, "extract", recordExtract)
        testCase.patch(keyschedule, "hkdfExpand", recordExpand)

    def add(self, *values: bytes) -> None:
        self.secrets.extend(value for value in values if len(value) >= 8)


def forms(value: bytes) -> set[str]:
    """
    How C{value}, or its first eight bytes, could show in a log line: as
    raw bytes (the JSON observer writes bytes as latin-1, escaped), as a
    bytes repr, in hex, or in base64 at any alignment within a longer
    encoded string.
    """
    found = set()
    for part in (value, value[:8]):
        raw = part.decode("latin-1")
        found |= {raw, json.dumps(raw)[1:-1], repr(part)[2:-1], part.hex(), part.hex().upper()}
    for shift in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(value[shift:]).decode("ascii")
            found.add(text[:-4] if len(text) > 12 else text)
    return {text for text in found if len(text) >= 8}


def privateForms(key) -> set[str]:
    """
    The forms of an RSA private key: its PEM (every body line but the
    first, which all RSA-2048 keys share) and its private numbers.
    """
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    numbers = key.private_numbers()
    found = {pem.strip(), *pem.strip().splitlines()[2:-1]}
    for number in (numbers.d, numbers.p, numbers.q):
        raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
        found |= forms(raw) | {str(number)}
    return found


def rendered(event: dict) -> str:
    """
    An event as a text log and a JSON log would write it, and its repr.
    """
    try:
        asJSON = eventAsJSON(copy.copy(event))
    except Exception:
        asJSON = repr(event)
    return "\n".join([formatEvent(event) or "", asJSON, repr(event)])


@implementer(IMessageReceiver, IFileReceiver)
class Receiver:
    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.files: list[tuple[str, str, int]] = []

    def messageReceived(self, session, data, kind):
        self.messages.append(data)

    def fileReceived(self, session, name, path, size):
        self.files.append((name, path, size))


def firstResult(callbacks: list) -> Deferred:
    """
    A Deferred firing with the first value given to a callback appended
    to C{callbacks}.
    """
    result: Deferred = Deferred()
    callbacks.append(lambda value: None if result.called else result.callback(value))
    return result


@inlineCallbacks
def until(predicate, what: str):
    """
    Wait, on the real reactor, until C{predicate()} holds.
    """
    for _ in range(int(WAIT / 0.05)):
        if predicate():
            return
        yield task.deferLater(reactor, 0.05, lambda: None)
    raise AssertionError(f"{what} did not happen within {WAIT} s")


class NoSecretsTests(unittest.TestCase):
    """
    A whole session over loopback TCP, both ends in this process: the
    handshakes, a message, a key rotation, a channel killed and rejoined,
    a file of many fragments, the goodbye.  Every event either end logged
    is rendered as text and as JSON, and none holds key material, a
    private key, or a byte of what was sent.
    """

    timeout = 60

    @inlineCallbacks
    def test_fullSession(self):
        material = KeyMaterial(self)
        self.patch(asymmetric, "generateExchangeKey", cachedExchangeKey)
        logged: list[dict] = []
        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        server, client = cachedIdentity("server"), cachedIdentity("client")
        inbox = os.path.abspath(self.mktemp())
        os.makedirs(inbox)
        receiver = Receiver()
        service = ServerService(
            reactor,
            [serverFromString(reactor, "tcp:0:interface=127.0.0.1") for _ in range(3)],
            server,
            AuthorizedKeys("authorized_keys", [(client.fingerprint, "client")]),
            receiver,
            params=frames.Params(fragmentSize=FRAGMENT, maxInner=frames.maxInnerSize(FRAGMENT)),
            files=FileStore(inbox),
        )
        service.startService()
        self.addCleanup(lambda: service.running and service.stopService())
        ports = [port.getHost().port for port in (yield service.whenListening())]
        session = yield connect(
            reactor,
            [TCP4ClientEndpoint(reactor, "127.0.0.1", port) for port in ports],
            client,
            PinnedKey(server.fingerprint),
            f"127.0.0.1:{ports[0]}",
            retryPolicy=lambda attempt: 0.05,
        )
        serverSession = service.directory.sessions[session.id]

        message = MESSAGE_MARKER * 40
        yield session.sendMessage(message)
        self.assertEqual(receiver.messages, [message])

        yield until(lambda: len(serverSession.liveChannels()) == 3, "three live channels")
        rotated = [
            firstResult(serverSession.onRotationEnded),
            firstResult(session.onRotationEnded),
        ]
        serverSession.rotate()
        outcomes = yield gatherResults(rotated)
        self.assertEqual(outcomes, [True, True])
        self.assertEqual((session.epoch, serverSession.epoch), (1, 1))

        session.channels[1].transport.abortConnection()
        yield until(
            lambda: len(named(logged, events.CHANNEL_REJOINED)) == 2
            and len(serverSession.liveChannels()) == 3,
            "channel 1 rejoining on both ends",
        )

        content = FILE_MARKER * (5 * FRAGMENT // len(FILE_MARKER))
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(content)
        yield session.sendFile(path, name="report.bin")
        self.assertEqual(len(receiver.files), 1)

        secrets = list(material.secrets)
        for owner in (session, serverSession):
            secrets.append(owner._transferSecret)
        yield session.close()
        yield serverSession.whenClosed()
        yield service.stopService()

        self.assertExpectedEvents(logged, client, server, content)
        self.assertGreater(len(secrets), 50)
        text = "\n".join(rendered(event) for event in logged)
        checks = [("secret", form) for value in secrets for form in forms(value)]
        for name, key in [
            ("server identity", server.privateKey),
            ("client identity", client.privateKey),
            ("exchange key", cachedExchangeKey()),
        ]:
            checks += [(name, form) for form in privateForms(key)]
        for name, marker in [("message", MESSAGE_MARKER), ("file", FILE_MARKER)]:
            checks += [(name, form) for form in forms(marker)]
        leaks = [(name, form) for name, form in checks if form in text]
        self.assertEqual(leaks, [])

    def assertExpectedEvents(self, logged, client, server, content: bytes) -> None:
        """
        The session's story is in the log, so the check above is not
        vacuous.
        """
        accepted = named(logged, events.HANDSHAKE_ACCEPTED)
        modes = sorted(event["mode"] for event in accepted)
        self.assertEqual(modes, ["JOIN", "JOIN", "JOIN", "NEW"])
        self.assertEqual({event["peer_name"] for event in accepted}, {"client"})
        opened = named(logged, events.SESSION_OPENED)
        closed = named(logged, events.SESSION_CLOSED)
        self.assertEqual(sorted(e["role"] for e in opened), ["client", "server"])
        self.assertEqual(sorted(e["role"] for e in closed), ["client", "server"])
        self.assertEqual(
            {(e["role"], e["peer"]) for e in closed},
            {("client", server.fingerprint), ("server", client.fingerprint)},
        )
        dead = named(logged, events.CHANNEL_DEAD)
        self.assertEqual({e["channel"] for e in dead}, {1})
        rejoined = named(logged, events.CHANNEL_REJOINED)
        self.assertEqual([e["channel"] for e in rejoined], [1, 1])
        self.assertEqual(len(named(logged, ROTATION_COMMITTED)), 2)
        [stored] = named(logged, events.FILE_STORED)
        [sent] = named(logged, events.FILE_SENT)
        digest = hashlib.sha256(content).hexdigest()
        for event in (stored, sent):
            self.assertEqual(
                (event["name"], event["bytes"], event["digest"]),
                ("report.bin", len(content), digest),
            )
            self.assertIsInstance(event["rate_mbps"], float)
            self.assertGreater(event["seconds"], 0)
