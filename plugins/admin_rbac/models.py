"""Staff accounts, roles, role assignments and login sessions."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from myhibachi.core import created_at, metadata, timestamp, uuid_pk

OWN = {"plugin": "admin_rbac"}

admin_users = sa.Table(
    "admin_users",
    metadata,
    uuid_pk(),
    sa.Column("email", sa.String(254), nullable=False),  # stored lower-cased
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("status", sa.String(20), nullable=False, server_default="active"),
    timestamp("last_login"),
    sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0"),
    timestamp("failed_since"),
    timestamp("locked_until"),
    created_at(),
    timestamp("updated_at", nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("email", name="uq_admin_users_email"),
    sa.Index("ix_admin_users_created_id", "created_at", "id"),
    info=OWN,
)

admin_roles = sa.Table(
    "admin_roles",
    metadata,
    uuid_pk(),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    # Permission strings, wildcards allowed; built-in roles keep theirs in code.
    sa.Column("permissions", ARRAY(sa.Text), nullable=False, server_default="{}"),
    sa.Column("builtin", sa.Boolean, nullable=False, server_default=sa.false()),
    created_at(),
    timestamp("updated_at", nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("name", name="uq_admin_roles_name"),
    info=OWN,
)

admin_user_roles = sa.Table(
    "admin_user_roles",
    metadata,
    sa.Column("user_id", UUID(as_uuid=True), sa.ForeignKey("admin_users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("role_id", UUID(as_uuid=True), sa.ForeignKey("admin_roles.id", ondelete="CASCADE"), primary_key=True),
    sa.Index("ix_admin_user_roles_role_id", "role_id"),
    info=OWN,
)

admin_sessions = sa.Table(
    "admin_sessions",
    metadata,
    uuid_pk(),
    sa.Column("user_id", UUID(as_uuid=True), sa.ForeignKey("admin_users.id", ondelete="CASCADE"), nullable=False),
    created_at(),
    timestamp("expires_at", nullable=False),
    timestamp("revoked_at"),
    sa.Column("ip", sa.String(45)),
    sa.Column("user_agent", sa.Text),
    sa.Index("ix_admin_sessions_user_id", "user_id"),
    info=OWN,
)
