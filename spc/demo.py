# -*- test-case-name: tests.test_demo -*-
"""
C{spc demo}: everything spc does, in one process on loopback.

A server and a client with throwaway identities in a temporary directory;
the client pins the server's key and the server authorizes only the client,
exactly as two machines would be set up.  Messages go both ways over every
channel, and a summary says what happened.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from typing import TextIO

from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, serverFromString
from zope.interface import implementer

from spc import records
from spc.client import connect
from spc.identity import generateIdentity, saveIdentity
from spc.service import ServerService
from spc.session import IMessageReceiver
from spc.trust import AuthorizedKeys, PinnedKey

__all__ = ["runDemo"]

DEMO_MESSAGES = 8
DEMO_MESSAGE_SIZE = 256 * 1024


@implementer(IMessageReceiver)
class _Collector:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    def messageReceived(self, session, data: bytes, kind: int) -> None:
        self.messages.append(data)


@inlineCallbacks
def runDemo(reactor, out: TextIO, channels: int = 4):
    """
    Run the demo and write its report to C{out}.

    @return: a Deferred firing with the exit code.
    """
    workspace = tempfile.mkdtemp(prefix="spc-demo-")
    try:
        server, client = generateIdentity(), generateIdentity()
        saveIdentity(server, os.path.join(workspace, "server"))
        saveIdentity(client, os.path.join(workspace, "client"))
        out.write(f"Server key {server.fingerprint}\nClient key {client.fingerprint}\n")
        atServer, atClient = _Collector(), _Collector()
        service = ServerService(
            reactor,
            [serverFromString(reactor, "tcp:0:interface=127.0.0.1") for _ in range(channels)],
            server,
            AuthorizedKeys.parse(f"{client.fingerprint} demo-client\n", "demo"),
            atServer,
        )
        service.startService()
        try:
            ports = [port.getHost().port for port in (yield service.whenListening())]
            started = time.monotonic()
            session = yield connect(
                reactor,
                [TCP4ClientEndpoint(reactor, "127.0.0.1", port) for port in ports],
                client,
                PinnedKey(server.fingerprint),
                f"127.0.0.1:{ports[0]}",
                receiver=atClient,
            )
            out.write(
                f"Session over {len(session.channels)} channels on ports "
                f"{', '.join(map(str, ports))}: "
                + ", ".join(
                    f"{index}={channel.result.keys.suite.name}"
                    for index, channel in sorted(session.channels.items())
                )
                + "\n"
            )
            payloads = [os.urandom(DEMO_MESSAGE_SIZE) for _ in range(DEMO_MESSAGES)]
            yield gatherResults([session.sendMessage(p) for p in payloads])
            (serverSession,) = service.directory.sessions.values()
            yield serverSession.sendMessage(b"hello from the server", records.KIND_TEXT)
            elapsed = time.monotonic() - started
            yield session.close()
        finally:
            yield service.stopService()
        ok = atServer.messages == payloads and atClient.messages == [b"hello from the server"]
        total = sum(map(len, payloads))
        out.write(
            f"Client -> server: {len(atServer.messages)} messages, {total} bytes\n"
            f"Server -> client: {len(atClient.messages)} message\n"
            f"Time {elapsed:.2f} s, {total / elapsed / 1e6:.1f} MB/s, "
            f"content {'verified' if ok else 'DIFFERENT'}\n"
        )
        return 0 if ok else 1
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
