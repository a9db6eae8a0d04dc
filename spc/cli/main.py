# -*- test-case-name: tests.test_cli -*-
"""
The C{spc} command: C{spc keygen}, C{spc fingerprint}, C{spc tls-cert},
C{spc receive}, C{spc send}, C{spc invite}, C{spc pair}, C{spc demo} and
C{spc status}.

Every subcommand is a L{Command} subclass with a C{run} method; to add one,
list it in L{SPCOptions.subCommands}. L{main} turns the errors a user can
cause into one line on stderr and an exit code (DESIGN.md section 1: 1
generic, 2 usage, 3 trust, 4 transfer), so a user never sees a traceback for
their own mistake. Output goes to streams passed in, so tests call L{main}
directly.
"""

from __future__ import annotations

import os
import sys
from typing import Mapping, Sequence, TextIO

from twisted.internet.endpoints import quoteStringArgument
from twisted.internet.error import ConnectError
from twisted.python import usage

from spc.cli.command import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    Command,
    Context,
    KeyDirMixin,
    _BaseOptions,
    _Exit,
)
from spc.cli.options import MAX_CHANNELS
from spc.cli.pair import InviteOptions, PairOptions
from spc.cli.receive import ReceiveOptions
from spc.cli.send import DemoOptions, SendOptions
from spc.cli.status import StatusOptions
from spc.errors import SPCError
from spc.keys.identity import (
    DEFAULT_BITS,
    MAX_RSA_BITS,
    MIN_RSA_BITS,
    PRIVATE_KEY_NAME,
    PUBLIC_KEY_NAME,
    checkKeyFilesAbsent,
    fingerprint,
    generateIdentity,
    readIdentityPublicKey,
    readPublicKeyFile,
    saveIdentity,
)
from spc.keys.tlscert import DEFAULT_DAYS, writeCertificate

__all__ = ["Command", "MAX_CHANNELS", "SPCOptions", "main", "run"]


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


class TLSCertOptions(KeyDirMixin, Command):
    """
    C{spc tls-cert}: a key and self-signed certificate for the optional
    TLS underlay, and the fingerprint that senders pin instead of checking
    the name against a certificate authority.
    """

    synopsis = "--host NAME [--out-dir DIR] [--days N] [--force]"
    optParameters = [
        ["host", None, None, "Host name or IP address the certificate is for (required)."],
        ["out-dir", None, None,
         "Where to write NAME.crt and NAME.key [default: the key directory]."],
        ["days", None, str(DEFAULT_DAYS), "How many days the certificate is valid."],
    ]
    optFlags = [["force", None, "Replace an existing certificate and key."]]

    def postOptions(self) -> None:
        if not self["host"]:
            raise usage.UsageError("--host NAME is required")
        text = self["days"]
        if not (text.isascii() and text.isdigit() and 1 <= int(text) <= 36500):
            raise usage.UsageError(f"--days must be a number from 1 to 36500, not {text}")
        self["days"] = int(text)

    def run(self, context: Context) -> int:
        directory = self["out-dir"] or self.keyDir(context)
        written = writeCertificate(self["host"], directory, self["days"], self["force"])
        host = written.host
        key = quoteStringArgument(written.keyPath)
        certificate = quoteStringArgument(written.certificatePath)
        target = f"[{host}]" if ":" in host else host
        context.stdout.write(
            f"Wrote {written.certificatePath} and {written.keyPath}\n"
            f"TLS fingerprint: {written.fingerprint}\n"
            f"Daemon: twistd -n spc --listen ssl:9443:privateKey={key}:certKey={certificate} ...\n"
            f"Sender: spc send --connect tls:{target}:9443:trustRoots={certificate} ...\n"
            f"    or: spc send --connect tls:{target}:9443 "
            f"--tls-fingerprint {written.fingerprint} ...\n"
        )
        return EXIT_OK


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
    The console-script entry point (C{spc = spc.cli.main:run}).
    """
    sys.exit(main())
