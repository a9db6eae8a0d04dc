# -*- test-case-name: tests.memory.test_invites,tests.integration.test_invites,tests.integration.test_receive -*-
"""
C{spc invite} and C{spc pair}: trust from a one-time code (amendment A20).

On the receiving machine C{spc invite} asks the running daemon, over its
control socket, for a code and prints it with the command for the other
side; there C{spc pair --server HOST[:PORT] CODE} pairs, after which the
daemon lists the sender's key in C{authorized_keys} and the sender has the
daemon's key in C{known_hosts}: nobody typed a fingerprint.
"""

from __future__ import annotations

import errno
import socket
from typing import TextIO

from twisted.internet.defer import TimeoutError
from twisted.internet.endpoints import HostnameEndpoint, UNIXClientEndpoint
from twisted.internet.error import ConnectError, ConnectionClosed
from twisted.protocols import amp
from twisted.python import usage

from spc.addresses import formatHostPort, parseHostPort
from spc.cli.command import EXIT_FAILURE, EXIT_OK, Context, KeyDirMixin, ReactorCommand
from spc.cli.options import checkSocketPath, defaultControlSocket, parseSeconds
from spc.cli.status import STATUS_TIMEOUT, unreadable
from spc.client.pair import pair
from spc.errors import DaemonNotRunning, InviteRefused, StatusUnavailable
from spc.keys.identity import loadOrMakeIdentity
from spc.keys.trust import KNOWN_HOSTS_NAME
from spc.protocol.paircode import DEFAULT_WORDS, parseCode
from spc.protocol.pairing import Paired
from spc.status.control import requestInvite
from spc.text import withoutControls

__all__ = [
    "DEFAULT_PORT",
    "InviteOptions",
    "PairOptions",
    "parseDuration",
    "parseServer",
    "reportIdentity",
]

DEFAULT_PORT = 9000
"""
The first port a daemon or C{spc receive} listens on unless told otherwise.
"""

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parseDuration(text: str, option: str) -> float:
    """
    Seconds from C{90}, C{90s}, C{10m}, C{2h} or C{1d}.

    @raise usage.UsageError: naming C{option}.
    """
    cleaned = text.strip().lower()
    unit = _UNITS.get(cleaned[-1:], 0)
    number = cleaned[:-1] if unit else cleaned
    try:
        return parseSeconds(str(float(number) * (unit or 1)), option)
    except (ValueError, usage.UsageError):
        raise usage.UsageError(
            f"--{option}: {text!r} is not a duration such as 90s, 10m or 2h"
        ) from None


def parseServer(text: str, defaultPort: int = DEFAULT_PORT) -> tuple[str, int]:
    """
    C{HOST}, C{HOST:PORT}, C{[ADDRESS]:PORT} or a bare IPv6 address.

    @return: the canonical host and the port.
    @raise usage.UsageError: saying what is wrong.
    """
    text = text.strip()
    try:
        if text.startswith("[") or text.count(":") == 1:
            return parseHostPort(text)
        host = text
        formatHostPort(host, defaultPort)
    except ValueError as error:
        raise usage.UsageError(f"--server: {error}") from None
    return parseHostPort(formatHostPort(host, defaultPort))


def hostForOthers(interface: str) -> str:
    """
    How another machine reaches a listener on C{interface}: the interface
    itself, or this machine's name for an address that listens on all.
    """
    if interface in ("", "0.0.0.0", "::"):
        return socket.gethostname()
    return interface


def reportIdentity(context: Context, keyDir: str):
    """
    The identity of C{keyDir}, made on first use, and a line on stderr if
    it was.
    """
    identity, made = loadOrMakeIdentity(keyDir)
    if made:
        context.stderr.write(
            f"spc: made this machine's key in {keyDir} ({identity.fingerprint})\n"
        )
    return identity


