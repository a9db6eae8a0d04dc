# -*- test-case-name: tests.test_tls -*-
"""
The optional TLS underlay (protocol section 2.7): each connection of a
channel is first wrapped in TLS 1.3, and SPC/1 runs unchanged inside it.

SPC/1 relies on TLS for nothing.  TLS hides what SPC/1 shows in clear (the
session id, the channel, both public keys) and is a second layer of
defence; so its key is never the host key, and it never replaces the
host-key pin.  A client either checks the server's name against trust
roots with service_identity, as Twisted's L{optionsForClientTLS} does, or,
for the self-signed certificates that C{spc tls-cert} makes, pins the SPKI
fingerprint of the server's certificate.

A TLS failure reaches the channel as a L{TLSFailed} naming the problem,
so C{spc send} prints one line and exits 3, and the daemon logs one line.
"""

from __future__ import annotations

import os
from typing import NamedTuple, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto
from service_identity import VerificationError
from twisted.internet.endpoints import HostnameEndpoint, SSL4ServerEndpoint, wrapClientTLS
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IStreamClientEndpoint,
    IStreamServerEndpoint,
)
from twisted.internet.ssl import (
    Certificate,
    CertificateOptions,
    TLSVersion,
    optionsForClientTLS,
    platformTrust,
    trustRootFromCertificates,
)
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure
from zope.interface import implementer

from spc.errors import ConfigurationError, TLSFailed
from spc.identity import fingerprintsEqual, parseFingerprint
from spc.tlscert import certificateFingerprint, isAddress, readCertificates, readPEM

__all__ = [
    "MINIMUM_VERSION",
    "PinnedCertificate",
    "ServerTLS",
    "TLSTarget",
    "clientEndpoint",
    "parseClientDescription",
    "parseServerDescription",
    "serverEndpoint",
    "tlsClientEndpoint",
]

log = Logger()

MINIMUM_VERSION = TLSVersion.TLSv1_3
"""
The oldest TLS either end accepts (protocol section 2.7).
"""

_SERVER_KEYWORDS = ("privateKey", "certKey", "interface", "backlog")


def _formatHostPort(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# Descriptions.


def _splitDescription(description: str) -> tuple[str, list[str], dict[str, str]]:
    """
    Split an endpoint description as Twisted writes them: colons separate
    arguments, a backslash escapes the next character, C{key=value} is a
    keyword; an argument in brackets (an IPv6 address) is taken whole.
    """
    kind, _, rest = description.partition(":")
    args: list[str] = []
    kwargs: dict[str, str] = {}
    field, key, escaped, bracketed = "", None, False, False
    for char in rest + ":":
        if escaped:
            field, escaped = field + char, False
        elif bracketed:
            bracketed = char != "]"
            field += char if bracketed else ""
        elif char == "\\":
            escaped = True
        elif char == "[" and not field and key is None:
            bracketed = True
        elif char == "=" and key is None:
            key, field = field, ""
        elif char == ":":
            if key is None:
                args.append(field)
            elif key in kwargs:
                raise ValueError(f"{key}= is given twice")
            else:
                kwargs[key] = field
            field, key = "", None
        else:
            field += char
    if escaped or bracketed or field:
        raise ValueError("it ends in the middle of an argument")
    return kind, args, kwargs


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit() and 0 <= int(text) <= 65535):
        raise ValueError(f"{text!r} is not a port number")
    return int(text)


class TLSTarget(NamedTuple):
    """
    A C{tls:HOST:PORT[:trustRoots=PATH]} description.

    @ivar trustRoots: a PEM file (or a directory of them) of the
        certificates trusted to vouch for the server, or L{None} for the
        platform's.
    """

    host: str
    port: int
    trustRoots: str | None


def parseClientDescription(description: str) -> TLSTarget:
    """
    @raise ValueError: if C{description} is not C{tls:HOST:PORT}, with an
        optional C{trustRoots=PATH}.
    """
    kind, args, kwargs = _splitDescription(description)
    unknown = set(kwargs) - {"trustRoots"}
    if kind != "tls" or len(args) != 2 or not args[0] or unknown:
        raise ValueError("spc's TLS endpoints are tls:HOST:PORT[:trustRoots=PATH]")
    return TLSTarget(args[0], _port(args[1]), kwargs.get("trustRoots"))


def _loadTrustRoots(path: str):
    if os.path.isdir(path):
        certificates = []
        for name in sorted(os.listdir(path)):
            try:
                certificates += readCertificates(os.path.join(path, name))
            except ConfigurationError:
                continue
        if not certificates:
            raise ConfigurationError(f"{path} holds no PEM certificate")
    else:
        certificates = readCertificates(path)
    return trustRootFromCertificates(
        [Certificate(crypto.X509.from_cryptography(c)) for c in certificates]
    )


