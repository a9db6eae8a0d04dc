# -*- test-case-name: tests.unit.test_layout -*-
"""
The C{spc} command: its subcommands and what they share.
"""
