"""group_reservation_guests: dietary and allergens sealed at rest (dietary_enc, allergens_enc)

A group's guests share its key_id, so each group with guests is sealed again whole under the
current key (names and contacts opened with the group's key): in Python, with the settings
``myhibachi db upgrade`` runs with (the environment's when the caller passes none). No guests,
no key needed. A downgrade opens them back into the plain columns the same way.

Revision ID: group_reservations_0002
Revises: group_reservations_0001
"""
import json
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision: str = "group_reservations_0002"
down_revision: Union[str, Sequence[str], None] = "group_reservations_0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

GUESTS = "group_reservation_guests"


def _vault():
    from myhibachi.core import Settings, Vault

    return Vault.from_settings(op.get_context().config.attributes.get("settings") or Settings())


def _aad(group_id, field: str) -> str:  # as the service seals them
    return f"group_reservations:{group_id}:{field}"


def _groups(conn, columns: str):
    """Each group that has guests: its id, key id and its guests' rows."""
    rows = conn.execute(sa.text(f"SELECT g.id, g.group_id, r.key_id, {columns} FROM {GUESTS} g "
                                "JOIN group_reservations r ON r.id = g.group_id ORDER BY g.group_id")).mappings().all()
    by_group: dict = {}
    for row in rows:
        by_group.setdefault(row["group_id"], []).append(row)
    return by_group.items()


def upgrade() -> None:
    op.add_column(GUESTS, sa.Column("dietary_enc", sa.Text()))
    op.add_column(GUESTS, sa.Column("allergens_enc", sa.Text()))
    conn, v = op.get_bind(), None
    for group_id, guest_rows in _groups(conn, "g.name_enc, g.contact_enc, g.dietary, g.allergens"):
        v = v or _vault()
        key_id = guest_rows[0]["key_id"]

        def seal(value, field):
            return v.encrypt(value, _aad(group_id, field))

        def reseal(token, field):
            return seal(v.decrypt(token, key_id, _aad(group_id, field)), field)

        for g in guest_rows:
            conn.execute(sa.text(f"UPDATE {GUESTS} SET name_enc = :name, contact_enc = :contact, "
                                 "dietary_enc = :dietary, allergens_enc = :allergens WHERE id = :id"), {
                "id": g["id"], "name": reseal(g["name_enc"], "name"), "contact": reseal(g["contact_enc"], "contact"),
                "dietary": seal(g["dietary"], "dietary"),
                "allergens": seal(json.dumps(g["allergens"]), "allergens") if g["allergens"] else None})
        conn.execute(sa.text("UPDATE group_reservations SET key_id = :k WHERE id = :id"),
                     {"k": v.current_id, "id": group_id})
    op.drop_column(GUESTS, "dietary")
    op.drop_column(GUESTS, "allergens")


def downgrade() -> None:
    op.add_column(GUESTS, sa.Column("dietary", sa.Text()))
    op.add_column(GUESTS, sa.Column("allergens", ARRAY(sa.Text()), server_default="{}", nullable=False))
    conn, v = op.get_bind(), None
    for group_id, guest_rows in _groups(conn, "g.dietary_enc, g.allergens_enc"):
        v = v or _vault()
        key_id = guest_rows[0]["key_id"]
        for g in guest_rows:
            allergens = g["allergens_enc"] and v.decrypt(g["allergens_enc"], key_id, _aad(group_id, "allergens"))
            conn.execute(sa.text(f"UPDATE {GUESTS} SET dietary = :dietary, allergens = :allergens WHERE id = :id"), {
                "id": g["id"], "dietary": v.decrypt(g["dietary_enc"], key_id, _aad(group_id, "dietary")),
                "allergens": json.loads(allergens) if allergens else []})
    op.drop_column(GUESTS, "dietary_enc")
    op.drop_column(GUESTS, "allergens_enc")
