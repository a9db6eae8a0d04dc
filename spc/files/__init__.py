# -*- test-case-name: tests.unit.test_layout -*-
"""
Files on their way: the sending side, the receiving side, and the store that keeps partial
and finished files on disk.
"""
