# -*- test-case-name: tests.unit.test_target -*-
"""
Where C{spc send} connects: the daemon named by one address
(C{--server HOST[:PORT]}, or C{--server tls:HOST:PORT}), whose other
channels are opened at the ports it announces (amendment A19); or every
channel given (C{--server HOST --ports PORTS}, C{--connect ENDPOINT}...),
for channels a client must reach otherwise (NAT, proxies).

Whatever the form, the server's key is pinned in C{known_hosts} under
C{HOST:PORT}: the host the user named and its first port.
"""

from __future__ import annotations

from typing import NamedTuple

from twisted.python import usage

from spc.addresses import formatHostPort, parsePort
from spc.cli.options import MAX_CHANNELS
from spc.transport.tls import parseClientDescription

__all__ = ["DEFAULT_PORT", "SendTarget", "parseServer", "sendTarget"]

DEFAULT_PORT = 9000
"""
The port of C{--server HOST} without one, which must be the daemon's first
port: that of the daemon the README starts (C{--ports 9000-9003}), and the
first port C{spc receive} listens on unless told otherwise.
"""


class SendTarget(NamedTuple):
    """
    @ivar endpoints: client endpoint descriptions, one per channel, or the
        one address of the server.
    @ivar hostPort: the name the server's key is pinned under.
    @ivar oneAddress: whether C{endpoints} is the server's one address.
    """

    endpoints: list[str]
    hostPort: str
    oneAddress: bool


def parseServer(text: str) -> tuple[str, int | None, str | None]:
    """
    Read C{--server}: C{HOST}, C{HOST:PORT}, an IPv6 address bare or as
    C{[ADDRESS]:PORT}, or a C{tls:HOST:PORT[:trustRoots=PATH]} description.

    @return: the host, the port or L{None}, and the C{tls:} description or
        L{None}.
    @raise usage.UsageError: with the forms it takes.
    """
    if text[:4].lower() == "tls:":
        try:
            target = parseClientDescription(f"tls:{text[4:]}")
        except ValueError as error:
            raise usage.UsageError(f"--server: {error}") from None
        return target.host, target.port, f"tls:{text[4:]}"
    host, port = text, None
    if text.startswith("["):
        host, bracket, portText = text[1:].partition("]")
        if not bracket or (portText and not portText.startswith(":")):
            raise usage.UsageError(f"--server: {text!r} is not [ADDRESS] or [ADDRESS]:PORT")
        port = portText[1:] or None
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    try:
        formatHostPort(host, DEFAULT_PORT)
        return host, None if port is None else parsePort(port), None
    except ValueError as error:
        raise usage.UsageError(
            f"--server: {error}; give HOST, HOST:PORT or [IPV6-ADDRESS]:PORT"
        ) from None


def sendTarget(server: str | None, ports: list[int], connect: list[str]) -> SendTarget:
    """
    Check C{--server}, C{--ports} and C{--connect} together.

    @raise usage.UsageError: for a combination that names no server, or
        names its first port twice, or a port or endpoint given twice, or
        more than L{MAX_CHANNELS} channels.
    """
    if ports and server is None:
        raise usage.UsageError("--ports needs --server HOST")
    if server is None and not connect:
        raise usage.UsageError("give --server HOST[:PORT] (or --connect ENDPOINT)")
    host, port, tls = parseServer(server) if server is not None else (None, None, None)
    if tls and (ports or connect):
        raise usage.UsageError(
            "--server tls:HOST:PORT opens every channel of the daemon; "
            "give the channels with --connect tls:... instead, or none"
        )
    if ports and port is not None:
        raise usage.UsageError(
            f"--server {server} names the daemon's first port, and so does --ports; "
            "give --server HOST with --ports, or --server HOST:PORT alone"
        )
    repeated = sorted({str(p) for p in ports if ports.count(p) > 1} | {
        text for text in connect if connect.count(text) > 1
    })
    if repeated:
        raise usage.UsageError(f"given twice: {', '.join(repeated)}")
    if not ports and not connect:
        port = port or DEFAULT_PORT
        return SendTarget(
            [tls or f"tcp:{_bracketed(host)}:{port}"], formatHostPort(host, port), True
        )
    endpoints = [f"tcp:{_bracketed(host)}:{p}" for p in ports] + connect
    if len(endpoints) > MAX_CHANNELS:
        raise usage.UsageError(f"at most {MAX_CHANNELS} channels")
    try:
        if ports:
            hostPort = formatHostPort(host, ports[0])
        elif port is not None:
            hostPort = formatHostPort(host, port)
        else:
            hostPort = _endpointHostPort(connect[0], host)
    except ValueError as error:
        raise usage.UsageError(f"--server: {error}") from None
    return SendTarget(endpoints, hostPort, False)


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


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
        "give --server HOST:PORT (or --server and --ports) to name it"
    )
