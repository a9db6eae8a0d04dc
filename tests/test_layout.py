"""
The shape of the package: an application imports what it needs from
C{spc} without pulling in the rest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

import spc

ROOT = FilePath(spc.__file__).parent().parent()

PUBLIC = [
    "connect", "ServerService", "Session", "IMessageReceiver", "IFileReceiver", "FileStore",
    "Identity", "generateIdentity", "loadIdentity", "PinnedKey", "KnownHosts",
    "AuthorizedKeys", "SPCError", "TransferFailed", "__version__",
]
"""
Names the README promises an application can import from C{spc}.
"""


class PublicAPITests(SynchronousTestCase):
    """
    C{from spc import ...} gives an application what it needs, each name
    imported from its module only when asked for.
    """

    def test_names(self) -> None:
        """
        The README's names are in C{spc.__all__} and C{dir(spc)}, and each
        is the object its defining module holds.
        """
        for name in PUBLIC:
            self.assertIn(name, spc.__all__)
            self.assertIn(name, dir(spc))
        for name in spc.__all__:
            value = getattr(spc, name)
            if name != "__version__":
                module = sys.modules[value.__module__]
                self.assertIs(getattr(module, name), value)

    def test_unknownName(self) -> None:
        """
        Any other name is an L{AttributeError}, as for a plain module.
        """
        self.assertRaises(AttributeError, getattr, spc, "Nonesuch")
        self.assertFalse(hasattr(spc, "_nonesuch"))

    def test_lazy(self) -> None:
        """
        In a fresh interpreter, C{import spc.errors} imports nothing else
        of spc and not Twisted's reactor; C{from spc import connect} then
        imports the client.
        """
        script = (
            "import json, sys\n"
            "import spc.errors\n"
            "before = sorted(m for m in sys.modules if m.split('.')[0] == 'spc')\n"
            "reactor = 'twisted.internet.reactor' in sys.modules\n"
            "from spc import connect\n"
            "print(json.dumps([before, reactor, 'spc.client.connect' in sys.modules]))\n"
        )
        directory = self.mktemp()
        os.makedirs(directory)
        result = subprocess.run(
            [sys.executable, "-c", script],
            env=dict(os.environ, PYTHONPATH=ROOT.path),
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(json.loads(result.stdout), [["spc", "spc.errors"], False, True])
