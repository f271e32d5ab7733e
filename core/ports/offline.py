"""The offline adapters: the embedded default, with no account anywhere.

Each records what it would have sent in ``offline_outbox`` and answers like its provider.
Webhooks are checked with the providers' own signing schemes (an HMAC where the provider
signs with its own key pair: SendGrid's ECDSA, Plaid's ES256) and a secret of this
installation, and each offline adapter can sign (``sign_webhook``), so the whole flow,
webhooks through the core's hub included, runs locally.
Nothing here imports a provider SDK.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import time
import uuid
from typing import Any
from xml.etree import ElementTree as ET

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from myhibachi.core.models import offline_payments
from myhibachi.core.ports import inbound, outbox
from myhibachi.core.ports.base import (
    BalanceTransaction,
    BankAccount,
    BankItem,
    CallInfo,
    ChatResult,
    InvalidSignature,
    LinkToken,
    PaymentIntent,
    PortError,
    Refund,
    SentMessage,
    WebhookEvent,
)

def _secret(ctx, configured: str | None, purpose: str) -> str:
    if configured:
        return configured
    return hmac.new(ctx.settings.signing_key.encode(), f"offline-webhook:{purpose}".encode(), "sha256").hexdigest()


class _Recorder:
    port = ""

    def __init__(self, ctx) -> None:
        self.ctx = ctx

    async def _record(self, operation: str, payload: dict[str, Any]) -> None:
        from myhibachi.core.crypto import vault

        # One INSERT on an autocommit connection of the reads pool: a request inside its
        # transaction holds a connection of the writes pool already, and waiting there for a
        # second one deadlocks once the pool is full of such requests.
        async with self.ctx.db.read() as conn:
            await outbox.record(conn, self.port, operation, payload, vault(self.ctx))


# --- payments ------------------------------------------------------------------------------

CANCELABLE = {"requires_payment_method", "requires_confirmation", "requires_action", "requires_capture"}


def stripe_signature(secret: str, payload: bytes, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header value for ``payload`` (Stripe's v1 scheme)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, "sha256").hexdigest()
    return f"t={timestamp},v1={mac}"


def card_fee(amount_cents: int) -> int:
    """Stripe's standard US card fee: 2.9% (rounded half up) plus 30 cents."""
    return (amount_cents * 29 + 500) // 1000 + 30


def _intent(row) -> PaymentIntent:
    return PaymentIntent(
        id=f"pi_{row['id'].hex}", amount_cents=row["amount_cents"], currency=row["currency"], status=row["status"],
        payment_method=row["payment_method"], client_secret=f"pi_{row['id'].hex}_secret_offline",
        amount_refunded_cents=row["amount_refunded_cents"], last_error=row["last_error"], metadata=dict(row["metadata"]),
        fee_cents=card_fee(row["amount_cents"]) if row["status"] == "succeeded" else None,
    )


def _intent_uuid(intent_id: str) -> uuid.UUID:
    try:
        if not intent_id.startswith("pi_"):
            raise ValueError(intent_id)
        return uuid.UUID(hex=intent_id[3:])
    except ValueError:
        raise PortError(f"No such payment_intent: {intent_id!r}", code="resource_missing", status=404) from None


