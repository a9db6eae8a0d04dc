"""
spc, the Secure Parallel Communicator: messages and files between two
machines over several TCP ports at once, each port its own authenticated,
encrypted channel of one session.
"""

__version__ = "0.1.0"
