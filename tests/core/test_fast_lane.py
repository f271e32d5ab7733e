"""The fast lane of core/db.py: pre-built statements on the driver connection."""
from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from myhibachi.core.db import fetch_all, fetch_one, run
from myhibachi.core.models import outbox_events

_INSERT = sa.insert(outbox_events).values(id=sa.bindparam("id"), name=sa.bindparam("name"),
                                          payload=sa.bindparam("payload", type_=outbox_events.c.payload.type))
_BY_IDS = sa.select(outbox_events.c.id, outbox_events.c.payload).where(
    outbox_events.c.id == sa.func.any(sa.bindparam("ids", type_=ARRAY(outbox_events.c.id.type))))


async def test_fast_lane_runs_in_the_callers_transaction(clean_db):
    """A row written through the fast lane goes with the SQLAlchemy transaction around it:
    rolled back with it, committed with it; JSON parameters are encoded as the column's
    type says (broken on purpose by skipping the statement's bind processors: psycopg
    cannot adapt the dict)."""
    gone, kept = uuid.uuid4(), uuid.uuid4()
    async with clean_db.connect() as conn:
        trans = await conn.begin()
        assert await run(conn, _INSERT, {"id": gone, "name": "booking.created", "payload": {"n": 1}}) == 1
        assert (await fetch_one(conn, _BY_IDS, {"ids": [gone]}))["payload"] == {"n": 1}
        await trans.rollback()
    async with clean_db.begin() as conn:
        await run(conn, _INSERT, {"id": kept, "name": "booking.created", "payload": {"when": "2026-12-01"}})
    async with clean_db.connect() as conn:
        rows = await fetch_all(conn, _BY_IDS, {"ids": [gone, kept]})
    assert rows == [{"id": kept, "payload": {"when": "2026-12-01"}}]


async def test_fast_lane_refuses_in_lists_filled_at_run_time(clean_db):
    """A cached statement with an expanding IN would need one compiled form per length."""
    query = sa.select(outbox_events.c.id).where(outbox_events.c.id.in_(sa.bindparam("ids", expanding=True)))
    async with clean_db.connect() as conn:
        with pytest.raises(ValueError, match="any"):
            await fetch_all(conn, query, {"ids": [uuid.uuid4()]})
        # built per call, its IN list is rendered with the values it holds
        listed = sa.select(outbox_events.c.id).where(outbox_events.c.id.in_([uuid.uuid4(), uuid.uuid4()]))
        assert await fetch_all(conn, listed, cache=False) == []
