"""
End-to-end tests of files: the real daemon (C{twistd -n spc}) and the real
C{spc send}, each in its own process, as DESIGN.md section 1 describes them:
a file goes to C{INBOX/<name>} under a temporary name first and is renamed
only once verified, names from the wire never leave the inbox, an existing
file is never overwritten, an interrupted file resumes, and C{spc send}
exits 0 only once the daemon stored every file (4 if a transfer failed).

The harness (processes, key directories, identities) is the one of
L{tests.integration.test_endtoend}.  Two things need more than the real programs:

  - hostile names come from a malicious sender, not from the C{spc send}
    command line, so L{HostileNameTests} drives the library in this process
    against the real daemon;
  - resumption is measured by a byte-counting TCP relay (L{Relay}) between
    C{spc send} and the daemon, which can also stop forwarding after a
    number of bytes, so that "the daemon holds part of the file" does not
    depend on how fast this machine is.
"""

from __future__ import annotations

import atexit
import glob
import hashlib
import json
import os
import signal
import shutil
import subprocess
import tempfile
from unittest import SkipTest

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater

from spc.client.connect import connect
from spc.errors import SessionClosed
from spc.files.names import MESSAGES_NAME, PARTIAL_DIRECTORY, RECEIPTS_NAME
from spc.files.sending import FileSender
from spc.keys.trust import PinnedKey
from spc.protocol import records
from tests.integration.test_endtoend import (
    READY_TIMEOUT,
    SPC,
    EndToEndTestCase,
    Result,
    sharedIdentity,
    spawn,
)
from tests.integration.test_endtoend import signal as signalProcess

MiB = 1024 * 1024

BIG_SIZE = 64 * MiB
"""
The size of the large file, written once per module and shared by the tests
(each test has its own key directory, hence its own transfer ids).
"""

POLL_INTERVAL = 0.02
"""
Seconds between two looks at the daemon's partial files.
"""

HELD_TIMEOUT = 30.0
"""
Seconds the daemon may take to claim part of an interrupted file.
"""

REFUSAL_TIMEOUT = 10.0
"""
Seconds C{spc send} may take to report a transfer the daemon cannot store
(it takes about one when all goes well).
"""

_randomFiles: dict[tuple[str, int], tuple[str, str]] = {}


def randomFile(name: str, size: int) -> tuple[str, str]:
    """
    A file of C{size} random bytes called C{name}, written on first use
    into a temporary directory that is removed when the process exits.

    @return: its path and its SHA-256 (hex).
    """
    if (name, size) not in _randomFiles:
        directory = tempfile.mkdtemp(prefix="spc-e2e-")
        atexit.register(shutil.rmtree, directory, True)
        path = os.path.join(directory, name)
        digest = hashlib.sha256()
        with open(path, "wb") as f:
            for _ in range(size // (4 * MiB)):
                block = os.urandom(4 * MiB)
                digest.update(block)
                f.write(block)
        _randomFiles[name, size] = (path, digest.hexdigest())
    return _randomFiles[name, size]


def bigFile() -> tuple[str, str]:
    """
    The L{BIG_SIZE} file most tests here send.
    """
    return randomFile("big.bin", BIG_SIZE)


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(4 * MiB), b""):
            digest.update(block)
    return digest.hexdigest()


def writeFile(path: str, data: bytes) -> str:
    """
    Write C{data} to C{path}, making its folder.

    @return: C{path}.
    """
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


def readFile(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def tree(top: str) -> dict[str, tuple]:
    """
    Everything under C{top}, symbolic links not followed: relative path to
    C{(kind, size, modification time)}.
    """
    found = {}
    for folder, directories, files in os.walk(top):
        for name in directories + files:
            full = os.path.join(folder, name)
            status = os.lstat(full)
            kind = "d" if name in directories and not os.path.islink(full) else "f"
            found[os.path.relpath(full, top)] = (kind, status.st_size, status.st_mtime_ns)
    return found


COMPLETED_LOGS = {"completed.json", "completed.jsonl"}
"""
The names of the store's memory of completed transfers, this version's
and the older one's: neither is a partial file.
"""


def heldBytes(inbox: str) -> int:
    """
    How many bytes of interrupted transfers the daemon claims to hold: the
    ranges in the state files beside the partial files, which are what a
    resumed transfer may skip.
    """
    total = 0
    for path in glob.glob(os.path.join(inbox, PARTIAL_DIRECTORY, "*.json")):
        if os.path.basename(path) == "completed.json":
            continue
        try:
            with open(path) as f:
                state = json.load(f)
        except (OSError, ValueError):
            continue  # replaced while it was read
        total += sum(length for _, length in state["ranges"])
    return total


class _Inbound(Protocol):
    """
    A connection from C{spc send} to the relay; forwards to the daemon.
    """

    def __init__(self, relay: Relay, port: int) -> None:
        self.relay = relay
        self.port = port
        self.outbound: _Outbound | None = None
        self.lost = False

    def connectionMade(self) -> None:
        self.relay.connections.append(self)
        self.transport.pauseProducing()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port)
        connectProtocol(endpoint, _Outbound(self)).addCallbacks(
            self._connected, lambda failure: self.transport.abortConnection()
        )

    def _connected(self, outbound: _Outbound) -> None:
        if self.lost:
            outbound.transport.loseConnection()
            return
        self.outbound = outbound
        outbound.transport.registerProducer(self.transport, True)
        self.transport.registerProducer(outbound.transport, True)
        self.transport.resumeProducing()

    def dataReceived(self, data: bytes) -> None:
        relay = self.relay
        if relay.budget is not None:
            data = data[: max(0, relay.budget - relay.upstream)]
        relay.upstream += len(data)
        if data:
            self.outbound.transport.write(data)

    def connectionLost(self, reason) -> None:
        self.lost = True
        if self.outbound is not None and not self.outbound.lost:
            self.outbound.transport.unregisterProducer()
            self.outbound.transport.loseConnection()


