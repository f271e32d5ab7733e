"""Prometheus metrics, one view across worker processes, and JSON logs.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``myhibachi up`` sets it for its API workers, each
worker process writing its own files there), ``/metrics`` answers the sum over every worker
(prometheus_client's multiprocess mode); without it, this process's own counters.

Request metrics carry the route template (``/v1/bookings/{booking_id}``), never the raw path,
so their label sets stay as many as the routes. The gauges (database pools, outbox, dead
letters, due periodic jobs, queue depth, flag state age, plugin state) are read when
``/metrics`` is scraped, each read within a timeout.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger("myhibachi.metrics")

MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_DB_GAUGES = """
SELECT (SELECT count(*) FROM outbox_events WHERE dispatched_at IS NULL) AS outbox_pending,
       (SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)
          FROM outbox_events WHERE dispatched_at IS NULL) AS outbox_oldest_seconds,
       (SELECT count(*) FROM event_deliveries WHERE status = 'dead') AS dead_letters,
       (SELECT count(*) FROM event_deliveries WHERE status = 'pending' AND next_attempt_at <= now())
           AS deliveries_due,
       (SELECT count(*) FROM periodic_jobs WHERE next_run_at <= now()) AS periodic_due
"""


class Metrics:
    """The app's metrics on its own registry (several apps can live in one process)."""

    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get(MULTIPROCESS))
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("myhibachi_http_requests_total", "HTTP requests by route template and status",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("myhibachi_http_request_seconds", "HTTP request latency by route template",
                                 ["method", "route"], buckets=BUCKETS, registry=r)
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

        def gauge(name: str, doc: str, labels=(), mode: str = "mostrecent") -> Gauge:
            return Gauge(name, doc, list(labels), registry=r, multiprocess_mode=mode)

        # database-wide values: the last scrape's reading, whichever worker made it
        self.outbox_pending = gauge("myhibachi_outbox_pending", "Events not yet dispatched to their subscribers")
        self.outbox_oldest = gauge("myhibachi_outbox_oldest_seconds", "Age of the oldest undispatched event")
        self.dead_letters = gauge("myhibachi_event_dead_letters", "Event deliveries parked after their last retry")
        self.deliveries_due = gauge("myhibachi_event_deliveries_due", "Event deliveries due now")
        self.periodic_due = gauge("myhibachi_periodic_jobs_due", "Periodic jobs whose run is due")
        self.queue_depth = gauge("myhibachi_task_queue_depth", "Tasks waiting in the task queue")
        # per process: summed (pools) or the worst (flag age) over the live workers
        self.pool_size = gauge("myhibachi_db_pool_connections", "Open connections of the pools", ["pool"], "livesum")
        self.pool_in_use = gauge("myhibachi_db_pool_in_use", "Connections lent out", ["pool"], "livesum")
        self.pool_waiting = gauge("myhibachi_db_pool_waiting", "Requests waiting for a connection", ["pool"],
                                  "livesum")
        self.flag_age = gauge("myhibachi_flag_state_age_seconds",
                              "Seconds since the flag state was last confirmed (-1: no state)", mode="livemax")
        self.plugin_state = gauge("myhibachi_plugin_state", "1 for each plugin's state", ["plugin", "state"],
                                  "livemax")

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        # prometheus_client's labels() takes a lock and builds the label key on every call:
        # the children of a route and status are kept (as many as the routes' templates).
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (self.requests.labels(method, route, str(status)),
                                              self.latency.labels(method, route))
        children[0].inc()
        children[1].observe(seconds)

    async def scrape(self, ctx, timeout: float = 1.0) -> bytes:
        await self._update(ctx, timeout)
        if not self.multiprocess:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)
        return generate_latest(merged)

    async def _update(self, ctx, timeout: float) -> None:
        for kind, pool in ctx.db._pools.get(asyncio.get_running_loop(), {}).items():
            stats = pool.get_stats()
            self.pool_size.labels(kind).set(stats.get("pool_size", 0))
            self.pool_in_use.labels(kind).set(stats.get("pool_size", 0) - stats.get("pool_available", 0))
            self.pool_waiting.labels(kind).set(stats.get("requests_waiting", 0))
        age = ctx.flags.age()
        self.flag_age.set(-1 if age is None else age)
        for row in ctx.plugins.states(ctx.flags):
            state = row["state"].split(":")[0].split(" (")[0]  # "failed: <why>" -> failed, "enabled (50%)"
            self.plugin_state.labels(row["name"], state).set(1)

        async def from_db() -> None:
            async with ctx.db.read() as conn:
                row = await conn.fetch_one(sa.text(_DB_GAUGES))
            self.outbox_pending.set(row["outbox_pending"])
            self.outbox_oldest.set(float(row["outbox_oldest_seconds"]))
            self.dead_letters.set(row["dead_letters"])
            self.deliveries_due.set(row["deliveries_due"])
            self.periodic_due.set(row["periodic_due"])

        async def from_queue() -> None:
            self.queue_depth.set(await asyncio.to_thread(ctx.huey.storage.queue_size))

        for name, reading in (("database", from_db()), ("queue", from_queue())):
            try:
                await asyncio.wait_for(reading, timeout)
            except Exception as exc:  # the gauges keep their last value; /readyz reports the outage
                log.debug("metrics: %s gauges not read: %r", name, exc)


# --- JSON logs ---------------------------------------------------------------------------

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the record's extra fields
    (``request_id``, ``route``, ``status``, ``duration_ms``, ``principal`` ...) and the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        doc.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def traced(app, mode: str, exporter=None) -> None:
    """OpenTelemetry spans of every request (named by method and route template, with the
    status), batched to ``exporter``: the console, or OTLP over HTTP where the standard
    OTEL_EXPORTER_OTLP_* variables say. Off (the default), nothing is installed, so tracing
    costs the hot path nothing."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    if exporter is None:
        if mode == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        else:
            exporter = ConsoleSpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "myhibachi"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, excluded_urls="healthz,readyz,metrics")
    app.state.tracer_provider = provider


def configure_logging(fmt: str = "json", level: int = logging.INFO) -> None:
    """Root logging for a server process: JSON lines (or plain text) on stderr."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # the flags client's poll, every few seconds
