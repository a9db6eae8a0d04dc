# -*- test-case-name: tests.integration.test_hostile -*-
"""
A fault-injecting man in the middle for SPC/1 over real loopback TCP: the
harness of PROTOCOL section 10.

L{FaultProxy} listens on one loopback port per server port.  Each client
connection it accepts becomes a L{ProxiedConnection}: the proxy dials the real
server port and relays both directions, splitting each byte stream into
SPC/1 frames (C{u32} big-endian length, then the body), so that faults apply
to whole frames:

    - flip one bit at an offset of frame N (the offset counts the 4-byte
      length prefix, so offset 0 is the length's top byte; negative offsets
      count from the end);
    - drop, duplicate, or swap frame N with the next one (reorder);
    - capture frame N by name, and inject a captured frame after frame M of
      this or any other connection, or on demand, optionally I{retargeted}:
      its clear header rewritten so that suite, session, channel, epoch and
      sequence number are exactly what the receiving end expects next, so
      that only the cryptography can refuse it;
    - reflect frame N back to its sender (retargeted likewise);
    - truncate frame N (forward its first bytes, then close both sides);
    - kill the connection (abort both sides) after frame N, or on demand;
    - hold frames from frame N on (optionally forwarding the first bytes of
      frame N) until released, or black-hole them (discard, TCP stays open);
    - limit a channel's client-to-server rate (L{FaultProxy.limit}), as a
      slow uplink does: a L{Throttle}, a token bucket on the reactor's
      clock (L{tests.throttle}), lets the bytes through, and the proxy stops
      reading from the client while more than C{THROTTLE_BUFFER} wait, so the rest queues in
      TCP's buffers, as in front of a real bottleneck.

Frames are selected per direction by L{frame} (the N-th frame, handshake
frames included), L{protected} (the frame with sequence number N) or L{big}
(the N-th protected frame whose body exceeds L{BIG}: a data fragment,
never a handshake frame, heartbeat or acknowledgement).  A test configures a L{Plan} for
(channel, connection number, direction) before the connection exists; the
connection number counts the proxy's accepted connections on that channel
from 0, so a rejoin after a fault gets a fresh, fault-free plan.

The source ends are honest: frames are split on their original lengths, and
every fault is applied after splitting.  Each direction counts frames and
bytes in and out (L{Stream}), and each connection says which side was lost
first (L{ProxiedConnection.firstLost}), so tests can assert who closed.
"""

from __future__ import annotations

import struct
from typing import Callable, NamedTuple

from twisted.internet import protocol
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

from tests.throttle import Throttle

__all__ = [
    "Applied",
    "BIG",
    "DOWN",
    "FaultProxy",
    "Plan",
    "ProxiedConnection",
    "Stream",
    "UP",
    "big",
    "frame",
    "protected",
]

UP = "up"
DOWN = "down"

# Larger than any handshake frame (MAX_BODY_PRE) and any control record.
BIG = 2048
PREFIX_SIZE = 4
PROTECTED_TYPE = 0x10
FINISHED_TYPE = 0x04

# Offsets of the protected header's fields in a frame as sent, prefix
# included (docs/protocol.rst, "Protected frame").
LENGTH = 0
VERSION = 4
TYPE = 5
SUITE = 6
FLAGS = 7
SESSION = 8
CHANNEL = 24
EPOCH = 26
SEQ = 30
BODY = 38

_LENGTH = struct.Struct("!I")
_SEQ = struct.Struct("!Q")


class Selector(NamedTuple):
    """
    Which frame of a direction a rule applies to.

    @ivar counter: C{"index"} (every frame), C{"seq"} (protected frames) or
        C{"big"} (frames with a body over L{BIG} bytes).
    @ivar n: the value of that counter, from 0.
    """

    counter: str
    n: int


def frame(n: int) -> Selector:
    """
    The N-th frame of a direction, handshake frames included.
    """
    return Selector("index", n)


def protected(n: int) -> Selector:
    """
    The protected frame with sequence number N.
    """
    return Selector("seq", n)


def big(n: int) -> Selector:
    """
    The N-th protected frame whose body is over L{BIG} bytes.
    """
    return Selector("big", n)


