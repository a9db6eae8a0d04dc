# -*- test-case-name: tests.test_identity -*-
"""
Identities and trust: key files, fingerprints, C{known_hosts} and
C{authorized_keys}.

spc uses the OpenSSH model that its users already know (DESIGN.md section 1).
Each side has a long-term RSA key in a key directory. A peer is named by the
fingerprint of its public key, and two small text files say which peers are
trusted. Everything that touches those files lives here, below the protocol.
The handshake then asks one question ("is this key trusted for this peer?")
and gets one answer: a L{TrustDecision}, or an exception from L{spc.errors}
whose text is what the user reads.

A crash or a concurrent reader never sees a partial file. New content goes to
a fresh temporary file in the same directory, created with its final
permissions. That file is fsynced and then renamed into place, so a private
key is never readable by others, not even for a moment.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import shlex
import stat
from typing import Iterator, Mapping, Protocol, Sequence

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from spc.errors import (
    BadPublicKey,
    ConfigurationError,
    InsecureKeyFile,
    KeyFileError,
    KeyFileExists,
    ServerKeyChanged,
    TrustFileError,
    UnknownServerKey,
)

DEFAULT_BITS = 2048
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 4096
PUBLIC_EXPONENT = 65537

PRIVATE_KEY_NAME = "id_rsa"
PUBLIC_KEY_NAME = "id_rsa.pub"
KNOWN_HOSTS_NAME = "known_hosts"
AUTHORIZED_KEYS_NAME = "authorized_keys"
KEY_DIR_VARIABLE = "SPC_HOME"

MAX_KEY_FILE_SIZE = 64 * 1024
"""Largest key file read. A 4096-bit PKCS#8 PEM takes about 3.3 KiB."""
MAX_TRUST_FILE_SIZE = 1024 * 1024
"""Largest trust file read. That is about 15,000 entries."""
MAX_SPKI_SIZE = 1024
"""Largest SubjectPublicKeyInfo parsed. A 4096-bit RSA key's takes 550 bytes."""

FINGERPRINT_PREFIX = "SHA256:"
_FINGERPRINT_LENGTH = 43  # unpadded base64 of 32 bytes
_BASE64 = re.compile(r"[A-Za-z0-9+/]*")
_HOSTNAME = re.compile(r"[A-Za-z0-9._-]+")

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO must not hang the open
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def defaultKeyDir(environ: Mapping[str, str] | None = None) -> str:
    """
    Find the key directory to use when no C{--key-dir} is given.

    @param environ: The environment to consult (L{os.environ} if L{None}).
        Tests pass their own.
    @return: C{$SPC_HOME} if it is set and non-empty, else C{~/.config/spc}.
    """
    configured = (os.environ if environ is None else environ).get(KEY_DIR_VARIABLE)
    if configured:
        return os.path.expanduser(configured)
    return os.path.join(os.path.expanduser("~"), ".config", "spc")


def fingerprint(spkiDER: bytes) -> str:
    """
    Name a public key the way OpenSSH prints fingerprints.

    The format is C{SHA256:} followed by the unpadded standard base64 of the
    SHA-256 of the DER SubjectPublicKeyInfo. The hash input is the SPKI, not
    OpenSSH's key blob, so the value differs from C{ssh-keygen -l}'s for the
    same key.

    @param spkiDER: The key as it travels on the wire.
    @return: C{"SHA256:"} followed by 43 characters.
    """
    digest = hashlib.sha256(spkiDER).digest()
    return FINGERPRINT_PREFIX + base64.b64encode(digest).decode("ascii").rstrip("=")


