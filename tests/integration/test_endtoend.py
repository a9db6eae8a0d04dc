"""
End-to-end tests: the real daemon (C{twistd -n spc}) and the real
C{spc send}, each in its own process, talking over loopback TCP
(DESIGN.md section 1: what users do, exit codes, inbox format, trust).

Identities are generated once per test run in this process and written to
each test's key directories (key generation is slow and C{spc keygen} is
tested on its own); everything else goes through the programs a user runs.
Processes are driven by the reactor, so the tests are Deferreds under
trial: a daemon is ready when it logs that it is serving, and is always
stopped (SIGTERM, then SIGKILL) when its test ends.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import random
import socket
import sys
from typing import NamedTuple

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.protocol import ProcessProtocol
from twisted.trial import unittest

import spc
from spc.files.names import MESSAGES_NAME
from spc.keys.identity import Identity, generateIdentity, saveIdentity

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(spc.__file__)))

SPC = ["-c", "from spc.cli.main import run; run()"]
"""
C{spc}, whether or not the console script is installed.
"""

SPC_LAST_ARGUMENT_FROM_FILE = [
    "-c",
    "import sys\n"
    "from spc.cli.main import run\n"
    "with open(sys.argv[-1], encoding='utf-8') as f:\n"
    "    sys.argv[-1] = f.read()\n"
    "run()\n",
]
"""
C{spc} with its last argument replaced by the content of the file it
names, as a shell's C{"$(cat FILE)"} would do: Linux limits one argument to
128 KiB, less than a long message.
"""

TWISTD = ["-c", "from twisted.scripts.twistd import run; run()", "-n", "--pidfile=", "spc"]
"""
C{twistd -n spc}, in the foreground, logging to stdout, without a pid file.
"""

READY_TIMEOUT = 20.0
"""
Seconds a daemon may take to log that it is serving.
"""

PROCESS_TIMEOUT = 30.0
"""
Seconds a C{spc} command may run before it is killed.
"""

STOP_TIMEOUT = 10.0
"""
Seconds a daemon may take to exit after SIGTERM before it is killed.
"""

GOODBYE_TIMEOUT = 5.0
"""
Seconds the daemon may take to end a session the sender closed; far less
than the 60 seconds a session lingers after its connections drop.
"""

_identities: dict[str, Identity] = {}


def sharedIdentity(name: str) -> Identity:
    """
    An RSA identity generated once per test run and name.
    """
    if name not in _identities:
        _identities[name] = generateIdentity()
    return _identities[name]


LISTEN_PORTS = range(20000, 32000)
"""
The ports these tests' daemons listen on: below Linux's ephemeral range
(32768 and up), from which every outgoing connection takes its source
port, so that no client socket, of this test or another running beside
it, holds a daemon's port when the daemon starts or restarts on it.
"""


def freePorts(count: int = 4, host: str = "127.0.0.1") -> list[int]:
    """
    Loopback ports, drawn at random from L{LISTEN_PORTS}, that were free a
    moment ago (another test could take one before the daemon binds it;
    drawn at random among 12,000, that race is accepted).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    ports: list[int] = []
    sockets: list[socket.socket] = []
    try:
        while len(ports) < count:
            port = random.choice(LISTEN_PORTS)
            s = socket.socket(family)
            try:
                s.bind((host, port))
            except OSError:
                s.close()
                continue
            sockets.append(s)
            ports.append(port)
        return ports
    finally:
        for s in sockets:
            s.close()


class Result(NamedTuple):
    """
    How a finished command went.

    @ivar code: the exit code (or C{-signal} if it was killed).
    @ivar out: what it wrote to stdout.
    @ivar err: what it wrote to stderr.
    """

    code: int
    out: str
    err: str


