# -*- test-case-name: tests.test_cli -*-
"""
C{spc send}: deliver messages and files to a daemon, and say what it holds
now and what it does not, and why.
"""

from __future__ import annotations

import os

from twisted.python import usage

from spc.cli.command import EXIT_OK, Context, KeyDirMixin, ReactorCommand
from spc.cli.options import ParseOnlyReactor, SuiteMapOption, parsePorts
from spc.cli.progress import ProgressBar
from spc.cli.sendtrust import ReportingTrust, recordedTLSPins
from spc.cli.target import DEFAULT_PORT, sendTarget
from spc.client.send import SendRequest, SendSummary, clientEndpoints, send
from spc.client.sendlist import collectFiles
from spc.errors import FileFailed, FileRefused, MessageAbandoned, SPCError
from spc.keys.identity import loadIdentity, loadTransferSecret, parseFingerprint
from spc.keys.trust import loadServerTrust
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
        "--server HOST[:PORT] [--ports PORTS | --connect ENDPOINT...] "
        "[--server-fingerprint FP] [--accept-new] [--tls-fingerprint FP] "
        "[--message TEXT]... [FILE|DIR]..."
    )
    optParameters = [
        ["server", None, None,
         f"The daemon: HOST[:PORT] (port {DEFAULT_PORT} by default) or "
         "tls:HOST:PORT[:trustRoots=PATH]; its other channels are opened at "
         "the ports it announces. With --ports or --connect, a HOST to name "
         "it in known_hosts."],
        ["server-fingerprint", None, None,
         "Expected fingerprint of the daemon's key (overrides known_hosts; "
         "with --accept-new, recorded there)."],
    ]
    optFlags = [
        ["accept-new", None,
         "Trust and record the key of a server not yet in known_hosts (or the "
         "--server-fingerprint and --tls-fingerprint given)."],
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
        """The daemon's ports, one channel each, in its order, e.g. 9000-9003."""
        self["ports"].extend(parsePorts(text))

    def opt_suites(self, text: str) -> None:
        """Cipher suites to accept, e.g. chacha20,aes-256-gcm (default: all three)."""
        super().opt_suites(text)

    def opt_connect(self, description: str) -> None:
        """A tcp:, tls: or unix: endpoint per channel, in the daemon's order; repeatable."""
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
        target = sendTarget(self["server"], self["ports"], self["connect"])
        self["endpoints"], self["host-port"], self["one-address"] = target
        if self["tls-fingerprints"]:
            if not any(text[:4].lower() == "tls:" for text in target.endpoints):
                raise usage.UsageError(
                    "--tls-fingerprint needs a tls: channel "
                    "(--server tls:HOST:PORT or --connect tls:HOST:PORT)"
                )
            try:
                clientEndpoints(ParseOnlyReactor(), target.endpoints, self["tls-fingerprints"])
            except ValueError as error:
                raise usage.UsageError(f"--tls-fingerprint: {error}") from None
        elif target.oneAddress:
            try:
                clientEndpoints(ParseOnlyReactor(), target.endpoints)
            except Exception as error:
                raise usage.UsageError(f"--server: {error}") from None

    def runWithReactor(self, reactor, context: Context):
        keyDir = self.keyDir(context)
        bar = ProgressBar(context.stderr, enabled=not self["no-progress"])
        pins = self["tls-fingerprints"] or recordedTLSPins(
            keyDir, self["host-port"], self["endpoints"]
        )
        recordTLS = None
        if self["accept-new"] and len(self["tls-fingerprints"]) == 1:
            recordTLS = self["tls-fingerprints"][0]
        request = SendRequest(
            loadIdentity(keyDir),
            ReportingTrust(
                loadServerTrust(keyDir, self["server-fingerprint"], self["accept-new"]),
                keyDir,
                context.stderr,
                self["key-dir"],
                recordTLS,
            ),
            self["host-port"],
            self["endpoints"],
            self["messages"],
            self["files"],
            self["suites"],
            loadTransferSecret(keyDir),
            bar.update,
            pins,
            self["folders"],
            oneAddress=self["one-address"],
            notify=lambda line: context.stderr.write(f"spc: {line}\n"),
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
