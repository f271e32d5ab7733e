"""The one connection type (``myhibachi.core.db.Conn``): its methods, transactions and savepoints."""
from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from myhibachi.core.models import outbox_events

_INSERT = sa.insert(outbox_events).values(id=sa.bindparam("id"), name=sa.bindparam("name"),
                                          payload=sa.bindparam("payload", type_=outbox_events.c.payload.type))
_BY_IDS = sa.select(outbox_events.c.id, outbox_events.c.payload).where(
    outbox_events.c.id == sa.func.any(sa.bindparam("ids", type_=ARRAY(outbox_events.c.id.type))))


async def test_a_transaction_commits_or_rolls_back_as_a_whole(clean_db):
    """JSON parameters are encoded as the column's type says (broken on purpose by skipping
    the statement's bind processors: psycopg cannot adapt the dict)."""
    gone, kept = uuid.uuid4(), uuid.uuid4()
    try:
        async with clean_db.transaction() as conn:
            assert await conn.run(_INSERT, {"id": gone, "name": "booking.created", "payload": {"n": 1}}) == 1
            assert (await conn.fetch_one(_BY_IDS, {"ids": [gone]}))["payload"] == {"n": 1}
            raise LookupError
    except LookupError:
        pass
    async with clean_db.transaction() as conn:
        await conn.run(_INSERT, {"id": kept, "name": "booking.created", "payload": {"when": "2026-12-01"}})
    async with clean_db.read() as conn:
        rows = await conn.fetch_all(_BY_IDS, {"ids": [gone, kept]})
    assert rows == [{"id": kept, "payload": {"when": "2026-12-01"}}]


async def test_a_savepoint_rolls_back_alone(clean_db):
    first, second = uuid.uuid4(), uuid.uuid4()
    async with clean_db.transaction() as conn:
        await conn.run(_INSERT, {"id": first, "name": "a", "payload": {}})
        try:
            async with conn.savepoint():
                await conn.run(_INSERT, {"id": second, "name": "b", "payload": {}})
                raise LookupError
        except LookupError:
            pass
    async with clean_db.read() as conn:
        assert await conn.scalars(sa.select(outbox_events.c.name).order_by(outbox_events.c.name)) == ["a"]


async def test_in_lists_text_many_rows_and_scalars(clean_db):
    """A statement built per call with an ``IN`` list of values, an ``expanding`` bind filled
    at run time, SQL text with named binds, and one statement run for many rows."""
    ids = [uuid.uuid4() for _ in range(3)]
    async with clean_db.transaction() as conn:
        assert await conn.run(_INSERT, [{"id": i, "name": f"n{k}", "payload": {"k": k}} for k, i in enumerate(ids)]) == 3
        listed = sa.select(outbox_events.c.name).where(outbox_events.c.id.in_(ids[:2])).order_by(outbox_events.c.name)
        assert await conn.scalars(listed) == ["n0", "n1"]
        expanding = sa.select(outbox_events.c.name).where(
            outbox_events.c.id.in_(sa.bindparam("ids", expanding=True))).order_by(outbox_events.c.name)
        assert await conn.scalars(expanding, {"ids": ids[1:]}) == ["n1", "n2"]
        assert await conn.scalar("SELECT payload->>'k' FROM outbox_events WHERE name = :name", {"name": "n2"}) == "2"
        assert await conn.fetch_one("SELECT 1 AS one WHERE false") is None
        assert await conn.scalar("SELECT count(*) FROM outbox_events WHERE payload @> :doc", {"doc": {"k": 1}}) == 1


async def test_read_connections_commit_each_statement(clean_db):
    """``db.read()``: autocommit, so two statements are two transactions (broken on purpose: a
    read pool without autocommit makes them share one)."""
    async with clean_db.read() as conn:
        first, second = await conn.scalar("SELECT txid_current()"), await conn.scalar("SELECT txid_current()")
        assert not conn.in_transaction
    async with clean_db.transaction() as conn:
        third, fourth = await conn.scalar("SELECT txid_current()"), await conn.scalar("SELECT txid_current()")
    assert first != second and third == fourth


