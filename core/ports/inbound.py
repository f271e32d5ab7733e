"""Provider webhook bodies as :class:`WebhookEvent` lists, once their signature is checked.

The offline and the real adapters of a port check signatures their own way and share
this parsing, so the hub sees the same events whichever adapter is configured. Each
event's ``id`` is the provider's id of that event, the key the hub dedupes on.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from typing import Any, Mapping
from urllib.parse import parse_qsl

from myhibachi.core.ports.base import InvalidSignature, WebhookEvent

TWILIO_SIGNATURE = "X-Twilio-Signature"
SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
PLAID_VERIFICATION = "Plaid-Verification"


class BadBody(ValueError):
    """A signed body the provider would never send (not JSON, not an event); ``field`` is
    where in the body, for the 422's problem."""

    def __init__(self, message: str, field: str = "body") -> None:
        super().__init__(message)
        self.field = field


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as exc:
        raise BadBody("not JSON") from exc


def _digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


# Stripe's amounts are integers of the smallest unit; handlers store them as such
STRIPE_AMOUNTS = ("amount", "amount_received", "amount_captured", "amount_refunded")


def stripe_events(body: bytes) -> list[WebhookEvent]:
    """One event, its fields checked before any handler reads them (a signed body is still input)."""
    event = _json(body)
    if not isinstance(event, dict):
        raise BadBody("not a Stripe event")
    for name, most in (("id", 255), ("type", 100)):
        if not isinstance(event.get(name), str) or not 0 < len(event[name]) <= most:
            raise BadBody(f"must be a string of 1 to {most} characters", f"body.{name}")
    data = event.get("data") or {}
    if not isinstance(data, dict):
        raise BadBody("must be an object", "body.data")
    obj = data.get("object") or {}
    if not isinstance(obj, dict):
        raise BadBody("must be an object", "body.data.object")
    for name in STRIPE_AMOUNTS:
        value = obj.get(name)
        if value is not None and (type(value) is not int or not 0 <= value < 2**53):
            raise BadBody("must be a whole number of the smallest currency unit", f"body.data.object.{name}")
    due = obj.get("evidence_details") or {}
    if not isinstance(due, dict) or (due.get("due_by") is not None and type(due["due_by"]) is not int):
        raise BadBody("must be an object whose due_by is a Unix time", "body.data.object.evidence_details")
    for name in ("id", "charge", "payment_intent", "currency", "status", "reason"):
        value = obj.get(name)
        if value is not None and not (isinstance(value, str) and len(value) <= 255):
            raise BadBody("must be a string of at most 255 characters", f"body.data.object.{name}")
    return [WebhookEvent(id=event["id"], type=event["type"], data=data)]


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
    and the status together name one event; an inbound message is its sid. The sid is
    signed and Twilio always sends it: a form without one is refused, never named by the
    unsigned ``I-Twilio-Idempotency-Token`` (a replay could pick a fresh one each time)."""
    if calls:
        status = params.get("CallStatus", "")
        sid = _sid(params.get("CallSid"), "CallSid")
        return [WebhookEvent(id=f"{sid}:{status}", type=status or "call", data=params)]
    sid = _sid(params.get("MessageSid") or params.get("SmsSid"), "MessageSid")
    status = params.get("MessageStatus") or params.get("SmsStatus") or "received"
    if status == "received":
        return [WebhookEvent(id=sid, type="received", data=params, topic="inbound")]
    return [WebhookEvent(id=f"{sid}:{status}", type=status, data=params, topic="status")]


def _sid(value: str | None, name: str) -> str:
    if not value or len(value) > 64:
        raise BadBody("Twilio names every message and call: a sid of at most 64 characters", f"body.{name}")
    return value


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


RINGCENTRAL_VALIDATION = "Validation-Token"
RINGCENTRAL_VERIFICATION = "Verification-Token"
# a party's status.code as the CallStatus of a Twilio call status callback
RINGCENTRAL_STATUS = {"Setup": "ringing", "Proceeding": "ringing", "Answered": "in-progress",
                      "Hold": "in-progress", "Disconnected": "completed", "Gone": "completed"}


def _text(value: Any, field: str, most: int, pattern: str | None = None) -> str:
    if not (isinstance(value, str) and 0 < len(value) <= most and (pattern is None or re.fullmatch(pattern, value))):
        raise BadBody(f"must be a string of 1 to {most} characters" + (f" matching {pattern}" if pattern else ""),
                      field)
    return value


def ringcentral_input(note: dict[str, Any]) -> list[WebhookEvent]:
    """What the caller pressed or said, posted by the call's media leg to the IVR step's
    ``listen.action``: ``{"uuid", "telephonySessionId", "input": {"digits" | "speech" | "audio"}}``
    (an empty input is silence), as the form of Twilio's Gather (CallSid, Digits, SpeechResult;
    SpeechAudio: the recording, base64) with ``InputId`` its uuid, so a replay is known."""
    uid = _text(note.get("uuid"), "body.uuid", 64)
    sid = _text(note.get("telephonySessionId"), "body.telephonySessionId", 64)
    said = note["input"]
    if not isinstance(said, dict):
        raise BadBody("must be an object with digits or speech (empty: the caller said nothing)", "body.input")
    form = {"CallSid": sid, "InputId": uid}
    if said.get("digits") is not None:
        form["Digits"] = _text(said["digits"], "body.input.digits", 20, r"[0-9*#]+")
    if said.get("speech") is not None:
        form["SpeechResult"] = _text(said["speech"], "body.input.speech", 2000)
    elif said.get("audio") is not None:  # the caller's words as recorded (base64): the speech port hears them
        audio = _text(said["audio"], "body.input.audio", 1 << 25)
        try:
            base64.b64decode(audio, validate=True)
        except ValueError as exc:
            raise BadBody("must be the recording, base64-encoded", "body.input.audio") from exc
        form["SpeechAudio"] = audio
    return [WebhookEvent(id=f"input:{sid}:{uid}", type="input", data=form, topic="input")]


def ringcentral_events(body: bytes) -> list[WebhookEvent]:
    """A telephony/sessions notification as a call status callback's form (CallSid is the
    telephonySessionId; From, To, Direction and CallStatus are its first party's), so the
    voice plugin reads one shape whichever provider carries the call; or the caller's input
    (``ringcentral_input``)."""
    note = _json(body)
    if isinstance(note, dict) and "input" in note:
        return ringcentral_input(note)
    if not isinstance(note, dict) or not isinstance(note.get("body"), dict):
        raise BadBody("must be a notification object with a body", "body.body")
    session = note["body"]
    sid = session.get("telephonySessionId")
    if not isinstance(sid, str) or not 0 < len(sid) <= 64:
        raise BadBody("RingCentral names every call: a session id of at most 64 characters",
                      "body.body.telephonySessionId")
    parties = session.get("parties")
    if not (isinstance(parties, list) and parties and isinstance(parties[0], dict)):
        raise BadBody("must be a list of the call's parties", "body.body.parties")
    party = parties[0]
    code = (party.get("status") or {}).get("code") if isinstance(party.get("status"), dict) else None
    if not isinstance(code, str) or not 0 < len(code) <= 64:
        raise BadBody("must name the party's status", "body.body.parties[0].status.code")
    numbers = {}
    for side in ("from", "to"):
        number = (party.get(side) or {}).get("phoneNumber") if isinstance(party.get(side), dict) else None
        if number is not None and not (isinstance(number, str) and len(number) <= 32):
            raise BadBody("must be a phone number", f"body.body.parties[0].{side}.phoneNumber")
        numbers[side] = number or ""
    status = RINGCENTRAL_STATUS.get(code, code.lower())
    form = {"CallSid": sid, "From": numbers["from"], "To": numbers["to"], "CallStatus": status,
            "Direction": str(party.get("direction") or "inbound").lower()}
    return [WebhookEvent(id=f"{sid}:{status}", type=status, data=form)]
