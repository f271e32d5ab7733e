"""Database faults: PostgreSQL stopped and started again under load, with the API (granian,
a separate process) left running. Requests during the outage fail with 503 problem bodies,
never a 500; the pool recovers by itself; no booking is half written.

The test owns a dedicated embedded server in its own folder, so stopping it touches no
other test.
"""
from __future__ import annotations

import asyncio
import itertools
import shutil
import tempfile
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from myhibachi.core import migrate
from myhibachi.core.app import create_app
from myhibachi.core.db import Database, embedded_server, embedded_url, pg_ctl, stop_embedded
from myhibachi.core.errors import MEDIA_TYPE
from myhibachi.core.settings import Settings
from tests.conftest import all_installed, free_port
from tests.core.conftest import booking_body
from tests.reliability.conftest import add_location, SECRET, start_api, stop, super_admin_and_customer, wait_healthy


@pytest.fixture
def own_server():
    # Outside /tmp/pytest-of-<user>, as the session's server: another pytest run as the same
    # user resets that folder to 0700, and the server's own user would lose its data folder.
    home = Path(tempfile.mkdtemp(prefix="myhibachi-test-pg-"))
    server = embedded_server(home)
    url = embedded_url(server)
    migrate.upgrade(url, all_installed())
    yield home, url
    stop_embedded(home)
    del server
    shutil.rmtree(home, ignore_errors=True)


_days = itertools.cycle(range(3, 170))


def unique_start() -> str:
    """Evenings spread over the bookable months (the location takes many events at once)."""
    day = datetime.now().date() + timedelta(days=next(_days))
    return datetime.combine(day, datetime.min.time()).replace(hour=17).isoformat()


async def outage(home, phase: dict) -> None:
    """Load runs meanwhile: 1.5 s up, stopped ("fast": sessions cut), 2 s down, started again, 3 s up."""
    await asyncio.sleep(1.5)
    phase["now"] = "stopping"
    await asyncio.to_thread(stop_embedded, home)
    phase["now"] = "down"
    await asyncio.sleep(2.0)
    phase["now"] = "starting"
    done = await asyncio.to_thread(pg_ctl, home, "-w", "-l", str(home / "pgdata" / "restart.log"), "restart")
    assert done.returncode == 0, done.stdout + done.stderr
    phase["now"] = "after"
    await asyncio.sleep(3.0)


async def test_requests_during_a_database_restart_get_503_and_the_api_recovers(own_server, tmp_path):
    """Seen failing when ``is_unavailable`` stopped recognising psycopg's OperationalError:
    the outage answered 500 "Internal error", and the requests after it got no answer."""
    home, url = own_server
    settings = Settings(home=tmp_path / "setup", database_url=url, secret_key=SECRET)
    db = Database(url)
    ctx = create_app([], settings=settings, database=db).state.ctx
    staff, customer, _ = await super_admin_and_customer(db, ctx)
    await db.close()

    port = free_port()
    api = start_api(tmp_path / "api", url, port)
    # (phase when sent, phase when answered, status, content type, body)
    answers: list[tuple[str, str, int, str, dict | None]] = []
    phase = {"now": "before"}
    created: list[str] = []
    try:
        wait_healthy(port, api)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            await add_location(client, staff)
            stopping = asyncio.Event()

            async def load(n: int) -> None:
                while not stopping.is_set():
                    sent = phase["now"]
                    try:
                        if n % 2:
                            r = await client.post("/v1/bookings", json=booking_body(starts_at=unique_start()),
                                                  headers={**customer, "Idempotency-Key": str(uuid.uuid4())})
                        else:
                            r = await client.get("/v1/bookings", headers=staff)
                    except httpx.HTTPError as exc:  # no answer at all: as bad as a 500
                        answers.append((sent, phase["now"], 0, type(exc).__name__, None))
                        continue
                    body = r.json() if r.content else None
                    answers.append((sent, phase["now"], r.status_code, r.headers.get("content-type", ""), body))
                    if r.status_code == 201:
                        created.append(body["id"])
                    await asyncio.sleep(0.01)

            loaders = [asyncio.create_task(load(n)) for n in range(6)]
            try:
                await outage(home, phase)
            finally:
                stopping.set()
                await asyncio.gather(*loaders)
        assert api.poll() is None  # the same API process served throughout
    finally:
        stop(api)

    by_phase: dict[str, list[int]] = {}
    for sent, _, status, _, _ in answers:
        by_phase.setdefault(sent, []).append(status)
    summary = {p: sorted(set(s)) for p, s in by_phase.items()}
    assert all(0 < s < 500 or s == 503 for _, _, s, _, _ in answers), summary
    assert all(ct.startswith(MEDIA_TYPE) and body["type"].endswith("/unavailable")
               for _, _, s, ct, body in answers if s == 503)
    assert by_phase.get("down") and set(by_phase["down"]) == {503}, summary  # sent while it was down
    assert {s for _, answered, s, _, _ in answers if answered == "before"} <= {200, 201}, summary
    after = by_phase["after"]
    assert len(after) > 20 and set(after[-12:]) <= {200, 201}, summary  # the pool recovered by itself

    db = Database(url)
    try:
        async with db.read() as conn:
            ids = {str(i) for i in await conn.scalars(sa.text("SELECT id FROM bookings"))}
            orphans = await conn.scalar(sa.text(
                "SELECT count(*) FROM bookings b WHERE NOT EXISTS (SELECT 1 FROM outbox_events e "
                "WHERE e.name = 'booking.created' AND e.payload->>'booking_id' = b.id::text)"))
            unkeyed = await conn.scalar(sa.text(
                "SELECT count(*) FROM bookings b WHERE NOT EXISTS (SELECT 1 FROM idempotency_keys k "
                "WHERE k.response->>'id' = b.id::text)"))
    finally:
        await db.close()
    assert set(created) <= ids  # every booking acknowledged is there
    assert orphans == 0 and unkeyed == 0  # and none lacks its event or its stored response
