"""Probe plugins for the event bus, worker and idempotency tests.

Effects go to ``probe_effects``, a table without any unique constraint, so a handler or a
route that ran twice leaves two rows. Its DDL lives here, not on the shared metadata, so
no migration carries it.
"""
from __future__ import annotations

import asyncio
import os
import uuid

import sqlalchemy as sa
from pydantic import BaseModel

from myhibachi.core import Plugin, hookimpl  # noqa: F401  (re-exported for tests)
from myhibachi.core.errors import Problem
from myhibachi.core.events import publish
from myhibachi.core.idempotency import idempotent
from myhibachi.core.ratelimit import limit

EFFECTS_DDL = (
    "CREATE TABLE IF NOT EXISTS probe_effects ("
    " id bigserial PRIMARY KEY, kind text NOT NULL, ref text NOT NULL, pid int NOT NULL,"
    " at timestamptz NOT NULL DEFAULT clock_timestamp())"
)

# Per-process switches the tests flip: how many first attempts fail, whether handlers always fail.
FAIL_FIRST: dict[str, int] = {}
ALWAYS_FAIL = {"on": False}


async def record(conn, kind: str, ref: str) -> None:
    await conn.run(sa.text("INSERT INTO probe_effects (kind, ref, pid) VALUES (:k, :r, :p)"),
                       {"k": kind, "r": ref, "p": os.getpid()})


async def effects(conn, kind: str) -> dict[str, int]:
    rows = await conn.fetch_all("SELECT ref, count(*) AS n FROM probe_effects WHERE kind = :k GROUP BY ref",
                                {"k": kind})
    return {r["ref"]: r["n"] for r in rows}


async def on_booking_created(conn, event, ctx) -> None:
    await record(conn, "handled", event["id"])
    key = event["payload"].get("tag", "")
    if ALWAYS_FAIL["on"]:
        raise RuntimeError("probe handler always fails")
    if FAIL_FIRST.get(key, 0) >= event["attempt"]:
        raise RuntimeError(f"probe handler fails attempt {event['attempt']}")
    delay = float(os.environ.get("PROBE_HANDLER_SLEEP", "0"))
    if delay:
        await asyncio.sleep(delay)


class Thing(BaseModel):
    tag: str


class Charge(BaseModel):
    id: uuid.UUID
    tag: str


async def on_booking_created_failing(conn, event, ctx) -> None:
    raise RuntimeError("this subscriber always fails")


class ProbePlugin(Plugin):
    """Subscribes one handler to booking.created and publishes from a route."""

    name = "probe"
    version = "1.0.0"
    flag = "FEATURE_FLAG_PROBE"

    @hookimpl
    def register_event_handlers(self):
        return {"booking.created": [on_booking_created]}

    @hookimpl
    def register_tasks(self, huey, ctx):
        from myhibachi.core.tasks import async_task

        @async_task(huey, lambda: ctx, name="probe.record")
        async def probe_task(ctx, ref: str) -> None:
            async with ctx.db.transaction() as conn:
                await record(conn, "task", ref)

        self.task = probe_task
        ctx.add_poller("probe.due", send_due)

    @hookimpl
    def register_routes(self, router, ctx):
        from fastapi import Depends, Request

        from myhibachi.core.db import Conn
        from myhibachi.core.routing import Connection

        @router.post("/probe/charges", response_model=Charge, status_code=201)
        @idempotent
        async def charge(body: Thing, conn: Conn = Connection) -> Charge:
            await record(conn, "charge", body.tag)
            await asyncio.sleep(float(os.environ.get("PROBE_ROUTE_SLEEP", "0.2")))
            if body.tag == "refused":
                raise Problem(409, "Conflict", "refused by the probe", kind="conflict")
            return Charge(id=uuid.uuid4(), tag=body.tag)

        @router.post("/probe/charges-fn", response_model=Charge, status_code=201)
        @idempotent
        async def charge_function_scope(body: Thing, conn: Conn = Connection) -> Charge:
            await record(conn, "charge", body.tag)
            await record(conn, "charge-tx", await conn.scalar(sa.text("SELECT pg_current_xact_id()::text")))
            await asyncio.sleep(float(os.environ.get("PROBE_ROUTE_SLEEP", "0.2")))
            return Charge(id=uuid.uuid4(), tag=body.tag)

        @router.post("/probe/charges-own", response_model=Charge, status_code=201)
        @idempotent
        async def charge_own_transaction(body: Thing) -> Charge:
            async with ctx.db.transaction() as conn:
                await record(conn, "charge", body.tag)
            await asyncio.sleep(float(os.environ.get("PROBE_ROUTE_SLEEP", "0.2")))
            return Charge(id=uuid.uuid4(), tag=body.tag)

        @router.post("/probe/notes", response_model=Charge, status_code=201)
        @idempotent(required=False)
        async def note(body: Thing, conn: Conn = Connection) -> Charge:
            await record(conn, "note", body.tag)
            return Charge(id=uuid.uuid4(), tag=body.tag)

        @router.get("/probe/ping", response_model=Thing)
        async def ping() -> Thing:
            return Thing(tag="pong")

        @router.get("/probe/strict", response_model=Thing, dependencies=[Depends(limit(2, 60, per="ip"))])
        async def strict() -> Thing:
            return Thing(tag="strict")

        @router.get("/probe/strict-user", response_model=Thing, dependencies=[Depends(limit(2, 60))])
        async def strict_user() -> Thing:
            return Thing(tag="strict-user")

        @router.post("/probe/things", response_model=Thing, status_code=201)
        async def create_thing(body: Thing, conn: Conn = Connection) -> Thing:
            await record(conn, "thing", body.tag)
            await publish(conn, ctx, "booking.created", {"tag": body.tag}, actor="customer-1")
            return body


due_rows = sa.Table(
    "probe_due", sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=False),
)
DUE_DDL = ("CREATE TABLE IF NOT EXISTS probe_due (id serial PRIMARY KEY, status text NOT NULL,"
           " scheduled_at timestamptz NOT NULL)")


async def send_due(ctx, limit: int = 100) -> int:
    """A poller: claim due rows, 'send' each (an effect), mark it sent, all in one transaction."""
    from myhibachi.core.scheduled import claim_due

    async with ctx.db.transaction() as conn:
        if not await conn.scalar(sa.text("SELECT to_regclass('probe_due') IS NOT NULL")):
            return 0
        rows = await claim_due(conn, due_rows, limit=limit)
        for row in rows:
            await record(conn, "sent", str(row["id"]))
        if rows:
            await conn.run(sa.update(due_rows).where(due_rows.c.id.in_([r["id"] for r in rows]))
                               .values(status="sent"))
    return len(rows)


class FailingPlugin(Plugin):
    """A second subscriber to the same event that always raises."""

    name = "failing"
    version = "1.0.0"

    @hookimpl
    def register_event_handlers(self):
        return {"booking.created": [on_booking_created_failing]}


async def create_effects_table(database) -> None:
    async with database.transaction() as conn:
        await conn.run(sa.text(EFFECTS_DDL))
        await conn.run(sa.text("TRUNCATE probe_effects"))


async def publish_many(ctx, n: int, *, tag: str = "", actor: str | None = "customer-1") -> list[str]:
    ids = []
    async with ctx.db.transaction() as conn:
        for _ in range(n):
            ids.append(str(await publish(conn, ctx, "booking.created", {"tag": tag or uuid.uuid4().hex}, actor=actor)))
    return ids
