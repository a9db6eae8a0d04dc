# -*- test-case-name: tests.memory.test_tap -*-
"""
The spc daemon: the server service with the inbox as its receiver, the
identity and trust files of a key directory, C{authorized_keys} re-read on
SIGHUP, and one clear line instead of a traceback when a port cannot be
bound.  L{spc.tap.makeService} builds it from the command line and adds the
status outlets (L{spc.status.services}) beside its ports.

A start that fails leaves nothing behind.  twistd builds the service first
(L{spc.tap.makeService}: every file and the inbox are checked there, and
the inbox is made last), then writes its pid file, then starts the service
(listening on every port and the control socket, L{privilegedStartService}).
What fails in that last step undoes the inbox and raises L{StartFailed},
which twistd's own clean-up sees, so no pid file stays either.
"""

from __future__ import annotations

import os
import signal
from typing import Any, Mapping, Protocol

from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError

from spc.errors import ConfigurationError, SPCError
from spc.files.store import FileStore
from spc.keys.identity import loadIdentity
from spc.keys.trust import AllowAny, AuthorizedKeys
from spc.logs import events
from spc.logs.jsonformat import installJSONObserver
from spc.server.inbox import InboxReceiver
from spc.server.inboxdir import makeInbox
from spc.server.invites import InviteDesk, authorizingIn
from spc.server.service import ServerService
from spc.transport import tls

try:
    import pwd
except ImportError:  # Windows has no twistd --uid
    pwd = None  # type: ignore[assignment]

__all__ = ["DaemonConfig", "DaemonService", "StartFailed"]

MAX_LOGGED_BAD_LINES = 10
"""Bad lines of C{authorized_keys} logged one by one at a reload; then a count."""


class DaemonConfig(Protocol):
    """
    What the daemon reads of its parsed command line: L{spc.tap.Options}
    after its C{postOptions}.  Its items are C{key-dir}, C{endpoints},
    C{tls} (the C{ssl:} descriptions' parsed TLS settings), C{suites},
    C{params}, C{inbox}, C{inbox-umask}, C{partial-quota},
    C{shutdown-grace}, C{log-format}, C{allow-any-client},
    C{authorized-keys}, C{interface} and C{ports}.
    """

    def __getitem__(self, name: str) -> Any:
        ...

    def twistdOptions(self) -> Mapping[str, Any]:
        """
        The options of the twistd that runs the daemon ({} outside twistd).
        """


class StartFailed(SystemExit, Exception):
    """
    The daemon could not start; its argument is the one line that says
    why.

    twistd writes its pid file before it starts the services and removes
    it only when starting raises an L{Exception}; a bare L{SystemExit}
    passes that clean-up by and leaves a stale pid file.  This is both: an
    L{Exception} to twistd, which removes the pid file (and, when it
    daemonized, hands the line to the waiting parent), and a L{SystemExit}
    to Python, which prints the line and exits with status 1, no
    traceback.
    """


