# -*- test-case-name: tests.unit.test_tap,tests.memory.test_tap -*-
"""
The spc daemon as a twistd plugin:
C{twistd -n spc --inbox DIR --ports 9000-9003}.

L{Options} parses and checks the command line; L{makeService} turns the
result into the service that twistd runs: the daemon
(L{spc.server.daemon.DaemonService}) with its status outlets. The dropin
C{twisted/plugins/spc_plugin.py} points twistd here.
"""

from __future__ import annotations

import ipaddress
import os
from collections import Counter

from twisted.application.service import MultiService
from twisted.internet.endpoints import quoteStringArgument
from twisted.internet.interfaces import IReactorCore
from twisted.python import usage

from spc.cli.options import (
    MAX_CHANNELS,
    StatusOptionsMixin,
    SuiteMapOption,
    checkServerEndpoint,
    parsePorts,
    parseSeconds,
    parseSize,
)
from spc.errors import SPCError
from spc.keys.identity import defaultKeyDir
from spc.keys.trust import AUTHORIZED_KEYS_NAME
from spc.logs.jsonformat import checkFormat
from spc.protocol.frames import MAX_FRAGMENT_SIZE, MIN_FRAGMENT_SIZE, Params, maxInnerSize
from spc.server.daemon import DaemonService
from spc.server.service import DEFAULT_SHUTDOWN_GRACE, ROUND_JITTER
from spc.status.services import statusServices, warnEveryInterface
from spc.status.snapshot import StatusSource
from spc.transport import tls


DEFAULT_INTERFACE = "127.0.0.1"
"""
The address C{--ports} listen on unless C{--interface} says otherwise.
"""


_TIMERS = ("rotate-interval", "ack-timeout", "transition", "heartbeat-interval")


def tcpEndpoint(port: int, interface: str) -> str:
    """
    The server endpoint description for a TCP port on an interface.

    @param port: The TCP port.
    @param interface: An IPv4 or IPv6 address; the colons of an IPv6 address
        are escaped as the endpoint syntax requires (C{::1} becomes
        C{\\:\\:1}).
    @return: For example C{tcp:9000:interface=127.0.0.1}.
    """
    return f"tcp:{port}:interface={quoteStringArgument(interface)}"


def parseUmask(text: str) -> int:
    """
    The C{--inbox-umask}: octal digits, as C{umask} takes them (C{027},
    C{0027}).  A mask may not take the daemon's own permissions away: it
    must read and write its files and enter its folders.

    @raise usage.UsageError: for anything else.
    """
    digits = text.strip().removeprefix("0o")
    if not (0 < len(digits) <= 4 and all(digit in "01234567" for digit in digits)):
        raise usage.UsageError(f"--inbox-umask: {text!r} is not an octal mask such as 077")
    mask = int(digits, 8)
    if mask > 0o777 or mask & 0o700:
        raise usage.UsageError(
            f"--inbox-umask: {text!r} would take the daemon's own permissions "
            "away; mask only the group's and others' (0 to 077)"
        )
    return mask


