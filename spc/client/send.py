# -*- test-case-name: tests.unit.test_send,tests.integration.test_send,tests.integration.test_sendreports -*-
"""
What C{spc send} does once its options are parsed: open a session with the
daemon, send every item, and report, item by item, what the daemon
confirmed as stored, what it held already, and what was not delivered and
why.

A busy server (A8) is asked again after a growing, jittered wait
(C{backoffPolicy}), by a loop of its own rather than Twisted's
C{ClientService}: that service keeps one connection alive for good,
reconnecting whenever it drops, where what is retried here is the opening
of a whole session over several connections, only when the server
answered busy, and at most C{BUSY_ATTEMPTS} times.
"""

from __future__ import annotations

import os
from typing import Callable, NamedTuple, Sequence

from twisted.application.internet import backoffPolicy
from twisted.internet.defer import DeferredList, fail, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.internet.endpoints import HostnameEndpoint, clientFromString
from twisted.internet.error import ConnectError
from twisted.internet.interfaces import IStreamClientEndpoint

from spc.client.connect import connect
from spc.client.keypool import ExchangeKeyPool
from spc.client.observer import ConnectionWatch, ProgressBooks, SendObserver
from spc.client.sendlist import shown
from spc.crypto.suites import Suite
from spc.errors import (
    ConfigurationError,
    ConnectFailed,
    FileFailed,
    MessageTooLarge,
    ServerBusy,
    SessionReset,
    SPCError,
)
from spc.keys.identity import Identity
from spc.keys.trust import ServerTrust
from spc.logs import events
from spc.protocol import records
from spc.session.session import DEFAULT_LINGER
from spc.transport import tls

__all__ = ["SendRequest", "SendSummary", "clientEndpoints", "sameKindEndpoints", "send"]

log = events.NamedLogger(events.CLIENT)

BUSY_ATTEMPTS = 8
MAX_RESETS = 3
BUSY_FIRST_DELAY = 0.25
BUSY_MAX_DELAY = 4.0

CLIENT_KINDS = ("tcp", "tls", "unix")
"""
The endpoint kinds C{--connect} accepts, as written before any unescaping.
"""


class SendRequest(NamedTuple):
    """
    Everything C{spc send} was asked to do.

    @ivar identity: the sender's identity.
    @ivar trust: how the server key is checked.
    @ivar hostPort: the name the server key is pinned under.
    @ivar endpoints: one client endpoint description per channel.
    @ivar messages: the texts to send.
    @ivar files: C{(path, name)} of each file to send.
    @ivar suites: the suites accepted from the server, or C{None} for all.
    @ivar transferSecret: keeps transfer ids stable across runs, so an
        interrupted file resumes.
    @ivar progress: told how the files and the connection fare.
    @ivar tlsFingerprints: SPKI fingerprints pinned for C{tls:} channels
        in place of checking the certificate's name.
    @ivar folders: the names of folders to make (those with nothing in
        them to send).
    @ivar exchangeKeys: the L{ExchangeKeyPool} each session's exchange key
        comes from; the process's by default.
    @ivar oneAddress: whether C{endpoints} is the server's one address
        (C{--server}), its other channels opened at the ports it
        announces, on the same host and of the same kind; otherwise it
        names every channel, and the server must have as many.
    @ivar notify: called with a line to show the user, such as a busy
        server's retry.
    """

    identity: Identity
    trust: ServerTrust
    hostPort: str
    endpoints: Sequence[str]
    messages: Sequence[bytes]
    files: Sequence[tuple[str, str]] = ()
    suites: Sequence[Suite] | None = None
    transferSecret: bytes | None = None
    progress: SendObserver | None = None
    tlsFingerprints: Sequence[str] = ()
    folders: Sequence[str] = ()
    exchangeKeys: ExchangeKeyPool | None = None
    oneAddress: bool = False
    notify: Callable[[str], None] | None = None


class SendSummary(NamedTuple):
    """
    What the daemon confirmed, and what it did not.

    @ivar messages: how many messages the daemon confirmed.
    @ivar files: how many files it holds now: stored in this run, or held
        already (L{already}).
    @ivar bytes: the message and file bytes this run sent for them: a file
        the daemon held already, and the parts of a file it held, count
        nothing, and a file counts what the session that delivered it
        sent.
    @ivar seconds: how long sending took, handshakes included.
    @ivar channels: how many channels the last session ran on.
    @ivar server: the server key fingerprint.
    @ivar folders: how many folders the daemon made (or had).
    @ivar already: C{(name, stored name)} of each file the daemon held
        already from an earlier run, so that nothing of it was sent.
    @ivar failed: C{(item, error)} for each item not delivered, in the
        order given, the item as a user can recognize it.
    @ivar renamed: C{(name, stored name)} of each file the daemon stored
        in this run under another name than the one sent (the name was
        taken, or had to be cleaned).
    """

    messages: int
    files: int
    bytes: int
    seconds: float
    channels: int
    server: str
    folders: int = 0
    already: tuple[tuple[str, str], ...] = ()
    failed: tuple[tuple[str, SPCError], ...] = ()
    renamed: tuple[tuple[str, str], ...] = ()


