"""ml_ops: conversation turns and summaries, training examples and batch texts sealed at rest
(``<field>_enc``, ``key_id``); the answer cache keyed by a keyed hash

Existing rows are sealed here, in Python, with the settings ``myhibachi db upgrade`` runs with
(the environment's when the caller passes none); no rows, no key needed. The cache is emptied
instead: its keys were plain sha256s of the messages, which a guess of the messages confirms.
A downgrade opens the sealed rows back into the plain columns the same way.

Revision ID: ml_ops_0002
Revises: ml_ops_0001
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "ml_ops_0002"
down_revision: Union[str, Sequence[str], None] = "ml_ops_0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# table: (its primary key, its sealed fields, the fields that are JSON documents)
SEALED = {
    "ml_ops_turns": (("conversation_id", "seq"), ("content",), ()),
    "ml_ops_conversations": (("id",), ("summary",), ()),
    "ml_ops_examples": (("model_id", "seq"), ("text", "messages"), ("messages",)),
    "ml_ops_batch_items": (("batch_id", "seq"), ("text", "output"), ()),
}
BATCH = 2000
REQUIRED = {"ml_ops_turns": ("content",), "ml_ops_examples": ("text",), "ml_ops_batch_items": ("text",)}


def _vault():
    from myhibachi.core import Settings, Vault

    return Vault.from_settings(op.get_context().config.attributes.get("settings") or Settings())


def _aad(table: str, field: str, row) -> str:  # as plugins/ml_ops/models.py's aad
    return f"{table}.{field}:" + ":".join(str(row[k]) for k in SEALED[table][0])


def _batches(conn, table: str, columns: str):
    """The table's rows in primary key order, a batch at a time (along the key's index)."""
    key = SEALED[table][0]
    order, after = ", ".join(key), ", ".join(f":{k}" for k in key)
    rows = conn.execute(sa.text(f"SELECT {order}, {columns} FROM {table} ORDER BY {order} LIMIT {BATCH}")
                        ).mappings().all()
    while rows:
        yield rows
        rows = conn.execute(sa.text(f"SELECT {order}, {columns} FROM {table} WHERE ({order}) > ({after}) "
                                    f"ORDER BY {order} LIMIT {BATCH}"), {k: rows[-1][k] for k in key}).mappings().all()


def _where(table: str) -> str:
    return " AND ".join(f"{k} = :{k}" for k in SEALED[table][0])


def upgrade() -> None:
    conn, v = op.get_bind(), None
    for table, (key, fields, documents) in SEALED.items():
        for field in fields:
            op.add_column(table, sa.Column(f"{field}_enc", sa.Text()))
        op.add_column(table, sa.Column("key_id", sa.String(32)))
        plain = ", ".join(f"{f}::text AS {f}" if f in documents else f for f in fields)
        for rows in _batches(conn, table, plain):
            v = v or _vault()
            sets = ", ".join(f"{f}_enc = :{f}" for f in fields)
            conn.execute(sa.text(f"UPDATE {table} SET {sets}, key_id = :key_id WHERE {_where(table)}"), [
                {**{k: r[k] for k in key}, "key_id": v.current_id,
                 **{f: v.encrypt(r[f], _aad(table, f, r)) for f in fields}} for r in rows])
        for field in REQUIRED.get(table, ()):
            op.alter_column(table, f"{field}_enc", nullable=False)
        if table in REQUIRED:  # a conversation has no key until it has a summary
            op.alter_column(table, "key_id", nullable=False)
        for field in fields:
            op.drop_column(table, field)
    op.execute("DELETE FROM ml_ops_cache")
    op.add_column("ml_ops_cache", sa.Column("content_enc", sa.Text(), nullable=False))
    op.add_column("ml_ops_cache", sa.Column("key_id", sa.String(32), nullable=False))
    op.drop_column("ml_ops_cache", "content")


def downgrade() -> None:
    op.execute("DELETE FROM ml_ops_cache")
    op.add_column("ml_ops_cache", sa.Column("content", sa.Text(), nullable=False))
    op.drop_column("ml_ops_cache", "content_enc")
    op.drop_column("ml_ops_cache", "key_id")
    conn, v = op.get_bind(), None
    for table, (key, fields, documents) in SEALED.items():
        for field in fields:
            kind = postgresql.JSONB() if field in documents else sa.Text()
            op.add_column(table, sa.Column(field, kind, server_default="" if field == "summary" else None))
        for rows in _batches(conn, table, "key_id, " + ", ".join(f"{f}_enc" for f in fields)):
            v = v or _vault()
            sets = ", ".join(f"{f} = CAST(:{f} AS jsonb)" if f in documents else f"{f} = :{f}" for f in fields)
            conn.execute(sa.text(f"UPDATE {table} SET {sets} WHERE {_where(table)}"), [
                {**{k: r[k] for k in key},
                 **{f: v.decrypt(r[f"{f}_enc"], r["key_id"], _aad(table, f, r)) for f in fields}} for r in rows])
        if table == "ml_ops_conversations":
            op.execute("UPDATE ml_ops_conversations SET summary = '' WHERE summary IS NULL")
            op.alter_column(table, "summary", nullable=False)
        for field in REQUIRED.get(table, ()):
            op.alter_column(table, field, nullable=False)
        for field in fields:
            op.drop_column(table, f"{field}_enc")
        op.drop_column(table, "key_id")
