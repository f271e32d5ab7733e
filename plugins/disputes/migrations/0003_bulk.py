"""payment bulk operations

Revision ID: disputes_0003
Revises: disputes_0002
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'disputes_0003'
down_revision: Union[str, Sequence[str], None] = 'disputes_0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('payment_bulk_jobs',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('requested_by', sa.String(length=100), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='queued', nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("action IN ('refund', 'capture')", name=op.f('ck_payment_bulk_jobs_action')),
    sa.CheckConstraint("status IN ('queued', 'running', 'done')", name=op.f('ck_payment_bulk_jobs_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_bulk_jobs')),
    )
    op.create_table('payment_bulk_items',
    sa.Column('job_id', sa.UUID(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('deposit_id', sa.UUID(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=True),
    sa.Column('payment_method', sa.String(length=255), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('result', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('error', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name=op.f('ck_payment_bulk_items_status')),
    sa.ForeignKeyConstraint(['job_id'], ['payment_bulk_jobs.id'],
                            name=op.f('fk_payment_bulk_items_job_id_payment_bulk_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', 'seq', name=op.f('pk_payment_bulk_items')),
    )
    op.create_index('ix_payment_bulk_items_pending', 'payment_bulk_items', ['job_id', 'seq'], unique=False,
                    postgresql_where=sa.text("status = 'pending'"))


def downgrade() -> None:
    op.drop_index('ix_payment_bulk_items_pending', table_name='payment_bulk_items',
                  postgresql_where=sa.text("status = 'pending'"))
    op.drop_table('payment_bulk_items')
    op.drop_table('payment_bulk_jobs')
