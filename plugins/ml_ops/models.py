"""The AI orchestration's rows: every model call with its tokens and cost, the response cache,
conversations and their turns, prompt templates by version, trained models with their
evaluations, and batch jobs with their items.

What callers wrote and what models answered can hold a customer's words, so it is sealed at
rest like the core's PII (``<field>_enc`` with the row's ``key_id``, bound by :func:`aad` to
its table, field and row): turns, summaries, cached answers, examples and batch texts.
Templates are staff's own words and stay plain."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from myhibachi.core import created_at, metadata, timestamp, uuid_pk

OWNER = {"plugin": "ml_ops"}


def aad(table: sa.Table, field: str, *key) -> str:
    """The associated data binding a sealed value to its table, field and row (its key's values)."""
    return f"{table.name}.{field}:" + ":".join(str(k) for k in key)

calls = sa.Table(
    "ml_ops_calls",
    metadata,
    uuid_pk(),
    sa.Column("feature", sa.String(50), nullable=False),
    sa.Column("principal", sa.String(200), nullable=False),
    sa.Column("requested_model", sa.String(100), nullable=False),
    sa.Column("model", sa.String(100), nullable=False),  # the catalogue's model that answered
    sa.Column("adapter", sa.String(50), nullable=False),
    sa.Column("fallback_from", JSONB, nullable=False, server_default="[]"),  # [{model, error}] tried first
    sa.Column("cache_key", sa.String(64), nullable=False),
    sa.Column("cached", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("prompt_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("completion_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("tokens_estimated", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("cost_microcents", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("latency_ms", sa.Integer, nullable=False, server_default="0"),
    sa.Column("template_key", sa.String(100)),
    sa.Column("template_version", sa.Integer),
    sa.Column("conversation_id", UUID(as_uuid=True)),
    created_at(),
    sa.Index("ix_ml_ops_calls_created_at", "created_at"),
    info=OWNER,
)

cache = sa.Table(
    "ml_ops_cache",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),  # keyed hash of model, messages and parameters
    sa.Column("model", sa.String(100), nullable=False),
    sa.Column("content_enc", sa.Text, nullable=False),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("prompt_tokens", sa.Integer, nullable=False),
    sa.Column("completion_tokens", sa.Integer, nullable=False),
    sa.Column("hits", sa.Integer, nullable=False, server_default="0"),
    timestamp("expires_at", nullable=False),
    created_at(),
    info=OWNER,
)

conversations = sa.Table(
    "ml_ops_conversations",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("principal", sa.String(200), nullable=False),
    sa.Column("summary_enc", sa.Text),  # none until older turns are summarised
    sa.Column("key_id", sa.String(32)),
    sa.Column("summarised_through", sa.Integer, nullable=False, server_default="0"),  # turns up to this seq
    created_at(),
    timestamp("updated_at", nullable=False, server_default=sa.func.now()),
    info=OWNER,
)

turns = sa.Table(
    "ml_ops_turns",
    metadata,
    sa.Column("conversation_id", UUID(as_uuid=True), sa.ForeignKey("ml_ops_conversations.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("role", sa.String(10), nullable=False),
    sa.Column("content_enc", sa.Text, nullable=False),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("tokens", sa.Integer, nullable=False),
    created_at(),
    info=OWNER,
)

templates = sa.Table(
    "ml_ops_templates",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("system", sa.Text),
    sa.Column("user", sa.Text, nullable=False),
    sa.Column("variables", ARRAY(sa.String(50)), nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("created_by", sa.String(200)),
    created_at(),
    info=OWNER,
)

models = sa.Table(
    "ml_ops_models",
    metadata,
    uuid_pk(),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),  # intent_classifier | fine_tune
    sa.Column("status", sa.String(20), nullable=False, server_default="queued"),
    sa.Column("base_model", sa.String(100)),  # the embeddings model, or the hosted LLM fine-tuned
    sa.Column("params", JSONB),  # the classifier's classes, coefficients and intercepts
    sa.Column("labels", ARRAY(sa.String(50))),
    sa.Column("test_size", sa.Float, nullable=False, server_default="0.25"),
    sa.Column("seed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("provider_job_id", sa.String(100)),
    sa.Column("provider_file_id", sa.String(100)),
    sa.Column("fine_tuned_model", sa.String(200)),
    sa.Column("error", sa.Text),
    sa.Column("requested_by", sa.String(200), nullable=False),
    created_at(),
    timestamp("started_at"),
    timestamp("finished_at"),
    sa.CheckConstraint("kind IN ('intent_classifier', 'fine_tune')", name="kind"),
    info=OWNER,
)

examples = sa.Table(
    "ml_ops_examples",
    metadata,
    sa.Column("model_id", UUID(as_uuid=True), sa.ForeignKey("ml_ops_models.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("text_enc", sa.Text, nullable=False),
    sa.Column("label", sa.String(50)),
    sa.Column("messages_enc", sa.Text),  # a fine-tuning example: the chat it teaches, as JSON
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("split", sa.String(5)),  # train | test, set by the training job
    info=OWNER,
)

evaluations = sa.Table(
    "ml_ops_evaluations",
    metadata,
    uuid_pk(),
    sa.Column("model_id", UUID(as_uuid=True), sa.ForeignKey("ml_ops_models.id", ondelete="CASCADE"), nullable=False),
    sa.Column("examples", sa.Integer, nullable=False),
    sa.Column("accuracy", sa.Float, nullable=False),
    sa.Column("macro_f1", sa.Float, nullable=False),
    sa.Column("labels", ARRAY(sa.String(50)), nullable=False),
    sa.Column("confusion", JSONB, nullable=False),  # rows: true label, columns: predicted, in ``labels`` order
    sa.Column("requested_by", sa.String(200), nullable=False),
    created_at(),
    info=OWNER,
)

batches = sa.Table(
    "ml_ops_batches",
    metadata,
    uuid_pk(),
    sa.Column("feature", sa.String(50), nullable=False),
    sa.Column("template_key", sa.String(100), nullable=False),
    sa.Column("template_version", sa.Integer, nullable=False),
    sa.Column("variable", sa.String(50), nullable=False),  # the template variable each item's text fills
    sa.Column("model", sa.String(100)),
    sa.Column("chunk_size", sa.Integer, nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("status", sa.String(10), nullable=False, server_default="queued"),  # queued | running | done
    sa.Column("requested_by", sa.String(200), nullable=False),
    created_at(),
    timestamp("finished_at"),
    info=OWNER,
)

batch_items = sa.Table(
    "ml_ops_batch_items",
    metadata,
    sa.Column("batch_id", UUID(as_uuid=True), sa.ForeignKey("ml_ops_batches.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("ref", sa.String(100)),  # the caller's id of the message
    sa.Column("text_enc", sa.Text, nullable=False),
    sa.Column("status", sa.String(10), nullable=False, server_default="pending"),  # pending | done | failed
    sa.Column("output_enc", sa.Text),
    sa.Column("key_id", sa.String(32), nullable=False),  # both texts' (the output is sealed with the text again)
    sa.Column("error", sa.Text),
    sa.Column("call_id", UUID(as_uuid=True)),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    timestamp("finished_at"),
    sa.Index("ix_ml_ops_batch_items_pending", "batch_id", "seq", postgresql_where=sa.text("status = 'pending'")),
    info=OWNER,
)
