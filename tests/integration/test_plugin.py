"""
Tests for the twistd plugin: the dropin C{twisted/plugins/spc_plugin.py}
holds data only, and the real C{twistd} lists and runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from twisted.internet.defer import Deferred
from twisted.internet.utils import getProcessOutputAndValue
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase, TestCase


SOURCE_ROOT = FilePath(__file__).parent().parent().parent()
"""
The source tree: the tests are not installed, so they always sit in it.
"""


def subprocessEnvironment() -> dict[str, str]:
    """
    An environment in which a child Python imports what this process
    imports: this process's C{sys.path}, made absolute, as C{PYTHONPATH}.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        os.path.abspath(entry) for entry in sys.path
    )
    return env


class DropinTests(SynchronousTestCase):
    """
    The dropin and the C{twisted/} directory of the source tree.
    """

    def test_noInitFiles(self) -> None:
        """
        C{twisted/} has no C{__init__.py} at any depth, and its only Python
        file is the dropin: an C{__init__.py} here would shadow Twisted
        itself, and the whole package C{twisted.plugins} is installed.
        """
        top = SOURCE_ROOT.child("twisted")
        pythonFiles = [
            path.segmentsFrom(SOURCE_ROOT)
            for path in top.walk(
                descend=lambda path: path.basename() != "__pycache__"
            )
            if path.splitext()[1] in {".py", ".pyc", ".pyi"}
            and path.parent().basename() != "__pycache__"
        ]
        self.assertEqual(pythonFiles, [["twisted", "plugins", "spc_plugin.py"]])

    def test_dataOnly(self) -> None:
        """
        Importing the dropin defines one L{ServiceMaker} and nothing else;
        it imports neither L{spc.tap} nor anything else of spc.
        """
        script = (
            "import json, sys\n"
            "before = set(sys.modules)\n"
            "import twisted.plugins.spc_plugin as dropin\n"
            "from twisted.application.service import ServiceMaker\n"
            "print(json.dumps({\n"
            "  'new': sorted(m for m in set(sys.modules) - before\n"
            "                if m.split('.')[0] == 'spc'),\n"
            "  'names': sorted(n for n in vars(dropin) if not n.startswith('_')),\n"
            "  'makers': sorted(n for n, v in vars(dropin).items()\n"
            "                   if isinstance(v, ServiceMaker)),\n"
            "  'file': dropin.__file__,\n"
            "}))\n"
        )
        directory = FilePath(self.mktemp())
        directory.makedirs()
        result = subprocess.run(
            [sys.executable, "-c", script],
            env=subprocessEnvironment(),
            cwd=directory.path,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        found = json.loads(result.stdout)
        self.assertEqual(found["new"], [])
        self.assertEqual(found["makers"], ["spcServiceMaker"])
        self.assertEqual(found["names"], ["ServiceMaker", "spcServiceMaker"])


class TwistdTests(TestCase):
    """
    The plugin as twistd sees it, in a separate process.
    """

    timeout = 30

    def runTwistd(self, *argv: str) -> Deferred[tuple[bytes, bytes, int]]:
        """
        Run twistd (what the C{twistd} script runs) with C{argv}, from an
        empty directory, importing what this process imports.

        @return: A L{Deferred} firing with C{(stdout, stderr, exit code)}.
        """
        directory = FilePath(self.mktemp())
        directory.makedirs()
        return getProcessOutputAndValue(
            sys.executable,
            ["-c", "from twisted.scripts.twistd import run; run()", *argv],
            env=subprocessEnvironment(),
            path=directory.path,
        )

    async def test_listed(self) -> None:
        """
        C{twistd --help} lists spc with its description.
        """
        out, err, code = await self.runTwistd("--help")
        self.assertEqual(code, 0, err)
        lines = out.decode("utf-8").splitlines()
        self.assertTrue(
            any(line.split()[:1] == ["spc"] for line in lines),
            "spc is not listed by twistd --help:\n" + "\n".join(lines),
        )

    async def test_options(self) -> None:
        """
        C{twistd spc --help} shows the spc options.
        """
        out, err, code = await self.runTwistd("spc", "--help")
        self.assertEqual(code, 0, err)
        for option in ["--ports", "--listen", "--inbox", "--key-dir"]:
            self.assertIn(option.encode("ascii"), out)
