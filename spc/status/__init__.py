# -*- test-case-name: tests.unit.test_layout -*-
"""
What a running daemon tells its operator: the status snapshot, the control socket and
the Prometheus page.
"""
