"""
Tests with a fake reactor: C{task.Clock}, C{iosim}, C{StringTransport} and
C{MemoryReactor}; never the real reactor or a real socket.
"""
