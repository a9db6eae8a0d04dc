# -*- test-case-name: tests.unit.test_tls,tests.integration.test_tls -*-
"""
The optional TLS underlay (docs/protocol.rst, section 2.1): each connection
of a channel is first wrapped in TLS 1.3, and SPC/1 runs unchanged inside
it.

SPC/1 relies on TLS for nothing.  TLS hides what SPC/1 shows in clear (the
session id, the channel, both public keys) and is a second layer of
defence; so its key is never the host key, and it never replaces the
host-key pin.  A client either checks the server's name against trust
roots with service_identity, as Twisted's L{optionsForClientTLS} does, or,
for the self-signed certificates that C{spc tls-cert} makes, pins the SPKI
fingerprint of the server's certificate.

A TLS failure ends the connection with an OpenSSL or service_identity
error; L{explainFailure} turns it into a L{TLSFailed} naming the problem
where the channel learns of it, so C{spc send} prints one line and exits 3,
and the daemon logs one line through its rate-limited log of failures
before authentication.
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
from twisted.internet.protocol import Factory
from twisted.internet.ssl import (
    Certificate,
    CertificateOptions,
    TLSVersion,
    optionsForClientTLS,
    platformTrust,
    trustRootFromCertificates,
)
from twisted.python.failure import Failure
from zope.interface import implementer

from spc.addresses import formatHostPort, parsePort
from spc.errors import ConfigurationError, TLSFailed
from spc.keys.identity import fingerprintsEqual, parseFingerprint, publicKeyDER
from spc.keys.tlscert import certificateFingerprint, isAddress, readCertificates, readPEM
from spc.logs import events

__all__ = [
    "MINIMUM_VERSION",
    "PinnedCertificate",
    "ServerTLS",
    "TLSPeer",
    "TLSTarget",
    "clientEndpoint",
    "explainFailure",
    "parseClientDescription",
    "parseServerDescription",
    "serverEndpoint",
    "serverOptions",
    "tlsClientEndpoint",
]

log = events.NamedLogger(events.CHANNEL)

MINIMUM_VERSION = TLSVersion.TLSv1_3
"""
The oldest TLS either end accepts (docs/protocol.rst, section 2.1).
"""

_SERVER_KEYWORDS = ("privateKey", "certKey", "interface", "backlog")


# Descriptions.


def _splitDescription(description: str) -> tuple[str, list[str], dict[str, str]]:
    """
    Split an endpoint description as Twisted writes them: colons separate
    arguments, a backslash escapes the next character, C{key=value} is a
    keyword; an argument in brackets (an IPv6 address) is taken whole.

    Twisted's own splitter is private (C{twisted.internet.endpoints._parse});
    its public parsers, C{clientFromString} and C{serverFromString}, return
    endpoints, not what was parsed, and theirs for C{tls:} and C{ssl:} can
    neither raise the minimum to TLS 1.3 nor pin a certificate.  This one
    also refuses a keyword given twice, which Twisted's lets the last win.
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


def _listeningPort(text: str) -> int:
    """
    The port of an C{ssl:} listener: 0 asks for any free one, as in
    Twisted's descriptions.
    """
    return 0 if text == "0" else parsePort(text)


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
    return TLSTarget(args[0], parsePort(args[1]), kwargs.get("trustRoots"))


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
        return publicKeyDER(self.chain[0].public_key())


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
    server = ServerTLS(
        _listeningPort(args[0]), kwargs.get("interface", ""), int(backlog), key, chain
    )
    if publicKeyDER(key.public_key()) != server.publicKeyDER:
        raise ConfigurationError(
            f"the certificate in {certificatePath} is not for the key in {keyPath}"
        )
    return server


# Endpoints.


def serverOptions(server: ServerTLS) -> CertificateOptions:
    """
    The TLS settings of a listener for C{server}: its key and chain, and
    nothing older than TLS 1.3.
    """
    return CertificateOptions(
        privateKey=crypto.PKey.from_cryptography_key(server.key),
        certificate=crypto.X509.from_cryptography(server.chain[0]),
        extraCertChain=[crypto.X509.from_cryptography(c) for c in server.chain[1:]],
        raiseMinimumTo=MINIMUM_VERSION,
    )


def serverEndpoint(reactor, server: ServerTLS) -> IStreamServerEndpoint:
    """
    A TLS 1.3 listener for C{server}.  Its channels see a failed TLS
    connection through L{explainFailure} and log it as a refused
    handshake, rate-limited like every failure before authentication.
    """
    return SSL4ServerEndpoint(
        reactor,
        server.port,
        serverOptions(server),
        backlog=server.backlog,
        interface=server.interface,
    )


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