class OfflinePayments(_Recorder):
    """Stripe's PaymentIntent state machine, kept in ``offline_payments``.

    Payment methods behave like Stripe's test ones by name: one containing ``Declined``
    fails (``pm_card_chargeDeclined``), ``pm_card_processing`` stays processing, any other
    succeeds.
    """

    port = "payments"

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.webhook_secret = _secret(ctx, ctx.settings.stripe_webhook_secret, "stripe")

    async def create_intent(self, amount_cents, currency, *, idempotency_key, payment_method=None, metadata=None):
        if not isinstance(amount_cents, int) or amount_cents < 1:
            raise PortError("amount must be a positive integer of cents", code="parameter_invalid_integer", status=400)
        if not idempotency_key:
            raise PortError("an idempotency key is required", code="parameter_missing", status=400)
        currency = currency.lower()
        values = dict(amount_cents=amount_cents, currency=currency, payment_method=payment_method,
                      metadata=metadata or {},
                      status="requires_confirmation" if payment_method else "requires_payment_method")
        async with self.ctx.db.transaction() as conn:
            stmt = (pg_insert(offline_payments).values(id=uuid.uuid4(), idempotency_key=idempotency_key, **values)
                    .on_conflict_do_nothing(index_elements=["idempotency_key"]).returning(*offline_payments.c))
            row = await conn.fetch_one(stmt)
            if row is None:
                row = await conn.fetch_one(offline_payments.select().where(
                    offline_payments.c.idempotency_key == idempotency_key))
                if (row["amount_cents"], row["currency"], row["payment_method"]) != (amount_cents, currency, payment_method):
                    raise PortError("idempotency key reused with different parameters", code="idempotency_error",
                                    status=400)
                return _intent(row)
            await outbox.record(conn, self.port, "payment_intent.create",
                                {"id": f"pi_{row['id'].hex}", "idempotency_key": idempotency_key, **values})
        return _intent(row)

    async def _transition(self, intent_id: str, operation: str, change) -> PaymentIntent:
        async with self.ctx.db.transaction() as conn:
            table = offline_payments
            row = await conn.fetch_one(table.select().where(table.c.id == _intent_uuid(intent_id))
                                      .with_for_update())
            if row is None:
                raise PortError(f"No such payment_intent: {intent_id!r}", code="resource_missing", status=404)
            values = change(row)
            if not values:
                return _intent(row)
            row = await conn.fetch_one(table.update().where(table.c.id == row["id"])
                                      .values(**values, updated_at=sa.func.now()).returning(*table.c))
            await outbox.record(conn, self.port, operation, {"id": intent_id, **values})
        return _intent(row)

    async def confirm_intent(self, intent_id, *, payment_method=None, idempotency_key=None):
        def confirm(row):
            method = payment_method or row["payment_method"]
            if row["status"] != "requires_confirmation" and not (
                    payment_method and row["status"] == "requires_payment_method"):
                raise _unexpected(row, "confirm")
            if payment_method:
                return {"payment_method": payment_method, **outcome(method)}
            return outcome(method)

        def outcome(method):
            if "declined" in method.lower():
                return {"status": "requires_payment_method", "payment_method": None,
                        "last_error": "card_declined"}
            if method == "pm_card_processing":
                return {"status": "processing", "last_error": None}
            return {"status": "succeeded", "last_error": None}

        return await self._transition(intent_id, "payment_intent.confirm", confirm)

    async def cancel_intent(self, intent_id):
        def cancel(row):
            if row["status"] not in CANCELABLE:
                raise _unexpected(row, "cancel")
            return {"status": "canceled"}

        return await self._transition(intent_id, "payment_intent.cancel", cancel)

    async def retrieve_intent(self, intent_id):
        async with self.ctx.db.read() as conn:
            row = await conn.fetch_one(offline_payments.select().where(
                offline_payments.c.id == _intent_uuid(intent_id)))
        if row is None:
            raise PortError(f"No such payment_intent: {intent_id!r}", code="resource_missing", status=404)
        return _intent(row)

    async def refund(self, intent_id, amount_cents=None, *, idempotency_key):
        refund: dict[str, Any] = {}

        def apply(row):
            for seen in row["refunds"]:
                if seen["idempotency_key"] == idempotency_key:
                    refund.update(seen)
                    return {}
            if row["status"] != "succeeded":
                raise PortError(f"cannot refund a payment that is {row['status']}", code="charge_not_refundable",
                                status=400)
            left = row["amount_cents"] - row["amount_refunded_cents"]
            amount = left if amount_cents is None else amount_cents
            if left == 0:
                raise PortError("the payment is already fully refunded", code="charge_already_refunded", status=400)
            if not isinstance(amount, int) or amount < 1 or amount > left:
                raise PortError(f"refund amount must be 1..{left} cents", code="amount_too_large", status=400)
            refund.update(id=f"re_{uuid.uuid4().hex}", amount_cents=amount, idempotency_key=idempotency_key,
                          created=int(time.time()))
            return {"amount_refunded_cents": row["amount_refunded_cents"] + amount,
                    "refunds": [*row["refunds"], dict(refund)]}

        intent = await self._transition(intent_id, "refund.create", apply)
        return Refund(id=refund["id"], payment_intent_id=intent.id, amount_cents=refund["amount_cents"],
                      currency=intent.currency, status="succeeded")

    async def submit_dispute_evidence(self, dispute_id, evidence, *, idempotency_key):
        await self._record("dispute.evidence", {"dispute_id": dispute_id, "evidence": evidence,
                                                "idempotency_key": idempotency_key})
        return "under_review"

    async def balance_transactions(self, *, created_from, created_to, starting_after=None, limit=100):
        """A charge for every payment that succeeded (at its creation) and one per refund, one page."""
        async with self.ctx.db.read() as conn:
            rows = await conn.fetch_all(offline_payments.select().where(
                offline_payments.c.status == "succeeded",
                offline_payments.c.updated_at >= sa.func.to_timestamp(created_from)))
        items = []
        for row in rows:
            intent, meta = f"pi_{row['id'].hex}", dict(row["metadata"] or {})
            at = int(row["created_at"].timestamp())
            items.append(BalanceTransaction(f"txn_{row['id'].hex}", "charge", row["amount_cents"],
                                            card_fee(row["amount_cents"]), row["currency"],
                                            at, f"ch_{row['id'].hex}", intent, meta))
            items += [BalanceTransaction(f"txn_{r['id']}", "refund", -r["amount_cents"], 0, row["currency"],
                                         r.get("created", at), r["id"], intent, meta) for r in row["refunds"]]
        items = [t for t in items if created_from <= t.created < created_to]
        return sorted(items, key=lambda t: (-t.created, t.id)), None

    def sign_webhook(self, payload: bytes, timestamp: int | None = None) -> str:
        return stripe_signature(self.webhook_secret, payload, timestamp)

    async def verify_webhook(self, headers, body, url):
        parts: dict[str, list[str]] = {}
        for item in (headers.get("Stripe-Signature") or "").split(","):
            key, _, value = item.strip().partition("=")
            parts.setdefault(key, []).append(value)
        try:
            timestamp = int(parts["t"][0])
        except (KeyError, ValueError):
            raise InvalidSignature("no timestamp in the signature header") from None
        expected = stripe_signature(self.webhook_secret, body, timestamp).rpartition("v1=")[2]
        if not any(hmac.compare_digest(expected, v) for v in parts.get("v1", [])):
            raise InvalidSignature("signature does not match the payload")
        inbound.fresh(str(timestamp), self.ctx.settings.webhook_tolerance_seconds)
        return inbound.stripe_events(body)


