"""Fine-tuning jobs for hosted LLMs, through OpenAI's fine-tuning API (the official SDK, the
same settings as the core's OpenAI adapters: ``MYHIBACHI_OPENAI_API_KEY``, ``..._API_BASE``).

``POST /v1/ai/models/fine-tune`` stores the chat examples and a queued model whose base is a
catalogue model served by the ``openai`` adapter; the worker's poller uploads them as a
JSONL file (purpose ``fine-tune``), creates the job, and then asks for its status at most
every ``fine_tune_poll_seconds`` until it succeeds (the fine-tuned model's name is stored)
or fails (the provider's error is stored). A provider that cannot be reached leaves the job
as it is for the next poll; a refusal fails it.
"""
from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from myhibachi.core import invalid, publish, vault
from myhibachi.plugins.ml_ops import service, training
from myhibachi.plugins.ml_ops.models import aad, examples, models

log = logging.getLogger("myhibachi.ml_ops")
_CLAIM = (sa.select(models).where(models.c.kind == "fine_tune", models.c.status.in_(("queued", "running")),
                                  models.c.id != sa.func.all(sa.bindparam("waiting", type_=ARRAY(UUID(as_uuid=True)))))
          .order_by(models.c.created_at).limit(1).with_for_update(skip_locked=True))
_EXAMPLES = (sa.select(examples.c.seq, examples.c.messages_enc, examples.c.key_id)
             .where(examples.c.model_id == sa.bindparam("id")).order_by(examples.c.seq))
_DONE = {"succeeded", "failed", "cancelled"}


async def start(conn, ctx, body, actor: str) -> dict[str, Any]:
    catalogue = service.orchestrator_of(ctx).catalogue
    if catalogue.adapters.get(body.base_model) != "openai":
        hosted = sorted(m for m, a in catalogue.adapters.items() if a == "openai")
        raise invalid("base_model", f"{body.base_model!r} is not a hosted model of the catalogue; fine-tunable: "
                                    f"{', '.join(hosted) or 'none (MYHIBACHI_ML_OPS_MODELS has no openai model)'}")
    model_id = uuid.uuid4()
    await conn.run(sa.insert(models).values(id=model_id, name=body.name, kind="fine_tune", base_model=body.base_model,
                                            requested_by=actor))
    await conn.run(sa.insert(examples), training.sealed_examples(ctx, model_id, [
        {"seq": i, "text": e.messages[-1].content, "split": "train", "messages": [m.model_dump() for m in e.messages]}
        for i, e in enumerate(body.examples)]))
    return await training.status(conn, model_id)


def _client(ctx):
    import openai

    settings = ctx.settings
    return openai.AsyncOpenAI(api_key=settings.openai_api_key or "not-set", base_url=settings.openai_api_base,
                              max_retries=2, timeout=60)


async def _advance(ctx, job: dict[str, Any], conn) -> dict[str, Any]:
    """The job's new values after one exchange with the provider."""
    client = _client(ctx)
    if job["provider_job_id"] is None:
        v = vault(ctx)
        chats = [v.decrypt(r["messages_enc"], r["key_id"], aad(examples, "messages", job["id"], r["seq"]))
                 for r in await conn.fetch_all(_EXAMPLES, {"id": job["id"]})]
        lines = [json.dumps({"messages": json.loads(chat)}, ensure_ascii=False) for chat in chats]
        uploaded = await client.files.create(file=(f"{job['name']}.jsonl", ("\n".join(lines) + "\n").encode()),
                                             purpose="fine-tune")
        created = await client.fine_tuning.jobs.create(model=job["base_model"], training_file=uploaded.id,
                                                       suffix=job["name"][:18])
        return {"status": "running", "provider_file_id": uploaded.id, "provider_job_id": created.id,
                "started_at": sa.func.now()}
    found = await client.fine_tuning.jobs.retrieve(job["provider_job_id"])
    if found.status not in _DONE:
        return {}
    error = getattr(found.error, "message", None) if found.error else None
    return {"status": found.status, "fine_tuned_model": found.fine_tuned_model, "finished_at": sa.func.now(),
            "error": error or (None if found.status == "succeeded" else found.status)}


async def step(ctx) -> int:
    """Start or check the oldest fine-tuning job not checked within the poll interval."""
    checked: dict[uuid.UUID, float] = ctx.extra.setdefault("ml_ops.fine_tune_checked", {})
    every = ctx.plugins.get("ml_ops").settings.fine_tune_poll_seconds
    now = time.monotonic()
    waiting = [m for m, at in checked.items() if now - at < every]
    async with ctx.db.transaction() as conn:
        job = await conn.fetch_one(_CLAIM, {"waiting": waiting})
        if job is None:
            return 0
        import openai  # a worker with no fine-tuning job never loads the SDK (a second or two)

        checked[job["id"]] = now
        try:
            values = await _advance(ctx, job, conn)
        except openai.APIStatusError as exc:
            if exc.status_code == 429 or exc.status_code >= 500:
                return 0  # the provider is busy: the next poll asks again
            values = {"status": "failed", "error": f"OpenAI refused: {exc.message}"[:2000],
                      "finished_at": sa.func.now()}
        except openai.APIConnectionError as exc:
            log.warning("fine-tuning job %s: OpenAI unreachable (%s)", job["id"], exc)
            return 0
        if not values:
            return 0
        await conn.run(sa.update(models).where(models.c.id == job["id"]).values(**values))
        if values["status"] in _DONE:
            checked.pop(job["id"], None)
            await publish(conn, ctx, "ai.model_trained", {"model_id": str(job["id"]), "name": job["name"],
                                                          "status": values["status"], "error": values.get("error")},
                          actor=job["requested_by"])
        return 1