class Options(SuiteMapOption, StatusOptionsMixin, usage.Options):
    """
    Command line of the spc daemon.

    After parsing, besides the options themselves:
      - C{self["ports"]}: the C{--ports}, as a list of ints;
      - C{self["listen"]}: the C{--listen} descriptions, in order;
      - C{self["endpoints"]}: every server endpoint description to listen
        on, one per channel: the C{--ports} first, then the C{--listen}
        entries;
      - C{self["key-dir"]} and C{self["authorized-keys"]}: resolved to
        their defaults when not given;
      - C{self["control-socket"]}: an absolute path, or L{None} for none.
    """

    synopsis = "--inbox DIR [--ports PORTS] [--listen ENDPOINT]... [options]"

    longdesc = (
        "Receive messages and files from spc senders. Each port (or --listen "
        "endpoint) is one channel of a session. --ports and --listen may be "
        "combined: the channels are the ports first, then the --listen "
        f"endpoints, at most {MAX_CHANNELS} in all. In an endpoint "
        "description the colons of an IPv6 address are escaped: --listen "
        "'tcp:9000:interface=\\:\\:1'. Only clients whose key fingerprints "
        "are in the authorized_keys file are admitted, unless "
        "--allow-any-client is given."
    )

    optParameters = [
        [
            "key-dir",
            None,
            None,
            "Directory holding the identity key (default: $SPC_HOME, "
            "or ~/.config/spc).",
        ],
        [
            "interface",
            None,
            DEFAULT_INTERFACE,
            "IP address the --ports listen on (IPv4 or IPv6); "
            "--listen endpoints name their own.",
        ],
        [
            "inbox",
            None,
            None,
            "Directory where received files and messages go (required).",
        ],
        [
            "authorized-keys",
            None,
            None,
            "File listing the fingerprints of admitted clients "
            "(default: KEYDIR/authorized_keys).",
        ],
        [
            "rotate-interval",
            None,
            "30",
            "Seconds between key rotations (fractions allowed); must exceed "
            "--ack-timeout plus --transition by the 10% jitter.",
        ],
        ["ack-timeout", None, "5", "Seconds a client has to acknowledge a new key."],
        [
            "transition",
            None,
            "10",
            "Seconds in which old and new keys are both accepted after a rotation.",
        ],
        [
            "heartbeat-interval",
            None,
            "5",
            "Seconds between heartbeats on each channel (0.1 to 60); three "
            "missed make a channel dead.",
        ],
        [
            "inbox-umask",
            None,
            "077",
            "Permission bits received files and folders do not get, in octal: "
            "files are 0666 and folders 0777 less these (077: 0600 and 0700, "
            "for the daemon's user alone; 027: 0640 and 0750, the group may "
            "read). messages.jsonl and files.jsonl are files too.",
        ],
        [
            "partial-quota",
            None,
            "256G",
            "Most bytes one sender's unfinished files may declare together "
            "(suffixes K, M, G); an offer beyond it is refused.",
        ],
        [
            "shutdown-grace",
            None,
            str(DEFAULT_SHUTDOWN_GRACE),
            "Seconds a stopping daemon lets sessions send the answers their "
            "senders wait for (stored messages, verified files) before it "
            "says goodbye.",
        ],
        [
            "fragment-size",
            None,
            "256K",
            "Bytes of file or message data per fragment, 16K to 1M; the "
            "daemon announces it to every client.",
        ],
        [
            "log-format",
            None,
            "text",
            "text (lines for people) or json (one JSON object per line, "
            "every event's fields by name), where twistd logs.",
        ],
    ]

    optFlags = [
        [
            "allow-any-client",
            None,
            "Admit every client, whatever its key (no client authentication).",
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["ports"] = []
        self["listen"] = []
        self["endpoints"] = []
        self["suites"] = None
        self["tls"] = {}
        self._failed = False

    def parseOptions(self, options=None) -> None:
        """
        Parse, remembering a failure for L{getUsage}.

        @raise usage.UsageError: as L{usage.Options.parseOptions} does.
        """
        try:
            super().parseOptions(options)
        except usage.UsageError:
            self._failed = True
            raise

    def getUsage(self, width: int | None = None) -> str:
        """
        Every option, for C{--help}; after a failed parse, one line.

        twistd prints the usage of a command line it could not parse and
        then the reason: the reason is what a user needs, and sixty lines
        of options above it hide it.
        """
        if self._failed:
            return f"       twistd [options] spc {self.synopsis} (--help: every option)"
        return super().getUsage(width)

    def opt_ports(self, spec: str) -> None:
        """TCP ports, one channel each, e.g. 9000-9003 or 9000,9001,9005."""
        self["ports"].extend(parsePorts(spec))

    def opt_listen(self, description: str) -> None:
        """A Twisted server endpoint, one channel; repeatable (ssl: is TLS 1.3)."""
        if description[:4].lower() == "ssl:":
            try:
                self["tls"][description] = tls.parseServerDescription(f"ssl:{description[4:]}")
            except Exception as e:
                raise usage.UsageError(
                    f"--listen: {description!r} is not a valid server endpoint "
                    f"description: {e}"
                ) from e
        else:
            checkServerEndpoint("--listen", description)
        self["listen"].append(description)

    def postOptions(self) -> None:
        """
        Check the options together and fill in the defaults.

        @raise usage.UsageError: If a required option is missing, a port is
            repeated, there are too many channels or the interface is not an
            IP address.
        """
        if not self["inbox"]:
            raise usage.UsageError("--inbox DIR is required")
        if not self["ports"] and not self["listen"]:
            raise usage.UsageError(
                "nothing to listen on: give --ports (e.g. 9000-9003) or --listen"
            )
        repeated = sorted(
            port for port, n in Counter(self["ports"]).items() if n > 1
        )
        if repeated:
            raise usage.UsageError(
                "--ports: repeated port(s) " + ", ".join(map(str, repeated))
            )
        if len(set(self["listen"])) != len(self["listen"]):
            raise usage.UsageError("--listen: the same endpoint is given twice")
        count = len(self["ports"]) + len(self["listen"])
        if count > MAX_CHANNELS:
            raise usage.UsageError(
                f"{count} channels requested; at most {MAX_CHANNELS} are allowed"
            )
        interface = self["interface"].strip()
        if interface.startswith("[") and interface.endswith("]"):
            interface = interface[1:-1]
        try:
            ipaddress.ip_address(interface)
        except ValueError as e:
            raise usage.UsageError(
                f"--interface: {self['interface']!r} is not an IP address "
                "(e.g. 127.0.0.1, 0.0.0.0 or ::1)"
            ) from e
        self["interface"] = interface
        self["endpoints"] = [
            tcpEndpoint(port, interface) for port in self["ports"]
        ] + list(self["listen"])
        if self["key-dir"] is None:
            # Read now, not at import, so the running process's environment counts.
            self["key-dir"] = defaultKeyDir()
        if self["authorized-keys"] is None:
            self["authorized-keys"] = os.path.join(
                self["key-dir"], AUTHORIZED_KEYS_NAME
            )
        self.resolveStatusOptions(self["key-dir"])
        size = parseSize(self["fragment-size"])
        if not MIN_FRAGMENT_SIZE <= size <= MAX_FRAGMENT_SIZE:
            raise usage.UsageError("--fragment-size must be from 16K to 1M")
        timers = {name: parseSeconds(self[name], name) for name in _TIMERS}
        self["shutdown-grace"] = parseSeconds(self["shutdown-grace"], "shutdown-grace")
        self["inbox-umask"] = parseUmask(self["inbox-umask"])
        try:
            self["partial-quota"] = parseSize(self["partial-quota"])
        except usage.UsageError as error:
            raise usage.UsageError(f"--partial-quota: {error}") from None
        if timers["rotate-interval"] * (1 - ROUND_JITTER) <= (
            timers["ack-timeout"] + timers["transition"]
        ):
            raise usage.UsageError(
                "--rotate-interval must be longer than --ack-timeout plus "
                "--transition, with 10% to spare for jitter"
            )
        if not 0.1 <= timers["heartbeat-interval"] <= 60:
            raise usage.UsageError("--heartbeat-interval must be from 0.1 to 60 seconds")
        milliseconds = {name: round(value * 1000) for name, value in timers.items()}
        self["params"] = Params(
            heartbeatInterval=milliseconds["heartbeat-interval"],
            rotationInterval=milliseconds["rotate-interval"],
            ackTimeout=milliseconds["ack-timeout"],
            overlap=milliseconds["transition"],
            fragmentSize=size,
            maxInner=maxInnerSize(size),
        )
        if self["suites"] is not None and len(self["suites"]) != count:
            raise usage.UsageError(
                f"--suites names {len(self['suites'])} suites for {count} channels"
            )
        problem = checkFormat(self["log-format"], self.twistdOptions())
        if problem is not None:
            raise usage.UsageError(problem)

    def twistdOptions(self) -> usage.Options | dict:
        """
        The options of the twistd that runs the daemon ({} outside twistd).
        """
        return self.parent if self.parent is not None else {}


def makeService(
    config: Options, reactor: IReactorCore | None = None
) -> MultiService:
    """
    Build the spc daemon's service from a parsed command line.

    A missing or unsafe key, or an unreadable trust file, stops the daemon
    with one clear line rather than a traceback: twistd prints the message
    of a C{SystemExit}.

    @param config: The parsed L{Options}.
    @param reactor: The reactor the channels use; L{None} means the global
        reactor.
    @return: The service, named C{"spc"}.
    """
    if reactor is None:
        from twisted.internet import reactor
    try:
        daemon = DaemonService(reactor, config)
    except SPCError as error:
        raise SystemExit(f"spc: {error}") from None
    try:
        status = StatusSource(daemon.directory, reactor, daemon.hostIdentity.fingerprint)
        for service in statusServices(
            reactor,
            status,
            controlSocket=config["control-socket"],
            metrics=config["metrics"],
            skippedSocket=config["control-socket-skipped"],
            invites=daemon.pairing,
        ):
            service.setServiceParent(daemon)
    except BaseException as error:
        daemon.madeFolders.undo()
        if isinstance(error, SPCError):
            raise SystemExit(f"spc: {error}") from None
        raise
    warnEveryInterface(config["listen"])
    return daemon
