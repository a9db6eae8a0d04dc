# -*- test-case-name: tests.unit.test_layout -*-
"""
A peer's channels as one session: scheduling, rotation and heartbeat drivers, message
fragmentation and reassembly.
"""
