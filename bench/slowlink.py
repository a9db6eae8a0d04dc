"""
spc on a slow link: throughput, key rotation and message latency while a
file saturates every channel, for several per-channel rates:

    python bench/slowlink.py
    python bench/slowlink.py --rates 1,0 --seconds 30 --timers 30,5,10

For each rate (MB/s per channel, 0 for no limit) a fresh C{twistd -n spc}
runs in a process of its own with the given rotation timers (interval,
ACK timeout, transition; by default the issue's fast configuration
8, 3 and 2 s).  This process is the sender: library C{connect} over
C{--channels} channels through L{tests.faultproxy.FaultProxy}, which
limits each channel's client-to-server rate with a token bucket, as a
home uplink or a congested path does (the proxy stops reading while more
than 64 KiB wait, so the rest queues in TCP's buffers, as in front of a
real bottleneck).  It sends one random file of rate x channels x
C{--seconds} bytes (C{--unlimited-size} without a limit), and a 64-byte
message every C{--message-every} seconds while the file is under way,
each timed from C{sendMessage} until the daemon confirmed it.

The table gives the file's throughput (its size over the time from
C{sendFile} to its confirmation), the rotations the daemon's log shows
committed and rolled back, whether the session stayed one session with
no channel declared dead, and the median and largest message latency.
It needs Linux; it is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from common import (
    ROOT,
    TWISTD,
    Processes,
    fileContains,
    freePorts,
    makeRandomFile,
    median,
    parseSize,
    reactInScratch,
    spcEnvironment,
    spcKeygen,
    waitUntil,
)

sys.path.insert(0, ROOT)  # this checkout's spc and test proxy, as in the daemon
from twisted.internet import defer, task  # noqa: E402
from twisted.internet.endpoints import TCP4ClientEndpoint  # noqa: E402

from spc.client.connect import connect  # noqa: E402
from spc.keys.identity import generateIdentity  # noqa: E402
from spc.keys.trust import PinnedKey  # noqa: E402
from tests.faultproxy import FaultProxy  # noqa: E402

MB = 1000 * 1000
MESSAGE = b"m" * 64
COMMITTED = re.compile(r"Rotation to epoch \d+ with \S+ committed")
ROLLED_BACK = re.compile(r"Rotation to epoch \d+ with \S+ rolled back")
OPENED = re.compile(r"Session \S+ opened with")
DEAD = re.compile(r"Channel \d+ of session \S+ with \S+ at \S+ dead")


def startDaemon(work: str, processes: Processes, channels: int, timers: list[str],
                fingerprint: str):
    """
    A C{twistd -n spc} admitting C{fingerprint}, logging to C{work/daemon.log}.

    @return: C{(process, ports, host key fingerprint, log path)}.
    """
    keyDir = os.path.join(work, "daemon-keys")
    log = os.path.join(work, "daemon.log")
    hostKey = spcKeygen(keyDir)
    with open(os.path.join(keyDir, "authorized_keys"), "w") as f:
        f.write(f"{fingerprint} bench\n")
    ports = freePorts(channels)
    interval, ack, transition = timers
    with open(os.path.join(work, "twistd.err"), "wb") as errors:
        process = processes.start(
            TWISTD + ["-n", "--pidfile=", "--logfile", log, "spc", "--key-dir", keyDir,
                      "--ports", ",".join(map(str, ports)),
                      "--inbox", os.path.join(work, "inbox"), "--control-socket", "none",
                      "--rotate-interval", interval, "--ack-timeout", ack,
                      "--transition", transition],
            env=spcEnvironment(), stdin=subprocess.DEVNULL, stdout=errors, stderr=errors,
        )
    waitUntil(lambda: fileContains(log, " serving "), process, "the daemon")
    return process, ports, hostKey, log


def sleep(reactor, seconds: float) -> defer.Deferred:
    return task.deferLater(reactor, seconds, lambda: None)


@defer.inlineCallbacks
def measure(reactor, options, rate: float, work: str, processes: Processes, identity):
    """
    One row of the table.
    """
    size = (
        options.unlimited_size if not rate
        else int(rate * MB * options.channels * options.seconds) // (1 << 20) << 20
    )
    path = os.path.join(work, "payload.bin")
    makeRandomFile(path, size)
    process, ports, hostKey, log = startDaemon(
        work, processes, options.channels, options.timers.split(","), identity.fingerprint
    )
    proxy = FaultProxy(reactor, ports)
    for channel in range(len(ports)):
        if rate:
            proxy.limit(channel, rate * MB)
    proxy.start()
    endpoints = [TCP4ClientEndpoint(reactor, "127.0.0.1", port) for port in proxy.ports]
    session = yield connect(reactor, endpoints, identity, PinnedKey(hostKey),
                            f"127.0.0.1:{proxy.ports[0]}")
    latencies: list[float] = []
    pending: list[defer.Deferred] = []

    def sendOne() -> None:
        started = time.monotonic()
        sent = session.sendMessage(MESSAGE)
        sent.addCallback(lambda _: latencies.append(time.monotonic() - started))
        pending.append(sent)

    pinger = task.LoopingCall(sendOne)
    pinger.clock = reactor
    started = time.monotonic()
    sent = session.sendFile(path)
    pinger.start(options.message_every, now=False)
    yield sent
    elapsed = time.monotonic() - started
    pinger.stop()
    yield defer.DeferredList(pending)
    yield sleep(reactor, 0.5)
    with open(log, errors="replace") as f:
        text = f.read()
    if options.verbose:
        print(text)
    yield session.close()
    yield proxy.stop()
    processes.stop(process)
    return {
        "rate": "unlimited" if not rate else f"{rate:g} MB/s",
        "size": size,
        "seconds": elapsed,
        "throughput": size / elapsed / MB,
        "committed": len(COMMITTED.findall(text)),
        "rolledBack": len(ROLLED_BACK.findall(text)),
        "intact": len(OPENED.findall(text)) == 1 and not DEAD.findall(text),
        "median": median(latencies) if latencies else float("nan"),
        "max": max(latencies) if latencies else float("nan"),
        "messages": len(latencies),
    }


def printTable(rows: list[dict], options) -> None:
    print(f"\n{options.channels} channels, timers (interval, ACK timeout, transition) "
          f"{options.timers} s, a message every {options.message_every} s")
    print(f"{'per channel':>12} {'file':>8} {'seconds':>8} {'MB/s':>7} {'committed':>9} "
          f"{'rolled back':>11} {'session':>8} {'msgs':>5} {'median ms':>9} {'max ms':>8}")
    for row in rows:
        print(f"{row['rate']:>12} {row['size'] >> 20:>5}MiB {row['seconds']:>8.1f} "
              f"{row['throughput']:>7.2f} {row['committed']:>9} {row['rolledBack']:>11} "
              f"{'kept' if row['intact'] else 'LOST':>8} {row['messages']:>5} "
              f"{row['median'] * 1000:>9.0f} {row['max'] * 1000:>8.0f}", flush=True)


@defer.inlineCallbacks
def run(reactor, options, work: str, processes: Processes):
    identity = generateIdentity()
    rows = []
    for rate in [float(text) for text in options.rates.split(",")]:
        directory = tempfile.mkdtemp(dir=work)
        row = yield measure(reactor, options, rate, directory, processes, identity)
        rows.append(row)
        printTable(rows[-1:], options)
        shutil.rmtree(directory, ignore_errors=True)
    printTable(rows, options)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="0.25,0.5,1,4,0",
                        help="MB/s per channel, comma-separated; 0 for no limit")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="about how long each limited transfer takes")
    parser.add_argument("--unlimited-size", type=parseSize, default=parseSize("256M"))
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--timers", default="8,3,2",
                        help="--rotate-interval, --ack-timeout, --transition of the daemon")
    parser.add_argument("--message-every", type=float, default=1.0)
    parser.add_argument("--verbose", action="store_true", help="print each daemon's log")
    options = parser.parse_args()
    reactInScratch(run, options, "spc-slowlink-")


if __name__ == "__main__":
    main()