class Output(ProcessProtocol):
    """
    Keeps what a process writes and tells waiters when a text appears in it
    or when the process ends.

    @ivar stdout: bytes written to stdout.
    @ivar stderr: bytes written to stderr.
    @ivar status: the exit code, C{-signal}, or L{None} while it runs.
    """

    def __init__(self) -> None:
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.status: int | None = None
        self._textWaiters: list[tuple[str, Deferred]] = []
        self._endWaiters: list[Deferred] = []

    @property
    def log(self) -> str:
        """
        Everything written so far, stdout then stderr.
        """
        return (bytes(self.stdout) + b"\n" + bytes(self.stderr)).decode("utf-8", "replace")

    def result(self) -> Result:
        return Result(
            self.status,
            self.stdout.decode("utf-8", "replace"),
            self.stderr.decode("utf-8", "replace"),
        )

    def outReceived(self, data: bytes) -> None:
        self.stdout += data
        self._check()

    def errReceived(self, data: bytes) -> None:
        self.stderr += data
        self._check()

    def _check(self) -> None:
        log = self.log
        for waiter in list(self._textWaiters):
            text, found = waiter
            if text in log:
                self._textWaiters.remove(waiter)
                found.callback(log)

    def processEnded(self, reason) -> None:
        error = reason.value
        self.status = error.exitCode if error.exitCode is not None else -(error.signal or 0)
        waiters, self._textWaiters = self._textWaiters, []
        for text, found in waiters:
            found.errback(
                AssertionError(
                    f"the process exited ({self.status}) before writing {text!r}:\n{self.log}"
                )
            )
        ended, self._endWaiters = self._endWaiters, []
        for waiter in ended:
            waiter.callback(self.result())

    def waitFor(self, text: str, timeout: float) -> Deferred:
        """
        @return: a Deferred firing with the output once C{text} appears in
            it, or failing if the process ends first or C{timeout} seconds
            pass.
        """
        if text in self.log:
            return succeed(self.log)
        if self.status is not None:
            return self._fail(f"the process exited ({self.status}) before writing {text!r}")
        found: Deferred = Deferred()
        self._textWaiters.append((text, found))

        def timedOut() -> None:
            self._textWaiters.remove((text, found))
            found.errback(
                AssertionError(f"{text!r} not written within {timeout} s:\n{self.log}")
            )

        call = reactor.callLater(timeout, timedOut)

        def cancelTimer(result):
            if call.active():
                call.cancel()
            return result

        return found.addBoth(cancelTimer)

    def _fail(self, why: str) -> Deferred:
        waiter: Deferred = Deferred()
        waiter.errback(AssertionError(f"{why}:\n{self.log}"))
        return waiter

    def whenEnded(self) -> Deferred:
        """
        @return: a Deferred firing with the L{Result} once the process ended.
        """
        if self.status is not None:
            return succeed(self.result())
        waiter: Deferred = Deferred()
        self._endWaiters.append(waiter)
        return waiter


def spawn(args: list[str], cwd: str, env: dict[str, str], stdin: bytes = b""):
    """
    Start C{python args} in C{cwd}, with C{stdin} on its stdin, then its
    end (C{spc send} reads a message from stdin when it is given nothing
    else).

    @return: the L{Output} protocol and the process transport.
    """
    output = Output()
    transport = reactor.spawnProcess(
        output, sys.executable, [sys.executable, *args], env=env, path=cwd
    )
    transport.write(stdin)
    transport.closeStdin()
    return output, transport


def ipv6Loopback() -> bool:
    """
    Whether this host can listen on C{::1}.
    """
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def signal(transport, name: str) -> None:
    """
    Send a signal, ignoring a process that already exited.
    """
    try:
        transport.signalProcess(name)
    except ProcessExitedAlready:
        pass


def run(args: list[str], cwd: str, env: dict[str, str]) -> Deferred:
    """
    Run C{python args} to completion, killing it after L{PROCESS_TIMEOUT}.

    @return: a Deferred firing with its L{Result}.
    """
    output, transport = spawn(args, cwd, env)
    kill = reactor.callLater(PROCESS_TIMEOUT, signal, transport, "KILL")

    def finished(result: Result) -> Result:
        if kill.active():
            kill.cancel()
        return result

    return output.whenEnded().addCallback(finished)


class Daemon:
    """
    A C{twistd -n spc} process.

    @ivar output: its L{Output}; the log is its stdout.
    @ivar transport: its process transport.
    """

    def __init__(self, cwd: str, env: dict[str, str], args: list[str]) -> None:
        self._cwd = cwd
        self._env = env
        self._args = args
        self.output: Output | None = None
        self.transport = None

    def start(self) -> Deferred:
        """
        Start the daemon.

        @return: a Deferred firing once it logs that it is serving.
        """
        self.output, self.transport = spawn(TWISTD + self._args, self._cwd, self._env)
        return self.output.waitFor(" serving ", READY_TIMEOUT)

    def signal(self, name: str) -> None:
        signal(self.transport, name)

    def stop(self) -> Deferred:
        """
        SIGTERM, and SIGKILL if it has not exited after L{STOP_TIMEOUT}.

        @return: a Deferred firing with its L{Result}.
        """
        if self.output is None:
            return succeed(None)
        ended = self.output.whenEnded()
        if self.output.status is None:
            self.signal("TERM")
            kill = reactor.callLater(STOP_TIMEOUT, self.signal, "KILL")

            def cancelKill(result):
                if kill.active():
                    kill.cancel()
                return result

            ended.addBoth(cancelKill)
        return ended


