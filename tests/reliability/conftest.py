"""Shared parts of the reliability suite: the app with every installed plugin and flag on,
a super-admin key and a customer, and helpers to run API servers and workers as processes."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from myhibachi.core.auth import create_api_key, issue_access_token
from myhibachi.core.customers import create_customer
from myhibachi.core.db import Database
from myhibachi.core.plugins import discover

ROOT = Path(__file__).resolve().parents[2]
SECRET = "test-secret-key-0123456789abcdef"


def installed_plugins() -> list[str]:
    return sorted(discover())


def all_flags_on() -> dict[str, bool]:
    from tests.conftest import all_installed

    return {r.flag: True for r in all_installed().records.values() if r.flag}


def loopless_database(url: str) -> Database:
    """A handle usable from any event loop (schemathesis' ASGI client runs the app on a loop
    of its own per request): each loop opens small pools of its own."""
    return Database(url, pool_size=1)


async def super_admin_and_customer(db, ctx) -> tuple[dict[str, str], dict[str, str], object]:
    """Auth headers of a ``*`` API key and of a real customer (PII sealed), and the customer id."""
    async with db.transaction() as conn:
        key, _ = await create_api_key(conn, ctx.settings, name="reliability super-admin", scopes=["*"])
        customer = await create_customer(conn, ctx, email=f"{uuid.uuid4().hex[:12]}@example.com", name="Ana Cook",
                                         phone="+12025550123")
    token, _ = issue_access_token(ctx.settings, subject=str(customer["id"]), kind="customer")
    return {"Authorization": f"Bearer {key}"}, {"Authorization": f"Bearer {token}"}, customer["id"]


async def add_location(client: httpx.AsyncClient, staff: dict[str, str], events_per_slot: int = 1000) -> int:
    """A location serving zip 12345 (what ``booking_body`` books) when the locations plugin is
    installed; returns the status (201, or 404 without the plugin)."""
    r = await client.post("/v1/locations", headers=staff, json={
        "name": "Springfield", "address": "1 Grill Ave", "city": "Springfield", "state": "NY",
        "zip_code": "12345", "time_zone": "America/New_York", "capacity": 100,
        "events_per_slot": events_per_slot, "service_area": {"zip_codes": ["12345"]}})
    assert r.status_code in (201, 404), r.text
    return r.status_code


def process_env(home: Path, db_url: str, **extra: str) -> dict[str, str]:
    """Environment of an API or worker process: every installed plugin, its flags file in ``home``."""
    env = {**os.environ, "DATABASE_URL": db_url, "MYHIBACHI_HOME": str(home), "MYHIBACHI_SECRET_KEY": SECRET,
           "MYHIBACHI_RATE_LIMIT_IP": "0", "MYHIBACHI_RATE_LIMIT_PRINCIPAL": "0", "PYTHONPATH": str(ROOT)}
    env.pop("REDIS_URL", None)
    env.update(extra)
    return env


def start_api(home: Path, db_url: str, port: int, **extra: str) -> subprocess.Popen:
    """The API as production runs it: granian, one worker, the app factory."""
    home.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1", "--log-level", "warning", "myhibachi.core.app:create_app"],
        env=process_env(home, db_url, **extra), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the API exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the API on port {port} never became healthy")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
