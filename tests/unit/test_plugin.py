# -*- test-case-name: tests.unit.test_plugin -*-
"""
Tests that Twisted finds the twistd plugin of
C{twisted/plugins/spc_plugin.py} in this process.
"""

from __future__ import annotations

from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
from twisted.trial.unittest import SynchronousTestCase

import spc.tap
from spc.keys.identity import generateIdentity, saveIdentity


def spcMakers() -> list[IServiceMaker]:
    """
    Every service maker Twisted finds whose tapname is C{spc}.
    """
    return [
        maker for maker in getPlugins(IServiceMaker) if maker.tapname == "spc"
    ]


class DiscoveryTests(SynchronousTestCase):
    """
    L{getPlugins} finds the spc service maker.
    """

    def test_found(self) -> None:
        """
        Exactly one service maker has tapname C{spc}; it names L{spc.tap}
        and its options are L{spc.tap.Options}.
        """
        (maker,) = spcMakers()
        self.assertEqual(maker.module, "spc.tap")
        self.assertIs(maker.options, spc.tap.Options)
        self.assertTrue(maker.description)

    def test_makeService(self) -> None:
        """
        The maker builds its service with L{spc.tap.makeService}.
        """
        (maker,) = spcMakers()
        options = maker.options()
        keyDir = self.mktemp()
        saveIdentity(generateIdentity(), keyDir)
        options.parseOptions(
            ["--key-dir", keyDir, "--ports", "9000", "--inbox", self.mktemp()]
        )
        service = maker.makeService(options)
        self.assertEqual(service.name, "spc")
