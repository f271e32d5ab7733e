"""name and address match keys

Revision ID: customer_merge_0002
Revises: customer_merge_0001
Create Date: 2026-12-03 20:40:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = 'customer_merge_0002'
down_revision: Union[str, Sequence[str], None] = 'customer_merge_0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('customer_match_keys',
    sa.Column('customer_id', sa.UUID(), nullable=False),
    sa.Column('name_address', sa.LargeBinary(length=32), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'],
                            name=op.f('fk_customer_match_keys_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_customer_match_keys')),
    info={'plugin': 'customer_merge'}
    )
    op.create_index('ix_customer_match_keys_name_address', 'customer_match_keys', ['name_address'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_customer_match_keys_name_address', table_name='customer_match_keys')
    op.drop_table('customer_match_keys')