class _Item(NamedTuple):
    """
    One message, file or folder to send.

    @ivar index: its place in the request, which also keeps equal items
        apart.
    @ivar label: how a user recognizes it.
    @ivar kind: C{"message"}, C{"file"} or C{"folder"}.
    @ivar value: the message's bytes, the file's C{(path, name)}, or the
        folder's name.
    """

    index: int
    label: str
    kind: str
    value: object


def _items(request: SendRequest) -> list[_Item]:
    items = []
    for number, text in enumerate(request.messages, 1):
        excerpt = shown(text.decode("utf-8", "surrogateescape"))
        excerpt = excerpt if len(excerpt) <= 30 else excerpt[:27] + "..."
        items.append((f'message {number} ("{excerpt}")', "message", text))
    items += [(shown(name), "file", (path, name)) for path, name in request.files]
    items += [(shown(name) + "/", "folder", name) for name in request.folders]
    return [_Item(index, *item) for index, item in enumerate(items)]


def _start(session, item: _Item, books: ProgressBooks):
    """
    Give C{item} to the session, which sends as many at once as the
    daemon's limits allow (L{spc.session.messenger}).  A message over the
    daemon's limit, which it announced in the handshake, fails alone,
    before any of it is sent.
    """
    if item.kind == "message":
        most = session.params.maxMessageSize
        if len(item.value) > most:
            return fail(MessageTooLarge(len(item.value), most))
        return session.sendMessage(item.value, records.KIND_TEXT)
    if item.kind == "file":
        path, name = item.value
        sent = session.sendFile(path, name, books.reporter(item.index))
        return sent.addCallback(books.delivered, item.index)
    return session.sendFolder(item.value)


def _error(item: _Item, failure) -> SPCError:
    """
    Why C{item} was not delivered.  A file that could not be opened (it
    vanished, or lost its permissions, after the list was made) fails
    alone; anything else that is not an L{SPCError} is a bug, raised.
    """
    if failure.check(SPCError):
        return failure.value
    if item.kind == "file" and failure.check(OSError):
        return FileFailed(item.value[1], f"could not be read ({failure.value.strerror})")
    failure.raiseException()


def clientEndpoints(
    reactor, descriptions: Sequence[str], tlsFingerprints: Sequence[str] = ()
) -> list:
    """
    Client endpoints from C{--server}/C{--ports} (C{tcp:HOST:PORT}, resolved
    with L{HostnameEndpoint} so IPv6 and IPv4 both work) or C{--connect}
    strings.  C{tls:} is spc's own (L{spc.transport.tls}): TLS 1.3 at least, and
    C{tlsFingerprints} pin the certificate.

    Only the kinds of L{CLIENT_KINDS} are accepted, compared without case
    as Twisted does, and as written: Twisted's parser unescapes
    backslashes, so C{s\\sl:} would reach its C{ssl:} client endpoint,
    which checks no certificate at all.  An allow-list refuses that, and
    every kind from a plugin spc knows nothing about, before Twisted reads
    the description.

    @raise ConfigurationError: for a kind not in L{CLIENT_KINDS}.
    """
    endpoints = []
    for description in descriptions:
        written, _, rest = description.partition(":")
        kind = written.lower()
        host, _, port = rest.rpartition(":")
        if kind == "ssl":
            raise ConfigurationError(
                "ssl: client endpoints do not check the server's certificate; "
                "use tls:HOST:PORT"
            )
        if kind not in CLIENT_KINDS:
            raise ConfigurationError(
                f"spc connects with {', '.join(k + ':' for k in CLIENT_KINDS)} "
                f"endpoints, not {written}:"
            )
        if kind == "tcp" and host and port.isdigit() and "=" not in rest:
            endpoints.append(HostnameEndpoint(reactor, host.strip("[]"), int(port)))
        elif kind == "tls":
            endpoints.append(tls.clientEndpoint(reactor, f"tls:{rest}", tlsFingerprints))
        else:
            endpoints.append(clientFromString(reactor, description))
    return endpoints


