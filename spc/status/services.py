# -*- test-case-name: tests.integration.test_status,tests.unit.test_metrics -*-
"""
The daemon's status outlets as services: the control socket C{spc status}
reads and, if asked for, a Prometheus endpoint.  What the command line
says about them is parsed in L{spc.cli.options}; here they are plain values.
"""

from __future__ import annotations

import ipaddress

from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger

from spc.server.listening import ListeningService
from spc.status.control import ControlFactory, controlEndpoint
from spc.status.snapshot import StatusSource

__all__ = ["reachableFromOtherHosts", "statusServices"]

log = Logger()

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


def reachableFromOtherHosts(description: str) -> bool:
    """
    Whether a server endpoint description listens beyond this host: a TCP
    endpoint whose interface is not a loopback address.  A plain
    C{tcp:9100} binds every interface, and the metrics page has no
    authentication but names peers.

    @param description: a valid server endpoint description.
    """
    kind, *arguments = _fields(description)
    if kind not in TCP_ENDPOINTS:
        return False
    positional = [argument for argument in arguments if "=" not in argument]
    named = dict(argument.split("=", 1) for argument in arguments if "=" in argument)
    interface = named.get("interface", "")
    if kind != "ssl" and len(positional) > 1:
        interface = positional[1]
    try:
        return not ipaddress.ip_address(interface.strip("[]")).is_loopback
    except ValueError:
        return True


def statusServices(
    reactor,
    source: StatusSource,
    controlSocket: str | None = None,
    metrics: str | None = None,
    skippedSocket: str | None = None,
    invites=None,
) -> list:
    """
    The services that serve C{source}, each listening when started.

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
    if controlSocket is not None:
        services.append(
            ListeningService(
                serverFromString(reactor, controlEndpoint(controlSocket)),
                ControlFactory(source, invites),
            )
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
    return services
