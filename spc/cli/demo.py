# -*- test-case-name: tests.integration.test_demo -*-
"""
C{spc demo}: everything spc does, in one process on loopback.

A server and a client with throwaway identities in a temporary directory;
the client pins the server's key and the server authorizes only the client,
exactly as two machines would be set up.  Messages go both ways over every
channel, and a summary says what happened.

The temporary directory holds the generated file twice (sent and
received), so C{--size} is bounded by L{DEMO_MAX_SIZE}; it is removed
however the demo ends, Ctrl-C included.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from typing import TextIO

from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, serverFromString
from twisted.internet.threads import deferToThread
from twisted.python import usage
from zope.interface import implementer

from spc.cli.command import Context, ReactorCommand
from spc.cli.options import MAX_CHANNELS, parseSize
from spc.cli.progress import ProgressBar
from spc.cli.units import formatRate, formatSize
from spc.client.connect import connect
from spc.client.observer import ProgressBooks, SendObserver
from spc.files.store import FileStore
from spc.interfaces import IMessageReceiver
from spc.keys.identity import generateIdentity
from spc.keys.trust import AuthorizedKeys, PinnedKey
from spc.protocol import frames, records
from spc.server.service import ServerService

__all__ = ["DemoOptions", "runDemo"]

DEMO_MESSAGES = 8
DEMO_MESSAGE_SIZE = 64 * 1024
DEMO_FILE_SIZE = 64 * 1024 * 1024
DEMO_MAX_SIZE = 1 << 30
# Rotate every 0.3 s, so even the short default transfer sees rotations.
DEMO_PARAMS = frames.Params(rotationInterval=300, ackTimeout=100, overlap=100)


@implementer(IMessageReceiver)
class _Collector:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    def messageReceived(self, session, data: bytes, kind: int) -> None:
        self.messages.append(data)


def _makeFile(path: str, size: int) -> str:
    """
    Write C{size} random bytes to C{path}, hashing them on the way.

    @return: the SHA-256, as hex.
    """
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, 1 << 20))
            digest.update(block)
            f.write(block)
            left -= len(block)
    return digest.hexdigest()


def fileDigest(path: str) -> str:
    """
    SHA-256 of a file, read in 1 MiB blocks so memory stays flat.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@inlineCallbacks
def runDemo(
    reactor,
    out: TextIO,
    channels: int = 4,
    size: int = DEMO_FILE_SIZE,
    progress: SendObserver | None = None,
    workspace: str | None = None,
):
    """
    Run the demo and write its report to C{out}.

    @param size: bytes of the generated file.
    @param progress: told how the file fares.
    @param workspace: an empty directory to work in, which the caller
        removes; without it, a temporary one, removed when the demo ends.
    @return: a Deferred firing with the exit code.
    """
    owned = workspace is None
    if workspace is None:
        workspace = tempfile.mkdtemp(prefix="spc-demo-")
    try:
        server, client = generateIdentity(), generateIdentity()
        source = os.path.join(workspace, "demo.bin")
        expected = yield deferToThread(_makeFile, source, size)
        inbox = os.path.join(workspace, "inbox")
        out.write(f"Server key {server.fingerprint}\nClient key {client.fingerprint}\n")
        atServer, atClient = _Collector(), _Collector()
        service = ServerService(
            reactor,
            [serverFromString(reactor, "tcp:0:interface=127.0.0.1") for _ in range(channels)],
            server,
            AuthorizedKeys.parse(f"{client.fingerprint} demo-client\n", "demo"),
            atServer,
            files=FileStore(inbox),
            params=DEMO_PARAMS,
        )
        service.startService()
        try:
            ports = [port.getHost().port for port in (yield service.whenListening())]
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
            books = ProgressBooks(progress or SendObserver(), [("demo", "demo.bin", size)])
            started = time.monotonic()
            yield session.sendFile(source, "demo.bin", books.reporter("demo"))
            elapsed = time.monotonic() - started
            payloads = [os.urandom(DEMO_MESSAGE_SIZE) for _ in range(DEMO_MESSAGES)]
            yield gatherResults([session.sendMessage(p) for p in payloads])
            (serverSession,) = service.directory.sessions.values()
            yield serverSession.sendMessage(b"hello from the server", records.KIND_TEXT)
            yield session.close()
        finally:
            yield service.stopService()
        received = yield deferToThread(fileDigest, os.path.join(inbox, "demo.bin"))
        fileOK = received == expected
        ok = fileOK and atServer.messages == payloads and atClient.messages == [
            b"hello from the server"
        ]
        rotations = f"{serverSession.rotationsCommitted} committed, " \
            f"{serverSession.rotationsRolledBack} rolled back"
        out.write(
            f"Key rotations every {DEMO_PARAMS.seconds.rotationInterval:g} s: {rotations}\n"
            f"File: {formatSize(size)} in {elapsed:.2f} s, {formatRate(size / elapsed)}, "
            f"SHA-256 {'OK' if fileOK else 'MISMATCH'} ({received[:16]}...)\n"
            f"Client -> server: {len(atServer.messages)} messages; "
            f"server -> client: {len(atClient.messages)} message\n"
            f"Content {'verified' if ok else 'DIFFERENT'}\n"
        )
        return 0 if ok else 1
    finally:
        if owned:
            shutil.rmtree(workspace, ignore_errors=True)


class DemoOptions(ReactorCommand):
    """
    C{spc demo}: a server and a client in one process, on loopback.
    """

    synopsis = "[--channels N] [--size BYTES]"
    optParameters = [
        ["channels", None, "4", "How many channels (ports)."],
        ["size", None, "64M",
         "Size of the generated file (suffixes K, M, G), at most 1G: "
         "the temporary directory holds it twice."],
    ]
    optFlags = [["no-progress", None, "Show no progress bar."]]

    def postOptions(self) -> None:
        text = self["channels"]
        if not (text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_CHANNELS):
            raise usage.UsageError(f"--channels must be 1 to {MAX_CHANNELS}")
        self["channels"] = int(text)
        self["size"] = parseSize(self["size"])
        if self["size"] > DEMO_MAX_SIZE:
            raise usage.UsageError(
                f"--size: at most {formatSize(DEMO_MAX_SIZE)}; the demo writes the file "
                "twice in the temporary directory"
            )

    def run(self, context: Context) -> int:
        """
        Work in a temporary directory made here and removed here, after the
        reactor stopped: a demo stopped by Ctrl-C leaves nothing behind.
        """
        self._workspace = tempfile.mkdtemp(prefix="spc-demo-")
        try:
            return super().run(context)
        finally:
            shutil.rmtree(self._workspace, ignore_errors=True)

    def runWithReactor(self, reactor, context: Context):
        bar = ProgressBar(context.stderr, reactor, enabled=not self["no-progress"])
        reactor.addSystemEventTrigger("before", "shutdown", bar.close)
        result = runDemo(
            reactor, context.stdout, self["channels"], self["size"], bar, self._workspace
        )
        return result.addBoth(bar.close)
