# -*- test-case-name: tests.unit.test_trust -*-
"""
Trust: which peers' keys are accepted, kept in C{known_hosts} and
C{authorized_keys}.

spc uses the OpenSSH trust model that its users already know (DESIGN.md
section 1). A peer is named by the fingerprint of its public key
(L{spc.keys.identity.fingerprint}), and two small text files say which peers are
trusted: the client's C{known_hosts} pins one key per server, recorded on
first contact if the user allows it; the server's C{authorized_keys} lists
the clients that may connect. Keeping this apart from L{spc.keys.identity} keeps
the key material free of policy: the identity module never needs to know who
is trusted, and this module never touches a private key.

The handshake asks one question ("is this key trusted for this peer?") and
gets one answer: a L{TrustDecision}, or an exception from L{spc.errors} whose
text is what the user reads. Both files are read through
L{spc.keys.trustfile}, which refuses a file that another user could have
written, and rewritten atomically through L{spc.keys.keyfiles}.
"""

from __future__ import annotations

import enum
import os
import stat
from typing import Mapping, Protocol, Sequence

from spc.addresses import formatHostPort, parseHostPort
from spc.errors import (
    ConfigurationError,
    ServerKeyChanged,
    TrustFileError,
    UnknownServerKey,
)
from spc.keys.identity import fingerprintsEqual, parseFingerprint
from spc.keys.keyfiles import replaceFile
from spc.keys.trustfile import checkUTF8, entryLines, lineError, readTrustFile

KNOWN_HOSTS_NAME = "known_hosts"
AUTHORIZED_KEYS_NAME = "authorized_keys"

class TrustDecision(enum.Enum):
    """
    Why a server key was accepted. A rejection is an exception instead, so it
    cannot be ignored by accident.

    @cvar KNOWN: The key matches the pin or the C{known_hosts} entry.
    @cvar ADDED: First contact with C{acceptNew}: the key was recorded in
        C{known_hosts}, and the user should be told so (trust on first use).
    """

    KNOWN = "known"
    ADDED = "added"


class ServerTrust(Protocol):
    """
    What the client's handshake needs: L{KnownHosts} or L{PinnedKey}.
    """

    def check(self, hostPort: str, fingerprint: str) -> TrustDecision:
        """
        Decide whether the server at C{hostPort} may use the key with this
        fingerprint. The caller must call this before it sends anything
        secret.

        @param hostPort: From L{formatHostPort}: the host the user named and
            the first port of the server's set.
        @param fingerprint: L{fingerprint} of the key in the server's hello.
        @raise UnknownServerKey: No entry, and first contact is not allowed.
        @raise ServerKeyChanged: The key differs from the recorded one.
        """


