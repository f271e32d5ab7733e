"""Intent classifiers trained on embeddings, as background jobs, and their evaluation.

``POST /v1/ai/models/train`` stores the labelled examples and a queued model; the worker's
poller (``step``) claims it (``FOR UPDATE SKIP LOCKED``, so two workers never train one
model), marks it running in its own transaction (the status a caller sees), splits the
examples (stratified, seeded, ``test_size`` held out), embeds the texts through the
embeddings port and fits a scikit-learn logistic regression on the training part; the
fitted classes, coefficients and intercepts are stored as JSON, so any process predicts
without a pickle. A model left running by a worker that died is claimed again after
``STALE``. Evaluation predicts the held-out part and stores accuracy, macro-F1 and the
confusion matrix.
"""
from __future__ import annotations

import json
import logging
import math
import uuid
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

# numpy and scikit-learn load in the functions that train or use a model, not at start-up
from myhibachi.core import conflict, not_found, publish, vault
from myhibachi.plugins.ml_ops.models import aad, evaluations, examples, models

log = logging.getLogger("myhibachi.ml_ops")
STALE = timedelta(minutes=15)

_COUNTS = sa.select(
    sa.func.count().label("examples"),
    sa.func.count().filter(examples.c.split == "train").label("train_examples"),
    sa.func.count().filter(examples.c.split == "test").label("test_examples"),
).where(examples.c.model_id == sa.bindparam("id"))
_LATEST = (sa.select(evaluations).where(evaluations.c.model_id == sa.bindparam("id"))
           .order_by(evaluations.c.created_at.desc()).limit(1))
_CLAIM = (sa.select(models).where(models.c.kind == "intent_classifier", sa.or_(
    models.c.status == "queued",
    sa.and_(models.c.status == "running", models.c.started_at < sa.func.now() - STALE)))
    .order_by(models.c.created_at).limit(1).with_for_update(skip_locked=True))
_SPLIT = (sa.update(examples).where(examples.c.model_id == sa.bindparam("id"), examples.c.seq == sa.bindparam("s"))
          .values(split=sa.bindparam("p")))
_EXAMPLES = (sa.select(examples.c.seq, examples.c.text_enc, examples.c.key_id, examples.c.label, examples.c.split)
             .where(examples.c.model_id == sa.bindparam("id")).order_by(examples.c.seq))


