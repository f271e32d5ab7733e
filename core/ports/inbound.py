"""Provider webhook bodies as :class:`WebhookEvent` lists, once their signature is checked.

The offline and the real adapters of a port check signatures their own way and share
this parsing, so the hub sees the same events whichever adapter is configured. Each
event's ``id`` is the provider's id of that event, the key the hub dedupes on.
"""
from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Mapping
from urllib.parse import parse_qsl

from myhibachi.core.ports.base import InvalidSignature, WebhookEvent

TWILIO_SIGNATURE = "X-Twilio-Signature"
TWILIO_IDEMPOTENCY = "I-Twilio-Idempotency-Token"
SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
PLAID_VERIFICATION = "Plaid-Verification"


class BadBody(ValueError):
    """A signed body the provider would never send (not JSON, not an event)."""


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as exc:
        raise BadBody("not JSON") from exc


def _digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def stripe_events(body: bytes) -> list[WebhookEvent]:
    event = _json(body)
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
        raise BadBody("not a Stripe event")
    return [WebhookEvent(id=event["id"], type=event["type"], data=event.get("data") or {})]


def twilio_form(body: bytes) -> dict[str, str]:
    """Twilio posts application/x-www-form-urlencoded, one value per field."""
    try:
        return dict(parse_qsl(body.decode(), keep_blank_values=True))
    except UnicodeDecodeError as exc:
        raise BadBody("not a form") from exc


def twilio_events(params: dict[str, str], headers: Mapping[str, str], body: bytes, *,
                  calls: bool) -> list[WebhookEvent]:
    """A message status callback (topic ``status``), an inbound message (``inbound``), or
    a call status callback. Status callbacks of one message repeat its sid, so the sid
    and the status together name one event; an inbound message is its sid."""
    fallback = headers.get(TWILIO_IDEMPOTENCY) or _digest(body)
    if calls:
        status = params.get("CallStatus", "")
        sid = params.get("CallSid")
        return [WebhookEvent(id=f"{sid}:{status}" if sid else fallback, type=status or "call", data=params)]
    sid = params.get("MessageSid") or params.get("SmsSid")
    status = params.get("MessageStatus") or params.get("SmsStatus") or "received"
    if status == "received":
        return [WebhookEvent(id=sid or fallback, type="received", data=params, topic="inbound")]
    return [WebhookEvent(id=f"{sid}:{status}" if sid else fallback, type=status, data=params, topic="status")]


def fresh(timestamp: str, tolerance: int) -> None:
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > tolerance:
        raise InvalidSignature("the signed timestamp is outside the tolerance")


def sendgrid_events(body: bytes) -> list[WebhookEvent]:
    """One event per entry of the batch, named by its ``sg_event_id``."""
    entries = _json(body)
    if not isinstance(entries, list):
        raise BadBody("must be a JSON array of events")
    return [WebhookEvent(id=str(e.get("sg_event_id") or _digest(json.dumps(e, sort_keys=True).encode())),
                         type=str(e.get("event") or ""), data=e)
            for e in entries if isinstance(e, dict)]


def plaid_events(body: bytes) -> list[WebhookEvent]:
    """Plaid's body carries no event id: the same body is the same event."""
    event = _json(body)
    if not isinstance(event, dict):
        raise BadBody("not a Plaid webhook")
    kind = f"{event.get('webhook_type', '')}.{event.get('webhook_code', '')}"
    return [WebhookEvent(id=str(event.get("webhook_id") or _digest(body)), type=kind, data=event)]


def plaid_claims(token: str, key: Any, algorithm: str, body: bytes, tolerance: int) -> None:
    """Check a ``Plaid-Verification`` JWT: signed by ``key``, issued within ``tolerance``
    seconds, for this body (its ``request_body_sha256``)."""
    import jwt

    try:
        claims = jwt.decode(token, key, algorithms=[algorithm], options={"verify_aud": False})
    except jwt.PyJWTError as exc:
        raise InvalidSignature(f"bad Plaid-Verification token: {exc}") from exc
    if abs(time.time() - int(claims.get("iat") or 0)) > tolerance:
        raise InvalidSignature("the signed timestamp is outside the tolerance")
    if not isinstance(claims.get("request_body_sha256"), str) or claims["request_body_sha256"] != _digest(body):
        raise InvalidSignature("the token does not sign this body")
