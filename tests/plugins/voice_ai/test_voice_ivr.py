"""The phone line over HTTP: the provider's signed webhooks create the call and answer it
with the IVR menu (TwiML); keypad and speech input walk the menu's state machine, unknown
input and silence replay it, and the third failure hands the caller to a person."""
from __future__ import annotations

from xml.etree import ElementTree as ET

from myhibachi.plugins.voice_ai.models import voice_calls, voice_ivr_steps, voice_utterances
from tests.plugins.voice_ai.helpers import INCOMING, IVR, call_form, events, post_signed, rows, voice_app

AGENT = "+15550100999"


def gather_of(twiml: str) -> ET.Element:
    gather = ET.fromstring(twiml.removeprefix('<?xml version="1.0" encoding="UTF-8"?>')).find("Gather")
    assert gather is not None, twiml
    return gather


async def test_voice_call_handling(make_app, client_of, seed):
    """An incoming call (Twilio's signed voice webhook) is stored with its numbers sealed, its
    event published, and answered with the IVR menu listening for keys and speech; the
    provider's retry of the same call stores nothing new; a forged or incomplete webhook is
    refused without a row.
    Broken on purpose: without the insert-or-nothing on (provider, CallSid), the retry fails
    on the unique constraint instead of replaying the menu (red); without the signature check,
    the forged post is answered 200 (red)."""
    app = voice_app(make_app)
    ctx = app.state.ctx
    async with client_of(app) as c:
        answered = await post_signed(c, ctx, INCOMING, call_form("CA100"))
        assert answered.status_code == 200, answered.text
        assert answered.headers["content-type"].startswith("application/xml")
        gather = gather_of(answered.text)
        assert (gather.get("input"), gather.get("numDigits"), gather.get("action")) == \
            ("dtmf speech", "1", f"http://test{IVR}")
        assert gather.get("actionOnEmptyResult") == "true" and gather.get("timeout") == "5"
        assert "press 1 or say book" in gather.findtext("Say")

        [call] = await rows(ctx.db, voice_calls)
        assert (call["provider"], call["provider_call_id"], call["status"], call["ivr_state"], call["direction"]) == \
            ("twilio", "CA100", "in_ivr", "main", "inbound")
        assert "2025550123" not in (call["from_enc"] or "") and call["from_enc"]  # sealed like customer PII
        assert await events(ctx.db, "voice.call.received") == [{"call_id": str(call["id"]),
                                                                 "provider_call_id": "CA100"}]

        retry = await post_signed(c, ctx, INCOMING, call_form("CA100"))
        assert retry.status_code == 200 and gather_of(retry.text).findtext("Say") == gather.findtext("Say")
        assert len(await rows(ctx.db, voice_calls)) == 1
        assert len(await events(ctx.db, "voice.call.received")) == 1

        forged = await c.post(INCOMING, data=call_form("CA666"), headers={"X-Twilio-Signature": "bm9wZQ=="})
        assert forged.status_code == 400 and forged.json()["type"].endswith("invalid-signature"), forged.text
        no_sid = await post_signed(c, ctx, INCOMING, {"From": "+12025550123", "To": "+15550100000"})
        assert no_sid.status_code == 422, no_sid.text
        assert no_sid.json()["errors"][0]["field"] == "body.CallSid"
        assert [r["provider_call_id"] for r in await rows(ctx.db, voice_calls)] == ["CA100"]

    staff = await seed.staff("voice.read")
    async with client_of(app, headers=staff) as c:
        got = (await c.get(f"/v1/ai/voice/calls/{call['id']}")).json()
        assert (got["from_number"], got["to_number"], got["status"]) == ("+12025550123", "+15550100000", "in_ivr")
    async with client_of(app) as c:
        assert (await c.get(f"/v1/ai/voice/calls/{call['id']}")).status_code == 401