class ServerTLS(NamedTuple):
    """
    An C{ssl:PORT:privateKey=KEY[:certKey=CERT][:interface=ADDR][:backlog=N]}
    description, its files read and checked.

    @ivar key: the TLS private key.
    @ivar chain: the server's certificate, then any intermediates.
    """

    port: int
    interface: str
    backlog: int
    key: object
    chain: list[x509.Certificate]

    @property
    def publicKeyDER(self) -> bytes:
        return self.chain[0].public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def parseServerDescription(description: str) -> ServerTLS:
    """
    Parse an C{ssl:} description and read its key and certificate, so a
    mistake stops the daemon at start-up with a clear line.

    @raise ValueError: if the description is not of that form.
    @raise ConfigurationError: if a file cannot be read, or the
        certificate is not the key's.
    """
    kind, args, kwargs = _splitDescription(description)
    unknown = sorted(set(kwargs) - set(_SERVER_KEYWORDS))
    if kind != "ssl" or len(args) != 1 or unknown or "privateKey" not in kwargs:
        raise ValueError(
            "spc's TLS listeners are ssl:PORT:privateKey=KEY[:certKey=CERT]"
            "[:interface=ADDRESS][:backlog=N]"
        )
    keyPath = kwargs["privateKey"]
    certificatePath = kwargs.get("certKey", keyPath)
    backlog = kwargs.get("backlog", "50")
    if not (backlog.isascii() and backlog.isdigit()):
        raise ValueError(f"backlog={backlog} is not a number")
    try:
        key = serialization.load_pem_private_key(readPEM(keyPath, private=True), password=None)
    except (ValueError, TypeError):
        raise ConfigurationError(f"{keyPath} holds no unencrypted PEM private key") from None
    chain = readCertificates(certificatePath)
    server = ServerTLS(_port(args[0]), kwargs.get("interface", ""), int(backlog), key, chain)
    ours = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if ours != server.publicKeyDER:
        raise ConfigurationError(
            f"the certificate in {certificatePath} is not for the key in {keyPath}"
        )
    return server


# Endpoints.


def serverEndpoint(reactor, server: ServerTLS) -> IStreamServerEndpoint:
    """
    A TLS 1.3 listener for C{server} that logs a failed TLS connection in
    one line.
    """
    options = CertificateOptions(
        privateKey=crypto.PKey.from_cryptography_key(server.key),
        certificate=crypto.X509.from_cryptography(server.chain[0]),
        extraCertChain=[crypto.X509.from_cryptography(c) for c in server.chain[1:]],
        raiseMinimumTo=MINIMUM_VERSION,
    )
    endpoint = SSL4ServerEndpoint(
        reactor, server.port, options, backlog=server.backlog, interface=server.interface
    )
    return _ExplainedServerEndpoint(endpoint)


@implementer(IOpenSSLClientConnectionCreator)
class PinnedCertificate:
    """
    Accepts a TLS 1.3 server whose certificate has a pinned SPKI
    fingerprint, whoever signed it and whatever names it holds: the pin is
    the whole check, which is what a self-signed certificate needs.

    @ivar where: C{HOST:PORT}, for the error.
    """

    def __init__(self, hostname: str, pins: Sequence[str], where: str) -> None:
        if not pins:
            raise ValueError("no fingerprint to pin")
        self._options = CertificateOptions(raiseMinimumTo=MINIMUM_VERSION)
        self._serverName = None if isAddress(hostname) else hostname.encode("idna")
        self._pins = [parseFingerprint(pin) for pin in pins]
        self.where = where

    def clientConnectionForTLS(self, tlsProtocol) -> SSL.Connection:
        connection = SSL.Connection(self._options.getContext(), None)
        if self._serverName is not None:
            connection.set_tlsext_host_name(self._serverName)
        connection.set_verify(
            SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, self._verifier(tlsProtocol)
        )
        return connection

    def _verifier(self, tlsProtocol):
        def verify(connection, certificate, errno: int, depth: int, ok: int) -> bool:
            if depth != 0:
                return True  # only the server's own certificate is pinned
            try:
                seen = certificateFingerprint(certificate.to_cryptography())
                matched = False
                for pin in self._pins:
                    matched |= fingerprintsEqual(seen, pin)
                if not matched:
                    tlsProtocol.failVerification(
                        Failure(
                            TLSFailed(
                                f"the certificate of {self.where} has SPKI fingerprint "
                                f"{seen}, expected {' or '.join(self._pins)}"
                            )
                        )
                    )
                return matched
            except Exception:
                log.failure("Checking the TLS certificate of {where}", where=self.where)
                return False

        return verify


