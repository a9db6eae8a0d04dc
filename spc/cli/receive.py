# -*- test-case-name: tests.unit.test_receive,tests.integration.test_receive -*-
"""
C{spc receive}: a receiver in the foreground, the shortest way to move
files (issue 13, part 2).

With no daemon and no key directory set up beforehand it listens, prints a
one-time code and the command for the sender, pairs with the sender that
uses it (amendment A20), stores what arrives in the chosen directory with
the inbox's rules (L{spc.files.store}: never outside it, never over an
existing file), prints each stored file, and exits once that sender said
goodbye: 0 when it did, 1 when its session ended any other way, 3 when
the pairing failed or the code lapsed unused.

The key is the key directory's (C{--key-dir}, C{$SPC_HOME} or
C{~/.config/spc}), made there on first use as C{spc keygen} would: a
sender that recorded it once finds the same key next time.  The sender is
trusted for this run only, unless C{--remember} adds it to the key
directory's C{authorized_keys}, where a daemon and later runs of C{spc
receive} find it (and admit it without a code).
"""

from __future__ import annotations

import os

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import quoteStringArgument, serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.task import LoopingCall
from twisted.python import usage
from zope.interface import implementer

from spc.addresses import formatHostPort
from spc.cli.command import EXIT_FAILURE, EXIT_OK, Context, KeyDirMixin, ReactorCommand
from spc.cli.options import MAX_CHANNELS
from spc.cli.pair import hostForOthers, minutes, parseDuration, reportIdentity
from spc.cli.progress import ProgressBar
from spc.cli.target import DEFAULT_PORT
from spc.cli.units import formatSize
from spc.errors import ConfigurationError, SessionReset
from spc.files import completed
from spc.files.names import PARTIAL_DIRECTORY, withoutControls
from spc.files.store import FileStore
from spc.interfaces import IFileReceiver, IMessageReceiver
from spc.keys.pairedkeys import PairedClients, authorizeKey, checkName
from spc.keys.trust import AUTHORIZED_KEYS_NAME, AuthorizedKeys
from spc.protocol import records
from spc.protocol.paircode import DEFAULT_WORDS
from spc.server.invites import InviteDesk
from spc.server.service import ServerService
from spc.transport.closing import ALERT_LINGER

__all__ = ["EXIT_PAIRING_FAILED", "ReceiveOptions", "senderCommand"]

EXIT_PAIRING_FAILED = 3
PROGRESS_INTERVAL = 0.25
SESSION_WAIT = 60.0
"""
Seconds a paired sender has to open its session.
"""


def senderCommand(code: str, host: str, port: int) -> str:
    """
    The command the sender runs: the first port is enough, the others are
    announced in its hello (amendment A19).
    """
    return f"spc send --code {code} --server {formatHostPort(host, port)} FILE..."


def _listening(port: int, interface: str) -> str:
    return f"tcp:{port}:interface={quoteStringArgument(interface)}"


@implementer(IMessageReceiver, IFileReceiver)
class _Printer:
    """
    Says what arrived: each stored file, and each message's text.

    @ivar directory: where the files go.
    @ivar storedBytes: bytes of the files stored so far.
    @ivar stored: how many files were stored.
    @ivar messages: how many messages arrived.
    """

    def __init__(self, out, directory: str) -> None:
        self._out = out
        self.directory = directory
        self.storedBytes = 0
        self.stored = 0
        self.messages = 0

    def messageReceived(self, session, data: bytes, kind: int) -> None:
        self.messages += 1
        try:
            text = withoutControls(data.decode("utf-8"))
        except UnicodeDecodeError:
            text = f"({len(data)} bytes that are not UTF-8 text)"
        self._out.write(f"Message: {text}\n")
        self._out.flush()

    def fileReceived(self, session, name: str, path: str, size: int) -> None:
        self.stored += 1
        self.storedBytes += size
        shown = withoutControls(os.path.relpath(path, self.directory))
        self._out.write(f"Stored {shown} ({formatSize(size)})\n")
        self._out.flush()