class _Outbound(Protocol):
    """
    The relay's connection to the daemon; forwards back to C{spc send}.
    """

    def __init__(self, inbound: _Inbound) -> None:
        self.inbound = inbound
        self.lost = False

    def dataReceived(self, data: bytes) -> None:
        self.inbound.relay.downstream += len(data)
        if not self.inbound.lost:
            self.inbound.transport.write(data)

    def connectionLost(self, reason) -> None:
        self.lost = True
        if not self.inbound.lost:
            self.inbound.transport.unregisterProducer()
            self.inbound.transport.loseConnection()


class Relay:
    """
    A TCP relay on loopback, one listening port per daemon port, that counts
    the bytes going each way.

    @ivar upstream: bytes forwarded from the sender to the daemon.
    @ivar downstream: bytes forwarded from the daemon to the sender.
    @ivar budget: if not L{None}, the relay forwards at most this many
        bytes upstream in all and drops the rest: the daemon's connections
        go silent, as if the network stopped.
    @ivar ports: the relay's own ports, in the daemon's port order.
    """

    def __init__(self, targets: list[int]) -> None:
        self.upstream = 0
        self.downstream = 0
        self.budget: int | None = None
        self.connections: list[_Inbound] = []
        self._listening = []
        for target in targets:
            factory = Factory.forProtocol(lambda target=target: _Inbound(self, target))
            factory.noisy = False
            self._listening.append(reactor.listenTCP(0, factory, interface="127.0.0.1"))
        self.ports = [port.getHost().port for port in self._listening]

    def reset(self, budget: int | None = None) -> None:
        self.upstream = self.downstream = 0
        self.budget = budget

    def stop(self) -> Deferred:
        for inbound in self.connections:
            if not inbound.lost:
                inbound.transport.abortConnection()
            if inbound.outbound is not None and not inbound.outbound.lost:
                inbound.outbound.transport.abortConnection()
        return gatherResults([port.stopListening() for port in self._listening])


class FileTestCase(EndToEndTestCase):
    """
    A daemon that authorizes the client (and L{extraClients}), and helpers
    for files.

    @cvar extraClients: names of further identities the daemon admits.
    @ivar source: a folder for the files the tests send.
    @ivar daemon: the test's L{tests.integration.test_endtoend.Daemon}, serving.
    """

    extraClients: tuple[str, ...] = ()

    @inlineCallbacks
    def setUp(self):
        super().setUp()
        self.authorize(self.serverKeys, "client", *self.extraClients)
        self.source = os.path.join(self.root, "source")
        os.makedirs(self.source)
        self.daemon = yield self.startDaemon()

    @property
    def partials(self) -> str:
        return os.path.join(self.inbox, PARTIAL_DIRECTORY)

    def sendFiles(self, *paths: str, extra=()) -> Deferred:
        """
        Run C{spc send} with the C{extra} options and the files or folders
        C{paths}.

        @return: a Deferred firing with its L{Result}.
        """
        return self.send(extra=[*extra, *paths])

    def sendFilesWithin(self, seconds: float, *paths: str) -> Deferred:
        """
        Like L{sendFiles}, but kill C{spc send} after C{seconds}.
        """
        output, transport = spawn(SPC + self.sendArgs() + list(paths), self.root, self.env)
        kill = reactor.callLater(seconds, signalProcess, transport, "KILL")

        def finished(result: Result) -> Result:
            if kill.active():
                kill.cancel()
            return result

        return output.whenEnded().addCallback(finished)

    def assertFilesDelivered(self, result: Result, count: int) -> None:
        """
        C{spc send} exited 0, said it delivered C{count} files and no
        message, and wrote nothing to stderr.
        """
        self.assertDelivered(result, 0)
        self.assertIn(f"Delivered 0 message(s) and {count} file(s)", result.out)
        self.assertEqual(result.err, "", result)

    def inboxFiles(self) -> dict[str, bytes | None]:
        """
        The files in the inbox but for the partial folder and the receipts
        of stored files (C{files.jsonl}), by path relative to the inbox
        (C{/}-separated); content for small files.
        """
        found = {}
        for relative, (kind, size, _) in tree(self.inbox).items():
            if kind == "f" and relative.split(os.sep)[0] not in (PARTIAL_DIRECTORY, RECEIPTS_NAME):
                path = os.path.join(self.inbox, relative)
                found[relative.replace(os.sep, "/")] = (
                    readFile(path) if size < MiB else None
                )
        return found

    def assertNotDelivered(self, result: Result, code: int, lines: list[str]) -> None:
        """
        C{spc send} exited with C{code} after writing C{lines} to stderr (one
        per item not delivered or not sent, then the count), no traceback.
        """
        self.assertEqual(result.code, code, result)
        self.assertNotIn("Traceback", result.err)
        self.assertEqual(result.err.splitlines(), lines, result)

    def assertNoPartials(self) -> None:
        """
        The partial folder holds nothing but the record of completed
        transfers: no partial file, no state file, no temporary file.
        """
        left = sorted(set(os.listdir(self.partials)) - COMPLETED_LOGS)
        details = {}
        for name in left:
            path = os.path.join(self.partials, name)
            size = os.path.getsize(path)
            details[name] = readFile(path)[:300] if name.endswith(".json") else size
        self.assertEqual(left, [], details)


