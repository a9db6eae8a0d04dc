# -*- test-case-name: tests.test_layout -*-
"""
The C{spc} command: its subcommands and what they share.
"""
