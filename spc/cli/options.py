# -*- test-case-name: tests.unit.test_tap,tests.memory.test_tap -*-
"""
Command-line values the daemon (L{spc.tap}) and the sender
(L{spc.cli.send}) read alike: port lists, sizes, seconds and the
per-channel suite map.  Both ends must agree on the last, so they share
one parser.

The daemon's status options live here too: the control socket's path is
resolved alike by the daemon that binds it and by C{spc status}
(L{spc.cli.status}) that connects to it.
"""

from __future__ import annotations

import inspect
import os

from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IHostnameResolver, IReactorPluggableNameResolver
from twisted.python import usage
from zope.interface import implementer

from spc.addresses import parsePort
from spc.crypto.suites import parseSuiteMap
from spc.errors import ConfigurationError, SPCError

__all__ = [
    "CONTROL_SOCKET_NAME",
    "flushLeft",
    "MAX_CHANNELS",
    "ParseOnlyReactor",
    "StatusOptionsMixin",
    "SuiteMapOption",
    "checkServerEndpoint",
    "checkSocketPath",
    "defaultControlSocket",
    "parsePorts",
    "parseSeconds",
    "parseSize",
]


MAX_CHANNELS = 16
"""
The most channels (listening endpoints) one daemon opens.
"""


def parsePorts(spec: str) -> list[int]:
    """
    Parse a port list such as C{9000-9003} or C{9000,9001,9005} (the forms
    may be mixed: C{9000-9002,9005}).

    @param spec: The value of C{--ports}.
    @return: The ports, in the order given.
    @raise usage.UsageError: If C{spec} is malformed, a range is reversed or
        a port is outside 1..65535.
    """
    ports: list[int] = []
    for item in spec.split(","):
        first, dash, last = item.strip().partition("-")
        if dash:
            low, high = _parsePort(first, spec), _parsePort(last, spec)
            if low > high:
                raise usage.UsageError(
                    f"--ports: reversed range {item.strip()!r}; "
                    f"write it low-high, e.g. {high}-{low}"
                )
            ports.extend(range(low, high + 1))
        else:
            ports.append(_parsePort(first, spec))
    return ports


def parseSize(text: str) -> int:
    """
    A byte count with an optional binary suffix: C{1048576}, C{64M}, C{1G}.

    @raise usage.UsageError: for anything else, or more than 1 TiB.
    """
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    cleaned = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = cleaned[-1] if cleaned and cleaned[-1] in "KMG" else ""
    number = cleaned[: len(cleaned) - len(unit)]
    if not (number.isascii() and number.isdigit()) or int(number) * units[unit] > 1 << 40:
        raise usage.UsageError(f"{text!r} is not a size such as 64K, 64M or 1G")
    return int(number) * units[unit]


def parseSeconds(text: str, name: str) -> float:
    """
    A positive number of seconds, fractions allowed.
    """
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 86400:
        raise usage.UsageError(f"--{name}: {text!r} is not a number of seconds")
    return value


def _parsePort(text: str, spec: str) -> int:
    """
    One port of a C{--ports} value, as L{spc.addresses.parsePort} reads ports;
    the syntax is checked here first, so that its error quotes the whole
    value.

    @param text: The digits.
    @param spec: The whole C{--ports} value, for the error message.
    @raise usage.UsageError: If C{text} is not a decimal port in 1..65535.
    """
    text = text.strip()
    if not (text.isascii() and text.isdigit()):
        raise usage.UsageError(
            f"--ports: cannot parse {spec!r}; expected ports and ranges "
            f"separated by commas, e.g. 9000-9003 or 9000,9001,9005"
        )
    try:
        return parsePort(text)
    except ValueError:
        raise usage.UsageError(f"--ports: port {int(text)} is not in 1..65535") from None


def flushLeft(method):
    """
    Make the docstring of an option method, which Twisted shows as the
    option's help, flush left: Twisted wraps it, each line break a space,
    but keeps the indentation of the lines after the first as runs of
    spaces in the middle of the text.
    """
    method.__doc__ = inspect.cleandoc(method.__doc__)
    return method


class SuiteMapOption:
    """
    The C{--suites} option, which the daemon and the sender share: both
    ends must configure the same map, nothing is negotiated.
    """

    @flushLeft
    def opt_suites(self, text: str) -> None:
        """Cipher suite of each channel, comma-separated, e.g.
        aes-256-cbc,chacha20,aes-256-gcm (default: even channels
        AES-256-CBC, odd ChaCha20). Both ends must use the same map."""
        try:
            self["suites"] = parseSuiteMap(text)  # type: ignore[index]
        except SPCError as error:
            raise usage.UsageError(f"--suites: {error}") from None


_CANNOT_CONNECT = "an endpoint built to check a description cannot connect"


@implementer(IHostnameResolver)
class _NoResolver:
    """
    The name resolver of L{ParseOnlyReactor}, which never resolves.
    """

    def resolveHostName(self, *args, **kwargs):
        raise RuntimeError(_CANNOT_CONNECT)


@implementer(IReactorPluggableNameResolver)
class ParseOnlyReactor:
    """
    The reactor of the endpoints built only to check the command line: the
    one way spc checks an endpoint description before it runs.  Building
    the endpoint is what reads and checks a description (a client's TLS
    pins and trust roots among it); the endpoint is then thrown away, so
    no reactor is needed or installed yet, and no test double takes the
    reactor's place in a command.

    Twisted's endpoint constructors only store the reactor they are given,
    except that C{HostnameEndpoint} takes its name resolver (and warns
    about a reactor without one); it resolves names only when it connects,
    which these endpoints never do, so this resolver refuses to.
    """

    nameResolver = _NoResolver()

    def installNameResolver(self, resolver):
        raise RuntimeError(_CANNOT_CONNECT)


def checkServerEndpoint(option: str, description: str) -> None:
    """
    @raise usage.UsageError: when C{description}, given to C{option}, is no
        Twisted server endpoint description.
    """
    try:
        serverFromString(ParseOnlyReactor(), description)
    except Exception as error:
        raise usage.UsageError(
            f"{option}: {description!r} is not a valid server endpoint "
            f"description: {error}"
        ) from None


CONTROL_SOCKET_NAME = "control.sock"
MAX_SOCKET_PATH = 107
"""
The longest path of a UNIX socket on Linux (C{sun_path} holds 108 bytes,
the last a NUL).
"""


def defaultControlSocket(keyDir: str) -> str:
    """
    The key directory is the socket's default home because it is the one
    directory the daemon is sure to own, private to its user (mode 0700),
    and writable under the systemd unit.
    """
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
            "Server endpoint serving the same figures to Prometheus (needs "
            "prometheus_client). It has no authentication and names peers: "
            "bind it to loopback, tcp:9100:interface=127.0.0.1 (plain "
            "tcp:9100 listens on every interface).",
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
            from spc.status.metrics import checkAvailable

            try:
                checkAvailable()
            except ConfigurationError as error:
                raise usage.UsageError(error.args[0]) from None
            checkServerEndpoint("--metrics", metrics)
