"""ai calls, cache, conversations, templates, models, batches

Revision ID: ml_ops_0001
Revises: (first of its branch; depends on the core's head)
Create Date: 2026-12-04 13:39:18.083886
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'ml_ops_0001'
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = ('ml_ops',)
depends_on: Union[str, Sequence[str], None] = 'core_booking_pools'


def upgrade() -> None:
    op.create_table('ml_ops_batches',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('feature', sa.String(length=50), nullable=False),
    sa.Column('template_key', sa.String(length=100), nullable=False),
    sa.Column('template_version', sa.Integer(), nullable=False),
    sa.Column('variable', sa.String(length=50), nullable=False),
    sa.Column('model', sa.String(length=100), nullable=True),
    sa.Column('chunk_size', sa.Integer(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=10), server_default='queued', nullable=False),
    sa.Column('requested_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ml_ops_batches')),
    info={'plugin': 'ml_ops'}
    )
    op.create_table('ml_ops_cache',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('model', sa.String(length=100), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('prompt_tokens', sa.Integer(), nullable=False),
    sa.Column('completion_tokens', sa.Integer(), nullable=False),
    sa.Column('hits', sa.Integer(), server_default='0', nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_ml_ops_cache')),
    info={'plugin': 'ml_ops'}
    )
    op.create_table('ml_ops_calls',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('feature', sa.String(length=50), nullable=False),
    sa.Column('principal', sa.String(length=200), nullable=False),
    sa.Column('requested_model', sa.String(length=100), nullable=False),
    sa.Column('model', sa.String(length=100), nullable=False),
    sa.Column('adapter', sa.String(length=50), nullable=False),
    sa.Column('fallback_from', postgresql.JSONB(astext_type=sa.Text()), server_default='[]', nullable=False),
    sa.Column('cache_key', sa.String(length=64), nullable=False),
    sa.Column('cached', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('prompt_tokens', sa.Integer(), server_default='0', nullable=False),
    sa.Column('completion_tokens', sa.Integer(), server_default='0', nullable=False),
    sa.Column('tokens_estimated', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('cost_microcents', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('latency_ms', sa.Integer(), server_default='0', nullable=False),
    sa.Column('template_key', sa.String(length=100), nullable=True),
    sa.Column('template_version', sa.Integer(), nullable=True),
    sa.Column('conversation_id', sa.UUID(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ml_ops_calls')),
    info={'plugin': 'ml_ops'}
    )
    op.create_index('ix_ml_ops_calls_created_at', 'ml_ops_calls', ['created_at'], unique=False)
    op.create_table('ml_ops_conversations',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('principal', sa.String(length=200), nullable=False),
    sa.Column('summary', sa.Text(), server_default='', nullable=False),
    sa.Column('summarised_through', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ml_ops_conversations')),
    info={'plugin': 'ml_ops'}
    )
    op.create_table('ml_ops_models',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=20), server_default='queued', nullable=False),
    sa.Column('base_model', sa.String(length=100), nullable=True),
    sa.Column('params', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('labels', postgresql.ARRAY(sa.String(length=50)), nullable=True),
    sa.Column('test_size', sa.Float(), server_default='0.25', nullable=False),
    sa.Column('seed', sa.Integer(), server_default='0', nullable=False),
    sa.Column('provider_job_id', sa.String(length=100), nullable=True),
    sa.Column('provider_file_id', sa.String(length=100), nullable=True),
    sa.Column('fine_tuned_model', sa.String(length=200), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('requested_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind IN ('intent_classifier', 'fine_tune')", name=op.f('ck_ml_ops_models_kind')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ml_ops_models')),
    info={'plugin': 'ml_ops'}
    )
    op.create_table('ml_ops_templates',
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('system', sa.Text(), nullable=True),
    sa.Column('user', sa.Text(), nullable=False),
    sa.Column('variables', postgresql.ARRAY(sa.String(length=50)), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('created_by', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('key', 'version', name=op.f('pk_ml_ops_templates')),
    info={'plugin': 'ml_ops'}
    )
    op.create_table('ml_ops_batch_items',
    sa.Column('batch_id', sa.UUID(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('ref', sa.String(length=100), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=10), server_default='pending', nullable=False),
    sa.Column('output', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('call_id', sa.UUID(), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['batch_id'], ['ml_ops_batches.id'], name=op.f('fk_ml_ops_batch_items_batch_id_ml_ops_batches'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('batch_id', 'seq', name=op.f('pk_ml_ops_batch_items')),
    info={'plugin': 'ml_ops'}
    )
    op.create_index('ix_ml_ops_batch_items_pending', 'ml_ops_batch_items', ['batch_id', 'seq'], unique=False, postgresql_where=sa.text("status = 'pending'"))
    op.create_table('ml_ops_evaluations',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('model_id', sa.UUID(), nullable=False),
    sa.Column('examples', sa.Integer(), nullable=False),
    sa.Column('accuracy', sa.Float(), nullable=False),
    sa.Column('macro_f1', sa.Float(), nullable=False),
    sa.Column('labels', postgresql.ARRAY(sa.String(length=50)), nullable=False),
    sa.Column('confusion', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('requested_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['ml_ops_models.id'], name=op.f('fk_ml_ops_evaluations_model_id_ml_ops_models'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ml_ops_evaluations')),
    info={'plugin': 'ml_ops'}
    )
    op.create_table('ml_ops_examples',
    sa.Column('model_id', sa.UUID(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('label', sa.String(length=50), nullable=True),
    sa.Column('messages', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('split', sa.String(length=5), nullable=True),
    sa.ForeignKeyConstraint(['model_id'], ['ml_ops_models.id'], name=op.f('fk_ml_ops_examples_model_id_ml_ops_models'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('model_id', 'seq', name=op.f('pk_ml_ops_examples')),
    info={'plugin': 'ml_ops'}
    )
    op.create_table('ml_ops_turns',
    sa.Column('conversation_id', sa.UUID(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=10), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('tokens', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['conversation_id'], ['ml_ops_conversations.id'], name=op.f('fk_ml_ops_turns_conversation_id_ml_ops_conversations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('conversation_id', 'seq', name=op.f('pk_ml_ops_turns')),
    info={'plugin': 'ml_ops'}
    )


def downgrade() -> None:
    op.drop_table('ml_ops_turns')
    op.drop_table('ml_ops_examples')
    op.drop_table('ml_ops_evaluations')
    op.drop_index('ix_ml_ops_batch_items_pending', table_name='ml_ops_batch_items', postgresql_where=sa.text("status = 'pending'"))
    op.drop_table('ml_ops_batch_items')
    op.drop_table('ml_ops_templates')
    op.drop_table('ml_ops_models')
    op.drop_table('ml_ops_conversations')
    op.drop_index('ix_ml_ops_calls_created_at', table_name='ml_ops_calls')
    op.drop_table('ml_ops_calls')
    op.drop_table('ml_ops_cache')
    op.drop_table('ml_ops_batches')
