# -*- test-case-name: tests.unit.test_cli -*-
"""
What every C{spc} subcommand shares: the streams and environment it may use
(L{Context}), C{--help}/C{--version} through those streams, C{--key-dir},
and running the reactor until the work is done (L{ReactorCommand}, with
L{twisted.internet.task.react}).

A subcommand is a L{Command} subclass with a C{run} method, listed in
L{spc.cli.main.SPCOptions.subCommands}.
"""

from __future__ import annotations

import getopt
import io
from typing import BinaryIO, Mapping, TextIO

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import react
from twisted.logger import globalLogBeginner, textFileLogObserver
from twisted.python import usage
from twisted.python.failure import Failure

from spc import __version__
from spc.keys.identity import defaultKeyDir

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
"""
The exit code of a command stopped by Ctrl-C (SIGINT) or SIGTERM: 128 and
SIGINT's number, as shells report a process killed by it.
"""

_INTERRUPTED = object()
"""
The outcome of a command whose reactor began to shut down before its work
was done.
"""


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
    @ivar stdin: What C{spc send} reads messages and files from, as bytes;
        empty unless given.
    """

    def __init__(
        self,
        stdout: TextIO,
        stderr: TextIO,
        environ: Mapping[str, str],
        stdin: BinaryIO | None = None,
    ) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.environ = environ
        self.stdin = io.BytesIO() if stdin is None else stdin


class _BaseOptions(usage.Options):
    """
    Print C{--help} and C{--version} through L{main}'s streams.
    """

    epilog = ""
    """
    Text after the options in C{--help}, kept as written: examples and exit
    codes (Twisted wraps C{longdesc} into one paragraph).
    """

    def opt_help(self) -> None:
        """
        Display this help and exit.
        """
        raise _Exit(str(self))

    opt_h = opt_help

    def getUsage(self, width: int | None = None) -> str:
        return super().getUsage(width) + self.epilog

    def opt_version(self) -> None:
        """
        Display the spc version and exit.
        """
        raise _Exit(f"spc {__version__}")


class Command(_BaseOptions):
    """
    A subcommand. Subclasses declare their options as usual and implement
    L{run}.
    """

    def parseOptions(self, options=None) -> None:
        """
        Let options follow the file names (C{spc send FILE --no-progress}),
        as GNU tools do; C{--} still ends the options.
        """
        if options is not None:
            try:
                found, arguments = getopt.gnu_getopt(options, self.shortOpt, self.longOpt)
            except getopt.error as error:
                raise usage.UsageError(str(error)) from None
            options = []
            for option, value in found:
                options.append(option)
                if self._takesValue(option):
                    options.append(value)
            options += ["--", *arguments]
        super().parseOptions(options)

    def _takesValue(self, option: str) -> bool:
        if option.startswith("--"):
            return option[2:] + "=" in self.longOpt
        at = self.shortOpt.find(option[1])
        return self.shortOpt[at + 1 : at + 2] == ":"

    def getSynopsis(self) -> str:
        name = self.parent.subCommand if self.parent is not None else "COMMAND"
        return f"Usage: spc {name} {getattr(self, 'synopsis', '[options]')}".rstrip()

    def run(self, context: Context) -> int:
        """
        Do the work.

        @return: The exit code.
        @raise SPCError: For failures that a user can understand and fix.
        @raise usage.UsageError: For a usage error found only now.
        """
        raise NotImplementedError()

    def interruptedHint(self) -> str:
        """
        What a user should know of a command stopped before its work was
        done, after "interrupted": nothing, unless the command says.
        """
        return ""


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


class ReactorCommand(Command):
    """
    A subcommand that runs the reactor, with L{twisted.internet.task.react},
    until its work is done.
    """

    optFlags = [["verbose", "v", "Log what happens to stderr."]]

    def runWithReactor(self, reactor, context: Context):
        """
        Do the work.

        @return: the exit code, or a Deferred firing with it.
        """
        raise NotImplementedError()

    def run(self, context: Context) -> int:
        """
        Run L{runWithReactor} under C{react} and hand its outcome to
        L{spc.cli.main.main}, which reports it as it reports every
        command's.

        C{react} logs a failure and ends the process with C{sys.exit} once
        the reactor stopped; so the work's outcome is kept here, and the
        C{SystemExit} caught.  A reactor that begins to shut down before
        the work is done was stopped by Ctrl-C (SIGINT) or SIGTERM: what
        the work says while its connections close is a consequence, so the
        command reports that it was interrupted.

        @return: the exit code.
        @raise KeyboardInterrupt: if the command was interrupted.
        """
        if self["verbose"]:
            globalLogBeginner.beginLoggingTo(
                [textFileLogObserver(context.stderr)], redirectStandardIO=False
            )
        outcome: list = []

        def keep(result) -> None:
            if not outcome:
                outcome.append(result)

        def work(reactor) -> Deferred:
            reactor.addSystemEventTrigger("before", "shutdown", keep, _INTERRUPTED)
            return maybeDeferred(self.runWithReactor, reactor, context).addBoth(keep)

        try:
            react(work)
        except SystemExit:
            pass
        if outcome[0] is _INTERRUPTED:
            raise KeyboardInterrupt()
        if isinstance(outcome[0], Failure):
            outcome[0].raiseException()
        return outcome[0]