async def test_callbacks_around_the_commit(clean_db):
    seen = []
    async with clean_db.transaction() as conn:
        async def before():
            seen.append(("before", await conn.scalar("SELECT 1")))

        conn.before_commit.append(before)
        conn.after_commit.append(lambda: seen.append(("after", None)))
    assert seen == [("before", 1), ("after", None)]
    try:
        async with clean_db.transaction() as conn:
            conn.after_commit.append(lambda: seen.append(("rolled back", None)))
            raise LookupError
    except LookupError:
        pass
    assert seen[-1] == ("after", None)


async def test_a_failed_write_rolls_back_the_whole_transaction(clean_db):
    """A write is seen by the next statement of its transaction; one that fails raises and
    nothing of the transaction is stored, the writes before it included."""
    import psycopg.errors

    first = uuid.uuid4()
    async with clean_db.transaction() as conn:
        await conn.run(_INSERT, {"id": first, "name": "first", "payload": {"n": 1}})
        assert (await conn.fetch_one(_BY_IDS, {"ids": [first]}))["payload"] == {"n": 1}
    second = uuid.uuid4()
    with pytest.raises(psycopg.errors.UniqueViolation):
        async with clean_db.transaction() as conn:
            await conn.run(_INSERT, {"id": second, "name": "kept?", "payload": {}})
            await conn.run(_INSERT, {"id": first, "name": "duplicate", "payload": {}})
    async with clean_db.read() as conn:
        assert await conn.scalars(sa.select(outbox_events.c.name).order_by(outbox_events.c.name)) == ["first"]


async def test_a_statement_built_for_one_call_leaves_the_compiled_cache(clean_db):
    """A statement built per call (its values inside it) is compiled for that call and then
    forgotten, while one built once stays compiled. Broken on purpose by holding the
    statement strongly in the cache: fifty 100 kB statements stay in memory (red)."""
    import gc

    from myhibachi.core import db

    async with clean_db.transaction() as conn:
        await conn.fetch_one(_BY_IDS, {"ids": []})
        before = len(db._COMPILED)
        for n in range(50):
            big = sa.select(sa.literal("x" * 100_000 + str(n)).label("v"))
            assert (await conn.scalar(big)).endswith(str(n))
        del big
        gc.collect()
        assert len(db._COMPILED) <= before
        assert any(entry[0]() is _BY_IDS for entry in db._COMPILED.values())


async def test_a_stored_document_reads_back_whatever_its_numbers(clean_db):
    """JSON columns are parsed by orjson; a number it refuses (beyond a double) is parsed by
    the standard library instead of failing the read."""
    async with clean_db.read() as conn:
        row = await conn.fetch_one(sa.text("SELECT CAST('{\"n\": 1e400, \"s\": \"x\"}' AS jsonb) AS big, "
                                           "CAST('[1, 2.5, null]' AS jsonb) AS small"))
    assert row["small"] == [1, 2.5, None]
    assert row["big"] == {"n": 10**400, "s": "x"}  # PostgreSQL keeps the number exact


async def test_a_list_parameter_goes_as_a_binary_array_and_comes_back_as_it_was(clean_db):
    """A list is sent in the binary array format (the text one escapes every element with
    regular expressions): quotes, backslashes, commas, braces and NULLs come back unchanged,
    and strings reach a uuid column through the statement's cast."""
    from psycopg.adapt import PyFormat
    from psycopg.types.array import ListBinaryDumper

    tricky = ['say "hi"', "back\\slash", "a,b", "{braces}", None, "", "NULL", "é ✓"]
    ids = [uuid.uuid4(), uuid.uuid4()]
    async with clean_db.read() as conn:
        assert conn.pg.adapters.get_dumper(list, PyFormat.AUTO) is ListBinaryDumper
        assert await conn.scalar(sa.text("SELECT CAST(:v AS text[])"), {"v": tricky}) == tricky
        assert await conn.scalars(sa.text("SELECT unnest(CAST(:v AS uuid[]))"), {"v": [str(i) for i in ids]}) == ids
        assert await conn.scalar(sa.text("SELECT CAST(:v AS bigint[])"), {"v": [1, 2**40, -3]}) == [1, 2**40, -3]
