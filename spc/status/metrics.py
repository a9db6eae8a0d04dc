# -*- test-case-name: tests.unit.test_metrics,tests.memory.test_metrics,tests.integration.test_metrics -*-
"""
The daemon's figures for Prometheus (C{--metrics ENDPOINT}), the same
ones C{spc status} shows, read from a L{StatusSource} at each scrape.

The page is rendered in the reactor thread: the collector reads live
sessions, which only the reactor thread may touch, so
C{prometheus_client.twisted.MetricsResource} (a WSGI app on the reactor's
thread pool) is not used.  File names are not labels: they would grow
the series without bound and tell more than an operator's dashboard
needs, so transfers are counted and summed per session and direction.

C{prometheus_client} is optional (C{pip install spc[metrics]}).
"""

from __future__ import annotations

import importlib.util

from twisted.web.resource import Resource
from twisted.web.server import Site

from spc.errors import ConfigurationError
from spc.status.snapshot import StatusSource

__all__ = ["StatusCollector", "checkAvailable", "metricsFactory"]

SESSION_LABELS = ["session", "peer", "name"]
CHANNEL_LABELS = ["session", "peer", "channel", "suite"]
TRANSFER_LABELS = ["session", "peer", "direction"]


def checkAvailable() -> None:
    """
    @raise ConfigurationError: when C{prometheus_client} is not installed.
    """
    if importlib.util.find_spec("prometheus_client") is None:
        raise ConfigurationError(
            "--metrics needs prometheus_client: pip install 'spc[metrics]'"
        )


class StatusCollector:
    """
    A custom collector: one snapshot per scrape, turned into metric
    families.
    """

    def __init__(self, source: StatusSource) -> None:
        self._source = source

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        snapshot = self._source.snapshot()
        daemon = snapshot.daemon
        yield GaugeMetricFamily("spc_uptime_seconds", "Seconds since start.", daemon.uptime)
        yield GaugeMetricFamily("spc_sessions", "Live sessions.", daemon.sessions)
        yield GaugeMetricFamily(
            "spc_pending_handshakes",
            "Connections in their handshake, or refused and not yet gone.",
            daemon.pendingHandshakes,
        )
        gauge, counter = GaugeMetricFamily, CounterMetricFamily
        age = gauge("spc_session_age_seconds", "Session age.", labels=SESSION_LABELS)
        epoch = gauge("spc_session_epoch", "Committed key epoch.", labels=SESSION_LABELS)
        channelEpoch = gauge("spc_channel_epoch", "Sending epoch.", labels=CHANNEL_LABELS)
        rtt = gauge("spc_channel_rtt_seconds", "Heartbeat round trip.", labels=CHANNEL_LABELS)
        sent = counter("spc_channel_sent_bytes", "Bytes written.", labels=CHANNEL_LABELS)
        received = counter("spc_channel_received_bytes", "Bytes read.", labels=CHANNEL_LABELS)
        files = gauge("spc_transfers", "Files in progress.", labels=TRANSFER_LABELS)
        done = gauge("spc_transfer_done_bytes", "Bytes received.", labels=TRANSFER_LABELS)
        size = gauge("spc_transfer_size_bytes", "Bytes in all.", labels=TRANSFER_LABELS)
        for session in snapshot.sessions:
            who = [session.session, session.peer]
            age.add_metric(who + [session.name or ""], session.age)
            epoch.add_metric(who + [session.name or ""], session.epoch)
            for channel in session.channels:
                labels = who + [str(channel.index), channel.suite]
                channelEpoch.add_metric(labels, channel.epoch)
                if channel.rtt is not None:
                    rtt.add_metric(labels, channel.rtt)
                sent.add_metric(labels, channel.sent)
                received.add_metric(labels, channel.received)
            for direction in ("in", "out"):
                listed = [t for t in session.transfers if t.direction == direction]
                if listed:
                    files.add_metric(who + [direction], len(listed))
                    done.add_metric(who + [direction], sum(t.done for t in listed))
                    size.add_metric(who + [direction], sum(t.size for t in listed))
        yield from (age, epoch, channelEpoch, rtt, sent, received, files, done, size)


class MetricsPage(Resource):
    """
    The exposition page, rendered in the reactor thread.
    """

    isLeaf = True

    def __init__(self, registry) -> None:
        super().__init__()
        self._registry = registry

    def render_GET(self, request) -> bytes:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode())
        return generate_latest(self._registry)


class MetricsSite(Site):
    """
    A site without an access log: a scraper every few seconds would fill
    the daemon's log with the same line.
    """

    noisy = False

    def log(self, request) -> None:
        pass


def metricsFactory(source: StatusSource) -> Site:
    """
    The web site a C{--metrics} endpoint serves: the figures at any path
    (C{/metrics} by convention).
    """
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(source))
    return MetricsSite(MetricsPage(registry))
