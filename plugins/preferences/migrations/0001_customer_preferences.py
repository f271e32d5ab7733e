"""customer preferences and their history

Revision ID: preferences_0001
Revises: (first of its branch; depends on the core's customers)
Create Date: 2026-12-03 16:40:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'preferences_0001'
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = ('preferences',)
depends_on: Union[str, Sequence[str], None] = 'core_customers'


def upgrade() -> None:
    op.create_table('customer_preferences',
    sa.Column('customer_id', sa.UUID(), nullable=False),
    sa.Column('email_marketing', sa.Boolean(), nullable=False),
    sa.Column('email_transactional', sa.Boolean(), nullable=False),
    sa.Column('sms_marketing', sa.Boolean(), nullable=False),
    sa.Column('sms_transactional', sa.Boolean(), nullable=False),
    sa.Column('marketing_frequency', sa.String(length=10), nullable=False),
    sa.Column('language', sa.String(length=35), nullable=False),
    sa.Column('time_zone', sa.String(length=64), nullable=False),
    sa.Column('quiet_start', sa.Time(), nullable=True),
    sa.Column('quiet_end', sa.Time(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("marketing_frequency IN ('daily', 'weekly', 'monthly', 'never')",
                       name=op.f('ck_customer_preferences_marketing_frequency')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_customer_preferences_customer_id_customers'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_customer_preferences')),
    info={'plugin': 'preferences'}
    )
    op.create_table('customer_preference_changes',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('customer_id', sa.UUID(), nullable=False),
    sa.Column('actor_kind', sa.String(length=20), nullable=False),
    sa.Column('actor_id', sa.String(length=64), nullable=True),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('changes', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'],
                            name=op.f('fk_customer_preference_changes_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customer_preference_changes')),
    info={'plugin': 'preferences'}
    )
    op.create_index('ix_customer_preference_changes_customer', 'customer_preference_changes',
                    ['customer_id', 'created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_customer_preference_changes_customer', table_name='customer_preference_changes')
    op.drop_table('customer_preference_changes')
    op.drop_table('customer_preferences')
