# -*- test-case-name: tests.unit.test_trust -*-
"""
Servers named as C{host:port}: one canonical name per server, so that the
user's C{--server}, a C{--connect} endpoint, a TLS peer and a
C{known_hosts} line that mean the same server are spelled the same.

Host names are lower-cased and IP addresses put in their standard form;
ports are ASCII decimal digits from 1 to 65535, so that two spellings
never name one entry.  Nothing here looks a name up: this is text.
"""

from __future__ import annotations

import ipaddress
import re

__all__ = ["formatHostPort", "parseHostPort", "parsePort", "peerText"]

_HOSTNAME = re.compile(r"[A-Za-z0-9._-]+")


def _canonicalHost(host: str) -> str:
    """
    Put C{host} in the one form used for lookups, so that C{Example.COM} and
    C{example.com}, or C{0:0::1} and C{::1}, find the same entry.

    @raise ValueError: If C{host} is neither an IP address nor a host name.
    """
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not _HOSTNAME.fullmatch(host):
        raise ValueError(f"{host!r} is not a host name or IP address")
    return host.lower()


def formatHostPort(host: str, port: int) -> str:
    """
    Name a server the way C{known_hosts} and
    L{spc.keys.trust.KnownHosts.check} expect:
    C{host:port}, or C{[address]:port} for IPv6. Host names are lower-cased
    and IP addresses put in their standard form, so one server has one name.

    @raise ValueError: If C{host} or C{port} is not valid.
    """
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range")
    host = _canonicalHost(host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parseHostPort(text: str) -> tuple[str, int]:
    """
    Read C{host:port} or C{[host]:port}.

    @return: The canonical host and the port.
    @raise ValueError: With a short reason.
    """
    if text.startswith("["):
        host, bracket, portText = text[1:].partition("]:")
        if not bracket:
            raise ValueError("expected [ADDRESS]:PORT")
    else:
        host, colon, portText = text.rpartition(":")
        if not colon:
            raise ValueError("expected HOST:PORT")
        if ":" in host:
            raise ValueError("an IPv6 address is written [ADDRESS]:PORT")
    return _canonicalHost(host), parsePort(portText)


def parsePort(text: str) -> int:
    """
    A port to connect to, in ASCII decimal digits: port 0 names no server,
    and other digits (or a sign) would let two spellings name one entry.

    @raise ValueError: With a short reason.
    """
    if not (text.isascii() and text.isdigit() and 0 < int(text) < 65536):
        raise ValueError(f"port {text!r} is not a number from 1 to 65535")
    return int(text)


def peerText(transport) -> str:
    """
    A connection's peer as C{host:port}, for logs: the canonical form when
    it has one, whatever the transport says otherwise, and never an
    exception.
    """
    try:
        peer = transport.getPeer()
    except Exception:
        return "unknown peer"
    host, port = getattr(peer, "host", None), getattr(peer, "port", None)
    try:
        return formatHostPort(host, port)
    except (TypeError, ValueError):
        return str(peer) if host is None else f"{host}:{port}"
