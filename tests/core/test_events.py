"""The event bus: outbox in the caller's transaction, exactly-once effects per subscriber,
retries, dead letter and replay, flag gating, concurrent and crashed dispatchers."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import json
import re

import pytest
import sqlalchemy as sa
from pydantic import BaseModel, ValidationError

from tests.db import rolled_back

from myhibachi.core.auth import create_api_key
from myhibachi.core import Plugin, hookimpl
from myhibachi.core.events import BookingCreated, Event, catalogue, deliver_due, fan_out, publish, purge_settled
from myhibachi.core.plugins import PluginError
from myhibachi.core.scheduled import periodic_jobs_of
from myhibachi.plugins.comms import CommsPlugin
from myhibachi.plugins.deposits import DepositsPlugin
from myhibachi.core.models import event_deliveries, outbox_events
from tests.core import probe
from tests.core.probe import FailingPlugin, ProbePlugin, create_effects_table, effects, publish_many

ROOT = Path(__file__).resolve().parents[2]
SUBSCRIBER = "probe:tests.core.probe.on_booking_created"
FAILING = "failing:tests.core.probe.on_booking_created_failing"
BUILT_IN = ("admin_rbac", "audit", "comms", "deposits", "locations", "loyalty", "reminders")


@pytest.fixture(autouse=True)
async def effects_table(database):
    probe.FAIL_FIRST.clear()
    probe.ALWAYS_FAIL["on"] = False
    await create_effects_table(database)
    yield


async def statuses(db) -> dict[tuple[str, str], tuple[str, int]]:
    async with db.read() as conn:
        rows = await conn.fetch_all(sa.select(event_deliveries.c.event_id, event_deliveries.c.subscriber,
                                              event_deliveries.c.status, event_deliveries.c.attempts))
        return {(str(r["event_id"]), r["subscriber"]): (r["status"], r["attempts"]) for r in rows}


async def make_due(db) -> None:
    """Skip the backoff wait: the retry logic is what is under test, not the clock."""
    async with db.transaction() as conn:
        await conn.run(sa.update(event_deliveries).where(event_deliveries.c.status == "pending")
                           .values(next_attempt_at=sa.func.now() - sa.text("interval '1 second'")))


async def test_publish_is_part_of_the_callers_transaction(make_app):
    ctx = make_app([ProbePlugin()], flags={"FEATURE_FLAG_PROBE": True}).state.ctx
    async with rolled_back(ctx.db) as conn:
        await publish(conn, ctx, "booking.created", {"tag": "rolled-back"})
    async with ctx.db.transaction() as conn:
        event_id = await publish(conn, ctx, "booking.created", {"tag": "kept"}, actor="customer-9")
    async with ctx.db.read() as conn:
        names = await conn.fetch_all(sa.select(outbox_events.c.id, outbox_events.c.payload,
                                               outbox_events.c.subscribers))
    assert [tuple(row.values()) for row in names] == [(event_id, {"tag": "kept"}, [SUBSCRIBER])]
    # The publisher writes the event alone; the dispatcher makes its delivery rows, once.
    assert await statuses(ctx.db) == {}
    assert await fan_out(ctx) == 1 and await fan_out(ctx) == 0
    assert await statuses(ctx.db) == {(str(event_id), SUBSCRIBER): ("pending", 0)}


async def test_publish_refuses_an_event_outside_the_catalogue(make_app):
    ctx = make_app([ProbePlugin()]).state.ctx
    async with ctx.db.transaction() as conn:
        with pytest.raises(ValueError, match="unknown event"):
            await publish(conn, ctx, "booking.exploded", {})


async def test_each_subscriber_gets_each_event_once(make_app):
    ctx = make_app([ProbePlugin(), FailingPlugin()], flags={"FEATURE_FLAG_PROBE": True}).state.ctx
    ids = await publish_many(ctx, 5)
    assert await deliver_due(ctx) == 10
    assert await deliver_due(ctx) == 0  # the failing subscriber waits for its backoff
    async with ctx.db.read() as conn:
        assert await effects(conn, "handled") == {i: 1 for i in ids}
    st = await statuses(ctx.db)
    assert {st[(i, SUBSCRIBER)] for i in ids} == {("done", 1)}
    assert {st[(i, FAILING)] for i in ids} == {("pending", 1)}


async def test_exactly_once_across_a_retry(make_app):
    """A handler that writes, then fails on its first attempt: its write happens once in all."""
    ctx = make_app([ProbePlugin()], flags={"FEATURE_FLAG_PROBE": True}).state.ctx
    probe.FAIL_FIRST["flaky"] = 1
    [event_id] = await publish_many(ctx, 1, tag="flaky")
    assert await deliver_due(ctx) == 1
    async with ctx.db.read() as conn:
        assert await effects(conn, "handled") == {}
        delivery = await conn.fetch_one(sa.select(event_deliveries))
    assert delivery["status"] == "pending" and delivery["attempts"] == 1
    assert "fails attempt 1" in delivery["last_error"]
    assert await deliver_due(ctx) == 0  # backoff: not due yet
    await make_due(ctx.db)
    assert await deliver_due(ctx) == 1
    await make_due(ctx.db)
    assert await deliver_due(ctx) == 0
    async with ctx.db.read() as conn:
        assert await effects(conn, "handled") == {event_id: 1}
        dispatched = await conn.scalar(sa.select(outbox_events.c.dispatched_at))
    assert await statuses(ctx.db) == {(event_id, SUBSCRIBER): ("done", 2)}
    assert dispatched is not None


async def test_handler_failure_never_rolls_back_the_publisher(make_app, client_of):
    app = make_app([ProbePlugin(), FailingPlugin()], flags={"FEATURE_FLAG_PROBE": True})
    probe.ALWAYS_FAIL["on"] = True
    async with client_of(app) as c:
        r = await c.post("/v1/probe/things", json={"tag": "kept-thing"})
    assert r.status_code == 201, r.text
    assert await deliver_due(app.state.ctx) == 2
    async with app.state.ctx.db.read() as conn:
        assert await effects(conn, "thing") == {"kept-thing": 1}
        assert await effects(conn, "handled") == {}
    st = await statuses(app.state.ctx.db)
    assert len(st) == 2 and set(st.values()) == {("pending", 1)}


async def test_handlers_of_a_plugin_flagged_off_for_the_actor_are_skipped(make_app):
    app = make_app([ProbePlugin()], flags={"FEATURE_FLAG_PROBE": 50})
    ctx = app.state.ctx
    actors = [f"customer-{i}" for i in range(64)]
    on = next(a for a in actors if ctx.flags.enabled("FEATURE_FLAG_PROBE", {"userId": a}))
    off = next(a for a in actors if not ctx.flags.enabled("FEATURE_FLAG_PROBE", {"userId": a}))
    [in_id] = await publish_many(ctx, 1, actor=on)
    [out_id] = await publish_many(ctx, 1, actor=off)
    assert await deliver_due(ctx) == 2
    async with ctx.db.read() as conn:
        assert await effects(conn, "handled") == {in_id: 1}
    st = await statuses(ctx.db)
    assert st[(in_id, SUBSCRIBER)] == ("done", 1)
    assert st[(out_id, SUBSCRIBER)] == ("skipped", 0)


async def test_handlers_follow_the_rollout_of_the_customer_not_of_who_acted(make_app):
    """A staff action or a webhook about a customer reaches the plugins that customer sees.
    Seen failing when the check used the actor (the staff key) instead of the customer."""
    app = make_app([ProbePlugin()], flags={"FEATURE_FLAG_PROBE": 50})
    ctx = app.state.ctx
    people = [f"customer-{i}" for i in range(64)]
    on = next(p for p in people if ctx.flags.enabled("FEATURE_FLAG_PROBE", {"userId": p}))
    off = next(p for p in people if not ctx.flags.enabled("FEATURE_FLAG_PROBE", {"userId": p}))
    staff = next(a for a in (f"api_key:{i}" for i in range(64))
                 if not ctx.flags.enabled("FEATURE_FLAG_PROBE", {"userId": a}))
    async with ctx.db.transaction() as conn:
        about_on = str(await publish(conn, ctx, "booking.created", {"tag": "a", "customer_id": on}, actor=staff))
        about_off = str(await publish(conn, ctx, "booking.created", {"tag": "b", "customer_id": off}, actor=staff))
    assert await deliver_due(ctx) == 2
    st = await statuses(ctx.db)
    assert st[(about_on, SUBSCRIBER)] == ("done", 1)
    assert st[(about_off, SUBSCRIBER)] == ("skipped", 0)


async def test_dead_letter_after_n_attempts_then_replay(make_app, client_of, settings, db_url, tmp_path):
    app = make_app([ProbePlugin()], flags={"FEATURE_FLAG_PROBE": True})
    ctx = app.state.ctx
    probe.ALWAYS_FAIL["on"] = True
    [event_id] = await publish_many(ctx, 1)
    for _ in range(3):
        await make_due(ctx.db)
        assert await deliver_due(ctx, max_attempts=3) == 1
    await make_due(ctx.db)
    assert await deliver_due(ctx, max_attempts=3) == 0
    assert await statuses(ctx.db) == {(event_id, SUBSCRIBER): ("dead", 3)}

    async with ctx.db.transaction() as conn:
        admin_key, _ = await create_api_key(conn, settings, name="ops", scopes=["events.manage"])
        other_key, _ = await create_api_key(conn, settings, name="other", scopes=["bookings.read"])
    admin = {"Authorization": f"Bearer {admin_key}"}
    async with client_of(app) as c:
        anonymous = await c.get("/v1/admin/events/failed")
        forbidden = await c.get("/v1/admin/events/failed", headers={"Authorization": f"Bearer {other_key}"})
        listed = await c.get("/v1/admin/events/failed", headers=admin)
        bad_cursor = await c.get("/v1/admin/events/failed", params={"cursor": "nope"}, headers=admin)
        unknown = await c.post(f"/v1/admin/events/{uuid.uuid4()}/replay", headers=admin)
    assert anonymous.status_code == 401 and forbidden.status_code == 403
    assert forbidden.json()["permission"] == "events.manage"
    assert listed.status_code == 200, listed.text
    [item] = listed.json()["items"]
    assert item["event_id"] == event_id and item["subscriber"] == SUBSCRIBER and item["attempts"] == 3
    assert "always fails" in item["last_error"] and listed.json()["next_cursor"] is None
    assert bad_cursor.status_code == 422 and bad_cursor.json()["errors"][0]["field"] == "query.cursor"
    assert unknown.status_code == 404

    env = {**os.environ, "DATABASE_URL": db_url, "MYHIBACHI_HOME": str(tmp_path / "cli-home"),
           "MYHIBACHI_SECRET_KEY": settings.secret_key}
    cli = subprocess.run([sys.executable, "-m", "myhibachi.core.cli", "events", "failed"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert event_id in cli.stdout and SUBSCRIBER in cli.stdout

    probe.ALWAYS_FAIL["on"] = False
    async with client_of(app) as c:
        replayed = await c.post(f"/v1/admin/events/{event_id}/replay", headers=admin)
        again = await c.post(f"/v1/admin/events/{event_id}/replay", headers=admin)
    assert replayed.status_code == 200 and replayed.json() == {"event_id": event_id, "requeued": 1}
    assert again.status_code == 404
    assert await deliver_due(ctx, max_attempts=3) == 1
    async with ctx.db.read() as conn:
        assert await effects(conn, "handled") == {event_id: 1}
    assert await statuses(ctx.db) == {(event_id, SUBSCRIBER): ("done", 1)}


async def test_failed_list_pages_with_a_cursor(make_app, client_of, settings):
    app = make_app([ProbePlugin()], flags={"FEATURE_FLAG_PROBE": True})
    probe.ALWAYS_FAIL["on"] = True
    ids = set(await publish_many(app.state.ctx, 5))
    assert await deliver_due(app.state.ctx, max_attempts=1) == 5
    async with app.state.ctx.db.transaction() as conn:
        key, _ = await create_api_key(conn, settings, name="ops", scopes=["events.*"])
    seen, cursor = [], None
    async with client_of(app, headers={"Authorization": f"Bearer {key}"}) as c:
        for _ in range(5):
            page = (await c.get("/v1/admin/events/failed", params={"limit": 2, **({"cursor": cursor} if cursor else {})})).json()
            seen += [i["event_id"] for i in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert len(seen) == 5 and set(seen) == ids


async def test_two_dispatchers_never_run_the_same_delivery(make_app, database):
    ctx = make_app([ProbePlugin()], flags={"FEATURE_FLAG_PROBE": True}).state.ctx
    ids = []
    for _ in range(4):
        ids += await publish_many(ctx, 100)

    async def dispatcher():
        total = 0
        while n := await deliver_due(ctx, limit=25):
            total += n
        return total

    counts = await asyncio.gather(dispatcher(), dispatcher(), dispatcher())
    assert sum(counts) == 400 and all(counts), counts
    async with database.read() as conn:
        got = await effects(conn, "handled")
    assert got == {i: 1 for i in ids}


DISPATCHER = """
import asyncio, sys
from myhibachi.core.app import create_app
from myhibachi.core.events import deliver_due
from myhibachi.core.settings import Settings
from tests.core.probe import ProbePlugin

