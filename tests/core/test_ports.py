"""Ports and their offline adapters: what they record, the PaymentIntent state machine,
webhook signatures, adapter choice by settings, the register_adapters hook, lazy SDKs."""
from __future__ import annotations

import asyncio
import json
from urllib.parse import urlencode
import os
import sys
import textwrap
import time

import pytest
import sqlalchemy as sa

from myhibachi.core import Plugin, hookimpl, vault
from myhibachi.core.plugins import PluginError
from myhibachi.core.ports import PORTS, InvalidSignature, PortError, UnknownAdapter, outbox
from myhibachi.core.ports.base import SentMessage

SDKS = ["stripe", "twilio", "sendgrid", "plaid", "openai", "sentence_transformers", "torch", "faster_whisper"]


async def test_offline_adapters_implement_their_ports(make_app):
    ports = make_app().state.ctx.ports
    for name, protocol in PORTS.items():
        assert ports.adapter_name(name) == "offline"
        assert isinstance(ports.get(name), protocol), name


async def test_offline_sms_is_recorded_and_read_by_the_cli(make_app, settings, db_url):
    ctx = make_app().state.ctx
    sent = await ctx.ports.sms.send("+15551230000", "Your chef arrives at 6pm", status_callback="https://x/cb")
    await ctx.ports.email.send("ana@example.com", "Booking confirmed", "See you Saturday")
    assert sent.status == "recorded" and sent.id.startswith("SM")

    rows = await outbox.read(ctx.db, "sms", vault=vault(ctx))
    assert [(r["operation"], r["payload"]["to"], r["payload"]["body"], r["payload"]["status_callback"])
            for r in rows] == [("message.send", "+15551230000", "Your chef arrives at 6pm", "https://x/cb")]
    # stored sealed: the recipient, subject and text are not in the table (broken on purpose by
    # recording the payload as given: red)
    async with ctx.db.read() as conn:
        stored = " ".join(await conn.scalars(sa.text("SELECT payload::text FROM offline_outbox")))
    for plain in ("5551230000", "chef arrives", "ana@example", "Booking confirmed", "Saturday"):
        assert plain not in stored, plain
    assert {r["payload"]["sid"] for r in await outbox.read(ctx.db, "sms")} == {sent.id}  # ids stay readable

    env = {**os.environ, "DATABASE_URL": db_url, "MYHIBACHI_HOME": str(settings.home),
           "MYHIBACHI_SECRET_KEY": settings.secret_key}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "myhibachi.core.cli", "outbox", "--port", "sms", "--json", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    printed = json.loads(out)
    assert [(r["port"], r["payload"]["sid"], r["payload"]["body"]) for r in printed] == \
        [("sms", sent.id, "Your chef arrives at 6pm")]

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "myhibachi.core.cli", "outbox", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert lines[0].split() == ["time", "port", "operation", "payload"]
    assert "message.send" in lines[2] and "mail.send" in lines[3] and "ana@example.com" in lines[3]


async def test_offline_email_bank_llm_telephony_speech_record_what_they_would_send(make_app):
    ctx = make_app().state.ctx
    ports = ctx.ports
    await ports.email.send("ana@example.com", "Hi", "text body", html="<p>html</p>")
    link = await ports.bank.create_link_token("cust-1")
    item = await ports.bank.exchange_public_token("public-sandbox-1")
    accounts = await ports.bank.get_accounts(item.access_token)
    reply = await ports.llm.chat([{"role": "system", "content": "be brief"}, {"role": "user", "content": "menu?"}])
    transfer = await ports.telephony.transfer("CA123", "+15559870000")
    with pytest.raises(PortError) as refused:
        await ports.speech.transcribe(b"RIFF....", filename="call.wav")
    with pytest.raises(PortError):
        await ports.bank.get_accounts("access-someone-else")

    assert link.link_token.startswith("link-offline-")
    assert item == await ports.bank.exchange_public_token("public-sandbox-1")
    assert accounts[0].balance_cents == 100_000 and accounts[0].subtype == "checking"
    assert reply.model == "offline" and "menu?" in reply.content
    assert transfer.status == "in-progress"
    assert refused.value.code == "not_configured"

    ops = [(r["port"], r["operation"]) for r in await outbox.read(ctx.db)]
    assert ops == [("email", "mail.send"), ("bank", "link_token.create"), ("bank", "item.public_token.exchange"),
                   ("bank", "accounts.get"), ("llm", "chat.completions.create"), ("telephony", "call.update"),
                   ("speech", "audio.transcriptions.create"), ("bank", "item.public_token.exchange")]
    records = {r["operation"]: r["payload"] for r in await outbox.read(ctx.db, vault=vault(ctx))}
    assert records["mail.send"]["html"] == "<p>html</p>" and records["mail.send"]["from"] == ctx.settings.email_from
    assert "<Dial>+15559870000</Dial>" in records["call.update"]["twiml"]
    assert records["chat.completions.create"]["messages"][1] == {"role": "user", "content": "menu?"}
    assert records["audio.transcriptions.create"]["bytes"] == 8