class FrameInfo(NamedTuple):
    """
    Where an arriving frame stands in its direction; a counter that does not
    apply is C{None}.
    """

    index: int
    seq: int | None
    big: int | None


class Applied(NamedTuple):
    """
    A rule that fired: its action, the frame it fired on, and how many
    protected frames and bytes the direction had written before it (the
    receiver's next expected sequence number and stream position).
    """

    action: str
    info: FrameInfo
    protectedOut: int
    bytesOut: int


class Rule(NamedTuple):
    selector: Selector
    action: str
    options: dict

    def selects(self, info: FrameInfo) -> bool:
        return getattr(info, self.selector.counter) == self.selector.n


class Plan:
    """
    The faults of one direction of one connection, in the order given.

    Every method adds a rule for the frame C{at} selects and returns the
    plan, so rules chain.  Flips apply before the frame's disposition, so a
    flipped frame can also be held, truncated or duplicated.
    """

    def __init__(self) -> None:
        self.rules: list[Rule] = []

    def _add(self, at: Selector, action: str, **options) -> Plan:
        self.rules.append(Rule(at, action, options))
        return self

    def flip(self, at: Selector, offset: int, bit: int = 0) -> Plan:
        """
        Invert bit C{bit} (0 = least significant) of byte C{offset}.
        """
        return self._add(at, "flip", offset=offset, bit=bit)

    def drop(self, at: Selector) -> Plan:
        return self._add(at, "drop")

    def duplicate(self, at: Selector) -> Plan:
        return self._add(at, "duplicate")

    def swap(self, at: Selector) -> Plan:
        """
        Hold this frame back and forward it right after the next one.
        """
        return self._add(at, "swap")

    def capture(self, at: Selector, name: str) -> Plan:
        """
        Keep a copy of the frame, as it arrived, under C{name}; it is
        forwarded as usual.
        """
        return self._add(at, "capture", name=name)

    def inject(self, at: Selector, name: str, retarget: bool = False) -> Plan:
        """
        After forwarding this frame, send the frame captured as C{name}.
        """
        return self._add(at, "inject", name=name, retarget=retarget)

    def reflect(self, at: Selector) -> Plan:
        """
        Forward the frame, and send a retargeted copy back to its sender.
        """
        return self._add(at, "reflect")

    def truncate(self, at: Selector, keep: int) -> Plan:
        """
        Forward the first C{keep} bytes of the frame, then close both sides
        (a clean close: the receiver sees a partial frame, then EOF).
        """
        return self._add(at, "truncate", keep=keep)

    def kill(self, at: Selector) -> Plan:
        """
        Forward the frame, then abort both sides.
        """
        return self._add(at, "kill")

    def hold(self, at: Selector, keep: int = 0) -> Plan:
        """
        Hold this frame and every later one until L{Stream.release};
        forward the first C{keep} bytes of this frame at once.
        """
        return self._add(at, "hold", keep=keep)

    def blackhole(self, at: Selector) -> Plan:
        """
        Discard this frame and every later one; TCP stays open.
        """
        return self._add(at, "blackhole")


def flipped(data: bytes, offset: int, bit: int) -> bytes:
    changed = bytearray(data)
    changed[offset] ^= 1 << bit
    return bytes(changed)


