"""
Tests for L{spc.keys.keyfiles.checkPrivatePath}: a key or trust file is trusted
only if nobody but its user and root could change it or a directory on the
way to it, as OpenSSH's C{StrictModes} requires.
"""

from __future__ import annotations

import errno
import itertools
import os
import stat
import tempfile

from hypothesis import given, settings, strategies as st
from twisted.trial import unittest

from spc.errors import InsecurePath, KeyFileError
from spc.keys.keyfiles import checkPrivatePath

ANOTHER_USER = 54321
"""A uid that owns nothing here; root may give files to it."""

_NEEDS_ROOT = None if os.name == "posix" and os.geteuid() == 0 else (
    "only root can give a file to another user"
)


def makeTree(root: str, directoryModes: list[int], fileMode: int | None) -> str:
    """
    Make nested directories C{root/d0/d1/...} with the given modes and, if
    C{fileMode} is given, a file C{f} at the bottom with that mode.

    @return: The path of C{f} (which may not exist).
    """
    path = root
    os.makedirs(path, mode=0o700)
    os.chmod(path, 0o700)
    for depth, mode in enumerate(directoryModes):
        path = os.path.join(path, f"d{depth}")
        os.mkdir(path)
        os.chmod(path, mode)
    target = os.path.join(path, "f")
    if fileMode is not None:
        with open(target, "w") as f:
            f.write("SHA256:x\n")
        os.chmod(target, fileMode)
    return target