async def test_offline_payments_follow_the_payment_intent_state_machine(make_app):
    ctx = make_app().state.ctx
    pay = ctx.ports.payments

    bare = await pay.create_intent(5000, "USD", idempotency_key="k-bare")
    assert (bare.status, bare.currency) == ("requires_payment_method", "usd")
    with pytest.raises(PortError) as not_ready:
        await pay.confirm_intent(bare.id)
    assert not_ready.value.code == "payment_intent_unexpected_state"
    assert (await pay.cancel_intent(bare.id)).status == "canceled"
    with pytest.raises(PortError):
        await pay.cancel_intent(bare.id)

    intent = await pay.create_intent(5000, "usd", idempotency_key="k-1", payment_method="pm_card_visa",
                                     metadata={"booking": "b1"})
    assert intent.status == "requires_confirmation"
    again = await pay.create_intent(5000, "usd", idempotency_key="k-1", payment_method="pm_card_visa")
    assert again.id == intent.id
    with pytest.raises(PortError) as reused:
        await pay.create_intent(7000, "usd", idempotency_key="k-1", payment_method="pm_card_visa")
    assert reused.value.code == "idempotency_error"

    with pytest.raises(PortError) as early:
        await pay.refund(intent.id, 100, idempotency_key="r-early")
    assert early.value.code == "charge_not_refundable"
    assert (await pay.confirm_intent(intent.id)).status == "succeeded"
    with pytest.raises(PortError):
        await pay.cancel_intent(intent.id)

    first = await pay.refund(intent.id, 1500, idempotency_key="r-1")
    repeat = await pay.refund(intent.id, 1500, idempotency_key="r-1")
    assert repeat.id == first.id and first.amount_cents == 1500
    with pytest.raises(PortError) as too_much:
        await pay.refund(intent.id, 3501, idempotency_key="r-2")
    assert too_much.value.code == "amount_too_large"
    rest = await pay.refund(intent.id, idempotency_key="r-3")
    assert rest.amount_cents == 3500
    with pytest.raises(PortError) as done:
        await pay.refund(intent.id, 1, idempotency_key="r-4")
    assert done.value.code == "charge_already_refunded"
    final = await pay.retrieve_intent(intent.id)
    assert (final.status, final.amount_refunded_cents, final.metadata) == ("succeeded", 5000, {"booking": "b1"})

    declined = await pay.create_intent(900, "usd", idempotency_key="k-2", payment_method="pm_card_chargeDeclined")
    declined = await pay.confirm_intent(declined.id)
    assert (declined.status, declined.last_error, declined.payment_method) == \
        ("requires_payment_method", "card_declined", None)
    slow = await pay.create_intent(900, "usd", idempotency_key="k-3", payment_method="pm_card_processing")
    assert (await pay.confirm_intent(slow.id)).status == "processing"

    for bad in (0, -5, 12.5):
        with pytest.raises(PortError):
            await pay.create_intent(bad, "usd", idempotency_key=f"bad-{bad}")
    with pytest.raises(PortError) as missing:
        await pay.retrieve_intent("pi_nothing")
    assert missing.value.status == 404

    ops = [r["operation"] for r in await outbox.read(ctx.db, "payments", limit=100)]
    assert ops.count("refund.create") == 2 and ops.count("payment_intent.create") == 4