class LargeFileTests(FileTestCase):
    """
    A 64 MiB file through the real programs.
    """

    @inlineCallbacks
    def test_largeFile(self):
        """
        A 64 MiB file of random bytes arrives under C{INBOX/<name>} with the
        same SHA-256; C{spc send} exits 0 and says it delivered one file and
        no message; while it was on its way, nothing but the whole file ever
        appeared under the final name; afterwards no partial, state or
        temporary file is left.  The progress bar is on (no
        C{--no-progress}) but stderr is not a terminal, so nothing is drawn.
        """
        path, digest = bigFile()
        final = os.path.join(self.inbox, "big.bin")
        seen: list[int] = []
        watching = [True]

        def watch():
            if os.path.lexists(final):
                seen.append(os.lstat(final).st_size)
            if watching[0]:
                return deferLater(reactor, POLL_INTERVAL, watch)

        watcher = watch()
        try:
            result = yield self.sendFiles(path)
        finally:
            watching[0] = False
        yield watcher

        self.assertFilesDelivered(result, 1)
        self.assertIn("64.0 MiB sent", result.out)
        self.assertNotIn("\r", result.err)
        self.assertEqual([size for size in seen if size != BIG_SIZE], [])
        self.assertEqual(list(self.inboxFiles()), ["big.bin"])
        self.assertEqual(sha256(final), digest)
        self.assertNoPartials()
        self.assertIn(f"Stored big.bin ({BIG_SIZE} bytes)", self.daemon.output.log)


