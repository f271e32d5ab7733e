"""contact lists and their members

Revision ID: contact_lists_0001
Revises: (first of its branch; depends on the core's head)
Create Date: 2026-12-03 16:48:38.023576
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'contact_lists_0001'
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = ('contact_lists',)
depends_on: Union[str, Sequence[str], None] = 'core_booking_pools'


def upgrade() -> None:
    op.create_table('contact_lists',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('rules', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('created_by', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("(kind = 'rules') = (rules IS NOT NULL)", name=op.f('ck_contact_lists_rules_of_rule_lists')),
    sa.CheckConstraint("kind IN ('static', 'rules')", name=op.f('ck_contact_lists_kind')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_lists')),
    info={'plugin': 'contact_lists'}
    )
    op.create_table('contact_list_members',
    sa.Column('list_id', sa.UUID(), nullable=False),
    sa.Column('customer_id', sa.UUID(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_contact_list_members_customer_id_customers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['list_id'], ['contact_lists.id'], name=op.f('fk_contact_list_members_list_id_contact_lists'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('list_id', 'customer_id', name=op.f('pk_contact_list_members')),
    info={'plugin': 'contact_lists'}
    )


def downgrade() -> None:
    op.drop_table('contact_list_members')
    op.drop_table('contact_lists')
