# -*- test-case-name: tests.test_sender -*-
"""
What C{spc send} does once its options are parsed: open a session with the
daemon, send every item, and succeed only when the daemon confirmed each
one as stored.
"""

from __future__ import annotations

import os
from functools import partial
from typing import Callable, NamedTuple, Sequence

from twisted.application.internet import backoffPolicy
from twisted.internet.defer import DeferredList, DeferredSemaphore, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.internet.endpoints import HostnameEndpoint, clientFromString
from twisted.internet.error import ConnectError
from twisted.logger import Logger

from spc import records, tls
from spc.client import connect
from spc.errors import (
    ConfigurationError,
    ConnectFailed,
    ServerBusy,
    ServerShuttingDown,
    SessionReset,
)
from spc.identity import Identity
from spc.suites import Suite
from spc.trust import ServerTrust

__all__ = ["SendRequest", "SendSummary", "clientEndpoints", "collectFiles", "send"]

log = Logger()

# A busy server (amendment A8) is asked again after a growing, jittered wait.
BUSY_ATTEMPTS = 8
FILES_AT_ONCE = 4
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
    @ivar suites: the per-channel suite map, or C{None} for the default.
    @ivar transferSecret: keeps transfer ids stable across runs, so an
        interrupted file resumes.
    @ivar progress: called with C{(done, total)} bytes of the files.
    @ivar tlsFingerprints: SPKI fingerprints pinned for C{tls:} channels
        in place of checking the certificate's name.
    """

    identity: Identity
    trust: ServerTrust
    hostPort: str
    endpoints: Sequence[str]
    messages: Sequence[bytes]
    files: Sequence[tuple[str, str]] = ()
    suites: Sequence[Suite] | None = None
    transferSecret: bytes | None = None
    progress: Callable[[int, int], None] | None = None
    tlsFingerprints: Sequence[str] = ()


class SendSummary(NamedTuple):
    """
    @ivar messages: how many messages the daemon confirmed.
    @ivar files: how many files it stored.
    @ivar bytes: how many message and file bytes that was.
    @ivar seconds: how long sending took, handshakes excluded.
    @ivar channels: how many channels the session ran on.
    @ivar server: the server key fingerprint.
    """

    messages: int
    files: int
    bytes: int
    seconds: float
    channels: int
    server: str


def collectFiles(paths: Sequence[str]) -> list[tuple[str, str]]:
    """
    The files to send for the paths a user gave: a file as itself, a
    directory as every regular file under it, named by its path relative
    to the directory's parent.  Symbolic links are followed only when they
    stay inside the directory; links to directories are not descended.

    @raise ConfigurationError: for a path that is neither.
    """
    files = []
    for path in paths:
        if os.path.isfile(path):
            files.append((path, os.path.basename(os.path.abspath(path))))
        elif os.path.isdir(path):
            root = os.path.realpath(path)
            base = os.path.dirname(os.path.abspath(path).rstrip(os.sep))
            for folder, _, names in sorted(os.walk(path)):
                for name in sorted(names):
                    full = os.path.join(folder, name)
                    real = os.path.realpath(full)
                    if os.path.commonpath([root, real]) != root or not os.path.isfile(real):
                        log.warn("Skipping {path}: it leads outside {root}", path=full, root=path)
                        continue
                    relative = os.path.relpath(os.path.abspath(full), base)
                    files.append((full, relative.replace(os.sep, "/")))
        else:
            raise ConfigurationError(f"{path} is not a file or a directory")
    return files


def clientEndpoints(
    reactor, descriptions: Sequence[str], tlsFingerprints: Sequence[str] = ()
) -> list:
    """
    Client endpoints from C{--server}/C{--ports} (C{tcp:HOST:PORT}, resolved
    with L{HostnameEndpoint} so IPv6 and IPv4 both work) or C{--connect}
    strings.  C{tls:} is spc's own (L{spc.tls}): TLS 1.3 at least, and
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


@inlineCallbacks
def _connect(reactor, request: SendRequest):
    """
    Open the session, asking a busy server again after a growing wait.
    """
    delay = backoffPolicy(initialDelay=BUSY_FIRST_DELAY, maxDelay=BUSY_MAX_DELAY)
    for attempt in range(BUSY_ATTEMPTS):
        try:
            session = yield connect(
                reactor,
                clientEndpoints(reactor, request.endpoints, request.tlsFingerprints),
                request.identity,
                request.trust,
                request.hostPort,
                suites=request.suites,
                transferSecret=request.transferSecret,
            )
        except ConnectError as error:
            raise ConnectFailed(f"{request.hostPort}: {error}") from None
        except ServerBusy:
            if attempt == BUSY_ATTEMPTS - 1:
                raise
            wait = delay(attempt)
            log.info("The server is busy; retrying in {delay:.2f} s", delay=wait)
            yield deferLater(reactor, wait, lambda: None)
        else:
            return session


@inlineCallbacks
def send(reactor, request: SendRequest):
    """
    Send every message and file of C{request} and wait for the daemon's
    confirmations.  If the session is reset (its keys fell out of step,
    or rotation failed repeatedly), a new session sends what was not
    confirmed: files resume, messages are sent again.

    @return: a Deferred firing with a L{SendSummary}.
    @raise ConnectFailed: if the first channel cannot be reached.
    """
    total = sum(os.path.getsize(path) for path, _ in request.files)
    done: dict[str, int] = {}

    def progress(path: str, acknowledged: int) -> None:
        done[path] = acknowledged
        if request.progress is not None:
            request.progress(sum(done.values()), total)

    messages, files = list(request.messages), list(request.files)
    started = reactor.seconds()
    for attempt in range(MAX_RESETS + 1):
        session = yield _connect(reactor, request)
        limit = DeferredSemaphore(FILES_AT_ONCE)
        try:
            channels = len(session.channels)
            items = [(text, session.sendMessage(text, records.KIND_TEXT)) for text in messages]
            items += [
                (entry, limit.run(session.sendFile, entry[0], entry[1], partial(progress, entry[0])))
                for entry in files
            ]
            outcomes = yield DeferredList([d for _, d in items], consumeErrors=True)
        finally:
            yield session.close()
        failed = [(item, result) for (item, _), (ok, result) in zip(items, outcomes) if not ok]
        if not failed:
            break
        if any(result.check(ServerShuttingDown) for _, result in failed):
            count = len(request.messages) + len(request.files)
            raise ServerShuttingDown(f"{count - len(failed)} of {count} item(s) were confirmed")
        fatal = [f for _, f in failed if attempt == MAX_RESETS or not f.check(SessionReset)]
        if fatal:
            fatal[0].raiseException()
        log.warn("The session was reset; sending {count} item(s) again", count=len(failed))
        messages = [item for item, _ in failed if isinstance(item, bytes)]
        files = [item for item, _ in failed if not isinstance(item, bytes)]
    return SendSummary(
        len(request.messages),
        len(request.files),
        sum(map(len, request.messages)) + total,
        reactor.seconds() - started,
        channels,
        session.peer,
    )