class CheckPrivatePathTests(unittest.SynchronousTestCase):
    """
    L{checkPrivatePath} refuses what others may write, naming the fix.
    """

    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())

    def assertRefused(self, path: str, culprit: str, fix: str, uid: int | None = None) -> None:
        """
        C{checkPrivatePath(path)} raises L{InsecurePath} naming C{culprit}
        and the command C{fix} that makes it safe.
        """
        error = self.assertRaises(InsecurePath, checkPrivatePath, path, uid)
        self.assertIsInstance(error, KeyFileError)  # exit code 1, as key files
        self.assertIn(culprit, str(error))
        self.assertTrue(str(error).endswith(f"fix it with: {fix} {culprit}"), str(error))

    def test_private(self) -> None:
        """
        A file of mode 0644 or 0600 in directories of modes 0700 and 0755
        passes, and so does a missing file in them.
        """
        for fileMode in (0o644, 0o600, 0o400):
            path = makeTree(os.path.join(self.root, f"{fileMode:o}"), [0o755, 0o700], fileMode)
            checkPrivatePath(path)
        checkPrivatePath(os.path.join(os.path.dirname(path), "missing"))
        checkPrivatePath(os.path.join(os.path.dirname(path), "missing", "deeper"))

    def test_writableFile(self) -> None:
        """
        A file that its group or others may write is refused with the
        C{chmod go-w} that fixes it and its mode.
        """
        for mode, who in [(0o664, "its group"), (0o646, "others"), (0o666, "its group and others")]:
            path = makeTree(os.path.join(self.root, f"{mode:o}"), [0o700], mode)
            self.assertRefused(path, path, "chmod go-w")
            error = self.assertRaises(InsecurePath, checkPrivatePath, path)
            self.assertIn(f"writable by {who} (mode {mode:04o})", str(error))

    def test_writableDirectory(self) -> None:
        """
        A key directory, or any directory above it, that others may write
        is refused, whether the file in it exists or not: anyone could put
        a file of theirs there.
        """
        for depth in range(3):
            modes = [0o755, 0o755, 0o700]
            modes[depth] = 0o777
            root = os.path.join(self.root, str(depth))
            path = makeTree(root, modes, 0o600)
            culprit = os.path.join(root, *[f"d{i}" for i in range(depth + 1)])
            self.assertRefused(path, culprit, "chmod go-w")
            os.unlink(path)
            self.assertRefused(path, culprit, "chmod go-w")

    def test_groupWritableDirectory(self) -> None:
        """
        A directory its group may write is refused too, as by OpenSSH.
        """
        path = makeTree(self.root, [0o775], 0o600)
        self.assertRefused(path, os.path.dirname(path), "chmod go-w")

    def test_relativePath(self) -> None:
        """
        A relative path is checked from the working directory, and the
        culprit is named by its absolute path.
        """
        path = makeTree(self.root, [0o777], 0o600)
        relative = os.path.relpath(path)
        self.assertFalse(os.path.isabs(relative))
        self.assertRefused(relative, os.path.dirname(path), "chmod go-w")

    def test_stickyDirectory(self) -> None:
        """
        A directory that everyone may write but that has the sticky bit, as
        C{/tmp} has, does not make what is under it unsafe: only an entry's
        owner may remove or rename it there.
        """
        path = makeTree(self.root, [0o1777, 0o700], 0o600)
        checkPrivatePath(path)

    def test_stickyTarget(self) -> None:
        """
        The sticky bit makes a directory safe to pass through, not to use:
        a path that names a world-writable sticky directory is refused.
        """
        path = makeTree(self.root, [0o1777], None)
        directory = os.path.dirname(path)
        self.assertRefused(directory, directory, "chmod go-w")

    def test_underTmp(self) -> None:
        """
        A private key directory in the system's temporary directory (a
        sticky directory owned by root) passes.
        """
        base = tempfile.gettempdir()
        status = os.stat(base)
        if status.st_uid != 0 or not status.st_mode & stat.S_ISVTX:
            raise unittest.SkipTest(f"{base} is not a sticky directory of root")
        directory = tempfile.mkdtemp(prefix="spc-keys-")
        self.addCleanup(os.rmdir, directory)
        checkPrivatePath(os.path.join(directory, "authorized_keys"))

    def test_symlinkToWritableDirectory(self) -> None:
        """
        A symbolic link is followed: the directories on the way to its
        target are checked, and the culprit named is the real directory.
        """
        target = makeTree(os.path.join(self.root, "real"), [0o777], 0o600)
        os.makedirs(os.path.join(self.root, "keys"))
        link = os.path.join(self.root, "keys", "authorized_keys")
        os.symlink(os.path.relpath(target, os.path.dirname(link)), link)
        self.assertRefused(link, os.path.dirname(target), "chmod go-w")
        os.chmod(os.path.dirname(target), 0o700)
        checkPrivatePath(link)

    def test_symlinkInWritableDirectory(self) -> None:
        """
        The directory that holds a symbolic link is checked too: whoever may
        write it could point the link elsewhere.
        """
        target = makeTree(os.path.join(self.root, "real"), [0o700], 0o600)
        holder = os.path.join(self.root, "open")
        os.makedirs(holder)
        os.chmod(holder, 0o777)
        os.symlink(os.path.dirname(target), os.path.join(holder, "keys"))
        self.assertRefused(os.path.join(holder, "keys", "f"), holder, "chmod go-w")

    def test_dotDotAfterSymlink(self) -> None:
        """
        C{..} after a symbolic link goes to the parent of its target, as the
        kernel resolves it, not to the directory that holds the link.
        """
        target = makeTree(os.path.join(self.root, "real"), [0o700, 0o700], 0o600)
        inner = os.path.dirname(target)
        sibling = os.path.join(os.path.dirname(inner), "g")
        with open(sibling, "w"):
            pass
        os.chmod(sibling, 0o666)
        os.symlink(inner, os.path.join(self.root, "link"))
        self.assertFalse(os.path.exists(os.path.join(self.root, "g")))
        self.assertRefused(os.path.join(self.root, "link", "..", "g"), sibling, "chmod go-w")

    def test_symlinkLoop(self) -> None:
        """
        A loop of symbolic links ends in an L{OSError}, not a hang.
        """
        os.makedirs(self.root)
        os.symlink("b", os.path.join(self.root, "a"))
        os.symlink("a", os.path.join(self.root, "b"))
        error = self.assertRaises(OSError, checkPrivatePath, os.path.join(self.root, "a"))
        self.assertEqual(error.errno, errno.ELOOP)

    def test_fileOfAnotherUser(self) -> None:
        """
        A file that belongs to a user other than this one and root is
        refused with the C{chown} that fixes it.
        """
        path = makeTree(self.root, [0o700], 0o600)
        os.chown(path, ANOTHER_USER, -1)
        self.assertRefused(path, path, "chown root")
        error = self.assertRaises(InsecurePath, checkPrivatePath, path)
        self.assertIn(f"belongs to user {ANOTHER_USER}, not to root;", str(error))

    test_fileOfAnotherUser.skip = _NEEDS_ROOT  # type: ignore[attr-defined]

    def test_directoryOfAnotherUser(self) -> None:
        """
        A directory on the way that belongs to another user is refused:
        they could change its permissions. Its owner may be the user the
        check is made for (C{uid}).
        """
        path = makeTree(self.root, [0o755, 0o700], 0o600)
        above = os.path.dirname(os.path.dirname(path))
        os.chown(above, ANOTHER_USER, -1)
        self.assertRefused(path, above, "chown root")
        checkPrivatePath(path, uid=ANOTHER_USER)

    test_directoryOfAnotherUser.skip = _NEEDS_ROOT  # type: ignore[attr-defined]

    def test_symlinkOfAnotherUserInStickyDirectory(self) -> None:
        """
        In a sticky directory anyone may create an entry, so one that
        belongs to another user (here, a symbolic link they planted) is
        refused even if it points somewhere safe.
        """
        target = makeTree(os.path.join(self.root, "real"), [0o700], 0o600)
        shared = os.path.join(self.root, "tmp")
        os.makedirs(shared)
        os.chmod(shared, 0o1777)
        link = os.path.join(shared, "keys")
        os.symlink(os.path.dirname(target), link)
        os.lchown(link, ANOTHER_USER, -1)
        self.assertRefused(os.path.join(link, "f"), link, "chown root")

    test_symlinkOfAnotherUserInStickyDirectory.skip = _NEEDS_ROOT  # type: ignore[attr-defined]


