# -*- test-case-name: tests.test_layout -*-
"""
Structured log events and their JSON form.
"""
