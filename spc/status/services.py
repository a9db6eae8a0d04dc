# -*- test-case-name: tests.integration.test_status,tests.unit.test_metrics -*-
"""
The daemon's status outlets as services: the control socket C{spc status}
reads and, if asked for, a Prometheus endpoint.  What the command line
says about them is parsed in L{spc.cli.options}; here they are plain values.
"""

from __future__ import annotations

import ipaddress

from twisted.internet.endpoints import serverFromString

from spc.logs import events
from spc.server.listening import ListeningService
from spc.status.control import ControlFactory, controlEndpoint
from spc.status.snapshot import StatusSource

__all__ = [
    "listensOnEveryInterface",
    "reachableFromOtherHosts",
    "statusServices",
    "warnEveryInterface",
]

log = events.NamedLogger(events.DAEMON)

TCP_ENDPOINTS = ("tcp", "tcp6", "ssl")
"""
The endpoint types that listen on IP addresses, all of them when no
interface is named.
"""


def _fields(description: str) -> list[str]:
    """
    The colon-separated fields of an endpoint description, escapes undone,
    so that C{interface=\\:\\:1} reads as C{::1}.
    """
    fields, current, escaped = [], [], False
    for character in description:
        if escaped:
            current.append(character)
            escaped = False
        elif character == "\\":
            escaped = True
        elif character == ":":
            fields.append("".join(current))
            current = []
        else:
            current.append(character)
    fields.append("".join(current))
    return fields


def _interface(description: str) -> tuple[str, str]:
    """
    @return: the kind of a server endpoint description, and the interface
        it names (C{""} when it names none), unescaped.
    """
    kind, *arguments = _fields(description)
    kind = kind.lower()
    positional = [argument for argument in arguments if "=" not in argument]
    named = dict(argument.split("=", 1) for argument in arguments if "=" in argument)
    interface = named.get("interface", "")
    if kind != "ssl" and len(positional) > 1:
        interface = positional[1]
    return kind, interface.strip("[]")


def reachableFromOtherHosts(description: str) -> bool:
    """
    Whether a server endpoint description listens beyond this host: a TCP
    endpoint whose interface is not a loopback address.  A plain
    C{tcp:9100} binds every interface, and the metrics page has no
    authentication but names peers.

    @param description: a valid server endpoint description.
    """
    kind, interface = _interface(description)
    if kind not in TCP_ENDPOINTS:
        return False
    try:
        return not ipaddress.ip_address(interface).is_loopback
    except ValueError:
        return True


def listensOnEveryInterface(description: str) -> bool:
    """
    Whether a server endpoint description is a TCP or TLS endpoint that
    names no interface, and so listens on every interface of the machine:
    C{ssl:9443:privateKey=...} does, like C{tcp:9000}, while the
    C{--ports} always have the C{--interface} (127.0.0.1 by default).  An
    interface named, even C{0.0.0.0}, is the operator's choice.

    @param description: a valid server endpoint description.
    """
    kind, interface = _interface(description)
    return kind in TCP_ENDPOINTS and not interface


def warnEveryInterface(descriptions: list[str]) -> None:
    """
    Warn about each channel endpoint that listens on every interface, as
    the daemon warns about such a metrics endpoint, so that an operator
    who meant loopback or one network learns it before a peer does.
    """
    for description in descriptions:
        if listensOnEveryInterface(description):
            log.warn(
                "--listen {endpoint} names no interface, so it listens on every "
                "interface of this machine; add interface=ADDRESS to listen on one "
                "(interface=127.0.0.1 for this machine only)",
                endpoint=description,
            )


def statusServices(
    reactor,
    source: StatusSource,
    controlSocket: str | None = None,
    metrics: str | None = None,
    skippedSocket: str | None = None,
    invites=None,
) -> list:
    """
    The services that serve C{source}, each listening when started, in
    the order they start: the control socket last.

    @param controlSocket: the control socket's absolute path, or C{None}
        for none.
    @param metrics: the server endpoint description of the Prometheus
        page, or C{None} for none; one reachable from other hosts is
        warned about.
    @param skippedSocket: the default socket path that was too long to
        use, so the operator learns why C{spc status} finds no daemon.
    @param invites: the L{spc.server.invites.InviteDesk} C{spc invite}
        opens invites at through the control socket, if any.
    """
    services = []
    if skippedSocket is not None:
        log.warn(
            "No control socket: {path} is too long for a UNIX socket; give "
            "--control-socket a shorter path",
            path=skippedSocket,
        )
    if metrics is not None:
        from spc.status.metrics import metricsFactory

        if reachableFromOtherHosts(metrics):
            log.warn(
                "The metrics endpoint {endpoint} may be reachable from other "
                "hosts, and it serves peer fingerprints and names to anyone "
                "who asks; bind it to loopback, e.g. --metrics "
                "tcp:9100:interface=127.0.0.1",
                endpoint=metrics,
            )

        services.append(
            ListeningService(serverFromString(reactor, metrics), metricsFactory(source))
        )
    if controlSocket is not None:
        # Last: it is the one that leaves a file (the socket and its lock)
        # once it listens, so when another fails to listen, it has not yet.
        services.append(
            ListeningService(
                serverFromString(reactor, controlEndpoint(controlSocket)),
                ControlFactory(source, invites),
            )
        )
    return services
