# -*- test-case-name: tests.unit.test_logs,tests.integration.test_logs -*-
"""
The daemon's C{--log-format json}: the same events twistd would write as
text lines, written as one JSON object per line to the same place (stdout
under C{-n}, C{--logfile}, or C{twistd.log}), so a log collector reads
every named field without parsing sentences.

twistd picks its log observer after the plugin made its service: an
explicit C{--logger} first, then an observer the application carries,
then its own text file observer.  The daemon's service gives the
application the JSON observer when it is added to it, so C{--logger}
still wins and C{--logfile} keeps its meaning.
"""

from __future__ import annotations

import signal
import sys
from typing import IO, Any, Callable, Mapping

from twisted.logger import ILogObserver, LogEvent, formatEvent, jsonFileLogObserver
from twisted.python.logfile import LogFile
from zope.interface import provider

__all__ = ["FORMATS", "checkFormat", "installJSONObserver", "jsonObserver", "logFileFor"]

FORMATS = ("text", "json")


def checkFormat(name: str, twistdOptions: Mapping[str, Any]) -> str | None:
    """
    @return: why C{--log-format name} cannot be used with these twistd
        options, or L{None} when it can.
    """
    if name not in FORMATS:
        return f"--log-format: {name!r} is not one of {', '.join(FORMATS)}"
    if name == "json" and twistdOptions.get("syslog"):
        return "--log-format json writes to a file or stdout, not to syslog"
    if name == "json" and twistdOptions.get("logfile") == "-" and not twistdOptions.get(
        "nodaemon", True
    ):
        return "a daemon cannot log to stdout: give --logfile FILE or -n"
    return None


def logFileFor(twistdOptions: Mapping[str, Any]) -> IO[str]:
    """
    The file twistd itself would log to with these options.
    """
    name = twistdOptions.get("logfile") or ""
    if name == "-" or (not name and twistdOptions.get("nodaemon", True)):
        return sys.stdout
    return LogFile.fromFullPath(name or "twistd.log")


def jsonObserver(
    outFile: IO[str], nameOf: Callable[[str], str | None] = lambda fingerprint: None
) -> ILogObserver:
    """
    One JSON object per line, without the record separator character that
    RFC 7464 JSON text sequences put before each, and with the sentence the
    text log would show as C{log_text}, so a reader need not render
    C{log_format} itself.

    An event that names a C{peer} (an identity fingerprint) also carries
    its C{peer_name}, so a collector can select a sender's events by the
    name it knows: the name the event gave, or else C{nameOf(peer)}
    (L{None} for a peer without one).

    @param nameOf: the name of a peer in C{authorized_keys}, or L{None}.
    """
    write = jsonFileLogObserver(outFile, recordSeparator="")

    @provider(ILogObserver)
    def observe(event: LogEvent) -> None:
        extra: dict[str, Any] = {"log_text": formatEvent(event)}
        peer = event.get("peer")
        if isinstance(peer, str) and "peer_name" not in event:
            extra["peer_name"] = nameOf(peer)
        write({**event, **extra})

    return observe


def installJSONObserver(
    application,
    twistdOptions: Mapping[str, Any],
    reactor,
    nameOf: Callable[[str], str | None] = lambda fingerprint: None,
) -> None:
    """
    Give twistd's C{application} the JSON observer as its log observer;
    a log file is reopened on SIGUSR1, as twistd does for its own.

    @param nameOf: see L{jsonObserver}.
    """
    outFile = logFileFor(twistdOptions)
    if isinstance(outFile, LogFile) and hasattr(signal, "SIGUSR1"):
        if not signal.getsignal(signal.SIGUSR1):
            signal.signal(
                signal.SIGUSR1, lambda signum, frame: reactor.callFromThread(outFile.rotate)
            )
    application.setComponent(ILogObserver, jsonObserver(outFile, nameOf))