def parseFingerprint(text: str) -> str:
    """
    Check a fingerprint that a user or a trust file wrote, and put it in
    canonical form.

    Two encodings of one digest (their unused low bits differ) would compare
    unequal as text, so callers compare only the canonical forms returned here.

    @param text: Something like C{"SHA256:" + 43 base64 characters}.
    @return: The fingerprint, re-encoded from its digest.
    @raise ValueError: With a short reason. Callers wrap it in the error that
        suits their source (L{TrustFileError} or L{ConfigurationError}).
    """
    if not text.startswith(FINGERPRINT_PREFIX):
        raise ValueError(f"a fingerprint starts with {FINGERPRINT_PREFIX!r}")
    encoded = text[len(FINGERPRINT_PREFIX):]
    if not _BASE64.fullmatch(encoded):
        raise ValueError("a fingerprint has only base64 characters after 'SHA256:'")
    if len(encoded) != _FINGERPRINT_LENGTH:
        raise ValueError(
            f"a fingerprint has {_FINGERPRINT_LENGTH} base64 characters after "
            f"'SHA256:', not {len(encoded)}"
        )
    digest = base64.b64decode(encoded + "=", validate=True)
    return FINGERPRINT_PREFIX + base64.b64encode(digest).decode("ascii").rstrip("=")


def fingerprintsEqual(a: str, b: str) -> bool:
    """
    Compare two canonical fingerprints in constant time, so the timing
    reveals nothing about how much of a trusted fingerprint a guess matched.
    """
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def publicKeyDER(key: rsa.RSAPublicKey) -> bytes:
    """
    @return: The DER SubjectPublicKeyInfo of C{key}, the bytes that are sent
        on the wire and fingerprinted.
    """
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def loadPublicKey(spkiDER: bytes) -> rsa.RSAPublicKey:
    """
    Accept a public key from the wire or a file only if it meets spc's policy.

    The policy is RSA, C{MIN_RSA_BITS} to C{MAX_RSA_BITS} bits, exponent
    65537, an odd modulus, and canonical DER. Canonical DER means that one
    key has exactly one encoding and therefore exactly one fingerprint.

    @param spkiDER: A DER SubjectPublicKeyInfo.
    @return: The key.
    @raise BadPublicKey: With a short reason.
    """
    if len(spkiDER) > MAX_SPKI_SIZE:
        raise BadPublicKey(f"{len(spkiDER)} bytes is too long")
    try:
        key = serialization.load_der_public_key(spkiDER)
    except (ValueError, UnsupportedAlgorithm):
        raise BadPublicKey("not a DER SubjectPublicKeyInfo") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise BadPublicKey("not an RSA key")
    if not MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS:
        raise BadPublicKey(f"{key.key_size}-bit key")
    numbers = key.public_numbers()
    if numbers.e != PUBLIC_EXPONENT:
        raise BadPublicKey(f"exponent {numbers.e}")
    if numbers.n % 2 == 0:
        raise BadPublicKey("even modulus")
    if publicKeyDER(key) != spkiDER:
        raise BadPublicKey("non-canonical DER encoding")
    return key


class Identity:
    """
    A long-term RSA identity: the private key and what peers see of it,
    computed once.

    @ivar privateKey: The RSA private key.
    @ivar publicKey: Its public key.
    @ivar publicDER: The public key's DER SubjectPublicKeyInfo, as sent in
        handshakes.
    @ivar fingerprint: L{fingerprint} of C{publicDER}, as peers list it.
    """

    __slots__ = ("privateKey", "publicKey", "publicDER", "fingerprint")

    def __init__(self, privateKey: rsa.RSAPrivateKey) -> None:
        """
        @raise BadPublicKey: If the key is not RSA or is outside the policy
            of L{loadPublicKey}. Peers would refuse such a key, so it is
            refused here first.
        """
        if not isinstance(privateKey, rsa.RSAPrivateKey):
            raise BadPublicKey("not an RSA key")
        self.publicDER = publicKeyDER(privateKey.public_key())
        self.publicKey = loadPublicKey(self.publicDER)
        self.privateKey = privateKey
        self.fingerprint = fingerprint(self.publicDER)

    def __repr__(self) -> str:
        return f"<Identity {self.fingerprint}>"


