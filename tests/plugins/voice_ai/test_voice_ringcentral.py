"""The phone line on RingCentral: its webhook subscription's validation handshake, and its
telephony/sessions notifications (Verification-Token header, no TwiML) creating the same
call rows the Twilio form does, through the telephony port's ringcentral adapter."""
from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs

from myhibachi.plugins.voice_ai.models import voice_calls, voice_ivr_steps, voice_utterances
from tests.plugins.voice_ai.helpers import INCOMING, IVR, events, rows, voice_app

AGENT = "+15550100999"

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


async def test_voice_ringcentral_webhooks(make_app, client_of, seed):
    """The subscription's validation request is answered 200 with its Validation-Token echoed
    and stores nothing; a verified Setup notification creates one call (provider ringcentral,
    CallSid = telephonySessionId, numbers sealed) answered with the menu's next step as JSON;
    its replay and the session's later notifications add nothing, a staff transfer without Call Control
    credentials is a 503 changing nothing, its Disconnected ends it; a wrong Verification-Token
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
        unset = await c.post(f"/v1/ai/voice/calls/{call['id']}/transfer", json={"to": "+15550100777"},
                             headers=await seed.staff("voice.write"))  # no Call Control credentials
        assert unset.status_code == 503 and unset.json()["code"] == "not_configured", unset.text
        assert (await rows(ctx.db, voice_calls))[0]["transferred_to"] is None
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


RC = {"client": "rc-client-id", "secret": "rc-client-secret", "jwt": "eyJ.rc-jwt.credential"}
SESSION = "/restapi/v1.0/account/~/telephony/sessions/s-a0d7b1"


def ringcentral_server(httpserver, *, ours: str = "Answered") -> None:
    """RingCentral's token endpoint, the session's status (the caller's party and ours) and call control."""
    httpserver.expect_request("/restapi/oauth/token", method="POST").respond_with_json(
        {"access_token": "rc-access-1", "token_type": "bearer", "expires_in": 3600, "refresh_token": "rc-refresh-1",
         "refresh_token_expires_in": 604800, "scope": "CallControl", "owner_id": "62"})
    httpserver.expect_request(SESSION, method="GET").respond_with_json(
        {"id": "s-a0d7b1", "origin": {"type": "Call"}, "parties": [
            {"id": "p-caller", "direction": "Inbound", "status": {"code": "Answered"},
             "from": {"phoneNumber": "+12025550123"}},
            {"id": "p-ours", "direction": "Inbound", "status": {"code": ours},
             "owner": {"accountId": "37", "extensionId": "62"}, "to": {"phoneNumber": "+15550100000"}}]})
    httpserver.expect_request(f"{SESSION}/parties/p-ours/transfer", method="POST").respond_with_json(
        {"id": "p-ours", "status": {"code": "Proceeding"}})
    httpserver.expect_request(f"{SESSION}/parties/p-ours", method="DELETE").respond_with_data(status=204)


def rc_app(make_app, httpserver, speech=None, **plugin_settings):
    return voice_app(make_app, plugin_settings=plugin_settings, speech=speech, telephony_adapter="ringcentral",
                     ringcentral_verification_token=TOKEN, ringcentral_client_id=RC["client"],
                     ringcentral_client_secret=RC["secret"], ringcentral_jwt=RC["jwt"],
                     ringcentral_server_url=httpserver.url_for("/").rstrip("/"))


def received(httpserver) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r, _ in httpserver.log]


