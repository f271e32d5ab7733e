"""custom payment reports as worker jobs, with their CSV and PDF

Revision ID: payment_history_0004
Revises: payment_history_0003
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'payment_history_0004'
down_revision: Union[str, Sequence[str], None] = 'payment_history_0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('payment_reports',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('requested_by', sa.String(length=100), nullable=False),
    sa.Column('first_day', sa.Date(), nullable=False),
    sa.Column('last_day', sa.Date(), nullable=False),
    sa.Column('group_by', sa.String(length=8), nullable=False),
    sa.Column('time_zone', sa.String(length=64), nullable=False),
    sa.Column('by_location', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('status', sa.String(length=10), server_default='queued', nullable=False),
    sa.Column('rows', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('csv', sa.Text(), nullable=True),
    sa.Column('pdf', sa.LargeBinary(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('queued', 'done', 'failed')", name=op.f('ck_payment_reports_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_reports')),
    )
    op.create_index('ix_payment_reports_queued', 'payment_reports', ['created_at'], unique=False,
                    postgresql_where=sa.text("status = 'queued'"))


def downgrade() -> None:
    op.drop_index('ix_payment_reports_queued', table_name='payment_reports',
                  postgresql_where=sa.text("status = 'queued'"))
    op.drop_table('payment_reports')
