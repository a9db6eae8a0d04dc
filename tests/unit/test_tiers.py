# -*- test-case-name: tests.unit.test_tiers -*-
"""
Tests of the test suite's own layout: every module of spc names the test
modules that test it, the shared fakes are defined once, and the fast
tiers (L{tests.unit}, L{tests.memory}) never wait on the real reactor.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

from twisted.trial.runner import TestLoader
from twisted.trial.unittest import SynchronousTestCase, TestCase

import spc
import tests
from tests import fakes

ROOT = Path(spc.__file__).parent.parent
"""
The source tree, which holds both spc and its tests.
"""

HEADER = re.compile(r"# -\*- test-case-name: (?P<names>\S+) -\*-")


def modules(package) -> list[Path]:
    """
    The Python files of C{package}, in a stable order.
    """
    return sorted(Path(package.__file__).parent.rglob("*.py"))


def testModules(tier: str) -> list[str]:
    """
    The dotted names of the test modules in C{tests.<tier>}.
    """
    package = importlib.import_module(f"tests.{tier}")
    return [
        f"{package.__name__}.{info.name}"
        for info in pkgutil.iter_modules(package.__path__)
        if info.name.startswith("test_")
    ]


class TestCaseNameTests(SynchronousTestCase):
    """
    C{# -*- test-case-name: ... -*-} headers name test modules that exist,
    so that C{trial --testmodule} and editors run the right tests.
    """

    def test_everyModuleHasOne(self) -> None:
        """
        Every module of spc starts with the header, a package's
        C{__init__} too.
        """
        missing = [
            str(path.relative_to(ROOT))
            for path in modules(spc)
            if not HEADER.fullmatch(path.read_text(encoding="utf-8").split("\n", 1)[0])
        ]
        self.assertEqual(missing, [])

    def test_namesTestModules(self) -> None:
        """
        Each module a header names, in spc or in the tests, imports and
        holds tests.
        """
        loader = TestLoader()
        checked = 0
        wrong = []
        for path in modules(spc) + modules(tests):
            match = HEADER.fullmatch(path.read_text(encoding="utf-8").split("\n", 1)[0])
            if match is None:
                continue
            for name in match.group("names").split(","):
                checked += 1
                try:
                    module = importlib.import_module(name)
                except ImportError as error:
                    wrong.append((str(path.relative_to(ROOT)), name, str(error)))
                    continue
                if loader.loadModule(module).countTestCases() == 0:
                    wrong.append((str(path.relative_to(ROOT)), name, "no tests"))
        self.assertEqual(wrong, [])
        self.assertGreater(checked, 50)


class FakesTests(SynchronousTestCase):
    """
    The fakes of spc's parts that several modules share live in
    L{tests.fakes} alone.
    """

    def test_notRedefined(self) -> None:
        """
        No other module of the tests defines a class of the name of one of
        L{tests.fakes}: a test that needs more of a fake adds it there.
        """
        shared = set(fakes.__all__)
        redefined = []
        for path in modules(tests):
            if path.name == "fakes.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ClassDef) and node.name in shared:
                    redefined.append(f"{path.relative_to(ROOT)}: {node.name}")
        self.assertEqual(redefined, [])
        self.assertIn("FakeSession", shared)


class FastTierTests(SynchronousTestCase):
    """
    The unit and memory tiers run in seconds because nothing in them waits
    for the real reactor.
    """

    def test_synchronous(self) -> None:
        """
        Every test case of the fast tiers is a L{SynchronousTestCase}: a
        test that returned a Deferred, or left the real reactor something
        to do, would belong to L{tests.integration}.
        """
        asynchronous = []
        for name in testModules("unit") + testModules("memory"):
            module = importlib.import_module(name)
            for value in vars(module).values():
                if (
                    inspect.isclass(value)
                    and value.__module__ == name
                    and issubclass(value, SynchronousTestCase)
                ):
                    if issubclass(value, TestCase):
                        asynchronous.append(f"{name}.{value.__name__}")
        self.assertEqual(asynchronous, [])

    def test_noGlobalReactor(self) -> None:
        """
        No module of the fast tiers imports the global reactor; they make
        a C{task.Clock} or a C{MemoryReactor} instead.
        """
        importing = []
        for name in testModules("unit") + testModules("memory"):
            source = inspect.getsource(importlib.import_module(name))
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.ImportFrom) and node.module == "twisted.internet":
                    if any(alias.name == "reactor" for alias in node.names):
                        importing.append(name)
                elif isinstance(node, ast.Import):
                    if any(alias.name == "twisted.internet.reactor" for alias in node.names):
                        importing.append(name)
        self.assertEqual(importing, [])

    def test_tiersFound(self) -> None:
        """
        The checks above see the modules of both fast tiers.
        """
        self.assertIn("tests.unit.test_errors", testModules("unit"))
        self.assertIn("tests.memory.test_session", testModules("memory"))
