# -*- test-case-name: tests.memory.test_service,tests.integration.test_service -*-
"""
The server end an application embeds: L{ServerService}, a C{MultiService}
with one listening endpoint per channel, each building its connections
with a L{ServerChannelFactory}.  The other end,
L{spc.client.connect.connect}, opens a client session over a list of endpoints.

What the server's handshakes consult, who is authorized, what may be
joined and the limits on unauthenticated peers, is its
L{spc.server.directory.SessionDirectory}.
"""

from __future__ import annotations

from typing import Sequence

from twisted.application.service import MultiService
from twisted.internet import protocol
from twisted.internet.defer import Deferred, gatherResults
from twisted.python.failure import Failure

from spc.crypto.suites import Suite
from spc.files.store import FileStore
from spc.interfaces import IMessageReceiver
from spc.keys.identity import Identity
from spc.logs import events
from spc.protocol import frames, records
from spc.protocol.handshake import ChannelSpec, channelSpecs
from spc.protocol.serverhandshake import ServerHandshake
from spc.server.directory import Limits, SessionDirectory
from spc.server.listening import ListeningService
from spc.server.rounds import ROUND_JITTER, RotationRounds
from spc.session.session import Session
from spc.transport.channel import DEFAULT_HANDSHAKE_TIMEOUT, ChannelProtocol
from spc.transport.closing import BusyProtocol

DEFAULT_SHUTDOWN_GRACE = 2.0

__all__ = ["ROUND_JITTER", "ServerChannelFactory", "ServerService"]


class ServerChannelFactory(protocol.Factory):
    """
    Builds the connections of one port.
    """

    noisy = False

    def __init__(self, directory: SessionDirectory, spec: ChannelSpec) -> None:
        self.directory = directory
        self.spec = spec

    def buildProtocol(self, addr) -> protocol.Protocol:
        directory = self.directory
        channel = ChannelProtocol(
            directory,
            self._makeHandshake,
            directory.clock,
            directory.handshakeTimeout,
            isServer=True,
        )
        if not directory.admitConnection(channel, getattr(addr, "host", str(addr))):
            return BusyProtocol(directory.clock)
        return channel

    def _makeHandshake(self, channel: ChannelProtocol) -> ServerHandshake:
        directory = self.directory
        identity = directory.hostIdentity
        return ServerHandshake(
            self.spec,
            identity.privateKey,
            identity.publicDER,
            directory.params,
            directory,
            channel,
            pairing=directory.pairing if self.spec.channel == 0 else None,
        )


class ServerService(MultiService):
    """
    The spc server as a service an application adds to its own
    C{MultiService}: one L{ListeningService} per channel.

    @ivar directory: the L{SessionDirectory} behind every port.
    @ivar rotationRounds: the server's L{RotationRounds}, running while
        the service does.
    @ivar endpointServices: the channels' listening services, in channel
        order.
    """

    log = events.NamedLogger(events.SESSION)

    def __init__(
        self,
        reactor,
        endpoints: Sequence,
        hostIdentity: Identity,
        authorizer,
        receiver: IMessageReceiver | None,
        suites: Sequence[Suite | None] | None = None,
        params: frames.Params = frames.Params(),
        limits: Limits | None = None,
        handshakeTimeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        files: FileStore | None = None,
        shutdownGrace: float = DEFAULT_SHUTDOWN_GRACE,
    ) -> None:
        super().__init__()
        self.setName("spc")
        self.shutdownGrace = shutdownGrace
        self.directory = SessionDirectory(
            reactor,
            hostIdentity,
            authorizer,
            receiver,
            len(endpoints),
            params=params,
            limits=limits,
            handshakeTimeout=handshakeTimeout,
            files=files,
        )
        self.rotationRounds = RotationRounds(
            reactor,
            self.directory.params.seconds.rotationInterval,
            lambda: list(self.directory.sessions.values()),
            self.directory.roundOutcomes,
        )
        self._reactor = reactor
        self.endpointServices = []
        for spec, endpoint in zip(channelSpecs(len(endpoints), suites), endpoints):
            service = ListeningService(endpoint, ServerChannelFactory(self.directory, spec))
            service.setServiceParent(self)
            self.endpointServices.append(service)

    def whenListening(self) -> Deferred:
        """
        @return: a Deferred firing with the listening ports, in channel
            order, once every endpoint listens (useful with port 0); a port
            that could not listen is L{None}.
        @raise RuntimeError: if the service has not started.
        """
        return gatherResults(
            [service.whenListening() for service in self.endpointServices], consumeErrors=True
        )

    def startService(self) -> None:
        super().startService()
        self.rotationRounds.start()

    def stopService(self) -> Deferred:
        """
        Stop listening; give every session up to C{shutdownGrace} seconds
        to send the answers its peer waits for (a delivered message, a
        verified file), then say goodbye with "shutting down".

        @return: a Deferred firing once every goodbye left.
        """
        self.rotationRounds.stop()
        self.directory.stop()
        self.directory.preAuthLog.flush()
        sessions = list(self.directory.sessions.values())
        return gatherResults(
            [super().stopService(), *(self._shutDown(session) for session in sessions)]
        )

    def _shutDown(self, session: Session) -> Deferred:
        def goodbye(result):
            if isinstance(result, Failure):
                self.log.warn(
                    "Session with {peer} still busy after {grace} s; closing it",
                    peer=session.peer, grace=self.shutdownGrace,
                )
            return session.close(records.BYE_SHUTTING_DOWN, "the server is shutting down")

        return session.whenSettled().addTimeout(self.shutdownGrace, self._reactor).addBoth(goodbye)
