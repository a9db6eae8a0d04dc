"""
What the benchmarks share: the commands they start, free ports, random
payload files, and what a process costs, read from C{/proc} (Linux only).

A process's cost is measured from outside it, so the measured programs
need no cooperation: CPU time from C{/proc/PID/stat} (its own and that of
the children it waited for), peak memory from C{VmHWM} in
C{/proc/PID/status}, which writing C{5} to C{/proc/PID/clear_refs}
resets, so a long-running daemon's peak can be measured run by run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPC = [sys.executable, "-c", "from spc.cli.main import run; run()"]
TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def spcEnvironment() -> dict[str, str]:
    """
    The environment of the processes a benchmark starts: this checkout's
    C{spc} comes first on their path, whatever is installed.
    """
    return dict(os.environ, PYTHONPATH=ROOT)


def spcKeygen(keyDir: str) -> str:
    """
    Make an identity in C{keyDir} with C{spc keygen}.

    @return: its fingerprint, from C{spc fingerprint}.
    """
    env = spcEnvironment()
    subprocess.run(SPC + ["keygen", "--key-dir", keyDir], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return subprocess.run(SPC + ["fingerprint", "--key-dir", keyDir], env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


def parseSize(text: str) -> int:
    """
    @param text: bytes, optionally with a suffix K, M or G (powers of 1024).
    """
    suffix = text[-1:].upper()
    return int(text[:-1]) * _UNITS[suffix] if suffix in _UNITS else int(text)


def freePorts(count: int) -> list[int]:
    """
    Ports nothing listens on right now, on 127.0.0.1.
    """
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def makeRandomFile(path: str, size: int) -> str:
    """
    Write C{size} random bytes (random 1 MiB blocks, each used once) to
    C{path}.

    @return: the hexadecimal SHA-256 of what was written.
    """
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, 1 << 20))
            f.write(block)
            digest.update(block)
            left -= len(block)
    return digest.hexdigest()


def median(values: list[float]) -> float:
    """
    The median, or NaN for no values, so a table can show a gap.
    """
    return statistics.median(values) if values else float("nan")


def cpuSeconds(pid: int) -> float:
    """
    CPU seconds (user and system) of a process and of the children it
    has waited for: C{utime}, C{stime}, C{cutime} and C{cstime} of
    C{/proc/PID/stat}.
    """
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / CLOCK_TICKS


def peakRSS(pid: int) -> int:
    """
    Bytes of the process's peak resident set (C{VmHWM}), 0 once it is gone.
    """
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def resetPeakRSS(pid: int) -> None:
    """
    Make the process's current resident set its peak, so the next
    L{peakRSS} covers only what happens from now on.
    """
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def children(pid: int) -> list[int]:
    """
    The process's direct children (C{/proc/PID/task/*/children}).
    """
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found.extend(int(child) for child in f.read().split())
    except (FileNotFoundError, ProcessLookupError):
        pass
    return found


def processTree(pid: int) -> list[int]:
    """
    The process and all its descendants alive now.
    """
    tree, waiting = [], [pid]
    while waiting:
        current = waiting.pop()
        tree.append(current)
        waiting.extend(children(current))
    return tree


def waitForChildrenGone(pid: int, timeout: float) -> None:
    """
    Wait until a process has no children left, so their CPU time has
    reached its C{cutime} and C{cstime}.
    """
    deadline = time.monotonic() + timeout
    while children(pid) and time.monotonic() < deadline:
        time.sleep(0.02)


def listening(port: int) -> bool:
    """
    Whether some process listens on TCP C{port} (IPv4), from
    C{/proc/net/tcp}, without connecting to it: a connection would be a
    client to a server that serves only one.
    """
    wanted = f":{port:04X}"
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, state = fields[1], fields[3]
            if local.endswith(wanted) and state == "0A":
                return True
    return False


def waitUntil(ready, process: subprocess.Popen, what: str, timeout: float = 30.0) -> None:
    """
    Poll C{ready()} until it is true.

    @raise RuntimeError: if C{process} exits first or C{timeout} passes.
    """
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {timeout:.0f} s")
        time.sleep(0.02)


def fileContains(path: str, text: str) -> bool:
    """
    Whether a (log) file exists and contains C{text}.
    """
    try:
        with open(path, errors="replace") as f:
            return text in f.read()
    except FileNotFoundError:
        return False


def waitForExit(process: subprocess.Popen, timeout: float):
    """
    Reap a child and get what it cost.

    @return: C{(exit code, resource usage)}; the usage includes the
        children it waited for.
    @raise TimeoutError: if it is still running after C{timeout} seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return process.returncode, usage
        if time.monotonic() > deadline:
            raise TimeoutError(f"process {process.pid} still running after {timeout:.0f} s")
        time.sleep(0.01)


