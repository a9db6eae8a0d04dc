"""
The peers C{compare.py} runs: how each sets up its receiver, how its
sending command is spelled, and how the receiver's cost is read.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import sys

from common import (
    ROOT,
    SPC,
    TWISTD,
    Processes,
    cpuSeconds,
    fileContains,
    freePorts,
    listening,
    resetPeakRSS,
    spcEnvironment,
    spcKeygen,
    waitForChildrenGone,
    waitForExit,
    waitUntil,
)

SSHD = "/usr/sbin/sshd"
SSH_CIPHER = "aes256-gcm@openssh.com"
TLS_SUITE = "TLS_AES_256_GCM_SHA384"
PRIVSEP_DIRECTORY = "/run/sshd"


class Unavailable(Exception):
    """
    A peer cannot run on this machine; the message says how to fix it.
    """


class LongRunningReceiver:
    """
    A receiver that serves every run, started once: the spc daemon, sshd.
    A run costs it the growth of its CPU times, with those of the
    children it reaped meanwhile (sshd's connection processes); its peak
    RSS is reset when a run begins.

    @ivar pid: the receiver's process, root of the tree whose memory is
        sampled.
    """

    def __init__(self, process: subprocess.Popen) -> None:
        self.pid = process.pid
        self._cpu = 0.0

    def begin(self) -> None:
        """
        A run starts now.
        """
        resetPeakRSS(self.pid)
        self._cpu = cpuSeconds(self.pid)

    def finish(self, timeout: float) -> tuple[float, str | None]:
        """
        @return: CPU seconds the run cost, and what went wrong (nothing
            this receiver could tell).
        """
        waitForChildrenGone(self.pid, timeout)
        return cpuSeconds(self.pid) - self._cpu, None


class OneRunReceiver:
    """
    A receiver started for one run, which exits after it: openssl
    s_server with C{-naccept 1}, the baseline.  The run costs it its CPU
    from when it listens to when it exits.

    @ivar pid: the receiver's process.
    """

    def __init__(self, process: subprocess.Popen, what: str, processes: Processes) -> None:
        self.pid = process.pid
        self._process = process
        self._what = what
        self._processes = processes
        self._cpu = 0.0

    def begin(self) -> None:
        """
        A run starts now; what starting up cost is not counted.
        """
        self._cpu = cpuSeconds(self.pid)

    def finish(self, timeout: float) -> tuple[float, str | None]:
        """
        Wait for the receiver to exit, and stop it if it does not within
        C{timeout} seconds.

        @return: CPU seconds the run cost, and what went wrong: an exit
            status other than 0, or no exit.
        """
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            code, usage = waitForExit(self._process, timeout)
        except TimeoutError:
            self._processes.stop(self._process)
            return float("nan"), f"{self._what} still running {timeout:.0f} s after the sender"
        problem = f"{self._what} exited with status {code}" if code else None
        return usage.ru_utime + usage.ru_stime - self._cpu, problem


class Peer:
    """
    One way of moving the file; subclasses set up their receiver.

    @ivar name: the name in tables and in C{--only}.
    @ivar directory: the peer's own part of the work directory: keys,
        configuration, logs.
    @ivar output: where the receiver writes the file.
    """

    name = ""

    def setUp(self, work: str, processes: Processes) -> None:
        """
        Make the peer's directory, and its keys and long-running receiver
        if it has them.

        @raise Unavailable: if the peer cannot run here.
        """
        self.directory = os.path.join(work, self.name)
        os.makedirs(self.directory)
        self._processes = processes
        self.output = os.path.join(self.directory, "received.bin")

    def receiver(self):
        """
        @return: the receiver of the next run, listening.
        """
        raise NotImplementedError

    def senderCommand(self, payload: str) -> tuple[list[str], str | None]:
        """
        @return: the sending command, and the file its stdin reads (if any).
        """
        raise NotImplementedError

    def stop(self, process: subprocess.Popen) -> None:
        """
        Stop one of the peer's processes.
        """
        self._processes.stop(process)

    def start(self, argv: list[str], log: str, output: str | None = None,
              **options) -> subprocess.Popen:
        """
        Start one of the peer's processes, its stderr (and its stdout,
        unless C{output} is given) appended to the file C{log} in the
        peer's directory.
        """
        with open(os.path.join(self.directory, log), "ab") as errors, \
                open(output or os.devnull, "wb") as stdout:
            return self._processes.start(
                argv, stdout=errors if output is None else stdout, stderr=errors, **options
            )


class SpcPeer(Peer):
    """
    C{spc send} to a C{twistd -n spc} with one suite map.
    """

    def __init__(self, name: str, suites: str | None, channels: int, keys, fragmentSize) -> None:
        self.name = name
        self._suites = ["--suites", suites] if suites else []
        self._channels = len(suites.split(",")) if suites else channels
        self._keys = keys
        self._fragment = ["--fragment-size", fragmentSize] if fragmentSize else []

    def setUp(self, work: str, processes: Processes) -> None:
        super().setUp(work, processes)
        self._inbox = os.path.join(self.directory, "inbox")
        self._ports = ",".join(map(str, freePorts(self._channels)))
        log = os.path.join(self.directory, "daemon.log")
        daemon = self.start(
            TWISTD + ["-n", "--pidfile=", "--logfile", log, "spc", "--key-dir", self._keys.server,
                      "--ports", self._ports, "--inbox", self._inbox, "--control-socket", "none"]
            + self._suites + self._fragment,
            "twistd.err", env=spcEnvironment(), stdin=subprocess.DEVNULL,
        )
        waitUntil(lambda: fileContains(log, " serving "), daemon, f"{self.name} daemon")
        self._daemon = LongRunningReceiver(daemon)

    def receiver(self) -> LongRunningReceiver:
        return self._daemon

    def senderCommand(self, payload: str) -> tuple[list[str], str | None]:
        # A new modification time makes a new transfer: the daemon would
        # otherwise recognise the file it already stored.
        os.utime(payload)
        self.output = os.path.join(self._inbox, os.path.basename(payload))
        return SPC + [
            "send", "--key-dir", self._keys.client, "--server", "127.0.0.1",
            "--ports", self._ports, "--server-fingerprint", self._keys.serverFingerprint,
            "--no-progress", *self._suites, payload,
        ], None


class SpcKeys:
    """
    One server and one client identity, shared by every spc daemon, the
    client authorized.

    @ivar server: the daemons' key directory.
    @ivar client: the senders' key directory.
    @ivar serverFingerprint: what the senders pin.
    """

    def __init__(self, work: str) -> None:
        self.server = os.path.join(work, "spc-server-keys")
        self.client = os.path.join(work, "spc-client-keys")
        self.serverFingerprint = spcKeygen(self.server)
        with open(os.path.join(self.server, "authorized_keys"), "w") as f:
            f.write(f"{spcKeygen(self.client)} bench\n")


class ScpPeer(Peer):
    """
    scp with aes256-gcm through a throwaway sshd on a free 127.0.0.1 port,
    with its own host key, client key and configuration.
    """

    name = "scp"
    createdPrivsep = False

    def setUp(self, work: str, processes: Processes) -> None:
        missing = [p for p in (SSHD, "scp", "ssh-keygen") if not shutil.which(p)]
        if missing:
            raise Unavailable(
                f"{', '.join(missing)} not found; install OpenSSH, e.g. "
                "'sudo apt-get install openssh-server openssh-client' (Debian, Ubuntu) "
                "or 'sudo dnf install openssh-server openssh-clients' (Fedora)"
            )
        super().setUp(work, processes)
        if os.geteuid() == 0 and not os.path.isdir(PRIVSEP_DIRECTORY):
            # What the openssh-server service makes at start; sshd run by root needs it.
            os.mkdir(PRIVSEP_DIRECTORY, 0o755)
            ScpPeer.createdPrivsep = True
        hostKey, clientKey = (os.path.join(self.directory, n) for n in ("host_key", "client_key"))
        for key in (hostKey, clientKey):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench",
                            "-f", key], check=True)
        self._port = freePorts(1)[0]
        user = getpass.getuser()
        authorized = os.path.join(self.directory, "authorized_keys")
        shutil.copy(clientKey + ".pub", authorized)
        self._knownHosts = os.path.join(self.directory, "known_hosts")
        with open(hostKey + ".pub") as public, open(self._knownHosts, "w") as known:
            known.write(f"[127.0.0.1]:{self._port} {public.read()}")
        config = os.path.join(self.directory, "sshd_config")
        with open(config, "w") as f:
            f.write(
                f"ListenAddress 127.0.0.1:{self._port}\nHostKey {hostKey}\nPidFile none\n"
                f"AuthorizedKeysFile {authorized}\nAllowUsers {user}\n"
                "PermitRootLogin prohibit-password\nPubkeyAuthentication yes\n"
                "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
                f"StrictModes no\nCiphers {SSH_CIPHER}\nSubsystem sftp internal-sftp\n"
                "LogLevel ERROR\n"
            )
        checked = subprocess.run([SSHD, "-t", "-f", config], capture_output=True, text=True)
        if checked.returncode:
            raise Unavailable(f"sshd refuses its configuration: {checked.stderr.strip()}")
        sshd = self.start([SSHD, "-D", "-e", "-f", config], "sshd.log", stdin=subprocess.DEVNULL)
        waitUntil(lambda: listening(self._port), sshd, "sshd")
        self._sshd = LongRunningReceiver(sshd)
        self._clientKey = clientKey
        self._destination = f"{user}@127.0.0.1:{self.output}"

    def receiver(self) -> LongRunningReceiver:
        return self._sshd

    def senderCommand(self, payload: str) -> tuple[list[str], str | None]:
        return [
            "scp", "-q", "-B", "-F", "/dev/null", "-c", SSH_CIPHER, "-P", str(self._port),
            "-i", self._clientKey, "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={self._knownHosts}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes", payload, self._destination,
        ], None

    @classmethod
    def removePrivsep(cls) -> None:
        """
        Remove the privilege separation directory if this script made it.
        """
        if cls.createdPrivsep:
            os.rmdir(PRIVSEP_DIRECTORY)
            cls.createdPrivsep = False


class OpensslPeer(Peer):
    """
    openssl s_client piping the file to s_server, TLS 1.3 with AES-256-GCM
    and a throwaway certificate; s_server serves one connection per run.
    """

    name = "openssl"

    def setUp(self, work: str, processes: Processes) -> None:
        if not shutil.which("openssl"):
            raise Unavailable("openssl not found; install it, e.g. 'sudo apt-get install openssl'")
        super().setUp(work, processes)
        self._key = os.path.join(self.directory, "key.pem")
        self._certificate = os.path.join(self.directory, "cert.pem")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", self._key, "-out", self._certificate, "-days", "1",
             "-subj", "/CN=localhost"],
            check=True, capture_output=True,
        )

    def receiver(self) -> OneRunReceiver:
        self._port = freePorts(1)[0]
        # s_server ends the connection when its stdin ends: it stays open.
        server = self.start(
            ["openssl", "s_server", "-quiet", "-naccept", "1", "-tls1_3",
             "-ciphersuites", TLS_SUITE, "-accept", f"127.0.0.1:{self._port}",
             "-key", self._key, "-cert", self._certificate],
            "server.log", output=self.output, stdin=subprocess.PIPE,
        )
        waitUntil(lambda: listening(self._port), server, "openssl s_server")
        return OneRunReceiver(server, "openssl s_server", self._processes)

    def senderCommand(self, payload: str) -> tuple[list[str], str | None]:
        return [
            "openssl", "s_client", "-quiet", "-no_ign_eof", "-nocommands", "-tls1_3",
            "-ciphersuites", TLS_SUITE, "-CAfile", self._certificate, "-verify_return_error",
            "-connect", f"127.0.0.1:{self._port}",
        ], payload


class BaselinePeer(Peer):
    """
    C{bench/baseline.py}: AES-256-GCM frames over N connections in bare
    Twisted, the limit of a Twisted design on this machine.
    """

    name = "baseline"

    def __init__(self, channels: int) -> None:
        self._ports = []
        self._channels = channels
        self._key = os.urandom(32).hex()
        self._script = [sys.executable, os.path.join(ROOT, "bench", "baseline.py")]

    def receiver(self) -> OneRunReceiver:
        self._ports = freePorts(self._channels)
        receiver = self.start(
            self._script + ["receive", *self._arguments(), "--output", self.output],
            "receiver.log", stdin=subprocess.DEVNULL,
        )
        waitUntil(lambda: all(map(listening, self._ports)), receiver, "baseline receiver")
        return OneRunReceiver(receiver, "baseline receiver", self._processes)

    def senderCommand(self, payload: str) -> tuple[list[str], str | None]:
        return self._script + ["send", *self._arguments(), payload], None

    def _arguments(self) -> list[str]:
        return ["--ports", ",".join(map(str, self._ports)), "--key", self._key]