class Stream:
    """
    One direction of a proxied connection.

    @ivar name: L{UP} (client to server) or L{DOWN}.
    @ivar framesIn: whole frames that arrived from the source.
    @ivar bytesIn: their bytes.
    @ivar protectedIn: protected frames among them.
    @ivar bigIn: protected frames among them over L{BIG} bytes.
    @ivar framesOut: frames written to the destination (injected included,
        partial writes excluded).
    @ivar bytesOut: every byte written to the destination.
    @ivar protectedOut: protected frames written: the sequence number the
        destination expects next, as long as nothing was tampered with.
    @ivar dropped: frames discarded (dropped or black-holed).
    @ivar applied: an L{Applied} for every rule that fired, in order.
    @ivar holding: whether frames are being held.
    @ivar throttle: the L{Throttle} its bytes go through, if its channel
        is rate-limited in this direction.
    """

    def __init__(self, connection: ProxiedConnection, name: str, plan: Plan | None) -> None:
        self.connection = connection
        self.name = name
        self.rules = list(plan.rules) if plan is not None else []
        self.framesIn = 0
        self.bytesIn = 0
        self.protectedIn = 0
        self.bigIn = 0
        self.framesOut = 0
        self.bytesOut = 0
        self.protectedOut = 0
        self.dropped = 0
        self.applied: list[Applied] = []
        self._buffer = bytearray()
        self._held: list[tuple[bytes, bool]] | None = None
        self._blackholed = False
        self._swapped: bytes | None = None
        self._template: bytes | None = None
        self._stopped = False
        self.throttle: Throttle | None = None
        rate = connection.proxy._limits.get(connection.channel) if name == UP else None
        if rate is not None:
            self.throttle = Throttle(
                connection.proxy.reactor, rate, self._forward, onBacklog=self._backlog
            )

    @property
    def holding(self) -> bool:
        return self._held is not None

    def _destination(self):
        side = (
            self.connection.serverSide if self.name == UP else self.connection.clientSide
        )
        return None if side is None else side.transport

    # Input.

    def dataReceived(self, data: bytes) -> None:
        if self._stopped:
            return
        buffer = self._buffer
        buffer += data
        while not self._stopped and len(buffer) >= PREFIX_SIZE:
            (length,) = _LENGTH.unpack_from(buffer)
            end = PREFIX_SIZE + length
            if len(buffer) < end:
                break
            whole = bytes(buffer[:end])
            del buffer[:end]
            self._frameIn(whole)
        if self._stopped:
            buffer.clear()

    def _frameIn(self, data: bytes) -> None:
        isProtected = len(data) > TYPE and data[TYPE] == PROTECTED_TYPE
        info = FrameInfo(
            self.framesIn,
            self.protectedIn if isProtected else None,
            self.bigIn if isProtected and len(data) - PREFIX_SIZE > BIG else None,
        )
        self.framesIn += 1
        self.bytesIn += len(data)
        self.protectedIn += isProtected
        self.bigIn += info.big is not None
        if self.name == DOWN and len(data) > 22 and data[TYPE] == FINISHED_TYPE:
            self.connection.sessionID = data[6:22]
        rules = [rule for rule in self.rules if rule.selects(info)]
        for rule in rules:
            self.applied.append(Applied(rule.action, info, self.protectedOut, self.bytesOut))
        self._apply(data, rules)
        self.connection.proxy._activity()

    def _apply(self, data: bytes, rules: list[Rule]) -> None:
        proxy = self.connection.proxy
        original = data
        for rule in rules:
            if rule.action == "capture":
                proxy._captured(rule.options["name"], original)
            elif rule.action == "flip":
                data = flipped(data, rule.options["offset"], rule.options["bit"])
        actions = {rule.action: rule.options for rule in rules}
        if "truncate" in actions:
            self._writeRaw(data[: actions["truncate"]["keep"]])
            self.connection.cut()
            return
        if "hold" in actions:
            keep = actions["hold"]["keep"]
            if keep:
                self._writeRaw(data[:keep])
                self._held = [(data[keep:], True)]
            else:
                self._held = [(data, False)]
        elif "blackhole" in actions:
            self._blackholed = True
            self.dropped += 1
        elif "drop" in actions:
            self.dropped += 1
        elif "swap" in actions:
            self._swapped = data
        else:
            self._emit(data)
            if "duplicate" in actions:
                self._emit(data)
        if "reflect" in actions:
            self.connection.stream(DOWN if self.name == UP else UP).inject(
                original, retarget=True
            )
        if "inject" in actions:
            options = actions["inject"]
            self.inject(proxy.captured[options["name"]], options["retarget"])
        if "kill" in actions:
            self.connection.kill()

    # Output.

    def _emit(self, data: bytes) -> None:
        if self._blackholed:
            self.dropped += 1
            return
        if self._held is not None:
            self._held.append((data, False))
            return
        self._write(data)
        if self._swapped is not None:
            swapped, self._swapped = self._swapped, None
            self._write(swapped)

    def _write(self, data: bytes) -> None:
        if self._writeRaw(data):
            self.framesOut += 1
            if len(data) > TYPE and data[TYPE] == PROTECTED_TYPE:
                self.protectedOut += 1
                if self._template is None:
                    self._template = data[SUITE:SEQ]

    def _writeRaw(self, data: bytes) -> bool:
        transport = self._destination()
        if transport is None or self._stopped:
            return False
        if self.throttle is None:
            transport.write(data)
        else:
            self.throttle.send(data)
        self.bytesOut += len(data)
        return True

    def _forward(self, data: bytes) -> None:
        transport = self._destination()
        if transport is not None and not self._stopped:
            transport.write(data)

    def _backlog(self, full: bool) -> None:
        """
        The throttle holds too much: stop reading from the source until it
        drained, so TCP holds the source back.
        """
        source = self.connection.clientSide if self.name == UP else self.connection.serverSide
        if source is None or self._stopped:
            return
        if full:
            source.transport.pauseProducing()
        else:
            source.transport.resumeProducing()

    # On demand.

    def retarget(self, data: bytes) -> bytes:
        """
        Rewrite the clear header of a protected frame so that its suite,
        flags, session, channel and epoch are those this direction carries
        and its sequence number is the next one the receiver expects: only
        the key can tell the frame is not the receiver's.
        """
        if self._template is None:
            raise RuntimeError(f"no protected frame went {self.name} yet")
        return data[:SUITE] + self._template + _SEQ.pack(self.protectedOut) + data[BODY:]

    def inject(self, data: bytes, retarget: bool = False) -> None:
        """
        Write C{data} to the destination now, ahead of any held frames.
        """
        self._write(self.retarget(data) if retarget else data)

    def hold(self) -> None:
        """
        Hold every frame from now on until L{release}.
        """
        if self._held is None:
            self._held = []

    def release(self) -> None:
        """
        Forward the held frames, in order, and stop holding.
        """
        held, self._held = self._held or [], None
        for data, partial in held:
            if partial:
                self._writeRaw(data)
                self.framesOut += 1
            else:
                self._write(data)

    def blackhole(self) -> None:
        self._blackholed = True

    def stop(self) -> None:
        """
        The connection is going: forward nothing more.
        """
        self._stopped = True
        self._held = None
        self._buffer.clear()
        if self.throttle is not None:
            self.throttle.stop()


