# -*- test-case-name: tests.unit.test_cli -*-
"""
C{spc send}: deliver messages and files to a daemon, and say what it holds
now and what it does not, and why.
"""

from __future__ import annotations

import os
from typing import TextIO

from twisted.internet.endpoints import HostnameEndpoint
from twisted.python import usage

from spc.addresses import formatHostPort
from spc.cli.command import EXIT_OK, Context, KeyDirMixin, ReactorCommand
from spc.cli.options import MAX_CHANNELS, ParseOnlyReactor, SuiteMapOption, parsePorts
from spc.cli.pair import DEFAULT_PORT, parseServer, reportIdentity, reportPaired
from spc.cli.progress import ProgressBar
from spc.client.pair import pair
from spc.client.send import SendRequest, SendSummary, clientEndpoints, send
from spc.client.sendlist import collectFiles
from spc.errors import FileFailed, FileRefused, MessageAbandoned, SPCError
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


class SendOptions(KeyDirMixin, SuiteMapOption, ReactorCommand):
    """
    C{spc send}: deliver messages and files to a daemon, and exit 0 only
    once the daemon confirmed it stored and verified every one; otherwise
    say which were not delivered and why.
    """

    synopsis = (
        "--server HOST --ports PORTS [--connect ENDPOINT]... "
        "[--server-fingerprint FP | --accept-new | --code CODE] [--tls-fingerprint FP] "
        "[--message TEXT]... [FILE|DIR]..."
    )
    optParameters = [
        ["server", None, None,
         "Host name or address of the daemon (with --code: HOST[:PORT] of its first port)."],
        ["code", None, None,
         "The receiver's one-time code: pair with it, then send (no key to pin)."],
        ["server-fingerprint", None, None,
         "Expected fingerprint of the daemon's key (overrides known_hosts)."],
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
        """A text message to send; repeatable."""
        self["messages"].append(os.fsencode(text))

    def postOptions(self) -> None:
        if not self["messages"] and not self["paths"]:
            raise usage.UsageError("nothing to send: give --message TEXT or files")
        try:
            found = collectFiles(self["paths"])
        except SPCError as error:
            raise usage.UsageError(str(error)) from None
        self["files"], self["folders"], self["skipped"] = found
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
        bar = ProgressBar(context.stderr, enabled=not self["no-progress"])
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
            bar.update,
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
        for name, storedAs in summary.already:
            out.write(f"{name}: already delivered as {storedAs}\n")
        delivered = summary.messages + summary.files + summary.folders
        if delivered:
            out.write(_summaryLine(summary))
        for item, error in summary.failed:
            context.stderr.write(f"spc: {item} was not delivered: {_why(error)}\n")
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
    sent = f"{summary.bytes} bytes sent in {summary.seconds:.2f} s"
    if summary.bytes and summary.seconds > 0:
        sent += f" ({summary.bytes / summary.seconds / 1e6:.1f} MB/s)"
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
