"""locations and booking locations

Revision ID: locations_0001
Revises: (first of its branch; depends on the core's tables)
Create Date: 2026-11-24 22:20:40.039617
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'locations_0001'
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = ('locations',)
depends_on: Union[str, Sequence[str], None] = 'core_0001'


def upgrade() -> None:
    op.create_table('locations',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('address', sa.Text(), nullable=False),
    sa.Column('city', sa.String(length=100), nullable=False),
    sa.Column('state', sa.String(length=50), nullable=False),
    sa.Column('zip_code', sa.String(length=10), nullable=False),
    sa.Column('phone', sa.String(length=20), nullable=True),
    sa.Column('email', sa.String(length=255), nullable=True),
    sa.Column('time_zone', sa.String(length=64), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('events_per_slot', sa.Integer(), server_default='1', nullable=False),
    sa.Column('status', sa.String(length=20), server_default='active', nullable=False),
    sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('active', 'inactive', 'maintenance')", name=op.f('ck_locations_status')),
    sa.CheckConstraint('capacity >= 1', name=op.f('ck_locations_capacity')),
    sa.CheckConstraint('events_per_slot >= 1', name=op.f('ck_locations_events_per_slot')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_locations')),
    info={'plugin': 'locations'}
    )
    op.create_index('ix_locations_created_id', 'locations', ['created_at', 'id'], unique=False)
    op.create_table('booking_locations',
    sa.Column('booking_id', sa.UUID(), nullable=False),
    sa.Column('location_id', sa.UUID(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['booking_id'], ['bookings.id'], name=op.f('fk_booking_locations_booking_id_bookings'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['location_id'], ['locations.id'], name=op.f('fk_booking_locations_location_id_locations')),
    sa.PrimaryKeyConstraint('booking_id', name=op.f('pk_booking_locations')),
    info={'plugin': 'locations'}
    )
    op.create_index('ix_booking_locations_location', 'booking_locations', ['location_id', 'booking_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_booking_locations_location', table_name='booking_locations')
    op.drop_table('booking_locations')
    op.drop_index('ix_locations_created_id', table_name='locations')
    op.drop_table('locations')
