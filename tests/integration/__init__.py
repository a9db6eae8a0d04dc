"""
Tests over real loopback sockets and the real reactor, and of the real
programs in processes of their own.
"""