_counter = itertools.count()

_directoryModes = st.builds(
    lambda group, other, sticky: 0o700 | group | other | sticky,
    st.sampled_from([0, 0o050, 0o070, 0o020]),
    st.sampled_from([0, 0o005, 0o007, 0o002]),
    st.sampled_from([0, stat.S_ISVTX]),
)
_fileModes = st.builds(
    lambda group, other: 0o600 | group | other,
    st.sampled_from([0, 0o040, 0o060, 0o020]),
    st.sampled_from([0, 0o004, 0o006, 0o002]),
)


class CheckPrivatePathPropertyTests(unittest.SynchronousTestCase):
    """
    The rule over every combination of modes, not only chosen ones.
    """

    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())

    @settings(max_examples=60, deadline=None)
    @given(
        directoryModes=st.lists(_directoryModes, min_size=1, max_size=4),
        fileMode=st.one_of(st.none(), _fileModes),
    )
    def test_refusedExactlyWhenOthersMayWrite(self, directoryModes, fileMode) -> None:
        """
        A path is refused if and only if a directory on the way may be
        written by others without the sticky bit, or the file may be
        written by others; the culprit named is the first such component
        from the root, and the fix is C{chmod go-w} of it.
        """
        root = os.path.join(self.root, str(next(_counter)))
        path = makeTree(root, directoryModes, fileMode)
        components = [
            os.path.join(root, *[f"d{i}" for i in range(depth + 1)])
            for depth in range(len(directoryModes))
        ]
        unsafe = [
            component
            for component, mode in zip(components, directoryModes)
            if mode & 0o022 and not mode & stat.S_ISVTX
        ]
        if fileMode is not None and fileMode & 0o022:
            unsafe.append(path)
        if unsafe:
            error = self.assertRaises(InsecurePath, checkPrivatePath, path)
            self.assertTrue(str(error).endswith(f"chmod go-w {unsafe[0]}"), str(error))
        else:
            checkPrivatePath(path)