class KnownHosts:
    """
    The client's C{known_hosts}, with lines of the form C{HOST:PORT SHA256:...},
    as in OpenSSH with C{StrictHostKeyChecking} set to C{yes} or
    C{accept-new}.

    A host may appear on several lines only with the same key: one pin per
    server, so a changed key is always an error, never a second accepted key.

    @ivar path: The file. It is read by L{fromFile} and re-read before an
        entry is added.
    @ivar acceptNew: Record unknown servers instead of refusing them.
    @ivar _entries: Canonical C{host:port} mapped to (fingerprint, line number).
    """

    def __init__(
        self, path: str, entries: Mapping[str, tuple[str, int]], acceptNew: bool = False
    ) -> None:
        self.path = path
        self.acceptNew = acceptNew
        self._entries = dict(entries)

    @classmethod
    def parse(cls, text: str, path: str, acceptNew: bool = False) -> KnownHosts:
        """
        @param path: Used in error messages and by L{check} to add entries.
        @raise TrustFileError: Naming the path and line of a malformed line.
        """
        return cls(path, cls._parseEntries(text, path), acceptNew)

    @classmethod
    def fromFile(cls, path: str, acceptNew: bool = False) -> KnownHosts:
        """
        Read C{path}. A missing file means that no server is known yet.
        """
        return cls.parse(readTrustFile(path), path, acceptNew)

    @staticmethod
    def _parseEntries(text: str, path: str) -> dict[str, tuple[str, int]]:
        entries: dict[str, tuple[str, int]] = {}
        for number, line in entryLines(text):
            fields = line.split()
            try:
                checkUTF8(line)
                if len(fields) != 2:
                    raise ValueError(
                        f"expected 'HOST:PORT SHA256:...', found {len(fields)} fields"
                    )
                hostPort = formatHostPort(*parseHostPort(fields[0]))
                pinned = parseFingerprint(fields[1])
            except ValueError as e:
                raise lineError(path, number, str(e)) from None
            previous = entries.setdefault(hostPort, (pinned, number))
            if not fingerprintsEqual(previous[0], pinned):
                reason = f"{hostPort} already has a different key on line {previous[1]}"
                raise lineError(path, number, reason)
        return entries

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, hostPort: str) -> str | None:
        """
        @return: The recorded fingerprint for C{hostPort}, or L{None}.
        @raise ValueError: If C{hostPort} is malformed.
        """
        entry = self._entries.get(formatHostPort(*parseHostPort(hostPort)))
        return None if entry is None else entry[0]

    def check(self, hostPort: str, fingerprint: str) -> TrustDecision:
        """
        See L{ServerTrust.check}. A changed key is refused even with
        C{acceptNew}, and the file is left alone.

        @raise OSError: If C{acceptNew} and the file cannot be written.
        @raise TrustFileError: If the file, re-read before writing, is invalid.
        """
        hostPort = formatHostPort(*parseHostPort(hostPort))
        presented = parseFingerprint(fingerprint)
        entry = self._entries.get(hostPort)
        if entry is None and self.acceptNew:
            entry = self._record(hostPort, presented)
            if entry is None:
                return TrustDecision.ADDED
        if entry is None:
            raise UnknownServerKey(hostPort, presented)
        expected, line = entry
        if fingerprintsEqual(expected, presented):
            return TrustDecision.KNOWN
        raise ServerKeyChanged(
            hostPort, f"expected {expected}", f"received {presented}",
            f"recorded in {self.path}, line {line}",
        )

    def _record(self, hostPort: str, presented: str) -> tuple[str, int] | None:
        """
        Add an entry to the file, keeping every line that it holds now. The
        file is re-read first: another process may have written to it since
        it was loaded, and if that added this host, its entry wins.

        @return: The existing entry if one appeared, else L{None} once written.
        """
        text = readTrustFile(self.path)
        self._entries = self._parseEntries(text, self.path)
        if hostPort in self._entries:
            return self._entries[hostPort]
        if text and not text.endswith("\n"):
            text += "\n"
        number = text.count("\n") + 1
        target = os.path.realpath(self.path)  # keep a symlinked file a symlink
        directory = os.path.dirname(target)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        try:
            mode = stat.S_IMODE(os.stat(target).st_mode)
        except FileNotFoundError:
            mode = 0o600
        replaceFile(target, f"{text}{hostPort} {presented}\n".encode("utf-8"), mode)
        self._entries[hostPort] = (presented, number)
        return None


class PinnedKey:
    """
    A server key given as C{--server-fingerprint}. It overrides
    C{known_hosts}: any other key is refused, and nothing is recorded.

    @ivar fingerprint: The pinned fingerprint, canonical.
    """

    def __init__(self, fingerprint: str) -> None:
        """
        @raise ValueError: If C{fingerprint} is malformed.
        """
        self.fingerprint = parseFingerprint(fingerprint)

    @classmethod
    def fromOption(cls, text: str) -> PinnedKey:
        """
        @raise ConfigurationError: If C{text} is not a fingerprint.
        """
        try:
            return cls(text.strip())
        except ValueError as e:
            raise ConfigurationError(f"--server-fingerprint: {e}") from None

    def check(self, hostPort: str, fingerprint: str) -> TrustDecision:
        """
        See L{ServerTrust.check}.
        """
        presented = parseFingerprint(fingerprint)
        if fingerprintsEqual(self.fingerprint, presented):
            return TrustDecision.KNOWN
        raise ServerKeyChanged(
            hostPort, f"expected {self.fingerprint}", f"received {presented}",
            "pinned with --server-fingerprint",
        )


def loadServerTrust(
    keyDir: str, serverFingerprint: str | None = None, acceptNew: bool = False
) -> ServerTrust:
    """
    Choose the client's trust source from its options: the pin if one is
    given, else C{keyDir/known_hosts}.
    """
    if serverFingerprint is not None:
        return PinnedKey.fromOption(serverFingerprint)
    return KnownHosts.fromFile(os.path.join(keyDir, KNOWN_HOSTS_NAME), acceptNew)


class ClientTrust(Protocol):
    """
    What the server's handshake needs: L{AuthorizedKeys} or L{AllowAny}.
    """

    def isAuthorized(self, fingerprint: str) -> bool:
        """
        @return: Whether a client with this identity fingerprint may connect.
        """

    def nameOf(self, fingerprint: str) -> str | None:
        """
        @return: The name given to this client, for logs, or L{None}.
        """

    def describe(self) -> str:
        """
        @return: One line for the daemon to log at start-up and on reload.
        """


