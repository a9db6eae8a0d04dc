"""
The limit of a Twisted design on this machine: a file sent over N TCP
connections in AES-256-GCM frames and nothing else (no handshake, no
hashing, no acknowledgements).  C{bench/compare.py} runs it beside spc,
scp and openssl; by hand, the receiver first:

    python bench/baseline.py receive --ports 9500,9501 --key HEX --output out.bin
    python bench/baseline.py send --ports 9500,9501 --key HEX payload.bin

A frame is the chunk's file offset (8 bytes), the ciphertext's length (4
bytes), then the ciphertext and its tag; the header is the associated
data.  The nonce is the connection's index (4 bytes) and its frame count
(8 bytes), so one key, 64 hex digits given to both ends, never sees a
nonce twice.  Each connection is a pull producer: whichever connection
has drained its buffer reads, seals and writes the next chunk.  The
receiver writes each chunk at its offset and exits once every
connection has closed.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import os
import struct

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from twisted.internet import defer, protocol, task
from twisted.internet.error import ConnectionDone
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, connectProtocol
from twisted.internet.interfaces import IPullProducer
from zope.interface import implementer

from common import parseSize

HEADER = struct.Struct("!QI")
NONCE = struct.Struct("!IQ")
TAG_SIZE = 16


class Receiving(protocol.Protocol):
    """
    One connection's frames, opened and written at their offsets.
    """

    def __init__(self, index: int, aead: AESGCM, output: int, maxBody: int, closed) -> None:
        self._index, self._aead, self._output = index, aead, output
        self._maxBody, self._closed = maxBody, closed
        self._frames = 0
        self._buffer = bytearray()

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        with memoryview(self._buffer) as view:
            used = self._writeFrames(view)
        del self._buffer[:used]

    def _writeFrames(self, view: memoryview) -> int:
        """
        @return: how many bytes of C{view}, whole frames, were written.
        """
        start = 0
        while len(view) - start >= HEADER.size:
            offset, length = HEADER.unpack_from(view, start)
            if length > self._maxBody:
                raise ValueError(f"a {length}-byte frame is longer than any chunk")
            body = start + HEADER.size
            if body + length > len(view):
                break
            nonce = NONCE.pack(self._index, self._frames)
            plaintext = self._aead.decrypt(nonce, view[body : body + length], view[start:body])
            os.pwrite(self._output, plaintext, offset)
            self._frames += 1
            start = body + length
        return start

    def connectionLost(self, reason) -> None:
        if not reason.check(ConnectionDone):
            self._closed(f"connection {self._index}: {reason.getErrorMessage()}")
        elif self._buffer:
            self._closed(f"connection {self._index} closed in the middle of a frame")
        else:
            self._closed(None)


@implementer(IPullProducer)
class Sending(protocol.Protocol):
    """
    One connection, sealing and writing the next chunk of the file each
    time its transport has sent everything it was given.
    """

    def __init__(self, index: int, aead: AESGCM, source: int, chunkSize: int, chunks) -> None:
        self._index, self._aead, self._source = index, aead, source
        self._chunkSize, self._chunks = chunkSize, chunks
        self._frames = 0
        self.done: defer.Deferred = defer.Deferred()

    def connectionMade(self) -> None:
        self.transport.registerProducer(self, False)

    def resumeProducing(self) -> None:
        offset = next(self._chunks)
        data = os.pread(self._source, self._chunkSize, offset)
        if not data:
            self.transport.unregisterProducer()
            self.transport.loseConnection()
            return
        header = HEADER.pack(offset, len(data) + TAG_SIZE)
        nonce = NONCE.pack(self._index, self._frames)
        self._frames += 1
        self.transport.writeSequence([header, self._aead.encrypt(nonce, data, header)])

    def stopProducing(self) -> None:
        """Nothing to stop: a chunk is produced only when asked for."""

    def connectionLost(self, reason) -> None:
        if reason.check(ConnectionDone):
            self.done.callback(None)
        else:
            self.done.errback(reason)


@defer.inlineCallbacks
def receive(reactor, options):
    """
    Listen on every port, write what arrives, and end once every
    connection closed after whole frames.
    """
    aead = AESGCM(bytes.fromhex(options.key))
    output = os.open(options.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    everyClose = [defer.Deferred() for _ in options.ports]
    for index, (port, closed) in enumerate(zip(options.ports, everyClose)):
        factory = protocol.Factory.forProtocol(
            functools.partial(
                Receiving, index, aead, output, options.chunk_size + TAG_SIZE, closed.callback
            )
        )
        yield TCP4ServerEndpoint(reactor, port, interface=options.host).listen(factory)
    problems = yield defer.gatherResults(everyClose)
    os.close(output)
    if any(problems):
        raise SystemExit("baseline: " + "; ".join(filter(None, problems)))


@defer.inlineCallbacks
def send(reactor, options):
    """
    Connect to every port and send the file over all connections at once.
    """
    aead = AESGCM(bytes.fromhex(options.key))
    source = os.open(options.file, os.O_RDONLY)
    chunks = itertools.count(0, options.chunk_size)
    connections = [
        Sending(index, aead, source, options.chunk_size, chunks)
        for index in range(len(options.ports))
    ]
    for port, connection in zip(options.ports, connections):
        yield connectProtocol(TCP4ClientEndpoint(reactor, options.host, port), connection)
    yield defer.gatherResults([connection.done for connection in connections])
    os.close(source)


def parsePorts(text: str) -> list[int]:
    return [int(port) for port in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    roles = parser.add_subparsers(dest="role", required=True)
    receiver = roles.add_parser("receive", help="listen, write the file, exit when done")
    receiver.add_argument("--output", required=True, help="where to write the file")
    sender = roles.add_parser("send", help="send a file to a listening receiver")
    sender.add_argument("file")
    for role in (receiver, sender):
        role.add_argument("--ports", required=True, type=parsePorts, help="e.g. 9500,9501")
        role.add_argument("--key", required=True, help="the AES-256 key in hex")
        role.add_argument("--host", default="127.0.0.1")
        role.add_argument("--chunk-size", type=parseSize, default=256 << 10)
    options = parser.parse_args()
    task.react(receive if options.role == "receive" else send, [options])


if __name__ == "__main__":
    main()