class TLSPeer(NamedTuple):
    """
    How a client named the TLS server of a connection, so that the error of
    a failed handshake uses the user's words rather than the address the
    name resolved to.

    @ivar where: C{HOST:PORT}.
    @ivar hostname: the name the server's certificate is checked for.
    """

    where: str
    hostname: str


def tlsClientEndpoint(
    reactor,
    host: str,
    port: int,
    trustRoots: str | None = None,
    pins: Sequence[str] = (),
) -> IStreamClientEndpoint:
    """
    A TLS 1.3 client endpoint to C{host}, C{port}, checking the server's
    certificate for C{host}.

    @param trustRoots: a PEM file or directory of trusted certificates;
        the platform's by default.
    @param pins: SPKI fingerprints of which the server's certificate must
        have one; given, they replace the check of the name and trust roots.
    @raise ValueError: if both C{trustRoots} and C{pins} are given, or
        C{host} or C{port} cannot name a server.
    @raise ConfigurationError: if C{trustRoots} cannot be read.
    """
    peer = TLSPeer(formatHostPort(host, port), host)
    if pins:
        if trustRoots is not None:
            raise ValueError("give trustRoots= or a TLS fingerprint to pin, not both")
        creator = PinnedCertificate(host, pins, peer.where)
    else:
        creator = optionsForClientTLS(
            host,
            trustRoot=_loadTrustRoots(trustRoots) if trustRoots else platformTrust(),
            extraCertificateOptions={"raiseMinimumTo": MINIMUM_VERSION},
        )
    return _NamingEndpoint(wrapClientTLS(creator, HostnameEndpoint(reactor, host, port)), peer)


def clientEndpoint(reactor, description: str, pins: Sequence[str] = ()) -> IStreamClientEndpoint:
    """
    The client endpoint for a C{tls:} description of C{--connect}.
    """
    target = parseClientDescription(description)
    return tlsClientEndpoint(reactor, target.host, target.port, target.trustRoots, pins)


@implementer(IStreamClientEndpoint)
class _NamingEndpoint:
    """
    A TLS client endpoint that tells each connection it makes how its
    server was named, as the connection's C{tlsPeer}: the one place that
    knows it, when the connection is lost, is the connection itself.
    """

    def __init__(self, wrapped: IStreamClientEndpoint, peer: TLSPeer) -> None:
        self._wrapped = wrapped
        self._peer = peer

    def connect(self, factory: Factory):
        return self._wrapped.connect(_NamingFactory(factory, self._peer))


class _NamingFactory(Factory):
    """
    Sets C{tlsPeer} on each protocol C{wrapped} builds, and hands the
    protocol itself to TLS: nothing stands between TLS and the connection's
    data, unlike with a L{twisted.protocols.policies.ProtocolWrapper}.
    """

    noisy = False

    def __init__(self, wrapped: Factory, peer: TLSPeer) -> None:
        self._wrapped = wrapped
        self._peer = peer

    def doStart(self) -> None:
        self._wrapped.doStart()

    def doStop(self) -> None:
        self._wrapped.doStop()

    def buildProtocol(self, addr):
        built = self._wrapped.buildProtocol(addr)
        if built is not None:
            built.tlsPeer = self._peer
        return built


# Turning TLS failures into one clear line.


def _sslReason(error: SSL.Error) -> str:
    reasons = [
        entry[-1] for entry in (error.args[0] if error.args else [])
        if isinstance(entry, tuple) and entry
    ]
    return "; ".join(reasons) or str(error)


def explainFailure(reason: Failure, peer: TLSPeer) -> Failure:
    """
    The reason a connection was lost, with a failure of its TLS, which
    OpenSSL and service_identity give in their own terms, turned into a
    L{TLSFailed} that says what went wrong with C{peer}; any other reason
    unchanged.

    @param peer: the server as the client named it; on the server, the
        client's address and no host name.
    """
    if reason.check(VerificationError):
        return Failure(
            TLSFailed(
                f'the certificate of {peer.where} is not valid for "{peer.hostname}": '
                "no name in it matches"
            )
        )
    if reason.check(SSL.Error):
        return Failure(
            TLSFailed(f"the connection with {peer.where} failed: {_sslReason(reason.value)}")
        )
    return reason