def sealed_examples(ctx, model_id: uuid.UUID, given: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of a model's examples (``seq``, ``text``, and ``messages`` for a chat), sealed."""
    v = vault(ctx)
    return [{"model_id": model_id, "seq": e["seq"], "label": e.get("label"), "split": e.get("split"),
             "key_id": v.current_id, "text_enc": v.encrypt(e["text"], aad(examples, "text", model_id, e["seq"])),
             "messages_enc": v.encrypt(json.dumps(e["messages"], ensure_ascii=False), aad(
                 examples, "messages", model_id, e["seq"])) if e.get("messages") is not None else None}
            for e in given]


async def examples_of(conn, ctx, model_id: uuid.UUID) -> list[dict[str, Any]]:
    """A model's examples (``seq``, ``text``, ``label``, ``split``) in order, opened."""
    v = vault(ctx)
    return [{"seq": r["seq"], "label": r["label"], "split": r["split"],
             "text": v.decrypt(r["text_enc"], r["key_id"], aad(examples, "text", model_id, r["seq"]))}
            for r in await conn.fetch_all(_EXAMPLES, {"id": model_id})]


async def start(conn, ctx, body, actor: str) -> dict[str, Any]:
    model_id = uuid.uuid4()
    await conn.run(sa.insert(models).values(
        id=model_id, name=body.name, kind="intent_classifier", base_model=ctx.ports.adapter_name("embeddings"),
        test_size=body.test_size, seed=body.seed, requested_by=actor,
        labels=sorted({e.label for e in body.examples})))
    await conn.run(sa.insert(examples), sealed_examples(ctx, model_id, [
        {"seq": i, "text": e.text, "label": e.label} for i, e in enumerate(body.examples)]))
    return await status(conn, model_id)


async def status(conn, model_id: uuid.UUID) -> dict[str, Any]:
    row = await conn.fetch_one(sa.select(models).where(models.c.id == model_id))
    if row is None:
        raise not_found("Model")
    latest = await conn.fetch_one(_LATEST, {"id": model_id})
    return {**row, **await conn.fetch_one(_COUNTS, {"id": model_id}), "latest_evaluation": latest}


def _split(labels: list[str], test_size: float, seed: int) -> list[str]:
    """``train`` or ``test`` per example: stratified when every label has two examples."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    counts = {label: labels.count(label) for label in labels}
    held = math.ceil(len(labels) * test_size)
    stratify = labels if min(counts.values()) >= 2 and len(counts) <= min(held, len(labels) - held) else None
    _, test = train_test_split(index, test_size=test_size, random_state=seed, stratify=stratify)
    chosen = set(test.tolist())
    return ["test" if i in chosen else "train" for i in index]


def classifier(params: dict[str, Any]):
    """The stored logistic regression, ready to predict."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression()
    model.classes_ = np.array(params["classes"])
    model.coef_ = np.array(params["coef"])
    model.intercept_ = np.array(params["intercept"])
    return model


async def _fit(ctx, rows: list[dict[str, Any]], test_size: float, seed: int) -> tuple[list[str], dict[str, Any]]:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    labels = [r["label"] for r in rows]
    splits = _split(labels, test_size, seed)
    train = [r for r, s in zip(rows, splits) if s == "train"]
    if len({r["label"] for r in train}) < 2:
        raise ValueError("the training split holds fewer than two labels")
    vectors = np.array(await ctx.ports.embeddings.embed([r["text"] for r in train]))
    fitted = LogisticRegression(max_iter=2000, C=10.0).fit(vectors, [r["label"] for r in train])
    return splits, {"classes": fitted.classes_.tolist(), "coef": fitted.coef_.tolist(),
                    "intercept": fitted.intercept_.tolist(), "dimensions": int(vectors.shape[1])}


async def step(ctx) -> int:
    """Train the oldest queued intent classifier; returns 1 when one was handled."""
    async with ctx.db.transaction() as conn:
        job = await conn.fetch_one(_CLAIM)
        if job is None:
            return 0
        await conn.run(sa.update(models).where(models.c.id == job["id"]).values(
            status="running", started_at=sa.func.now(), error=None))
        rows = await examples_of(conn, ctx, job["id"])
    try:
        splits, params = await _fit(ctx, rows, job["test_size"], job["seed"])
        error = None
    except Exception as exc:  # bad data or a failing embeddings engine fails the job, visibly
        log.exception("training model %s failed", job["id"])
        splits, params, error = None, None, f"{type(exc).__name__}: {exc}"[:2000]
    async with ctx.db.transaction() as conn:
        if splits:
            await conn.run(_SPLIT, [{"id": job["id"], "s": r["seq"], "p": p} for r, p in zip(rows, splits)])
        await conn.run(sa.update(models).where(models.c.id == job["id"]).values(
            status="failed" if error else "trained", params=params, error=error, finished_at=sa.func.now()))
        await publish(conn, ctx, "ai.model_trained", {"model_id": str(job["id"]), "name": job["name"],
                                                      "status": "failed" if error else "trained", "error": error},
                      actor=job["requested_by"])
    return 1


async def _trained(conn, model_id: uuid.UUID, *, lock: bool = False) -> dict[str, Any]:
    query = sa.select(models).where(models.c.id == model_id)
    model = await conn.fetch_one(query.with_for_update() if lock else query)
    if model is None:
        raise not_found("Model")
    if model["kind"] != "intent_classifier" or model["status"] != "trained":
        raise conflict(f"model {model['name']} is {model['status']}: only a trained intent classifier is "
                       "evaluated or asked")
    return model


async def predict(conn, ctx, model_id: uuid.UUID, texts: list[str]) -> list[dict[str, Any]]:
    """Each text's intent and the classifier's probability of every label."""
    import numpy as np
    model = await _trained(conn, model_id)
    fitted = classifier(model["params"])
    probabilities = fitted.predict_proba(np.array(await ctx.ports.embeddings.embed(texts)))
    classes = fitted.classes_.tolist()
    return [{"text": text, "label": classes[int(p.argmax())], "confidence": round(float(p.max()), 4),
             "scores": {c: round(float(v), 4) for c, v in zip(classes, p)}} for text, p in zip(texts, probabilities)]


async def evaluate(conn, ctx, model_id: uuid.UUID, actor: str) -> dict[str, Any]:
    import numpy as np
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    model = await _trained(conn, model_id, lock=True)
    held = [r for r in await examples_of(conn, ctx, model_id) if r["split"] == "test"]
    vectors = np.array(await ctx.ports.embeddings.embed([r["text"] for r in held]))
    truth = [r["label"] for r in held]
    predicted = classifier(model["params"]).predict(vectors).tolist()
    labels = list(model["labels"])
    row = await conn.fetch_one(sa.insert(evaluations).values(
        model_id=model_id, examples=len(held), accuracy=float(accuracy_score(truth, predicted)),
        macro_f1=float(f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)),
        labels=labels, confusion=confusion_matrix(truth, predicted, labels=labels).tolist(),
        requested_by=actor).returning(evaluations))
    await publish(conn, ctx, "ai.model_evaluated", {
        "model_id": str(model_id), "evaluation_id": str(row["id"]), "accuracy": row["accuracy"],
        "macro_f1": row["macro_f1"]}, actor=actor)
    return row
