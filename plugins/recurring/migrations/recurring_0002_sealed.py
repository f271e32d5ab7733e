"""recurring_event_patterns: address and special requests sealed at rest (address_enc,
special_requests_enc, key_id), as the bookings made from them are

Existing rows are sealed here, in Python, with the settings ``myhibachi db upgrade`` runs with
(the environment's when the caller passes none); no rows, no key needed. A downgrade opens
them back into the plain columns the same way.

Revision ID: recurring_0002
Revises: recurring_0001
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "recurring_0002"
down_revision: Union[str, Sequence[str], None] = "recurring_0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TABLE = "recurring_event_patterns"
FIELDS = ("address", "special_requests")


def _vault():
    from myhibachi.core import Settings, Vault

    return Vault.from_settings(op.get_context().config.attributes.get("settings") or Settings())


def _aad(pattern_id, field: str) -> str:  # as the service seals them
    return f"{TABLE}.{field}:{pattern_id}"


def upgrade() -> None:
    for field in FIELDS:
        op.add_column(TABLE, sa.Column(f"{field}_enc", sa.Text()))
    op.add_column(TABLE, sa.Column("key_id", sa.String(32)))
    conn, v = op.get_bind(), None
    for row in conn.execute(sa.text(f"SELECT id, address, special_requests FROM {TABLE}")).mappings().all():
        v = v or _vault()
        conn.execute(sa.text(f"UPDATE {TABLE} SET address_enc = :address, special_requests_enc = :special_requests, "
                             "key_id = :key_id WHERE id = :id"),
                     {"id": row["id"], "key_id": v.current_id,
                      **{f: v.encrypt(row[f], _aad(row["id"], f)) for f in FIELDS}})
    op.alter_column(TABLE, "address_enc", nullable=False)
    op.alter_column(TABLE, "key_id", nullable=False)
    for field in FIELDS:
        op.drop_column(TABLE, field)


def downgrade() -> None:
    for field in FIELDS:
        op.add_column(TABLE, sa.Column(field, sa.Text()))
    conn, v = op.get_bind(), None
    rows = conn.execute(sa.text(f"SELECT id, key_id, address_enc, special_requests_enc FROM {TABLE}")).mappings().all()
    for row in rows:
        v = v or _vault()
        conn.execute(sa.text(f"UPDATE {TABLE} SET address = :address, special_requests = :special_requests "
                             "WHERE id = :id"),
                     {"id": row["id"], **{f: v.decrypt(row[f"{f}_enc"], row["key_id"], _aad(row["id"], f))
                                          for f in FIELDS}})
    op.alter_column(TABLE, "address", nullable=False)
    for field in FIELDS:
        op.drop_column(TABLE, f"{field}_enc")
    op.drop_column(TABLE, "key_id")