async def test_offline_webhook_signatures_use_the_providers_schemes(make_app):
    import stripe
    from twilio.request_validator import RequestValidator

    ports = make_app().state.ctx.ports
    payload = json.dumps({"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": {"id": "pi_1"}}})
    header = ports.payments.sign_webhook(payload.encode())
    # Stripe's own verifier accepts the offline signature: a test Stripe CLI or fixture works unchanged.
    stripe.WebhookSignature.verify_header(payload, header, ports.payments.webhook_secret)
    def stripe(body: bytes, signature: str):
        return ports.payments.verify_webhook({"Stripe-Signature": signature}, body, "")

    [event] = await stripe(payload.encode(), header)
    assert (event.id, event.type, event.data["object"]["id"]) == ("evt_1", "payment_intent.succeeded", "pi_1")
    with pytest.raises(InvalidSignature):
        await stripe(payload.replace("pi_1", "pi_2").encode(), header)
    with pytest.raises(InvalidSignature):
        await stripe(payload.encode(), ports.payments.sign_webhook(payload.encode(), int(time.time()) - 3600))
    with pytest.raises(InvalidSignature):
        await stripe(payload.encode(), "")

    url, params = "https://hibachi.example/v1/webhooks/twilio", {"MessageSid": "SM1", "MessageStatus": "delivered"}
    form = urlencode(params).encode()
    signature = ports.sms.sign_webhook(url, params)
    assert RequestValidator(ports.sms.webhook_secret).validate(url, params, signature)
    [status] = await ports.sms.verify_webhook({"X-Twilio-Signature": signature}, form, url)
    assert (status.id, status.type, status.topic) == ("SM1:delivered", "delivered", "status")
    with pytest.raises(InvalidSignature):
        await ports.sms.verify_webhook({"X-Twilio-Signature": signature}, form.replace(b"delivered", b"failed"), url)
    call = {"CallSid": "CA1", "CallStatus": "completed"}
    [ended] = await ports.telephony.verify_webhook({"X-Twilio-Signature": ports.telephony.sign_webhook(url, call)},
                                                   urlencode(call).encode(), url)
    assert (ended.id, ended.type) == ("CA1:completed", "completed")

    body, stamp = b'[{"event": "delivered", "sg_event_id": "ev1"}]', str(int(time.time()))
    signed = {"X-Twilio-Email-Event-Webhook-Signature": ports.email.sign_webhook(body, stamp),
              "X-Twilio-Email-Event-Webhook-Timestamp": stamp}
    assert [e.id for e in await ports.email.verify_webhook(signed, body, "")] == ["ev1"]
    with pytest.raises(InvalidSignature):
        await ports.email.verify_webhook({**signed, "X-Twilio-Email-Event-Webhook-Timestamp": "1700000000"}, body, "")

    hook = b'{"webhook_type": "ITEM", "webhook_code": "ERROR", "item_id": "i1"}'
    [plaid] = await ports.bank.verify_webhook({"Plaid-Verification": ports.bank.sign_webhook(hook)}, hook, "")
    assert plaid.type == "ITEM.ERROR"
    with pytest.raises(InvalidSignature):
        await ports.bank.verify_webhook({"Plaid-Verification": ports.bank.sign_webhook(hook)}, hook + b" ", "")
    with pytest.raises(InvalidSignature):
        stale = ports.bank.sign_webhook(hook, int(time.time()) - 3600)
        await ports.bank.verify_webhook({"Plaid-Verification": stale}, hook, "")


async def test_offline_twiml(make_app):
    phone = make_app().state.ctx.ports.telephony
    assert phone.say("Hello", gather_action="/v1/voice/next") == (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Gather input="speech" action="/v1/voice/next" '
        'method="POST"><Say>Hello</Say></Gather></Response>')
    assert phone.dial("+15550001111").endswith("<Response><Dial>+15550001111</Dial></Response>")


async def test_offline_embeddings_are_semantic(make_app):
    """The default is all-MiniLM-L6-v2 (int8 ONNX): a paraphrase that shares no content word
    is nearer than an unrelated text that shares some."""
    emb = make_app().state.ctx.ports.embeddings
    assert (emb.dimensions, emb.model) == (384, "all-MiniLM-L6-v2-onnx-int8")
    q, para, other, cancel, call_off, price = await emb.embed([
        "Can the chef cook without peanuts? My son is allergic.", "Do you handle nut allergies?",
        "What time does the chef arrive?", "How do I cancel my booking?", "I need to call off my event next week",
        "What is your price for each guest?"])
    dot = lambda x, y: sum(p * q for p, q in zip(x, y))  # noqa: E731
    assert len(q) == 384 and abs(dot(q, q) - 1) < 1e-5
    assert dot(q, para) > dot(q, other) + 0.1
    assert dot(cancel, call_off) > dot(cancel, price) + 0.1
    assert await emb.embed([]) == []


