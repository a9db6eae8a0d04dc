# -*- test-case-name: tests.unit.test_layout -*-
"""
Identities, fingerprints, trust files (known_hosts, authorized_keys), TLS certificates, and
the careful reading and writing of key files.
"""
