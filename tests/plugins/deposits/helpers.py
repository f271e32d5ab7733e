"""Shared pieces of the deposits tests: apps on localstripe or offline, what localstripe holds,
signed webhooks, events published."""
from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from datetime import timedelta

import sqlalchemy as sa
import stripe

from myhibachi.core import Plugin, hookimpl
from myhibachi.core.db import utcnow
from myhibachi.core.models import bookings, outbox_events
from myhibachi.plugins.deposits import DepositsPlugin

FLAG = "FEATURE_FLAG_DEPOSIT_API"
API_KEY = "sk_test_deposits"
WEBHOOK_SECRET = "whsec_test_deposits"
BASE = "/v1/payments/deposits"


def stripe_app(make_app, localstripe_url, *extra_plugins, adapter: str = "stripe"):
    return make_app([DepositsPlugin(), *extra_plugins], flags={FLAG: True}, payments_adapter=adapter,
                    stripe_api_key=API_KEY, stripe_api_base=localstripe_url, stripe_webhook_secret=WEBHOOK_SECRET)


def stripe_client(localstripe_url) -> stripe.StripeClient:
    return stripe.StripeClient(API_KEY, base_addresses={"api": localstripe_url}, http_client=stripe.HTTPXClient())


async def _all(method, **params) -> list:
    items, after = [], None
    while True:
        page = await method(params={**params, "limit": 100, **({"starting_after": after} if after else {})})
        items.extend(item.to_dict() for item in page.data)
        if not page.has_more or not page.data:
            return items
        after = items[-1]["id"]


async def charges_of(localstripe_url, intent_id: str) -> list:
    """The charges localstripe holds for a PaymentIntent."""
    client = stripe_client(localstripe_url)
    return [c for c in await _all(client.v1.charges.list_async) if c.get("payment_intent") == intent_id]


async def intents_for(localstripe_url, deposit_id: str) -> list:
    """The PaymentIntents localstripe holds whose metadata names a deposit."""
    client = stripe_client(localstripe_url)
    return [pi for pi in await _all(client.v1.payment_intents.list_async)
            if (pi.get("metadata") or {}).get("deposit_id") == deposit_id]


async def refunds_of(localstripe_url, intent_id: str) -> list:
    client = stripe_client(localstripe_url)
    page = await client.v1.refunds.list_async(params={"payment_intent": intent_id, "limit": 100})
    return [r.to_dict() for r in page.data]


def signed(event: dict, secret: str = WEBHOOK_SECRET, at: int | None = None) -> tuple[bytes, dict[str, str]]:
    """A webhook body and its ``Stripe-Signature``, made the way Stripe makes them (v1 HMAC-SHA256)."""
    body = json.dumps(event).encode()
    at = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return body, {"Stripe-Signature": f"t={at},v1={mac}", "Content-Type": "application/json"}


def event(type_: str, obj: dict, event_id: str | None = None) -> dict:
    return {"id": event_id or f"evt_{uuid.uuid4().hex[:20]}", "object": "event", "type": type_,
            "api_version": "2024-06-20", "created": int(time.time()), "data": {"object": obj}}


async def published(db, name: str) -> list[dict]:
    async with db.read() as conn:
        rows = await conn.scalars(sa.select(outbox_events.c.payload).where(outbox_events.c.name == name)
                                   .order_by(outbox_events.c.created_at))
    return list(rows)


async def booking_status(db, booking_id) -> str:
    async with db.read() as conn:
        return await conn.scalar(sa.select(bookings.c.status).where(bookings.c.id == booking_id))


async def pending_booking(seed, customer) -> uuid.UUID:
    return await seed.booking(customer, (utcnow() + timedelta(days=10)).replace(microsecond=0), status="pending")


def key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


class CrashingPayments:
    """Wraps a real payments adapter and raises right after the chosen provider calls
    succeeded, as a process dying before its commit would."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.crash_on: set[str] = set()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def _then_crash(self, name, *args, **kwargs):
        result = await getattr(self.inner, name)(*args, **kwargs)
        if name in self.crash_on:
            self.crash_on.discard(name)
            raise RuntimeError(f"crashed after {name}")
        return result

    async def create_intent(self, *args, **kwargs):
        return await self._then_crash("create_intent", *args, **kwargs)

    async def confirm_intent(self, *args, **kwargs):
        return await self._then_crash("confirm_intent", *args, **kwargs)


class CrashPlugin(Plugin):
    """Offers the crashing wrappers as payments adapters ``crashing_stripe`` and ``crashing_offline``."""

    name = "crash_payments"

    @hookimpl
    def register_adapters(self):
        def stripe_(ctx):
            from myhibachi.core.ports.stripe_payments import StripePayments

            return CrashingPayments(StripePayments(ctx))

        def offline(ctx):
            from myhibachi.core.ports.offline import OfflinePayments

            return CrashingPayments(OfflinePayments(ctx))

        return {"payments": {"crashing_stripe": stripe_, "crashing_offline": offline}}
