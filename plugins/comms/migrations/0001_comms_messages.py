"""comms messages, opt-outs and consents

Revision ID: comms_0001
Revises: (first of its branch; depends on the core's customers)
Create Date: 2026-11-24 23:11:21.139903
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


revision: str = 'comms_0001'
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = ('comms',)
depends_on: Union[str, Sequence[str], None] = 'core_customers'


def upgrade() -> None:
    op.create_table('comms_opt_outs',
    sa.Column('address_hash', sa.LargeBinary(), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('opted_out', sa.Boolean(), nullable=False),
    sa.Column('keyword', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("channel IN ('sms', 'email')", name=op.f('ck_comms_opt_outs_channel')),
    sa.PrimaryKeyConstraint('address_hash', 'channel', name=op.f('pk_comms_opt_outs')),
    info={'plugin': 'comms'}
    )
    op.create_table('comms_consents',
    sa.Column('customer_id', sa.UUID(), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('marketing', sa.Boolean(), nullable=False),
    sa.Column('source', sa.String(length=100), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("channel IN ('sms', 'email')", name=op.f('ck_comms_consents_channel')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_comms_consents_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('customer_id', 'channel', name=op.f('pk_comms_consents')),
    info={'plugin': 'comms'}
    )
    op.create_table('comms_messages',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('customer_id', sa.UUID(), nullable=True),
    sa.Column('key_id', sa.String(length=40), nullable=False),
    sa.Column('to_enc', sa.Text(), nullable=False),
    sa.Column('to_hash', sa.LargeBinary(), nullable=False),
    sa.Column('subject_enc', sa.Text(), nullable=True),
    sa.Column('body_enc', sa.Text(), nullable=False),
    sa.Column('html_enc', sa.Text(), nullable=True),
    sa.Column('segments', sa.Integer(), nullable=True),
    sa.Column('encoding', sa.String(length=10), nullable=True),
    sa.Column('status', sa.String(length=20), server_default='queued', nullable=False),
    sa.Column('provider_id', sa.String(length=200), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('idempotency_key', sa.String(length=300), nullable=True),
    sa.Column('created_by', sa.String(length=200), nullable=True),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("channel IN ('sms', 'email')", name=op.f('ck_comms_messages_channel')),
    sa.CheckConstraint("kind IN ('transactional', 'marketing')", name=op.f('ck_comms_messages_kind')),
    sa.CheckConstraint("status IN ('queued', 'sending', 'sent', 'delivered', 'failed', 'bounced')", name=op.f('ck_comms_messages_status')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_comms_messages_customer_id_customers'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_comms_messages')),
    info={'plugin': 'comms'}
    )
    op.create_index('ix_comms_messages_customer', 'comms_messages', ['customer_id', 'created_at'], unique=False)
    op.create_index('ix_comms_messages_due', 'comms_messages', ['next_attempt_at'], unique=False, postgresql_where=sa.text("status = 'queued'"))
    op.create_index('ix_comms_messages_history', 'comms_messages', ['channel', 'created_at', 'id'], unique=False)
    op.create_index('ix_comms_messages_provider', 'comms_messages', ['provider_id'], unique=False)
    op.create_index('ix_comms_messages_sending', 'comms_messages', ['updated_at'], unique=False, postgresql_where=sa.text("status = 'sending'"))
    op.create_index('uq_comms_messages_idempotency_key', 'comms_messages', ['idempotency_key'], unique=True)


def downgrade() -> None:
    op.drop_index('uq_comms_messages_idempotency_key', table_name='comms_messages')
    op.drop_index('ix_comms_messages_sending', table_name='comms_messages', postgresql_where=sa.text("status = 'sending'"))
    op.drop_index('ix_comms_messages_provider', table_name='comms_messages')
    op.drop_index('ix_comms_messages_history', table_name='comms_messages')
    op.drop_index('ix_comms_messages_due', table_name='comms_messages', postgresql_where=sa.text("status = 'queued'"))
    op.drop_index('ix_comms_messages_customer', table_name='comms_messages')
    op.drop_table('comms_messages')
    op.drop_table('comms_consents')
    op.drop_table('comms_opt_outs')
