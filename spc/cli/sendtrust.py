# -*- test-case-name: tests.unit.test_sendtrust -*-
"""
What C{spc send} says about trust, beyond the checks of
L{spc.keys.trust}: that it recorded a key or a TLS pin in C{known_hosts},
which the user should check with the server's operator, and, when a
recorded key changed, the command that forgets it.
"""

from __future__ import annotations

import os
import shlex
from typing import Sequence, TextIO

from spc.errors import ServerKeyChanged, ServerKeyMismatch, TLSFailed
from spc.keys.trust import KNOWN_HOSTS_NAME, KnownHosts, ServerTrust, TrustDecision
from spc.transport.tls import parseClientDescription

__all__ = ["ReportingTrust", "recordedTLSPins"]


def forgetCommand(hostPort: str, keyDir: str | None) -> str:
    """
    The command that removes C{hostPort} from C{known_hosts}, with the
    C{--key-dir} the user gave, quoted for a shell.
    """
    where = f" --key-dir {shlex.quote(keyDir)}" if keyDir else ""
    return f"spc forget-host{where} {shlex.quote(hostPort)}"


def recordedTLSPins(keyDir: str, hostPort: str, endpoints: Sequence[str]) -> list[str]:
    """
    The TLS pin C{known_hosts} records for the server, as the pins of its
    C{tls:} channels, when none of them names C{trustRoots=}: a recorded
    pin then stands in for C{--tls-fingerprint}.
    """
    tlsChannels = [text for text in endpoints if text[:4].lower() == "tls:"]
    if not tlsChannels or any(
        parseClientDescription(f"tls:{text[4:]}").trustRoots for text in tlsChannels
    ):
        return []
    pin = KnownHosts.fromFile(os.path.join(keyDir, KNOWN_HOSTS_NAME)).tlsPin(hostPort)
    return [pin] if pin else []


class ReportingTrust:
    """
    Checks the server's key with C{trust}, and tells the user when that
    recorded it (trust on first use, or a pin given with C{--accept-new}),
    or refused a changed key that C{spc forget-host} would forget.

    @ivar _recordTLS: a TLS pin to record once the first channel passed
        it, or L{None}.
    """

    def __init__(
        self,
        trust: ServerTrust,
        keyDir: str,
        stderr: TextIO,
        keyDirOption: str | None = None,
        recordTLS: str | None = None,
    ) -> None:
        """
        @param keyDirOption: C{--key-dir} as given, for the commands shown.
        @param recordTLS: the C{--tls-fingerprint} to record, with
            C{--accept-new}.
        """
        self._trust = trust
        self._path = os.path.join(keyDir, KNOWN_HOSTS_NAME)
        self._stderr = stderr
        self._keyDirOption = keyDirOption
        self._recordTLS = recordTLS

    def check(self, hostPort: str, fingerprint: str) -> TrustDecision:
        """
        See L{spc.keys.trust.ServerTrust.check}.  A channel's F1 arrives
        only after its TLS handshake passed, so a TLS pin is recorded here,
        at the first check.
        """
        try:
            decision = self._trust.check(hostPort, fingerprint)
        except ServerKeyChanged as error:
            if isinstance(error, ServerKeyMismatch):
                raise
            changed = ServerKeyChanged(*error.args)
            changed.advice = (
                "if the server was given a new key, first run: "
                + forgetCommand(hostPort, self._keyDirOption)
            )
            raise changed from None
        if decision is TrustDecision.ADDED:
            self._say(f"{hostPort} {fingerprint}")
        pin, self._recordTLS = self._recordTLS, None
        if pin is not None:
            try:
                recorded = KnownHosts.fromFile(self._path).recordTLSPin(hostPort, pin)
            except TLSFailed as error:
                command = forgetCommand(hostPort, self._keyDirOption)
                raise TLSFailed(f"{error.args[0]}; to record the new one, first run: {command}")
            if recorded is TrustDecision.ADDED:
                self._say(f"tls:{hostPort} {pin}")
        return decision

    def _say(self, line: str) -> None:
        self._stderr.write(
            f"spc: added {line} to {self._path}; check it with the server's operator\n"
        )
