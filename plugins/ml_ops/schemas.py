"""Requests, answers and event payloads of the AI orchestration and training API."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from myhibachi.core import NextCursor, Text

Key = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$", description="Lower case letters, digits, _ . -")
Feature = Field(default="default", pattern=r"^[a-z0-9][a-z0-9_.-]{0,49}$", description="What the call is for.")


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant"]
    content: Text = Field(min_length=1, max_length=20_000)


class CompletionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    feature: str = Feature
    messages: list[Message] = Field(default_factory=list, max_length=100)
    template: str | None = Field(default=None, max_length=100, description="A template's key; its user part "
                                 "(and system part) is rendered with ``variables`` and sent after ``messages``.")
    version: int | None = Field(default=None, ge=1, le=1_000_000,
                                description="The template's version; its latest by default.")
    variables: dict[str, Text] = Field(default_factory=dict)
    model: str | None = Field(default=None, max_length=100, description="Overrides the configured model.")
    conversation_id: uuid.UUID | None = Field(default=None, description=(
        "Continue (or start) this conversation: its earlier turns are the context."))
    max_tokens: int | None = Field(default=None, ge=1, le=16_000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    cache: bool = Field(default=True, description="Answer from the cache when the same call was answered.")


class Attempt(BaseModel):
    model: str
    error: str


class Completion(BaseModel):
    call_id: uuid.UUID
    content: str
    model: str
    requested_model: str
    fallback_from: list[Attempt]
    cached: bool
    prompt_tokens: int
    completion_tokens: int
    cost_microcents: int = Field(description="Millionths of a cent.")
    conversation_id: uuid.UUID | None = None
    context_turns: int = Field(0, description="Earlier turns sent whole.")
    summarised_turns: int = Field(0, description="Earlier turns sent as the conversation's summary.")


class CostRow(BaseModel):
    key: str = Field(description="The day (YYYY-MM-DD), model or feature.")
    calls: int
    cached_calls: int
    cache_hit_rate: float
    prompt_tokens: int
    completion_tokens: int
    cost_microcents: int


class CostPage(BaseModel):
    items: list[CostRow]
    next_cursor: NextCursor
    group_by: Literal["day", "model", "feature"]
    total_cost_microcents: int
    calls: int
    cache_hit_rate: float


class TemplateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Key
    system: str | None = Field(default=None, max_length=20_000)
    user: str = Field(min_length=1, max_length=20_000)
    description: str | None = Field(default=None, max_length=500)


class Template(BaseModel):
    key: str
    version: int
    system: str | None
    user: str
    variables: list[str]
    description: str | None
    created_by: str | None
    created_at: datetime


class TemplatePage(BaseModel):
    items: list[Template]
    next_cursor: NextCursor


class Example(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=5000)
    label: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,49}$")


class TrainIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Key
    examples: list[Example] = Field(min_length=4, max_length=20_000)
    test_size: float = Field(default=0.25, gt=0, lt=1, description="The share held out for evaluation.")
    seed: int = Field(default=0, ge=0, le=2**31 - 1)


class ModelStatus(BaseModel):
    id: uuid.UUID
    name: str
    kind: str
    status: Literal["queued", "running", "trained", "failed", "succeeded", "cancelled"]
    base_model: str | None
    labels: list[str] | None
    examples: int
    train_examples: int
    test_examples: int
    fine_tuned_model: str | None = None
    provider_job_id: str | None = None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    latest_evaluation: Evaluation | None = None


class Evaluation(BaseModel):
    id: uuid.UUID
    model_id: uuid.UUID
    examples: int
    accuracy: float
    macro_f1: float
    labels: list[str]
    confusion: list[list[int]] = Field(description="Rows: the true label, columns: the predicted, in labels' order.")
    created_at: datetime


class PredictIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    texts: list[Annotated[str, Field(min_length=1, max_length=5000)]] = Field(
        min_length=1, max_length=100, description="The messages to classify.")


class Prediction(BaseModel):
    text: str
    label: str
    confidence: float = Field(description="The probability of the label, 0 to 1.")
    scores: dict[str, float] = Field(description="The probability of every label.")


class Predictions(BaseModel):
    model_id: uuid.UUID
    results: list[Prediction]


class ChatExample(BaseModel):
    model_config = ConfigDict(extra="forbid")
    messages: list[Message] = Field(min_length=2, max_length=50)


class FineTuneIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Key
    base_model: str = Field(min_length=1, max_length=100)
    examples: list[ChatExample] = Field(min_length=10, max_length=50_000)


class BatchItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ref: str | None = Field(default=None, max_length=100, description="Your id of the message.")
    text: str = Field(min_length=1, max_length=20_000)


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    feature: str = Feature
    template: str = Field(max_length=100, description="The template each message is rendered into.")
    version: int | None = Field(default=None, ge=1, le=1_000_000)
    variable: str = Field(default="text", max_length=50, description="The template variable a message fills.")
    model: str | None = Field(default=None, max_length=100)
    chunk_size: int | None = Field(default=None, ge=1, le=500)
    items: list[BatchItemIn] = Field(min_length=1, max_length=10_000)


class BatchResult(BaseModel):
    seq: int
    ref: str | None
    status: Literal["pending", "done", "failed"]
    output: str | None
    error: str | None
    call_id: uuid.UUID | None
    attempts: int


class Batch(BaseModel):
    id: uuid.UUID
    feature: str
    template_key: str
    template_version: int
    model: str | None
    chunk_size: int
    status: Literal["queued", "running", "done"]
    total: int
    processed: int
    failed: int
    progress: float = Field(description="Items finished (done or failed) over all items, 0 to 1.")
    created_at: datetime
    finished_at: datetime | None
    results: list[BatchResult]


# --- events --------------------------------------------------------------------------------


class CallCompleted(BaseModel):
    """A model call was answered (from a model or the cache); its tokens and cost are recorded."""

    call_id: str
    feature: str
    model: str
    requested_model: str
    cached: bool
    fallback: bool
    cost_microcents: int


class TemplateSaved(BaseModel):
    """A prompt template was saved as a new version."""

    key: str
    version: int


class ModelTrained(BaseModel):
    """A training job finished: ``status`` is trained (or failed, with ``error``)."""

    model_id: str
    name: str
    status: str
    error: str | None = None


class ModelEvaluated(BaseModel):
    """A trained model was evaluated on its held-out examples."""

    model_id: str
    evaluation_id: str
    accuracy: float
    macro_f1: float


class BatchCompleted(BaseModel):
    """Every item of a batch was processed (done or failed)."""

    batch_id: str
    total: int
    failed: int


ModelStatus.model_rebuild()
