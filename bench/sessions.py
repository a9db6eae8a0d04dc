"""
How fast spc sessions start and how cheaply one daemon holds many,
measured against a real C{twistd -n spc} in a process of its own (so its
CPU is not this client's):

    python bench/sessions.py
    python bench/sessions.py --sessions 100 --identities 25 --idle 10 --files 100

The first uses the issue's sizes; the second, with C{--rotate-interval
20} as well, takes about a minute on a busy machine.

In order, on one daemon:

  1. session ready: library C{connect} over 4 channels to the idle daemon,
     until the Deferred fires (median of C{--tries}), once with an
     exchange key ready in the pool before each try, once with each key
     made on demand;
  2. message round trip: a 64-byte C{sendMessage} until it fires, one at a
     time on one session (median of C{--messages});
  3. small files: the wall clock of one C{spc send} of C{--files} files of
     1 KiB, every file checked in the inbox;
  4. open rate: C{--sessions} sessions from C{--identities} identities,
     C{--parallel} opening at a time, each from its own source address in
     127.0.0.0/8, their exchange keys made ahead (not counted); failures
     by reason; daemon and client CPU per session;
  5. idle: the daemon's and this client's CPU (% of one core) over
     C{--idle} seconds while those sessions stay open, which includes
     their heartbeats and at most one rotation round, from C{--settle}
     seconds after the last one opened: by then they are idle, and beat
     at the idle pace (amendment A21);
  6. rotation: the daemon's log line for the first rotation round that
     started after every session was open.

Each figure is printed beside the issue's target.  The daemon runs with
its default limits (C{twistd spc --help} lists the options that change
them): 4 sessions per identity (hence C{--sessions} at most 4 x
C{--identities}), 100 new sessions per identity in 10 s, 500 host-key
operations a second (one per channel handshake: at most 125 sessions of
4 channels a second) and 1024 sessions.  It needs Linux (C{/proc}); it
is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import ipaddress
import itertools
import os
import re
import resource
import subprocess
import sys
import time

from common import (
    ROOT,
    SPC,
    TWISTD,
    Processes,
    cpuSeconds,
    fileContains,
    freePorts,
    median,
    reactInScratch,
    spcEnvironment,
    spcKeygen,
    waitUntil,
)

sys.path.insert(0, ROOT)  # this checkout's spc, as in the daemon
from twisted.internet import defer, task  # noqa: E402
from twisted.internet.endpoints import TCP4ClientEndpoint  # noqa: E402
from twisted.internet.utils import getProcessOutputAndValue  # noqa: E402
from twisted.logger import LogLevel, formatEvent, globalLogPublisher  # noqa: E402

from spc.client.connect import connect  # noqa: E402
from spc.client.keypool import ExchangeKeyPool  # noqa: E402
from spc.files.names import MESSAGES_NAME, RECEIPTS_NAME  # noqa: E402
from spc.keys.identity import generateIdentity  # noqa: E402
from spc.keys.trust import PinnedKey  # noqa: E402

FIRST_SOURCE = ipaddress.IPv4Address("127.1.0.1")
SESSIONS_PER_IDENTITY = 4
MESSAGE = b"m" * 64
SMALL_FILE_SIZE = 1024
INCOMPLETE = "opened, but not every channel joined"
ROTATION_ROUND = re.compile(
    r"Rotation round (\d+): (\d+) committed, (\d+) rolled back; (\d+) sessions now"
)


class Daemon:
    """
    A C{twistd -n spc} that admits the given identities, logging to a file.

    @ivar ports: its channels' ports on 127.0.0.1.
    @ivar fingerprint: its host key's fingerprint.
    @ivar inbox: where it stores messages and files.
    """

    def __init__(self, work: str, processes: Processes, channels: int, rotateInterval: str,
                 fingerprints: list[str]) -> None:
        keyDir = os.path.join(work, "daemon-keys")
        self.inbox = os.path.join(work, "inbox")
        self.log = os.path.join(work, "daemon.log")
        self.fingerprint = spcKeygen(keyDir)
        with open(os.path.join(keyDir, "authorized_keys"), "w") as f:
            f.writelines(f"{fingerprint} bench{n}\n" for n, fingerprint in enumerate(fingerprints))
        self.ports = freePorts(channels)
        with open(os.path.join(work, "twistd.err"), "wb") as errors:
            self._process = processes.start(
                TWISTD + ["-n", "--pidfile=", "--logfile", self.log, "spc", "--key-dir", keyDir,
                          "--ports", ",".join(map(str, self.ports)), "--inbox", self.inbox,
                          "--control-socket", "none", "--rotate-interval", rotateInterval],
                env=spcEnvironment(), stdin=subprocess.DEVNULL, stdout=errors, stderr=errors,
            )
        waitUntil(lambda: fileContains(self.log, " serving "), self._process, "the daemon")

    def cpuSeconds(self) -> float:
        """
        CPU seconds the daemon has used.
        """
        return cpuSeconds(self._process.pid)

    def rotationRounds(self) -> list[tuple[int, ...]]:
        """
        Every rotation round the log reports so far: C{(round, committed,
        rolled back, sessions)}, from the files twistd rotated the log into
        (C{daemon.log.2}, C{daemon.log.1}: the higher, the older) and the
        log itself.
        """
        folder, name = os.path.split(self.log)
        rotated = sorted(
            (int(entry[len(name) + 1:]), entry) for entry in os.listdir(folder)
            if entry.startswith(name + ".") and entry[len(name) + 1:].isdigit()
        )
        text = ""
        for path in [entry for _, entry in reversed(rotated)] + [name]:
            with open(os.path.join(folder, path), errors="replace") as f:
                text += f.read()
        return [tuple(map(int, m.groups())) for m in ROTATION_ROUND.finditer(text)]


def ownCPU() -> float:
    """
    CPU seconds this process (the client side) has used.
    """
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Clients:
    """
    Opens sessions with library C{connect}, each from the next source
    address in 127.0.0.0/8.
    """

    def __init__(self, reactor, daemon: Daemon) -> None:
        self._reactor = reactor
        self._daemon = daemon
        self._sources = (str(FIRST_SOURCE + n) for n in itertools.count())

    def connect(self, identity, keys: ExchangeKeyPool) -> defer.Deferred:
        """
        @param keys: where the session's exchange key comes from.
        @return: a Deferred firing with the L{spc.session.session.Session}.
        """
        source = next(self._sources)
        endpoints = [
            TCP4ClientEndpoint(self._reactor, "127.0.0.1", port, bindAddress=(source, 0))
            for port in self._daemon.ports
        ]
        return connect(self._reactor, endpoints, identity, PinnedKey(self._daemon.fingerprint),
                       f"127.0.0.1:{self._daemon.ports[0]}", exchangeKeys=keys)

    def complete(self, session) -> bool:
        """Whether every channel of the session is up."""
        return len(session.liveChannels()) == len(self._daemon.ports)


class Report:
    """
    The figures, each beside its target, printed as they come and again
    at the end.
    """

    def __init__(self) -> None:
        self._lines: list[str] = []

    def add(self, figure: str, measured: str, target: str = "") -> None:
        """
        Print a figure and keep it for the summary.
        """
        line = f"{figure:<46} {measured:<40} {target}"
        self._lines.append(line)
        print(line, flush=True)

    def printAll(self) -> None:
        """
        Print every figure again, under a header.
        """
        print(f"\n{'figure':<46} {'measured':<40} target (issue 11)")
        print("\n".join(self._lines))


class ClientWarnings:
    """
    Counts the warnings the client side logs while it watches, such as
    why a channel could not join, which C{connect} does not raise.
    """

    def __init__(self) -> None:
        self.counts: collections.Counter = collections.Counter()

    def __call__(self, event: dict) -> None:
        if event.get("log_level") in (LogLevel.warn, LogLevel.error, LogLevel.critical):
            self.counts[formatEvent(event)] += 1

    def __enter__(self) -> ClientWarnings:
        globalLogPublisher.addObserver(self)
        return self

    def __exit__(self, *exception) -> None:
        globalLogPublisher.removeObserver(self)


def milliseconds(seconds: float) -> str:
    """
    Seconds shown as milliseconds.
    """
    return f"{seconds * 1000:.1f} ms"


@defer.inlineCallbacks
def measureReady(clients: Clients, identities: list, tries: int, report: Report):
    """
    Open and close sessions one after the other, timing each C{connect},
    first with an exchange key ready in the pool (the pool is refilled,
    untimed, before each try: a long-running process that opens a session
    now and then), then with none (each key made on demand, in a thread:
    a pool run dry by back-to-back connects, or a process that did not
    warm one).
    """
    turns = itertools.cycle(identities)
    for what, keys in (("key pool warm", ExchangeKeyPool(size=1)),
                       ("key made on demand", ExchangeKeyPool(size=0))):
        times, incomplete = [], 0
        for _ in range(tries):
            yield keys.warm()
            started = time.perf_counter()
            session = yield clients.connect(next(turns), keys)
            times.append(time.perf_counter() - started)
            incomplete += not clients.complete(session)
            yield session.close()
        report.add(f"session ready, {what}, median of {tries}", milliseconds(median(times))
                   + (f" ({incomplete} incomplete)" if incomplete else ""),
                   "<= 20 ms" if keys.size else "")


@defer.inlineCallbacks
def measureRoundTrip(clients: Clients, identity, count: int, report: Report):
    """
    Send small messages one after the other on one session, timing each.
    """
    session = yield clients.connect(identity, ExchangeKeyPool(size=0))
    times = []
    for _ in range(count):
        started = time.perf_counter()
        yield session.sendMessage(MESSAGE)
        times.append(time.perf_counter() - started)
    yield session.close()
    report.add(f"message round trip ({len(MESSAGE)} B), median of {count}",
               milliseconds(median(times)), "<= 2 ms")


@defer.inlineCallbacks
def measureSmallFiles(daemon: Daemon, keyDir: str, work: str, count: int, report: Report):
    """
    Time one C{spc send} of a directory of small random files, then check
    the inbox holds every one.
    """
    folder = os.path.join(work, "small")
    os.makedirs(folder)
    sent = collections.Counter()
    for n in range(count):
        data = os.urandom(SMALL_FILE_SIZE)
        with open(os.path.join(folder, f"f{n:05d}.bin"), "wb") as f:
            f.write(data)
        sent[hashlib.sha256(data).hexdigest()] += 1
    started = time.perf_counter()
    out, err, code = yield getProcessOutputAndValue(
        SPC[0], SPC[1:] + ["send", "--key-dir", keyDir, "--server", "127.0.0.1",
                           "--ports", ",".join(map(str, daemon.ports)),
                           "--server-fingerprint", daemon.fingerprint, "--no-progress", folder],
        env=spcEnvironment(),
    )
    seconds = time.perf_counter() - started
    stored = inboxDigests(daemon.inbox)
    if code:
        outcome = f"FAILED: exit {code}: {err.decode(errors='replace').strip()[-200:]}"
    elif stored != sent:
        outcome = (f"FAILED: {sum((sent - stored).values())} file(s) missing or wrong, "
                   f"{sum((stored - sent).values())} stored that were not sent")
    else:
        outcome = "all stored"
    report.add(f"{count} files of 1 KiB, one spc send", f"{seconds:.2f} s, {outcome}", "<= 2 s")


def inboxDigests(inbox: str) -> collections.Counter:
    """
    The SHA-256 of every file the daemon stored (not its message log, its
    receipts or unfinished files).
    """
    found = collections.Counter()
    for folder, subfolders, names in os.walk(inbox):
        subfolders[:] = [name for name in subfolders if not name.startswith(".spc-")]
        for name in names:
            if folder != inbox or name not in (MESSAGES_NAME, RECEIPTS_NAME):
                with open(os.path.join(folder, name), "rb") as f:
                    found[hashlib.sha256(f.read()).hexdigest()] += 1
    return found


@defer.inlineCallbacks
def openMany(clients: Clients, identities: list, daemon: Daemon, count: int, parallel: int,
             report: Report):
    """
    Open C{count} sessions, C{parallel} at a time, the identities taking
    turns.  Their exchange keys are made first, in threads on every core,
    and not counted: the figures are those of opening sessions, which a
    client with its keys made ahead (a pool warmed to size) achieves.

    @return: the sessions that opened.
    """
    keys = ExchangeKeyPool(size=0, threads=os.cpu_count() or 1)
    started = time.perf_counter()
    yield keys.warm(count)
    report.add(f"  ({count} exchange keys made ahead in)",
               f"{time.perf_counter() - started:.1f} s, not counted")
    semaphore = defer.DeferredSemaphore(parallel)
    durations, failures = [], collections.Counter()
    daemonBefore, clientBefore, started = daemon.cpuSeconds(), ownCPU(), time.perf_counter()

    def openOne(n: int) -> defer.Deferred:
        opening = time.perf_counter()

        def opened(session):
            durations.append(time.perf_counter() - opening)
            if not clients.complete(session):
                failures[INCOMPLETE] += 1
            return session

        def failed(failure):
            failures[f"{failure.type.__name__}: {failure.getErrorMessage()}"] += 1

        return clients.connect(identities[n % len(identities)], keys).addCallbacks(
            opened, failed)

    with ClientWarnings() as warnings:
        results = yield defer.gatherResults(
            [semaphore.run(openOne, n) for n in range(count)], consumeErrors=True
        )
    elapsed = time.perf_counter() - started
    sessions = [session for session in results if session is not None]
    daemonCPU, clientCPU = daemon.cpuSeconds() - daemonBefore, ownCPU() - clientBefore
    perSession = max(len(sessions), 1)
    report.add(f"open {count} sessions, {parallel} in parallel",
               f"{len(sessions) / elapsed:.1f} sessions/s", ">= 100 sessions/s")
    report.add("  sessions that failed", str(count - len(sessions) + failures[INCOMPLETE]), "0")
    for reason, times in failures.most_common():
        report.add(f"    {times} x", reason[:80])
    for warning, times in warnings.counts.most_common(5):
        report.add(f"    client warning, {times} x", warning[:80])
    report.add("  time to open one, median / max",
               f"{milliseconds(median(durations))} / {milliseconds(max(durations, default=0))}")
    report.add("  daemon CPU per session", milliseconds(daemonCPU / perSession))
    report.add("  client CPU per session (this process)", milliseconds(clientCPU / perSession))
    return sessions


@defer.inlineCallbacks
def measureIdle(reactor, daemon: Daemon, sessions: list, window: float, settle: float,
                report: Report):
    """
    After C{settle} seconds, the CPU both sides use over C{window} seconds
    while the sessions stay open.
    """
    yield task.deferLater(reactor, settle, lambda: None)
    daemonBefore, clientBefore = daemon.cpuSeconds(), ownCPU()
    yield task.deferLater(reactor, window, lambda: None)
    alive = sum(session.closedReason is None for session in sessions)
    daemonShare = (daemon.cpuSeconds() - daemonBefore) / window * 100
    clientShare = (ownCPU() - clientBefore) / window * 100
    report.add(f"{alive} idle sessions for {window:.0f} s, daemon CPU",
               f"{daemonShare:.1f} % of a core", "<= 5 % (1000 sessions)")
    report.add("  client CPU (this process)", f"{clientShare:.1f} % of a core")


@defer.inlineCallbacks
def awaitRotation(reactor, daemon: Daemon, roundsBefore: int, interval: float, report: Report):
    """
    Wait for the log line of the first rotation round that started after
    C{roundsBefore} lines were logged: a round's line is logged when the
    next round starts, so that is the second new line.
    """
    deadline = time.monotonic() + 2.5 * interval + 10
    rounds = daemon.rotationRounds()
    while len(rounds) < roundsBefore + 2 and time.monotonic() < deadline:
        yield task.deferLater(reactor, 1.0, lambda: None)
        rounds = daemon.rotationRounds()
    if len(rounds) < roundsBefore + 2:
        report.add("rotation round", f"no round logged in {2.5 * interval + 10:.0f} s",
                   "all committed")
        return
    number, committed, rolledBack, sessions = rounds[roundsBefore + 1]
    report.add(f"rotation round {number}",
               f"{committed} committed, {rolledBack} rolled back ({sessions} sessions after)",
               "all committed, none rolled back")


@defer.inlineCallbacks
def run(reactor, options, work: str, processes: Processes):
    """
    Start the daemon and measure, in the order the module docstring
    gives.  The sessions timed one by one have identities of their own,
    each used at most L{SESSIONS_PER_IDENTITY} times, so the daemon's
    limit on new sessions per identity does not touch the crowd's.
    """
    report = Report()
    started = time.perf_counter()
    oneByOneCount = -(-(2 * options.tries + 1) // SESSIONS_PER_IDENTITY)
    identities = [generateIdentity() for _ in range(options.identities + oneByOneCount)]
    print(f"{len(identities)} identities made in {time.perf_counter() - started:.1f} s",
          flush=True)
    senderKeys = os.path.join(work, "sender-keys")
    fingerprints = [identity.fingerprint for identity in identities] + [spcKeygen(senderKeys)]
    daemon = Daemon(work, processes, options.channels, str(options.rotate_interval),
                    fingerprints)
    crowd, oneByOne = identities[:options.identities], identities[options.identities:]
    clients = Clients(reactor, daemon)
    yield measureReady(clients, oneByOne, options.tries, report)
    yield measureRoundTrip(clients, oneByOne[-1], options.messages, report)
    yield measureSmallFiles(daemon, senderKeys, work, options.files, report)
    sessions = yield openMany(clients, crowd, daemon, options.sessions, options.parallel, report)
    roundsBefore = len(daemon.rotationRounds())
    yield measureIdle(reactor, daemon, sessions, options.idle, options.settle, report)
    yield awaitRotation(reactor, daemon, roundsBefore, options.rotate_interval, report)
    yield defer.DeferredList([session.close() for session in sessions if
                              session.closedReason is None])
    report.printAll()


def raiseFileLimit(needed: int) -> None:
    """
    Raise this process's open-file limit (which the daemon inherits) to
    its hard limit, and say when that is too low for C{needed} files.
    """
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard != resource.RLIM_INFINITY and hard < needed:
        print(f"warning: at most {hard} open files per process; {needed} are needed "
              "(raise the hard limit: ulimit -Hn)", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tries", type=int, default=20, help="sessions timed one by one")
    parser.add_argument("--messages", type=int, default=50, help="messages timed one by one")
    parser.add_argument("--files", type=int, default=1000, help="1 KiB files in one spc send")
    parser.add_argument("--sessions", type=int, default=1000, help="sessions held open")
    parser.add_argument("--parallel", type=int, default=40, help="sessions opening at a time")
    parser.add_argument("--identities", type=int, default=250, help="client identities")
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of the idle window")
    parser.add_argument("--settle", type=float, default=17.0,
                        help="seconds from the last session opened to the idle window: a "
                        "session idle for 3 heartbeat intervals (15 s) beats 6 times more "
                        "slowly")
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--rotate-interval", type=float, default=30.0,
                        help="the daemon's --rotate-interval (more than 16.7)")
    options = parser.parse_args()
    if options.sessions > SESSIONS_PER_IDENTITY * options.identities:
        least = -(-options.sessions // SESSIONS_PER_IDENTITY)
        parser.error(f"the daemon keeps at most {SESSIONS_PER_IDENTITY} sessions per identity: "
                     f"give --identities of at least {least}")
    raiseFileLimit(options.channels * options.sessions + 200)
    reactInScratch(run, options, "spc-sessions-")


if __name__ == "__main__":
    main()
