"""voice calls, their utterances and IVR steps

Revision ID: voice_ai_0001
Revises:
Create Date: 2026-12-04
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "voice_ai_0001"
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = ("voice_ai",)
depends_on: Union[str, Sequence[str], None] = "core_booking_pools"


def upgrade() -> None:
    op.create_table(
        "voice_calls",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("provider", sa.String(20), nullable=False),
        sa.Column("provider_call_id", sa.String(255), nullable=False),
        sa.Column("direction", sa.String(20), server_default="inbound", nullable=False),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("from_enc", sa.Text(), nullable=True),
        sa.Column("to_enc", sa.Text(), nullable=True),
        sa.Column("status", sa.String(20), server_default="in_ivr", nullable=False),
        sa.Column("ivr_state", sa.String(40), nullable=False),
        sa.Column("ivr_failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("intent", sa.String(40), nullable=True),
        sa.Column("sentiment_score", sa.Float(), nullable=True),
        sa.Column("flagged_reason", sa.Text(), nullable=True),
        sa.Column("flagged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("transferred_to", sa.String(100), nullable=True),
        sa.Column("transferred_agent", sa.String(100), nullable=True),
        sa.Column("transferred_by", sa.String(200), nullable=True),
        sa.Column("transferred_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_seconds", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("status IN ('in_ivr', 'routed', 'transferred', 'ended')", name=op.f("ck_voice_calls_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voice_calls")),
        sa.UniqueConstraint("provider", "provider_call_id", name="uq_voice_calls_provider_call"),
    )
    op.create_table(
        "voice_utterances",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("call_id", sa.UUID(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("text_enc", sa.Text(), nullable=False),
        sa.Column("sentiment", sa.Float(), nullable=False),
        sa.Column("audio_sha256", sa.String(64), nullable=True),
        sa.Column("model", sa.String(100), nullable=True),
        sa.Column("elapsed_ms", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["call_id"], ["voice_calls.id"], ondelete="CASCADE",
                                name=op.f("fk_voice_utterances_call_id_voice_calls")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voice_utterances")),
        sa.UniqueConstraint("call_id", "seq", name="uq_voice_utterances_call_seq"),
    )
    op.create_index("uq_voice_utterances_audio", "voice_utterances", ["call_id", "audio_sha256"], unique=True,
                    postgresql_where=sa.text("audio_sha256 IS NOT NULL"))
    op.create_table(
        "voice_ivr_steps",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("call_id", sa.UUID(), nullable=False),
        sa.Column("state", sa.String(40), nullable=False),
        sa.Column("input", sa.String(20), nullable=False),
        sa.Column("value", sa.String(200), nullable=True),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("next_state", sa.String(40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["call_id"], ["voice_calls.id"], ondelete="CASCADE",
                                name=op.f("fk_voice_ivr_steps_call_id_voice_calls")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voice_ivr_steps")),
    )
    op.create_index("ix_voice_ivr_steps_call", "voice_ivr_steps", ["call_id", "created_at"])


def downgrade() -> None:
    op.drop_table("voice_ivr_steps")
    op.drop_table("voice_utterances")
    op.drop_table("voice_calls")
