"""Observability of a production-shaped API: granian with two worker processes.

``/metrics`` is one view over both workers (prometheus_client's multiprocess mode): the
request counts add up whichever worker answers the scrape, latency is labelled by route
template (never the raw path), and the outbox and pool gauges are there. Each request is
logged as one JSON line carrying its request id.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid

import httpx

from tests.conftest import free_port
from tests.reliability.conftest import ROOT, process_env, stop, wait_healthy

N = 30


def samples(text: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of one metric in a Prometheus text exposition."""
    return {m.group(1): float(m.group(2)) for m in re.finditer(rf"^{name}{{(.*)}} (\S+)$", text, re.M)}


def test_metrics_are_one_view_over_two_workers_and_logs_are_json(db_url, tmp_path):
    """Broken on purpose: the route label taken from the raw path (red: 30 label sets); the
    multiprocess collector left out of the scrape (red: counts differ per worker)."""
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    port = free_port()
    log_path = tmp_path / "api.log"
    env = process_env(tmp_path / "home", db_url, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    (tmp_path / "home").mkdir()
    api = subprocess.Popen(
        [sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "2", "--log-level", "warning", "myhibachi.core.app:serve"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(log_path, "wb"))
    try:
        wait_healthy(port, api)
        base = f"http://127.0.0.1:{port}"
        ids = [str(uuid.uuid4()) for _ in range(N)]
        for booking_id in ids:  # a new connection each: the kernel spreads them over both workers
            with httpx.Client(base_url=base, timeout=10) as c:
                got = c.get(f"/v1/bookings/{booking_id}", headers={"x-request-id": f"rid-{booking_id}"})
                assert got.status_code == 401 and got.headers["x-request-id"] == f"rid-{booking_id}"

        counts = []
        for _ in range(6):
            with httpx.Client(base_url=base, timeout=10) as c:
                text = c.get("/metrics").text
            requests = samples(text, "myhibachi_http_requests_total")
            route = '{method="GET",route="/v1/bookings/{booking_id}",status="401"}'[1:-1]
            counts.append(requests.get(route))
        assert counts == [N] * 6, counts  # every scrape the same sum, whichever worker answered

        buckets = samples(text, "myhibachi_http_request_seconds_bucket")
        routes = {re.search(r'route="([^"]*)"', labels).group(1) for labels in buckets}
        assert "/v1/bookings/{booking_id}" in routes and not any(i in text for i in ids)
        assert [v for k, v in buckets.items() if "{booking_id}" in k and 'le="+Inf"' in k] == [N], buckets
        assert re.search(r"^myhibachi_outbox_pending \d", text, re.M), text[:2000]
        assert re.search(r"^myhibachi_outbox_oldest_seconds \d", text, re.M)
        assert re.search(r"^myhibachi_event_dead_letters \d", text, re.M)
        assert samples(text, "myhibachi_db_pool_in_use"), "no pool gauge"
        pids = {p.name.split("_")[-1] for p in metrics_dir.glob("counter_*.db")}
        assert len(pids) == 2, f"one worker answered everything: {pids}"
    finally:
        stop(api)

    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    [line] = [x for x in lines if x.get("request_id") == f"rid-{ids[0]}"]
    assert line["logger"] == "myhibachi.access" and line["route"] == "/v1/bookings/{booking_id}"
    assert line["status"] == 401 and line["method"] == "GET" and line["duration_ms"] >= 0
    assert "principal" in line and line["level"] == "info"
