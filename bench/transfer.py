"""
Benchmark: one file through a real daemon (`twistd -n spc`) and a real
`spc send`, each in its own process, on loopback.  Reports wall time,
throughput and the peak resident memory of each process.  Not a test.

    python bench/transfer.py --size 1G --fragment-size 64K --channels 4
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import tempfile
import time

from common import SPC, TWISTD, freePorts, makeRandomFile, parseSize, peakRSS, spcEnvironment
from spc.cli.demo import fileDigest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="256M")
    parser.add_argument("--fragment-size", default="64K")
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--suites", default=None)
    args = parser.parse_args()
    size = parseSize(args.size)
    env = spcEnvironment()
    with tempfile.TemporaryDirectory(prefix="spc-bench-") as work:
        server, client, inbox = (os.path.join(work, n) for n in ("server", "client", "inbox"))
        for keyDir in (server, client):
            subprocess.run(SPC + ["keygen", "--key-dir", keyDir], env=env, check=True,
                           stdout=subprocess.DEVNULL)
        fingerprint = lambda d: subprocess.run(  # noqa: E731
            SPC + ["fingerprint", "--key-dir", d], env=env, check=True,
            capture_output=True, text=True).stdout.strip()
        with open(os.path.join(server, "authorized_keys"), "w") as f:
            f.write(fingerprint(client) + "\n")
        source = os.path.join(work, "payload.bin")
        expected = makeRandomFile(source, size)
        ports = freePorts(args.channels)
        portList = ",".join(map(str, ports))
        suites = ["--suites", args.suites] if args.suites else []
        daemon = subprocess.Popen(
            TWISTD + ["-n", "--pidfile=", "spc", "--key-dir", server, "--ports", portList,
                      "--inbox", inbox, "--fragment-size", args.fragment_size] + suites,
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for line in daemon.stdout:
            if " serving " in line:
                break
        started = time.monotonic()
        sender = subprocess.run(
            SPC + ["send", "--key-dir", client, "--server", "127.0.0.1", "--ports", portList,
                   "--server-fingerprint", fingerprint(server), "--no-progress"] + suites + [source],
            env=env, capture_output=True, text=True,
        )
        elapsed = time.monotonic() - started
        senderRSS = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        daemonRSS = peakRSS(daemon.pid)
        daemon.send_signal(signal.SIGTERM)
        daemon.wait()
        ok = sender.returncode == 0 and fileDigest(os.path.join(inbox, "payload.bin")) == expected
        print(
            f"size={size} fragment={args.fragment_size} channels={args.channels} "
            f"time={elapsed:.2f}s rate={size / elapsed / 1e6:.0f}MB/s "
            f"sender_peak_rss={senderRSS / 2**20:.0f}MiB daemon_peak_rss={daemonRSS / 2**20:.0f}MiB "
            f"digest={'OK' if ok else 'FAIL ' + sender.stderr.strip()}"
        )


if __name__ == "__main__":
    main()
