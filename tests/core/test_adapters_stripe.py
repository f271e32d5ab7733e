"""The Stripe payments adapter against localstripe, and what it sends checked on a stub."""
from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
import stripe

from myhibachi.core.ports import InvalidSignature, PortError


def stripe_settings(base: str) -> dict:
    return {"payments_adapter": "stripe", "stripe_api_key": "sk_test_ports", "stripe_api_base": base,
            "stripe_webhook_secret": "whsec_test_ports"}


async def card(base: str, number: str = "4242424242424242") -> str:
    client = stripe.StripeClient("sk_test_ports", base_addresses={"api": base}, http_client=stripe.HTTPXClient())
    pm = await client.v1.payment_methods.create_async(
        params={"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"}})
    return pm.id


async def test_stripe_payment_intent_confirm_cancel_and_refund(make_app, localstripe_url):
    pay = make_app(**stripe_settings(localstripe_url)).state.ctx.ports.payments
    method = await card(localstripe_url)

    intent = await pay.create_intent(4500, "USD", idempotency_key="idem-stripe-1", payment_method=method,
                                     metadata={"booking": "b-1"})
    assert (intent.status, intent.amount_cents, intent.currency) == ("requires_confirmation", 4500, "usd")
    assert intent.id.startswith("pi_") and intent.client_secret and intent.metadata == {"booking": "b-1"}
    confirmed = await pay.confirm_intent(intent.id)
    assert confirmed.status == "succeeded"

    refund = await pay.refund(intent.id, 1200, idempotency_key="idem-refund-1")
    assert (refund.amount_cents, refund.currency, refund.status, refund.payment_intent_id) == \
        (1200, "usd", "succeeded", intent.id)
    fetched = await pay.retrieve_intent(intent.id)
    assert (fetched.status, fetched.amount_refunded_cents) == ("succeeded", 1200)

    open_intent = await pay.create_intent(800, "usd", idempotency_key="idem-stripe-2")
    assert open_intent.status == "requires_payment_method"
    assert (await pay.cancel_intent(open_intent.id)).status == "canceled"
    with pytest.raises(PortError) as refused:
        await pay.confirm_intent(open_intent.id)
    assert refused.value.status == 400
    with pytest.raises(PortError) as missing:
        await pay.retrieve_intent("pi_doesnotexist")
    assert missing.value.status == 404


async def test_stripe_request_carries_key_and_idempotency_key(make_app, httpserver):
    httpserver.expect_request("/v1/payment_intents", method="POST").respond_with_json({
        "id": "pi_stub", "object": "payment_intent", "amount": 2500, "currency": "usd",
        "status": "requires_payment_method", "client_secret": "pi_stub_secret", "metadata": {"booking": "b-9"},
        "payment_method": None, "last_payment_error": None, "latest_charge": None,
    })
    pay = make_app(**stripe_settings(httpserver.url_for("").rstrip("/"))).state.ctx.ports.payments
    intent = await pay.create_intent(2500, "usd", idempotency_key="idem-abc", metadata={"booking": "b-9"})
    request = httpserver.log[-1][0]
    assert request.headers["Authorization"] == "Bearer sk_test_ports"
    assert request.headers["Idempotency-Key"] == "idem-abc"
    assert dict(request.form) == {"amount": "2500", "currency": "usd", "metadata[booking]": "b-9"}
    assert (intent.id, intent.status) == ("pi_stub", "requires_payment_method")


async def test_stripe_webhook_signature(make_app):
    pay = make_app(**stripe_settings("http://127.0.0.1:9")).state.ctx.ports.payments
    payload = json.dumps({"id": "evt_1", "object": "event", "type": "charge.refunded",
                          "data": {"object": {"id": "ch_1", "object": "charge"}}}).encode()
    ts = int(time.time())
    mac = hmac.new(b"whsec_test_ports", f"{ts}.".encode() + payload, hashlib.sha256).hexdigest()
    [event] = await pay.verify_webhook({"Stripe-Signature": f"t={ts},v1={mac}"}, payload, "")
    assert (event.id, event.type, event.data["object"]["id"]) == ("evt_1", "charge.refunded", "ch_1")
    with pytest.raises(InvalidSignature):
        await pay.verify_webhook({"Stripe-Signature": f"t={ts},v1={mac}"}, payload.replace(b"ch_1", b"ch_2"), "")
    with pytest.raises(InvalidSignature):
        await pay.verify_webhook({"Stripe-Signature": "t=1,v1=" + mac}, payload, "")
