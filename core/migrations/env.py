"""Alembic environment: shared metadata, each owner's tables in its own branch, one migrator at a time."""
import sqlalchemy as sa
from alembic import context

from myhibachi.core.db import metadata
from myhibachi.core.migrate import LOCK_ID

config = context.config
owner = config.attributes.get("owner")


def include_object(obj, name, type_, reflected, compare_to):
    if type_ == "table":
        table = obj if not reflected else compare_to
        if table is None:  # a table in the database that no installed owner declares
            return False
        return owner is None or table.info.get("plugin") == owner
    table = getattr(obj, "table", None)
    if table is not None and owner is not None:
        return table.info.get("plugin") == owner
    return True


def run() -> None:
    engine = sa.create_engine(config.attributes["url"], poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_advisory_lock(:id)"), {"id": LOCK_ID})
        conn.commit()
        try:
            context.configure(connection=conn, target_metadata=metadata, include_object=include_object,
                              compare_type=True)
            with context.begin_transaction():
                context.run_migrations()
            conn.commit()
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:id)"), {"id": LOCK_ID})
            conn.commit()
    engine.dispose()


run()
