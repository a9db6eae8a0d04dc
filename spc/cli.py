# -*- test-case-name: tests.test_cli -*-
"""
The C{spc} command: C{spc keygen}, C{spc fingerprint}, and later C{spc send}
and C{spc demo}.

Every subcommand is a L{usage.Options} subclass with a C{run} method. To add
one, write a L{Command} subclass and list it in L{SPCOptions.subCommands}.
L{main} turns the errors a user can cause into one line on stderr and an exit
code (DESIGN.md section 1: 1 generic, 2 usage, 3 trust, 4 transfer), so a
user never sees a traceback for their own mistake. Output goes to streams
passed in, so tests call L{main} directly.
"""

from __future__ import annotations

import os
import sys
from typing import Mapping, Sequence, TextIO

from twisted.internet.defer import maybeDeferred
from twisted.internet.error import ConnectError
from twisted.internet.testing import MemoryReactor
from twisted.logger import globalLogBeginner, textFileLogObserver
from twisted.python import usage
from twisted.python.failure import Failure

import spc
from spc.errors import SPCError
from spc.identity import (
    DEFAULT_BITS,
    MAX_RSA_BITS,
    MIN_RSA_BITS,
    PRIVATE_KEY_NAME,
    PUBLIC_KEY_NAME,
    checkKeyFilesAbsent,
    defaultKeyDir,
    fingerprint,
    generateIdentity,
    loadIdentity,
    loadTransferSecret,
    readIdentityPublicKey,
    readPublicKeyFile,
    saveIdentity,
)
from spc.progress import ProgressBar
from spc.sender import SendRequest, clientEndpoints, collectFiles, send
from spc.tap import MAX_CHANNELS, SuiteMapOption, parsePorts, parseSize
from spc.trust import (
    KNOWN_HOSTS_NAME,
    ServerTrust,
    TrustDecision,
    formatHostPort,
    loadServerTrust,
)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class _Exit(Exception):
    """
    Raised by C{--help} and C{--version} in place of L{usage.Options}'
    C{print} and C{sys.exit}, so that L{main} writes the text to its own
    stdout.

    @ivar text: What to print.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class Context:
    """
    What a command may use of the world outside it. Commands write only to
    these streams and read only this environment, so tests can supply them.

    @ivar stdout: For results (a fingerprint, "Wrote ...").
    @ivar stderr: For errors and progress.
    @ivar environ: The environment, for C{$SPC_HOME}.
    """

    def __init__(self, stdout: TextIO, stderr: TextIO, environ: Mapping[str, str]) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.environ = environ


class _BaseOptions(usage.Options):
    """
    Print C{--help} and C{--version} through L{main}'s streams.
    """

    def opt_help(self) -> None:
        """
        Display this help and exit.
        """
        raise _Exit(str(self))

    def opt_version(self) -> None:
        """
        Display the spc version and exit.
        """
        raise _Exit(f"spc {spc.__version__}")


class Command(_BaseOptions):
    """
    A subcommand. Subclasses declare their options as usual and implement
    L{run}.
    """

    def getSynopsis(self) -> str:
        name = self.parent.subCommand if self.parent is not None else "COMMAND"
        return f"Usage: spc {name} {getattr(self, 'synopsis', '[options]')}".rstrip()

    def run(self, context: Context) -> int:
        """
        Do the work.

        @return: The exit code.
        @raise SPCError: For failures that a user can understand and fix.
        """
        raise NotImplementedError()


class KeyDirMixin:
    """
    The C{--key-dir} option, shared by every command that uses an identity.
    """

    optParameters = [
        ["key-dir", None, None,
         "Directory of the identity and trust files "
         "[default: $SPC_HOME or ~/.config/spc]."],
    ]

    def keyDir(self, context: Context) -> str:
        """
        @return: C{--key-dir}, or the default for C{context}'s environment.
        """
        return self["key-dir"] or defaultKeyDir(context.environ)  # type: ignore[index]


class KeygenOptions(KeyDirMixin, Command):
    """
    C{spc keygen}: create the RSA identity that peers pin.
    """

    synopsis = "[--key-dir DIR] [--bits N] [--force]"
    optParameters = [
        ["bits", None, str(DEFAULT_BITS),
         f"RSA key size in bits, from {MIN_RSA_BITS} to {MAX_RSA_BITS}."],
    ]
    optFlags = [["force", None, "Replace an existing identity (the old one is lost)."]]

    def postOptions(self) -> None:
        text = self["bits"]
        bits = int(text) if text.isascii() and text.isdigit() and len(text) < 6 else 0
        if not MIN_RSA_BITS <= bits <= MAX_RSA_BITS:
            raise usage.UsageError(
                f"--bits must be a number from {MIN_RSA_BITS} to {MAX_RSA_BITS}, not {text}"
            )
        self["bits"] = bits

    def run(self, context: Context) -> int:
        keyDir = self.keyDir(context)
        if not self["force"]:
            checkKeyFilesAbsent(keyDir)  # before spending time on generation
        identity = generateIdentity(self["bits"])
        saveIdentity(identity, keyDir, force=self["force"])
        privatePath = os.path.join(keyDir, PRIVATE_KEY_NAME)
        publicPath = os.path.join(keyDir, PUBLIC_KEY_NAME)
        context.stdout.write(f"Wrote {privatePath} and {publicPath}\n")
        context.stdout.write(f"Fingerprint: {identity.fingerprint}\n")
        return EXIT_OK


class FingerprintOptions(KeyDirMixin, Command):
    """
    C{spc fingerprint}: print the fingerprint that peers pin, so it can be
    given to them.
    """

    synopsis = "[--key-dir DIR | PUBKEY_FILE]"
    publicKeyFile: str | None = None

    def parseArgs(self, publicKeyFile: str | None = None) -> None:
        self.publicKeyFile = publicKeyFile

    def postOptions(self) -> None:
        if self.publicKeyFile is not None and self["key-dir"] is not None:
            raise usage.UsageError("give --key-dir or PUBKEY_FILE, not both")

    def run(self, context: Context) -> int:
        if self.publicKeyFile is not None:
            der = readPublicKeyFile(self.publicKeyFile)
        else:
            der = readIdentityPublicKey(self.keyDir(context))
        context.stdout.write(fingerprint(der) + "\n")
        return EXIT_OK


class ReactorCommand(Command):
    """
    A subcommand that runs the reactor until its work is done.
    """

    optFlags = [["verbose", "v", "Log what happens to stderr."]]

    def runWithReactor(self, reactor, context: Context):
        """
        Do the work.

        @return: the exit code, or a Deferred firing with it.
        """
        raise NotImplementedError()

    def run(self, context: Context) -> int:
        from twisted.internet import reactor

        if self["verbose"]:
            globalLogBeginner.beginLoggingTo(
                [textFileLogObserver(context.stderr)], redirectStandardIO=False
            )
        outcome: list = []

        def finish(result):
            outcome.append(result)
            reactor.stop()

        reactor.callWhenRunning(
            lambda: maybeDeferred(self.runWithReactor, reactor, context).addBoth(finish)
        )
        reactor.run()
        if not outcome:
            raise KeyboardInterrupt()
        if isinstance(outcome[0], Failure):
            outcome[0].raiseException()
        return outcome[0]


class SendOptions(KeyDirMixin, SuiteMapOption, ReactorCommand):
    """
    C{spc send}: deliver messages and files to a daemon, and exit 0 only
    once the daemon confirmed it stored and verified every one.
    """

    synopsis = (
        "--server HOST --ports PORTS [--connect ENDPOINT]... "
        "[--server-fingerprint FP | --accept-new] [--message TEXT]... [FILE|DIR]..."
    )
    optParameters = [
        ["server", None, None, "Host name or address of the daemon."],
        ["server-fingerprint", None, None,
         "Expected fingerprint of the daemon's key (overrides known_hosts)."],
    ]
    optFlags = [
        ["accept-new", None,
         "Trust and record the key of a server not yet in known_hosts."],
        ["no-progress", None, "Show no progress bar."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["ports"] = []
        self["connect"] = []
        self["messages"] = []
        self["suites"] = None
        self["paths"] = []

    def parseArgs(self, *paths: str) -> None:
        self["paths"] = list(paths)

    def opt_ports(self, text: str) -> None:
        """The daemon's ports, one channel each, e.g. 9000-9003."""
        self["ports"].extend(parsePorts(text))

    def opt_connect(self, description: str) -> None:
        """A Twisted client endpoint, one channel; repeatable."""
        try:
            clientEndpoints(MemoryReactor(), [description])
        except Exception as error:
            raise usage.UsageError(
                f"--connect: {description!r} is not a client endpoint: {error}"
            ) from None
        self["connect"].append(description)

    def opt_message(self, text: str) -> None:
        """A text message to send; repeatable."""
        self["messages"].append(text.encode("utf-8"))

    def postOptions(self) -> None:
        if not self["messages"] and not self["paths"]:
            raise usage.UsageError("nothing to send: give --message TEXT or files")
        try:
            self["files"] = collectFiles(self["paths"])
        except SPCError as error:
            raise usage.UsageError(str(error)) from None
        if self["ports"] and not self["server"]:
            raise usage.UsageError("--ports needs --server HOST")
        if not self["ports"] and not self["connect"]:
            raise usage.UsageError("give --server HOST --ports PORTS, or --connect")
        host = self["server"]
        if host:
            host = self["server"] = host.strip("[]")
        endpoints = [f"tcp:{_bracketed(host)}:{port}" for port in self["ports"]]
        endpoints += self["connect"]
        if len(endpoints) > MAX_CHANNELS:
            raise usage.UsageError(f"at most {MAX_CHANNELS} channels")
        if self["suites"] is not None and len(self["suites"]) != len(endpoints):
            raise usage.UsageError("--suites must name one suite per channel")
        self["endpoints"] = endpoints
        try:
            if host and self["ports"]:
                self["host-port"] = formatHostPort(host, self["ports"][0])
            else:
                self["host-port"] = _endpointHostPort(self["connect"][0], host)
        except ValueError as error:
            raise usage.UsageError(f"--server: {error}") from None

    def runWithReactor(self, reactor, context: Context):
        keyDir = self.keyDir(context)
        bar = ProgressBar(context.stderr, enabled=not self["no-progress"])
        request = SendRequest(
            loadIdentity(keyDir),
            _ReportingTrust(
                loadServerTrust(keyDir, self["server-fingerprint"], self["accept-new"]),
                os.path.join(keyDir, KNOWN_HOSTS_NAME),
                context.stderr,
            ),
            self["host-port"],
            self["endpoints"],
            self["messages"],
            self["files"],
            self["suites"],
            loadTransferSecret(keyDir),
            bar.update,
        )
        result = send(reactor, request)
        result.addBoth(bar.close)
        return result.addCallback(self._report, context)

    def _report(self, summary, context: Context) -> int:
        rate = summary.bytes / summary.seconds / 1e6 if summary.seconds > 0 else 0.0
        context.stdout.write(
            f"Delivered {summary.messages} message(s) and {summary.files} file(s), "
            f"{summary.bytes} bytes in {summary.seconds:.2f} s ({rate:.1f} MB/s), over "
            f"{summary.channels} channel(s) to {summary.server}\n"
        )
        return EXIT_OK