class EndToEndTestCase(unittest.TestCase):
    """
    A working directory with a server key directory, a client key directory
    and four loopback ports, and helpers to run the daemon and C{spc send}.

    @ivar root: the test's working directory (the processes' cwd).
    @ivar env: the processes' environment.
    @ivar ports: the daemon's ports.
    @ivar serverKeys: the daemon's key directory (identity C{"server"}).
    @ivar clientKeys: the sender's key directory (identity C{"client"}).
    @ivar inbox: the daemon's C{--inbox}.
    @ivar daemonMayLogErrors: whether the test provokes errors that the
        daemon logs with a traceback; otherwise a traceback in a daemon's
        log fails the test.
    """

    timeout = 90
    server = "127.0.0.1"
    daemonMayLogErrors = False

    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(self.root)
        self.env = {
            "PYTHONPATH": REPO_ROOT,
            "PATH": os.environ.get("PATH", os.defpath),
            "SPC_HOME": os.path.join(self.root, "home"),
            "HOME": self.root,
            "PYTHONUTF8": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        self.ports = freePorts(4, self.server)
        self.serverKeys = self.makeKeyDir("server")
        self.clientKeys = self.makeKeyDir("client")
        self.inbox = os.path.join(self.root, "inbox")

    # Set-up.

    def makeKeyDir(self, name: str, directory: str | None = None) -> str:
        """
        Write identity C{name} to a new key directory (by default
        C{ROOT/name}).

        @return: the directory.
        """
        path = os.path.join(self.root, directory or name)
        saveIdentity(sharedIdentity(name), path)
        return path

    def authorize(self, keyDir: str, *names: str) -> str:
        """
        Write C{keyDir/authorized_keys} listing the identities C{names}.

        @return: its path.
        """
        path = os.path.join(keyDir, "authorized_keys")
        with open(path, "w") as f:
            f.write("# clients allowed to send to this daemon\n")
            for name in names:
                f.write(f"{sharedIdentity(name).fingerprint} {name}\n")
        return path

    @property
    def portList(self) -> str:
        return ",".join(map(str, self.ports))

    @property
    def serverFingerprint(self) -> str:
        return sharedIdentity("server").fingerprint

    def startDaemon(self, *extra: str, keyDir: str | None = None, inbox: str | None = None):
        """
        Run C{twistd -n spc} on the test's ports until the test ends, with
        the server key directory and inbox unless others are given, and the
        C{extra} options.

        @return: a Deferred firing with the L{Daemon} once it is serving.
        """
        daemon = Daemon(
            self.root,
            self.env,
            [
                "--key-dir", keyDir or self.serverKeys,
                "--ports", self.portList,
                "--interface", self.server,
                "--inbox", inbox or self.inbox,
                *extra,
            ],
        )
        self.addCleanup(self.checkDaemonLog, daemon)
        self.addCleanup(daemon.stop)
        return daemon.start().addCallback(lambda _: daemon)

    def checkDaemonLog(self, daemon: Daemon) -> None:
        """
        Once C{daemon} stopped: it logged no traceback or unhandled error,
        unless the test allows it.
        """
        if daemon.output is None or self.daemonMayLogErrors:
            return
        log = daemon.output.log
        for marker in ["Traceback", "Unhandled error"]:
            self.assertNotIn(marker, log, log)

    # Running commands.

    def spc(self, *args: str) -> Deferred:
        """
        Run C{spc args}.

        @return: a Deferred firing with its L{Result}.
        """
        return run(SPC + list(args), self.root, self.env)

    def sendArgs(self, *messages: str, keyDir: str | None = None, pin: bool = True) -> list[str]:
        """
        The arguments of C{spc send} to the test's daemon, pinning its key
        unless C{pin} is false.
        """
        args = [
            "send",
            "--key-dir", keyDir or self.clientKeys,
            "--server", self.server,
            "--ports", self.portList,
        ]
        if pin:
            args += ["--server-fingerprint", self.serverFingerprint]
        for message in messages:
            args += ["--message", message]
        return args

    def send(self, *messages: str, keyDir: str | None = None, pin: bool = True, extra=()):
        """
        Run C{spc send} to the test's daemon.

        @return: a Deferred firing with its L{Result}.
        """
        return self.spc(*self.sendArgs(*messages, keyDir=keyDir, pin=pin), *extra)

    # Checks.

    def storedMessages(self, inbox: str | None = None) -> list[dict]:
        """
        The records in C{INBOX/messages.jsonl}, or C{[]} if there is none.
        """
        path = os.path.join(inbox or self.inbox, MESSAGES_NAME)
        if not os.path.exists(path):
            return []
        with open(path, "rb") as f:
            data = f.read()
        self.assertTrue(data.endswith(b"\n"), data[-100:])
        return [json.loads(line) for line in data.decode("utf-8").split("\n")[:-1]]

    def assertDelivered(self, result: Result, count: int, channels: int = 4) -> None:
        """
        C{spc send} exited 0 and said it delivered C{count} messages.
        """
        self.assertEqual(result.code, 0, result)
        self.assertIn(f"Delivered {count} message(s) and ", result.out)
        self.assertIn(f"over {channels} channel(s) to {self.serverFingerprint}", result.out)
        self.assertNotIn("Traceback", result.err)

    def assertFailed(self, result: Result, code: int, *fragments: str) -> None:
        """
        C{spc} exited with C{code} after writing one line, with every
        fragment, to stderr, and nothing to stdout.
        """
        self.assertEqual(result.code, code, result)
        self.assertNotIn("Traceback", result.err)
        self.assertEqual(result.out, "", result)
        self.assertEqual(result.err.count("\n"), 1, result.err)
        self.assertTrue(result.err.startswith("spc: "), result.err)
        for fragment in fragments:
            self.assertIn(fragment, result.err)

    def assertRecord(self, record: dict, text: str, sender: str = "client") -> None:
        """
        C{record} stores C{text} from C{sender}, received just now.
        """
        self.assertEqual(
            {key: record[key] for key in ("from", "bytes", "text")},
            {
                "from": sharedIdentity(sender).fingerprint,
                "bytes": len(text.encode("utf-8")),
                "text": text,
            },
        )
        self.assertEqual(set(record), {"from", "from_name", "bytes", "text", "received"})
        received = datetime.datetime.fromisoformat(record["received"])
        self.assertIsNotNone(received.tzinfo)
        age = datetime.datetime.now(datetime.timezone.utc) - received
        self.assertTrue(
            datetime.timedelta(seconds=-5) < age < datetime.timedelta(minutes=5), received
        )


class DeliveryTests(EndToEndTestCase):
    """
    A daemon that authorizes the client; the client pins the daemon's key.
    """

    @inlineCallbacks
    def setUp(self):
        super().setUp()
        self.authorize(self.serverKeys, "client")
        self.daemon = yield self.startDaemon()

    @inlineCallbacks
    def test_messagesStored(self):
        """
        C{spc send} with two messages exits 0 and says it delivered them;
        the inbox has exactly one JSON line per message, in order, with the
        client's fingerprint, the byte count, the text and the time.
        """
        result = yield self.send("hello", "wörld")
        self.assertDelivered(result, 2)
        self.assertIn("11 B sent", result.out)
        self.assertEqual(result.err, "")
        records = self.storedMessages()
        self.assertEqual(len(records), 2, records)
        self.assertRecord(records[0], "hello")
        self.assertRecord(records[1], "wörld")
        self.assertIn(
            f"Stored a message of 6 bytes from {sharedIdentity('client').fingerprint}",
            self.daemon.output.log,
        )

    @inlineCallbacks
    def test_messageNotUTF8(self):
        """
        Issue 9, item 15: a message whose bytes (from the command line) are
        not UTF-8 is sent as those bytes, and stored as base64, instead of
        failing with a traceback.
        """
        result = yield self.send(os.fsdecode(b"caf\xe9"))
        self.assertDelivered(result, 1)
        self.assertEqual(result.err, "")
        [record] = self.storedMessages()
        self.assertEqual(base64.b64decode(record["base64"]), b"caf\xe9")

    @inlineCallbacks
    def test_longMessage(self):
        """
        A message of 300,000 characters (over 64 KiB fragments, so spread
        over the channels) arrives intact.
        """
        text = "".join(f"{i:06d}ä\n" for i in range(300_000 // 8))
        self.assertEqual(len(text), 300_000)
        path = os.path.join(self.root, "long.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        result = yield run(
            SPC_LAST_ARGUMENT_FROM_FILE + self.sendArgs() + ["--message", path],
            self.root,
            self.env,
        )
        self.assertDelivered(result, 1)
        self.assertIn("329.6 KiB sent", result.out)
        (record,) = self.storedMessages()
        self.assertRecord(record, text)

    @inlineCallbacks
    def test_manyMessages(self):
        """
        More messages than the session lets be in flight at once (32) are
        all delivered, in order.
        """
        messages = [f"message {i}" for i in range(40)]
        result = yield self.send(*messages)
        self.assertDelivered(result, 40)
        self.assertEqual([r["text"] for r in self.storedMessages()], messages)

    @inlineCallbacks
    def test_senderSaysGoodbye(self):
        """
        C{spc send} closes its session before it exits: the daemon hears
        the goodbye and ends the session at once, rather than keeping it
        for a minute in case the channels come back.
        """
        result = yield self.send("bye")
        self.assertDelivered(result, 1)
        yield self.daemon.output.waitFor("said goodbye", GOODBYE_TIMEOUT)
        yield self.daemon.output.waitFor("ended", GOODBYE_TIMEOUT)

    @inlineCallbacks
    def test_unauthorizedClient(self):
        """
        A client missing from authorized_keys is refused with exit code 3
        and one line pointing at authorized_keys; nothing is stored, and the
        daemon goes on serving authorized clients.
        """
        intruder = self.makeKeyDir("intruder")
        result = yield self.send("let me in", keyDir=intruder)
        self.assertFailed(result, 3, "authorized_keys")
        self.assertEqual(self.storedMessages(), [])
        self.assertIn(
            f"client {sharedIdentity('intruder').fingerprint} is not authorized",
            self.daemon.output.log,
        )
        result = yield self.send("hello")
        self.assertDelivered(result, 1)
        (record,) = self.storedMessages()
        self.assertRecord(record, "hello")

    @inlineCallbacks
    def test_wrongServerFingerprint(self):
        """
        A pin that does not match the daemon's key is exit code 3 with both
        fingerprints, and nothing is sent.
        """
        other = sharedIdentity("other").fingerprint
        args = self.sendArgs("secret", pin=False) + ["--server-fingerprint", other]
        result = yield self.spc(*args)
        self.assertFailed(
            result, 3, f"expected {other}", f"received {self.serverFingerprint}"
        )
        self.assertEqual(self.storedMessages(), [])

    @inlineCallbacks
    def test_malformedFingerprint(self):
        """
        A --server-fingerprint that is not a fingerprint is a configuration
        error (exit code 2), found before connecting.
        """
        args = self.sendArgs("x", pin=False) + ["--server-fingerprint", "SHA256:short"]
        result = yield self.spc(*args)
        self.assertFailed(result, 2, "--server-fingerprint")
        self.assertNotIn("opened session", self.daemon.output.log)

    @inlineCallbacks
    def test_channelCountMismatch(self):
        """
        A sender that knows only two of the daemon's four ports fails with a
        configuration error (exit code 2) rather than a partial session,
        saying how many channels the daemon has.
        """
        args = self.sendArgs("x")
        args[args.index("--ports") + 1] = f"{self.ports[0]},{self.ports[1]}"
        result = yield self.spc(*args)
        self.assertFailed(result, 2, "the daemon has 4 channels", "you gave 2")
        self.assertEqual(self.storedMessages(), [])

    @inlineCallbacks
    def test_inboxUnwritable(self):
        """
        If the daemon cannot store a message, C{spc send} fails with exit
        code 4 and one line instead of claiming delivery; once the inbox is
        fixed the daemon accepts messages again.
        """
        self.daemonMayLogErrors = True
        os.mkdir(os.path.join(self.inbox, MESSAGES_NAME))
        result = yield self.send("lost")
        self.assertEqual(result.code, 4, result)
        self.assertEqual(result.out, "")
        self.assertEqual(
            result.err.splitlines(),
            [
                'spc: message 1 ("lost") was not delivered: the daemon could not deliver it',
                "spc: 0 of 1 items delivered",
            ],
        )
        os.rmdir(os.path.join(self.inbox, MESSAGES_NAME))
        result = yield self.send("kept")
        self.assertDelivered(result, 1)
        self.assertEqual([r["text"] for r in self.storedMessages()], ["kept"])


class TrustOnFirstUseTests(EndToEndTestCase):
    """
    The sender's C{known_hosts}: strict by default, C{--accept-new} for
    first contact, and a changed key always refused.
    """

    @inlineCallbacks
    def setUp(self):
        super().setUp()
        self.authorize(self.serverKeys, "client")
        self.daemon = yield self.startDaemon()
        self.knownHosts = os.path.join(self.clientKeys, "known_hosts")

    @inlineCallbacks
    def test_unknownServer(self):
        """
        With no pin and no known_hosts entry the sender refuses the server
        (exit code 3), says how to trust it, records nothing and sends
        nothing.
        """
        result = yield self.send("hello", pin=False)
        self.assertFailed(result, 3, "--accept-new", self.serverFingerprint)
        self.assertFalse(os.path.exists(self.knownHosts))
        self.assertEqual(self.storedMessages(), [])

    @inlineCallbacks
    def test_acceptNewSaysSo(self):
        """
        C{--accept-new} tells the user that it recorded the server's key in
        known_hosts (trust on first use is not silent).
        """
        result = yield self.send("hello", pin=False, extra=["--accept-new"])
        self.assertDelivered(result, 1)
        self.assertIn("known_hosts", result.out + result.err)

    @inlineCallbacks
    def test_acceptNewThenChangedKey(self):
        """
        C{--accept-new} delivers and records C{127.0.0.1:FIRSTPORT
        SHA256:...} in known_hosts; later sends use that entry. A daemon
        with another key on the same ports is then refused (exit code 3)
        with both fingerprints, even with C{--accept-new}, and nothing is
        stored or recorded.
        """
        result = yield self.send("first", pin=False, extra=["--accept-new"])
        self.assertDelivered(result, 1)
        with open(self.knownHosts) as f:
            recorded = f.read()
        self.assertEqual(recorded, f"127.0.0.1:{self.ports[0]} {self.serverFingerprint}\n")

        result = yield self.send("second", pin=False)
        self.assertDelivered(result, 1)
        self.assertEqual([r["text"] for r in self.storedMessages()], ["first", "second"])

        yield self.daemon.stop()
        impostorKeys = self.makeKeyDir("impostor")
        self.authorize(impostorKeys, "client")
        impostorInbox = os.path.join(self.root, "impostor-inbox")
        yield self.startDaemon(keyDir=impostorKeys, inbox=impostorInbox)
        impostor = sharedIdentity("impostor").fingerprint
        for extra in [(), ("--accept-new",)]:
            result = yield self.send("third", pin=False, extra=extra)
            self.assertFailed(
                result, 3, f"expected {self.serverFingerprint}", f"received {impostor}",
                "CHANGED",
            )
        self.assertEqual(self.storedMessages(impostorInbox), [])
        with open(self.knownHosts) as f:
            self.assertEqual(f.read(), recorded)


class AuthorizedKeysReloadTests(EndToEndTestCase):
    """
    The daemon re-reads authorized_keys on SIGHUP.
    """

    @inlineCallbacks
    def test_sighupAdmitsNewClient(self):
        """
        A daemon started with an empty authorized_keys says every client
        will be refused, and refuses the client (exit code 3); after the
        client's fingerprint is added and the daemon gets SIGHUP, the same
        send succeeds.
        """
        path = self.authorize(self.serverKeys)
        daemon = yield self.startDaemon()
        self.assertIn("every client will be refused", daemon.output.log)
        result = yield self.send("early")
        self.assertFailed(result, 3, "authorized_keys")

        self.authorize(self.serverKeys, "client")
        reloaded = daemon.output.waitFor("Reloaded authorized keys", READY_TIMEOUT)
        daemon.signal("HUP")
        log = yield reloaded
        self.assertIn(f"1 authorized client key(s) from {path}", log)
        result = yield self.send("late")
        self.assertDelivered(result, 1)
        self.assertEqual([r["text"] for r in self.storedMessages()], ["late"])

    @inlineCallbacks
    def test_sighupSkipsBadLines(self):
        """
        If authorized_keys has a bad line when SIGHUP arrives, the daemon
        logs its file and line, skips it and applies the others: the client
        listed on a good line still gets in.
        """
        path = self.authorize(self.serverKeys, "client")
        daemon = yield self.startDaemon()
        result = yield self.send("before")
        self.assertDelivered(result, 1)
        with open(path, "w") as f:
            f.write(f"not a fingerprint\n{sharedIdentity('client').fingerprint} client\n")
        reloaded = daemon.output.waitFor("Reloaded authorized keys", READY_TIMEOUT)
        daemon.signal("HUP")
        log = yield reloaded
        self.assertIn(f"Skipped a bad line: {path}, line 1: ", log)
        self.assertNotIn("not a fingerprint", log)
        result = yield self.send("still here")
        self.assertDelivered(result, 1)
        self.assertEqual([r["text"] for r in self.storedMessages()], ["before", "still here"])

    @inlineCallbacks
    def test_sighupRevokesDespiteBadLine(self):
        """
        A revocation saved with a typo on another line still revokes: after
        SIGHUP the removed client is refused (exit code 3).
        """
        path = self.authorize(self.serverKeys, "client")
        daemon = yield self.startDaemon()
        result = yield self.send("before")
        self.assertDelivered(result, 1)
        with open(path, "w") as f:
            f.write("SHA256:typo someone-else\n")
        reloaded = daemon.output.waitFor("Reloaded authorized keys", READY_TIMEOUT)
        daemon.signal("HUP")
        log = yield reloaded
        self.assertIn(f"{path}, line 1", log)
        result = yield self.send("after")
        self.assertFailed(result, 3, "authorized_keys")
        self.assertEqual([r["text"] for r in self.storedMessages()], ["before"])

    @inlineCallbacks
    def test_sighupRefusesFileOthersMayWrite(self):
        """
        If authorized_keys is writable by others when SIGHUP arrives, the
        daemon keeps serving but admits nobody, and says why and which
        C{chmod} fixes it; fixed and reloaded, it admits the client again.
        """
        path = self.authorize(self.serverKeys, "client")
        daemon = yield self.startDaemon()
        os.chmod(path, 0o666)
        refusing = daemon.output.waitFor("Refusing every client", READY_TIMEOUT)
        daemon.signal("HUP")
        log = yield refusing
        self.assertIn(f"chmod go-w {path}", log)
        result = yield self.send("refused")
        self.assertFailed(result, 3, "authorized_keys")
        os.chmod(path, 0o644)
        reloaded = daemon.output.waitFor("Reloaded authorized keys", READY_TIMEOUT)
        daemon.signal("HUP")
        yield reloaded
        result = yield self.send("admitted")
        self.assertDelivered(result, 1)
        self.assertEqual([r["text"] for r in self.storedMessages()], ["admitted"])


class AllowAnyClientTests(EndToEndTestCase):
    """
    C{--allow-any-client} admits clients that are in no authorized_keys.
    """

    @inlineCallbacks
    def test_anyClientDelivers(self):
        """
        Without an authorized_keys file but with C{--allow-any-client}, the
        daemon says so at start-up and stores what any client sends, under
        that client's fingerprint.
        """
        daemon = yield self.startDaemon("--allow-any-client")
        self.assertIn("any client may connect", daemon.output.log)
        self.assertNotIn("every client will be refused", daemon.output.log)
        stranger = self.makeKeyDir("intruder")
        result = yield self.send("hi", keyDir=stranger)
        self.assertDelivered(result, 1)
        (record,) = self.storedMessages()
        self.assertRecord(record, "hi", sender="intruder")


class IPv6Tests(EndToEndTestCase):
    """
    The daemon on C{--interface ::1} and the sender on C{--server ::1}.
    """

    server = "::1"

    if not ipv6Loopback():
        skip = "this host cannot listen on ::1"

    @inlineCallbacks
    def test_acceptNewOverIPv6(self):
        """
        Over IPv6 the sender delivers, and known_hosts names the server
        C{[::1]:FIRSTPORT}.
        """
        self.authorize(self.serverKeys, "client")
        yield self.startDaemon()
        result = yield self.send("sechs", pin=False, extra=["--accept-new"])
        self.assertDelivered(result, 1)
        with open(os.path.join(self.clientKeys, "known_hosts")) as f:
            self.assertEqual(f.read(), f"[::1]:{self.ports[0]} {self.serverFingerprint}\n")
        (record,) = self.storedMessages()
        self.assertRecord(record, "sechs")


class SuiteMapTests(EndToEndTestCase):
    """
    A daemon with a non-default suite map (C{--suites}).
    """

    SUITES = "aes-256-gcm,chacha20,aes-256-cbc,chacha20"

    @inlineCallbacks
    def setUp(self):
        super().setUp()
        self.authorize(self.serverKeys, "client")
        self.daemon = yield self.startDaemon("--suites", self.SUITES)

    @inlineCallbacks
    def test_mismatch(self):
        """
        A sender whose --suites leaves out a suite of the daemon's fails
        with a configuration error (exit code 2) that names it; nothing is
        stored.
        """
        result = yield self.send("x", extra=["--suites", "aes-256-cbc,chacha20"])
        self.assertFailed(result, 2, "channel 0 uses AES-256-GCM")
        self.assertEqual(self.storedMessages(), [])

    @inlineCallbacks
    def test_match(self):
        """
        With the daemon's C{--suites}, the sender delivers.
        """
        result = yield self.send("x", extra=["--suites", self.SUITES])
        self.assertDelivered(result, 1)


class SenderFailureTests(EndToEndTestCase):
    """
    C{spc send} failures that need no daemon: one clear line, the right
    exit code, never a traceback.
    """

    @inlineCallbacks
    def test_usageError(self):
        """
        C{spc send} without --message, files or anything on stdin is a
        usage error: exit code 2, the reason and a --help hint.
        """
        result = yield self.spc("send", "--server", "127.0.0.1", "--ports", self.portList)
        self.assertEqual(result.code, 2, result)
        self.assertNotIn("Traceback", result.err)
        self.assertEqual(
            result.err.splitlines(),
            [
                "spc: nothing to send: stdin was empty; give --message TEXT or files",
                "Try 'spc send --help' for more information.",
            ],
        )

    @inlineCallbacks
    def test_daemonDown(self):
        """
        With nothing listening, C{spc send} exits 1 with one line saying it
        could not connect.
        """
        result = yield self.send("hello")
        self.assertFailed(result, 1, "connect", f"127.0.0.1:{self.ports[0]}")

    @inlineCallbacks
    def test_missingIdentity(self):
        """
        A sender without an identity is told to run C{spc keygen}.
        """
        missing = os.path.join(self.root, "nokeys")
        result = yield self.send("hello", keyDir=missing)
        self.assertFailed(result, 1, "spc keygen")

    @inlineCallbacks
    def test_trustFilesOthersMayWrite(self):
        """
        C{spc send} refuses a key directory or a known_hosts that others may
        write (exit code 1, as for other key file errors), with one line
        naming the C{chmod} that fixes it, before it connects anywhere.
        """
        os.chmod(self.clientKeys, 0o777)
        result = yield self.send("hello")
        self.assertFailed(result, 1, f"chmod go-w {self.clientKeys}")
        os.chmod(self.clientKeys, 0o700)
        knownHosts = os.path.join(self.clientKeys, "known_hosts")
        with open(knownHosts, "w") as f:
            f.write(f"{self.server}:{self.ports[0]} {self.serverFingerprint}\n")
        os.chmod(knownHosts, 0o666)
        result = yield self.send("hello", pin=False)
        self.assertFailed(result, 1, f"chmod go-w {knownHosts}")

    @inlineCallbacks
    def test_unknownEndpointType(self):
        """
        A --connect endpoint of an unknown type is a usage error (exit code
        2) naming it, not a traceback.
        """
        result = yield self.spc(
            "send", "--key-dir", self.clientKeys,
            "--connect", f"bogus:127.0.0.1:{self.ports[0]}",
            "--server-fingerprint", self.serverFingerprint, "--message", "x",
        )
        self.assertEqual(result.code, 2, result)
        self.assertNotIn("Traceback", result.err)
        self.assertIn("bogus", result.err)


class DemoCommandTests(EndToEndTestCase):
    """
    C{spc demo}, the first command DESIGN.md section 1 shows a user.
    """

    @inlineCallbacks
    def test_demo(self):
        """
        C{spc demo} exits 0 and reports verified content over the channels
        it was asked for.
        """
        result = yield self.spc("demo", "--channels", "2")
        self.assertEqual(result.code, 0, result)
        self.assertIn("Session over 2 channels", result.out)
        self.assertIn("Content verified", result.out)
        self.assertEqual(result.err, "")


class DaemonStartupTests(EndToEndTestCase):
    """
    The daemon refuses to start on a bad set-up with one clear line.
    """

    def twistd(self, *args: str) -> Deferred:
        return run(TWISTD + list(args), self.root, self.env)

    def assertOneLine(self, result: Result, *fragments: str) -> None:
        """
        The daemon exited non-zero, without a traceback, and one line of
        its output has every fragment.
        """
        self.assertNotEqual(result.code, 0, result)
        output = result.out + result.err
        self.assertNotIn("Traceback", output)
        lines = [line for line in output.splitlines() if all(f in line for f in fragments)]
        self.assertEqual(len(lines), 1, output)
        self.assertNotIn(" serving ", output)

    @inlineCallbacks
    def test_missingKeyDir(self):
        """
        Without an identity the daemon exits non-zero with one line telling
        the operator to run C{spc keygen}.
        """
        missing = os.path.join(self.root, "nokeys")
        result = yield self.twistd(
            "--key-dir", missing, "--ports", self.portList, "--inbox", self.inbox
        )
        self.assertOneLine(result, "spc keygen", missing)

    @inlineCallbacks
    def test_badAuthorizedKeys(self):
        """
        A malformed authorized_keys stops the daemon with the file and line.
        """
        path = os.path.join(self.serverKeys, "authorized_keys")
        with open(path, "w") as f:
            f.write(f"{sharedIdentity('client').fingerprint}\nSHA256:oops\n")
        result = yield self.twistd(
            "--key-dir", self.serverKeys, "--ports", self.portList, "--inbox", self.inbox
        )
        self.assertOneLine(result, f"{path}, line 2")

    @inlineCallbacks
    def test_keyDirOthersMayWrite(self):
        """
        A key directory that others may write stops the daemon with one
        line naming it and the C{chmod} that fixes it.
        """
        self.authorize(self.serverKeys, "client")
        os.chmod(self.serverKeys, 0o777)
        result = yield self.twistd(
            "--key-dir", self.serverKeys, "--ports", self.portList, "--inbox", self.inbox
        )
        self.assertOneLine(result, f"chmod go-w {self.serverKeys}")

    @inlineCallbacks
    def test_portInUse(self):
        """
        A port already taken stops the daemon with one line naming it, not
        a traceback.
        """
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", self.ports[1]))
        taken.listen()
        result = yield self.twistd(
            "--key-dir", self.serverKeys, "--ports", self.portList, "--inbox", self.inbox
        )
        self.assertOneLine(result, str(self.ports[1]))
