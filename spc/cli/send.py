# -*- test-case-name: tests.unit.test_cli -*-
"""
C{spc send}: deliver messages and files, named on the command line or read
from stdin (L{spc.cli.sendinput}), to a daemon, and say what it holds now
and what it does not, and why.
"""

from __future__ import annotations

import os
from typing import TextIO

from twisted.internet.endpoints import HostnameEndpoint
from twisted.python import usage

from spc.addresses import formatHostPort
from spc.cli.command import EXIT_INTERRUPTED, EXIT_OK, Context, KeyDirMixin, ReactorCommand
from spc.cli.options import MAX_CHANNELS, ParseOnlyReactor, SuiteMapOption, parsePorts
from spc.cli.pair import DEFAULT_PORT, parseServer, reportIdentity, reportPaired
from spc.cli.progress import ProgressBar
from spc.cli.sendinput import readMessage, readMessageFile, spool
from spc.cli.units import formatRate, formatSize
from spc.client.pair import pair
from spc.client.send import SendRequest, SendSummary, clientEndpoints, send
from spc.client.sendlist import checkName, collectFiles
from spc.errors import (
    FileFailed,
    FileRefused,
    MessageAbandoned,
    MessageTooLarge,
    ServerShuttingDown,
    SessionClosed,
    SPCError,
)
from spc.keys.identity import loadIdentity, loadTransferSecret, parseFingerprint
from spc.keys.trust import KNOWN_HOSTS_NAME, PinnedKey, ServerTrust, TrustDecision, loadServerTrust
from spc.protocol.paircode import parseCode
from spc.protocol.pairing import Paired
from spc.text import withoutControls


EXIT_SKIPPED = 5
"""
C{spc send}'s exit code when every item was delivered but some entries of
a folder could not be sent (each is listed), and C{--skip-unsendable} was
not given: like rsync's 23, partial, yet distinct from a failed transfer.
"""

NAMES_SHOWN = 20
"""
How many files stored under another name, and how many held already, are
listed each (all of them with C{--verbose}): a folder of a thousand files
sent again must not bury the summary.
"""

STDIN = "-"
"""
The file argument, and the C{--message} value, that mean stdin.
"""

_FROM_STDIN = object()
"""
The place of C{--message -} among the messages, until stdin is read.
"""

RESUME_HINT = "run the same command again to resume: what the daemon holds is not sent again"
"""
What to do about items whose session ended before they were delivered.
"""


