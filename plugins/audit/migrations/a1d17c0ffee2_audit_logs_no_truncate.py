"""audit logs: TRUNCATE refused too (a statement trigger; UPDATE and DELETE already were)

Revision ID: a1d17c0ffee2
Revises: e239d2203d71
Create Date: 2026-12-04 18:55:00
"""
from typing import Sequence, Union

from alembic import op

revision: str = 'a1d17c0ffee2'
down_revision: Union[str, Sequence[str], None] = 'e239d2203d71'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.execute(
        "CREATE TRIGGER audit_logs_no_truncate BEFORE TRUNCATE ON audit_logs "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_logs_append_only()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS audit_logs_no_truncate ON audit_logs")
