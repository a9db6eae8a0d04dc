# -*- test-case-name: tests.unit.test_layout -*-
"""
SPC/1 without I/O: frames, inner records, the record layer, the handshake and rotation
machines and liveness.

Nothing here imports Twisted's reactor or touches a socket; the transport drives it.
"""
