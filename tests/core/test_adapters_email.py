"""Email adapters: SendGrid's request checked on a local stub, SMTP against aiosmtpd."""
from __future__ import annotations

import base64
import email
import json
import time
from email import policy

import pytest
from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from myhibachi.core.ports import InvalidSignature, PortError
from tests.conftest import free_port


def sendgrid_settings(httpserver, **kw) -> dict:
    return {"email_adapter": "sendgrid", "sendgrid_api_key": "SG.test-key",
            "sendgrid_api_base": httpserver.url_for("").rstrip("/"), "email_from": "chef@myhibachi.example", **kw}


async def test_sendgrid_send(make_app, httpserver):
    httpserver.expect_request("/v3/mail/send", method="POST").respond_with_data(
        "", status=202, headers={"X-Message-Id": "sg-msg-1"})
    mail = make_app(**sendgrid_settings(httpserver)).state.ctx.ports.email
    sent = await mail.send("ana@example.com", "Booking confirmed", "See you Saturday", html="<p>See you</p>")
    request = httpserver.log[-1][0]
    assert request.headers["Authorization"] == "Bearer SG.test-key"
    body = json.loads(request.get_data())
    assert body["from"] == {"email": "chef@myhibachi.example"}
    assert body["personalizations"] == [{"to": [{"email": "ana@example.com"}]}]
    assert body["subject"] == "Booking confirmed"
    assert body["content"] == [{"type": "text/plain", "value": "See you Saturday"},
                               {"type": "text/html", "value": "<p>See you</p>"}]
    assert (sent.id, sent.status) == ("sg-msg-1", "accepted")


async def test_sendgrid_refusal_is_a_port_error(make_app, httpserver):
    httpserver.expect_request("/v3/mail/send", method="POST").respond_with_json(
        {"errors": [{"message": "The from address does not match a verified Sender Identity."}]}, status=403)
    mail = make_app(**sendgrid_settings(httpserver)).state.ctx.ports.email
    with pytest.raises(PortError) as refused:
        await mail.send("ana@example.com", "Hi", "text")
    assert refused.value.status == 403


async def test_sendgrid_signed_event_webhook(make_app, httpserver):
    key = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    mail = make_app(**sendgrid_settings(httpserver, sendgrid_webhook_public_key=public)).state.ctx.ports.email
    payload = b'[{"email":"ana@example.com","event":"delivered","sg_message_id":"sg-msg-1"}]\r\n'
    timestamp = str(int(time.time()))
    signature = base64.b64encode(key.sign(timestamp.encode() + payload, ec.ECDSA(hashes.SHA256()))).decode()

    def headers(signature, timestamp=timestamp):
        return {"X-Twilio-Email-Event-Webhook-Signature": signature, "X-Twilio-Email-Event-Webhook-Timestamp": timestamp}

    [event] = await mail.verify_webhook(headers(signature), payload, "")
    assert (event.type, event.data["sg_message_id"]) == ("delivered", "sg-msg-1")
    for bad_headers, body in ((headers(signature), payload.replace(b"delivered", b"bounce")),
                              (headers(signature, str(int(timestamp) + 1)), payload),
                              (headers("not base64!"), payload)):
        with pytest.raises(InvalidSignature):
            await mail.verify_webhook(bad_headers, body, "")


class Inbox:
    def __init__(self) -> None:
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


async def test_smtp_send(make_app):
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        mail = make_app(email_adapter="smtp", smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False,
                        email_from="chef@myhibachi.example").state.ctx.ports.email
        sent = await mail.send("ana@example.com", "Booking confirmed", "See you Saturday", html="<p>See you</p>")
    finally:
        controller.stop()
    [envelope] = inbox.envelopes
    assert (envelope.mail_from, envelope.rcpt_tos) == ("chef@myhibachi.example", ["ana@example.com"])
    message = email.message_from_bytes(envelope.content, policy=policy.default)
    assert (message["From"], message["To"], message["Subject"]) == \
        ("chef@myhibachi.example", "ana@example.com", "Booking confirmed")
    assert message["Message-ID"] == sent.id and sent.id.endswith("@myhibachi.example>")
    assert message.get_body(("plain",)).get_content().strip() == "See you Saturday"
    assert message.get_body(("html",)).get_content().strip() == "<p>See you</p>"
    with pytest.raises(InvalidSignature):
        await mail.verify_webhook({}, b"[]", "")


async def test_smtp_unreachable_is_a_port_error(make_app):
    mail = make_app(email_adapter="smtp", smtp_host="127.0.0.1", smtp_port=free_port(),
                    smtp_starttls=False).state.ctx.ports.email
    with pytest.raises(PortError) as failed:
        await mail.send("ana@example.com", "Hi", "text")
    assert failed.value.code == "ConnectionRefusedError"