async def test_voice_ringcentral_call_control(make_app, client_of, seed, httpserver):
    """Staff transfer a RingCentral call through its Call Control API: the SDK logs in with the
    JWT credential (Basic client id:secret), finds our live party of the telephony session and
    transfers it to the number (Bearer token); the call stores who asked and publishes it once.
    The same request again, with its Idempotency-Key or without one, sends RingCentral nothing
    more; no live party of ours, or RingCentral's own refusal (its errorCode), is a 409, a status
    that is not a call session a 503, with nothing stored; the port's hang-up drops our party.
    Broken on purpose: without the already-transferred check, the repeated request without a
    key transfers the party a second time (red)."""
    ringcentral_server(httpserver)
    app = rc_app(make_app, httpserver)
    ctx = app.state.ctx
    async with client_of(app) as c:
        assert (await post_rc(c, notification(code="Answered"))).status_code == 200
    [call] = await rows(ctx.db, voice_calls)
    path = f"/v1/ai/voice/calls/{call['id']}/transfer"
    staff = await seed.staff("voice.read", "voice.write")
    async with client_of(app, headers=staff) as c:
        done = await c.post(path, json={"to": "+15550100777", "agent": "Sam"}, headers={"Idempotency-Key": "rc-t-1"})
        assert done.status_code == 200, done.text
        assert (done.json()["status"], done.json()["transferred_to"]) == ("transferred", "+15550100777")
        assert received(httpserver) == [("POST", "/restapi/oauth/token"), ("GET", SESSION),
                                        ("POST", f"{SESSION}/parties/p-ours/transfer")]
        token, _, transfer = [r for r, _ in httpserver.log]
        assert token.headers["Authorization"] == "Basic " + base64.b64encode(
            f"{RC['client']}:{RC['secret']}".encode()).decode()
        assert parse_qs(token.get_data(as_text=True)) == {
            "grant_type": ["urn:ietf:params:oauth:grant-type:jwt-bearer"], "assertion": [RC["jwt"]]}
        assert transfer.headers["Authorization"] == "bearer rc-access-1"
        assert transfer.get_json() == {"phoneNumber": "+15550100777"}

        again = await c.post(path, json={"to": "+15550100777", "agent": "Sam"}, headers={"Idempotency-Key": "rc-t-1"})
        assert again.status_code == 200 and again.json() == done.json()
        twice = await c.post(path, json={"to": "+15550100777", "agent": "Sam"})
        assert twice.status_code == 200 and twice.json()["transferred_at"] == done.json()["transferred_at"]
        assert len(httpserver.log) == 3
    [stored] = await rows(ctx.db, voice_calls)
    assert (stored["status"], stored["transferred_to"], stored["transferred_agent"]) == \
        ("transferred", "+15550100777", "Sam")
    assert len(await events(ctx.db, "voice.call.transferred")) == 1

    info = await ctx.ports.telephony.hangup("s-a0d7b1")
    assert (info.sid, info.status) == ("s-a0d7b1", "completed")
    assert received(httpserver)[-2:] == [("GET", SESSION), ("DELETE", f"{SESSION}/parties/p-ours")]
    assert httpserver.log[-1][0].headers["Authorization"] == "bearer rc-access-1"

    httpserver.clear()
    ringcentral_server(httpserver, ours="Disconnected")
    async with client_of(app, headers=staff) as c:
        refused = await c.post(path, json={"to": "+15550100888"})
        assert refused.status_code == 409 and refused.json()["code"] == "party_not_found", refused.text
    httpserver.clear()
    httpserver.expect_request(SESSION, method="GET").respond_with_json(
        {"errorCode": "CMN-102", "message": "Resource for parameter [telephonySessionId] is not found"}, status=404)
    async with client_of(app, headers=staff) as c:
        gone = await c.post(path, json={"to": "+15550100888"})
        assert gone.status_code == 409 and gone.json()["code"] == "CMN-102", gone.text
    httpserver.clear()
    httpserver.expect_request(SESSION, method="GET").respond_with_data("<html>maintenance</html>",
                                                                       content_type="text/html")
    async with client_of(app, headers=staff) as c:
        odd = await c.post(path, json={"to": "+15550100888"})
        assert odd.status_code == 503 and odd.json()["type"].endswith("provider-refused"), odd.text
    [stored] = await rows(ctx.db, voice_calls)
    assert stored["transferred_to"] == "+15550100777"
    assert received(httpserver) == [("GET", SESSION)]


async def post_input(c, uid: str, session: str = "s-a0d7b1", **said):
    """What the call's media leg posts to the step's listen.action: the key pressed or the words heard."""
    return await c.post(IVR, json={"uuid": uid, "telephonySessionId": session, "input": said},
                        headers={"Verification-Token": TOKEN})


