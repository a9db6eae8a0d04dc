# -*- test-case-name: tests.memory.test_status,tests.integration.test_status -*-
"""
The daemon's local control socket: AMP commands that read a
L{spc.status.snapshot.StatusSource}, and the client that C{spc status} uses.

Every command only reads, but for two, which answer only the daemon's own
user and root (the socket's mode, 0600, and on Linux the caller's user,
L{spc.status.unfinished.callerUID}): L{CreateInvite}, behind C{spc
invite}, opens a pairing invite (amendment A20), which admits one client
that knows its code; L{spc.status.unfinished.DiscardUnfinished}, behind
C{spc discard}, removes an unfinished file, and is kept apart in its own
module.  An AMP
value holds at most 65,535 bytes, so sessions travel in pages:
L{GetSessions} returns as many whole sessions as fit in L{PAGE_BYTES}, in
order of session id, and the client asks again from the last id it got
until the daemon says there are no more; unfinished files travel alike
(L{spc.status.unfinished.GetUnfinished}).  One session always fits,
because L{spc.status.snapshot} bounds what a session record holds, and the
client stops after L{MAX_PAGES}.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from twisted.internet import protocol
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import connectProtocol, quoteStringArgument
from twisted.protocols import amp

from spc.errors import InviteRefused, StatusUnavailable
from spc.status.snapshot import DaemonStatus, SessionStatus, Snapshot, StatusSource
from spc.status.unfinished import (
    GetUnfinished,
    UnfinishedCommands,
    fetchUnfinished,
    isDaemonUser,
    unfinishedStatuses,
)
from spc.text import withoutControls

__all__ = [
    "ControlFactory",
    "CreateInvite",
    "GetDaemon",
    "GetSessions",
    "controlEndpoint",
    "fetchStatus",
    "requestInvite",
]

PAGE_BYTES = 60_000
MAX_PAGES = 1024


class GetDaemon(amp.Command):
    """
    The daemon as a whole.
    """

    arguments: list = []
    response = [
        (b"fingerprint", amp.Unicode()),
        (b"uptime", amp.Float()),
        (b"channels", amp.Integer()),
        (b"sessions", amp.Integer()),
        (b"pendingHandshakes", amp.Integer()),
    ]


class GetSessions(amp.Command):
    """
    One page of sessions: those whose id sorts after C{after}, as a JSON
    list of L{SessionStatus} records, and whether more follow.
    """

    arguments = [(b"after", amp.Unicode())]
    response = [(b"page", amp.String()), (b"more", amp.Boolean())]


class CreateInvite(amp.Command):
    """
    One of the two commands that change the daemon: open a pairing invite for a
    client called C{name}, valid for C{lifetime} seconds, whose code has
    C{words} secret words.  The answer is the code, the seconds it stays
    valid, and where channel 0 listens (C{port} 0 when it is no TCP port).
    """

    arguments = [
        (b"name", amp.Unicode()),
        (b"lifetime", amp.Float()),
        (b"words", amp.Integer()),
    ]
    response = [
        (b"code", amp.Unicode()),
        (b"lifetime", amp.Float()),
        (b"interface", amp.Unicode()),
        (b"port", amp.Integer()),
    ]
    errors = {InviteRefused: b"INVITE_REFUSED"}


def encodePage(sessions, limit: int = PAGE_BYTES) -> tuple[bytes, bool]:
    """
    As many whole sessions as fit in C{limit} bytes of JSON (at least one).

    @return: the JSON list and whether sessions were left out.
    """
    encoded: list[bytes] = []
    size = 2
    for status in sessions:
        item = json.dumps(asdict(status), separators=(",", ":")).encode()
        if encoded and size + len(item) + 1 > limit:
            return b"[" + b",".join(encoded) + b"]", True
        encoded.append(item)
        size += len(item) + 1
    return b"[" + b",".join(encoded) + b"]", False


class ControlProtocol(amp.BinaryBoxProtocol, amp.BoxDispatcher, UnfinishedCommands):
    """
    The daemon's end of one control connection: AMP's parser, dispatcher
    and command locator, without C{amp.AMP}'s log line for every
    connection (a C{watch spc status} would fill the daemon's log).
    """

    def __init__(self, source: StatusSource, invites=None) -> None:
        amp.BoxDispatcher.__init__(self, self)
        amp.BinaryBoxProtocol.__init__(self, self)
        self._source = source
        self._invites = invites

    @GetDaemon.responder
    def getDaemon(self) -> dict:
        return asdict(self._source.daemon())

    @GetSessions.responder
    def getSessions(self, after: str) -> dict:
        page, more = encodePage(self._source.sessions(after))
        return {"page": page, "more": more}

    @GetUnfinished.responder
    def getUnfinished(self, after: str) -> dict:
        page, more = encodePage(unfinishedStatuses(self._source.directory, after))
        return {"page": page, "more": more}

    @CreateInvite.responder
    def createInvite(self, name: str, lifetime: float, words: int) -> dict:
        if not isDaemonUser(self.transport):
            raise InviteRefused("only the daemon's own user may open invites")
        if self._invites is None:
            raise InviteRefused("this daemon takes no invites")
        made = self._invites.create(name, lifetime, words)
        interface, port = self._invites.address
        return {
            "code": str(made.code),
            "lifetime": lifetime,
            "interface": interface,
            "port": port,
        }


class ControlFactory(protocol.ServerFactory):
    """
    What the daemon listens with on its control socket.
    """

    noisy = False

    def __init__(self, source: StatusSource, invites=None) -> None:
        """
        @param invites: the L{spc.server.invites.InviteDesk} that
            L{CreateInvite} opens invites at; L{None} refuses the command.
        """
        self.source = source
        self.invites = invites

    def buildProtocol(self, addr) -> ControlProtocol:
        return ControlProtocol(self.source, self.invites)


def controlEndpoint(path: str) -> str:
    """
    The server endpoint description of a control socket at C{path}: only
    its owner may connect (mode 0600), and a lock file beside it lets a
    restarted daemon replace the socket a killed one left behind.
    """
    return f"unix:{quoteStringArgument(path)}:mode=600:lockfile=1"


@inlineCallbacks
def fetchStatus(endpoint):
    """
    Ask the daemon behind C{endpoint} (a client endpoint to its control
    socket) for a L{Snapshot}.

    @raise StatusUnavailable: when an answer is not what this version
        expects.
    """
    client = yield connectProtocol(endpoint, amp.AMP())
    try:
        daemon = yield client.callRemote(GetDaemon)
        sessions: list[SessionStatus] = []
        after = ""
        for _ in range(MAX_PAGES):
            answer = yield client.callRemote(GetSessions, after=after)
            try:
                page = [SessionStatus.fromDict(item) for item in json.loads(answer["page"])]
            except (ValueError, KeyError, TypeError) as error:
                raise StatusUnavailable(str(error)) from None
            sessions.extend(page)
            if not answer["more"] or not page:
                break
            after = page[-1].session
        unfinished = yield fetchUnfinished(client)
        return Snapshot(DaemonStatus(**daemon), sessions, unfinished)
    finally:
        client.transport.loseConnection()


@inlineCallbacks
def requestInvite(endpoint, name: str, lifetime: float, words: int):
    """
    Ask the daemon behind C{endpoint} to open an invite.

    @return: a Deferred firing with the L{CreateInvite} answer.
    @raise InviteRefused: with the daemon's reason.
    """
    client = yield connectProtocol(endpoint, amp.AMP())
    try:
        answer = yield client.callRemote(CreateInvite, name=name, lifetime=lifetime, words=words)
    except InviteRefused as error:
        # The daemon's sentence already starts with this error's own.
        detail = str(error.args[0]) if error.args else ""
        detail = detail.removeprefix(str(InviteRefused())).strip()
        raise InviteRefused(withoutControls(detail)) from None
    finally:
        client.transport.loseConnection()
    return answer
