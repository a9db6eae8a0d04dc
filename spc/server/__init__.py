# -*- test-case-name: tests.unit.test_layout -*-
"""
The server side: the service that listens, the session directory and its limits, the
inbox that stores what arrives, and the daemon that twistd runs.
"""