async def test_offline_embeddings_refuse_a_model_file_that_is_not_the_pinned_one(monkeypatch):
    from myhibachi.core.ports import local_ai

    monkeypatch.setattr(local_ai, "MINILM_INT8_SHA256", "0" * 64)
    with pytest.raises(PortError, match="not the pinned"):
        await local_ai.OnnxMiniLMEmbeddings().embed(["hi"])


async def test_hashing_embeddings_are_deterministic_and_normalised(make_app):
    emb = make_app(embeddings_adapter="hashing").state.ctx.ports.embeddings
    assert (emb.dimensions, emb.model) == (384, "offline-hashing-384")
    a, b, c, a2 = await emb.embed(["Hibachi dinner for ten guests", "hibachi dinner for 12 guests",
                                   "refund my deposit please", "Hibachi dinner for ten guests"])
    dot = lambda x, y: sum(p * q for p, q in zip(x, y))  # noqa: E731
    assert len(a) == 384 and a == a2
    assert abs(dot(a, a) - 1) < 1e-9
    assert dot(a, b) > 0.5 > dot(a, c)
    assert await emb.embed([""]) == [[0.0] * 384]


class SmsProviderPlugin(Plugin):
    name = "acme_sms"
    version = "1.0.0"

    @hookimpl
    def register_adapters(self):
        return {"sms": {"acme": AcmeSms}}


class AcmeSms:
    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self.sent: list[tuple[str, str]] = []

    async def send(self, to, body, *, status_callback=None):
        self.sent.append((to, body))
        return SentMessage(id=f"acme-{len(self.sent)}", status="queued", to=to)

    async def verify_webhook(self, headers, body, url):
        return []


class ClashingPlugin(Plugin):
    name = "clash"
    version = "1.0.0"

    @hookimpl
    def register_adapters(self):
        return {"sms": {"twilio": AcmeSms}}


async def test_hook_register_adapters(make_app):
    ports = make_app([SmsProviderPlugin()], sms_adapter="acme").state.ctx.ports
    sms = ports.sms
    assert isinstance(sms, AcmeSms) and ports.sms is sms
    assert (await sms.send("+15550001111", "hi")).id == "acme-1"
    assert ports.adapter_name("email") == "offline"

    with pytest.raises(PluginError, match="sms adapter 'twilio' is built in"):
        make_app([ClashingPlugin()])
    with pytest.raises(UnknownAdapter, match="acme, offline, twilio"):
        make_app([SmsProviderPlugin()], sms_adapter="acmee")


async def test_an_unconfigured_real_adapter_fails_with_a_named_setting(make_app):
    ports = make_app(payments_adapter="stripe").state.ctx.ports
    with pytest.raises(PortError, match="MYHIBACHI_STRIPE_API_KEY"):
        ports.payments


async def _modules_after(script: str, env: dict) -> dict:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", textwrap.dedent(script), env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    return json.loads(out.decode().strip().splitlines()[-1])


async def test_offline_app_imports_no_provider_sdk(clean_db, db_url, tmp_path):
    script = """
        import asyncio, json, sys
        from myhibachi.core.app import create_app
        from myhibachi.core.ports import PORTS

        app = create_app([])
        ports = app.state.ctx.ports
        for name in PORTS:
            ports.get(name)

        async def use():
            await ports.sms.send("+15550001111", "hi")
            await ports.payments.create_intent(100, "usd", idempotency_key="lazy-1")
            await ports.embeddings.embed(["x"])
            await app.state.ctx.db.close()

        asyncio.run(use())
        print(json.dumps({m: m in sys.modules for m in %r}))
    """ % SDKS
    env = {"DATABASE_URL": db_url, "MYHIBACHI_HOME": str(tmp_path)}
    assert await _modules_after(script, env) == {m: False for m in SDKS}
    assert [r["operation"] for r in await outbox.read(clean_db)] == ["message.send", "payment_intent.create"]

    # The same check sees an SDK once its adapter is the configured one.
    chosen = await _modules_after(
        "import json, sys\nfrom myhibachi.core.app import create_app\n"
        "create_app([]).state.ctx.ports.payments\n"
        f"print(json.dumps({{m: m in sys.modules for m in {SDKS!r}}}))",
        {**env, "MYHIBACHI_PAYMENTS_ADAPTER": "stripe", "MYHIBACHI_STRIPE_API_KEY": "sk_test_x"})
    assert chosen == {m: m == "stripe" for m in SDKS}
