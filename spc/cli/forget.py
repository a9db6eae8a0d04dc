# -*- test-case-name: tests.unit.test_forget -*-
"""
C{spc forget-host HOST:PORT}: remove a server's lines from C{known_hosts},
its key and its TLS pin, as C{ssh-keygen -R} does for OpenSSH; the command
that C{spc send} shows when a recorded key changed.  It runs without the
reactor.
"""

from __future__ import annotations

import os

from twisted.python import usage

from spc.addresses import formatHostPort, parseHostPort
from spc.cli.command import EXIT_OK, Command, Context, KeyDirMixin
from spc.keys.trust import KNOWN_HOSTS_NAME, KnownHosts

__all__ = ["ForgetHostOptions"]


class ForgetHostOptions(KeyDirMixin, Command):
    """
    C{spc forget-host}: forget a server's key, so that the next
    C{spc send --accept-new} (or a pin) records the new one.
    """

    synopsis = "[--key-dir DIR] HOST:PORT"
    hostPort = ""

    def parseArgs(self, hostPort: str) -> None:
        try:
            self.hostPort = formatHostPort(*parseHostPort(hostPort))
        except ValueError as error:
            raise usage.UsageError(f"{hostPort!r}: {error}") from None

    def run(self, context: Context) -> int:
        path = os.path.join(self.keyDir(context), KNOWN_HOSTS_NAME)
        removed = KnownHosts.fromFile(path).forget(self.hostPort)
        if not removed:
            context.stdout.write(f"{self.hostPort} is not in {path}; nothing changed\n")
        for line in removed:
            context.stdout.write(f"Removed from {path}: {line}\n")
        return EXIT_OK
