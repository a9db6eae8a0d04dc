# -*- test-case-name: tests.unit.test_errors -*-
"""
Tests for L{spc.errors}: one hierarchy, each error's message the first
paragraph of its docstring on one line, details appended after it, and the
exit code of its family (DESIGN.md: 1 generic, 2 usage, 3 trust, 4
transfer).
"""

from __future__ import annotations

import inspect

from hypothesis import given, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from spc import errors
from spc.errors import (
    AuthenticationFailed,
    ClientNotAuthorized,
    ConfigurationError,
    FileFailed,
    FileRefused,
    ProtocolError,
    ServerBusy,
    ServerKeyChanged,
    SessionClosed,
    SPCError,
    TransferFailed,
    TrustError,
    UnknownServerKey,
)

EXCEPTIONS = sorted(
    (
        value
        for value in vars(errors).values()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == errors.__name__
    ),
    key=lambda cls: cls.__name__,
)
"""
Every exception class L{spc.errors} defines.
"""

PLAIN = [cls for cls in EXCEPTIONS if cls.__init__ is SPCError.__init__]
"""
The errors made from any arguments, which are their details.
"""


def firstParagraph(cls: type) -> str:
    """
    The first paragraph of C{cls}'s docstring, its lines joined by single
    spaces: what the user is shown.
    """
    paragraph = inspect.cleandoc(cls.__doc__ or "").split("\n\n")[0]
    return " ".join(paragraph.split())


class MessageTests(SynchronousTestCase):
    """
    An error's message is the first paragraph of its class's docstring.
    """

    def test_oneHierarchy(self) -> None:
        """
        Every exception in L{spc.errors} is an L{SPCError}, so that one
        C{except SPCError} catches everything spc reports to a user.
        """
        self.assertIn(SPCError, EXCEPTIONS)
        self.assertIn(FileRefused, EXCEPTIONS)
        for cls in EXCEPTIONS:
            self.assertTrue(issubclass(cls, SPCError), cls)

    def test_everyMessageIsOneSentence(self) -> None:
        """
        Without details, every error's message is its docstring's first
        paragraph on one line: not empty, no line break, no run of spaces,
        ending as a sentence or with the colon that introduces details.
        """
        for cls in PLAIN:
            message = str(cls())
            self.assertEqual(message, firstParagraph(cls), cls)
            self.assertNotEqual(message, "", cls)
            self.assertNotIn("\n", message, cls)
            self.assertNotIn("  ", message, cls)
            self.assertTrue(message.endswith((".", ":")), (cls, message))

    def test_linesJoined(self) -> None:
        """
        A docstring wrapped over several lines is shown as one line.
        """
        self.assertEqual(
            str(AuthenticationFailed()),
            "A protected frame failed authentication; it was forged, corrupted or replayed.",
        )

    def test_fieldsNotShown(self) -> None:
        """
        The epytext fields after the first paragraph document the class;
        they are not part of the message.
        """
        for error in (FileFailed("report.pdf", "vanished"), FileRefused("report.pdf", 1, "no")):
            self.assertIn("@ivar", type(error).__doc__)
            self.assertNotIn("@ivar", str(error))
            self.assertNotIn("reason", str(error))

    def test_detailsAfterColon(self) -> None:
        """
        A message ending in a colon is followed by its details, comma
        separated.
        """
        self.assertEqual(
            str(ConfigurationError("--ports: 9000-8000 is empty")),
            "The configuration is not valid: --ports: 9000-8000 is empty",
        )
        self.assertEqual(
            str(ServerKeyChanged("SHA256:old", "SHA256:new")),
            "WARNING: THE SERVER'S KEY HAS CHANGED. Someone may be intercepting the "
            "connection, or the server was given a new key. Nothing was sent. Expected "
            "and received fingerprints: SHA256:old, SHA256:new",
        )

    def test_detailsInParentheses(self) -> None:
        """
        A message that is a whole sentence takes its details in
        parentheses.
        """
        self.assertEqual(
            str(ServerBusy("3 attempts", 7)),
            "The server is busy; spc retries with backoff. (3 attempts, 7)",
        )
        self.assertEqual(
            str(ClientNotAuthorized("SHA256:me")),
            "The server refused this client; ask its operator to add the client's "
            "fingerprint to authorized_keys. (SHA256:me)",
        )

    @given(
        st.sampled_from(PLAIN),
        st.lists(st.one_of(st.text(), st.integers()), min_size=1, max_size=4),
    )
    def test_anyDetails(self, cls: type, details: list) -> None:
        """
        Whatever the details, the message comes first, unchanged, and the
        details follow it as given, after the colon or in parentheses;
        details that show as nothing add nothing, not empty parentheses.
        """
        message = firstParagraph(cls)
        shown = ", ".join(str(detail) for detail in details)
        if not shown:
            expected = message
        elif message.endswith(":"):
            expected = f"{message} {shown}"
        else:
            expected = f"{message} ({shown})"
        self.assertEqual(str(cls(*details)), expected)


class FileErrorTests(SynchronousTestCase):
    """
    The errors about one file name it, and keep their parts for the report
    of C{spc send}.
    """

    def test_fileFailed(self) -> None:
        """
        L{FileFailed} says which file and what went wrong.
        """
        error = FileFailed("report.pdf", "vanished while it was read")
        self.assertEqual(
            str(error), "A file was not delivered: report.pdf vanished while it was read"
        )
        self.assertEqual((error.name, error.why), ("report.pdf", "vanished while it was read"))
        self.assertIsInstance(error, TransferFailed)

    def test_fileRefused(self) -> None:
        """
        L{FileRefused} adds the peer's sentence when it gave one.
        """
        error = FileRefused("a.iso", 2, "the inbox is full")
        self.assertEqual(str(error), "The peer refused a file: a.iso was refused: the inbox is full")
        self.assertEqual((error.name, error.reason, error.text), ("a.iso", 2, "the inbox is full"))
        self.assertEqual(
            str(FileRefused("a.iso", 2, "")), "The peer refused a file: a.iso was refused"
        )


class ExitCodeTests(SynchronousTestCase):
    """
    C{spc}'s exit code comes from the error's family.
    """

    def test_families(self) -> None:
        """
        Configuration errors exit 2, trust failures 3, failed transfers 4,
        everything else 1.
        """
        for cls in EXCEPTIONS:
            if issubclass(cls, ConfigurationError):
                expected = 2
            elif issubclass(cls, TrustError):
                expected = 3
            elif issubclass(cls, TransferFailed):
                expected = 4
            else:
                expected = 1
            self.assertEqual(cls.exitCode, expected, cls)

    def test_examples(self) -> None:
        """
        The errors DESIGN.md names exit with the codes it gives them.
        """
        self.assertEqual(
            [
                ProtocolError.exitCode,
                ConfigurationError.exitCode,
                UnknownServerKey.exitCode,
                ServerKeyChanged.exitCode,
                ClientNotAuthorized.exitCode,
                SessionClosed.exitCode,
                FileRefused.exitCode,
            ],
            [1, 2, 3, 3, 3, 4, 4],
        )