def _unexpected(row, action: str) -> PortError:
    return PortError(f"cannot {action} a PaymentIntent whose status is {row['status']}",
                     code="payment_intent_unexpected_state", status=400)


# --- SMS and telephony ---------------------------------------------------------------------


def twilio_signature(token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's ``X-Twilio-Signature``: HMAC-SHA1 of the URL followed by the sorted form fields."""
    data = url + "".join(f"{k}{params[k]}" for k in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), "sha1").digest()).decode()


class _TwilioSigned(_Recorder):
    calls = False  # message callbacks (SMS) or call callbacks (telephony)

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.webhook_secret = _secret(ctx, ctx.settings.twilio_auth_token, "twilio")

    def sign_webhook(self, url: str, params: dict[str, str]) -> str:
        return twilio_signature(self.webhook_secret, url, params)

    async def verify_webhook(self, headers, body, url):
        params = inbound.twilio_form(body)
        if not hmac.compare_digest(self.sign_webhook(url, params), headers.get(inbound.TWILIO_SIGNATURE) or ""):
            raise InvalidSignature("X-Twilio-Signature does not sign this URL and form")
        return inbound.twilio_events(params, headers, body, calls=self.calls)


class OfflineSms(_TwilioSigned):
    port = "sms"

    async def send(self, to, body, *, status_callback=None):
        sid = f"SM{uuid.uuid4().hex}"
        await self._record("message.send", {"sid": sid, "to": to, "from": self.ctx.settings.twilio_from_number,
                                            "body": body, "status_callback": status_callback})
        return SentMessage(id=sid, status="recorded", to=to)