class AuthorizedKeys:
    """
    The server's C{authorized_keys}, with lines of the form
    C{SHA256:... [name]}. The optional name is the rest of the line.

    @ivar path: The file. Re-reading it is C{fromFile(path)}.
    @ivar _entries: (canonical fingerprint, name or L{None}), in file order.
    """

    def __init__(self, path: str, entries: Sequence[tuple[str, str | None]] = ()) -> None:
        self.path = path
        self._entries = list(entries)

    @classmethod
    def parse(cls, text: str, path: str) -> AuthorizedKeys:
        """
        Read every line or none: at start-up a bad line stops the daemon,
        so the operator fixes it before any client is admitted.

        @raise TrustFileError: Naming the path and line of the first
            malformed line.
        """
        keys, problems = cls.parseValid(text, path)
        if problems:
            raise problems[0]
        return keys

    @classmethod
    def parseValid(cls, text: str, path: str) -> tuple[AuthorizedKeys, list[TrustFileError]]:
        """
        Read the valid lines and skip the others, as a reload must: keeping
        the old list because of one typo would keep every key that the
        edit removed.

        @return: The keys of the valid lines, and one error per malformed
            line, naming the path and line and saying why without quoting
            it.
        """
        entries: list[tuple[str, str | None]] = []
        problems: list[TrustFileError] = []
        for number, line in entryLines(text):
            try:
                entries.append(cls._parseLine(line))
            except ValueError as e:
                problems.append(lineError(path, number, str(e)))
        return cls(path, entries), problems

    @staticmethod
    def _parseLine(line: str) -> tuple[str, str | None]:
        """
        @return: The canonical fingerprint and the name, if any.
        @raise ValueError: With a short reason.
        """
        checkUTF8(line)
        fields = line.split(None, 1)
        try:
            authorized = parseFingerprint(fields[0])
        except ValueError as e:
            raise ValueError(f"expected 'SHA256:... [name]': {e}") from None
        name = fields[1].strip() if len(fields) > 1 else None
        if name is not None and not name.isprintable():
            raise ValueError("the name has control characters")
        return authorized, name

    @classmethod
    def fromFile(cls, path: str, uid: int | None = None) -> AuthorizedKeys:
        """
        Read C{path} with L{parse}. A missing file authorizes nobody;
        L{describe} says so.

        @param uid: The user besides root who may own it (L{None}: this one).
        @raise InsecurePath: If another user could change or replace it.
        @raise TrustFileError: If it cannot be read or a line is malformed.
        """
        return cls.parse(readTrustFile(path, uid), path)

    @classmethod
    def fromFileValid(
        cls, path: str, uid: int | None = None
    ) -> tuple[AuthorizedKeys, list[TrustFileError]]:
        """
        Read C{path} with L{parseValid}.

        @param uid: The user besides root who may own it (L{None}: this one).
        @raise InsecurePath: If another user could change or replace it.
        @raise TrustFileError: If it cannot be read at all.
        """
        return cls.parseValid(readTrustFile(path, uid), path)

    def __len__(self) -> int:
        return len(self._entries)

    def _find(self, fingerprint: str) -> tuple[bool, str | None]:
        """
        Compare C{fingerprint} with every entry. There is no early exit, so
        the timing does not reveal which entry matched.
        """
        try:
            presented = parseFingerprint(fingerprint)
        except ValueError:
            return False, None
        found, foundName = False, None
        for authorized, name in self._entries:
            if fingerprintsEqual(authorized, presented) and not found:
                found, foundName = True, name
        return found, foundName

    def isAuthorized(self, fingerprint: str) -> bool:
        """
        See L{ClientTrust.isAuthorized}.
        """
        return self._find(fingerprint)[0]

    def nameOf(self, fingerprint: str) -> str | None:
        """
        See L{ClientTrust.nameOf}. The result is L{None} for an unnamed entry
        too: use L{isAuthorized} to decide.
        """
        return self._find(fingerprint)[1]

    def describe(self) -> str:
        """
        See L{ClientTrust.describe}.
        """
        if self._entries:
            return f"{len(self._entries)} authorized client key(s) from {self.path}"
        return (
            f"no client keys in {self.path}: every client will be refused "
            "(add their fingerprints there, or pass --allow-any-client)"
        )


class _AllowAnyClient:
    """
    The C{--allow-any-client} policy: every client identity is accepted. The
    handshake still verifies the signature, so the fingerprint is genuine.
    """

    def isAuthorized(self, fingerprint: str) -> bool:
        return True

    def nameOf(self, fingerprint: str) -> str | None:
        return None

    def describe(self) -> str:
        return "any client may connect (--allow-any-client)"

    def __repr__(self) -> str:
        return "AllowAny"


AllowAny = _AllowAnyClient()
