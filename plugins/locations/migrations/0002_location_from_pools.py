"""a booking's location is the location pool it draws on: booking_locations goes

Revision ID: locations_0002
Revises: locations_0001
Create Date: 2026-12-03 14:10:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = 'locations_0002'
down_revision: Union[str, Sequence[str], None] = 'locations_0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = 'core_booking_pools'

_POOL = "'location:' || replace(CAST({} AS text), '-', '')"


def upgrade() -> None:
    # A booking from before pools had a scoped slot key, "<location id hex>:<start>".
    op.execute("UPDATE bookings SET pools = ARRAY['location:' || split_part(slot_key, ':', 1)] "
               "WHERE pools = '{}' AND slot_key ~ '^[0-9a-f]{32}:'")
    # A link without its pool keeps its location as the pool.
    op.execute(f"UPDATE bookings b SET pools = array_append(b.pools, {_POOL.format('l.location_id')}) "
               f"FROM booking_locations l WHERE l.booking_id = b.id "
               f"AND NOT {_POOL.format('l.location_id')} = ANY(b.pools)")
    op.drop_index('ix_booking_locations_location', table_name='booking_locations')
    op.drop_table('booking_locations')


def downgrade() -> None:
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
    op.execute("INSERT INTO booking_locations (booking_id, location_id) "
               "SELECT b.id, CAST(substr(p, 10) AS uuid) FROM bookings b CROSS JOIN LATERAL unnest(b.pools) p "
               "JOIN locations l ON l.id = CAST(substr(p, 10) AS uuid) WHERE p LIKE 'location:%'")
