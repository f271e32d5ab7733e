"""Fine-tuning over HTTP: a job for a hosted model created through OpenAI's fine-tuning API
(the official SDK against a local stub answering in OpenAI's shapes) and followed to its end."""
from __future__ import annotations

import json

import sqlalchemy as sa

from myhibachi.plugins.ml_ops import MlOpsPlugin
from myhibachi.plugins.ml_ops.models import examples, models
from tests.plugins.ml_ops.helpers import FLAGS, SCOPES, key, published, rows


def job(status: str, fine_tuned_model: str | None = None, error: dict | None = None) -> dict:
    return {"id": "ftjob-1", "object": "fine_tuning.job", "model": "gpt-4o-mini-2024-07-18", "created_at": 1700000000,
            "status": status, "training_file": "file-abc", "validation_file": None,
            "fine_tuned_model": fine_tuned_model,
            "organization_id": "org-1", "result_files": [], "hyperparameters": {"n_epochs": "auto"}, "seed": 42,
            "error": error, "finished_at": None, "trained_tokens": None}


def chats(n: int) -> list[dict]:
    return [{"messages": [{"role": "system", "content": "You answer for My Hibachi."},
                          {"role": "user", "content": f"Can you serve {10 + i} guests?"},
                          {"role": "assistant", "content": f"Yes, {10 + i} guests is a party we love."}]}
            for i in range(n)]


async def test_model_fine_tuning(make_app, client_of, staff, drain, clean_db, httpserver):
    """Broken on purpose: with a running job never claimed again, its status is not asked and
    the model stays running with no fine-tuned model recorded (red); without the check of the
    base model, a fine-tuning of the offline engine is queued (red)."""
    retrieved = []

    def status(request):
        from werkzeug import Response

        retrieved.append(request.path)
        body = job("running") if len(retrieved) == 1 else job("succeeded", "ft:gpt-4o-mini:myhibachi:faq:abc")
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request("/v1/files", method="POST").respond_with_json({
        "id": "file-abc", "object": "file", "bytes": 1000, "created_at": 1700000000, "filename": "faq.jsonl",
        "purpose": "fine-tune", "status": "processed"})
    httpserver.expect_request("/v1/fine_tuning/jobs", method="POST").respond_with_json(job("validating_files"))
    httpserver.expect_request("/v1/fine_tuning/jobs/ftjob-1", method="GET").respond_with_handler(status)
    app = make_app([MlOpsPlugin(models="gpt-4o-mini=openai", fine_tune_poll_seconds=0)], flags=FLAGS,
                   openai_api_key="sk-test-openai", openai_api_base=httpserver.url_for("/v1"))
    ctx = app.state.ctx
    headers = await staff(SCOPES)
    async with client_of(app) as c:
        queued = await c.post("/v1/ai/models/fine-tune", json={"name": "faq", "base_model": "gpt-4o-mini",
                                                              "examples": chats(10)}, headers=headers | key())
        offline = await c.post("/v1/ai/models/fine-tune", json={"name": "faq", "base_model": "offline",
                                                               "examples": chats(10)}, headers=headers | key())
        few = await c.post("/v1/ai/models/fine-tune", json={"name": "faq", "base_model": "gpt-4o-mini",
                                                           "examples": chats(3)}, headers=headers | key())
        model_id = queued.json()["id"]
        poll = ctx.extra["pollers"]["ml_ops.fine_tuning"]
        assert await poll(ctx) == 1  # the file uploaded and the job created
        started = await c.get(f"/v1/ai/models/{model_id}/status", headers=headers)
        assert await poll(ctx) == 0  # still running at OpenAI
        await drain(app)
        finished = await c.get(f"/v1/ai/models/{model_id}/status", headers=headers)
        evaluate = await c.post(f"/v1/ai/models/{model_id}/evaluate", headers=headers)
    assert queued.status_code == 202, queued.text
    assert (queued.json()["status"], queued.json()["kind"], queued.json()["examples"]) == ("queued", "fine_tune", 10)
    assert (offline.status_code, offline.json()["errors"][0]["field"]) == (422, "body.base_model")
    assert (few.status_code, few.json()["errors"][0]["field"]) == (422, "body.examples")
    upload, create = [r for r, _ in httpserver.log if r.method == "POST"]
    assert upload.headers["Authorization"] == "Bearer sk-test-openai" and upload.form["purpose"] == "fine-tune"
    lines = [json.loads(line) for line in upload.files["file"].read().decode().splitlines()]
    assert lines == chats(10)
    assert json.loads(create.get_data()) == {"model": "gpt-4o-mini", "training_file": "file-abc", "suffix": "faq"}
    assert (started.json()["status"], started.json()["provider_job_id"]) == ("running", "ftjob-1")
    assert (finished.json()["status"], finished.json()["fine_tuned_model"]) == \
        ("succeeded", "ft:gpt-4o-mini:myhibachi:faq:abc")
    assert finished.json()["finished_at"] and len(retrieved) == 2
    assert evaluate.status_code == 409  # a fine-tuned LLM is not an intent classifier
    stored = await rows(clean_db, sa.select(models))
    assert [(m["provider_file_id"], m["status"]) for m in stored] == [("file-abc", "succeeded")]
    assert len(await rows(clean_db, sa.select(examples))) == 10
    assert [e["status"] for e in await published(clean_db, "ai.model_trained")] == ["succeeded"]


async def test_a_refused_fine_tuning_job_fails_with_the_providers_reason(make_app, client_of, staff, drain,
                                                                         clean_db, httpserver):
    httpserver.expect_request("/v1/files", method="POST").respond_with_json(
        {"error": {"message": "Invalid file format", "type": "invalid_request_error", "code": "invalid_file"}},
        status=400)
    app = make_app([MlOpsPlugin(models="gpt-4o-mini=openai")], flags=FLAGS,
                   openai_api_key="sk-test-openai", openai_api_base=httpserver.url_for("/v1"))
    headers = await staff(SCOPES)
    async with client_of(app) as c:
        queued = await c.post("/v1/ai/models/fine-tune", json={"name": "faq", "base_model": "gpt-4o-mini",
                                                              "examples": chats(10)}, headers=headers | key())
        await drain(app)
        failed = await c.get(f"/v1/ai/models/{queued.json()['id']}/status", headers=headers)
    assert failed.json()["status"] == "failed" and "Invalid file format" in failed.json()["error"]