class ReceiveOptions(KeyDirMixin, ReactorCommand):
    """
    C{spc receive}: receive from one sender, paired with a one-time code.
    """

    synopsis = (
        "[--dir DIR] [--port 9000] [--channels 4] [--interface ADDRESS] "
        "[--expires 10m] [--remember [--name NAME]]"
    )
    optParameters = [
        ["dir", None, ".", "Where received files go."],
        ["port", None, str(DEFAULT_PORT), "The first port to listen on."],
        ["channels", None, "4", "How many ports (channels), from --port on."],
        ["interface", None, "0.0.0.0", "The address to listen on (:: for IPv6)."],
        ["expires", None, "10m", "How long the code may be used (e.g. 90s, 10m)."],
        ["words", None, str(DEFAULT_WORDS), "Secret words in the code: 2 or 3."],
        ["name", None, "", "With --remember: the sender's name in authorized_keys."],
    ]
    optFlags = [
        ["remember", None,
         "Keep trusting the sender after this run (KEYDIR/authorized_keys)."],
        ["no-progress", None, "Show no progress bar."],
    ]

    def postOptions(self) -> None:
        port, channels = self["port"], self["channels"]
        if not (channels.isascii() and channels.isdigit() and 1 <= int(channels) <= MAX_CHANNELS):
            raise usage.UsageError(f"--channels must be 1 to {MAX_CHANNELS}")
        if not (port.isascii() and port.isdigit() and 0 < int(port) <= 65536 - int(channels)):
            raise usage.UsageError("--port must leave room for every channel below 65536")
        self["ports"] = list(range(int(port), int(port) + int(channels)))
        self["expires"] = parseDuration(self["expires"], "expires")
        if self["words"] not in ("2", "3"):
            raise usage.UsageError("--words must be 2 or 3")
        try:
            checkName(self["name"])
        except ValueError as error:
            raise usage.UsageError(f"--name: {error}") from None
        if self["name"] and not self["remember"]:
            raise usage.UsageError("--name is the name --remember records")

    def runWithReactor(self, reactor, context: Context):
        keyDir = self.keyDir(context)
        identity = reportIdentity(context, keyDir)
        directory = os.path.abspath(self["dir"])
        trust = PairedClients(AuthorizedKeys.fromFile(os.path.join(keyDir, AUTHORIZED_KEYS_NAME)))
        printer = _Printer(context.stdout, directory)
        service = ServerService(
            reactor,
            [
                serverFromString(reactor, _listening(port, self["interface"]))
                for port in self["ports"]
            ],
            identity,
            trust,
            printer,
            files=FileStore(directory),
        )
        run = _Run(reactor, context, service, trust, printer, keyDir, self)
        return run.start()


