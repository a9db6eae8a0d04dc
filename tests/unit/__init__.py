"""
Tests of code called directly: nothing scheduled, nothing connected.
"""
