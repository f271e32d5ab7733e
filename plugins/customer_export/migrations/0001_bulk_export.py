"""bulk customer export: jobs and their sealed output chunks

Revision ID: customer_export_0001
Revises: (first of its branch; depends on the core's customers)
Create Date: 2026-12-03 20:10:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'customer_export_0001'
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = ('customer_export',)
depends_on: Union[str, Sequence[str], None] = 'core_customers'


def upgrade() -> None:
    op.create_table('customer_export_jobs',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('requested_by', sa.String(length=64), nullable=False),
    sa.Column('format', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=10), server_default='queued', nullable=False),
    sa.Column('customer_ids', postgresql.ARRAY(sa.UUID()), nullable=True),
    sa.Column('created_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('done', sa.Integer(), server_default='0', nullable=False),
    sa.Column('cursor', sa.UUID(), nullable=True),
    sa.Column('chunks', sa.Integer(), server_default='0', nullable=False),
    sa.Column('bytes', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('columns', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed', 'expired')",
                       name=op.f('ck_customer_export_jobs_status')),
    sa.CheckConstraint("format IN ('json', 'csv')", name=op.f('ck_customer_export_jobs_format')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customer_export_jobs')),
    info={'plugin': 'customer_export'}
    )
    op.create_index('ix_customer_export_jobs_pending', 'customer_export_jobs', ['created_at'], unique=False,
                    postgresql_where=sa.text("status IN ('queued', 'running')"))
    op.create_table('customer_export_chunks',
    sa.Column('job_id', sa.UUID(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('section', sa.String(length=64), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['customer_export_jobs.id'],
                            name=op.f('fk_customer_export_chunks_job_id_customer_export_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', 'seq', name=op.f('pk_customer_export_chunks')),
    info={'plugin': 'customer_export'}
    )


def downgrade() -> None:
    op.drop_table('customer_export_chunks')
    op.drop_index('ix_customer_export_jobs_pending', table_name='customer_export_jobs',
                  postgresql_where=sa.text("status IN ('queued', 'running')"))
    op.drop_table('customer_export_jobs')