def tlsClientEndpoint(
    reactor,
    host: str,
    port: int,
    trustRoots: str | None = None,
    pins: Sequence[str] = (),
    hostname: str | None = None,
) -> IStreamClientEndpoint:
    """
    A TLS 1.3 client endpoint to C{host}, C{port}.

    @param trustRoots: a PEM file or directory of trusted certificates;
        the platform's by default.
    @param pins: SPKI fingerprints of which the server's certificate must
        have one; given, they replace the check of the name and trust roots.
    @param hostname: the name to check and send, if not C{host}.
    @raise ValueError: if both C{trustRoots} and C{pins} are given.
    @raise ConfigurationError: if C{trustRoots} cannot be read.
    """
    hostname = hostname or host
    where = _formatHostPort(host, port)
    if pins:
        if trustRoots is not None:
            raise ValueError("give trustRoots= or a TLS fingerprint to pin, not both")
        creator = PinnedCertificate(hostname, pins, where)
    else:
        creator = optionsForClientTLS(
            hostname,
            trustRoot=_loadTrustRoots(trustRoots) if trustRoots else platformTrust(),
            extraCertificateOptions={"raiseMinimumTo": MINIMUM_VERSION},
        )
    endpoint = wrapClientTLS(creator, HostnameEndpoint(reactor, host, port))
    return _ExplainedClientEndpoint(endpoint, where, hostname)


def clientEndpoint(reactor, description: str, pins: Sequence[str] = ()) -> IStreamClientEndpoint:
    """
    The client endpoint for a C{tls:} description of C{--connect}.
    """
    target = parseClientDescription(description)
    return tlsClientEndpoint(reactor, target.host, target.port, target.trustRoots, pins)


# Turning TLS failures into one clear line.


def _sslReason(error: SSL.Error) -> str:
    reasons = [
        entry[-1] for entry in (error.args[0] if error.args else [])
        if isinstance(entry, tuple) and entry
    ]
    return "; ".join(reasons) or str(error)


class _ExplainingProtocol(ProtocolWrapper):
    """
    Stands between TLS and a channel: a TLS failure in the reason a
    connection was lost becomes a L{TLSFailed} saying what went wrong,
    which a client channel reports and a server logs.
    """

    def connectionLost(self, reason: Failure) -> None:
        where = self.factory.where or _peerText(self)
        if reason.check(VerificationError):
            reason = Failure(
                TLSFailed(
                    f"the certificate of {where} is not valid for "
                    f'"{self.factory.hostname}": no name in it matches'
                )
            )
        elif reason.check(SSL.Error):
            reason = Failure(
                TLSFailed(f"the connection with {where} failed: {_sslReason(reason.value)}")
            )
        if self.factory.logFailures and reason.check(TLSFailed):
            log.info("{error}", error=str(reason.value))
        super().connectionLost(reason)


class _ExplainingFactory(WrappingFactory):
    """
    Wraps a channel factory's protocols in L{_ExplainingProtocol}s.

    @ivar where: C{HOST:PORT} of the server, or L{None} on the server side,
        where the peer's address is named instead.
    @ivar hostname: the name the client checks the certificate for.
    @ivar logFailures: log each failure in one line (the daemon does).
    """

    protocol = _ExplainingProtocol
    noisy = False

    def __init__(self, wrapped, where: str | None, hostname: str | None, logFailures: bool):
        super().__init__(wrapped)
        self.where = where
        self.hostname = hostname
        self.logFailures = logFailures


@implementer(IStreamClientEndpoint)
class _ExplainedClientEndpoint:
    """
    A TLS client endpoint whose failures are L{TLSFailed}; C{connect} gives
    the caller its own protocol, as if nothing stood in between.
    """

    def __init__(self, wrapped: IStreamClientEndpoint, where: str, hostname: str) -> None:
        self._wrapped = wrapped
        self._where = where
        self._hostname = hostname

    def connect(self, factory):
        explaining = _ExplainingFactory(factory, self._where, self._hostname, False)
        return self._wrapped.connect(explaining).addCallback(lambda p: p.wrappedProtocol)


@implementer(IStreamServerEndpoint)
class _ExplainedServerEndpoint:
    """
    A TLS listener that logs each failed TLS connection in one line.
    """

    def __init__(self, wrapped: IStreamServerEndpoint) -> None:
        self._wrapped = wrapped

    def listen(self, factory):
        return self._wrapped.listen(_ExplainingFactory(factory, None, None, True))


def _peerText(transport) -> str:
    try:
        peer = transport.getPeer()
        return _formatHostPort(peer.host, peer.port)
    except Exception:
        return "an unknown peer"
