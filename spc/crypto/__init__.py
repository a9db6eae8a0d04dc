# -*- test-case-name: tests.unit.test_layout -*-
"""
Cryptographic primitives of SPC/1: cipher suites, the key schedule, RSA and X25519.

Pure functions over bytes; nothing here knows about connections.
"""
