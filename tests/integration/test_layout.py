# -*- test-case-name: tests.integration.test_layout -*-
"""
The shape of the package as other processes see it: every module ships in
the wheel, and an application imports what it needs from C{spc} without
pulling in the rest.  The layers and the documents are checked in
L{tests.unit.test_layout}.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile

from twisted.python.filepath import FilePath
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.unit.test_layout import PACKAGE, ROOT, sourceModules


class LazyImportTests(SynchronousTestCase):
    """
    C{from spc import ...} imports each name from its module only when
    asked for.
    """

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


class WheelTests(SynchronousTestCase):
    """
    The wheel built from this tree holds every module of C{spc}: a
    subpackage missing from C{packages} in C{setup.cfg} would install a
    package that fails at its first import of it.
    """

    def test_everyModuleShips(self) -> None:
        """
        Build the wheel from a copy of the packaging files and the package,
        and compare its C{spc/**.py} with the source tree's.
        """
        for needed in ("setuptools", "wheel"):
            if importlib.util.find_spec(needed) is None:
                raise SkipTest(
                    f"building a wheel needs {needed}, which is not installed "
                    "(pip install -e '.[test]' installs it)"
                )
        work = FilePath(self.mktemp())
        source = work.child("source")
        source.makedirs()
        for name in ("setup.py", "setup.cfg", "pyproject.toml", "README.rst"):
            ROOT.child(name).copyTo(source.child(name))
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "dropin.cache")
        shutil.copytree(PACKAGE.path, source.child("spc").path, ignore=ignore)
        shutil.copytree(
            ROOT.child("twisted").path, source.child("twisted").path, ignore=ignore
        )
        built = work.child("wheels")
        result = subprocess.run(
            [
                sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                "--no-index", "--disable-pip-version-check", "-q", "-w", built.path,
                source.path,
            ],
            cwd=work.path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        [wheel] = built.globChildren("*.whl")
        with zipfile.ZipFile(wheel.path) as archive:
            shipped = {
                name for name in archive.namelist()
                if name.split("/")[0] in ("spc", "twisted") and name.endswith(".py")
            }
        expected = {
            "/".join(path.segmentsFrom(ROOT)) for path in sourceModules().values()
        } | {"twisted/plugins/spc_plugin.py"}
        self.assertEqual(sorted(expected - shipped), [], "missing from the wheel")
        self.assertEqual(sorted(shipped - expected), [], "in the wheel, not in the tree")