class DemoOptions(ReactorCommand):
    """
    C{spc demo}: a server and a client in one process, on loopback.
    """

    synopsis = "[--channels N] [--size BYTES]"
    optParameters = [
        ["channels", None, "4", "How many channels (ports)."],
        ["size", None, "64M", "Size of the generated file (suffixes K, M, G)."],
    ]
    optFlags = [["no-progress", None, "Show no progress bar."]]

    def postOptions(self) -> None:
        text = self["channels"]
        if not (text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_CHANNELS):
            raise usage.UsageError(f"--channels must be 1 to {MAX_CHANNELS}")
        self["channels"] = int(text)
        self["size"] = parseSize(self["size"])

    def runWithReactor(self, reactor, context: Context):
        from spc.demo import runDemo

        bar = ProgressBar(context.stderr, enabled=not self["no-progress"])
        result = runDemo(reactor, context.stdout, self["channels"], self["size"], bar.update)
        return result.addBoth(bar.close)


class _ReportingTrust:
    """
    Tells the user when trust on first use recorded a server key: they
    should compare it with the server's real fingerprint.
    """

    def __init__(self, trust: ServerTrust, path: str, stderr: TextIO) -> None:
        self._trust = trust
        self._path = path
        self._stderr = stderr

    def check(self, hostPort: str, fingerprint: str) -> TrustDecision:
        decision = self._trust.check(hostPort, fingerprint)
        if decision is TrustDecision.ADDED:
            self._stderr.write(
                f"spc: added {hostPort} {fingerprint} to {self._path}; "
                "check it with the server's operator\n"
            )
        return decision


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


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
        "give --server and --ports"
    )


