"""The shared cache: answers kept per process, dropped everywhere when a writer commits."""
from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from myhibachi.core.cache import SharedCache
from myhibachi.core.db import Database

probe = sa.Table("cache_probe", sa.MetaData(), sa.Column("k", sa.Integer, primary_key=True),
                 sa.Column("v", sa.Text))
BY_KEY = sa.select(probe.c.v).where(probe.c.k == sa.bindparam("k"))


async def until(check, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


@pytest.fixture
async def two_processes(clean_db):
    """Two caches, each with its own listener and pool, as two API processes have."""
    async with clean_db.transaction() as conn:
        await conn.run("DROP TABLE IF EXISTS cache_probe")
        await conn.run("CREATE TABLE cache_probe (k int PRIMARY KEY, v text)")
        await conn.run(probe.insert(), [{"k": 1, "v": "old"}])
    pools = [Database(clean_db.url, pool_size=2) for _ in range(2)]
    caches = [SharedCache(settle=0.3), SharedCache(settle=0.3)]
    for cache, pool in zip(caches, pools):
        cache.start(await pool.pool("reads"))
    await until(lambda: all(c.live for c in caches))
    yield clean_db, caches
    for cache, pool in zip(caches, pools):
        await cache.stop()
        await pool.close()
    async with clean_db.transaction() as conn:
        await conn.run(sa.text("DROP TABLE cache_probe"))


async def value(cache: SharedCache, db) -> str:
    async with db.read() as conn:
        return (await cache.fetch_one("probe", BY_KEY, {"k": 1}, conn))["v"]


async def test_a_commit_in_one_process_drops_the_copy_in_the_other(two_processes):
    db, (writer, reader) = two_processes
    assert await value(reader, db) == "old"
    # kept: a change that tells no one is not seen...
    async with db.transaction() as conn:
        await conn.run(probe.update().values(v="quiet"))
    assert await value(reader, db) == "old"
    # ...until the writer says so; its own process reads its write at once, the other as
    # soon as the notification arrives, and neither before the commit
    async with db.transaction() as conn:
        await conn.run(probe.update().values(v="new"))
        await writer.changed(conn, "probe")
        assert await value(reader, db) == "old"
    assert await value(writer, db) == "new"
    await until(lambda: "probe" not in reader._values)
    assert await value(reader, db) == "new"


async def test_a_change_made_by_hand_is_announced_with_notify(two_processes):
    db, (_, reader) = two_processes
    assert await value(reader, db) == "old"
    async with db.transaction() as conn:
        await conn.run(probe.update().values(v="by hand"))
        await conn.run(sa.text("NOTIFY myhibachi_cache, 'probe'"))
    await until(lambda: "probe" not in reader._values)
    assert await value(reader, db) == "by hand"


async def test_a_rolled_back_change_stops_keeping_only_for_a_while(two_processes):
    db, (writer, _) = two_processes
    assert await value(writer, db) == "old"
    try:
        async with db.transaction() as conn:
            await conn.run(probe.update().values(v="never"))
            await writer.changed(conn, "probe")
            raise LookupError
    except LookupError:
        pass
    assert await value(writer, db) == "old" and "probe" not in writer._values  # loaded, not kept
    await asyncio.sleep(writer.settle + 0.05)
    assert await value(writer, db) == "old" and "probe" in writer._values


async def test_a_load_overtaken_by_a_change_is_answered_not_kept(two_processes):
    db, (_, reader) = two_processes

    async def load():
        reader._heard("probe")  # the notification lands while the load is running
        return "loaded before the change"

    assert await reader.get("probe", 1, load) == "loaded before the change"
    assert "probe" not in reader._values


async def test_nothing_is_kept_while_the_listener_is_down(two_processes):
    db, (_, reader) = two_processes
    await reader.stop()
    assert not reader.live
    assert await value(reader, db) == "old"
    async with db.transaction() as conn:
        await conn.run(probe.update().values(v="fresh"))
    assert await value(reader, db) == "fresh" and reader._values == {}
