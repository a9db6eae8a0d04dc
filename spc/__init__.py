# -*- test-case-name: tests.unit.test_layout,tests.integration.test_layout -*-
"""
spc, the Secure Parallel Communicator: messages and files between two
machines over several TCP ports at once, each port its own authenticated,
encrypted channel of one session.

What an application uses is here: L{connect} opens a session as a client,
L{ServerService} serves sessions, a L{Session} sends and receives, and
L{IMessageReceiver} and L{IFileReceiver} are what the application
implements; L{FileStore} keeps received files, L{Identity} (with
L{generateIdentity} and L{loadIdentity}) is a peer's key, and
L{PinnedKey}, L{KnownHosts} and L{AuthorizedKeys} say whom to trust.  Every
error is an L{SPCError} whose text is what a user reads.

The names are imported when first used (PEP 562), so that
C{import spc.errors}, say, does not bring in Twisted's reactor or the rest
of the package; each lives in the module that defines it.
"""

from __future__ import annotations

import importlib

from spc.errors import __all__ as _ERRORS

__version__ = "0.1.0"

_WHERE = {
    "connect": "spc.client.connect",
    "ServerService": "spc.server.service",
    "Session": "spc.session.session",
    "IMessageReceiver": "spc.interfaces",
    "IFileReceiver": "spc.interfaces",
    "FileStore": "spc.files.store",
    "Identity": "spc.keys.identity",
    "generateIdentity": "spc.keys.identity",
    "loadIdentity": "spc.keys.identity",
    "PinnedKey": "spc.keys.trust",
    "KnownHosts": "spc.keys.trust",
    "AuthorizedKeys": "spc.keys.trust",
    **{name: "spc.errors" for name in _ERRORS},
}
"""
Each public name and the module that defines it.
"""

__all__ = ["__version__", *sorted(_WHERE)]


def __getattr__(name: str) -> object:
    """
    A public name, imported from its module the first time it is asked for.

    @raise AttributeError: for any other name.
    """
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
