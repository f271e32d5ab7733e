"""campaigns and their recipients

Revision ID: campaigns_0001
Revises: (first of its branch; depends on the core's head)
Create Date: 2026-12-04 06:27:31.912273
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'campaigns_0001'
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = ('campaigns',)
depends_on: Union[str, Sequence[str], None] = 'core_booking_pools'


def upgrade() -> None:
    op.create_table('campaigns',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('list_id', sa.UUID(), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('variants', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('variables', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('send_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('local_time', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('time_zone', sa.String(length=64), server_default='UTC', nullable=False),
    sa.Column('max_per_minute', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=20), server_default='scheduled', nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recipients', sa.Integer(), nullable=True),
    sa.Column('metric', sa.String(length=20), nullable=True),
    sa.Column('decide_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('remainder_to_winner', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('winner', sa.String(length=40), nullable=True),
    sa.Column('decision', postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('conversion_days', sa.Integer(), server_default='7', nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("channel IN ('sms', 'email')", name=op.f('ck_campaigns_channel')),
    sa.CheckConstraint("metric IS NULL OR metric IN ('opened', 'clicked', 'converted')", name=op.f('ck_campaigns_metric')),
    sa.CheckConstraint("status IN ('scheduled', 'sending', 'done', 'cancelled')", name=op.f('ck_campaigns_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigns')),
    info={'plugin': 'campaigns'}
    )
    op.create_index('ix_campaigns_decide', 'campaigns', ['decide_at'], unique=False, postgresql_where=sa.text('decided_at IS NULL'))
    op.create_index('ix_campaigns_due', 'campaigns', ['due_at'], unique=False, postgresql_where=sa.text("status = 'scheduled'"))
    op.create_table('campaign_recipients',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('campaign_id', sa.UUID(), nullable=False),
    sa.Column('customer_id', sa.UUID(), nullable=False),
    sa.Column('variant', sa.String(length=40), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('message_id', sa.UUID(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('queued_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('clicked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('converted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('booking_id', sa.UUID(), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'held', 'sent', 'refused')", name=op.f('ck_campaign_recipients_status')),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_recipients_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_campaign_recipients_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_recipients')),
    sa.UniqueConstraint('campaign_id', 'customer_id', name='uq_campaign_recipients_customer'),
    info={'plugin': 'campaigns'}
    )
    op.create_index('ix_campaign_recipients_converting', 'campaign_recipients', ['customer_id'], unique=False, postgresql_where=sa.text('converted_at IS NULL'))
    op.create_index('ix_campaign_recipients_due', 'campaign_recipients', ['due_at'], unique=False, postgresql_where=sa.text("status = 'pending'"))


def downgrade() -> None:
    op.drop_index('ix_campaign_recipients_due', table_name='campaign_recipients', postgresql_where=sa.text("status = 'pending'"))
    op.drop_index('ix_campaign_recipients_converting', table_name='campaign_recipients', postgresql_where=sa.text('converted_at IS NULL'))
    op.drop_table('campaign_recipients')
    op.drop_index('ix_campaigns_due', table_name='campaigns', postgresql_where=sa.text("status = 'scheduled'"))
    op.drop_index('ix_campaigns_decide', table_name='campaigns', postgresql_where=sa.text('decided_at IS NULL'))
    op.drop_table('campaigns')
