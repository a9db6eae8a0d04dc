# -*- test-case-name: tests.unit.test_cli -*-
"""
The C{spc} command: C{spc keygen}, C{spc fingerprint}, C{spc tls-cert},
C{spc receive}, C{spc send}, C{spc invite}, C{spc pair}, C{spc demo},
C{spc status} and C{spc discard}.

Every subcommand is a L{spc.cli.command.Command} subclass with a C{run}
method; to add one, list it in L{SPCOptions.subCommands}. L{main} turns the errors a user can
cause into one line on stderr and an exit code (DESIGN.md section 1: 1
generic, 2 usage, 3 trust, 4 transfer, 130 interrupted), so a user never
sees a traceback for their own mistake. Output goes to streams passed in, so tests call L{main}
directly.
"""

from __future__ import annotations

import os
import sys
from typing import BinaryIO, Mapping, Sequence, TextIO

from twisted.internet.error import ConnectError
from twisted.python import usage

from spc.cli.command import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Context,
    _BaseOptions,
    _Exit,
)
from spc.cli.demo import DemoOptions
from spc.cli.discard import DiscardOptions
from spc.cli.keys import FingerprintOptions, KeygenOptions, TLSCertOptions
from spc.cli.pair import InviteOptions, PairOptions
from spc.cli.receive import ReceiveOptions
from spc.cli.send import SendOptions
from spc.cli.status import StatusOptions
from spc.errors import SPCError

__all__ = ["SPCOptions", "main", "run"]


class SPCOptions(_BaseOptions):
    """
    The top level of the C{spc} command.
    """

    synopsis = "Usage: spc [--version] [--help] COMMAND [options]"
    subCommands = [
        ["keygen", None, KeygenOptions, "Create an RSA identity in the key directory."],
        ["fingerprint", None, FingerprintOptions, "Print the fingerprint of a public key."],
        ["tls-cert", None, TLSCertOptions, "Make a TLS key and self-signed certificate."],
        ["receive", None, ReceiveOptions, "Receive files from one sender, paired by a code."],
        ["send", None, SendOptions, "Send messages to an spc daemon."],
        ["invite", None, InviteOptions, "Ask the daemon for a one-time pairing code."],
        ["pair", None, PairOptions, "Pair with a daemon using its one-time code."],
        ["demo", None, DemoOptions, "Run a server and a client on loopback."],
        ["status", None, StatusOptions, "Show the sessions of a running daemon."],
        ["discard", None, DiscardOptions, "Remove unfinished files a running daemon holds."],
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
    stdin: BinaryIO | None = None,
) -> int:
    """
    Run the C{spc} command.

    @param argv: The arguments after the program name (C{sys.argv[1:]} if
        L{None}).
    @param stdout: Where results go (L{sys.stdout} if L{None}).
    @param stderr: Where errors go (L{sys.stderr} if L{None}).
    @param environ: The environment (L{os.environ} if L{None}).
    @param stdin: What C{spc send} may read, as bytes (nothing if L{None}:
        L{run} gives the process's stdin).
    @return: The exit code.
    """
    context = Context(
        sys.stdout if stdout is None else stdout,
        sys.stderr if stderr is None else stderr,
        os.environ if environ is None else environ,
        stdin,
    )
    options = SPCOptions()
    try:
        options.parseOptions(list(sys.argv[1:] if argv is None else argv))
        return options.subOptions.run(context)
    except _Exit as e:
        context.stdout.write(e.text.rstrip("\n") + "\n")
        return EXIT_OK
    except usage.UsageError as e:
        context.stderr.write(f"spc: {e}\n{_helpHint(options)}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        command = getattr(options, "subOptions", None)
        hint = command.interruptedHint() if command is not None else ""
        context.stderr.write(
            f"{_freshLine(context.stderr)}spc: interrupted{'; ' + hint if hint else ''}\n"
        )
        return EXIT_INTERRUPTED
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


def _freshLine(stream: TextIO) -> str:
    """
    What starts a line on C{stream} that nothing stands before: on a
    terminal, the cursor may follow a progress bar or the C{^C} the
    terminal echoed, so the line is cleared (carriage return, erase line).
    """
    isatty = getattr(stream, "isatty", lambda: False)
    return "\r\x1b[K" if isatty() else ""


def run() -> None:
    """
    The console-script entry point (C{spc = spc.cli.main:run}).
    """
    stdin = getattr(sys.stdin, "buffer", None)
    sys.exit(main(stdin=stdin))
