# -*- test-case-name: tests.unit.test_layout -*-
"""
Structured log events and their JSON form.
"""