settings = Settings(home=sys.argv[1], database_url=sys.argv[2], secret_key="test-secret-key-0123456789abcdef")
ctx = create_app([ProbePlugin()], settings=settings).state.ctx
ctx.flags.start()

async def main():
    print("ready", flush=True)
    while True:
        if not await deliver_due(ctx):
            await asyncio.sleep(0.05)

asyncio.run(main())
"""


def start_dispatcher(home: Path, db_url: str, sleep: float) -> subprocess.Popen:
    env = {**os.environ, "PROBE_HANDLER_SLEEP": str(sleep), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", DISPATCHER, str(home), db_url], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


async def wait_until(check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_exactly_once_across_a_killed_worker(make_app, database, db_url, tmp_path):
    ctx = make_app([ProbePlugin()], flags={"FEATURE_FLAG_PROBE": True}).state.ctx
    ids = await publish_many(ctx, 30)

    async def done_count():
        async with database.read() as conn:
            return await conn.scalar(sa.select(sa.func.count()).where(event_deliveries.c.status == "done"))

    async def in_flight():
        async with database.read() as conn:
            return await conn.scalar(sa.text(
                "SELECT count(*) FROM probe_effects e WHERE kind = 'handled' AND NOT EXISTS "
                "(SELECT 1 FROM event_deliveries d WHERE d.event_id::text = e.ref AND d.status = 'done')"
            ))

    worker = start_dispatcher(tmp_path / "w1", db_url, sleep=0.3)
    try:
        assert worker.stdout.readline().strip() == "ready", worker.stderr.read()
        await wait_until(lambda: _at_least(done_count, 3))
        # The handler wrote its effect and now sleeps inside its transaction: kill it there.
        await asyncio.sleep(0.1)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    killed_at = await done_count()
    assert 3 <= killed_at < 30
    assert await in_flight() == 0  # the killed transaction's effect is gone with it

    second = start_dispatcher(tmp_path / "w2", db_url, sleep=0)
    try:
        assert second.stdout.readline().strip() == "ready"
        await wait_until(lambda: _at_least(done_count, 30))
    finally:
        second.terminate()
        second.wait(10)
    async with database.read() as conn:
        got = await effects(conn, "handled")
        pids = await conn.scalar(sa.text("SELECT count(DISTINCT pid) FROM probe_effects"))
    assert got == {i: 1 for i in ids}
    assert pids == 2


async def _at_least(check, n: int) -> bool:
    return await check() >= n


async def stuck_handler(conn, event, ctx) -> None:
    await conn.run(sa.text("SELECT pg_sleep(30)"))


class StuckPlugin(probe.Plugin):
    name = "stuck"
    version = "1.0.0"

    @probe.hookimpl
    def register_event_handlers(self):
        return {"booking.created": [stuck_handler]}


async def test_a_stuck_handler_times_out_as_a_failed_attempt(make_app):
    ctx = make_app([StuckPlugin(), ProbePlugin()], flags={"FEATURE_FLAG_PROBE": True}).state.ctx
    [event_id] = await publish_many(ctx, 1)
    started = time.monotonic()
    assert await deliver_due(ctx, timeout=0.5, max_attempts=1) >= 2  # a broken batch is run again
    assert time.monotonic() - started < 5
    st = await statuses(ctx.db)
    assert st == {(event_id, "stuck:tests.core.test_events.stuck_handler"): ("dead", 1),
                  (event_id, SUBSCRIBER): ("done", 1)}
    async with ctx.db.read() as conn:
        error = await conn.scalar(sa.select(event_deliveries.c.last_error)
                                    .where(event_deliveries.c.status == "dead"))
        assert error.startswith("TimeoutError")
        assert await effects(conn, "handled") == {event_id: 1}


async def test_an_event_nobody_subscribes_to_is_settled_at_once(make_app):
    ctx = make_app([]).state.ctx
    async with ctx.db.transaction() as conn:
        event_id = await publish(conn, ctx, "booking.cancelled", {"booking_id": "b1", "reason": "rain"})
    async with ctx.db.read() as conn:
        row = await conn.fetch_one(sa.select(outbox_events).where(outbox_events.c.id == event_id))
    assert row["dispatched_at"] is not None and row["payload"] == {"booking_id": "b1", "reason": "rain"}
    assert await statuses(ctx.db) == {}


async def test_old_settled_events_are_purged_but_dead_letters_stay(make_app):
    ctx = make_app([ProbePlugin()], flags={"FEATURE_FLAG_PROBE": True}).state.ctx
    assert "core.outbox_retention" in periodic_jobs_of(ctx)
    done_id, dead_id, fresh_id = await publish_many(ctx, 3)
    await fan_out(ctx)
    probe.ALWAYS_FAIL["on"] = True
    async with ctx.db.transaction() as conn:  # only the dead one is due now
        await conn.run(sa.update(event_deliveries).where(event_deliveries.c.event_id != dead_id)
                           .values(next_attempt_at=sa.func.now() + sa.text("interval '1 hour'")))
    assert await deliver_due(ctx, max_attempts=1) == 1
    probe.ALWAYS_FAIL["on"] = False
    async with ctx.db.transaction() as conn:
        await conn.run(sa.update(event_deliveries).values(next_attempt_at=sa.func.now()))
    assert await deliver_due(ctx) == 2
    async with ctx.db.transaction() as conn:
        await conn.run(sa.update(outbox_events).where(outbox_events.c.id != fresh_id)
                           .values(dispatched_at=sa.func.now() - sa.text("interval '31 days'")))
    async with ctx.db.transaction() as conn:
        assert await purge_settled(conn) == 1
    async with ctx.db.read() as conn:
        left = {str(i) for i in await conn.scalars(sa.select(outbox_events.c.id))}
        deliveries = {str(i) for i in await conn.scalars(sa.select(event_deliveries.c.event_id))}
    assert left == deliveries == {dead_id, fresh_id}


async def test_publishing_requests_wake_the_dispatchers_after_commit_a_burst_once_per_window(make_app, client_of,
                                                                                              db_url):
    """A request's events wake the dispatchers from outside its transaction, coalesced: ten
    publishing requests at once send fewer than ten notifications, and the last one comes
    when every event is visible (broken on purpose: with the NOTIFY back in each publishing
    transaction, ten requests send ten)."""
    import psycopg

    from myhibachi.core.db import pool_conninfo
    from myhibachi.core.events import CHANNEL

    app = make_app([ProbePlugin()], flags={"FEATURE_FLAG_PROBE": True})
    ctx = app.state.ctx
    visible: list[int] = []
    async with await psycopg.AsyncConnection.connect(pool_conninfo(db_url), autocommit=True) as listen:
        await listen.execute(f"LISTEN {CHANNEL}")
        async with app.router.lifespan_context(app), client_of(app) as c:
            ctx.waker.window = 0.3
            answers = await asyncio.gather(*[c.post("/v1/probe/things", json={"tag": f"w{i}"}) for i in range(10)])
            async for _ in listen.notifies(timeout=1.5):
                async with ctx.db.read() as conn:
                    visible.append(await conn.scalar(sa.select(sa.func.count()).select_from(outbox_events)))
    assert [a.status_code for a in answers] == [201] * 10
    assert 1 <= len(visible) < 10, visible
    assert visible[-1] == 10


# --- the catalogue: events declared by their publishers ------------------------------------


class TipPaid(BaseModel):
    """A tip was paid."""

    tip_id: str
    amount_cents: int


class Tipping(Plugin):
    name = "tipping"

    @hookimpl
    def register_events(self):
        return [Event("tip.paid", TipPaid)]


class TipWatcher(Plugin):
    """Subscribes to a deposits event and to the tipping plugin's own."""

    name = "tip_watcher"

    @hookimpl
    def register_event_handlers(self):
        async def on_event(conn, event, ctx):
            pass

        return {"payment.succeeded": [on_event], "tip.paid": [on_event]}


