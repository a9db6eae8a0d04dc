# -*- test-case-name: tests.integration.test_discard -*-
"""
C{spc discard ID...}: remove unfinished files a running daemon holds, by
the ids C{spc status} lists, before their day is up.

With C{spc invite}, it is one of the two C{spc} commands that change a
daemon, through a write command of the control socket
(L{spc.status.unfinished.DiscardUnfinished}), which answers only the
daemon's own user and root.
"""

from __future__ import annotations

from twisted.internet.defer import inlineCallbacks
from twisted.python import usage

from spc.cli.command import EXIT_FAILURE, EXIT_OK, Context
from spc.cli.status import STATUS_TIMEOUT, ControlCommand
from spc.cli.units import formatSize
from spc.errors import DiscardRefused
from spc.status.unfinished import MIN_ID, discardUnfinished

__all__ = ["DiscardOptions"]


class DiscardOptions(ControlCommand):
    """
    C{spc discard}: delete unfinished files of a running daemon.
    """

    synopsis = "[--key-dir DIR | --socket PATH] ID..."
    longdesc = (
        "Delete unfinished files the daemon holds (spc status lists them, "
        f"with their ids; {MIN_ID} or more of an id's first hex digits name "
        "it). A file a session is receiving stops, and its sender is told "
        "that the daemon's operator removed it."
    )

    def parseArgs(self, *ids: str) -> None:
        if not ids:
            raise usage.UsageError("name the unfinished files to remove by their ids")
        self["ids"] = ids

    @inlineCallbacks
    def runWithReactor(self, reactor, context: Context):
        """
        Remove each file in turn, one line for each, on stdout when it was
        removed and on stderr when it was not.

        @return: 0 when every file was removed, 1 otherwise.
        """
        code = EXIT_OK
        for id in self["ids"]:
            removing = discardUnfinished(self.endpoint(reactor, context), id)
            removing.addTimeout(STATUS_TIMEOUT, reactor)
            try:
                removed = yield removing.addErrback(self.failed, context)
            except DiscardRefused as error:
                context.stderr.write(f"spc: {id}: {error.args[0]}\n")
                code = EXIT_FAILURE
                continue
            owner = removed["ownerName"] or removed["owner"] or "an unknown sender"
            context.stdout.write(
                f"Removed {removed['name']} from {owner} ({formatSize(removed['held'])} held), "
                f"id {removed['id']}\n"
            )
        return code
