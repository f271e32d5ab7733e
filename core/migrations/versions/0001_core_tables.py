"""core tables

Revision ID: core_0001
Revises: 
Create Date: 2026-11-24 22:10:50.922675
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'core_0001'
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = ('core',)
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.execute('CREATE EXTENSION IF NOT EXISTS vector')
    op.create_table('api_keys',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('key_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('scopes', postgresql.JSONB(astext_type=sa.Text()), server_default='[]', nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('prefix', name=op.f('uq_api_keys_prefix')),
    info={'plugin': 'core'}
    )
    op.create_table('booking_slots',
    sa.Column('slot_key', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('slot_key', name=op.f('pk_booking_slots')),
    info={'plugin': 'core'}
    )
    op.create_table('customers',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('email_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('phone_hash', sa.LargeBinary(length=32), nullable=True),
    sa.Column('email_enc', sa.Text(), nullable=False),
    sa.Column('phone_enc', sa.Text(), nullable=True),
    sa.Column('name_enc', sa.Text(), nullable=False),
    sa.Column('address_enc', sa.Text(), nullable=True),
    sa.Column('key_id', sa.String(length=32), nullable=False),
    sa.Column('password_hash', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=20), server_default='active', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customers')),
    sa.UniqueConstraint('email_hash', name='uq_customers_email_hash'),
    info={'plugin': 'core'}
    )
    op.create_index('ix_customers_phone_hash', 'customers', ['phone_hash'], unique=False)
    op.create_table('idempotency_keys',
    sa.Column('scope', sa.String(length=200), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('response', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('scope', 'key', name=op.f('pk_idempotency_keys')),
    info={'plugin': 'core'}
    )
    op.create_table('offline_outbox',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('port', sa.String(length=30), nullable=False),
    sa.Column('operation', sa.String(length=60), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_offline_outbox')),
    info={'plugin': 'core'}
    )
    op.create_index('ix_offline_outbox_port', 'offline_outbox', ['port', 'created_at'], unique=False)
    op.create_table('outbox_events',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox_events')),
    info={'plugin': 'core'}
    )
    op.create_index('ix_outbox_events_pending', 'outbox_events', ['created_at'], unique=False, postgresql_where=sa.text('dispatched_at IS NULL'))
    op.create_table('refresh_tokens',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('subject', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('token_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('family', sa.UUID(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refresh_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_refresh_tokens_token_hash')),
    info={'plugin': 'core'}
    )
    op.create_index('ix_refresh_tokens_subject', 'refresh_tokens', ['subject'], unique=False)
    op.create_table('bookings',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('customer_id', sa.UUID(), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('time_zone', sa.String(length=64), nullable=False),
    sa.Column('duration_minutes', sa.Integer(), nullable=False),
    sa.Column('party_size', sa.Integer(), nullable=False),
    sa.Column('adults', sa.Integer(), nullable=False),
    sa.Column('children', sa.Integer(), server_default='0', nullable=False),
    sa.Column('address', sa.Text(), nullable=False),
    sa.Column('zip_code', sa.String(length=10), nullable=True),
    sa.Column('menu', sa.Text(), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=20), server_default='pending', nullable=False),
    sa.Column('price_lines', postgresql.JSONB(astext_type=sa.Text()), server_default='[]', nullable=False),
    sa.Column('total_cents', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), server_default='USD', nullable=False),
    sa.Column('slot_key', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_bookings_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bookings')),
    info={'plugin': 'core'}
    )
    op.create_index('ix_bookings_created_id', 'bookings', ['created_at', 'id'], unique=False)
    op.create_index('ix_bookings_customer_created', 'bookings', ['customer_id', 'created_at', 'id'], unique=False)
    op.create_index('ix_bookings_slot_status', 'bookings', ['slot_key', 'status'], unique=False)
    op.create_index('ix_bookings_starts_at', 'bookings', ['starts_at'], unique=False)
    op.create_table('event_deliveries',
    sa.Column('event_id', sa.UUID(), nullable=False),
    sa.Column('subscriber', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['event_id'], ['outbox_events.id'], name=op.f('fk_event_deliveries_event_id_outbox_events'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('event_id', 'subscriber', name=op.f('pk_event_deliveries')),
    info={'plugin': 'core'}
    )
    op.create_index('ix_event_deliveries_due', 'event_deliveries', ['next_attempt_at'], unique=False, postgresql_where=sa.text("status = 'pending'"))


def downgrade() -> None:
    op.drop_index('ix_event_deliveries_due', table_name='event_deliveries', postgresql_where=sa.text("status = 'pending'"))
    op.drop_table('event_deliveries')
    op.drop_index('ix_bookings_starts_at', table_name='bookings')
    op.drop_index('ix_bookings_slot_status', table_name='bookings')
    op.drop_index('ix_bookings_customer_created', table_name='bookings')
    op.drop_index('ix_bookings_created_id', table_name='bookings')
    op.drop_table('bookings')
    op.drop_index('ix_refresh_tokens_subject', table_name='refresh_tokens')
    op.drop_table('refresh_tokens')
    op.drop_index('ix_outbox_events_pending', table_name='outbox_events', postgresql_where=sa.text('dispatched_at IS NULL'))
    op.drop_table('outbox_events')
    op.drop_index('ix_offline_outbox_port', table_name='offline_outbox')
    op.drop_table('offline_outbox')
    op.drop_table('idempotency_keys')
    op.drop_index('ix_customers_phone_hash', table_name='customers')
    op.drop_table('customers')
    op.drop_table('booking_slots')
    op.drop_table('api_keys')