def sameKindEndpoints(
    reactor, description: str, tlsFingerprints: Sequence[str] = ()
) -> Callable[[int], IStreamClientEndpoint]:
    """
    How to reach the other channels of a server named by one C{tcp:} or
    C{tls:} description: on the same host, at an announced port, and for
    C{tls:} with the same trust roots or pins.
    """
    kind, _, rest = description.partition(":")
    if kind.lower() == "tls":
        target = tls.parseClientDescription(f"tls:{rest}")
        return lambda port: tls.tlsClientEndpoint(
            reactor, target.host, port, target.trustRoots, tlsFingerprints
        )
    host = rest.rpartition(":")[0].strip("[]")
    return lambda port: HostnameEndpoint(reactor, host, port)


@inlineCallbacks
def _connect(reactor, request: SendRequest):
    """
    Open the session, asking a busy server again after a growing wait, and
    saying so.
    """
    delay = backoffPolicy(initialDelay=BUSY_FIRST_DELAY, maxDelay=BUSY_MAX_DELAY)
    for attempt in range(BUSY_ATTEMPTS):
        endpoints = clientEndpoints(reactor, request.endpoints, request.tlsFingerprints)
        options = {}
        if request.oneAddress:
            [endpoints] = endpoints
            options["endpointFor"] = sameKindEndpoints(
                reactor, request.endpoints[0], request.tlsFingerprints
            )
        try:
            session = yield connect(
                reactor,
                endpoints,
                request.identity,
                request.trust,
                request.hostPort,
                suites=request.suites,
                transferSecret=request.transferSecret,
                exchangeKeys=request.exchangeKeys,
                **options,
            )
        except ConnectError as error:
            raise ConnectFailed(f"{request.hostPort}: {error}") from None
        except ServerBusy:
            if attempt == BUSY_ATTEMPTS - 1:
                raise
            wait = delay(attempt)
            log.info("The server is busy; retrying in {delay:.2f} s", delay=wait)
            if request.notify is not None:
                request.notify(f"server busy, retrying in {wait:.1f} s")
            yield deferLater(reactor, wait, lambda: None)
        else:
            return session


def _size(path: str) -> int:
    """
    A file's size for the progress bar; one that vanished since the list
    was made counts nothing, and its item fails when it is sent.
    """
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


@inlineCallbacks
def send(reactor, request: SendRequest):
    """
    Send every message, file and folder of C{request} and wait for the
    daemon's answers.  If the session is reset (its keys fell out of step,
    or rotation failed repeatedly), a new session sends what was not
    confirmed: files resume, messages are sent again.  Every other failure
    is the failure of its item alone, reported in the summary.

    @return: a Deferred firing with a L{SendSummary}.
    @raise ConnectFailed: if the first channel cannot be reached; any
        failure of the first session's handshake likewise fails the whole
        command, before anything is sent.
    """
    items = pending = _items(request)
    observer = request.progress or SendObserver()
    files = [item for item in items if item.kind == "file"]
    books = ProgressBooks(
        observer, [(item.index, item.value[1], _size(item.value[0])) for item in files]
    )
    results: dict[_Item, object] = {}
    failures: dict[_Item, SPCError] = {}
    channels, server, lost = 0, "", False
    started = reactor.seconds()
    for attempt in range(MAX_RESETS + 1):
        try:
            session = yield _connect(reactor, request)
        except SPCError as error:
            if attempt == 0:
                raise
            failures.update((item, error) for item in pending)
            break
        if lost:
            observer.connectionBack()
        channels, server = len(session.channels), session.peer
        watch = ConnectionWatch(reactor, session, observer, DEFAULT_LINGER)
        watch.start()
        try:
            sends = [_start(session, item, books) for item in pending]
            outcomes = yield DeferredList(sends, consumeErrors=True)
        finally:
            watch.stop()
            lost = watch.lost
            yield session.close()
        retry = []
        for item, (ok, result) in zip(pending, outcomes):
            if ok:
                results[item] = result
            elif result.check(SessionReset) and attempt < MAX_RESETS:
                retry.append(item)
            else:
                failures[item] = _error(item, result)
        if not retry:
            break
        log.warn("The session was reset; sending {count} item(s) again", count=len(retry))
        pending = retry
    return _summary(items, results, failures, reactor.seconds() - started, channels, server)


def _summary(items, results, failures, seconds, channels, server) -> SendSummary:
    def delivered(kind: str) -> list:
        return [(item, results[item]) for item in items if item.kind == kind and item in results]

    messages, folders = delivered("message"), delivered("folder")
    files = [result for _, result in delivered("file")]
    return SendSummary(
        len(messages),
        len(files),
        sum(len(item.value) for item, _ in messages) + sum(result.sent for result in files),
        seconds,
        channels,
        server,
        len(folders),
        tuple((shown(result.name), result.storedAs) for result in files if result.already),
        tuple((item.label, failures[item]) for item in items if item in failures),
        tuple(
            (shown(result.name), result.storedAs)
            for result in files
            if not result.already and result.storedAs != result.name
        ),
    )
