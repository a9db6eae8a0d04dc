"""
The C{spc} command: its subcommands and what they share.
"""