class PeakSampler:
    """
    Samples the peak resident set of process trees while a run lasts,
    since processes that exit (an sshd connection, a sender's helpers)
    cannot be asked afterwards.

    @ivar peaks: per watched tree, the largest C{VmHWM} seen of each of its
        processes, by pid.
    """

    def __init__(self, interval: float = 0.05) -> None:
        self._interval = interval
        self._roots: dict[str, int] = {}
        self.peaks: dict[str, dict[int, int]] = {}
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def watch(self, name: str, pid: int) -> None:
        """
        Sample the tree of process C{pid} under C{name} from now on.
        """
        self.peaks[name] = {}
        self._roots[name] = pid
        if not self._thread.is_alive():
            self._thread.start()

    def sample(self) -> None:
        """
        Record every watched process's peak now.
        """
        for name, root in list(self._roots.items()):
            seen = self.peaks[name]
            for pid in processTree(root):
                seen[pid] = max(seen.get(pid, 0), peakRSS(pid))

    def stop(self) -> None:
        """
        Take a last sample and stop sampling.
        """
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()
        self.sample()

    def total(self, name: str) -> int:
        """
        The sum of the peaks of the processes of tree C{name}: they run
        side by side, so this is what that side needed.
        """
        return sum(self.peaks.get(name, {}).values())

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            self.sample()


class Processes:
    """
    The processes a benchmark started, each in its own process group, so
    that stopping one also stops what it started and a Ctrl-C in the
    terminal reaches only the benchmark, which then stops them in order.
    """

    def __init__(self) -> None:
        self._started: list[subprocess.Popen] = []

    def start(self, argv: list[str], **options) -> subprocess.Popen:
        """
        Start a process (C{options} as for C{subprocess.Popen}).
        """
        process = subprocess.Popen(argv, start_new_session=True, **options)
        self._started.append(process)
        return process

    def stop(self, process: subprocess.Popen, timeout: float = 10.0) -> None:
        """
        Stop a process and its group: SIGTERM, then SIGKILL after
        C{timeout} seconds.
        """
        if process.returncode is None and process.poll() is None:
            self._signal(process, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(process, signal.SIGKILL)
                process.wait()
        if process in self._started:
            self._started.remove(process)

    def stopAll(self) -> None:
        """
        Stop every process still running, the last started first.
        """
        for process in reversed(list(self._started)):
            self.stop(process)

    @staticmethod
    def _signal(process: subprocess.Popen, signum: int) -> None:
        try:
            os.killpg(process.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def exitOnTerminate() -> None:
    """
    Turn SIGTERM into C{SystemExit}, so a benchmark's C{finally} clean-up
    runs when it is terminated as when it is interrupted.
    """
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def reactInScratch(run, options, prefix: str) -> None:
    """
    Run C{run(reactor, options, work, processes)} under C{task.react} in a
    scratch directory, and whatever ends it (the end, Ctrl-C, SIGTERM),
    stop every process it started and remove the directory.
    """
    from twisted.internet import task

    exitOnTerminate()
    processes = Processes()
    work = tempfile.mkdtemp(prefix=prefix)
    try:
        task.react(run, [options, work, processes])
    finally:
        processes.stopAll()
        shutil.rmtree(work, ignore_errors=True)
