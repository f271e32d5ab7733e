"""OpenTelemetry request spans (MYHIBACHI_TRACING): named by the route template, with the
status; off by default, where nothing is installed."""
from __future__ import annotations

import uuid

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from myhibachi.core.metrics import traced


async def test_a_traced_request_is_a_span_named_by_its_route_template(make_app, client_of, customer):
    """Broken on purpose: without traced() installing the instrumentation no span is exported
    (red); with the raw path as its name the template assertion fails (red)."""
    app = make_app()
    spans = InMemorySpanExporter()
    traced(app, "console", exporter=spans)
    ana = await customer()
    missing = uuid.uuid4()
    async with client_of(app) as c:
        got = await c.get(f"/v1/bookings/{missing}", headers=ana.headers)
        assert (await c.get("/healthz")).status_code == 200
    assert got.status_code == 404
    app.state.tracer_provider.force_flush()
    server = [s for s in spans.get_finished_spans() if s.kind.name == "SERVER"]
    assert [(s.name, s.attributes.get("http.route"), s.attributes.get("http.status_code")) for s in server] == [
        ("GET /v1/bookings/{booking_id}", "/v1/bookings/{booking_id}", 404)]
    assert all(str(missing) not in s.name for s in spans.get_finished_spans())


async def test_tracing_is_off_by_default(make_app):
    app = make_app()
    assert not hasattr(app.state, "tracer_provider")
    assert not any("OpenTelemetry" in type(m.cls).__name__ or "OpenTelemetry" in m.cls.__name__
                   for m in app.user_middleware)
