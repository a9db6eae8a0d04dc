"""
The README's commands and example stay true.
"""

from __future__ import annotations

import os
import sys

from twisted.internet.utils import getProcessOutputAndValue
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

import spc

ROOT = FilePath(spc.__file__).parent().parent()


def readmeExample() -> str:
    """
    The library example: the indented block from its imports to
    C{task.react(main)}.
    """
    text = ROOT.child("README.rst").getContent().decode("utf-8")
    start = text.index("    from twisted.internet import defer, task")
    end = text.index("    task.react(main)") + len("    task.react(main)")
    return "\n".join(line[4:] for line in text[start:end].split("\n"))


class ReadmeTests(TestCase):
    """
    What the README shows a user works as shown.
    """

    def test_setupCommands(self) -> None:
        """
        The README opens with exactly two commands: install and run the
        demo, and install and run the test suite, which is what CI runs.
        """
        text = ROOT.child("README.rst").getContent().decode("utf-8")
        opening = text[: text.index("\nWhat spc is\n")]
        commands = [line.strip() for line in opening.splitlines() if line.startswith("    ")]
        self.assertEqual(len(commands), 2)
        self.assertTrue(commands[0].endswith("spc demo"))
        self.assertTrue(commands[1].endswith("trial tests"))
        ci = ROOT.child(".ci").child("run").getContent().decode("utf-8")
        self.assertIn(commands[1], ci)

    def test_libraryExample(self) -> None:
        """
        The library example runs to completion and the message arrives.
        """
        script = FilePath(self.mktemp())
        script.setContent(readmeExample().encode("utf-8"))
        env = dict(os.environ, PYTHONPATH=ROOT.path)
        d = getProcessOutputAndValue(sys.executable, [script.path], env=env)

        def check(result):
            out, err, code = result
            self.assertEqual(code, 0, err.decode("utf-8", "replace"))
            self.assertIn(b"says b'hello over two channels'", out)

        return d.addCallback(check)
