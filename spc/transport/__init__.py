# -*- test-case-name: tests.unit.test_layout -*-
"""
One connection of a session: the framing and handshake wiring of a channel, and the
optional TLS underlay beneath it.
"""
