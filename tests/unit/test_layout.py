# -*- test-case-name: tests.unit.test_layout -*-
"""
The shape of the package: its layers import only downwards, an
application finds what it needs in C{spc}, and the documents name modules
that exist.  That every module ships in the wheel, and that C{spc}'s names
are imported only when asked for, are checked in fresh processes by
L{tests.integration.test_layout}.

The layers, bottom to top; a module may import its own unit (its
subpackage, or itself at the top of C{spc/}) and any unit of a lower rank,
nothing of its own rank or above:

  ====  =====================================================================
  rank  units
  ====  =====================================================================
  0     C{errors}, C{interfaces}, C{text}, C{addresses}, C{inflight},
        C{ratelimit}: what every layer may need
  1     C{crypto}: primitives over bytes
  2     C{keys} (identities, trust files, certificates), C{logs}
  3     C{protocol}: SPC/1 without I/O; C{lanes}: worker threads for
        bulk work, logging under C{spc.session}
  4     C{transport}: one connection
  5     C{files}: files on their way, and on disk
  6     C{session}: a peer's channels as one session
  7     C{client}, C{server}: the two ends (neither imports the other)
  8     C{status}: what a running daemon tells its operator
  9     C{cli}: the C{spc} command
  10    C{tap}: the twistd plugin's options and C{makeService}
  ====  =====================================================================

C{spc/__init__.py} stands outside: its public names are imported lazily
from the modules above.  Importing from it inside the package is checked
as importing from the module that defines the name; a bare C{import spc}
is refused, since it reaches every layer.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys

from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

import spc

PACKAGE = FilePath(spc.__file__).parent()
ROOT = PACKAGE.parent()

RANKS = {
    "errors": 0,
    "interfaces": 0,
    "text": 0,
    "addresses": 0,
    "inflight": 0,
    "ratelimit": 0,
    "crypto": 1,
    "keys": 2,
    "logs": 2,
    "protocol": 3,
    "lanes": 3,
    "transport": 4,
    "files": 5,
    "session": 6,
    "client": 7,
    "server": 7,
    "status": 8,
    "cli": 9,
    "tap": 10,
}
"""
Each unit of C{spc} (a subpackage, or a module at the top) and its layer.
"""

PUBLIC = [
    "connect", "ServerService", "Session", "IMessageReceiver", "IFileReceiver", "FileStore",
    "Identity", "generateIdentity", "loadIdentity", "PinnedKey", "KnownHosts",
    "AuthorizedKeys", "SPCError", "TransferFailed", "__version__",
]
"""
Names the README promises an application can import from C{spc}.
"""


def sourceModules() -> dict[str, FilePath]:
    """
    @return: every module under C{spc/}, by dotted name (a package by the
        name of its C{__init__}'s package).
    """
    modules = {}
    for path in PACKAGE.walk():
        if path.splitext()[1] != ".py" or "__pycache__" in path.segmentsFrom(ROOT):
            continue
        parts = path.segmentsFrom(ROOT)
        parts[-1] = parts[-1][: -len(".py")]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def unitOf(module: str) -> str:
    """
    @return: C{"server"} for C{spc.server.service}, C{"tap"} for C{spc.tap},
        C{"spc"} for the package itself.
    """
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def importedModules(module: str, source: str, modules: set[str]) -> list[tuple[int, str]]:
    """
    What a module imports of C{spc}, at any depth in its code (a function's
    imports too), relative imports resolved.

    @param modules: the dotted names of every module of C{spc}, to tell a
        submodule from a name in C{from PACKAGE import NAME}.
    @return: C{(line, module)} pairs; a name imported from C{spc} itself is
        given as the module that defines it, and C{spc.__version__}, which
        belongs to no layer, not at all.
    """
    isPackage = any(other.startswith(module + ".") for other in modules)
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [
                (node.lineno, alias.name)
                for alias in node.names
                if alias.name.split(".")[0] == "spc"
            ]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")[: None if isPackage else -1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            if base.split(".")[0] != "spc":
                continue
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in modules:
                    found.append((node.lineno, submodule))
                elif base != "spc":
                    found.append((node.lineno, base))
                elif alias.name != "__version__":
                    found.append((node.lineno, getattr(spc, alias.name).__module__))
    return found


def layerViolations(sources: dict[str, str]) -> list[str]:
    """
    @param sources: the source of every module of C{spc}, by dotted name.
    @return: one line for each import that goes up or sideways, and for
        each unit without a rank.
    """
    problems = []
    modules = set(sources)
    for module, source in sorted(sources.items()):
        importer = unitOf(module)
        if module == "spc":
            continue
        if importer not in RANKS:
            problems.append(f"{module}: unit {importer!r} has no rank in RANKS")
            continue
        for line, target in importedModules(module, source, modules):
            imported = unitOf(target)
            if target == "spc":
                problems.append(
                    f"{module}:{line}: import spc reaches every layer; "
                    "import from the module that defines the name"
                )
            elif imported == importer:
                continue
            elif imported not in RANKS:
                problems.append(f"{module}:{line}: {target} is in no ranked unit")
            elif RANKS[imported] >= RANKS[importer]:
                problems.append(
                    f"{module}:{line}: imports {target} ({imported}, rank "
                    f"{RANKS[imported]}) from {importer} (rank {RANKS[importer]})"
                )
    return problems


class LayerTests(SynchronousTestCase):
    """
    No module of C{spc} imports a module of a layer above it, or of
    another unit of its own layer.
    """

    def test_importsPointDown(self) -> None:
        """
        Every import in C{spc/}, at module level or inside a function, goes
        to the importer's own unit or to a lower rank, and every unit has
        a rank.
        """
        sources = {
            name: path.getContent().decode("utf-8") for name, path in sourceModules().items()
        }
        self.assertEqual(layerViolations(sources), [])

    def test_everyUnitRanked(self) -> None:
        """
        The table names exactly the units there are, so a new subpackage
        gets a place in it and a removed one leaves it.
        """
        units = {unitOf(name) for name in sourceModules()} - {"spc"}
        self.assertEqual(units, set(RANKS))

    def test_fewModulesAtTheTop(self) -> None:
        """
        At most ten modules sit directly in C{spc/}: the rest belong to a
        layer's subpackage.
        """
        top = [path.basename() for path in PACKAGE.globChildren("*.py")]
        self.assertLessEqual(len(top), 10, sorted(top))

    def test_violationsFound(self) -> None:
        """
        The check finds an import up, sideways within a rank, inside a
        function, relative, and through C{spc}'s own names, and accepts
        imports down and within a unit.
        """
        sources = {
            "spc": "",
            "spc.errors": "",
            "spc.protocol": "",
            "spc.protocol.frames": "from spc.errors import ProtocolError\n",
            "spc.protocol.records": "from spc.session.session import Session\n",
            "spc.protocol.rotation": "from . import frames\nfrom ..session import messenger\n",
            "spc.session": "",
            "spc.session.session": "from spc.protocol import frames\n",
            "spc.session.messenger": "",
            "spc.client": "",
            "spc.client.connect": "def f():\n    import spc.server.service\n",
            "spc.server": "",
            "spc.server.service": "from spc import connect\n",
            "spc.cli": "",
            "spc.cli.command": "import spc\n",
            "spc.cli.main": "from spc import __version__\nfrom .command import x\n",
        }
        self.assertEqual(
            layerViolations(sources),
            [
                "spc.cli.command:1: import spc reaches every layer; import from the "
                "module that defines the name",
                "spc.client.connect:2: imports spc.server.service (server, rank 7) "
                "from client (rank 7)",
                "spc.protocol.records:1: imports spc.session.session (session, rank 6) "
                "from protocol (rank 3)",
                "spc.protocol.rotation:2: imports spc.session.messenger (session, rank 6) "
                "from protocol (rank 3)",
                "spc.server.service:1: imports spc.client.connect (client, rank 7) "
                "from server (rank 7)",
            ],
        )


FILE_SUFFIXES = frozenset({"cache", "crt", "json", "jsonl", "key", "lock", "part", "py", "sock"})
"""
Last parts that make a dotted name in a document a file's name, not code.
"""


def documentProblems(text: str, modules: dict[str, FilePath]) -> list[str]:
    """
    What a document says of the code that is not so.

    @param modules: every module of C{spc}, as L{sourceModules} gives them.
    @return: one line for each C{``path``} under C{spc/}, C{tests/},
        C{bench/}, C{contrib/} or C{docs/} that does not exist; each
        C{``module.name``} whose module, named by the end of its dotted
        name (C{frames.framed}, C{client.send.MAX_RESETS}), is none of
        C{spc}'s nor another importable one, or lacks the name; and each
        C{``Class.name``} whose class C{spc} does not define (its
        attributes, often set on instances, are not checked).
    """
    problems = []
    for path in sorted(set(re.findall(r"``((?:spc|tests|bench|contrib|docs)/[\w/.-]*)``", text))):
        if not ROOT.preauthChild(path).exists():
            problems.append(f"{path}: no such file")
    for reference in sorted(set(re.findall(r"``((?:[A-Za-z_]\w*\.)+[A-Za-z_]\w*)``", text))):
        parts = reference.split(".")
        if parts[-1] in FILE_SUFFIXES:
            continue
        for cut in range(len(parts) - 1, 0, -1):
            suffix = "." + ".".join(parts[:cut])
            candidates = [name for name in modules if ("." + name).endswith(suffix)]
            if candidates:
                if not any(_resolves(name, parts[cut:]) for name in candidates):
                    problems.append(f"{reference}: not in {', '.join(sorted(candidates))}")
                break
        else:
            if parts[0][0].isupper():
                if not any(_defines(name, parts[0]) for name in modules):
                    problems.append(f"{reference}: spc defines no {parts[0]}")
            elif importlib.util.find_spec(parts[0]) is None:
                problems.append(f"{reference}: no module {parts[0]}")
    return problems


def _defines(module: str, name: str) -> bool:
    """
    Whether C{module} defines C{name} (rather than importing it).
    """
    value = getattr(importlib.import_module(module), name, None)
    return getattr(value, "__module__", None) == module


def _resolves(module: str, attributes: list[str]) -> bool:
    """
    Whether C{module} has the attribute path C{attributes}.
    """
    value = importlib.import_module(module)
    for attribute in attributes:
        if not hasattr(value, attribute):
            return False
        value = getattr(value, attribute)
    return True


def readmePaths(text: str) -> str:
    """
    The C{``path``} literals of the README under C{spc/}, C{tests/},
    C{bench/}, C{contrib/} or C{docs/}, alone: its other literals are
    commands, options and prose, not code to look up.
    """
    return " ".join(
        f"``{literal}``"
        for literal in re.findall(r"``([^`]+)``", text)
        if re.match(r"(?:spc|tests|bench|contrib|docs)/", literal)
    )


class DocumentTests(SynchronousTestCase):
    """
    The protocol document and the README name files and code that exist.
    """

    def test_protocol(self) -> None:
        """
        Every file, module and name of C{docs/protocol.rst} is there.
        """
        text = ROOT.child("docs").child("protocol.rst").getContent().decode("utf-8")
        self.assertEqual(documentProblems(text, sourceModules()), [])

    def test_readme(self) -> None:
        """
        Every file the README names is there.
        """
        text = ROOT.child("README.rst").getContent().decode("utf-8")
        self.assertEqual(documentProblems(readmePaths(text), sourceModules()), [])

    def test_readmePathsFound(self) -> None:
        """
        A path among the README's other literals is checked wherever it
        stands, and only the paths are.
        """
        text = (
            "Run ``spc send`` (see ``spc/``), then ``tests/nonesuch.py``; "
            "``frames.nonesuch`` is code.\n\n``docs/nonesuch.rst``"
        )
        self.assertEqual(
            documentProblems(readmePaths(text), sourceModules()),
            ["docs/nonesuch.rst: no such file", "tests/nonesuch.py: no such file"],
        )

    def test_problemsFound(self) -> None:
        """
        A file that is not there, a name its module lacks, a class or a
        module that is not there are found; file names, other modules'
        names and a module named by the end of its dotted name pass.
        """
        text = (
            "``spc/nonesuch.py`` ``spc/tap.py`` ``frames.framed`` ``frames.nonesuch`` "
            "``client.send.MAX_RESETS`` ``send.nonesuch`` ``messages.jsonl`` "
            "``Liveness.rtt`` ``Nonesuch.rtt`` ``wire.framed`` ``os.urandom``"
        )
        self.assertEqual(
            documentProblems(text, sourceModules()),
            [
                "spc/nonesuch.py: no such file",
                "Nonesuch.rtt: spc defines no Nonesuch",
                "frames.nonesuch: not in spc.protocol.frames",
                "send.nonesuch: not in spc.cli.send, spc.client.send",
                "wire.framed: no module wire",
            ],
        )


class PublicAPITests(SynchronousTestCase):
    """
    C{from spc import ...} gives an application what it needs.
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