class SPCOptions(_BaseOptions):
    """
    The top level of the C{spc} command.
    """

    synopsis = "Usage: spc [--version] [--help] COMMAND [options]"
    subCommands = [
        ["keygen", None, KeygenOptions, "Create an RSA identity in the key directory."],
        ["fingerprint", None, FingerprintOptions, "Print the fingerprint of a public key."],
        ["send", None, SendOptions, "Send messages to an spc daemon."],
        ["demo", None, DemoOptions, "Run a server and a client on loopback."],
    ]

    def getSynopsis(self) -> str:
        return self.synopsis

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError("no command given")


def _helpHint(options: SPCOptions) -> str:
    command = f"spc {options.subCommand}" if options.subCommand else "spc"
    return f"Try '{command} --help' for more information."


def main(
    argv: Sequence[str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> int:
    """
    Run the C{spc} command.

    @param argv: The arguments after the program name (C{sys.argv[1:]} if
        L{None}).
    @param stdout: Where results go (L{sys.stdout} if L{None}).
    @param stderr: Where errors go (L{sys.stderr} if L{None}).
    @param environ: The environment (L{os.environ} if L{None}).
    @return: The exit code.
    """
    context = Context(
        sys.stdout if stdout is None else stdout,
        sys.stderr if stderr is None else stderr,
        os.environ if environ is None else environ,
    )
    options = SPCOptions()
    try:
        options.parseOptions(list(sys.argv[1:] if argv is None else argv))
    except _Exit as e:
        context.stdout.write(e.text.rstrip("\n") + "\n")
        return EXIT_OK
    except usage.UsageError as e:
        context.stderr.write(f"spc: {e}\n{_helpHint(options)}\n")
        return EXIT_USAGE
    try:
        return options.subOptions.run(context)
    except SPCError as e:
        context.stderr.write(f"spc: {e}\n")
        return e.exitCode
    except ConnectError as e:
        context.stderr.write(f"spc: could not connect: {e}\n")
        return EXIT_FAILURE
    except OSError as e:
        where = f": {e.filename}" if e.filename else ""
        context.stderr.write(f"spc: {e.strerror or e}{where}\n")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        context.stderr.write("spc: interrupted\n")
        return 130


def run() -> None:
    """
    The console-script entry point (C{spc = spc.cli:run}).
    """
    sys.exit(main())