class Squatter(Plugin):
    name = "squatter"

    @hookimpl
    def register_events(self):
        return [Event("booking.created", TipPaid)]


async def test_hook_register_events(make_app):
    """The catalogue holds each declared event with its owner, payload fields and doc; a name
    declared twice leaves the second declarer out. Broken on purpose by dropping the owner
    from ``declare``: red."""
    ctx = make_app([DepositsPlugin(), CommsPlugin(), Tipping(), Squatter()], strict_plugins=False).state.ctx
    rows = {r["name"]: r for r in catalogue(ctx)}
    assert rows["payment.succeeded"]["owner"] == "deposits" and rows["message.sent"]["owner"] == "comms"
    assert rows["tip.paid"] == {"name": "tip.paid", "owner": "tipping", "doc": "A tip was paid.", "fields": [
        {"name": "tip_id", "type": "str", "required": True, "description": ""},
        {"name": "amount_cents", "type": "int", "required": True, "description": ""}]}
    assert rows["booking.created"]["owner"] == "core" and rows["webhook.stripe"]["owner"] == "core"
    assert "customer.merged" not in rows
    assert "already declared by core" in ctx.plugins.records["squatter"].reason


async def test_a_subscriber_to_an_event_no_installed_plugin_declares_is_refused(make_app):
    """Without deposits nothing declares payment.*: its subscriber is left out at start-up,
    the reason naming the event and the plugin; with deposits it starts."""
    ctx = make_app([Tipping(), TipWatcher()], strict_plugins=False).state.ctx
    reason = ctx.plugins.records["tip_watcher"].reason
    assert "tip_watcher subscribes to event 'payment.succeeded', which no installed plugin declares" in reason
    assert ctx.plugins.get("tip_watcher") is None and "payment.succeeded" not in ctx.events
    with pytest.raises(PluginError, match="payment.succeeded"):
        make_app([Tipping(), TipWatcher()])  # strict (CI) makes it fatal
    ctx = make_app([DepositsPlugin(), Tipping(), TipWatcher()]).state.ctx
    assert ctx.plugins.get("tip_watcher") is not None


