# -*- test-case-name: tests.unit.test_cli -*-
"""
The commands that make and show keys: C{spc keygen} (the RSA identity
peers pin), C{spc fingerprint} (what to give them) and C{spc tls-cert}
(a key and certificate for the optional TLS underlay).  They run without
the reactor.
"""

from __future__ import annotations

import os

from twisted.internet.endpoints import quoteStringArgument
from twisted.python import usage

from spc.cli.command import EXIT_OK, Command, Context, KeyDirMixin
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

__all__ = ["FingerprintOptions", "KeygenOptions", "TLSCertOptions"]


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
