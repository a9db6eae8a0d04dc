# -*- test-case-name: tests.unit.test_tls -*-
"""
The certificates of the TLS underlay: C{spc tls-cert} makes a key and a
self-signed certificate for a host, and both ends read PEM files and name a
certificate by the SPKI fingerprint a client pins.

The fingerprint has the form of spc's key fingerprints (L{fingerprint}), so
one habit serves both pins; it hashes the certificate's key, not the
certificate, so a renewed certificate for the same key keeps its pin.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from spc.errors import ConfigurationError, InsecureKeyFile, TLSFilesExist
from spc.keys.identity import fingerprint, publicKeyDER
from spc.keys.keyfiles import installFiles, readRegularFile

__all__ = [
    "DEFAULT_DAYS",
    "WrittenCertificate",
    "certificateFingerprint",
    "checkHostName",
    "isAddress",
    "makeCertificate",
    "readCertificates",
    "readPEM",
    "writeCertificate",
]

DEFAULT_DAYS = 365
"""
How long a certificate from C{spc tls-cert} is valid unless told otherwise.
"""

MAX_PEM_SIZE = 1 << 20
"""
The largest certificate or key file read; a name pointing at a huge file
or a device must not hang start-up.
"""

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def isAddress(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def checkHostName(host: str) -> str:
    """
    A name a certificate can be made for: an IP address or a DNS name.

    @return: C{host}, with the brackets of an IPv6 address removed.
    @raise ConfigurationError: for anything else, which could also not be
        used safely as a file name.
    """
    host = host.strip("[]")
    if isAddress(host):
        return host
    labels = host.rstrip(".").split(".")
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ConfigurationError(f"{host!r} is not a host name or an IP address")
    return host.rstrip(".")


def certificateFingerprint(certificate: x509.Certificate) -> str:
    """
    The SPKI fingerprint of a certificate, in the same form as spc's key
    fingerprints, so one tool and one habit serve both pins.
    """
    return fingerprint(publicKeyDER(certificate.public_key()))


def makeCertificate(host: str, days: int = DEFAULT_DAYS) -> tuple[bytes, bytes]:
    """
    A fresh EC P-256 key and a self-signed certificate for C{host}, valid
    for TLS servers only.

    @return: the key (PKCS#8 PEM) and the certificate (PEM).
    """
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, host)] if len(host) <= 64 else []
    )
    alternative = (
        x509.IPAddress(ipaddress.ip_address(host)) if isAddress(host) else x509.DNSName(host)
    )
    now = datetime.datetime.now(datetime.timezone.utc)
    usage = dict.fromkeys(
        [
            "content_commitment", "key_encipherment", "data_encipherment",
            "key_agreement", "key_cert_sign", "crl_sign", "encipher_only",
            "decipher_only",
        ],
        False,
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([alternative]), critical=not len(subject))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, **usage), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    keyPEM = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return keyPEM, certificate.public_bytes(serialization.Encoding.PEM)


class WrittenCertificate(NamedTuple):
    """
    @ivar host: the name the certificate is for.
    @ivar certificatePath: where the certificate went.
    @ivar keyPath: where its key went (mode 0600).
    @ivar fingerprint: the certificate's SPKI fingerprint, for clients to pin.
    """

    host: str
    certificatePath: str
    keyPath: str
    fingerprint: str


def writeCertificate(
    host: str, directory: str, days: int = DEFAULT_DAYS, force: bool = False
) -> WrittenCertificate:
    """
    Make a key and self-signed certificate for C{host} and write them to
    C{directory} as C{HOST.key} and C{HOST.crt}, the key readable only by
    its owner from the moment it exists.

    @raise TLSFilesExist: if either file exists and C{force} is false.
    """
    host = checkHostName(host)
    certificatePath = os.path.join(directory, f"{host}.crt")
    keyPath = os.path.join(directory, f"{host}.key")
    if not force:
        for path in (certificatePath, keyPath):
            if os.path.lexists(path):
                raise TLSFilesExist(path)
    keyPEM, certificatePEM = makeCertificate(host, days)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    try:
        installFiles(
            [(keyPath, keyPEM, 0o600), (certificatePath, certificatePEM, 0o644)], replace=force
        )
    except FileExistsError as error:
        raise TLSFilesExist(error.args[0]) from None
    certificate = x509.load_pem_x509_certificate(certificatePEM)
    return WrittenCertificate(
        host, certificatePath, keyPath, certificateFingerprint(certificate)
    )


def readPEM(path: str, private: bool = False) -> bytes:
    """
    Read a PEM file for TLS.

    @param private: it holds a private key, which, as with spc's identity,
        is refused when other users may read it: it must be treated as
        leaked.
    @raise ConfigurationError: if it cannot be read.
    @raise InsecureKeyFile: if it is private and the group or others have
        any permission on it.
    """
    try:
        status, data = readRegularFile(path, MAX_PEM_SIZE)
    except ValueError as error:
        raise ConfigurationError(f"{path}: {error}") from None
    except OSError as error:
        raise ConfigurationError(f"cannot read {path}: {error.strerror or error}") from None
    if private and os.name == "posix" and status.st_mode & 0o077:
        raise InsecureKeyFile(path)
    return data


def readCertificates(path: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(readPEM(path))
    except ValueError:
        raise ConfigurationError(f"{path} holds no PEM certificate") from None
