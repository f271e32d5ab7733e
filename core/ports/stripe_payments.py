"""Payments on Stripe (the official ``stripe`` SDK, async calls)."""
from __future__ import annotations

import stripe

from myhibachi.core.ports import inbound
from myhibachi.core.ports.base import BalanceTransaction, InvalidSignature, PaymentIntent, PortError, Refund


def _intent(obj) -> PaymentIntent:
    pi = obj.to_dict()
    error = pi.get("last_payment_error") or {}
    charge = pi.get("latest_charge")
    txn = charge.get("balance_transaction") if isinstance(charge, dict) else None
    return PaymentIntent(
        id=pi["id"], amount_cents=pi["amount"], currency=pi["currency"], status=pi["status"],
        payment_method=pi.get("payment_method"), client_secret=pi.get("client_secret"),
        # Only an expanded latest_charge (retrieve) carries the refunded amount.
        amount_refunded_cents=charge.get("amount_refunded", 0) if isinstance(charge, dict) else 0,
        last_error=error.get("code"), metadata=dict(pi.get("metadata") or {}),
        # Only an expanded balance transaction (CHARGE_FEE) carries the fee.
        fee_cents=int(txn.get("fee") or 0) if isinstance(txn, dict) else None,
    )


# what confirm and retrieve expand: the charge's refunded amount and its fee
CHARGE_FEE = ["latest_charge.balance_transaction"]


class StripePayments:
    def __init__(self, ctx) -> None:
        settings = ctx.settings
        if not settings.stripe_api_key:
            raise PortError("MYHIBACHI_STRIPE_API_KEY is not set", code="not_configured")
        base = {"api": settings.stripe_api_base} if settings.stripe_api_base else None
        self.client = stripe.StripeClient(settings.stripe_api_key, base_addresses=base, max_network_retries=2,
                                          http_client=stripe.HTTPXClient())
        self.webhook_secret = settings.stripe_webhook_secret
        self.tolerance = settings.webhook_tolerance_seconds

    async def _call(self, method, *args, params=None, options=None):
        try:
            return await method(*args, params=params or {}, options=options or {})
        except stripe.StripeError as exc:
            raise PortError(exc.user_message or str(exc), code=exc.code, status=exc.http_status) from exc

    async def create_intent(self, amount_cents, currency, *, idempotency_key, payment_method=None, metadata=None):
        params = {"amount": amount_cents, "currency": currency.lower(), "metadata": metadata or {}}
        if payment_method:
            params["payment_method"] = payment_method
        pi = await self._call(self.client.v1.payment_intents.create_async, params=params,
                              options={"idempotency_key": idempotency_key})
        return _intent(pi)

    async def confirm_intent(self, intent_id, *, payment_method=None, idempotency_key=None):
        if payment_method:
            # attached by an update, then confirmed: both Stripe and localstripe take this form
            await self._call(self.client.v1.payment_intents.update_async, intent_id,
                             params={"payment_method": payment_method})
        options = {"idempotency_key": idempotency_key} if idempotency_key else None
        return _intent(await self._call(self.client.v1.payment_intents.confirm_async, intent_id,
                                        params={"expand": CHARGE_FEE}, options=options))

    async def cancel_intent(self, intent_id):
        return _intent(await self._call(self.client.v1.payment_intents.cancel_async, intent_id))

    async def retrieve_intent(self, intent_id):
        pi = await self._call(self.client.v1.payment_intents.retrieve_async, intent_id,
                              params={"expand": CHARGE_FEE})
        return _intent(pi)

    async def refund(self, intent_id, amount_cents=None, *, idempotency_key):
        params = {"payment_intent": intent_id}
        if amount_cents is not None:
            params["amount"] = amount_cents
        refund = await self._call(self.client.v1.refunds.create_async, params=params,
                                  options={"idempotency_key": idempotency_key})
        return Refund(id=refund.id, payment_intent_id=intent_id, amount_cents=refund.amount,
                      currency=refund.currency, status=refund.status)

    async def submit_dispute_evidence(self, dispute_id, evidence, *, idempotency_key):
        dispute = await self._call(self.client.v1.disputes.update_async, dispute_id,
                                   params={"evidence": evidence, "submit": True},
                                   options={"idempotency_key": idempotency_key})
        return dispute.status

    async def balance_transactions(self, *, created_from, created_to, starting_after=None, limit=100):
        # newest first, so the walk stops at the first one older than the range (the list is not
        # filtered by ``created``, which localstripe refuses)
        params = {"limit": limit, "expand": ["data.source.payment_intent"]}
        if starting_after:
            params["starting_after"] = starting_after
        page = (await self._call(self.client.v1.balance_transactions.list_async, params=params)).to_dict()
        items = []
        for txn in page["data"]:
            if txn["created"] >= created_to or txn["created"] < created_from:
                continue
            source = txn.get("source")
            intent = source.get("payment_intent") if isinstance(source, dict) else None
            items.append(BalanceTransaction(
                id=txn["id"], type=txn["type"], amount_cents=txn["amount"], fee_cents=txn.get("fee") or 0,
                currency=txn["currency"], created=txn["created"],
                source_id=source.get("id") if isinstance(source, dict) else source,
                intent_id=intent.get("id") if isinstance(intent, dict) else intent,
                metadata=dict((intent.get("metadata") if isinstance(intent, dict) else None) or {})))
        more = page.get("has_more") and page["data"] and page["data"][-1]["created"] >= created_from
        return items, page["data"][-1]["id"] if more else None

    async def verify_webhook(self, headers, body, url):
        if not self.webhook_secret:
            raise InvalidSignature("MYHIBACHI_STRIPE_WEBHOOK_SECRET is not set")
        try:
            stripe.WebhookSignature.verify_header(body.decode(), headers.get("Stripe-Signature") or "",
                                                  self.webhook_secret, self.tolerance)
        except (stripe.SignatureVerificationError, UnicodeDecodeError) as exc:
            raise InvalidSignature(str(exc)) from exc
        return inbound.stripe_events(body)
