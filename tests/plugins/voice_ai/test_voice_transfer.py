"""Staff hand a live call to a person through the telephony port; who asked, to whom and
when is recorded, once per Idempotency-Key."""
from __future__ import annotations

import uuid

from myhibachi.plugins.voice_ai.models import voice_calls
from tests.plugins.voice_ai.helpers import INCOMING, call_form, deliver, events, outbox, post_signed, rows, voice_app


async def test_voice_call_transfer(make_app, client_of, seed):
    """The transfer moves the provider's call to the agent's number (a call update with Dial
    TwiML, recorded by the offline adapter), stores who asked and when, publishes it, and a
    retry with the same key changes nothing more; bad numbers, unknown calls and callers
    without voice.write are refused without a change; once the provider says the call ended,
    a transfer is a 409.
    Broken on purpose: without @idempotent on the route, the retry transfers again (a new
    transferred_at, a second update of the provider's call) (red)."""
    app = voice_app(make_app)
    ctx = app.state.ctx
    async with client_of(app) as c:
        assert (await post_signed(c, ctx, INCOMING, call_form("CA77"))).status_code == 200
    [call] = await rows(ctx.db, voice_calls)
    path = f"/v1/ai/voice/calls/{call['id']}/transfer"
    staff = await seed.staff("voice.read", "voice.write")
    reader = await seed.staff("voice.read")
    key = {"Idempotency-Key": "transfer-1"}
    async with client_of(app, headers=staff) as c:
        bad = await c.post(path, json={"to": "call sam"}, headers=key)
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "body.to", bad.text
        missing = await c.post(f"/v1/ai/voice/calls/{uuid.uuid4()}/transfer", json={"to": "+15550100777"})
        assert missing.status_code == 404, missing.text
        assert await outbox(ctx.db, "telephony") == []

        done = await c.post(path, json={"to": "+15550100777", "agent": "Sam"}, headers=key)
        assert done.status_code == 200, done.text
        body = done.json()
        assert (body["status"], body["transferred_to"], body["transferred_agent"]) == \
            ("transferred", "+15550100777", "Sam")
        assert body["transferred_by"].startswith("api_key:") and body["transferred_at"]
        again = await c.post(path, json={"to": "+15550100777", "agent": "Sam"}, headers=key)
        assert again.status_code == 200 and again.json() == body
    async with client_of(app, headers=reader) as c:
        assert (await c.post(path, json={"to": "+15550100888"})).status_code == 403

    [update] = await outbox(ctx.db, "telephony")
    assert update["operation"] == "call.update" and update["payload"]["sid"] == "CA77"
    assert "<Dial>+15550100777</Dial>" in update["payload"]["twiml"]
    [stored] = await rows(ctx.db, voice_calls)
    assert (stored["status"], stored["transferred_to"], stored["transferred_by"]) == \
        ("transferred", "+15550100777", body["transferred_by"])
    assert await events(ctx.db, "voice.call.transferred") == [
        {"call_id": str(call["id"]), "to": "+15550100777", "by": body["transferred_by"]}]

    # the provider's status callback (through the core's hub) ends the call: no more transfers
    async with client_of(app) as c:
        ended = await post_signed(c, ctx, "/v1/webhooks/telephony", call_form("CA77", CallStatus="completed",
                                                                              CallDuration="184"))
        assert ended.status_code == 200, ended.text
    await deliver(ctx)
    async with client_of(app, headers=staff) as c:
        late = await c.post(path, json={"to": "+15550100888"})
        assert late.status_code == 409, late.text
        assert ((await c.get(f"/v1/ai/voice/calls/{call['id']}")).json()["duration_seconds"]) == 184
    [stored] = await rows(ctx.db, voice_calls)
    assert (stored["status"], stored["transferred_to"]) == ("ended", "+15550100777")
    assert len(await outbox(ctx.db, "telephony")) == 1