async def test_voice_ringcentral_ivr_input(make_app, client_of, httpserver):
    """On RingCentral the caller's keypad and speech walk the same menu: a key moves it (its
    replay, same uuid, adds no step), spoken words move another call, a request for a person
    transfers our party to the agent's number through Call Control (and answers with words,
    not a dial), once even when that input is replayed; a bad key, an input without its uuid
    or a wrong Verification-Token are refused without a step.
    Broken on purpose: without the input id lookup, the replayed key is a second step of the
    booking state, refused by the unique index as a 500 (red); with the IVR's transfer left
    to the answer (as on Twilio), the answer is a dial and RingCentral is never asked (red)."""
    ringcentral_server(httpserver)
    app = rc_app(make_app, httpserver, agent_number=AGENT)
    ctx = app.state.ctx
    async with client_of(app) as c:
        menu = (await post_rc(c, notification(code="Answered"))).json()
        assert menu["listen"]["action"] == f"http://test{IVR}"
        await post_rc(c, notification("s-other", code="Answered"))

        pressed = await post_input(c, "in-1", digits="1")
        assert pressed.status_code == 200, pressed.text
        assert pressed.json()["say"].startswith("Great. Please say the date") and pressed.json()["listen"]
        assert (await post_input(c, "in-1", digits="1")).json() == pressed.json()

        spoken = await post_input(c, "in-9", session="s-other", speech="I need to change my booking")
        assert spoken.json()["say"].startswith("Please say the date of your booking"), spoken.text

        bad = await post_input(c, "in-2", digits="1; drop")
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "body.input.digits", bad.text
        unnamed = await c.post(IVR, json={"telephonySessionId": "s-a0d7b1", "input": {"digits": "1"}},
                               headers={"Verification-Token": TOKEN})
        assert unnamed.status_code == 422 and unnamed.json()["errors"][0]["field"] == "body.uuid", unnamed.text
        forged = await c.post(IVR, json={"uuid": "in-3", "telephonySessionId": "s-a0d7b1", "input": {}},
                              headers={"Verification-Token": "nope"})
        assert forged.status_code == 400, forged.text
        assert httpserver.log == []

        person = await post_input(c, "in-4", speech="can I talk to a person")
        assert person.status_code == 200 and person.json() == {"say": "Connecting you to a person."}, person.text
        assert (await post_input(c, "in-4", speech="can I talk to a person")).json() == person.json()
    assert received(httpserver) == [("POST", "/restapi/oauth/token"), ("GET", SESSION),
                                    ("POST", f"{SESSION}/parties/p-ours/transfer")]
    assert httpserver.log[-1][0].get_json() == {"phoneNumber": AGENT}

    calls = {r["provider_call_id"]: r for r in await rows(ctx.db, voice_calls)}
    assert (calls["s-a0d7b1"]["status"], calls["s-a0d7b1"]["transferred_to"], calls["s-a0d7b1"]["transferred_by"]) \
        == ("transferred", AGENT, "ivr")
    assert (calls["s-other"]["ivr_state"], calls["s-other"]["intent"]) == ("change", "change")
    steps = await rows(ctx.db, voice_ivr_steps, voice_ivr_steps.c.call_id == calls["s-a0d7b1"]["id"])
    assert [(s["input"], s["value"], s["next_state"], s["input_id"]) for s in steps] == \
        [("digits", "1", "book", "in-1"), ("speech", "person", "agent", "in-4")]
    assert [e["to"] for e in await events(ctx.db, "voice.call.transferred")] == [AGENT]


async def test_voice_ringcentral_recorded_speech(make_app, client_of, httpserver, whisper, clips):
    """A media leg that records the caller's answer instead of recognising it posts the audio:
    the speech port (Whisper) hears it before the step's transaction, the words move the menu
    like spoken words and are kept sealed as the call's utterance; the replay moves nothing; a recording that is not base64 is a 422 naming body.input.audio.
    Broken on purpose: with the recording left unheard, the answer counts as silence and
    replays the menu (red)."""
    app = rc_app(make_app, httpserver, speech=whisper)
    ctx = app.state.ctx
    recording = base64.b64encode(clips["change"]).decode()  # "Please change my booking to Sunday, March 14th"
    async with client_of(app) as c:
        await post_rc(c, notification(code="Answered"))
        heard = await post_input(c, "rec-1", audio=recording)
        assert heard.status_code == 200, heard.text
        assert heard.json()["say"].startswith("Please say the date of your booking"), heard.text
        assert (await post_input(c, "rec-1", audio=recording)).json() == heard.json()
        bad = await post_input(c, "rec-2", audio="not base64!")
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "body.input.audio", bad.text
    [call] = await rows(ctx.db, voice_calls)
    assert (call["ivr_state"], call["intent"]) == ("change", "change")
    [step] = await rows(ctx.db, voice_ivr_steps)
    assert (step["input"], step["value"], step["next_state"], step["input_id"]) == ("speech", "change", "change",
                                                                                     "rec-1")
    [said] = await rows(ctx.db, voice_utterances)
    assert said["source"] == "ivr" and "booking" not in said["text_enc"].lower()
    assert httpserver.log == []
