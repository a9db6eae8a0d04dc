"""
Tests for L{spc.client.sendlist}: what C{spc send} sends for the paths it was
given, decided before it connects, with every entry it does not send
listed with why (issue 9, items 14, 15 and 17).
"""

from __future__ import annotations

import os
import socket
import unicodedata

from hypothesis import given, settings, strategies as st
from twisted.trial import unittest

from spc.client.sendlist import SendList, collectFiles, shown
from spc.errors import ConfigurationError
from spc.protocol import filerecords
from tests.files import shortTemporaryDirectory


def write(path: str, data: bytes = b"x") -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


class CollectTestCase(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(self.root)

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def skippedNames(self, found: SendList) -> list[str]:
        return [name for name, _ in found.skipped]

    def why(self, found: SendList, name: str) -> str:
        [why] = [why for shownName, why in found.skipped if shownName == name]
        return why


class NamedPathTests(CollectTestCase):
    """
    A path named on the command line is sent, or the command stops before
    it connects, saying why.
    """

    def test_file(self) -> None:
        """
        A named file is sent under its own name.
        """
        path = write(self.path("a", "report.pdf"))
        self.assertEqual(collectFiles([path]), SendList([(path, "report.pdf")], [], []))

    def assertRefused(self, path: str, *fragments: str) -> None:
        error = self.assertRaises(ConfigurationError, collectFiles, [path])
        for fragment in fragments:
            self.assertIn(fragment, str(error))

    def test_missing(self) -> None:
        """
        A named path that does not exist stops the command.
        """
        self.assertRefused(self.path("nothing"), "nothing", "does not exist")

    def test_special(self) -> None:
        """
        A named pipe named on the command line stops the command; it is not
        opened (which would block).
        """
        os.mkfifo(self.path("pipe"))
        self.assertRefused(self.path("pipe"), "pipe", "named pipe")

    def test_unreadable(self) -> None:
        """
        Item 17: a named file that cannot be opened for reading stops the
        command before it connects.  (Permissions do not stop root, so the
        open is made to fail.)
        """
        path = write(self.path("secret"))
        self.patchOpen(path)
        self.assertRefused(path, "secret", "cannot be read (Permission denied)")

    def patchOpen(self, refused: str) -> None:
        real = os.open

        def opening(path, *args, **kwargs):
            if os.path.abspath(path) == refused:
                raise PermissionError(13, "Permission denied", path)
            return real(path, *args, **kwargs)

        self.patch(os, "open", opening)

    def test_notUTF8(self) -> None:
        """
        Item 15: a named file whose name is not UTF-8 stops the command
        before it connects, naming the file with the bytes escaped, instead
        of failing with a traceback once other files were sent.
        """
        path = os.fsdecode(os.fsencode(self.path("")) + b"caf\xe9.txt")
        write(path)
        self.assertRefused(path, "caf\\xe9.txt", "not valid UTF-8")

    def test_folderNotUTF8(self) -> None:
        """
        A named folder whose name is not UTF-8 (its name starts every name
        under it) stops the command.
        """
        folder = os.fsdecode(os.fsencode(self.path("")) + b"\xff")
        write(os.path.join(folder, "a.txt"))
        self.assertRefused(folder, "\\xff", "not valid UTF-8")

    def test_parentNotUTF8(self) -> None:
        """
        Folders above a named file or folder may have any name: only the
        names sent must be UTF-8.
        """
        parent = os.fsdecode(os.fsencode(self.path("")) + b"\xff")
        path = write(os.path.join(parent, "a.txt"))
        write(os.path.join(parent, "album", "b.txt"))
        found = collectFiles([path, os.path.join(parent, "album")])
        self.assertEqual([name for _, name in found.files], ["a.txt", "album/b.txt"])


class FolderTests(CollectTestCase):
    """
    Item 14: a folder is sent whole; what cannot be sent is listed with
    why, and folders with nothing to send are made.
    """

    def test_filesAndEmptyFolders(self) -> None:
        """
        Files are named by their path from the folder's parent; empty
        folders, at any depth, are listed to be made, and a folder with
        something in it is not (its content makes it).
        """
        album = self.path("album")
        write(os.path.join(album, "a.txt"))
        write(os.path.join(album, "sub", "b.txt"))
        os.makedirs(os.path.join(album, "empty", "deeper"))
        os.makedirs(os.path.join(album, "blank"))
        found = collectFiles([album + os.sep])
        self.assertEqual(
            found.files,
            [(os.path.join(album, "a.txt"), "album/a.txt"),
             (os.path.join(album, "sub", "b.txt"), "album/sub/b.txt")],
        )
        self.assertEqual(found.folders, ["album/blank", "album/empty/deeper"])
        self.assertEqual(found.skipped, [])

    def test_emptyNamedFolder(self) -> None:
        """
        A named folder with nothing in it is made.
        """
        os.makedirs(self.path("nothing"))
        self.assertEqual(collectFiles([self.path("nothing")]), SendList([], ["nothing"], []))

    def test_links(self) -> None:
        """
        A symbolic link is sent, with its target's content under the
        link's name, only when it leads to a file inside the folder; every
        other link is listed with why.
        """
        album = self.path("album")
        write(os.path.join(album, "sub", "b.bin"))
        outside = write(self.path("elsewhere", "secret.txt"))
        os.symlink(os.path.join("sub", "b.bin"), os.path.join(album, "inside"))
        os.symlink(outside, os.path.join(album, "outside"))
        os.symlink(self.path("elsewhere"), os.path.join(album, "outsideFolder"))
        os.symlink("sub", os.path.join(album, "folderLink"))
        os.symlink("missing", os.path.join(album, "dangling"))
        found = collectFiles([album])
        self.assertEqual(
            [name for _, name in found.files], ["album/inside", "album/sub/b.bin"]
        )
        self.assertEqual(
            self.skippedNames(found),
            ["album/dangling", "album/folderLink", "album/outside", "album/outsideFolder"],
        )
        self.assertIn("leads nowhere", self.why(found, "album/dangling"))
        self.assertIn("not followed into folders", self.why(found, "album/folderLink"))
        self.assertIn("leads outside", self.why(found, "album/outside"))
        self.assertIn("leads outside", self.why(found, "album/outsideFolder"))

    def test_specialFiles(self) -> None:
        """
        A named pipe and a socket in a folder are listed, not opened; the
        folder, with nothing else in it, is made.
        """
        self.root = shortTemporaryDirectory(self)
        album = self.path("album")
        os.makedirs(album)
        os.mkfifo(os.path.join(album, "pipe"))
        listener = socket.socket(socket.AF_UNIX)
        self.addCleanup(listener.close)
        listener.bind(os.path.join(album, "sock"))
        found = collectFiles([album])
        self.assertEqual(found.files, [])
        self.assertEqual(found.folders, ["album"])
        self.assertEqual(
            found.skipped,
            [("album/pipe", "it is a named pipe"), ("album/sock", "it is a socket")],
        )

    def test_unreadable(self) -> None:
        """
        An unreadable file and an unreadable folder inside a folder are
        listed with the system's reason; the rest is sent.
        """
        album = self.path("album")
        locked = write(os.path.join(album, "locked.txt"))
        write(os.path.join(album, "closed", "inside.txt"))
        write(os.path.join(album, "open.txt"))
        NamedPathTests.patchOpen(self, locked)
        realScandir = os.scandir

        def scanning(path):
            if os.path.basename(path) == "closed":
                raise PermissionError(13, "Permission denied", path)
            return realScandir(path)

        self.patch(os, "scandir", scanning)
        found = collectFiles([album])
        self.assertEqual([name for _, name in found.files], ["album/open.txt"])
        self.assertEqual(
            found.skipped,
            [("album/closed", "it is a folder that cannot be read (Permission denied)"),
             ("album/locked.txt", "it cannot be read (Permission denied)")],
        )

    def test_namesNotUTF8(self) -> None:
        """
        Item 15: an entry whose name is not UTF-8 is listed, its bytes
        escaped, not sent and not renamed; a folder of that kind is listed
        once, not entered.
        """
        album = os.fsencode(self.path("album"))
        write(os.fsdecode(album + b"/caf\xe9.txt"))
        write(os.fsdecode(album + b"/\xff/inside.txt"))
        write(os.fsdecode(album + b"/fine.txt"))
        found = collectFiles([self.path("album")])
        self.assertEqual([name for _, name in found.files], ["album/fine.txt"])
        self.assertEqual(self.skippedNames(found), ["album/caf\\xe9.txt", "album/\\xff"])
        self.assertIn("not valid UTF-8", self.why(found, "album/\\xff"))

    def test_longName(self) -> None:
        """
        An entry whose name would not fit C{FIL:} is listed, not sent.
        """
        self.patch(filerecords, "MAX_FILE_NAME", 12)
        album = self.path("album")
        write(os.path.join(album, "short"))
        write(os.path.join(album, "much-too-long"))
        found = collectFiles([album])
        self.assertEqual([name for _, name in found.files], ["album/short"])
        self.assertEqual(
            found.skipped, [("album/much-too-long", "its name is longer than 12 bytes")]
        )


_KINDS = ("file", "folder", "pipe", "inside", "outside", "dangling", "folderLink", "latin1")


class NothingVanishesTests(CollectTestCase):
    """
    Whatever a folder holds, every entry under it is sent, made or listed
    with why: nothing vanishes without a word.
    """

    @settings(max_examples=40, deadline=None)
    @given(st.lists(
        st.tuples(st.lists(st.sampled_from("ab"), max_size=2), st.sampled_from("xyz"),
                  st.sampled_from(_KINDS)),
        max_size=8,
    ))
    def test_everyEntryAccountedFor(self, entries) -> None:
        top = os.fsencode(os.path.abspath(self.mktemp()))
        os.makedirs(top + b"/album")
        made: dict[bytes, str] = {}
        for folders, leaf, kind in entries:
            folder = b"/".join([b"album", *(f.encode() for f in folders)])
            if any(existing == folder or folder.startswith(existing + b"/")
                   for existing, k in made.items() if k != "folder"):
                continue
            os.makedirs(top + b"/" + folder, exist_ok=True)
            for prefix in range(1, folder.count(b"/") + 1):
                made.setdefault(b"/".join(folder.split(b"/")[: prefix + 1]), "folder")
            entry = folder + b"/" + leaf.encode() + (b"\xe9" if kind == "latin1" else b"")
            if entry in made or os.path.lexists(top + b"/" + entry):
                continue
            full = top + b"/" + entry
            if kind in ("file", "latin1"):
                write(os.fsdecode(full))
            elif kind == "folder":
                os.mkdir(full)
            elif kind == "pipe":
                os.mkfifo(full)
            elif kind == "inside":
                write(os.fsdecode(top + b"/album/target"))
                made.setdefault(b"album/target", "file")
                os.symlink(top + b"/album/target", full)
            elif kind == "outside":
                os.symlink(top, full)
            elif kind == "dangling":
                os.symlink(b"missing", full)
            else:
                os.symlink(top + b"/album", full)
            made[entry] = kind
        found = collectFiles([os.fsdecode(top + b"/album")])
        accounted = (
            [name for _, name in found.files] + found.folders + self.skippedNames(found)
        )
        self.assertEqual(len(accounted), len(set(accounted)), found)
        for entry, kind in made.items():
            name = shown(os.fsdecode(entry))
            covered = name in accounted or any(
                other.startswith(name + "/") for other in accounted
            )
            self.assertTrue(covered, (entry, kind, found))


class ShownTests(unittest.SynchronousTestCase):
    """
    L{shown}: a local name as a terminal may show it.
    """

    @settings(max_examples=300)
    @given(st.text())
    def test_noControls(self, text: str) -> None:
        """
        Whatever the text, control characters and lone surrogates (bytes
        that are not UTF-8) come out as escapes; other text is unchanged.
        """
        result = shown(text)
        self.assertFalse(any(unicodedata.category(c)[0] == "C" for c in result), result)
        if not any(unicodedata.category(c)[0] == "C" for c in text):
            self.assertEqual(result, text)

    def test_examples(self) -> None:
        """
        Bytes that are not UTF-8 and terminal escapes are shown escaped.
        """
        self.assertEqual(shown(os.fsdecode(b"caf\xe9")), "caf\\xe9")
        self.assertEqual(shown("a\x1b[2Jb\nc"), "a\\x1b[2Jb\\nc")
        self.assertEqual(shown("r\u202eevil"), "r\\u202eevil")