async def test_publishing_an_undeclared_event_raises_and_validation_is_opt_in(make_app):
    ctx = make_app([]).state.ctx
    async with rolled_back(ctx.db) as conn:
        with pytest.raises(ValueError, match="unknown event 'payment.succeeded'"):
            await publish(conn, ctx, "payment.succeeded", {"payment_id": "p1"})
    checked = make_app([], validate_events=True).state.ctx
    async with rolled_back(checked.db) as conn:
        with pytest.raises(ValidationError, match="customer_id"):
            await publish(conn, checked, "booking.cancelled", {"booking_id": "b1"})
        await publish(conn, checked, "booking.cancelled", {"booking_id": "b1", "customer_id": "c1"})


def test_the_catalogue_command_and_the_docs_list_the_built_in_events(monkeypatch):
    """``myhibachi events catalogue`` lists every installed plugin's events with their owner;
    docs/plugins.md holds the generated list of the built-in ones."""
    from typer.testing import CliRunner

    from myhibachi.core.cli import app

    monkeypatch.setenv("MYHIBACHI_PLUGINS", ",".join(BUILT_IN))
    result = CliRunner().invoke(app, ["events", "catalogue", "--json"])
    assert result.exit_code == 0, result.output
    owners = {r["name"]: r["owner"] for r in json.loads(result.output)}
    assert owners["payment.refunded"] == "deposits" and owners["message.opted_out"] == "comms"
    table = CliRunner().invoke(app, ["events", "catalogue"]).output
    assert re.search(r"^payment\.refunded +deposits +payment_id, booking_id", table, re.M)
    markdown = CliRunner().invoke(app, ["events", "catalogue", "--markdown"]).output.strip()
    docs = (ROOT / "docs" / "plugins.md").read_text()
    between = docs.split("<!-- events catalogue: start -->")[1].split("<!-- events catalogue: end -->")[0]
    assert between.strip() == markdown, "regenerate with: myhibachi events catalogue --markdown"


def test_publish_stays_cheap():
    """What validating would cost per publish, measured (the hot path does not validate)."""
    payload = {"booking_id": "b", "customer_id": "c", "starts_at": "2030-01-01T00:00:00+00:00",
               "time_zone": "UTC", "party_size": 10, "total_cents": 1, "extra": {}}
    started = time.perf_counter()
    for _ in range(10_000):
        BookingCreated.model_validate(payload)
    per_call = (time.perf_counter() - started) / 10_000
    assert per_call < 1e-3