class SendOptions(KeyDirMixin, SuiteMapOption, ReactorCommand):
    """
    C{spc send}: deliver messages and files to a daemon, and exit 0 only
    once the daemon confirmed it stored and verified every one; otherwise
    say which were not delivered and why.
    """

    synopsis = (
        "--server HOST --ports PORTS [--connect ENDPOINT]... "
        "[--server-fingerprint FP | --accept-new | --code CODE] [--tls-fingerprint FP] "
        "[--message TEXT|-]... [--message-file FILE]... [FILE|DIR|- --name NAME]..."
    )
    epilog = f"""
Messages and files may also come from stdin: --message - reads a message,
the file argument - a file (stored under --name NAME), and with nothing
else to send, stdin that is not a terminal is sent as one message.

Examples:
  spc send --code 4-orbit-velvet --server HOST:9000 --ports 9000-9003 report.pdf
  spc send --server HOST --ports 9000-9003 --accept-new report.pdf photos/
  spc send --server HOST --ports 9000-9003 --message 'backup done'
  spc send --server HOST --ports 9000-9003 --message-file notes.txt
  echo 'backup done' | spc send --server HOST --ports 9000-9003
  tar c photos | spc send --server HOST --ports 9000-9003 - --name photos.tar

Exit codes:
  0    the daemon confirmed every message, file and folder
  1    failure (cannot connect, unsafe key files, ...)
  2    usage error
  3    trust: unknown or changed server key, or this client not authorized
  4    transfer failed: some item was not delivered (each is named)
  5    all delivered, but entries of a folder could not be sent (each is named)
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C or SIGTERM); the same command resumes
"""
    optParameters = [
        ["server", None, None,
         "Host name or address of the daemon (with --code: HOST[:PORT] of its first port)."],
        ["code", None, None,
         "The receiver's one-time code: pair with it, then send (no key to pin)."],
        ["server-fingerprint", None, None,
         "Expected fingerprint of the daemon's key (overrides known_hosts)."],
        ["name", None, None, "The name the file read from stdin (the file argument -) "
         "is stored under."],
    ]
    optFlags = [
        ["accept-new", None,
         "Trust and record the key of a server not yet in known_hosts."],
        ["no-progress", None, "Show no progress bar."],
        ["skip-unsendable", None,
         "Exit 0 even if entries of a folder cannot be sent (special files, "
         "links leading outside it or to folders, unreadable entries, names "
         "that are not UTF-8); they are still listed."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["ports"] = []
        self["connect"] = []
        self["messages"] = []
        self["suites"] = None
        self["paths"] = []
        self["tls-fingerprints"] = []
        self._bar: ProgressBar | None = None

    def parseArgs(self, *paths: str) -> None:
        self["paths"] = list(paths)

    def opt_ports(self, text: str) -> None:
        """The daemon's ports, one channel each, e.g. 9000-9003."""
        self["ports"].extend(parsePorts(text))

    def opt_connect(self, description: str) -> None:
        """A tcp:, tls: or unix: client endpoint, one channel; repeatable."""
        try:
            clientEndpoints(ParseOnlyReactor(), [description])
        except Exception as error:
            raise usage.UsageError(
                f"--connect: {description!r} is not a client endpoint: {error}"
            ) from None
        self["connect"].append(description)

    def opt_tls_fingerprint(self, text: str) -> None:
        """Pin the tls: server's certificate (SPKI, from spc tls-cert)."""
        try:
            self["tls-fingerprints"].append(parseFingerprint(text))
        except ValueError as error:
            raise usage.UsageError(f"--tls-fingerprint: {error}") from None

    def opt_message(self, text: str) -> None:
        """A text message to send (- reads it from stdin); repeatable."""
        self["messages"].append(_FROM_STDIN if text == STDIN else os.fsencode(text))

    def opt_message_file(self, path: str) -> None:
        """A file whose content is sent as a message; repeatable."""
        self["messages"].append(readMessageFile(path))

    def postOptions(self) -> None:
        fromStdin = self["paths"].count(STDIN) + self["messages"].count(_FROM_STDIN)
        if fromStdin > 1:
            raise usage.UsageError("stdin can be read once: give - or --message -, once")
        self["stdin-used"] = fromStdin > 0
        self["stdin-file"] = STDIN in self["paths"]
        if self["stdin-file"]:
            if self["name"] is None:
                raise usage.UsageError("give the name to store stdin under: - --name NAME")
            try:
                checkName(self["name"])
            except SPCError as error:
                raise usage.UsageError(f"--name: {error}") from None
        elif self["name"] is not None:
            raise usage.UsageError("--name names the file read from stdin: give - too")
        paths = [path for path in self["paths"] if path != STDIN]
        try:
            found = collectFiles(paths)
        except SPCError as error:
            raise usage.UsageError(str(error)) from None
        self["files"], self["folders"], self["skipped"] = found
        self["stdin-message"] = not (self["messages"] or self["paths"])
        self["stdin-used"] = self["stdin-used"] or self["stdin-message"]
        if self["code"] is not None:
            self._pairFirst()
        if self["ports"] and not self["server"]:
            raise usage.UsageError("--ports needs --server HOST")
        if not self["ports"] and not self["connect"]:
            raise usage.UsageError("give --server HOST --ports PORTS, or --connect")
        host = self["server"]
        if host:
            host = self["server"] = host.strip("[]")
        endpoints = [f"tcp:{_bracketed(host)}:{port}" for port in self["ports"]]
        endpoints += self["connect"]
        if len(endpoints) > MAX_CHANNELS:
            raise usage.UsageError(f"at most {MAX_CHANNELS} channels")
        if self["suites"] is not None and len(self["suites"]) != len(endpoints):
            raise usage.UsageError("--suites must name one suite per channel")
        self["endpoints"] = endpoints
        if self["tls-fingerprints"]:
            if not any(text[:4].lower() == "tls:" for text in endpoints):
                raise usage.UsageError("--tls-fingerprint needs a --connect tls:HOST:PORT")
            try:
                clientEndpoints(ParseOnlyReactor(), endpoints, self["tls-fingerprints"])
            except ValueError as error:
                raise usage.UsageError(f"--tls-fingerprint: {error}") from None
        try:
            if host and self["ports"]:
                self["host-port"] = formatHostPort(host, self["ports"][0])
            else:
                self["host-port"] = _endpointHostPort(self["connect"][0], host)
        except ValueError as error:
            raise usage.UsageError(f"--server: {error}") from None

    def run(self, context: Context) -> int:
        """
        Read what stdin holds for this command before the reactor runs, and
        remove a file spooled from it however the command ends.
        """
        spooled: list[str] = []
        try:
            self._readStdin(context, spooled)
            return super().run(context)
        finally:
            if self._bar is not None:
                self._bar.close()
            for path in spooled:
                os.unlink(path)

    def _readStdin(self, context: Context, spooled: list[str]) -> None:
        """
        @raise usage.UsageError: when there is nothing to send: no message,
            no file, and stdin a terminal, absent or empty.
        """
        stdin = context.stdin
        if self["stdin-message"]:
            if stdin.isatty():
                raise usage.UsageError(
                    "nothing to send: give --message TEXT or files, or a message on stdin"
                )
            message = readMessage(stdin, "stdin")
            if not message:
                raise usage.UsageError(
                    "nothing to send: stdin was empty; give --message TEXT or files"
                )
            self["messages"] = [message]
        if _FROM_STDIN in self["messages"]:
            message = readMessage(stdin, "stdin")
            self["messages"] = [message if m is _FROM_STDIN else m for m in self["messages"]]
        if self["stdin-file"]:
            spooled.append(spool(stdin))
            self["files"].insert(0, (spooled[0], self["name"]))

    def interruptedHint(self) -> str:
        """
        Files resume; a message delivered before the interruption is
        delivered again; what came from stdin is gone.
        """
        hints = []
        files, stdinFile = self.get("files", ()), self.get("stdin-file", False)
        if len(files) > stdinFile or self.get("folders"):
            again = "run the same command again to resume"
            if self["messages"]:
                again += " (messages delivered before the interruption would arrive twice)"
            hints.append(again)
        if self.get("stdin-used"):
            hints.append("what was read from stdin cannot resume: send it again")
        elif self["messages"] and not hints:
            hints.append(
                "messages delivered before the interruption would arrive twice if sent again"
            )
        return "; ".join(hints)

    def _pairFirst(self) -> None:
        """
        With C{--code}: the code is read, C{--server} may carry the first
        port (without C{--ports} it is the only channel), and the key is
        pinned by the pairing, not by an option.
        """
        try:
            self["code"] = parseCode(self["code"])
        except ValueError as error:
            raise usage.UsageError(f"--code: {error}") from None
        if self["server-fingerprint"] or self["accept-new"] or self["connect"]:
            raise usage.UsageError(
                "--code pins the receiver's key itself: give neither "
                "--server-fingerprint, --accept-new nor --connect with it"
            )
        if not self["server"]:
            raise usage.UsageError("--code needs --server HOST[:PORT]")
        first = self["ports"][0] if self["ports"] else DEFAULT_PORT
        self["server"], port = parseServer(self["server"], first)
        if self["ports"] and port != first:
            raise usage.UsageError(f"--server names port {port}, but --ports starts at {first}")
        self["ports"] = self["ports"] or [port]

    def runWithReactor(self, reactor, context: Context):
        keyDir = self.keyDir(context)
        if self["code"] is not None:
            return self._pairThenSend(reactor, context, keyDir)
        return self._send(reactor, context, keyDir, loadIdentity(keyDir), None)

    def _pairThenSend(self, reactor, context: Context, keyDir: str):
        identity = reportIdentity(context, keyDir)
        host, first = self["server"], self["ports"][0]
        pairing = pair(
            reactor,
            HostnameEndpoint(reactor, host, first),
            self["code"],
            identity,
            keyDir,
            self["host-port"],
        )

        def paired(result: Paired):
            reportPaired(
                context.stderr, result, self["host-port"], identity.fingerprint, keyDir
            )
            return self._send(reactor, context, keyDir, identity, result.serverFingerprint)

        return pairing.addCallback(paired)

    def _send(self, reactor, context: Context, keyDir: str, identity, pinned: str | None):
        bar = self._bar = ProgressBar(context.stderr, reactor, enabled=not self["no-progress"])
        reactor.addSystemEventTrigger("before", "shutdown", bar.close)
        trust = PinnedKey(pinned) if pinned is not None else _ReportingTrust(
            loadServerTrust(keyDir, self["server-fingerprint"], self["accept-new"]),
            os.path.join(keyDir, KNOWN_HOSTS_NAME),
            context.stderr,
        )
        request = SendRequest(
            identity,
            trust,
            self["host-port"],
            self["endpoints"],
            self["messages"],
            self["files"],
            self["suites"],
            loadTransferSecret(keyDir),
            bar,
            self["tls-fingerprints"],
            self["folders"],
        )
        result = send(reactor, request)
        result.addBoth(bar.close)
        return result.addCallback(self._report, context)

    def _report(self, summary: SendSummary, context: Context) -> int:
        """
        Say what the daemon holds now, on stdout; then, on stderr, each
        item that was not delivered or not sent and why, and how many of
        all were delivered.

        @return: the exit code: that of the first failure; else
            L{EXIT_SKIPPED} for skipped entries, unless C{--skip-unsendable}.
        """
        out = context.stdout
        self._listNames(out, summary.renamed, "stored as", "stored under other names")
        self._listNames(out, summary.already, "already delivered as", "delivered already")
        delivered = summary.messages + summary.files + summary.folders
        if delivered:
            out.write(_summaryLine(summary))
        for item, error in summary.failed:
            context.stderr.write(f"spc: {item} was not delivered: {_why(error)}\n")
        if any(_resumable(error) for _, error in summary.failed):
            hint = RESUME_HINT
            if self["stdin-used"]:
                hint += ", but what was read from stdin is sent whole again"
            context.stderr.write(f"spc: {hint}\n")
        for item, why in self["skipped"]:
            context.stderr.write(f"spc: {item} was not sent: {why}\n")
        count = delivered + len(summary.failed) + len(self["skipped"])
        if delivered < count:
            context.stderr.write(f"spc: {delivered} of {count} items delivered\n")
        if summary.failed:
            return summary.failed[0][1].exitCode
        if self["skipped"] and not self["skip-unsendable"]:
            return EXIT_SKIPPED
        return EXIT_OK

    def _listNames(self, out: TextIO, names, verb: str, what: str) -> None:
        """
        One line per file of C{names} (C{(name, stored name)}), at most
        L{NAMES_SHOWN} unless C{--verbose}; then how many more there are.
        """
        shown = names if self["verbose"] else names[:NAMES_SHOWN]
        for name, storedAs in shown:
            out.write(f"{name}: {verb} {storedAs}\n")
        if len(shown) < len(names):
            out.write(
                f"... and {len(names) - len(shown)} more files {what} (--verbose lists them)\n"
            )


def _resumable(error: SPCError) -> bool:
    """
    Whether the item failed because the session ended (the daemon went
    away, or the connection to it and did not come back in time): the same
    command run again resumes it.  A daemon shutting down says so itself.
    """
    return isinstance(error, SessionClosed) and not isinstance(error, ServerShuttingDown)


def _summaryLine(summary: SendSummary) -> str:
    """
    What was delivered, and what this run sent for it: a file the daemon
    held already counts among the files, but not in the bytes or the rate.
    """
    items = f"{summary.messages} message(s) and {summary.files} file(s)"
    if summary.already:
        items += f" ({len(summary.already)} already there)"
    if summary.folders:
        items += f", {summary.folders} empty folder(s)"
    sent = f"{formatSize(summary.bytes)} sent in {summary.seconds:.2f} s"
    if summary.bytes and summary.seconds > 0:
        sent += f" ({formatRate(summary.bytes / summary.seconds)})"
    return (
        f"Delivered {items}, {sent}, over {summary.channels} channel(s) "
        f"to {summary.server}\n"
    )


def _why(error: SPCError) -> str:
    """
    Why an item was not delivered, as a phrase after its name.  What the
    daemon said reaches the terminal only without control characters: its
    refusals are cleaned already, and a session's end may quote its
    goodbye.
    """
    if isinstance(error, FileRefused):
        return f"refused by the daemon: {error.text}" if error.text else "refused by the daemon"
    if isinstance(error, FileFailed):
        return f"it {error.why}"
    if isinstance(error, MessageAbandoned):
        return "the daemon could not deliver it"
    if isinstance(error, MessageTooLarge):
        return (
            f"it holds {formatSize(error.size)}, more than the daemon takes in one "
            f"message ({formatSize(error.limit)}); send it as a file"
        )
    return withoutControls(str(error))


class _ReportingTrust:
    """
    Tells the user when trust on first use recorded a server key: they
    should compare it with the server's real fingerprint.
    """

    def __init__(self, trust: ServerTrust, path: str, stderr: TextIO) -> None:
        self._trust = trust
        self._path = path
        self._stderr = stderr

    def check(self, hostPort: str, fingerprint: str) -> TrustDecision:
        decision = self._trust.check(hostPort, fingerprint)
        if decision is TrustDecision.ADDED:
            self._stderr.write(
                f"spc: added {hostPort} {fingerprint} to {self._path}; "
                "check it with the server's operator\n"
            )
        return decision


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _endpointHostPort(description: str, host: str | None) -> str:
    """
    The known_hosts name of a server reached through C{--connect}: its
    host and port, when the description has them in the usual places.
    """
    kind, _, rest = description.partition(":")
    if rest.startswith("["):
        address, _, tail = rest[1:].partition("]:")
    else:
        address, _, tail = rest.partition(":")
    portText = tail.split(":")[0]
    if address and portText.isascii() and portText.isdigit():
        return formatHostPort(host or address, int(portText))
    raise usage.UsageError(
        "cannot tell the server's host and port from --connect; "
        "give --server and --ports"
    )
