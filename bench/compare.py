"""
spc head to head with its peers on this machine, one command:

    python bench/compare.py --size 1G --rounds 3
    python bench/compare.py --size 256M --only spc-gcm,scp,baseline

One random file goes over 127.0.0.1 through every peer, in interleaved
rounds (each peer once per round) so that the machine's noise hits all
alike.  The peers are spc with each suite map (by default the default
map, 4 x ChaCha20 and 4 x AES-GCM; C{--spc-map NAME=SUITES} replaces
them), scp with aes256-gcm through a throwaway sshd with its own keys,
openssl s_server/s_client with TLS 1.3 and AES-256-GCM, and
C{bench/baseline.py}, the same AEAD over the same number of connections
in bare Twisted.  A peer whose programs are missing is skipped, saying
how to install them.

Each run is timed as the wall clock of the sending command with the
receiver already up, and its output's SHA-256 is checked.  CPU seconds
per GiB and the peak resident memory are reported for each side:

  - the sender is a child of this script: its CPU is what C{wait4}
    reports (with its own children, such as scp's ssh);
  - a receiver serving every run (the spc daemons, sshd) has its CPU read
    from C{/proc/PID/stat} before and after the run, with the children it
    reaped (sshd's connection processes, where sshd's work happens), and
    its peak RSS reset through C{/proc/PID/clear_refs} before the run;
  - a receiver started for the run (openssl s_server, the baseline)
    counts from when it listens to when it exits;
  - the peak RSS of a side is the sum of the peaks (C{VmHWM}) of its
    processes, sampled every 50 ms while the run lasts (C{ru_maxrss}
    would count the memory of this script, which the processes were
    forked from).

It needs Linux (C{/proc}); it is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass

from common import (
    ROOT,
    PeakSampler,
    Processes,
    exitOnTerminate,
    makeRandomFile,
    median,
    parseSize,
    spcEnvironment,
    waitForExit,
)
from peers import BaselinePeer, OpensslPeer, Peer, ScpPeer, SpcKeys, SpcPeer, Unavailable

sys.path.insert(0, ROOT)  # this checkout's spc, as in the processes started
from spc.cli.demo import fileDigest  # noqa: E402

GIB = 1 << 30
MIB = 1 << 20
RECEIVER_GRACE = 60.0
"""
Seconds a receiver may take, once the sender exited, to finish its run.
"""


@dataclass
class Measurement:
    """
    One run of one peer.

    @ivar seconds: wall clock of the sending command.
    @ivar problem: why the run failed (exit status, wrong digest), or
        L{None}.
    """

    peer: str
    round: int
    seconds: float
    senderCPU: float
    receiverCPU: float
    senderRSS: int
    receiverRSS: int
    problem: str | None

    def rate(self, size: int) -> float:
        """MB/s (10**6 bytes a second), as the issue reports it."""
        return size / self.seconds / 1e6


def runOnce(peer: Peer, roundNumber: int, payload: str, expected: str,
            timeout: float) -> Measurement:
    """
    Send the payload once through C{peer} and measure both sides.
    """
    receiver = peer.receiver()
    argv, stdinPath = peer.senderCommand(payload)
    sampler = PeakSampler()
    receiver.begin()
    sampler.watch("receiver", receiver.pid)
    with open(stdinPath or os.devnull, "rb") as stdin:
        started = time.monotonic()
        sender = peer.start(argv, "sender.log", stdin=stdin, env=spcEnvironment())
        sampler.watch("sender", sender.pid)
        try:
            code, usage = waitForExit(sender, timeout)
            senderCPU = usage.ru_utime + usage.ru_stime
        except TimeoutError:
            peer.stop(sender)
            code, senderCPU = f"none: stopped after {timeout:g} s", float("nan")
        seconds = time.monotonic() - started
    receiverCPU, problem = receiver.finish(RECEIVER_GRACE)
    sampler.stop()
    if code:
        log = os.path.join(peer.directory, "sender.log")
        problem = f"sender exit status {code}: {lastLine(log)}"
    elif problem is None and fileDigest(peer.output) != expected:
        problem = "the output's SHA-256 differs from the input's"
    if os.path.exists(peer.output):
        os.remove(peer.output)
    return Measurement(
        peer.name, roundNumber, seconds, senderCPU, receiverCPU,
        sampler.total("sender"), sampler.total("receiver"), problem,
    )


def lastLine(path: str) -> str:
    """
    The last line of a log that is not empty, for a one-line report.
    """
    with open(path, errors="replace") as f:
        lines = [line.strip() for line in f if line.strip()]
    return lines[-1] if lines else "(nothing logged)"


def formatRun(run: Measurement, size: int) -> str:
    """
    One run as one line.
    """
    gib = size / GIB
    status = "sha256 OK" if run.problem is None else f"FAILED: {run.problem}"
    return (
        f"round {run.round}  {run.peer:<12} {run.seconds:7.2f} s {run.rate(size):7.1f} MB/s  "
        f"CPU s/GiB send {run.senderCPU / gib:5.2f} recv {run.receiverCPU / gib:5.2f}  "
        f"peak RSS MiB send {run.senderRSS / MIB:5.0f} recv {run.receiverRSS / MIB:5.0f}  {status}"
    )


def formatTable(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """
    Columns as wide as their widest cell; the first left-aligned, the
    others right-aligned.
    """
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.rjust(width) if i else cell.ljust(width)
                  for i, (cell, width) in enumerate(zip(row, widths)))
        for row in [header, *rows]
    )


def formatRatios(runs: list[Measurement], size: int) -> str:
    """
    One round's ratios: each row's MB/s divided by each column's.
    """
    good = [run for run in runs if run.problem is None]
    if not good:
        return "no run succeeded"
    return formatTable(
        ("", *(run.peer for run in good)),
        [(row.peer, *(f"{row.rate(size) / column.rate(size):.2f}" for column in good))
         for row in good],
    )


def ratioTo(runs: list[Measurement], peer: str, reference: str, size: int) -> float:
    """
    The median over rounds of C{peer}'s MB/s divided by C{reference}'s in
    the same round: runs next to each other saw the same machine.
    """
    byRound: dict[int, dict[str, Measurement]] = {}
    for run in runs:
        if run.problem is None:
            byRound.setdefault(run.round, {})[run.peer] = run
    return median([
        pair[peer].rate(size) / pair[reference].rate(size)
        for pair in byRound.values() if peer in pair and reference in pair
    ])


def formatSummary(peers: list[str], runs: list[Measurement], size: int) -> str:
    """
    Per peer, the medians of its good runs.
    """
    gib = size / GIB
    rows = []
    for name in peers:
        mine = [run for run in runs if run.peer == name and run.problem is None]
        rows.append((
            name,
            f"{len(mine)}/{sum(run.peer == name for run in runs)}",
            f"{median([run.rate(size) for run in mine]):.1f}",
            f"{ratioTo(runs, name, 'scp', size):.2f}",
            f"{ratioTo(runs, name, 'baseline', size):.2f}",
            f"{median([run.senderCPU / gib for run in mine]):.2f}",
            f"{median([run.receiverCPU / gib for run in mine]):.2f}",
            f"{median([run.senderRSS / MIB for run in mine]):.0f}",
            f"{median([run.receiverRSS / MIB for run in mine]):.0f}",
        ))
    return formatTable(
        ("peer", "good runs", "MB/s", "x scp", "x baseline", "CPU s/GiB send", "CPU recv",
         "peak RSS MiB send", "RSS recv"),
        rows,
    )


def describeMachine() -> str:
    """
    When and where the figures were measured, and how busy the machine was.
    """
    with open("/proc/cpuinfo") as f:
        model = next((line.split(":", 1)[1].strip() for line in f
                      if line.startswith("model name")), platform.machine())
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    return (f"{time.strftime('%Y-%m-%d %H:%M %Z')}, {model}, {os.cpu_count()} cores, "
            f"Linux {platform.release()}, Python {platform.python_version()}, load {load}")


def makePeers(options) -> list[Peer]:
    """
    The peers C{--only} asks for (all by default), spc first.
    """
    maps = options.spc_map or [
        ("spc-default", None),
        ("spc-chacha", ",".join(["chacha20"] * options.channels)),
        ("spc-gcm", ",".join(["aes-256-gcm"] * options.channels)),
    ]
    keys = None
    peers: list[Peer] = []
    wanted = options.only.split(",") if options.only else None
    for name, suites in maps:
        if wanted is None or name in wanted:
            keys = keys or SpcKeys(options.work)
            peers.append(SpcPeer(name, suites, options.channels, keys, options.fragment_size))
    for peer in (ScpPeer(), OpensslPeer(), BaselinePeer(options.channels)):
        if wanted is None or peer.name in wanted:
            peers.append(peer)
    return peers


def parseMap(text: str) -> tuple[str, str]:
    """
    C{--spc-map NAME=SUITES}.
    """
    name, _, suites = text.partition("=")
    if not (name and suites):
        raise argparse.ArgumentTypeError("give NAME=SUITES, e.g. spc-cbc=aes-256-cbc,aes-256-cbc")
    return name, suites


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Peers: spc-default, spc-chacha, spc-gcm (or the --spc-map names), scp, "
               "openssl, baseline.")
    parser.add_argument("--size", default="1G", help="bytes of the file (K, M, G)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", help="comma-separated peers to run, e.g. spc-gcm,scp")
    parser.add_argument("--channels", type=int, default=4,
                        help="channels of the default spc maps and baseline connections")
    parser.add_argument("--spc-map", action="append", type=parseMap, metavar="NAME=SUITES",
                        help="an spc peer with this suite map (repeatable); replaces the "
                             "default three")
    parser.add_argument("--fragment-size", help="the daemons' --fragment-size")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between runs")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds a run may take")
    options = parser.parse_args()
    size = parseSize(options.size)
    exitOnTerminate()
    processes = Processes()
    options.work = tempfile.mkdtemp(prefix="spc-compare-")
    try:
        print(describeMachine(), flush=True)
        payload = os.path.join(options.work, "payload.bin")
        expected = makeRandomFile(payload, size)
        peers = []
        for peer in makePeers(options):
            try:
                peer.setUp(options.work, processes)
                peers.append(peer)
            except Unavailable as reason:
                print(f"skipping {peer.name}: {reason}", flush=True)
        print(f"{size} bytes, {options.rounds} rounds: {', '.join(p.name for p in peers)}\n",
              flush=True)
        runs: list[Measurement] = []
        for roundNumber in range(1, options.rounds + 1):
            thisRound = []
            for peer in peers:
                time.sleep(options.pause)
                run = runOnce(peer, roundNumber, payload, expected, options.timeout)
                print(formatRun(run, size), flush=True)
                thisRound.append(run)
            runs.extend(thisRound)
            print(f"\nround {roundNumber}: MB/s of each row divided by each column's\n"
                  f"{formatRatios(thisRound, size)}\n", flush=True)
        print(f"medians of {options.rounds} rounds, {size} bytes; ratios are medians of "
              f"same-round ratios\n{formatSummary([p.name for p in peers], runs, size)}")
        print(describeMachine())
    except KeyboardInterrupt:
        sys.exit("\ninterrupted")
    finally:
        processes.stopAll()
        ScpPeer.removePrivsep()
        shutil.rmtree(options.work, ignore_errors=True)


if __name__ == "__main__":
    main()
