"""The comms worker on the real SDKs: twilio and sendgrid against a local stub that checks
the request each SDK made, SMTP against aiosmtpd; provider signatures on the webhooks."""
from __future__ import annotations

import base64
import email
import json
import time
from datetime import timedelta
from email import policy
from urllib.parse import parse_qs

from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from twilio.request_validator import RequestValidator

from myhibachi.core.db import utcnow
from myhibachi.plugins.comms.service import dispatch_due
from tests.conftest import free_port
from tests.plugins.comms.helpers import comms_app, deliver, key, messages, run_worker

SID, TOKEN = "AC" + "0" * 32, "twilio-test-token"
BASIC = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
MESSAGES = f"/2010-04-01/Accounts/{SID}/Messages.json"
PUBLIC = "https://api.hibachi.example"


def twilio_app(make_app, httpserver, **plugin_settings):
    return comms_app(make_app, plugin_settings=plugin_settings, public_url=PUBLIC, sms_adapter="twilio",
                     twilio_account_sid=SID, twilio_auth_token=TOKEN, twilio_from_number="+15550009999",
                     twilio_api_base=httpserver.url_for("/"))


def form(request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.get_data(as_text=True)).items()}


def created(sid: str, to: str) -> dict:
    return {"sid": sid, "status": "queued", "to": to, "from": "+15550009999", "account_sid": SID}


