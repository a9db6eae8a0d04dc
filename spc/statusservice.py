# -*- test-case-name: tests.test_status -*-
"""
The daemon's status outlets as twistd options and services: the control
socket C{spc status} reads (on by default, in the key directory) and, if
asked for, a Prometheus endpoint.

The key directory is the default home of the socket because it is the one
directory the daemon is sure to own, private to its user (mode 0700), and
writable under the systemd unit.
"""

from __future__ import annotations

import os

from twisted.application.internet import StreamServerEndpointService
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger
from twisted.python import usage

from spc.control import ControlFactory, controlEndpoint
from spc.errors import ConfigurationError
from spc.options import checkServerEndpoint
from spc.status import StatusSource

__all__ = ["CONTROL_SOCKET_NAME", "StatusOptionsMixin", "statusServices"]

log = Logger()

CONTROL_SOCKET_NAME = "control.sock"
MAX_SOCKET_PATH = 107
"""
The longest path of a UNIX socket on Linux (C{sun_path} holds 108 bytes,
the last a NUL).
"""


def defaultControlSocket(keyDir: str) -> str:
    return os.path.join(keyDir, CONTROL_SOCKET_NAME)


def checkSocketPath(path: str, option: str) -> str:
    """
    @return: C{path}, made absolute.
    @raise ConfigurationError: when it is too long to bind or connect to.
    """
    path = os.path.abspath(path)
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise ConfigurationError(
            f"{option}: {path!r} is longer than the {MAX_SOCKET_PATH} bytes a "
            "UNIX socket path may have; choose a shorter path"
        )
    return path


class StatusOptionsMixin:
    """
    The daemon's C{--control-socket} and C{--metrics} options.
    """

    optParameters = [
        [
            "control-socket",
            None,
            None,
            "UNIX socket (mode 0600) where `spc status` reads the daemon's "
            f"state (default: KEYDIR/{CONTROL_SOCKET_NAME}; 'none' for no socket).",
        ],
        [
            "metrics",
            None,
            None,
            "Server endpoint serving the same figures to Prometheus, e.g. "
            "tcp:9100:interface=127.0.0.1 (needs prometheus_client).",
        ],
    ]

    def resolveStatusOptions(self, keyDir: str) -> None:
        """
        Fill in the control socket's default and check both options.  A
        key directory too deep for a socket path leaves the daemon without
        one (it says so when it starts) rather than refusing to run.
        """
        path = self["control-socket"]  # type: ignore[index]
        self["control-socket-skipped"] = None  # type: ignore[index]
        if path is None:
            path = defaultControlSocket(keyDir)
            if len(os.fsencode(os.path.abspath(path))) > MAX_SOCKET_PATH:
                self["control-socket-skipped"] = path  # type: ignore[index]
                path = "none"
        if path.strip().lower() == "none":
            self["control-socket"] = None  # type: ignore[index]
        else:
            try:
                path = checkSocketPath(path, "--control-socket")
            except ConfigurationError as error:
                raise usage.UsageError(error.args[0]) from None
            self["control-socket"] = path  # type: ignore[index]
        metrics = self["metrics"]  # type: ignore[index]
        if metrics is not None:
            from spc.metrics import checkAvailable

            checkAvailable()
            checkServerEndpoint("--metrics", metrics)


def statusServices(reactor, config, source: StatusSource) -> list:
    """
    The services C{config} asks for, each listening when started.
    """
    services = []
    skipped = config.get("control-socket-skipped")
    if skipped is not None:
        log.warn(
            "No control socket: {path} is too long for a UNIX socket; give "
            "--control-socket a shorter path",
            path=skipped,
        )
    path = config["control-socket"]
    if path is not None:
        services.append(
            StreamServerEndpointService(
                serverFromString(reactor, controlEndpoint(path)), ControlFactory(source)
            )
        )
    if config["metrics"] is not None:
        from spc.metrics import metricsFactory

        services.append(
            StreamServerEndpointService(
                serverFromString(reactor, config["metrics"]), metricsFactory(source)
            )
        )
    for service in services:
        service._raiseSynchronously = True
    return services