class ProxiedConnection:
    """
    One client connection through the proxy and its connection to the real
    server.

    @ivar channel: the channel index (which proxy port accepted it).
    @ivar number: its accept order on that channel, from 0.
    @ivar up: the client-to-server L{Stream}.
    @ivar down: the server-to-client L{Stream}.
    @ivar sessionID: the session id, once F3 passed (C{None} before).
    @ivar firstLost: C{"client"}, C{"server"} or C{"proxy"}: who ended the
        connection.
    @ivar lost: fires once both sides are closed.
    """

    def __init__(self, proxy: FaultProxy, channel: int, number: int) -> None:
        self.proxy = proxy
        self.channel = channel
        self.number = number
        self.up = Stream(self, UP, proxy._plans.get((channel, number, UP)))
        self.down = Stream(self, DOWN, proxy._plans.get((channel, number, DOWN)))
        self.clientSide: _ClientSide | None = None
        self.serverSide: _ServerSide | None = None
        self.sessionID: bytes | None = None
        self.firstLost: str | None = None
        self.lost: Deferred = Deferred()
        self._clientDone = False
        self._serverDone = False

    def __repr__(self) -> str:
        return f"<ProxiedConnection channel={self.channel} #{self.number}>"

    def stream(self, direction: str) -> Stream:
        return self.up if direction == UP else self.down

    @property
    def isLost(self) -> bool:
        return self.lost.called

    def serverPort(self) -> int | None:
        """
        The proxy's local port towards the server: the server sees the
        connection coming from it.
        """
        if self.serverSide is None:
            return None
        return self.serverSide.localPort

    def clientPort(self) -> int | None:
        """
        The client's port: the client's connection is bound to it.
        """
        if self.clientSide is None:
            return None
        return self.clientSide.peerPort

    def kill(self) -> None:
        """
        Abort both sides at once, as a reset would.
        """
        self._end("proxy", abort=True)

    def cut(self) -> None:
        """
        Close both sides after what was written (a clean FIN).
        """
        self._end("proxy", abort=False)

    def _end(self, who: str, abort: bool) -> None:
        if self.firstLost is None:
            self.firstLost = who
        self.up.stop()
        self.down.stop()
        sides = ((self.clientSide, self._clientDone), (self.serverSide, self._serverDone))
        for side, done in sides:
            if side is not None and not done:
                if abort:
                    side.transport.abortConnection()
                else:
                    side.transport.loseConnection()
        if self.serverSide is None and not self.proxy._connecting.get(self, False):
            self._serverDone = True
        self._checkLost()

    def _sideLost(self, side: str, reason: Failure) -> None:
        if side == "client":
            self._clientDone = True
            other = self.serverSide
            otherDone = self._serverDone
        else:
            self._serverDone = True
            other = self.clientSide
            otherDone = self._clientDone
        if self.firstLost is None:
            self.firstLost = side
        self.up.stop()
        self.down.stop()
        if other is not None and not otherDone:
            if reason.check(ConnectionDone):
                other.transport.loseConnection()
            else:
                other.transport.abortConnection()
        self._checkLost()
        self.proxy._activity()

    def _serverFailed(self, failure: Failure) -> None:
        self._serverDone = True
        if self.firstLost is None:
            self.firstLost = "server"
        if self.clientSide is not None and not self._clientDone:
            self.clientSide.transport.abortConnection()
        self._checkLost()

    def _checkLost(self) -> None:
        if self._clientDone and self._serverDone and not self.lost.called:
            self.lost.callback(self)


