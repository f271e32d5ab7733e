"""The AI API: completions through the orchestration, cost analytics, prompt templates, and
models (training.py, fine_tune.py) and batches (batch.py); thin over the services."""
from __future__ import annotations

import uuid
from datetime import date
from typing import Literal

from fastapi import APIRouter, Depends, Query

from myhibachi.core import (CURSOR, LIMIT, AiOrchestration, Conn, Connection, Principal, error_responses,
                            idempotency, invalid, require)
from myhibachi.plugins.ml_ops import batch, fine_tune, service, training
from myhibachi.plugins.ml_ops.schemas import (Batch, BatchIn, Completion, CompletionIn, CostPage, Evaluation,
                                              FineTuneIn, ModelStatus, PredictIn, Predictions, Template, TemplateIn,
                                              TemplatePage, TrainIn)


def who(principal: Principal) -> str:
    return f"{principal.kind}:{principal.id}"


def add_routes(router: APIRouter, ctx) -> None:
    ai: AiOrchestration = service.orchestrator_of(ctx)  # the service the other AI plugins are given

    @router.post("/ai/completions", response_model=Completion,
                 responses=error_responses(401, 403, 404, 409, 422, 429, 503),
                 summary="Answer messages or a template through the orchestration (cache, limits, fallback)")
    @idempotency.idempotent(required=False)
    async def complete(body: CompletionIn, conn: Conn = Connection,
                       principal: Principal = Depends(require("ai.use"))) -> Completion:
        return Completion(**await ai.complete(
            conn, principal=who(principal), feature=body.feature, messages=[m.model_dump() for m in body.messages],
            template=body.template, version=body.version, variables=body.variables, model=body.model,
            conversation_id=body.conversation_id, max_tokens=body.max_tokens, temperature=body.temperature,
            cache=body.cache))

    @router.get("/ai/costs", response_model=CostPage, responses=error_responses(401, 403, 422),
                summary="Tokens, cost and cache hit rate of the model calls, by day, model or feature")
    async def costs(group_by: Literal["day", "model", "feature"] = "day", since: date | None = None,
                    until: date | None = None, feature: str | None = Query(None, max_length=50),
                    model: str | None = Query(None, max_length=100), limit: int = LIMIT,
                    cursor: str | None = CURSOR, conn: Conn = Connection,
                    _: Principal = Depends(require("ai.read"))) -> CostPage:
        if since and until and until < since:
            raise invalid("query.until", "is before since")
        return CostPage(**await service.costs(conn, group_by=group_by, since=since, until=until, feature=feature,
                                              model=model, limit=limit, cursor=cursor))

    @router.post("/ai/templates", response_model=Template, status_code=201,
                 responses=error_responses(401, 403, 409, 422),
                 summary="Save a prompt template: a new key is version 1, an existing one its next version")
    @idempotency.idempotent(required=False)
    async def save_template(body: TemplateIn, conn: Conn = Connection,
                            principal: Principal = Depends(require("ai.write"))) -> Template:
        return Template(**await service.save_template(conn, ctx, body, who(principal)))

    @router.get("/ai/templates", response_model=TemplatePage, responses=error_responses(401, 403, 422),
                summary="The prompt templates, each at its latest version, by key")
    async def list_templates(limit: int = LIMIT, cursor: str | None = CURSOR, conn: Conn = Connection,
                             _: Principal = Depends(require("ai.read"))) -> TemplatePage:
        items, next_cursor = await service.list_templates(conn, limit=limit, cursor=cursor)
        return TemplatePage(items=items, next_cursor=next_cursor)

    @router.get("/ai/templates/{key}", response_model=Template, responses=error_responses(401, 403, 404, 422),
                summary="A prompt template's latest version, or the one asked for")
    async def get_template(key: str, version: int | None = Query(None, ge=1, le=1_000_000), conn: Conn = Connection,
                           _: Principal = Depends(require("ai.read"))) -> Template:
        return Template(**await service.template_of(conn, key, version))

    @router.post("/ai/models/train", response_model=ModelStatus, status_code=202,
                 responses=error_responses(401, 403, 409, 422),
                 summary="Queue the training of an intent classifier on labelled examples; its status tells progress")
    @idempotency.idempotent(required=False)
    async def train_model(body: TrainIn, conn: Conn = Connection,
                          principal: Principal = Depends(require("ai.write"))) -> ModelStatus:
        return ModelStatus(**await training.start(conn, ctx, body, who(principal)))

    @router.post("/ai/models/fine-tune", response_model=ModelStatus, status_code=202,
                 responses=error_responses(401, 403, 409, 422),
                 summary="Queue a fine-tuning job of a hosted model (OpenAI) on chat examples; its status follows it")
    @idempotency.idempotent
    async def fine_tune_model(body: FineTuneIn, conn: Conn = Connection,
                              principal: Principal = Depends(require("ai.write"))) -> ModelStatus:
        return ModelStatus(**await fine_tune.start(conn, ctx, body, who(principal)))

    @router.get("/ai/models/{model_id}/status", response_model=ModelStatus,
                responses=error_responses(401, 403, 404, 422),
                summary="A model's training status, split sizes and latest evaluation")
    async def model_status(model_id: uuid.UUID, conn: Conn = Connection,
                           _: Principal = Depends(require("ai.read"))) -> ModelStatus:
        return ModelStatus(**await training.status(conn, model_id))

    @router.post("/ai/models/{model_id}/evaluate", response_model=Evaluation, status_code=201,
                 responses=error_responses(401, 403, 404, 409, 422),
                 summary="Evaluate a trained classifier on its held-out examples: accuracy, macro-F1, confusion")
    @idempotency.idempotent(required=False)
    async def evaluate_model(model_id: uuid.UUID, conn: Conn = Connection,
                             principal: Principal = Depends(require("ai.write"))) -> Evaluation:
        return Evaluation(**await training.evaluate(conn, ctx, model_id, who(principal)))

    @router.post("/ai/models/{model_id}/predict", response_model=Predictions,
                 responses=error_responses(401, 403, 404, 409, 422),
                 summary="The intent a trained classifier gives each text, with its probabilities")
    @idempotency.idempotent(required=False)
    async def predict_intents(model_id: uuid.UUID, body: PredictIn, conn: Conn = Connection,
                              _: Principal = Depends(require("ai.use"))) -> Predictions:
        return Predictions(model_id=model_id, results=await training.predict(conn, ctx, model_id, body.texts))

    @router.post("/ai/batches", response_model=Batch, status_code=202,
                 responses=error_responses(401, 403, 409, 422),
                 summary="Queue messages to be answered through a template, in chunks by the worker")
    @idempotency.idempotent(required=False)
    async def start_batch(body: BatchIn, conn: Conn = Connection,
                          principal: Principal = Depends(require("ai.use"))) -> Batch:
        return Batch(**await batch.start(conn, ctx, body, who(principal)))

    @router.get("/ai/batches/{batch_id}", response_model=Batch, responses=error_responses(401, 403, 404, 422),
                summary="A batch's progress and its items' results")
    async def get_batch(batch_id: uuid.UUID, conn: Conn = Connection,
                        _: Principal = Depends(require("ai.read"))) -> Batch:
        return Batch(**await batch.view(conn, ctx, batch_id))