class InviteOptions(KeyDirMixin, ReactorCommand):
    """
    C{spc invite}: a one-time code with which one client pairs with the
    running daemon.
    """

    synopsis = "[--name NAME] [--expires 10m] [--words 2|3] [--key-dir DIR | --socket PATH]"
    optParameters = [
        ["name", None, "", "What authorized_keys calls the client that pairs."],
        ["expires", None, "10m", "How long the code may be used (e.g. 90s, 10m, 2h)."],
        ["words", None, str(DEFAULT_WORDS),
         "Secret words in the code: 2 (a guess has 1 chance in 65,536) "
         "or 3 (1 in 16,777,216)."],
        ["socket", None, None, "The daemon's control socket [default: KEYDIR/control.sock]."],
    ]

    def postOptions(self) -> None:
        if self["socket"] is not None and self["key-dir"] is not None:
            raise usage.UsageError("give --key-dir or --socket, not both")
        self["expires"] = parseDuration(self["expires"], "expires")
        if self["words"] not in ("2", "3"):
            raise usage.UsageError("--words must be 2 or 3")
        self["words"] = int(self["words"])

    def runWithReactor(self, reactor, context: Context):
        path = checkSocketPath(
            self["socket"] or defaultControlSocket(self.keyDir(context)), "--socket"
        )
        endpoint = UNIXClientEndpoint(reactor, path, timeout=STATUS_TIMEOUT)
        asking = requestInvite(endpoint, self["name"], self["expires"], self["words"])
        asking.addTimeout(STATUS_TIMEOUT, reactor)

        def failed(failure):
            error = failure.trap(
                InviteRefused, ConnectError, TimeoutError, ConnectionClosed, amp.AmpError
            )
            if error is TimeoutError:
                raise StatusUnavailable(f"no answer within {STATUS_TIMEOUT:g} seconds")
            if error is ConnectError and failure.value.osError in (
                errno.ENOENT, errno.ECONNREFUSED,
            ):
                raise DaemonNotRunning(path)
            if error in (ConnectionClosed, amp.AmpError):
                raise unreadable(failure)
            return failure

        return asking.addCallbacks(lambda answer: self._show(answer, context.stdout), failed)

    def _show(self, answer: dict, out: TextIO) -> int:
        host, port = hostForOthers(answer["interface"]), answer["port"]
        server = formatHostPort(host, port) if port else f"{host}:PORT"
        out.write(
            f"Code: {answer['code']} (works once, within {minutes(answer['lifetime'])})\n"
            "On the sending machine, run:\n"
            f"    spc pair --server {server} {answer['code']}\n"
        )
        if not port:
            out.write("(PORT: the daemon's first channel listens on no TCP port of its own)\n")
        return EXIT_OK


def minutes(seconds: float) -> str:
    """
    A lifetime as a user reads it.
    """
    if seconds < 120:
        return f"{seconds:g} seconds"
    return f"{seconds / 60:g} minutes"


class PairOptions(KeyDirMixin, ReactorCommand):
    """
    C{spc pair}: trust a daemon and be trusted by it, with the code that
    its C{spc invite} printed.
    """

    synopsis = "--server HOST[:PORT] CODE"
    optParameters = [
        ["server", None, None,
         f"The daemon's address and first port [default port: {DEFAULT_PORT}]."],
    ]

    def parseArgs(self, code: str) -> None:
        try:
            self["code"] = parseCode(code)
        except ValueError as error:
            raise usage.UsageError(f"the code: {error}") from None

    def postOptions(self) -> None:
        if not self["server"]:
            raise usage.UsageError("--server HOST[:PORT] is required")
        self["host"], self["port"] = parseServer(self["server"])

    def runWithReactor(self, reactor, context: Context):
        keyDir = self.keyDir(context)
        identity = reportIdentity(context, keyDir)
        hostPort = formatHostPort(self["host"], self["port"])
        pairing = pair(
            reactor,
            HostnameEndpoint(reactor, self["host"], self["port"]),
            self["code"],
            identity,
            keyDir,
            hostPort,
        )

        def show(paired: Paired) -> int:
            reportPaired(context.stdout, paired, hostPort, identity.fingerprint, keyDir)
            if paired.permanent:
                return EXIT_OK
            context.stderr.write(
                "spc: that receiver trusts this machine for its current run only; "
                "send with spc send --code instead\n"
            )
            return EXIT_FAILURE

        return pairing.addCallback(show)


def reportPaired(out: TextIO, paired: Paired, hostPort: str, mine: str, keyDir: str) -> None:
    """
    Say whom this machine paired with and what each side now holds.
    """
    name = f'"{withoutControls(paired.name)}"' if paired.name else "a client with no name"
    out.write(f"Paired with the receiver at {hostPort}, key {paired.serverFingerprint}\n")
    if paired.permanent:
        out.write(
            f"It lists this machine ({mine}) as {name}; its key is recorded in "
            f"{keyDir}/{KNOWN_HOSTS_NAME}\n"
        )
    else:
        out.write(f"It admits this machine ({mine}) for its current run only\n")