class ResumeTests(FileTestCase):
    """
    An interrupted C{spc send} resumes: run again with the same key
    directory (the transfer secret lives there) and the same path, it sends
    only what the daemon does not hold.
    """

    HELD_AT_LEAST = 0.2
    """
    The share of the file the daemon must hold before the sender is killed.
    """

    @inlineCallbacks
    def setUp(self):
        yield super().setUp()
        self.relay = Relay(self.ports)
        self.addCleanup(self.relay.stop)

    def relayArgs(self, path: str) -> list[str]:
        """
        C{spc send PATH} through the relay, one C{--connect} per channel.
        """
        args = [
            "send", "--key-dir", self.clientKeys, "--server", self.server,
            "--server-fingerprint", self.serverFingerprint, "--no-progress",
        ]
        for port in self.relay.ports:
            args += ["--connect", f"tcp:127.0.0.1:{port}"]
        return args + [path]

    @inlineCallbacks
    def waitUntilHeld(self, least: int, sender) -> int:
        """
        Poll the daemon's state files until it claims at least C{least}
        bytes.

        @return: what it claims.
        """
        deadline = reactor.seconds() + HELD_TIMEOUT
        while True:
            held = heldBytes(self.inbox)
            if held >= least:
                return held
            if sender.status is not None:
                self.fail(f"the sender exited before the daemon held {least} bytes:\n"
                          f"{sender.log}\n{self.daemon.output.log}")
            if reactor.seconds() > deadline:
                self.fail(f"the daemon held only {held} bytes after {HELD_TIMEOUT} s:\n"
                          f"{self.daemon.output.log}")
            yield deferLater(reactor, POLL_INTERVAL, lambda: None)

    @inlineCallbacks
    def interrupt(self):
        """
        Send the large file through the relay, which forwards only three
        quarters of it; once the daemon claims at least L{HELD_AT_LEAST}
        of it, SIGKILL the sender.

        @return: the bytes the daemon claimed when the sender was killed.
        """
        path, digest = bigFile()
        self.relay.reset(budget=BIG_SIZE * 3 // 4)
        sender, transport = spawn(SPC + self.relayArgs(path), self.root, self.env)
        ended = sender.whenEnded()
        try:
            held = yield self.waitUntilHeld(int(BIG_SIZE * self.HELD_AT_LEAST), sender)
        finally:
            if sender.status is None:
                transport.signalProcess("KILL")
        killed = yield ended
        self.assertEqual(killed.code, -9, killed)
        self.assertFalse(os.path.exists(os.path.join(self.inbox, "big.bin")))
        self.assertEqual(len(glob.glob(os.path.join(self.partials, "*.part"))), 1)
        return held

    @inlineCallbacks
    def resume(self):
        """
        Send the large file again, with the same key directory and path,
        and check that it arrives intact and that no partial file is left.

        @return: the bytes the run sent upstream.
        """
        path, digest = bigFile()
        self.relay.reset()
        result = yield self.spc(*self.relayArgs(path))
        self.assertFilesDelivered(result, 1)
        self.assertEqual(sha256(os.path.join(self.inbox, "big.bin")), digest)
        self.assertEqual(list(self.inboxFiles()), ["big.bin"])
        self.assertEqual(glob.glob(os.path.join(self.partials, "*.part")), [])
        return self.relay.upstream

    @inlineCallbacks
    def test_resume(self):
        """
        After the first C{spc send} was killed while the daemon held part of
        the file, the second exits 0, the file arrives intact, and the
        second run sends less than nine tenths of the file's size (and at
        least what the daemon lacked: the relay does count).
        """
        held = yield self.interrupt()
        sent = yield self.resume()
        self.assertGreaterEqual(sent, BIG_SIZE - held)
        self.assertLess(sent, 0.9 * BIG_SIZE, (sent, held))

    @inlineCallbacks
    def test_resumeAfterDaemonRestart(self):
        """
        The daemon keeps what it received across a restart: stopped after
        the sender was killed, and started again on the same inbox, it
        lets the second run send less than nine tenths of the file.
        """
        yield self.interrupt()
        yield self.daemon.stop()
        self.daemon = yield self.startDaemon()
        sent = yield self.resume()
        self.assertLess(sent, 0.9 * BIG_SIZE, sent)
        self.assertNoPartials()

    @inlineCallbacks
    def test_daemonShutdownMidTransfer(self):
        """
        SIGTERM to the daemon in the middle of a file: the sender says the
        server is shutting down and exits 4; the daemon stops within its
        grace period and close timeout (twistd ends by the signal it got,
        which systemd counts as a clean stop); nothing is under the final name, the
        received part is kept; a later run against the restarted daemon
        resumes.
        """
        path, digest = bigFile()
        self.relay.reset(budget=BIG_SIZE * 3 // 4)
        sender, _ = spawn(SPC + self.relayArgs(path), self.root, self.env)
        ended = sender.whenEnded()
        yield self.waitUntilHeld(int(BIG_SIZE * self.HELD_AT_LEAST), sender)
        stopped = yield self.daemon.stop()
        result = yield ended
        self.assertEqual(stopped.code, -signal.SIGTERM, self.daemon.output.log)
        self.assertEqual(result.code, 4, sender.log)
        self.assertIn("spc: big.bin was not delivered: The server is shutting down", result.err)
        self.assertIn("spc: 0 of 1 items delivered", result.err)
        self.assertFalse(os.path.exists(os.path.join(self.inbox, "big.bin")))
        self.assertEqual(len(glob.glob(os.path.join(self.partials, "*.part"))), 1)
        self.daemon = yield self.startDaemon()
        sent = yield self.resume()
        self.assertLess(sent, 0.9 * BIG_SIZE, sent)

    @inlineCallbacks
    def test_daemonCrashMidTransfer(self):
        """
        The daemon is SIGKILLed in the middle of a file and started again:
        the same C{spc send} finds its session gone, opens a new one and
        finishes, sending much less than the whole file again; the file
        arrives intact.
        """
        path, digest = bigFile()
        self.relay.reset(budget=BIG_SIZE * 3 // 4)
        sender, _ = spawn(SPC + self.relayArgs(path), self.root, self.env)
        ended = sender.whenEnded()
        yield self.waitUntilHeld(int(BIG_SIZE * self.HELD_AT_LEAST), sender)
        self.daemon.signal("KILL")
        killed = yield self.daemon.output.whenEnded()
        self.assertEqual(killed.code, -9)
        self.relay.reset()
        self.daemon = yield self.startDaemon()
        result = yield ended
        self.assertFilesDelivered(result, 1)
        self.assertEqual(sha256(os.path.join(self.inbox, "big.bin")), digest)
        self.assertLess(self.relay.upstream, 0.9 * BIG_SIZE, self.relay.upstream)
        self.assertNoPartials()

    @inlineCallbacks
    def test_resumedLeavesNoState(self):
        """
        Once the resumed file is stored, nothing of the interrupted
        transfer is left in the partial folder, not even after the daemon
        ends the session that was interrupted (here: when it stops).
        """
        yield self.interrupt()
        yield self.resume()
        self.assertNoPartials()
        yield self.daemon.stop()
        self.assertNoPartials()


class DirectoryTests(FileTestCase):
    """
    C{spc send DIR}.
    """

    @inlineCallbacks
    def test_directory(self):
        """
        The files under a folder arrive as C{INBOX/FOLDER/relative/path}
        (an empty file too).
        As L{spc.client.sendlist.collectFiles} documents, a symbolic link is sent
        (with its target's content, under the link's name) only when its
        target is a file inside the folder; links that lead outside, links
        to folders and dangling links are not sent, and each is listed with
        why (issue 9, item 14): with C{--skip-unsendable} the exit code is
        still 0.
        """
        album = os.path.join(self.source, "album")
        writeFile(os.path.join(album, "a.txt"), b"A")
        writeFile(os.path.join(album, "sub", "b.bin"), b"B" * 100_000)
        writeFile(os.path.join(album, "sub", "deeper", "c.txt"), b"C")
        writeFile(os.path.join(album, "empty"), b"")
        elsewhere = os.path.join(self.root, "elsewhere")
        secret = writeFile(os.path.join(elsewhere, "secret.txt"), b"outside the tree")
        os.symlink(os.path.join("sub", "b.bin"), os.path.join(album, "inside-link"))
        os.symlink(secret, os.path.join(album, "outside-link"))
        os.symlink(os.path.join("..", "..", "elsewhere", "secret.txt"),
                   os.path.join(album, "sub", "relative-outside-link"))
        os.symlink(elsewhere, os.path.join(album, "outside-folder-link"))
        os.symlink("sub", os.path.join(album, "folder-link"))
        os.symlink("missing", os.path.join(album, "dangling"))

        result = yield self.sendFiles(album, extra=["--skip-unsendable"])
        self.assertDelivered(result, 0)
        self.assertIn("Delivered 0 message(s) and 5 file(s), ", result.out)
        self.assertNotDelivered(result, 0, [
            "spc: album/dangling was not sent: it is a symbolic link, and it leads nowhere",
            "spc: album/folder-link was not sent: it is a symbolic link to a folder; "
            "links are not followed into folders",
            "spc: album/outside-folder-link was not sent: it is a symbolic link that leads "
            f"outside {album}",
            f"spc: album/outside-link was not sent: it is a symbolic link that leads outside {album}",
            "spc: album/sub/relative-outside-link was not sent: it is a symbolic link that "
            f"leads outside {album}",
            "spc: 5 of 10 items delivered",
        ])
        self.assertEqual(
            self.inboxFiles(),
            {
                "album/a.txt": b"A",
                "album/empty": b"",
                "album/sub/b.bin": b"B" * 100_000,
                "album/sub/deeper/c.txt": b"C",
                "album/inside-link": b"B" * 100_000,
            },
        )

    @inlineCallbacks
    def test_unsendableEntries(self):
        """
        Issue 9, items 14 and 15: empty folders arrive, at any depth; a
        named pipe and a name that is not UTF-8 are listed with why, the
        rest is delivered, and C{spc send} exits 5 (some entries skipped)
        without C{--skip-unsendable}.
        """
        album = os.path.join(self.source, "album")
        writeFile(os.path.join(album, "a.txt"), b"A")
        os.makedirs(os.path.join(album, "empty", "deeper"))
        os.makedirs(os.path.join(album, "only-a-pipe"))
        os.mkfifo(os.path.join(album, "only-a-pipe", "pipe"))
        writeFile(os.fsdecode(os.fsencode(album) + b"/caf\xe9.txt"), b"latin-1")
        result = yield self.sendFiles(album)
        self.assertIn(
            "Delivered 0 message(s) and 1 file(s), 2 empty folder(s), ", result.out
        )
        self.assertNotDelivered(result, 5, [
            "spc: album/caf\\xe9.txt was not sent: its name is not valid UTF-8; "
            "rename it to send it",
            "spc: album/only-a-pipe/pipe was not sent: it is a named pipe",
            "spc: 3 of 5 items delivered",
        ])
        self.assertEqual(self.inboxFiles(), {"album/a.txt": b"A"})
        for folder in ("empty/deeper", "only-a-pipe"):
            self.assertTrue(os.path.isdir(os.path.join(self.inbox, "album", folder)), folder)
        self.assertIn("Made folder album/empty/deeper for ", self.daemon.output.log)

    @inlineCallbacks
    def test_emptyFolder(self):
        """
        A folder with nothing in it arrives as an empty folder.
        """
        os.makedirs(os.path.join(self.source, "nothing"))
        result = yield self.sendFiles(os.path.join(self.source, "nothing"))
        self.assertDelivered(result, 0)
        self.assertIn("Delivered 0 message(s) and 0 file(s), 1 empty folder(s), ", result.out)
        self.assertEqual(result.err, "")
        self.assertEqual(os.listdir(os.path.join(self.inbox, "nothing")), [])

    @inlineCallbacks
    def test_nameNotUTF8(self):
        """
        Issue 9, item 15: a named file whose name is not UTF-8 stops
        C{spc send} before it connects, with a usage error naming it;
        nothing is sent, not even the other files.  A file in a folder
        whose own name is not UTF-8 is sent: only the names sent must be.
        """
        other = writeFile(os.path.join(self.source, "other.txt"), b"o")
        bad = os.fsdecode(os.fsencode(self.source) + b"/caf\xe9.txt")
        writeFile(bad, b"b")
        result = yield self.sendFiles(other, bad)
        self.assertEqual(result.code, 2, result)
        self.assertIn("caf\\xe9.txt", result.err)
        self.assertIn("not valid UTF-8", result.err)
        self.assertEqual(self.inboxFiles(), {})
        self.assertNotIn("Handshake accepted", self.daemon.output.log)
        inside = writeFile(os.fsdecode(os.fsencode(self.source) + b"/\xff/fine.txt"), b"f")
        result = yield self.sendFiles(inside)
        self.assertFilesDelivered(result, 1)
        self.assertEqual(self.inboxFiles(), {"fine.txt": b"f"})

    @inlineCallbacks
    def test_filesAndFolderTogether(self):
        """
        Files and a folder in one run: the files by their own names, the
        folder's files under the folder's name.
        """
        one = writeFile(os.path.join(self.source, "one.txt"), b"1")
        folder = os.path.join(self.source, "docs")
        writeFile(os.path.join(folder, "two.txt"), b"2")
        result = yield self.sendFiles(one, folder + os.sep)
        self.assertFilesDelivered(result, 2)
        self.assertEqual(self.inboxFiles(), {"one.txt": b"1", "docs/two.txt": b"2"})


class NoOverwriteTests(FileTestCase):
    """
    An existing file is never overwritten; the very same file sent again
    is recognised as already stored.
    """

    @inlineCallbacks
    def test_sameNameDifferentFiles(self):
        """
        Different files with the same name are stored as C{report.txt},
        C{report (1).txt}, C{report (2).txt}: nothing is overwritten.
        """
        first = writeFile(os.path.join(self.source, "1", "report.txt"), b"first")
        second = writeFile(os.path.join(self.source, "2", "report.txt"), b"second")
        third = writeFile(os.path.join(self.source, "3", "report.txt"), b"third")
        result = yield self.sendFiles(first)
        self.assertFilesDelivered(result, 1)
        self.assertEqual(self.inboxFiles(), {"report.txt": b"first"})
        result = yield self.sendFiles(second, third)
        self.assertFilesDelivered(result, 2)
        stored = self.inboxFiles()
        self.assertEqual(stored.pop("report.txt"), b"first")
        self.assertEqual(stored.keys(), {"report (1).txt", "report (2).txt"})
        self.assertEqual(sorted(stored.values()), [b"second", b"third"])

    @inlineCallbacks
    def test_sameFileTwice(self):
        """
        The very same file (same path, unchanged) sent again by the same
        sender, while the daemon still holds it, is answered "already
        stored" (its transfer id is the same, and the daemon remembers
        completed transfers for a day): C{spc send} exits 0, says the file
        was already delivered and under which name, counts no bytes for
        it, and it is not stored a second time.
        """
        path = writeFile(os.path.join(self.source, "notes.txt"), b"once")
        result = yield self.sendFiles(path)
        self.assertFilesDelivered(result, 1)
        self.assertNotIn("already", result.out)
        result = yield self.sendFiles(path)
        self.assertFilesDelivered(result, 1)
        lines = result.out.splitlines()
        self.assertEqual(lines[0], "notes.txt: already delivered as notes.txt")
        self.assertIn("1 file(s) (1 already there), 0 B sent in ", lines[1])
        self.assertNotIn("B/s", lines[1])
        self.assertEqual(self.inboxFiles(), {"notes.txt": b"once"})
        self.assertEqual(self.daemon.output.log.count("Stored notes.txt "), 1)

    @inlineCallbacks
    def test_storedFileMovedAway(self):
        """
        Issue 9, item 13: C{spc send report.pdf}, then the stored file is
        moved out of the inbox, then the same C{spc send report.pdf}: the
        daemon receives and stores it again (a "complete" answer would
        have delivered nothing), and C{spc send} says it sent its bytes.
        """
        data = os.urandom(300_000)
        path = writeFile(os.path.join(self.source, "report.pdf"), data)
        result = yield self.sendFiles(path)
        self.assertFilesDelivered(result, 1)
        os.rename(os.path.join(self.inbox, "report.pdf"), os.path.join(self.root, "moved"))
        result = yield self.sendFiles(path)
        self.assertFilesDelivered(result, 1)
        self.assertNotIn("already", result.out)
        self.assertIn("293.0 KiB sent", result.out)
        self.assertEqual(self.inboxFiles(), {"report.pdf": data})
        self.assertEqual(self.daemon.output.log.count("Stored report.pdf "), 2)

    @inlineCallbacks
    def test_sameFileChanged(self):
        """
        The same path with new content is a new transfer: stored beside the
        first version, not instead of it, and not taken for complete.
        """
        path = writeFile(os.path.join(self.source, "notes.txt"), b"version 1")
        result = yield self.sendFiles(path)
        self.assertFilesDelivered(result, 1)
        writeFile(path, b"version 2, longer")
        result = yield self.sendFiles(path)
        self.assertFilesDelivered(result, 1)
        self.assertEqual(
            self.inboxFiles(),
            {"notes.txt": b"version 1", "notes (1).txt": b"version 2, longer"},
        )


class RefusedTransferTests(FileTestCase):
    """
    A file the daemon cannot store makes C{spc send} fail with exit code 4.
    """

    def sendBlocked(self) -> Deferred:
        """
        Send the folder C{blocker} (holding C{x}) to an inbox where a
        regular file C{blocker} stands where the folder must go.
        """
        writeFile(os.path.join(self.inbox, "blocker"), b"in the way")
        writeFile(os.path.join(self.source, "blocker", "x"), b"payload")
        return self.sendFiles(os.path.join(self.source, "blocker"))

    @inlineCallbacks
    def test_cannotPlace(self):
        """
        If the file cannot be put under its name, the daemon refuses it:
        C{spc send} exits 4 with one line naming the file, no traceback,
        and nothing is left behind; the existing file is untouched, and the
        daemon goes on storing other files.  (Running as root, making the
        inbox unwritable would not stop the daemon, hence a file where a
        folder must go.)
        """
        self.daemonMayLogErrors = True  # see test_cannotPlaceLogged
        result = yield self.sendBlocked()
        self.assertNotDelivered(result, 4, [
            "spc: blocker/x was not delivered: refused by the daemon: The inbox cannot take "
            "a file under that name: 'blocker' in the inbox is not a folder",
            "spc: 0 of 1 items delivered",
        ])
        self.assertEqual(result.out, "")
        self.assertEqual(self.inboxFiles(), {"blocker": b"in the way"})
        self.assertNoPartials()
        other = writeFile(os.path.join(self.source, "other.txt"), b"fine")
        result = yield self.sendFiles(other)
        self.assertFilesDelivered(result, 1)

    @inlineCallbacks
    def test_cannotPlaceLogged(self):
        """
        A file refused because of its name is a sender's problem, not the
        daemon's: the daemon logs one warning naming the file and why (as it
        does for a file too large for the disk), not a critical error with
        a traceback.
        """
        self.daemonMayLogErrors = True  # checked here, with a clearer message
        result = yield self.sendBlocked()
        self.assertEqual(result.code, 4, result)
        log = self.daemon.output.log
        self.assertNotIn("Traceback", log)
        self.assertEqual(
            len([line for line in log.splitlines()
                 if "blocker/x" in line and "is not a folder" in line]),
            1, log,
        )

    @inlineCallbacks
    def test_noRoom(self):
        """
        A file larger than the inbox's free space (a sparse file, so it
        costs nothing here) is refused before its first byte: C{spc send}
        exits 4 with one line naming it, the daemon logs one warning, and
        no partial file is made.
        """
        status = os.statvfs(self.root)
        path = os.path.join(self.source, "huge.img")
        with open(path, "wb") as f:
            f.truncate(status.f_bavail * status.f_frsize + 1024 * MiB)
        result = yield self.sendFilesWithin(REFUSAL_TIMEOUT, path)
        self.assertEqual(result.code, 4, result)
        self.assertIn("spc: huge.img was not delivered: refused by the daemon: no room for "
                      "a file of ", result.err)
        self.assertIn("Refusing huge.img: ", self.daemon.output.log)
        self.assertEqual(self.inboxFiles(), {})
        self.assertNoPartials()

    def makeUnwritable(self, folder: str) -> None:
        """
        Make C{folder} refuse new files until the test ends: C{chmod 500},
        or for root, whom permissions do not stop, the immutable attribute
        (skipping the test where it cannot be set).
        """
        if os.geteuid() != 0:
            os.chmod(folder, 0o500)
            self.addCleanup(os.chmod, folder, 0o700)
            return
        chattr = shutil.which("chattr")
        if chattr is None or subprocess.run(
            [chattr, "+i", folder], capture_output=True
        ).returncode:
            raise SkipTest("root writes to any folder, and chattr +i is not available")
        self.addCleanup(subprocess.run, [chattr, "-i", folder], check=True)

    @inlineCallbacks
    def test_partialFolderUnwritable(self):
        """
        If the daemon cannot create the partial file, C{spc send} exits 4
        with one line naming the file and no traceback; nothing is stored.
        """
        self.daemonMayLogErrors = True
        self.makeUnwritable(self.partials)
        path = writeFile(os.path.join(self.source, "f.txt"), b"data")
        result = yield self.sendFilesWithin(REFUSAL_TIMEOUT, path)
        if result.code == -9:
            self.fail(f"spc send was still running after {REFUSAL_TIMEOUT} s; the daemon "
                      f"said:\n{self.daemon.output.log}")
        self.assertNotDelivered(result, 4, [
            "spc: f.txt was not delivered: refused by the daemon: it could not write the "
            "file; its log says why",
            "spc: 0 of 1 items delivered",
        ])
        self.assertNotIn(self.partials, result.err)
        self.assertEqual(self.inboxFiles(), {})

    @inlineCallbacks
    def test_partialSuccess(self):
        """
        Issue 9, item 17: with C{--partial-quota 100K}, C{spc send big.bin
        a.txt --message hi} stores C{a.txt} and the message and refuses
        C{big.bin}: C{spc send} says what it delivered, which item it did
        not and the daemon's reason, and that 2 of 3 items were delivered;
        exit 4.
        """
        yield self.daemon.stop()
        self.daemon = yield self.startDaemon("--partial-quota", "100K")
        big = writeFile(os.path.join(self.source, "big.bin"), os.urandom(200_000))
        small = writeFile(os.path.join(self.source, "a.txt"), b"a")
        result = yield self.sendFiles(big, small, extra=["--message", "hi"])
        self.assertIn("Delivered 1 message(s) and 1 file(s), 3 B sent in ", result.out)
        self.assertNotDelivered(result, 4, [
            "spc: big.bin was not delivered: refused by the daemon: 200000 bytes would "
            "take the sender's unfinished files over its quota of 102400 bytes",
            "spc: 2 of 3 items delivered",
        ])
        self.assertEqual(self.inboxFiles().get("a.txt"), b"a")
        self.assertNotIn("big.bin", self.inboxFiles())
        self.assertEqual([r["text"] for r in self.storedMessages()], ["hi"])


class OutputTests(FileTestCase):
    """
    What C{spc send} writes when it sends files.
    """

    @inlineCallbacks
    def test_noProgress(self):
        """
        With C{--no-progress}, C{spc send} writes the summary line and
        nothing else.
        """
        path = writeFile(os.path.join(self.source, "f.bin"), os.urandom(300_000))
        result = yield self.sendFiles(path, extra=["--no-progress"])
        self.assertFilesDelivered(result, 1)
        self.assertEqual(len(result.out.splitlines()), 1, result.out)
        self.assertTrue(result.out.startswith("Delivered 0 message(s) and 1 file(s), "))
        self.assertIn("293.0 KiB sent", result.out)
        self.assertEqual(result.err, "")

    @inlineCallbacks
    def test_progressNotATerminal(self):
        """
        Without C{--no-progress} but with stderr not a terminal, no bar is
        drawn: stderr stays empty (no carriage return), stdout has the
        summary alone.
        """
        path = writeFile(os.path.join(self.source, "f.bin"), os.urandom(300_000))
        result = yield self.sendFiles(path)
        self.assertFilesDelivered(result, 1)
        self.assertNotIn("\r", result.err + result.out)
        self.assertEqual(len(result.out.splitlines()), 1, result.out)


class HostileNameTests(FileTestCase):
    """
    Names chosen by a malicious (but authorized) sender: the library in
    this process, not C{spc send}, against the real daemon.  Whatever the
    name, the file lands inside the inbox and nothing changes outside it.
    """

    extraClients = ("hostile",)

    @inlineCallbacks
    def setUp(self):
        yield super().setUp()
        endpoints = [TCP4ClientEndpoint(reactor, "127.0.0.1", port) for port in self.ports]
        self.session = yield connect(
            reactor,
            endpoints,
            sharedIdentity("hostile"),
            PinnedKey(self.serverFingerprint),
            f"127.0.0.1:{self.ports[0]}",
        )
        self.addCleanup(self.session.close)
        self.counter = 0

    def newSource(self) -> tuple[str, bytes]:
        """
        A source file with content no other file of the test has.
        """
        self.counter += 1
        content = f"hostile payload {self.counter}\n".encode()
        return writeFile(os.path.join(self.source, f"p{self.counter}"), content), content

    def storedAs(self, content: bytes) -> list[str]:
        """
        Where in the inbox files with C{content} are (C{/}-separated).
        """
        return [name for name, data in self.inboxFiles().items() if data == content]

    def assertNothingOutsideInbox(self, before: dict, after: dict) -> None:
        """
        Between the two snapshots of the test's root, nothing outside the
        inbox appeared or changed.
        """
        inbox = os.path.relpath(self.inbox, self.root)
        changed = [
            path for path in set(before) | set(after)
            if before.get(path) != after.get(path)
            and os.path.commonpath([inbox, path]) != inbox
        ]
        self.assertEqual(changed, [])

    @inlineCallbacks
    def sendHostile(self, name: str) -> list[str]:
        """
        Send a new file under C{name}; it must be stored once, inside the
        inbox, with nothing changing elsewhere, not even where a naive join
        of the inbox and C{name} would lead.

        @return: its path in the inbox, as components.
        """
        path, content = self.newSource()
        naive = os.path.normpath(os.path.join(self.inbox, name.replace("\0", "")))
        naiveExisted = os.path.lexists(naive)
        before = tree(self.root)
        yield self.session.sendFile(path, name=name)
        self.assertNothingOutsideInbox(before, tree(self.root))
        if os.path.commonpath([self.inbox, naive]) != self.inbox:
            self.assertEqual(os.path.lexists(naive), naiveExisted, naive)
        (stored,) = self.storedAs(content)
        parts = stored.split("/")
        self.assertNotEqual(parts[0], PARTIAL_DIRECTORY)
        for part in parts:
            self.assertNotIn(part, ("", ".", ".."))
            self.assertLessEqual(len(part.encode("utf-8")), 255)
            self.assertTrue(part.isprintable(), part)
        return parts

    @inlineCallbacks
    def test_traversal(self):
        """
        C{..} components are dropped, absolute names become relative,
        backslashes separate too: C{../../x} is C{INBOX/x},
        C{a/../../b} is C{INBOX/a/b}, C{/etc/passwd-spc-test} is
        C{INBOX/etc/passwd-spc-test}, C{..\\..\\win} is C{INBOX/win}, and
        a name with nothing left is C{INBOX/unnamed}; a component that is
        C{..} only once cut to 255 bytes and stripped (C{..}, 253 spaces,
        C{x}) is dropped like C{..}.
        """
        self.assertFalse(os.path.lexists("/etc/passwd-spc-test"))
        for name, expected in [
            ("../../x", ["x"]),
            ("a/../../b", ["a", "b"]),
            ("/etc/passwd-spc-test", ["etc", "passwd-spc-test"]),
            ("..\\..\\win", ["win"]),
            ("./../.", ["unnamed"]),
            ("c/" + (".." + " " * 253 + "x/") * 2 + "d", ["c", "d"]),
        ]:
            parts = yield self.sendHostile(name)
            self.assertEqual(parts, expected, name)
        self.assertFalse(os.path.lexists("/etc/passwd-spc-test"))

    @inlineCallbacks
    def test_controlCharacters(self):
        """
        NUL and other control and format characters are removed:
        C{a\\x00b} is C{INBOX/ab}, C{ctl\\x1b[31mred} is C{INBOX/ctl[31mred},
        and a right-to-left override cannot disguise an extension.
        """
        for name, expected in [
            ("a\x00b", ["ab"]),
            ("ctl\x1b[31mred", ["ctl[31mred"]),
            ("new\nline", ["newline"]),
            ("evil\u202etxt.exe", ["eviltxt.exe"]),
        ]:
            parts = yield self.sendHostile(name)
            self.assertEqual(parts, expected, repr(name))

    @inlineCallbacks
    def test_partialFolder(self):
        """
        A name inside the daemon's own partial folder is stored elsewhere
        in the inbox, and the partial folder gains nothing.
        """
        before = sorted(os.listdir(self.partials))
        for name, leaf in [
            (".spc-partial/evil", "evil"),
            ("./.SPC-PARTIAL/evil", "evil"),
            (".spc-partial", None),
        ]:
            parts = yield self.sendHostile(name)
            self.assertNotEqual(parts[0].lower(), PARTIAL_DIRECTORY, name)
            if leaf is not None:
                self.assertEqual(parts[-1], leaf, name)
        self.assertEqual(sorted(set(os.listdir(self.partials)) - COMPLETED_LOGS),
                         sorted(set(before) - COMPLETED_LOGS))

    @inlineCallbacks
    def test_longAndDeepNames(self):
        """
        A 300-byte component is shortened to at most 255 bytes (a prefix
        of it); 40 nested folders are cut to a bounded depth, keeping the
        file's own name and folders of the original path, in order.
        """
        long = "L" * 300 + ".txt"
        (part,) = yield self.sendHostile(long)
        self.assertTrue(long.startswith(part), part)

        folders = [f"d{i:02d}" for i in range(40)]
        parts = yield self.sendHostile("/".join(folders + ["leaf.txt"]))
        self.assertEqual(parts[-1], "leaf.txt")
        self.assertLessEqual(len(parts), 33)
        remaining = iter(folders)
        self.assertTrue(all(part in remaining for part in parts[:-1]), parts)

    @inlineCallbacks
    def test_folderTraversal(self):
        """
        A folder offer (C{DIR:}) named to leave the inbox makes its folder
        inside it, and nothing changes outside.
        """
        before = tree(self.root)
        for name in ("../../escaped", "/abs/olute", "a/../../b", "..\\..\\win"):
            delivered = yield self.session.sendFolder(name)
            made = os.path.join(self.inbox, *delivered.storedAs.split("/"))
            self.assertTrue(os.path.isdir(made), delivered)
            self.assertNotIn("..", delivered.storedAs.split("/"))
        self.assertNothingOutsideInbox(before, tree(self.root))

    @inlineCallbacks
    def test_emptyName(self):
        """
        L{spc.session.session.Session.sendFile} takes an empty name for "the
        file's own name".  An empty name on the wire is a protocol
        violation: the daemon closes the channel that carried it and
        stores nothing; the send fails once the session is closed.
        """
        path, content = self.newSource()
        yield self.session.sendFile(path, name="")
        self.assertEqual(self.storedAs(content), [os.path.basename(path)])

        path, content = self.newSource()
        before = tree(self.root)
        sender = FileSender(path, "", os.urandom(32), self.session.peer,
                            self.session.params.fragmentSize, reactor)
        failed = self.session.messenger.sendFile(sender)
        yield self.daemon.output.waitFor("file name length 0 out of range", READY_TIMEOUT)
        self.assertEqual(self.storedAs(content), [])
        self.assertNothingOutsideInbox(before, tree(self.root))
        yield self.session.close()
        yield self.assertFailure(failed, SessionClosed)

    @inlineCallbacks
    def test_reservedNames(self):
        """
        A file named like the daemon's message log does not become that
        log: messages stored afterwards are the real ones only, and the
        sender's file is kept under another name.
        """
        forged = {"from": sharedIdentity("client").fingerprint,
                  "received": "2020-01-01T00:00:00.000+00:00", "bytes": 6,
                  "text": "forged"}
        path = writeFile(os.path.join(self.source, "forged"),
                         (json.dumps(forged) + "\n").encode())
        yield self.session.sendFile(path, name=MESSAGES_NAME)
        yield self.session.sendMessage(b"real", records.KIND_TEXT)
        stored = self.storedMessages()
        self.assertEqual([r["text"] for r in stored], ["real"], stored)
        self.assertEqual(stored[0]["from"], sharedIdentity("hostile").fingerprint)
