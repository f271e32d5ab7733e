"""The database roles: migrations run as the tables' owner, the API and workers as the app's role.

The app's role is granted what the API and workers need and nothing more: reading and
writing rows (no TRUNCATE, no REFERENCES or TRIGGER privilege), using sequences, and on
append-only tables (``info={"append_only": True}``, the audit trail) only SELECT and INSERT.
It owns no table, so it can neither ``ALTER TABLE ... DISABLE TRIGGER`` nor drop one, and,
not being a superuser, cannot ``SET session_replication_role``. The grants are made after
every upgrade and, through default privileges, on every table the owner creates later.

* An external database: ``MYHIBACHI_DATABASE_OWNER_URL`` is the owner's URL, ``DATABASE_URL``
  the app role's (created by the operator). Without the owner's URL, ``DATABASE_URL`` does
  both, as one role.
* The embedded default: migrations run as its superuser, which creates the ``myhibachi_app``
  role (login, no other attribute); the API and workers connect as that role.

This module imports nothing of Alembic: the API process uses :func:`app_url`.
"""
from __future__ import annotations

import sqlalchemy as sa

EMBEDDED_APP_ROLE = "myhibachi_app"


def _normalised(url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def owner_url(settings, *, keep_running: bool = True) -> str:
    """The URL migrations (and owner-only maintenance such as ``audit rehash``) connect with."""
    from myhibachi.core.db import resolve_url

    if settings.database_owner_url:
        return _normalised(settings.database_owner_url)
    return resolve_url(settings, keep_running=keep_running)


def app_url(settings, *, keep_running: bool = False) -> str:
    """The URL the API and workers connect with: DATABASE_URL, or the embedded server as the app's role."""
    from myhibachi.core.db import resolve_url

    url = resolve_url(settings, keep_running=keep_running)
    if settings.database_url:
        return url
    return sa.engine.make_url(url).set(username=EMBEDDED_APP_ROLE).render_as_string(hide_password=False)


def app_role(settings) -> str | None:
    """The role to grant after migrating, or None when the app and the migrations share one role."""
    if settings.database_url and not settings.database_owner_url:
        return None
    if not settings.database_url:
        return EMBEDDED_APP_ROLE
    role = sa.engine.make_url(_normalised(settings.database_url)).username
    owner = sa.engine.make_url(_normalised(settings.database_owner_url)).username
    return role if role and role != owner else None


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def grant_statements(role: str, append_only: list[str], schema: str = "public") -> list[str]:
    r, s = _quoted(role), _quoted(schema)
    rows = "SELECT, INSERT, UPDATE, DELETE"
    statements = [
        f"GRANT USAGE ON SCHEMA {s} TO {r}",
        f"GRANT {rows} ON ALL TABLES IN SCHEMA {s} TO {r}",
        f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {s} TO {r}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT {rows} ON TABLES TO {r}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {r}",
        f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON TABLE {s}.alembic_version FROM {r}",
    ]
    for table in append_only:
        statements.append(f"REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON TABLE {s}.{_quoted(table)} FROM {r}")
    return statements


def grant(url: str, role: str) -> None:
    """As the owner at ``url``: make ``role`` (the embedded one created if missing) and grant it
    the app's privileges on every table, the append-only ones kept to SELECT and INSERT."""
    from myhibachi.core.db import metadata

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            if role == EMBEDDED_APP_ROLE and not conn.scalar(
                    sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}):
                conn.execute(sa.text(f"CREATE ROLE {_quoted(role)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                                     "NOREPLICATION NOBYPASSRLS"))
            if role == EMBEDDED_APP_ROLE:
                database = conn.scalar(sa.text("SELECT current_database()"))
                conn.execute(sa.text(f"GRANT CONNECT, TEMPORARY ON DATABASE {_quoted(database)} TO {_quoted(role)}"))
            existing = set(conn.scalars(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")))
            append_only = sorted(t.name for t in metadata.tables.values()
                                 if t.info.get("append_only") and t.name in existing)
            for statement in grant_statements(role, append_only):
                if "alembic_version" in statement and "alembic_version" not in existing:
                    continue
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()