class DaemonService(ServerService):
    """
    The daemon: the server service with the inbox as its receiver,
    C{authorized_keys} re-read on SIGHUP without dropping sessions that
    stay authorized, and invites (C{spc invite}) that add a paired client.

    At start-up the key and trust files must be entirely right: a bad line
    in C{authorized_keys}, or a file another user could write, stops the
    daemon with one line naming the file and the fix. At a reload the daemon
    keeps serving and fails closed instead (L{reload}).

    @ivar madeFolders: the folders the daemon made for its inbox, removed
        again if it fails to start (L{spc.server.inboxdir.MadeFolders}).
    """

    log = events.NamedLogger(events.DAEMON)

    def __init__(self, reactor, config: DaemonConfig) -> None:
        """
        @raise SPCError: when a key, trust or TLS file, or the inbox, cannot
            be used; nothing is left made then.
        """
        self._config = config
        self._reactor = reactor
        # Under twistd --uid USER, files of USER are as safe as root's.
        self._owner = config.twistdOptions().get("uid")
        hostIdentity = loadIdentity(config["key-dir"], self._owner)
        endpoints = [
            self._endpoint(reactor, text, hostIdentity.publicDER) for text in config["endpoints"]
        ]
        authorizer = self._loadAuthorizer()[0]
        fileMode, folderMode = 0o666 & ~config["inbox-umask"], 0o777 & ~config["inbox-umask"]
        self.madeFolders = makeInbox(config["inbox"], folderMode, self._runAs())
        try:
            super().__init__(
                reactor,
                endpoints,
                hostIdentity,
                authorizer,
                InboxReceiver(config["inbox"], fileMode=fileMode),
                suites=config["suites"],
                params=config["params"],
                files=FileStore(
                    config["inbox"],
                    quota=config["partial-quota"],
                    receipts=True,
                    fileMode=fileMode,
                    folderMode=folderMode,
                ),
                shutdownGrace=config["shutdown-grace"],
            )
        except OSError as error:
            self.madeFolders.undo()
            raise ConfigurationError(
                f"--inbox {config['inbox']}: {error.strerror or error}"
            ) from None
        self.hostIdentity = hostIdentity
        self._previousHandler = None
        self.pairing = self.directory.pairing = InviteDesk(
            reactor, authorizingIn(config["authorized-keys"], self._owner, self.reload)
        )
        self.pairing.address = (config["interface"], (config["ports"] or [0])[0])

    def _runAs(self) -> tuple[int, int] | None:
        """
        The user and group the daemon will run as, when they are not the
        ones building it: C{twistd --uid USER} started as root makes the
        inbox before it gives up root, and USER must own it.
        """
        options = self._config.twistdOptions()
        uid = options.get("uid")
        if uid is None or pwd is None or os.geteuid() != 0:
            return None
        gid = options.get("gid")
        if gid is None:
            try:
                gid = pwd.getpwuid(uid).pw_gid
            except KeyError:
                gid = -1
        return uid, gid

    def _endpoint(self, reactor, description: str, hostKeyDER: bytes):
        """
        The server endpoint of one channel; spc builds C{ssl:} itself, to
        require TLS 1.3.

        @raise ConfigurationError: if the TLS key is the host key, which
            must have one purpose only.
        """
        server = self._config["tls"].get(description)
        if server is None:
            return serverFromString(reactor, description)
        if server.publicKeyDER == hostKeyDER:
            raise ConfigurationError(
                f"--listen {description}: the TLS key is the spc host key; "
                "give TLS a key of its own (spc tls-cert makes one)"
            )
        return tls.serverEndpoint(reactor, server)

    def setServiceParent(self, parent) -> None:
        """
        Joining twistd's application: with C{--log-format json}, give it
        the JSON log observer (see L{spc.logs.jsonformat}).
        """
        super().setServiceParent(parent)
        if self._config["log-format"] == "json" and hasattr(parent, "setComponent"):
            installJSONObserver(
                parent, self._config.twistdOptions(), self._reactor, self._nameOf
            )

    def _nameOf(self, fingerprint: str) -> str | None:
        """
        The name of a client in C{authorized_keys} as it reads now.
        """
        return self.directory.authorizer.nameOf(fingerprint)

    def _loadAuthorizer(self, skipBadLines: bool = False):
        """
        @return: The authorizer, and the errors of the lines skipped.
        """
        if self._config["allow-any-client"]:
            return AllowAny, []
        if skipBadLines:
            return AuthorizedKeys.fromFileValid(self._config["authorized-keys"], self._owner)
        return AuthorizedKeys.fromFile(self._config["authorized-keys"], self._owner), []

    def privilegedStartService(self) -> None:
        """
        Listen on every port and the control socket.

        @raise StartFailed: when one cannot listen; the inbox made for this
            start is removed first.
        """
        try:
            super().privilegedStartService()
        except (CannotListenError, OSError) as error:
            self.madeFolders.undo()
            raise StartFailed(f"spc: {_listenFailure(error)}") from None

    def startService(self) -> None:
        if hasattr(signal, "SIGHUP"):
            self._previousHandler = signal.signal(signal.SIGHUP, self._hangup)
        super().startService()
        self.madeFolders.keep()
        authorizer = self.directory.authorizer
        count = len(self._config["endpoints"])
        self.log.info(
            "spc daemon {fingerprint} serving {channels}; clients: {clients}",
            fingerprint=self.hostIdentity.fingerprint,
            count=count,
            channels=f"{count} channel" if count == 1 else f"{count} channels",
            clients=authorizer.describe(),
        )
        if authorizer is not AllowAny and not len(authorizer):
            self.log.warn(
                "No client is authorized: every client will be refused. Add "
                "fingerprints to {path} (then send SIGHUP) or start with "
                "--allow-any-client.",
                path=self._config["authorized-keys"],
            )

    def stopService(self):
        if self._previousHandler is not None:
            signal.signal(signal.SIGHUP, self._previousHandler)
            self._previousHandler = None
        return super().stopService()

    def _hangup(self, signum, frame) -> None:
        self._reactor.callFromThread(self.reload)

    def reload(self) -> None:
        """
        Re-read C{authorized_keys}, failing closed. Its valid lines become
        the list and each bad line is logged and skipped, so that a typo
        beside a removed key cannot keep that key admitted. A file that
        cannot be used at all (another user could write it, or it is
        unreadable or too large) admits nobody until it is fixed. Either
        way, the sessions of keys no longer admitted end (A15).
        """
        path = self._config["authorized-keys"]
        try:
            authorizer, problems = self._loadAuthorizer(skipBadLines=True)
        except SPCError as error:
            self.directory.setAuthorizer(AuthorizedKeys(path))
            self.log.error(
                "Refusing every client until authorized_keys is fixed (then send "
                "SIGHUP again): {error}", error=str(error),
            )
            return
        for problem in problems[:MAX_LOGGED_BAD_LINES]:
            self.log.error("Skipped a bad line: {problem}", problem=problem.args[0])
        if len(problems) > MAX_LOGGED_BAD_LINES:
            more = len(problems) - MAX_LOGGED_BAD_LINES
            self.log.error("Skipped {count} more bad lines of {path}", count=more, path=path)
        self.directory.setAuthorizer(authorizer)
        self.log.info("Reloaded authorized keys: {clients}", clients=authorizer.describe())


def _listenFailure(error: CannotListenError | OSError) -> str:
    """
    The line a user reads when a port or the control socket cannot be
    bound.  An L{OSError} comes from the control socket's lock file, made
    before the socket (its folder missing, or not writable).
    """
    if isinstance(error, OSError):
        where = os.fsdecode(error.filename2 or error.filename or "")
        return f"cannot listen on the control socket: {where}: {error.strerror or error}"
    reason = getattr(error.socketError, "strerror", None) or error.socketError
    if isinstance(error.port, int):
        return f"cannot listen on {error.interface or '*'}:{error.port}: {reason}"
    path = os.fsdecode(error.port)
    if reason == "Cannot acquire lock":
        reason = f"{path}.lock is held: is another daemon using this socket?"
    return f"cannot listen on the control socket {path}: {reason}"