class _ClientSide(protocol.Protocol):
    """
    The proxy's end of a client's connection.
    """

    def __init__(self, proxy: FaultProxy, channel: int) -> None:
        self.proxy = proxy
        self.channel = channel
        self.connection: ProxiedConnection | None = None
        self.peerPort: int | None = None

    def connectionMade(self) -> None:
        self.peerPort = self.transport.getPeer().port
        self.transport.pauseProducing()
        self.connection = self.proxy._accepted(self)

    def dataReceived(self, data: bytes) -> None:
        self.connection.up.dataReceived(data)

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self.connection._sideLost("client", reason)


class _ServerSide(protocol.Protocol):
    """
    The proxy's connection to the real server.
    """

    def __init__(self, connection: ProxiedConnection) -> None:
        self.connection = connection
        self.localPort: int | None = None

    def connectionMade(self) -> None:
        self.localPort = self.transport.getHost().port
        connection = self.connection
        connection.serverSide = self
        if connection.firstLost is not None:
            self.transport.abortConnection()
            return
        connection.clientSide.transport.resumeProducing()

    def dataReceived(self, data: bytes) -> None:
        self.connection.down.dataReceived(data)

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self.connection._sideLost("server", reason)


class _ClientSideFactory(protocol.Factory):
    noisy = False

    def __init__(self, proxy: FaultProxy, channel: int) -> None:
        self.proxy = proxy
        self.channel = channel

    def buildProtocol(self, addr) -> _ClientSide:
        return _ClientSide(self.proxy, self.channel)