class OfflineTelephony(_TwilioSigned):
    port = "telephony"
    calls = True

    def say(self, text, *, gather_action=None):
        response = ET.Element("Response")
        parent = response
        if gather_action:
            parent = ET.SubElement(response, "Gather", input="speech", action=gather_action, method="POST")
        ET.SubElement(parent, "Say").text = text
        return _twiml(response)

    def dial(self, number):
        response = ET.Element("Response")
        ET.SubElement(response, "Dial").text = number
        return _twiml(response)

    async def transfer(self, call_sid, number):
        await self._record("call.update", {"sid": call_sid, "twiml": self.dial(number)})
        return CallInfo(sid=call_sid, status="in-progress")

    async def hangup(self, call_sid):
        await self._record("call.update", {"sid": call_sid, "status": "completed"})
        return CallInfo(sid=call_sid, status="completed")

    def menu(self, text, *, action, digits=1, timeout=5):
        response = ET.Element("Response")
        gather = ET.SubElement(response, "Gather", input="dtmf speech", action=action, method="POST",
                               numDigits=str(digits), timeout=str(timeout), actionOnEmptyResult="true")
        ET.SubElement(gather, "Say").text = text
        return _twiml(response)


def _twiml(element) -> str:
    return '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(element, encoding="unicode")


# --- email ---------------------------------------------------------------------------------


class OfflineEmail(_Recorder):
    """Records emails; its event webhook is signed with HMAC-SHA256 of timestamp + body
    (base64), since the provider's ECDSA scheme needs the provider's key pair."""

    port = "email"

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.webhook_secret = _secret(ctx, None, "email")

    async def send(self, to, subject, text, *, html=None, from_email=None):
        message_id = f"offline-{uuid.uuid4().hex}"
        await self._record("mail.send", {"id": message_id, "to": to, "from": from_email or self.ctx.settings.email_from,
                                         "subject": subject, "text": text, "html": html})
        return SentMessage(id=message_id, status="recorded", to=to)

    def sign_webhook(self, payload: bytes, timestamp: str) -> str:
        mac = hmac.new(self.webhook_secret.encode(), timestamp.encode() + payload, "sha256").digest()
        return base64.b64encode(mac).decode()

    async def verify_webhook(self, headers, body, url):
        timestamp = headers.get(inbound.SENDGRID_TIMESTAMP) or ""
        if not hmac.compare_digest(self.sign_webhook(body, timestamp), headers.get(inbound.SENDGRID_SIGNATURE) or ""):
            raise InvalidSignature("the event webhook signature does not match")
        inbound.fresh(timestamp, self.ctx.settings.webhook_tolerance_seconds)
        return inbound.sendgrid_events(body)


# --- bank link -----------------------------------------------------------------------------