class _Run:
    """
    One C{spc receive}: the service, the invite, and the end.
    """

    def __init__(self, reactor, context, service, trust, printer, keyDir, options) -> None:
        self._reactor = reactor
        self._context = context
        self._service = service
        self._trust = trust
        self._printer = printer
        self._keyDir = keyDir
        self._options = options
        self._done: Deferred = Deferred()
        self._paired: str | None = None
        self._session = None
        self._timer = None
        self._bar = ProgressBar(context.stderr, reactor, enabled=not options["no-progress"])
        self._progress = LoopingCall(self._showProgress)
        self._progress.clock = reactor
        desk = InviteDesk(reactor, self._pairedWith)
        desk.address = (options["interface"], options["ports"][0])
        desk.onEnded.append(self._inviteEnded)
        service.directory.pairing = self._desk = desk
        service.directory.sessionOpened = self._sessionOpened

    def start(self) -> Deferred:
        options = self._options
        try:
            self._service.startService()
        except CannotListenError as error:
            reason = getattr(error.socketError, "strerror", None) or error.socketError
            raise ConfigurationError(
                f"cannot listen on {error.interface or '*'}:{error.port}: {reason}"
            ) from None
        made = self._desk.create(
            options["name"], options["expires"], int(options["words"]), options["remember"]
        )
        host = hostForOthers(options["interface"])
        out = self._context.stdout
        fingerprint = self._service.directory.hostIdentity.fingerprint
        out.write(
            f"Receiving into {self._printer.directory} as {fingerprint}\n"
            "On the sending machine, run:\n"
            f"    {senderCommand(str(made.code), host, options['ports'][0])}\n"
            f"The code works once, within {minutes(options['expires'])}.\n"
        )
        out.flush()
        self._wait(options["expires"], "the code was not used in time")
        return self._done.addBoth(self._stop)

    def _wait(self, seconds: float, why: str) -> None:
        self._cancelWait()
        self._timer = self._reactor.callLater(seconds, self._finish, EXIT_PAIRING_FAILED, why)

    def _cancelWait(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _pairedWith(self, fingerprint: str, name: str, permanent: bool) -> None:
        if permanent:
            authorizeKey(
                os.path.join(self._keyDir, AUTHORIZED_KEYS_NAME), fingerprint, name
            )
        self._trust.add(fingerprint, name)
        self._paired = fingerprint

    def _inviteEnded(self, invite, reason: str | None) -> None:
        if reason is not None:
            # The sender's alert is still to be written: stop once it left.
            self._reactor.callLater(
                ALERT_LINGER,
                self._finish,
                EXIT_PAIRING_FAILED,
                f"the pairing failed ({reason}); the code is used up",
            )
            self._cancelWait()
            return
        kept = "; it is now in authorized_keys" if invite.permanent else ""
        self._context.stdout.write(f"Paired with the sender {self._paired}{kept}\n")
        self._context.stdout.flush()
        self._wait(SESSION_WAIT, "the sender paired but did not connect")

    def _sessionOpened(self, session) -> None:
        if self._session is not None and self._session.closedReason is None:
            return
        self._cancelWait()
        self._session = session
        session.onEnd.append(self._sessionEnded)
        if not self._progress.running:
            self._progress.start(PROGRESS_INTERVAL, now=False)

    def _sessionEnded(self, session) -> None:
        error = session.closedReason.value
        if isinstance(error, SessionReset):
            self._wait(SESSION_WAIT, "the sender did not come back after a reset")
            return
        bye = session.goodbye
        if bye is not None and bye.code == records.BYE_NORMAL:
            printer = self._printer
            self._context.stdout.write(
                f"Done: {printer.stored} file(s), {formatSize(printer.storedBytes)}, "
                f"and {printer.messages} message(s) from {session.peer}\n"
            )
            self._finish(EXIT_OK, None)
        else:
            why = withoutControls(str(error))
            self._finish(EXIT_FAILURE, f"the sender's session ended: {why}")

    def _showProgress(self) -> None:
        session = self._session
        if session is None:
            return
        files = session.incomingFiles.inProgress()
        done = self._printer.storedBytes + sum(item.done for item in files)
        total = self._printer.storedBytes + sum(item.size for item in files)
        self._bar.update(done, total)

    def _finish(self, code: int, why: str | None) -> None:
        if self._done.called:
            return
        self._cancelWait()
        if why is not None:
            self._context.stderr.write(f"spc: {why}\n")
        self._done.callback(code)

    def _stop(self, result):
        if self._progress.running:
            self._progress.stop()
        self._bar.close()
        stopping = self._service.stopService()
        stopping.addBoth(lambda _: self._tidy())
        return stopping.addCallback(lambda _: result)

    def _tidy(self) -> None:
        """
        Remove the store's working folder when nothing is left in it to
        resume.
        """
        partials = os.path.join(self._printer.directory, PARTIAL_DIRECTORY)
        try:
            names = os.listdir(partials)
        except OSError:
            return
        if all(name in (completed.LOG_NAME, completed.OLD_NAME) for name in names):
            for name in names:
                os.unlink(os.path.join(partials, name))
            os.rmdir(partials)
