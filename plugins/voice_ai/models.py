"""Tables of voice_ai: the calls, what was said on them (with its sentiment), and every IVR step."""
import sqlalchemy as sa

from myhibachi.core import created_at, metadata, timestamp, uuid_pk

OWNER = {"plugin": "voice_ai"}
# in_ivr: the menu has the caller; routed: the menu reached its goal; transferred: a person has it
STATUSES = ("in_ivr", "routed", "transferred", "ended")

voice_calls = sa.Table(
    "voice_calls",
    metadata,
    uuid_pk(),
    sa.Column("provider", sa.String(20), nullable=False),
    sa.Column("provider_call_id", sa.String(255), nullable=False),  # Twilio's CallSid
    sa.Column("direction", sa.String(20), nullable=False, server_default="inbound"),
    # the caller's and the called number are sealed like customer PII
    sa.Column("key_id", sa.String(40), nullable=False),
    sa.Column("from_enc", sa.Text),
    sa.Column("to_enc", sa.Text),
    # the customers' lookup hash of the other party's number (From inbound, To outbound): an erasure finds the calls
    sa.Column("phone_hash", sa.LargeBinary(32)),
    sa.Column("status", sa.String(20), nullable=False, server_default="in_ivr"),
    sa.Column("ivr_state", sa.String(40), nullable=False),
    sa.Column("ivr_failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("intent", sa.String(40)),  # where the IVR took the caller: book, change, agent
    sa.Column("sentiment_score", sa.Float),  # the last utterance's VADER compound, -1..1
    sa.Column("flagged_reason", sa.Text),
    timestamp("flagged_at"),
    sa.Column("transferred_to", sa.String(100)),
    sa.Column("transferred_agent", sa.String(100)),  # the person's name, when staff gave it
    sa.Column("transferred_by", sa.String(200)),
    timestamp("transferred_at"),
    sa.Column("duration_seconds", sa.Integer),
    created_at(),
    timestamp("updated_at", nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint(f"status IN {STATUSES}", name="status"),
    sa.UniqueConstraint("provider", "provider_call_id", name="uq_voice_calls_provider_call"),
    sa.Index("ix_voice_calls_phone_hash", "phone_hash", postgresql_where=sa.text("phone_hash IS NOT NULL")),
    info=OWNER,
)

voice_utterances = sa.Table(
    "voice_utterances",
    metadata,
    uuid_pk(),
    sa.Column("call_id", sa.UUID, sa.ForeignKey(voice_calls.c.id, ondelete="CASCADE"), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("source", sa.String(20), nullable=False),  # audio (transcribed here) or ivr (the provider's speech)
    sa.Column("key_id", sa.String(40), nullable=False),
    sa.Column("text_enc", sa.Text, nullable=False),
    sa.Column("sentiment", sa.Float, nullable=False),
    sa.Column("audio_sha256", sa.String(64)),  # the same clip posted twice is one utterance
    sa.Column("model", sa.String(100)),
    sa.Column("elapsed_ms", sa.Integer),
    created_at(),
    sa.UniqueConstraint("call_id", "seq", name="uq_voice_utterances_call_seq"),
    sa.Index("uq_voice_utterances_audio", "call_id", "audio_sha256", unique=True,
             postgresql_where=sa.text("audio_sha256 IS NOT NULL")),
    info=OWNER,
)

voice_ivr_steps = sa.Table(
    "voice_ivr_steps",
    metadata,
    uuid_pk(),
    sa.Column("call_id", sa.UUID, sa.ForeignKey(voice_calls.c.id, ondelete="CASCADE"), nullable=False),
    sa.Column("state", sa.String(40), nullable=False),
    sa.Column("input", sa.String(20), nullable=False),  # digits, speech or timeout
    sa.Column("value", sa.String(200)),  # the key pressed or the words matched (never the whole speech)
    sa.Column("outcome", sa.String(20), nullable=False),  # moved, replayed, escalated
    sa.Column("next_state", sa.String(40), nullable=False),
    sa.Column("input_id", sa.String(64)),  # the provider's id of the input (RingCentral's): a replay is one step
    created_at(),
    sa.Index("ix_voice_ivr_steps_call", "call_id", "created_at"),
    sa.Index("uq_voice_ivr_steps_input", "call_id", "input_id", unique=True,
             postgresql_where=sa.text("input_id IS NOT NULL")),
    info=OWNER,
)