def generateIdentity(bits: int = DEFAULT_BITS) -> Identity:
    """
    Make a new RSA identity with exponent 65537.

    @param bits: The modulus size, from C{MIN_RSA_BITS} to C{MAX_RSA_BITS}.
    @raise ConfigurationError: If C{bits} is outside that range.
    """
    if not MIN_RSA_BITS <= bits <= MAX_RSA_BITS:
        raise ConfigurationError(
            f"RSA keys must have {MIN_RSA_BITS} to {MAX_RSA_BITS} bits, not {bits}"
        )
    return Identity(rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=bits))


def _readFile(path: str, limit: int) -> tuple[os.stat_result, bytes]:
    """
    Read a regular file of at most C{limit} bytes, stat-ing the descriptor
    that was read, not the name.

    @raise ValueError: If the file is not a regular file or is too large.
    @raise OSError: If it cannot be opened or read.
    """
    fd = os.open(path, os.O_RDONLY | _O_NONBLOCK | _O_CLOEXEC | _O_BINARY)
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise ValueError("not a regular file")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise ValueError(f"larger than {limit // 1024} KiB")
        return status, b"".join(chunks)
    finally:
        os.close(fd)


def _unlinkQuietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _stage(finalPath: str, data: bytes, mode: int) -> str:
    """
    Write C{data} to a new temporary file beside C{finalPath} and fsync it.

    The file is created with C{O_EXCL} and C{mode} (less the umask), so it
    never has wider permissions than that, and nobody else can have
    prepared it.

    @return: The temporary file's path, for the caller to rename.
    """
    directory, name = os.path.split(finalPath)
    temporary = os.path.join(directory, f".{name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC | _O_BINARY
    fd = os.open(temporary, flags, mode)
    try:
        with os.fdopen(fd, "wb", closefd=True) as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
    except BaseException:
        _unlinkQuietly(temporary)
        raise
    return temporary


def _fsyncDirectory(directory: str) -> None:
    """
    Make renames in C{directory} durable, where the platform allows it.
    """
    if os.name != "posix":
        return
    fd = os.open(directory or ".", os.O_RDONLY | _O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse to fsync a directory
    finally:
        os.close(fd)


def _install(temporary: str, finalPath: str, replace: bool) -> None:
    """
    Move a staged file to its final name. If C{replace} is false, an
    existing file is never clobbered, even one created since it was checked.
    """
    if replace:
        os.replace(temporary, finalPath)
        return
    try:
        os.link(temporary, finalPath)  # atomic "create unless it exists"
    except FileExistsError:
        raise KeyFileExists(finalPath) from None
    except OSError:
        # The file system has no hard links: check, then rename.
        if os.path.lexists(finalPath):
            raise KeyFileExists(finalPath) from None
        os.replace(temporary, finalPath)


def _missingKeyDetail(keyDir: str) -> str:
    what = "no such file" if os.path.isdir(keyDir) else "the key directory does not exist"
    return f"{what}; create an identity with: spc keygen --key-dir {shlex.quote(keyDir)}"


def checkKeyFilesAbsent(keyDir: str) -> None:
    """
    Refuse to go on if C{keyDir} already holds an identity. C{spc keygen}
    calls this before spending time on key generation.

    @raise KeyFileExists: Naming the first file that exists.
    """
    for name in (PRIVATE_KEY_NAME, PUBLIC_KEY_NAME):
        path = os.path.join(keyDir, name)
        if os.path.lexists(path):
            raise KeyFileExists(path)


def saveIdentity(identity: Identity, keyDir: str, force: bool = False) -> None:
    """
    Write C{id_rsa} (unencrypted PKCS#8 PEM, mode 0600 from creation) and
    C{id_rsa.pub} (PEM SubjectPublicKeyInfo, mode 0644) to C{keyDir}.

    C{keyDir} is created with mode 0700 if it is missing. Both files are
    staged completely before either is renamed into place, so a failure
    leaves the old identity or the new one, never half a key.

    @param force: Replace an existing identity. Without it, nothing is
        written if either file exists.
    @raise KeyFileExists: If a file exists and C{force} is false.
    """
    if not force:
        checkKeyFilesAbsent(keyDir)
    os.makedirs(keyDir, mode=0o700, exist_ok=True)
    privatePEM = identity.privateKey.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    publicPEM = identity.publicKey.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    files = [
        (os.path.join(keyDir, PRIVATE_KEY_NAME), privatePEM, 0o600),
        (os.path.join(keyDir, PUBLIC_KEY_NAME), publicPEM, 0o644),
    ]
    staged: list[tuple[str, str]] = []
    installed: list[str] = []
    try:
        for path, data, mode in files:
            staged.append((_stage(path, data, mode), path))
        for temporary, path in staged:
            _install(temporary, path, replace=force)
            installed.append(path)
    except BaseException:
        if not force:
            for path in installed:  # ours alone: they did not exist before
                _unlinkQuietly(path)
        raise
    finally:
        for temporary, _ in staged:
            _unlinkQuietly(temporary)
    _fsyncDirectory(keyDir)


def loadIdentity(keyDir: str) -> Identity:
    """
    Read C{keyDir/id_rsa}. As with OpenSSH, a key that other users can read
    is refused: it must be treated as leaked.

    @raise KeyFileError: If the file is missing (with a hint to run
        C{spc keygen}), unreadable, unparseable, encrypted, not RSA or
        outside the key policy.
    @raise InsecureKeyFile: If the group or others have any permission on it.
    """
    path = os.path.join(keyDir, PRIVATE_KEY_NAME)
    try:
        status, data = _readFile(path, MAX_KEY_FILE_SIZE)
    except FileNotFoundError:
        raise KeyFileError(path, _missingKeyDetail(keyDir)) from None
    except ValueError as e:
        raise KeyFileError(path, str(e)) from None
    except OSError as e:
        raise KeyFileError(path, e.strerror or str(e)) from None
    if os.name == "posix" and status.st_mode & 0o077:
        raise InsecureKeyFile(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise KeyFileError(path, "encrypted keys are not supported") from None
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFileError(path, "not a PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyFileError(path, "not an RSA key")
    try:
        return Identity(key)
    except BadPublicKey as e:
        raise KeyFileError(path, *e.args) from None


def readPublicKeyFile(path: str) -> bytes:
    """
    Read a public key file (PEM C{PUBLIC KEY} or raw DER), as
    C{spc fingerprint PUBKEY_FILE} does.

    @return: The key's canonical DER SubjectPublicKeyInfo.
    @raise KeyFileError: If the file is missing, unreadable or not a public key.
    @raise BadPublicKey: If the key is outside spc's policy.
    """
    try:
        _, data = _readFile(path, MAX_KEY_FILE_SIZE)
    except FileNotFoundError:
        raise KeyFileError(path, "no such file") from None
    except ValueError as e:
        raise KeyFileError(path, str(e)) from None
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            der = serialization.load_pem_public_key(data).public_bytes(
                serialization.Encoding.DER,
                serialization.PublicFormat.SubjectPublicKeyInfo,
            )
        else:
            der = data
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFileError(path, "not a PEM public key (give the .pub file)") from None
    try:
        loadPublicKey(der)
    except BadPublicKey as e:
        raise BadPublicKey(path, *e.args) from None
    return der


def readIdentityPublicKey(keyDir: str) -> bytes:
    """
    Read C{keyDir/id_rsa.pub}. If it is missing, the error says how to make it.

    @return: Its DER SubjectPublicKeyInfo.
    """
    path = os.path.join(keyDir, PUBLIC_KEY_NAME)
    if not os.path.lexists(path):
        raise KeyFileError(path, _missingKeyDetail(keyDir))
    return readPublicKeyFile(path)


def _readTrustFile(path: str) -> str:
    """
    @return: The text of a trust file, or C{""} if it does not exist.
    @raise TrustFileError: If it is too large, not a regular file or not UTF-8.
    """
    try:
        _, data = _readFile(path, MAX_TRUST_FILE_SIZE)
    except FileNotFoundError:
        return ""
    except ValueError as e:
        raise TrustFileError(f"{path}: {e}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise TrustFileError(f"{path}, line {line}: not UTF-8 text") from None


def _entryLines(text: str) -> Iterator[tuple[int, str]]:
    """
    @return: (line number, stripped line) for each line that is neither
        blank nor a C{#} comment.
    """
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.strip()
        if line and not line.startswith("#"):
            yield number, line


def _lineError(path: str, number: int, reason: str) -> TrustFileError:
    return TrustFileError(f"{path}, line {number}: {reason}")


def _canonicalHost(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not _HOSTNAME.fullmatch(host):
        raise ValueError(f"{host!r} is not a host name or IP address")
    return host.lower()


def formatHostPort(host: str, port: int) -> str:
    """
    Name a server the way C{known_hosts} and L{KnownHosts.check} expect:
    C{host:port}, or C{[address]:port} for IPv6. Host names are lower-cased
    and IP addresses put in their standard form, so one server has one name.

    @raise ValueError: If C{host} or C{port} is not valid.
    """
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range")
    host = _canonicalHost(host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parseHostPort(text: str) -> tuple[str, int]:
    """
    Read C{host:port} or C{[host]:port}.

    @return: The canonical host and the port.
    @raise ValueError: With a short reason.
    """
    if text.startswith("["):
        host, bracket, portText = text[1:].partition("]:")
        if not bracket:
            raise ValueError("expected [ADDRESS]:PORT")
    else:
        host, colon, portText = text.rpartition(":")
        if not colon:
            raise ValueError("expected HOST:PORT")
        if ":" in host:
            raise ValueError("an IPv6 address is written [ADDRESS]:PORT")
    if not (portText.isascii() and portText.isdigit() and 0 < int(portText) < 65536):
        raise ValueError(f"port {portText!r} is not a number from 1 to 65535")
    return _canonicalHost(host), int(portText)


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
        return cls.parse(_readTrustFile(path), path, acceptNew)

    @staticmethod
    def _parseEntries(text: str, path: str) -> dict[str, tuple[str, int]]:
        entries: dict[str, tuple[str, int]] = {}
        for number, line in _entryLines(text):
            fields = line.split()
            if len(fields) != 2:
                reason = f"expected 'HOST:PORT SHA256:...', found {len(fields)} fields"
                raise _lineError(path, number, reason)
            try:
                hostPort = formatHostPort(*parseHostPort(fields[0]))
                pinned = parseFingerprint(fields[1])
            except ValueError as e:
                raise _lineError(path, number, str(e)) from None
            previous = entries.setdefault(hostPort, (pinned, number))
            if not fingerprintsEqual(previous[0], pinned):
                reason = f"{hostPort} already has a different key on line {previous[1]}"
                raise _lineError(path, number, reason)
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
        text = _readTrustFile(self.path)
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
        temporary = _stage(target, f"{text}{hostPort} {presented}\n".encode("utf-8"), mode)
        try:
            os.replace(temporary, target)
        finally:
            _unlinkQuietly(temporary)
        _fsyncDirectory(directory)
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
        @raise TrustFileError: Naming the path and line of a malformed line.
        """
        entries: list[tuple[str, str | None]] = []
        for number, line in _entryLines(text):
            fields = line.split(None, 1)
            try:
                authorized = parseFingerprint(fields[0])
            except ValueError as e:
                raise _lineError(path, number, f"expected 'SHA256:... [name]': {e}") from None
            name = fields[1].strip() if len(fields) > 1 else None
            if name is not None and not name.isprintable():
                raise _lineError(path, number, "the name has control characters")
            entries.append((authorized, name))
        return cls(path, entries)

    @classmethod
    def fromFile(cls, path: str) -> AuthorizedKeys:
        """
        Read C{path}. A missing file authorizes nobody; L{describe} says so.
        """
        return cls.parse(_readTrustFile(path), path)

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


def loadClientTrust(keyDir: str, allowAnyClient: bool = False) -> ClientTrust:
    """
    Choose the server's trust source from its options: L{AllowAny}, or
    C{keyDir/authorized_keys}.
    """
    if allowAnyClient:
        return AllowAny
    return AuthorizedKeys.fromFile(os.path.join(keyDir, AUTHORIZED_KEYS_NAME))
