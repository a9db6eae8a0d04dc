# -*- test-case-name: tests.memory.test_invites,tests.integration.test_invites -*-
"""
What a pairing (amendment A20) leaves in the receiver's trust: a line
added to C{authorized_keys}, or, for one transfer only, a key trusted in
memory.

A line is added the way every trust file is written (L{spc.keys.keyfiles}):
the file, read with the same safety checks as at start-up, gets the new
line in a temporary file that is fsynced and renamed over it, so a reader
sees the old list or the new one and nothing else.
"""

from __future__ import annotations

import os
import stat

from spc.keys.identity import fingerprintsEqual, parseFingerprint
from spc.keys.keyfiles import replaceFile
from spc.keys.trust import AuthorizedKeys, ClientTrust
from spc.keys.trustfile import readTrustFile

__all__ = ["MAX_NAME", "PairedClients", "authorizeKey", "checkName"]

MAX_NAME = 64
"""
Bytes (UTF-8) of the name an invite gives its client.
"""


def checkName(name: str) -> str:
    """
    A client's name as C{authorized_keys} can hold it: one printable line,
    no blanks around it, at most L{MAX_NAME} bytes.

    @return: the name.
    @raise ValueError: saying why it cannot be one.
    """
    if name != name.strip() or not name.isprintable():
        raise ValueError("a name is one line of printable characters, no blanks around it")
    if len(name.encode("utf-8")) > MAX_NAME:
        raise ValueError(f"a name has at most {MAX_NAME} bytes")
    return name


def authorizeKey(path: str, fingerprint: str, name: str, uid: int | None = None) -> bool:
    """
    Add C{fingerprint} with C{name} to the C{authorized_keys} at C{path},
    keeping every line it has.

    @param uid: the user besides root who may own the file (L{None}: this
        one), as for reading it at start-up.
    @return: whether a line was added; a key listed already is left as it
        is.
    @raise spc.errors.InsecurePath: if another user could change the file.
    @raise spc.errors.TrustFileError: if it cannot be read.
    @raise OSError: if it cannot be written.
    """
    fingerprint = parseFingerprint(fingerprint)
    text = readTrustFile(path, uid)
    if AuthorizedKeys.parseValid(text, path)[0].isAuthorized(fingerprint):
        return False
    if text and not text.endswith("\n"):
        text += "\n"
    line = f"{fingerprint} {checkName(name)}".rstrip()
    target = os.path.realpath(path)
    os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = 0o600
    replaceFile(target, f"{text}{line}\n".encode("utf-8"), mode)
    return True


class PairedClients:
    """
    A L{ClientTrust} that admits what C{base} admits and the keys paired
    since it was made, the latter in memory only: C{spc receive} trusts a
    sender for its one transfer unless told to remember it.

    @ivar base: the trust read from C{authorized_keys}.
    """

    def __init__(self, base: ClientTrust) -> None:
        self.base = base
        self._paired: dict[str, str] = {}

    def add(self, fingerprint: str, name: str) -> None:
        self._paired[parseFingerprint(fingerprint)] = name

    def isAuthorized(self, fingerprint: str) -> bool:
        return self.base.isAuthorized(fingerprint) or self._find(fingerprint) is not None

    def nameOf(self, fingerprint: str) -> str | None:
        found = self._find(fingerprint)
        return found or self.base.nameOf(fingerprint)

    def describe(self) -> str:
        return f"{self.base.describe()}, and {len(self._paired)} paired for this run"

    def _find(self, fingerprint: str) -> str | None:
        """
        Compare with every paired key, in constant time and without an
        early exit, as L{AuthorizedKeys} does.
        """
        try:
            presented = parseFingerprint(fingerprint)
        except ValueError:
            return None
        found = None
        for paired, name in self._paired.items():
            if fingerprintsEqual(paired, presented) and found is None:
                found = name
        return found