class FaultProxy:
    """
    A proxy port per server port.

    @ivar ports: the proxy's listening port numbers, in channel order, once
        L{start} fired.
    @ivar connections: every L{ProxiedConnection}, in accept order.
    @ivar captured: frames captured by name.
    @ivar onActivity: callables run after every frame and every closed
        side, so tests can re-check a condition when something happened.
    """

    def __init__(self, reactor, targetPorts: list[int], host: str = "127.0.0.1") -> None:
        self.reactor = reactor
        self.targetPorts = list(targetPorts)
        self.host = host
        self.ports: list[int] = []
        self.connections: list[ProxiedConnection] = []
        self.captured: dict[str, bytes] = {}
        self.onActivity: list[Callable[[], None]] = []
        self._plans: dict[tuple[int, int, str], Plan] = {}
        self._limits: dict[int, float] = {}
        self._listening: list = []
        self._perChannel: dict[int, int] = {}
        self._connectionWaiters: dict[tuple[int, int], list[Deferred]] = {}
        self._captureWaiters: dict[str, list[Deferred]] = {}
        self._connecting: dict[ProxiedConnection, bool] = {}

    # Configuration.

    def plan(self, channel: int, direction: str = UP, connection: int = 0) -> Plan:
        """
        The faults for connection number C{connection} of C{channel} in
        C{direction}; configure them before that connection is accepted.
        """
        return self._plans.setdefault((channel, connection, direction), Plan())

    def limit(self, channel: int, rate: float) -> None:
        """
        Let every later connection of C{channel} carry at most C{rate}
        bytes per second from the client to the server (a truncation or
        a close forgets what its throttle still holds).
        """
        self._limits[channel] = rate

    # Life cycle.

    def start(self) -> Deferred:
        """
        Listen on a loopback port per target port.

        @return: a Deferred firing with the port numbers.
        """
        for channel in range(len(self.targetPorts)):
            port = self.reactor.listenTCP(
                0, _ClientSideFactory(self, channel), interface=self.host
            )
            self._listening.append(port)
        self.ports = [port.getHost().port for port in self._listening]
        return succeed(self.ports)

    def killAll(self) -> None:
        """
        Abort every open connection.
        """
        for connection in self.connections:
            if not connection.isLost:
                connection.kill()

    def stop(self) -> Deferred:
        """
        Stop listening and abort every connection.

        @return: a Deferred firing once every connection is closed.
        """
        listening, self._listening = self._listening, []
        stopped = [succeed(port.stopListening()) for port in listening]
        self.killAll()
        return gatherResults(stopped + [c.lost for c in self.connections])

    # Looking connections up.

    def connection(self, channel: int, number: int = 0) -> ProxiedConnection:
        for connection in self.connections:
            if connection.channel == channel and connection.number == number:
                return connection
        raise KeyError(f"no connection #{number} on channel {channel}")

    def latest(self, sessionID: bytes, channel: int) -> ProxiedConnection:
        """
        The newest connection of a session on a channel.
        """
        found = [
            c for c in self.connections if c.sessionID == sessionID and c.channel == channel
        ]
        if not found:
            raise KeyError(f"no connection of that session on channel {channel}")
        return found[-1]

    def whenConnection(self, channel: int, number: int = 0) -> Deferred:
        """
        @return: a Deferred firing with connection C{number} of C{channel}
            once it is accepted.
        """
        try:
            return succeed(self.connection(channel, number))
        except KeyError:
            waiter: Deferred = Deferred()
            self._connectionWaiters.setdefault((channel, number), []).append(waiter)
            return waiter

    def whenCaptured(self, name: str) -> Deferred:
        """
        @return: a Deferred firing with the frame captured as C{name}.
        """
        if name in self.captured:
            return succeed(self.captured[name])
        waiter: Deferred = Deferred()
        self._captureWaiters.setdefault(name, []).append(waiter)
        return waiter

    # Internals.

    def _accepted(self, clientSide: _ClientSide) -> ProxiedConnection:
        channel = clientSide.channel
        number = self._perChannel.get(channel, 0)
        self._perChannel[channel] = number + 1
        connection = ProxiedConnection(self, channel, number)
        connection.clientSide = clientSide
        self.connections.append(connection)
        self._connecting[connection] = True
        endpoint = TCP4ClientEndpoint(self.reactor, self.host, self.targetPorts[channel])

        def connected(server):
            self._connecting.pop(connection, None)
            return server

        def failed(failure):
            self._connecting.pop(connection, None)
            connection._serverFailed(failure)

        endpoint.connect(
            protocol.Factory.forProtocol(lambda: _ServerSide(connection))
        ).addCallbacks(connected, failed)
        for waiter in self._connectionWaiters.pop((channel, number), []):
            waiter.callback(connection)
        self._activity()
        return connection

    def _captured(self, name: str, data: bytes) -> None:
        self.captured[name] = data
        for waiter in self._captureWaiters.pop(name, []):
            waiter.callback(data)

    def _activity(self) -> None:
        for callback in list(self.onActivity):
            callback()