async def test_twilio_send_status_callback_and_signatures(make_app, client_of, seed, httpserver):
    sid = "SM" + "1" * 32
    httpserver.expect_oneshot_request(MESSAGES, method="POST").respond_with_json(
        created(sid, "+12025550101"), status=201)
    app = twilio_app(make_app, httpserver)
    staff = await seed.staff("comms.send", "comms.read")
    async with client_of(app, headers=staff) as c:
        queued = await c.post("/v1/communications/sms/send", json={"to": "+12025550101", "body": "Chef at 6pm"},
                              headers=key())
        assert queued.status_code == 202, queued.text
        assert await run_worker(app.state.ctx) == 1
        [(request, _)] = httpserver.log
        assert request.headers["Authorization"] == BASIC
        assert form(request) == {"To": "+12025550101", "From": "+15550009999", "Body": "Chef at 6pm",
                                 "StatusCallback": f"{PUBLIC}/v1/webhooks/twilio"}
        [row] = (await c.get("/v1/communications/sms/history")).json()["items"]
        assert (row["status"], row["provider_id"]) == ("sent", sid)

        # Twilio signs the public URL it calls; the SDK's own validator makes the signature
        url = f"{PUBLIC}/v1/webhooks/twilio"
        params = {"MessageSid": sid, "MessageStatus": "delivered", "AccountSid": SID}
        good = {"X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(url, params)}
        wrong_key = {"X-Twilio-Signature": RequestValidator("another-token").compute_signature(url, params)}
        assert (await c.post("/v1/webhooks/twilio", data=params, headers=wrong_key)).status_code == 400
        assert (await c.post("/v1/webhooks/twilio", data=params)).status_code == 400
        first = await c.post("/v1/webhooks/twilio", data=params, headers=good)
        assert first.status_code == 200 and first.headers["content-type"].startswith("application/xml"), first.text
        replay = await c.post("/v1/webhooks/twilio", data=params, headers=good)
        assert replay.status_code == 200
        await deliver(app.state.ctx)
        [row] = (await c.get("/v1/communications/sms/history")).json()["items"]
        assert row["status"] == "delivered"


async def test_twilio_transient_errors_are_retried_and_refusals_are_not(make_app, seed, httpserver):
    app = twilio_app(make_app, httpserver, retry_seconds=10)
    ctx = app.state.ctx
    httpserver.expect_ordered_request(MESSAGES, method="POST").respond_with_json(
        {"code": 20500, "message": "Internal Server Error", "status": 500}, status=500)
    httpserver.expect_ordered_request(MESSAGES, method="POST").respond_with_json(
        created("SM" + "2" * 32, "+12025550101"), status=201)
    httpserver.expect_ordered_request(MESSAGES, method="POST").respond_with_json(
        {"code": 21610, "message": "Attempt to send to unsubscribed recipient", "status": 400}, status=400)
    staff = await seed.staff("comms.send")
    from tests.conftest import client_for

    async with client_for(app, headers=staff) as c:
        assert (await c.post("/v1/communications/sms/send", json={"to": "+12025550101", "body": "one"},
                             headers=key("1"))).status_code == 202
    assert await dispatch_due(ctx) == 1
    [row] = await messages(ctx.db)
    assert (row["status"], row["attempts"]) == ("queued", 1) and "Internal Server Error" in row["last_error"]
    assert row["next_attempt_at"] > utcnow() + timedelta(seconds=5)
    assert await dispatch_due(ctx) == 0  # not before its delay
    assert await dispatch_due(ctx, now=utcnow() + timedelta(seconds=11)) == 1
    [row] = await messages(ctx.db)
    assert (row["status"], row["attempts"], row["provider_id"]) == ("sent", 2, "SM" + "2" * 32)

    async with client_for(app, headers=staff) as c:
        assert (await c.post("/v1/communications/sms/send", json={"to": "+12025550102", "body": "two"},
                             headers=key("2"))).status_code == 202
    assert await dispatch_due(ctx) == 1
    refused = next(r for r in await messages(ctx.db) if r["status"] != "sent")
    assert (refused["status"], refused["attempts"]) == ("failed", 1) and "unsubscribed" in refused["last_error"]
    assert len(httpserver.log) == 3
    httpserver.check_assertions()


def sendgrid_key():
    private = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    return private, public


def sign(private, payload: bytes, stamp: str) -> str:
    return base64.b64encode(private.sign(stamp.encode() + payload, ec.ECDSA(hashes.SHA256()))).decode()


async def test_sendgrid_send_and_signed_events(make_app, client_of, seed, httpserver):
    private, public = sendgrid_key()
    httpserver.expect_oneshot_request("/v3/mail/send", method="POST").respond_with_data(
        "", status=202, headers={"X-Message-Id": "sg-msg-1"})
    app = comms_app(make_app, email_adapter="sendgrid", sendgrid_api_key="SG.test-key",
                    sendgrid_api_base=httpserver.url_for("").rstrip("/"), email_from="chef@myhibachi.example",
                    sendgrid_webhook_public_key=public)
    customer = await seed.customer(email="ana@example.com")
    staff = await seed.staff("comms.send", "comms.read")
    async with client_of(app, headers=staff) as c:
        queued = await c.post("/v1/communications/email/send", headers=key(), json={
            "customer_id": str(customer), "subject": "Booking confirmed", "text": "See you Saturday"})
        assert queued.status_code == 202, queued.text
        assert await run_worker(app.state.ctx) == 1
        [(request, _)] = httpserver.log
        assert request.headers["Authorization"] == "Bearer SG.test-key"
        sent = json.loads(request.get_data())
        assert sent["personalizations"] == [{"to": [{"email": "ana@example.com"}]}]
        assert (sent["from"], sent["subject"]) == ({"email": "chef@myhibachi.example"}, "Booking confirmed")
        assert sent["content"] == [{"type": "text/plain", "value": "See you Saturday"}]
        [row] = (await c.get("/v1/communications/email/history")).json()["items"]
        assert (row["status"], row["provider_id"]) == ("sent", "sg-msg-1")

        payload = b'[{"email":"ana@example.com","event":"delivered","sg_message_id":"sg-msg-1.filterdrecv-1",' \
                  b'"sg_event_id":"ev1","timestamp":1700000000}]\r\n'
        stamp = str(int(time.time()))

        def headers(signature, at=stamp):
            return {"X-Twilio-Email-Event-Webhook-Signature": signature,
                    "X-Twilio-Email-Event-Webhook-Timestamp": at, "Content-Type": "application/json"}

        other, _ = sendgrid_key()
        path = "/v1/webhooks/sendgrid"
        assert (await c.post(path, content=payload, headers=headers(sign(other, payload, stamp)))).status_code == 400
        assert (await c.post(path, content=payload, headers=headers("bm90"))).status_code == 400
        old = str(int(time.time()) - 3600)
        stale = await c.post(path, content=payload, headers=headers(sign(private, payload, old), old))
        assert stale.status_code == 400 and "tolerance" in stale.json()["detail"]
        first = await c.post(path, content=payload, headers=headers(sign(private, payload, stamp)))
        assert first.status_code == 200 and first.json() == {"received": 1, "duplicates": 0}, first.text
        replay = await c.post(path, content=payload, headers=headers(sign(private, payload, stamp)))
        assert replay.status_code == 200 and replay.json() == {"received": 1, "duplicates": 1}
        await deliver(app.state.ctx)
        [row] = (await c.get("/v1/communications/email/history")).json()["items"]
        assert row["status"] == "delivered"

        # an unsubscribe event opts the address out of email
        unsubscribe = b'[{"email":"ana@example.com","event":"unsubscribe","sg_event_id":"ev2"}]'
        assert (await c.post(path, content=unsubscribe,
                             headers=headers(sign(private, unsubscribe, stamp)))).status_code == 200
        await deliver(app.state.ctx)
        refused = await c.post("/v1/communications/email/send", headers=key("2"), json={
            "to": "Ana@example.com", "subject": "Hi", "text": "again"})
        assert refused.status_code == 409


class Inbox:
    def __init__(self) -> None:
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


async def test_smtp_through_the_worker(make_app, client_of, seed):
    inbox = Inbox()
    port = free_port()
    app = comms_app(make_app, email_adapter="smtp", smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False,
                    email_from="chef@myhibachi.example", plugin_settings={"retry_seconds": 1})
    ctx = app.state.ctx
    staff = await seed.staff("comms.send")
    async with client_of(app, headers=staff) as c:
        queued = await c.post("/v1/communications/email/send", headers=key(), json={
            "to": "ben@example.com", "subject": "Your quote", "text": "Here it is", "html": "<p>Here it is</p>"})
        assert queued.status_code == 202, queued.text
    # the server is down: a transient failure, queued again
    assert await dispatch_due(ctx) == 1
    [row] = await messages(ctx.db)
    assert row["status"] == "queued" and "Connection refused" in row["last_error"]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        assert await dispatch_due(ctx, now=utcnow() + timedelta(seconds=2)) == 1
    finally:
        controller.stop()
    [envelope] = inbox.envelopes
    assert (envelope.mail_from, envelope.rcpt_tos) == ("chef@myhibachi.example", ["ben@example.com"])
    message = email.message_from_bytes(envelope.content, policy=policy.default)
    assert message["Subject"] == "Your quote"
    assert message.get_body(("plain",)).get_content().strip() == "Here it is"
    [row] = await messages(ctx.db)
    assert (row["status"], row["attempts"], row["provider_id"]) == ("sent", 2, message["Message-ID"])
