# -*- test-case-name: tests.unit.test_identity -*-
"""
Identities: long-term RSA keys, their files and their fingerprints.

spc uses the OpenSSH model that its users already know (DESIGN.md section 1).
Each side has a long-term RSA key in a key directory, and a peer is named by
the fingerprint of its public key. This module owns that key material: the
policy a public key must meet, the fingerprint format, and the C{id_rsa} and
C{id_rsa.pub} files. Which fingerprints are trusted is a separate question,
answered by L{spc.keys.trust}, which builds on the names defined here.

Key files are written through L{spc.keys.keyfiles}, so a private key is never
readable by others and never partial under its final name.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import shlex
from typing import Mapping

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from spc.errors import (
    BadPublicKey,
    ConfigurationError,
    InsecureKeyFile,
    InsecurePath,
    KeyFileError,
    KeyFileExists,
)
from spc.keys.keyfiles import (
    checkPrivatePath,
    install,
    installFiles,
    readRegularFile,
    stage,
    unlinkQuietly,
)

DEFAULT_BITS = 2048
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 4096
PUBLIC_EXPONENT = 65537

PRIVATE_KEY_NAME = "id_rsa"
PUBLIC_KEY_NAME = "id_rsa.pub"
TRANSFER_SECRET_NAME = "transfer_secret"
TRANSFER_SECRET_SIZE = 32
KEY_DIR_VARIABLE = "SPC_HOME"

MAX_KEY_FILE_SIZE = 64 * 1024
"""Largest key file read. A 4096-bit PKCS#8 PEM takes about 3.3 KiB."""
MAX_SPKI_SIZE = 1024
"""Largest SubjectPublicKeyInfo parsed. A 4096-bit RSA key's takes 550 bytes."""

FINGERPRINT_PREFIX = "SHA256:"
_FINGERPRINT_LENGTH = 43  # unpadded base64 of 32 bytes
_BASE64 = re.compile(r"[A-Za-z0-9+/]*")


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


def publicKeyDER(key: PublicKeyTypes) -> bytes:
    """
    @return: The DER SubjectPublicKeyInfo of C{key}, the bytes that are sent
        on the wire and fingerprinted: of spc's RSA keys, and of TLS keys,
        whose certificates are pinned by it.
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


def _missingKeyDetail(keyDir: str) -> str:
    """
    @return: Why C{keyDir} has no key file, and the command that makes one.
    """
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
    try:
        installFiles(files, replace=force)
    except FileExistsError as error:
        raise KeyFileExists(error.args[0]) from None


def _readKeyFile(path: str, missing: str) -> tuple[os.stat_result, bytes]:
    """
    Read a key file, turning every way that can fail into one
    L{KeyFileError} that names the file.

    @param missing: The detail to give if the file does not exist.
    @return: The file's status and content.
    @raise KeyFileError: If it is missing, unreadable, not a regular file or
        larger than C{MAX_KEY_FILE_SIZE}.
    """
    try:
        return readRegularFile(path, MAX_KEY_FILE_SIZE)
    except FileNotFoundError:
        raise KeyFileError(path, missing) from None
    except ValueError as e:
        raise KeyFileError(path, str(e)) from None
    except OSError as e:
        raise KeyFileError(path, e.strerror or str(e)) from None


def _checkKeyPath(path: str, uid: int | None) -> None:
    """
    Refuse a key file that another user could replace (see
    L{checkPrivatePath}): their key would become this identity.

    @param uid: The user besides root who may own it (L{None}: this one).
    @raise InsecurePath: Naming what to fix.
    @raise KeyFileError: If a directory on the way cannot be examined.
    """
    try:
        checkPrivatePath(path, uid)
    except OSError as e:
        raise KeyFileError(path, e.strerror or str(e)) from None


def _openToOthers(path: str) -> bool:
    """
    @return: Whether the group or others have any permission on C{path}.
    """
    try:
        return bool(os.stat(path).st_mode & 0o077)
    except OSError:
        return False


def loadIdentity(keyDir: str, uid: int | None = None) -> Identity:
    """
    Read C{keyDir/id_rsa}. As with OpenSSH, a key that other users can read
    is refused: it must be treated as leaked; and so is a key that they
    could replace.

    @param uid: The user besides root who may own the key and the
        directories above it: by default the effective user; the daemon
        names the user it will run as (C{twistd --uid}).
    @raise KeyFileError: If the file is missing (with a hint to run
        C{spc keygen}), unreadable, unparseable, encrypted, not RSA or
        outside the key policy.
    @raise InsecureKeyFile: If the group or others have any permission on it.
    @raise InsecurePath: If another user could change it or a directory
        above it.
    """
    path = os.path.join(keyDir, PRIVATE_KEY_NAME)
    try:
        _checkKeyPath(path, uid)
    except InsecurePath:
        if _openToOthers(path):
            raise InsecureKeyFile(path) from None  # its chmod 600 fixes both
        raise
    status, data = _readKeyFile(path, _missingKeyDetail(keyDir))
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
    _, data = _readKeyFile(path, "no such file")
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            der = publicKeyDER(serialization.load_pem_public_key(data))
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


def loadTransferSecret(keyDir: str) -> bytes:
    """
    The secret that makes file transfer ids stable across runs of
    C{spc send} (so an interrupted file resumes) without revealing which
    file is sent: C{KEYDIR/transfer_secret}, 32 random bytes made on first
    use with mode 0600. Another user able to replace it could make it
    known to them, so it is refused as a key file is (L{checkPrivatePath}).

    @raise InsecurePath: If another user could change it or a directory
        above it.
    """
    path = os.path.join(keyDir, TRANSFER_SECRET_NAME)
    _checkKeyPath(path, None)
    try:
        _, data = readRegularFile(path, TRANSFER_SECRET_SIZE + 1)
    except FileNotFoundError:
        os.makedirs(keyDir, mode=0o700, exist_ok=True)
        temporary = stage(path, secrets.token_bytes(TRANSFER_SECRET_SIZE), 0o600)
        try:
            install(temporary, path, replace=False)
        except FileExistsError:
            pass  # another process made it first: theirs is the secret
        finally:
            # Installed by a hard link, the staged name is still there.
            unlinkQuietly(temporary)
        _, data = readRegularFile(path, TRANSFER_SECRET_SIZE + 1)
    if len(data) != TRANSFER_SECRET_SIZE:
        raise KeyFileError(f"{path} is not {TRANSFER_SECRET_SIZE} bytes long")
    return data


def loadOrMakeIdentity(keyDir: str) -> tuple[Identity, bool]:
    """
    The identity in C{keyDir}, made there first if it has none, as
    C{spc keygen} would: the commands that pair with a code (C{spc
    receive}, C{spc pair}, C{spc send --code}) need no key set up
    beforehand, and a key kept in the key directory stays the one peers
    recorded.

    @return: the identity, and whether it was made now.
    @raise KeyFileError: as L{loadIdentity}, for a key that is there but
        cannot be used (only C{id_rsa.pub} present among them).
    """
    if not os.path.lexists(os.path.join(keyDir, PRIVATE_KEY_NAME)):
        identity = generateIdentity()
        try:
            saveIdentity(identity, keyDir)
        except KeyFileExists:
            pass
        else:
            return identity, True
    return loadIdentity(keyDir), False
