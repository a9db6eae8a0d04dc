# -*- test-case-name: tests.unit.test_layout -*-
"""
The client side: opening a session (L{spc.client.connect.connect}) and C{spc send}'s logic.
"""
