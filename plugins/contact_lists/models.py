"""Lists and their members; a rule-based list stores its rules and has no member rows."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

from myhibachi.core import created_at, metadata, uuid_pk

OWNER = {"plugin": "contact_lists"}

contact_lists = sa.Table(
    "contact_lists",
    metadata,
    uuid_pk(),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(10), nullable=False),
    sa.Column("rules", JSONB(none_as_null=True)),
    sa.Column("created_by", sa.String(200)),
    created_at(),
    sa.CheckConstraint("kind IN ('static', 'rules')", name="kind"),
    sa.CheckConstraint("(kind = 'rules') = (rules IS NOT NULL)", name="rules_of_rule_lists"),
    info=OWNER,
)

contact_list_members = sa.Table(
    "contact_list_members",
    metadata,
    sa.Column("list_id", UUID(as_uuid=True), sa.ForeignKey("contact_lists.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("customer_id", UUID(as_uuid=True), sa.ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True),
    created_at(),
    info=OWNER,
)
