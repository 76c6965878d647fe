"""Metrics in the Prometheus text format, with the maintained client library (``prometheus_client``).

- :class:`MetricsMiddleware` (pure ASGI, outermost) counts every answer by method, route template
  (``/collections/{collection_id}/items``, never the raw path) and status, and observes its latency
  per route template. The labels are bounded: routes are the app's own, unknown methods are ``other``,
  paths that match no route are ``unmatched``.
- Everything else is read when ``/metrics`` is scraped (a custom collector), so requests pay nothing
  for it: the read model's version, age and size, the database pool, refusals by the rate limits.

Nothing personal is a label or a value: no client address, token, path parameter or query.
Each app has its own registry; with several worker processes, each answers with its own figures
(run replicas with one worker each to scrape them one by one).
"""

from __future__ import annotations

import time
from time import perf_counter
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """The app's registry and its request metrics."""

    def __init__(self, app):
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("coopgis_http_requests", "HTTP requests answered, by method, route template and "
                                "status", ("method", "route", "status"), registry=self.registry)
        self.latency = Histogram("coopgis_http_request_duration_seconds", "Time to answer a request (until its "
                                 "last byte was handed to the server), by route template", ("route",),
                                 buckets=BUCKETS, registry=self.registry)
        self.registry.register(_StateCollector(app))


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template.

    The labelled children are looked up once per (method, route, status) and kept: a request pays an
    ``inc`` and an ``observe``, not prometheus_client's label look-up (the label sets are bounded, see above).
    """

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics
        self._counters: dict[tuple, Any] = {}
        self._histograms: dict[str, Any] = {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = perf_counter()
        status = 500

        async def counted_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counted_send)
        finally:
            elapsed = perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            key = (method if method in METHODS else "other", template, status)   # bounded, like the labels
            counter = self._counters.get(key)
            if counter is None:
                counter = self._counters[key] = self.metrics.requests.labels(key[0], template, str(status))
            counter.inc()
            histogram = self._histograms.get(template)
            if histogram is None:
                histogram = self._histograms[template] = self.metrics.latency.labels(template)
            histogram.observe(elapsed)


class _StateCollector(Collector):
    """Figures read at scrape time: the read model, the database pool, rate-limit refusals."""

    def __init__(self, app):
        self.app = app

    def collect(self):
        state = self.app.state
        rm = state.read_model
        yield InfoMetricFamily("coopgis_read_model", "The store version the read model was loaded from, and the "
                               "store kind", value={"version": str(state.store_version or "-"),
                                                    "store": state.backend.kind})
        yield GaugeMetricFamily("coopgis_read_model_age_seconds", "Seconds since the read model last changed "
                                "(a load, a reload or an applied decision)", value=time.time() - rm.changed_at)
        yield GaugeMetricFamily("coopgis_read_model_changes", "Times the read model changed since the start",
                                value=rm.changes)
        yield GaugeMetricFamily("coopgis_read_model_cooperatives", "Cooperatives in the read model",
                                value=len(state.dataset.cooperatives))
        yield GaugeMetricFamily("coopgis_read_model_ready", "1 when the read model is warmed (built and indexed)",
                                value=1 if rm.warmed.is_set() else 0)
        refusals = GaugeMetricFamily("coopgis_rate_limit_refusals", "Requests refused (429) by the per-client "
                                     "rate limits of this process, by group", labels=("group",))
        for group, n in sorted(state.limits.refusals.items()):
            refusals.add_metric((group,), n)
        yield refusals
        db = state.backend.database
        if db is not None:
            stats = db.stats()
            for key, help_text in (("pool_size", "connections open in the pool"),
                                   ("pool_available", "idle connections in the pool"),
                                   ("requests_waiting", "requests waiting for a connection"),
                                   ("pool_max", "the pool's largest size (COOPGIS_DATABASE_POOL_SIZE)")):
                yield GaugeMetricFamily(f"coopgis_db_{key}", f"Database: {help_text}",
                                        value=stats.get(key, db.pool.max_size if key == "pool_max" else 0))
            for key in ("requests_num", "requests_errors", "connections_errors", "connections_lost"):
                yield GaugeMetricFamily(f"coopgis_db_{key}", f"Database pool counter {key} since the start",
                                        value=stats.get(key, 0))
            listener = getattr(state, "listener", None)
            yield GaugeMetricFamily("coopgis_db_listening", "1 while the replica listens for the database's "
                                    "notifications", value=1 if listener is not None and listener.connected.is_set()
                                    else 0)
