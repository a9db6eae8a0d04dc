# -*- test-case-name: tests.integration.test_discard -*-
"""
Tests for C{spc discard} against a control socket on disk, over the real
reactor; L{tests.memory.test_unfinished} has the rest of the unfinished
files.
"""

from __future__ import annotations

import io
import os

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from spc.cli.command import Context
from spc.cli.discard import DiscardOptions
from spc.cli.main import main
from spc.files.store import FileStore
from spc.status.services import statusServices
from tests.files import shortTemporaryDirectory
from tests.memory.test_unfinished import PEER, TRANSFER, Receiver, daemonWith


class DiscardCommandTests(TestCase):
    """
    C{spc discard} against a control socket on disk.
    """

    @inlineCallbacks
    def test_removes(self):
        """
        Each id gets one line: what was removed on stdout, what was not and
        why on stderr; the exit code says whether all were removed.
        """
        store = FileStore(self.mktemp())
        receiver = Receiver(self, store)
        receiver.offer()
        receiver.data(0)
        receiver.incoming.close()
        key = store.key(PEER, TRANSFER)
        path = os.path.join(shortTemporaryDirectory(self), "control.sock")
        [service] = statusServices(reactor, daemonWith(store), controlSocket=path)
        service.privilegedStartService()
        self.addCleanup(service.stopService)
        options = DiscardOptions()
        options.parseOptions(["--socket", path, key[:10], "0123456789"])
        out, err = io.StringIO(), io.StringIO()
        code = yield options.runWithReactor(reactor, Context(out, err, {}))
        self.assertEqual(code, 1)
        self.assertEqual(
            out.getvalue(), f"Removed big2.bin from alice (16.0 KiB held), id {key}\n"
        )
        self.assertEqual(err.getvalue(), "spc: 0123456789: 0123456789 names no file\n")
        self.assertEqual(list(store.unfinished()), [])

    def test_usage(self) -> None:
        """
        Without an id, C{spc discard} is a usage error.
        """
        err = io.StringIO()
        self.assertEqual(main(["discard"], io.StringIO(), err, environ={}), 2)
        self.assertIn("name the unfinished files to remove by their ids", err.getvalue())