class OfflineBankLink(_Recorder):
    """A sandbox bank: any public token exchanges to one checking account. Its webhooks
    carry a ``Plaid-Verification`` JWT as Plaid's do, signed HS256 with this installation's
    secret instead of Plaid's ES256 key."""

    port = "bank"

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.webhook_secret = _secret(ctx, None, "bank")

    def sign_webhook(self, body: bytes, issued_at: int | None = None) -> str:
        import jwt

        claims = {"iat": int(time.time()) if issued_at is None else issued_at,
                  "request_body_sha256": hashlib.sha256(body).hexdigest()}
        return jwt.encode(claims, self.webhook_secret, algorithm="HS256")

    async def verify_webhook(self, headers, body, url):
        inbound.plaid_claims(headers.get(inbound.PLAID_VERIFICATION) or "", self.webhook_secret, "HS256", body,
                             self.ctx.settings.webhook_tolerance_seconds)
        return inbound.plaid_events(body)

    async def create_link_token(self, user_id):
        token = f"link-offline-{uuid.uuid4()}"
        expiration = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 4 * 3600))
        await self._record("link_token.create", {"user_id": user_id, "link_token": token})
        return LinkToken(link_token=token, expiration=expiration)

    async def exchange_public_token(self, public_token):
        digest = hashlib.sha256(public_token.encode()).hexdigest()
        item = BankItem(access_token=f"access-offline-{digest[:32]}", item_id=f"item-offline-{digest[32:48]}")
        await self._record("item.public_token.exchange", {"public_token": public_token, "item_id": item.item_id})
        return item

    async def get_accounts(self, access_token):
        if not access_token.startswith("access-offline-"):
            raise PortError("the access token is not valid", code="INVALID_ACCESS_TOKEN", status=400)
        await self._record("accounts.get", {"access_token": access_token[:20] + "..."})
        return [BankAccount(account_id=f"acc-{access_token[15:31]}", name="Offline Checking", mask="0000",
                            type="depository", subtype="checking", balance_cents=100_000, currency="USD")]


# --- AI ------------------------------------------------------------------------------------


class OfflineLlm(_Recorder):
    """No language model: records the prompt and answers with a fixed, recognisable reply."""

    port = "llm"

    async def chat(self, messages, *, max_tokens=None, temperature=None):
        await self._record("chat.completions.create", {"id": f"chatcmpl-{uuid.uuid4().hex}", "messages": list(messages),
                                                       "max_tokens": max_tokens})
        last = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
        return ChatResult(content=f"[offline] no language model is configured; received: {last}",
                          model="offline")


_TOKEN = re.compile(r"\w+")


class HashingEmbeddings:
    """Deterministic feature-hashing vectors (words and character trigrams, 384 dims, L2
    normalised): texts that share words are near, but this is not a semantic model. A test
    double (``MYHIBACHI_EMBEDDINGS_ADAPTER=hashing``) for tests that need vectors fast and
    exactly reproducible; the offline default is the MiniLM ONNX model."""

    dimensions = 384
    model = "offline-hashing-384"

    def __init__(self, ctx=None) -> None:
        self.ctx = ctx

    def _vector(self, text: str) -> list[float]:
        vec = [0.0] * self.dimensions
        for word in _TOKEN.findall(text.lower()):
            padded = f"#{word}#"
            features = [word] * 2 + [padded[i:i + 3] for i in range(len(padded) - 2)]
            for feature in features:
                h = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "big")
                vec[h % self.dimensions] += 1.0 if (h >> 32) & 1 else -1.0
        norm = math.sqrt(sum(v * v for v in vec))
        return [v / norm for v in vec] if norm else vec

    async def embed(self, texts):
        return [self._vector(t) for t in texts]


class OfflineSpeechToText(_Recorder):
    """Records the audio's size and digest and refuses: a speech engine is an optional
    install (the ``whisper`` adapter, about 500 MB), not part of the core."""

    port = "speech"

    async def transcribe(self, audio, *, filename="audio.wav", language=None):
        await self._record("audio.transcriptions.create", {"filename": filename, "bytes": len(audio),
                                                           "sha256": hashlib.sha256(audio).hexdigest()})
        raise PortError("no speech-to-text engine is configured (MYHIBACHI_SPEECH_ADAPTER=whisper or openai)",
                        code="not_configured", status=503)
