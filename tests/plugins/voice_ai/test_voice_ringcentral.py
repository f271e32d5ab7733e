"""The phone line on RingCentral: its webhook subscription's validation handshake, and its
telephony/sessions notifications (Verification-Token header, no TwiML) creating the same
call rows the Twilio form does, through the telephony port's ringcentral adapter."""
from __future__ import annotations

import json

from myhibachi.plugins.voice_ai.models import voice_calls
from tests.plugins.voice_ai.helpers import INCOMING, events, rows, voice_app

TOKEN = "rc-verification-token-1"


def notification(session: str = "s-a0d7b1", code: str = "Setup") -> dict:
    """What RingCentral posts for a telephony/sessions event filter."""
    return {"uuid": f"n-{session}-{code}", "event": "/restapi/v1.0/account/~/extension/~/telephony/sessions",
            "timestamp": "2026-12-04T19:40:00.000Z", "subscriptionId": "sub-1",
            "body": {"sequence": 1, "sessionId": "4061240", "telephonySessionId": session,
                     "eventTime": "2026-12-04T19:40:00.000Z", "origin": {"type": "Call"},
                     "parties": [{"id": "p-1", "direction": "Inbound", "status": {"code": code},
                                  "from": {"phoneNumber": "+12025550123"}, "to": {"phoneNumber": "+15550100000"},
                                  "missedCall": False, "standAlone": False, "muted": False}]}}


async def post_rc(c, body, token: str = TOKEN):
    return await c.post(INCOMING, content=body if isinstance(body, bytes) else json.dumps(body).encode(),
                        headers={"Content-Type": "application/json", "Verification-Token": token})


async def test_voice_ringcentral_webhooks(make_app, client_of):
    """The subscription's validation request is answered 200 with its Validation-Token echoed
    and stores nothing; a verified Setup notification creates one call (provider ringcentral,
    CallSid = telephonySessionId, numbers sealed) answered with the menu's next step as JSON;
    its replay and the session's later notifications add nothing, its Disconnected ends it; a wrong Verification-Token
    is refused 400 and a body without a session id is a 422 naming the field, without a row.
    Broken on purpose: with the Verification-Token comparison removed, the forged
    notification is answered 200 and stores a call (red); without ending the call on a
    status the incoming route receives, the Disconnected call stays in the menu (red)."""
    app = voice_app(make_app, telephony_adapter="ringcentral", ringcentral_verification_token=TOKEN)
    ctx = app.state.ctx
    async with client_of(app) as c:
        handshake = await c.post(INCOMING, headers={"Validation-Token": "v-123"})
        assert handshake.status_code == 200 and handshake.headers["Validation-Token"] == "v-123", handshake.text
        assert await rows(ctx.db, voice_calls) == []

        answered = await post_rc(c, notification())
        assert answered.status_code == 200, answered.text
        assert answered.headers["content-type"].startswith("application/json")
        step = answered.json()
        assert "press 1 or say book" in step["say"] and step["listen"]["input"] == "dtmf speech"
        [call] = await rows(ctx.db, voice_calls)
        assert (call["provider"], call["provider_call_id"], call["direction"], call["ivr_state"]) == \
            ("ringcentral", "s-a0d7b1", "inbound", "main")
        assert call["from_enc"] and "2025550123" not in call["from_enc"]

        for again in (notification(), notification(code="Answered")):
            assert (await post_rc(c, again)).json() == step
        assert [r["id"] for r in await rows(ctx.db, voice_calls)] == [call["id"]]
        assert len(await events(ctx.db, "voice.call.received")) == 1
        assert (await post_rc(c, notification(code="Disconnected"))).status_code == 200
        [ended] = await rows(ctx.db, voice_calls)
        assert (ended["id"], ended["status"]) == (call["id"], "ended")

        forged = await post_rc(c, notification("s-forged"), token="not-the-token")
        assert forged.status_code == 400 and forged.json()["type"].endswith("invalid-signature"), forged.text
        missing = notification("s-bad")
        del missing["body"]["telephonySessionId"]
        bad = await post_rc(c, missing)
        assert bad.status_code == 422, bad.text
        assert bad.json()["errors"][0]["field"] == "body.body.telephonySessionId"
        garbled = await post_rc(c, b"{not json")
        assert garbled.status_code == 422 and garbled.json()["errors"][0]["field"] == "body", garbled.text
        assert [r["provider_call_id"] for r in await rows(ctx.db, voice_calls)] == ["s-a0d7b1"]
