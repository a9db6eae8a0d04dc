"""
Build script for spc; the configuration is in setup.cfg.

No post-install step refreshes Twisted's plugin cache, because pip runs no
code when it installs a wheel. None is needed: the cache file
(twisted/plugins/dropin.cache) is never shipped, and Twisted's plugin loader
rebuilds the entry of any dropin that is new, or newer than the cache, and
drops entries whose dropin is gone.
"""

from setuptools import setup

setup()