async def test_voice_ivr_navigation(make_app, client_of):
    """Keypad and speech walk the declared menu: 1 goes to booking, the spoken request is kept
    as an utterance and ends the menu routed; "a person" by voice goes to the agent at once;
    words the menu does not know go to their nearest intent when it is clear ("a chef for a
    birthday dinner" is booking), and count as a failure when it is not ("banana");
    an unknown key and silence replay the menu with an apology, and the third failure
    transfers the caller to a person. Every step is recorded.
    Broken on purpose: with the retries check removed (failures never escalate) the third
    failure replays the menu again instead of dialling the agent (red); with the intent's
    thresholds ignored (the nearest intent always taken) "banana" is taken for a request for a
    person instead of a third failure (red)."""
    app = voice_app(make_app, plugin_settings={"agent_number": AGENT})
    ctx = app.state.ctx
    async with client_of(app) as c:
        for sid in ("CA1", "CA2", "CA3", "CA4"):
            assert (await post_signed(c, ctx, INCOMING, call_form(sid))).status_code == 200

        # CA1: keypad 1 -> book; the caller's request (speech) -> routed, intent book
        book = await post_signed(c, ctx, IVR, call_form("CA1", Digits="1"))
        assert book.status_code == 200, book.text
        assert "the number of guests" in gather_of(book.text).findtext("Say")
        done = await post_signed(c, ctx, IVR, call_form(
            "CA1", SpeechResult="A party for twelve guests next Saturday at seven"))
        assert "<Gather" not in done.text and "text you a quote" in done.text
        # CA2: the caller says they want a person -> the agent's number is dialled
        person = await post_signed(c, ctx, IVR, call_form("CA2", SpeechResult="Can I talk to a person please"))
        assert f"<Dial>{AGENT}</Dial>" in person.text, person.text
        # CA4: no word of the menu, but the words mean booking (nearest intent, embeddings port)
        meant = await post_signed(c, ctx, IVR, call_form("CA4", SpeechResult="We would love a chef for my "
                                                                             "daughter's birthday dinner"))
        assert "the number of guests" in gather_of(meant.text).findtext("Say"), meant.text
        # CA3: an unknown key, then silence, replay the menu; a third failure goes to a person
        for form in ({"Digits": "7"}, {}):
            again = await post_signed(c, ctx, IVR, call_form("CA3", **form))
            say = gather_of(again.text).findtext("Say")
            assert say.startswith("Sorry, I did not get that.") and "press 1" in say
        third = await post_signed(c, ctx, IVR, call_form("CA3", SpeechResult="banana"))
        assert f"<Dial>{AGENT}</Dial>" in third.text, third.text
        late = await post_signed(c, ctx, IVR, call_form("CA3", Digits="1"))  # the menu is over
        assert f"<Dial>{AGENT}</Dial>" in late.text

        unknown = await post_signed(c, ctx, IVR, call_form("CA404", Digits="1"))
        assert unknown.status_code == 404, unknown.text

    calls = {r["provider_call_id"]: r for r in await rows(ctx.db, voice_calls)}
    assert {s: (r["status"], r["intent"], r["ivr_state"]) for s, r in calls.items()} == {
        "CA1": ("routed", "book", "book_taken"), "CA2": ("transferred", "agent", "agent"),
        "CA3": ("transferred", "agent", "agent"), "CA4": ("in_ivr", "book", "book")}
    assert (calls["CA3"]["transferred_to"], calls["CA3"]["transferred_by"]) == (AGENT, "ivr")
    steps = await rows(ctx.db, voice_ivr_steps, voice_ivr_steps.c.call_id == calls["CA3"]["id"])
    assert [(s["input"], s["value"], s["outcome"], s["next_state"]) for s in steps] == [
        ("digits", "7", "replayed", "main"), ("timeout", None, "replayed", "main"),
        ("speech", None, "escalated", "agent")]
    [step] = await rows(ctx.db, voice_ivr_steps, voice_ivr_steps.c.call_id == calls["CA4"]["id"])
    assert (step["input"], step["value"], step["outcome"], step["next_state"]) == \
        ("speech", "intent:book", "moved", "book")
    [said] = await rows(ctx.db, voice_utterances, voice_utterances.c.call_id == calls["CA1"]["id"])
    assert said["source"] == "ivr" and "twelve" not in said["text_enc"]  # sealed
    routed = {e["call_id"]: e for e in await events(ctx.db, "voice.ivr.routed")}
    assert {calls[s]["id"].hex: (routed[str(calls[s]["id"])]["intent"], routed[str(calls[s]["id"])]["escalated"])
            for s in ("CA1", "CA2", "CA3")} == {calls["CA1"]["id"].hex: ("book", False), calls["CA2"]["id"].hex: ("agent", False),
                                calls["CA3"]["id"].hex: ("agent", True)}
    transferred = await events(ctx.db, "voice.call.transferred")
    assert sorted(e["call_id"] for e in transferred) == sorted(str(calls[s]["id"]) for s in ("CA2", "CA3"))
