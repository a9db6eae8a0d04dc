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
from spc.cli.main import SPCOptions
from spc.cli.receive import senderCommand

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

    def opening(self) -> list[str]:
        """
        The commands shown before "What spc is".
        """
        text = ROOT.child("README.rst").getContent().decode("utf-8")
        opening = text[: text.index("\nWhat spc is\n")]
        return [line.strip() for line in opening.splitlines() if line.startswith("    ")]

    def test_setupCommands(self) -> None:
        """
        The README opens with the shortest path (issue 13): C{spc receive}
        on one machine, C{spc send --code} on the other; then installing
        and running the demo, and installing and running the test suite,
        which is what CI runs.
        """
        commands = self.opening()
        self.assertEqual(len(commands), 4)
        self.assertTrue(commands[0].startswith("spc receive"))
        self.assertTrue(commands[1].startswith("spc send --code "))
        self.assertTrue(commands[2].endswith("spc demo"))
        self.assertTrue(commands[3].endswith("trial tests"))
        ci = ROOT.child(".ci").child("run").getContent().decode("utf-8")
        self.assertIn(commands[3], ci)

    def test_shortestPath(self) -> None:
        """
        The shortest path's commands parse as shown, and the sender's is
        the one C{spc receive} prints, but for its host and files.
        """
        receive, send = self.opening()[:2]
        options = SPCOptions()
        options.parseOptions(receive.split()[1:])
        self.assertEqual(options.subCommand, "receive")
        code = send.split()[send.split().index("--code") + 1]
        printed = senderCommand(code, "receiver.example", list(range(9000, 9004)))
        self.assertEqual(send.split()[:-2], printed.split()[:-1])
        workspace = FilePath(self.mktemp())
        workspace.child("photos").makedirs()
        workspace.child("report.pdf").setContent(b"%PDF")
        cwd = os.getcwd()
        os.chdir(workspace.path)
        self.addCleanup(os.chdir, cwd)
        options = SPCOptions()
        options.parseOptions(send.split()[1:])
        self.assertEqual(str(options.subOptions["code"]), code)

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
