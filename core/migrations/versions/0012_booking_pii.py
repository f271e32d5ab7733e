"""bookings: address, menu and notes sealed at rest (address_enc, menu_enc, notes_enc, key_id)

Existing rows are sealed here, in Python, with the application's own key: the settings that
``myhibachi db upgrade`` runs with (``MYHIBACHI_SECRET_KEY`` / ``MYHIBACHI_PII_KEYS`` or the
home folder's secret key), read from the environment when the caller passes none. An empty
table needs no key. A downgrade opens them back into the plaintext columns the same way.

Revision ID: core_booking_pii
Revises: core_booking_holds
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "core_booking_pii"
down_revision: Union[str, Sequence[str], None] = "core_booking_holds"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

FIELDS = ("address", "menu", "notes")
BATCH = 5000


def _vault():
    from myhibachi.core import Settings, Vault

    return Vault.from_settings(op.get_context().config.attributes.get("settings") or Settings())


def _aad(booking_id, field: str) -> str:  # as core.bookings seals them
    return f"bookings.{field}:{booking_id}"


def _batches(conn, columns: str):
    """The bookings' rows in id order, a batch at a time (along the primary key's index)."""
    first = sa.text(f"SELECT id, {columns} FROM bookings ORDER BY id LIMIT :n")
    rest = sa.text(f"SELECT id, {columns} FROM bookings WHERE id > :after ORDER BY id LIMIT :n")
    rows = conn.execute(first, {"n": BATCH}).mappings().all()
    while rows:
        yield rows
        rows = conn.execute(rest, {"after": rows[-1]["id"], "n": BATCH}).mappings().all()


def _write(conn, ids: list, values: dict[str, list], key_id: str | None = None) -> None:
    """Set each named column of the rows ``ids`` to its value at the same place (and key_id)."""
    names = list(values)
    sets = ", ".join(f"{n} = v.{n}" for n in names) + (", key_id = :key_id" if key_id else "")
    arrays = ", ".join(f"CAST(:{n} AS text[])" for n in names)
    conn.execute(sa.text(f"UPDATE bookings AS b SET {sets} FROM unnest(CAST(:ids AS uuid[]), {arrays}) "
                         f"AS v(id, {', '.join(names)}) WHERE b.id = v.id"), {"ids": ids, "key_id": key_id, **values})


def upgrade() -> None:
    for field in FIELDS:
        op.add_column("bookings", sa.Column(f"{field}_enc", sa.Text()))
    op.add_column("bookings", sa.Column("key_id", sa.String(32)))
    conn, v = op.get_bind(), None
    for rows in _batches(conn, ", ".join(FIELDS)):
        v = v or _vault()
        _write(conn, [r["id"] for r in rows],
               {f"{f}_enc": [v.encrypt(r[f], _aad(r["id"], f)) for r in rows] for f in FIELDS},
               key_id=v.current_id)
    op.alter_column("bookings", "address_enc", nullable=False)
    op.alter_column("bookings", "key_id", nullable=False)
    for field in FIELDS:
        op.drop_column("bookings", field)


def downgrade() -> None:
    for field in FIELDS:
        op.add_column("bookings", sa.Column(field, sa.Text()))
    conn, v = op.get_bind(), None
    for rows in _batches(conn, "key_id, " + ", ".join(f"{f}_enc" for f in FIELDS)):
        v = v or _vault()
        _write(conn, [r["id"] for r in rows],
               {f: [v.decrypt(r[f"{f}_enc"], r["key_id"], _aad(r["id"], f)) for r in rows] for f in FIELDS})
    op.alter_column("bookings", "address", nullable=False)
    for field in FIELDS:
        op.drop_column("bookings", f"{field}_enc")
    op.drop_column("bookings", "key_id")
