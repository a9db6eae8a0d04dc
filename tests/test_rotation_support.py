"""
A client session with a rotation machine on a fake channel, for tests that
need one without a network.
"""

from twisted.internet import task

from spc.crypto import asymmetric
from tests.test_session import FakeChannel, makeSession

_EXCHANGE_KEY = asymmetric.generateExchangeKey()


def clientSession():
    """
    @return: a client L{spc.session.session.Session} with a rotation machine, and
        its one L{FakeChannel}.
    """
    session = makeSession(clock=task.Clock(), exchangeKey=_EXCHANGE_KEY)
    channel = FakeChannel(0)
    session.attach(channel, 0)
    channel.take()
    return session, channel
