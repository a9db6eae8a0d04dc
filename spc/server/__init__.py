"""
The server side: the service that listens, the session directory and its limits, and the
inbox that stores what arrives.
"""
