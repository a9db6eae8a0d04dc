# -*- test-case-name: tests.test_status -*-
"""
The daemon's status outlets as services: the control socket C{spc status}
reads and, if asked for, a Prometheus endpoint.  What the command line
says about them is parsed in L{spc.options}; here they are plain values.
"""

from __future__ import annotations

from twisted.application.internet import StreamServerEndpointService
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger

from spc.control import ControlFactory, controlEndpoint
from spc.status import StatusSource

__all__ = ["statusServices"]

log = Logger()


def statusServices(
    reactor,
    source: StatusSource,
    controlSocket: str | None = None,
    metrics: str | None = None,
    skippedSocket: str | None = None,
) -> list:
    """
    The services that serve C{source}, each listening when started.

    @param controlSocket: the control socket's absolute path, or C{None}
        for none.
    @param metrics: the server endpoint description of the Prometheus
        page, or C{None} for none.
    @param skippedSocket: the default socket path that was too long to
        use, so the operator learns why C{spc status} finds no daemon.
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
            StreamServerEndpointService(
                serverFromString(reactor, controlEndpoint(controlSocket)),
                ControlFactory(source),
            )
        )
    if metrics is not None:
        from spc.metrics import metricsFactory

        services.append(
            StreamServerEndpointService(
                serverFromString(reactor, metrics), metricsFactory(source)
            )
        )
    for service in services:
        service._raiseSynchronously = True
    return services
