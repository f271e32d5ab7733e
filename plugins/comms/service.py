"""Sending SMS and email: the service other plugins call, the worker, callbacks and opt-outs.

Everything runs on the caller's connection (SQLAlchemy Core). Other plugins send with::

    from myhibachi.plugins.comms import service as comms
    message = await comms.send(conn, ctx, channel="sms", customer_id=cid, body="...",
                               kind="transactional", idempotency_key=f"reminders:{rid}:sms")

which validates, checks consent and queues the message in the caller's transaction, so the
message exists exactly when the caller's change commits (``send_many`` queues a batch).
Consent: every plugin's ``may_send`` is asked; this plugin's own answer refuses opted-out
numbers and addresses, and marketing to anyone without recorded consent (transactional
messages need none).
"""
from __future__ import annotations

import asyncio
import json
import logging
import uuid
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert

from myhibachi.core import (
    PortError, Problem, customers, fetch_page, invalid, not_found, publish, publish_many, reseal, seal_offline, utcnow,
    vault, webhooks,
)
from myhibachi.plugins.comms import CommsSettings
from myhibachi.plugins.comms.models import comms_consents as consents
from myhibachi.plugins.comms.models import comms_messages as messages
from myhibachi.plugins.comms.models import comms_opt_outs as opt_outs

log = logging.getLogger("myhibachi.comms")

FLAG = "FEATURE_FLAG_DIRECT_COMMUNICATIONS"
# Twilio's default opt-out and opt-in keywords (matched on the whole trimmed message).
STOP_WORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
START_WORDS = {"START", "YES", "UNSTOP"}
# Provider status -> ours, and which of ours may move to it: a replayed or late callback
# never moves a message backwards.
FINAL = ("delivered", "failed", "bounced")
MOVES = {"sent": ("queued", "sending"), "delivered": ("queued", "sending", "sent"),
         "failed": ("queued", "sending", "sent"), "bounced": ("queued", "sending", "sent", "delivered")}
TWILIO_STATUS = {"sent": "sent", "delivered": "delivered", "undelivered": "failed", "failed": "failed",
                 "canceled": "failed"}
SENDGRID_STATUS = {"delivered": "delivered", "bounce": "bounced", "dropped": "failed"}
SENDGRID_OPT_OUT = {"unsubscribe", "group_unsubscribe", "spamreport"}


# Set by ``send`` while it asks ``may_send``: the recipient's address was checked already
# (the actual address, which may not be the customer's own), so our hook need not look again.
_checked: ContextVar[tuple[uuid.UUID, str] | None] = ContextVar("comms_checked", default=None)
# The marketing consents of a send_many batch, read in one query: (customer, channel) -> granted.
_consented: ContextVar[dict[tuple[uuid.UUID, str], bool] | None] = ContextVar("comms_consented", default=None)


def settings_of(ctx) -> CommsSettings:
    plugin = ctx.plugins.get("comms")
    return getattr(plugin, "settings", None) or CommsSettings()


class SendRefused(Problem):
    """Consent refused the message (an opt-out, no marketing consent, another plugin's rule)."""

    def __init__(self, reason: str) -> None:
        super().__init__(409, "Message refused", reason, kind="send-refused", reason=reason)
        self.reason = reason


# --- validation ----------------------------------------------------------------------------

GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM7_EXTENDED = set("^{}\\[~]|€\f")  # each takes two septets (escape + char)
GSM7 = GSM7_BASIC | GSM7_EXTENDED


def sms_segments(body: str) -> tuple[int, str]:
    """How many segments ``body`` takes and its encoding, ``GSM-7`` or ``UCS-2``.

    One GSM-7 segment carries 160 septets, a part of a longer message 153 (the rest is the
    concatenation header); UCS-2 counts UTF-16 code units, 70 and 67.
    """
    if GSM7.issuperset(body):
        units, single, multi, encoding = len(body) + sum(body.count(c) for c in GSM7_EXTENDED), 160, 153, "GSM-7"
    else:
        units, single, multi, encoding = len(body.encode("utf-16-le")) // 2, 70, 67, "UCS-2"
    if units <= single:
        return 1, encoding
    return -(-units // multi), encoding


def normalise(channel: str, value: str, field: str = "to") -> str:
    """E.164 (a number carries its country code: +1...) or a normalised email; 422 naming ``field``."""
    if channel == "sms":
        return customers.normalise_phone(value, field, region=None)
    return customers.normalise_email(value, field)


def address_hash(ctx, channel: str, address: str) -> bytes:
    return vault(ctx).lookup_hash("phone" if channel == "sms" else "email", address)


def _check_content(settings: CommsSettings, channel: str, body: str | None, subject: str | None,
                   html: str | None) -> tuple[int | None, str | None]:
    field = "body.body" if channel == "sms" else "body.text"
    if not body or not body.strip():
        raise invalid(field, "must not be empty")
    if channel == "sms":
        segments, encoding = sms_segments(body)
        if segments > settings.max_sms_segments:
            raise invalid("body.body", f"takes {segments} {encoding} segments; at most {settings.max_sms_segments}")
        return segments, encoding
    if not subject or not subject.strip():
        raise invalid("subject", "must not be empty")
    if len(subject) > settings.max_subject_chars or not _one_line(subject):
        raise invalid("subject", f"one line of at most {settings.max_subject_chars} characters")
    if len(body) > settings.max_email_chars:
        raise invalid("text", f"at most {settings.max_email_chars} characters")
    if html is not None and len(html) > settings.max_email_chars:
        raise invalid("html", f"at most {settings.max_email_chars} characters")
    return None, None


# --- consent -------------------------------------------------------------------------------


async def is_opted_out(conn, ctx, channel: str, address: str) -> bool:
    return bool(await conn.scalar(sa.select(opt_outs.c.opted_out).where(
        opt_outs.c.address_hash == address_hash(ctx, channel, address), opt_outs.c.channel == channel)))


async def consent_reason(conn, ctx, customer_id, channel: str, kind: str) -> str | None:
    """This plugin's ``may_send``: the customer's number or address opted out, or marketing
    without recorded consent. Transactional messages need no consent."""
    if customer_id is not None and _checked.get() != (_uuid(customer_id), channel):
        person = (await customers.contacts(conn, ctx, [customer_id])).get(_uuid(customer_id))
        address = person and person.get("phone" if channel == "sms" else "email")
        if address and await is_opted_out(conn, ctx, channel, address):
            return f"the recipient opted out of {channel}"
    if kind == "marketing":
        known = _consented.get()
        if customer_id is not None and known is not None and (_uuid(customer_id), channel) in known:
            granted = known[(_uuid(customer_id), channel)]
        else:
            granted = customer_id is not None and await conn.scalar(sa.select(consents.c.marketing).where(
                consents.c.customer_id == _uuid(customer_id), consents.c.channel == channel))
        if not granted:
            return f"no recorded consent to marketing by {channel}"
    return None


async def record_consent(conn, customer_id: uuid.UUID, channel: str, marketing: bool, *,
                         source: str | None = None) -> None:
    """Record (or withdraw) a customer's consent to marketing on ``channel``."""
    values = {"marketing": marketing, "source": source, "updated_at": sa.func.now()}
    await conn.run(pg_insert(consents).values(customer_id=customer_id, channel=channel, **values)
                       .on_conflict_do_update(index_elements=["customer_id", "channel"], set_=values))


async def set_opt_out(conn, ctx, channel: str, address: str, opted_out: bool, *, keyword: str | None = None,
                      customer_id: uuid.UUID | None = None) -> bool:
    """Record an opt-out (or opt-in) of one number or address; True when it changed.

    ``message.opted_out`` is published when an address becomes opted out, once: a replayed
    STOP finds it already so and changes nothing.
    """
    values = {"opted_out": opted_out, "keyword": keyword, "updated_at": sa.func.now()}
    statement = pg_insert(opt_outs).values(address_hash=address_hash(ctx, channel, address), channel=channel,
                                           **values)
    # One statement: a concurrent or replayed callback waits on the row, then finds nothing to change.
    changed = await conn.fetch_one(statement.on_conflict_do_update(
        index_elements=["address_hash", "channel"], set_=values,
        where=opt_outs.c.opted_out.is_distinct_from(statement.excluded.opted_out),
    ).returning(opt_outs.c.channel))
    if changed is None:
        return False
    if opted_out:
        # ids, not PII: the outbox keeps payloads for days; the keyed hash names the address
        await publish(conn, ctx, "message.opted_out", {
            "channel": channel, "address_hash": address_hash(ctx, channel, address).hex(),
            "customer_id": str(customer_id) if customer_id else None})
    return True


# --- queueing ------------------------------------------------------------------------------


def _uuid(value) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _aad(message_id: uuid.UUID, field: str) -> str:
    return f"comms_messages.{field}:{message_id}"


def _one_line(subject: str) -> bool:
    """No line break in the subject, nor in what its encoded words decode to: Python's email
    package before 3.11.9 writes a decoded ``=?utf-8?q?...=0D=0A...?=`` out as real headers
    (CVE-2024-6923)."""
    from email.errors import HeaderParseError
    from email.header import decode_header, make_header

    try:
        decoded = str(make_header(decode_header(subject)))
    except (HeaderParseError, LookupError, UnicodeDecodeError, ValueError):
        return False
    return not any(c in text for text in (subject, decoded) for c in "\r\n")


def _open(ctx, row) -> dict[str, Any]:
    v = vault(ctx)
    data = {k: row[k] for k in row.keys() if not k.endswith(("_enc", "_hash")) and k != "key_id"}
    for field in ("to", "subject", "body", "html"):
        data[field] = v.decrypt(row[f"{field}_enc"], row["key_id"], _aad(row["id"], field))
    return data


async def send(conn, ctx, *, channel: str, to: str | None = None, customer_id: uuid.UUID | None = None,
               body: str | None = None, subject: str | None = None, text: str | None = None,
               html: str | None = None, kind: str = "transactional", idempotency_key: str | None = None,
               actor: str | None = None, template_id=None, template_version: int | None = None) -> dict[str, Any]:
    """Queue one message in the caller's transaction and return it (decrypted).

    :param channel: ``sms`` or ``email``.
    :param to: an E.164 number or an email address; None sends to the customer's own.
    :param customer_id: the customer it is for (recorded, and used for consent).
    :param body: the SMS text (for email, ``text`` or else ``body`` is the plain text).
    :param kind: ``transactional`` (needs no consent) or ``marketing`` (needs recorded consent).
    :param idempotency_key: a key unique to this message across callers (prefix it with
        your plugin's name); a second call with it returns the first message, queued once.
    :param template_id: the template the text was rendered from (``render_messages``), and
        ``template_version`` its version: recorded with the message.
    :raises Problem: 422 naming the field for bad input, 404 for an unknown customer, and
        :class:`SendRefused` (409) when an opt-out or consent rule refuses it.
    """
    [result] = await send_many(conn, ctx, [{
        "channel": channel, "to": to, "customer_id": customer_id, "body": body, "subject": subject, "text": text,
        "html": html, "kind": kind, "idempotency_key": idempotency_key, "actor": actor,
        "template_id": template_id, "template_version": template_version}])
    if isinstance(result, Problem):
        raise result
    return result


def _row(ctx, settings: CommsSettings, people: dict, *, channel: str, to: str | None = None, customer_id=None,
         body: str | None = None, subject: str | None = None, text: str | None = None, html: str | None = None,
         kind: str = "transactional", idempotency_key: str | None = None, actor: str | None = None,
         template_id=None, template_version: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The sealed row of one message and its plain fields; raises a Problem for bad input."""
    if channel not in ("sms", "email"):
        raise invalid("channel", "must be sms or email")
    if kind not in ("transactional", "marketing"):
        raise invalid("kind", "must be transactional or marketing")
    if channel == "email":
        body = text if text is not None else body
    segments, encoding = _check_content(settings, channel, body, subject, html)
    person = None
    if customer_id is not None:
        person = people.get(_uuid(customer_id))
        if person is None:
            raise not_found("Customer")
    if to is not None:
        address = normalise(channel, to)
    elif person is None:
        raise invalid("to", "give an address or a customer_id")
    else:
        stored = person.get("phone" if channel == "sms" else "email")
        if not stored:
            raise invalid("customer_id", f"the customer has no {'phone number' if channel == 'sms' else 'email'}")
        address = stored  # the core normalised it when it was stored
    mid = uuid.uuid4()
    v = vault(ctx)
    plain = {"to": address, "subject": subject if channel == "email" else None, "body": body,
             "html": html if channel == "email" else None}
    row = {"id": mid, "channel": channel, "kind": kind, "customer_id": _uuid(customer_id) if customer_id else None,
           "key_id": v.current_id, "to_hash": address_hash(ctx, channel, address), "segments": segments,
           "encoding": encoding, "idempotency_key": idempotency_key, "created_by": actor,
           "template_id": _uuid(template_id) if template_id else None, "template_version": template_version,
           **{f"{f}_enc": v.encrypt(value, _aad(mid, f)) for f, value in plain.items()}}
    return row, plain


# Built once: a batch is one statement, a column an array (an executemany of the same rows,
# a statement per row, took twice the time). The row carries every column, the times too,
# so the caller's message is known without reading it back.
_QUEUED = {"status": "queued", "provider_id": None, "attempts": 0, "last_error": None, "sent_at": None,
           "delivered_at": None}
_COLUMNS = [c.name for c in messages.c]
_INSERT = sa.text(
    f"INSERT INTO comms_messages ({', '.join(_COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"CAST(:{c.name} AS {c.type.compile(dialect=postgresql.dialect())}[])" for c in messages.c)
    + ") ON CONFLICT (idempotency_key) DO NOTHING")
_BLOCKED = sa.select(opt_outs.c.address_hash, opt_outs.c.channel).where(
    opt_outs.c.opted_out, opt_outs.c.address_hash == sa.any_(sa.bindparam("hashes", type_=ARRAY(sa.LargeBinary))))
_BY_KEYS = sa.select(messages).where(messages.c.idempotency_key == sa.any_(sa.bindparam("keys", type_=ARRAY(sa.String))))


_CONSENTS = sa.select(consents.c.customer_id, consents.c.channel, consents.c.marketing).where(
    consents.c.customer_id == sa.any_(sa.bindparam("ids", type_=ARRAY(sa.Uuid))))


async def _consents_of(conn, built) -> dict[tuple[uuid.UUID, str], bool] | None:
    """The recorded marketing consent of every customer and channel of a batch's marketing
    messages (False where none is recorded), in one query instead of one a customer."""
    wanted = {(row["customer_id"], row["channel"]) for _, row, _ in built
              if row["kind"] == "marketing" and row["customer_id"] is not None}
    if not wanted:
        return None
    found = {(r["customer_id"], r["channel"]): r["marketing"] for r in await conn.fetch_all(
        _CONSENTS, {"ids": list({c for c, _ in wanted})})}
    return {key: bool(found.get(key)) for key in wanted}


async def send_many(conn, ctx, items: list[dict[str, Any]]) -> list[dict[str, Any] | Problem]:
    """Queue many messages at once (each item the keyword arguments of :func:`send`).

    Returns, in order, each item's message or the Problem that refused it (bad input,
    unknown customer, :class:`SendRefused`); the others are queued all the same. The batch
    is a few statements whatever its size (the known keys, the contacts, the opt-outs, one
    executemany insert), and ``may_send`` is asked once per customer, channel and kind.
    """
    settings = settings_of(ctx)
    keys = [i["idempotency_key"] for i in items if i.get("idempotency_key") is not None]
    existing = {r["idempotency_key"]: r for r in await conn.fetch_all(_BY_KEYS, {"keys": keys})} if keys else {}
    ids = set()
    for item in items:
        if item.get("customer_id") is not None:
            try:
                ids.add(_uuid(item["customer_id"]))
            except ValueError:
                pass  # refused below, with the item
    people = await customers.contacts(conn, ctx, ids)
    results: list[Any] = [None] * len(items)
    built: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
    for n, item in enumerate(items):
        key = item.get("idempotency_key")
        if key is not None and key in existing:
            results[n] = _open(ctx, existing[key])
            continue
        try:
            row, plain = _row(ctx, settings, people, **item)
        except (Problem, ValueError) as exc:
            results[n] = exc if isinstance(exc, Problem) else invalid("customer_id", "not a UUID")
            continue
        built.append((n, row, plain))
    if not built:
        return results
    blocked = {(r["address_hash"], r["channel"]) for r in await conn.fetch_all(
        _BLOCKED, {"hashes": list({row["to_hash"] for _, row, _ in built})})}
    answers: dict[tuple, str | None] = {}
    ready = []
    token = _consented.set(await _consents_of(conn, built))
    try:
        for n, row, plain in built:
            if (row["to_hash"], row["channel"]) in blocked:
                results[n] = SendRefused(f"the recipient opted out of {row['channel']}")
                continue
            asked = (row["customer_id"], row["channel"], row["kind"])
            if asked not in answers:
                answers[asked] = await _may_send(conn, ctx, *asked)
            reason, hold = answers[asked]
            if reason:
                results[n] = SendRefused(reason)
            else:
                ready.append((n, row, plain, hold))
    finally:
        _consented.reset(token)
    if not ready:
        return results
    now = utcnow()
    rows = [{**row, **_QUEUED, "next_attempt_at": max(now, hold) if hold else now, "created_at": now,
             "updated_at": now} for _, row, _, hold in ready]
    # A concurrent call with the same key waits here for the first one's transaction, then
    # inserts nothing, and the first message is returned.
    inserted = await conn.run(_INSERT, {c: [row[c] for row in rows] for c in _COLUMNS})
    stored = {}
    if inserted < len(rows):
        stored = {r["idempotency_key"]: r for r in await conn.fetch_all(
            _BY_KEYS, {"keys": [r["idempotency_key"] for r in rows if r["idempotency_key"] is not None]})}
    for (n, _, plain, _), row in zip(ready, rows):
        first = stored.get(row["idempotency_key"])
        if first is not None and first["id"] != row["id"]:
            results[n] = _open(ctx, first)
        else:
            results[n] = {k: v for k, v in row.items() if not k.endswith(("_enc", "_hash")) and k != "key_id"} | plain
    return results


_STATUSES = sa.select(messages.c.id, messages.c.status).where(
    messages.c.id == sa.any_(sa.bindparam("ids", type_=ARRAY(sa.Uuid))))


class Messenger:
    """The ``Messaging`` service (``myhibachi.core.services``) of one app: what other plugins
    reach with ``ctx.service(Messaging, caller=...)``."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx

    async def send(self, conn, **message: Any) -> dict[str, Any]:
        return await send(conn, self.ctx, **message)

    async def send_many(self, conn, items: list[dict[str, Any]]) -> list[dict[str, Any] | Problem]:
        return await send_many(conn, self.ctx, items)

    def segments(self, body: str) -> tuple[int, str]:
        return sms_segments(body)

    async def opt_out(self, conn, *, channel: str, customer_id: uuid.UUID | None = None, to: str | None = None,
                      opted_out: bool = True, keyword: str | None = None) -> bool:
        if channel not in ("sms", "email"):
            raise invalid("channel", "must be sms or email")
        if to is not None:
            address = normalise(channel, to)
        else:
            person = (await customers.contacts(conn, self.ctx, [customer_id])).get(_uuid(customer_id))
            if person is None:
                raise not_found("Customer")
            address = person.get("phone" if channel == "sms" else "email")
            if not address:
                raise invalid("channel", f"the customer has no {'phone number' if channel == 'sms' else 'email'}")
        return await set_opt_out(conn, self.ctx, channel, address, opted_out, keyword=keyword,
                                 customer_id=customer_id)

    async def statuses(self, conn, message_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
        rows = await conn.fetch_all(_STATUSES, {"ids": list(message_ids)})
        return {r["id"]: r["status"] for r in rows}

    async def opt_outs(self, conn, *, channel: str | None = None, to: str | None = None, limit: int = 50,
                       cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        query = sa.select(opt_outs.c.channel, opt_outs.c.keyword, opt_outs.c.created_at, opt_outs.c.updated_at,
                          opt_outs.c.address_hash).where(opt_outs.c.opted_out)
        if channel is not None:
            query = query.where(opt_outs.c.channel == channel)
        if to is not None:
            if channel is None:
                raise invalid("channel", "give the channel of the address")
            query = query.where(opt_outs.c.address_hash == address_hash(self.ctx, channel, normalise(channel, to)))
        return await fetch_page(conn, query, (opt_outs.c.updated_at, opt_outs.c.channel, opt_outs.c.address_hash),
                                limit=limit, cursor=cursor)


async def _may_send(conn, ctx, customer_id, channel: str, kind: str) -> tuple[str | None, datetime | None]:
    """Every plugin's answer: the refusals joined (None to allow), and the latest time any
    plugin holds the message until (None: at once)."""
    context = {"userId": str(customer_id)} if customer_id else None
    token = _checked.set((customer_id, channel) if customer_id else None)
    try:
        answers = await ctx.hooks(context).may_send(customer_id=customer_id, channel=channel, kind=kind, conn=conn)
    finally:
        _checked.reset(token)
    reasons = [a for a in answers if isinstance(a, str) and a]
    holds = [a for a in answers if isinstance(a, datetime)]
    return "; ".join(dict.fromkeys(reasons)) or None, max(holds, default=None)


# --- history -------------------------------------------------------------------------------


async def history(conn, ctx, channel: str | None, *, customer_id: uuid.UUID | None = None,
                  status: str | None = None, since: datetime | None = None, until: datetime | None = None,
                  limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
    """One page of a channel's messages (every channel's with None), newest first."""
    query = sa.select(messages)
    if channel is not None:
        query = query.where(messages.c.channel == channel)
    if customer_id is not None:
        query = query.where(messages.c.customer_id == customer_id)
    if status is not None:
        query = query.where(messages.c.status == status)
    if since is not None:
        query = query.where(messages.c.created_at >= since)
    if until is not None:
        query = query.where(messages.c.created_at < until)
    rows, nxt = await fetch_page(conn, query, (messages.c.created_at, messages.c.id), limit=limit, cursor=cursor)
    return {"items": [_open(ctx, r) for r in rows], "next_cursor": nxt}


# --- sending (the worker) ------------------------------------------------------------------


def status_callback(ctx) -> str | None:
    base = ctx.settings.public_url
    return f"{base.rstrip('/')}/v1/webhooks/twilio" if base else None


def transient(exc: BaseException) -> bool:
    """Worth retrying: no answer, a rate limit or a provider-side error. A 4xx is final."""
    if isinstance(exc, PortError):
        return exc.status is None or exc.status == 429 or exc.status >= 500
    return True


async def _deliver(ctx, message: dict[str, Any]):
    if message["channel"] == "sms":
        return await ctx.ports.sms.send(message["to"], message["body"], status_callback=status_callback(ctx))
    return await ctx.ports.email.send(message["to"], message["subject"], message["body"], html=message["html"])


# The due rows are locked and sorted by id alone, then read: a burst of 20,000 queued
# messages sorted whole (sealed bodies and all) spilled to disk, 0.1 s a round.
_CLAIM = sa.text(
    "SELECT * FROM comms_messages WHERE id = ANY(ARRAY("
    "SELECT id FROM comms_messages WHERE status = 'queued' AND next_attempt_at <= :now "
    "ORDER BY next_attempt_at LIMIT :limit FOR UPDATE SKIP LOCKED))")


async def dispatch_due(ctx, *, now: datetime | None = None, limit: int | None = None) -> int:
    """Send one batch of queued messages; returns how many were claimed.

    The batch is committed as 'sending' before any provider is called, and each outcome is
    written after its call. The trade-off: a worker that dies between the two leaves its
    messages 'sending'; they are failed after ``sending_timeout_minutes`` rather than sent
    again. Neither Twilio's Messages API nor SMTP takes an idempotency key, so re-sending
    after a crash could deliver a message twice; we choose at most once, and the failure
    is visible in the history. Provider errors that are transient (no answer, 429, 5xx)
    put the message back in the queue with a doubling delay, up to ``max_attempts``.
    """
    settings = settings_of(ctx)
    now = now or utcnow()
    async with ctx.db.transaction() as conn:
        await conn.run(sa.update(messages).where(
            messages.c.status == "sending",
            messages.c.updated_at < now - timedelta(minutes=settings.sending_timeout_minutes),
        ).values(status="failed", last_error="outcome unknown: the worker stopped while sending",
                 updated_at=sa.func.now()))
        claimed = await conn.fetch_all(_CLAIM, {"now": now, "limit": limit or settings.batch_size})
        if not claimed:
            return 0
        # a STOP that arrived after a message was queued still stops it
        blocked = {(r["address_hash"], r["channel"]) for r in await conn.fetch_all(
            _BLOCKED, {"hashes": list({m["to_hash"] for m in claimed})})}
        stopped = [m["id"] for m in claimed if (m["to_hash"], m["channel"]) in blocked]
        ready = [m for m in claimed if (m["to_hash"], m["channel"]) not in blocked]
        if stopped:
            await conn.run(sa.update(messages).where(messages.c.id.in_(stopped)).values(
                status="failed", last_error="the recipient opted out", updated_at=sa.func.now()))
        offline = [m for m in ready if _offline(ctx, m["channel"])]
        if offline:
            await _record_offline(conn, ctx, [_open(ctx, m) for m in offline])
        ready = [m for m in ready if not _offline(ctx, m["channel"])]
        if ready:
            await conn.run(sa.update(messages).where(messages.c.id.in_([m["id"] for m in ready])).values(
                status="sending", attempts=messages.c.attempts + 1, updated_at=sa.func.now()))
    gate = asyncio.Semaphore(settings.concurrency)

    async def one(row) -> None:
        async with gate:
            await _send_one(ctx, settings, _open(ctx, row), row["attempts"] + 1)

    await asyncio.gather(*(one(row) for row in ready))
    return len(claimed)


def _offline(ctx, channel: str) -> bool:
    return ctx.ports.adapter_name(channel) == "offline"


# Built once; each is one statement for a whole batch (a statement per row cost ~0.1 ms of
# the database's time per message at 20,000 messages a run).
_RECORD = sa.text(
    "INSERT INTO offline_outbox (id, port, operation, payload) "
    "SELECT gen_random_uuid(), r.port, r.operation, r.payload "
    "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(port text, operation text, payload jsonb)")
_SENT = sa.text(
    "UPDATE comms_messages AS m SET status = 'sent', provider_id = v.pid, attempts = m.attempts + 1, "
    "last_error = NULL, sent_at = now(), updated_at = now() "
    "FROM unnest(CAST(:mids AS uuid[]), CAST(:pids AS text[])) AS v(mid, pid) "
    # the ANY lets the planner find the rows by key: without fresh statistics it hashed the whole table
    "WHERE m.id = v.mid AND m.id = ANY(CAST(:mids AS uuid[]))")


async def _record_offline(conn, ctx, batch: list[dict[str, Any]]) -> None:
    """What the offline adapters would record, written by the plugin in the claim's
    transaction and in one batch: each message is recorded exactly once, and a worker
    round of thousands takes a few statements instead of a transaction per message."""
    settings, rows, mids, pids, v = ctx.settings, [], [], [], vault(ctx)
    for m in batch:
        if m["channel"] == "sms":
            pid = f"SM{uuid.uuid4().hex}"
            rows.append({"port": "sms", "operation": "message.send", "payload": {
                "sid": pid, "to": m["to"], "from": settings.twilio_from_number, "body": m["body"],
                "status_callback": status_callback(ctx), "message_id": str(m["id"])}})
        else:
            pid = f"offline-{uuid.uuid4().hex}"
            rows.append({"port": "email", "operation": "mail.send", "payload": {
                "id": pid, "to": m["to"], "from": settings.email_from, "subject": m["subject"], "text": m["body"],
                "html": m["html"], "message_id": str(m["id"])}})
        rows[-1]["payload"] = seal_offline(v, rows[-1]["port"], rows[-1]["payload"])  # as the adapters store it
        mids.append(m["id"])
        pids.append(pid)
    await conn.run(_RECORD, {"rows": json.dumps(rows)})
    await conn.run(_SENT, {"mids": mids, "pids": pids})
    await publish_many(conn, ctx, "message.sent", [
        {"message_id": str(m["id"]), "channel": m["channel"],
         "customer_id": str(m["customer_id"]) if m["customer_id"] else None} for m in batch])


async def _send_one(ctx, settings: CommsSettings, message: dict[str, Any], attempts: int) -> None:
    try:
        sent = await _deliver(ctx, message)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        log.warning("message %s not sent (attempt %d): %s", message["id"], attempts, error)
        async with ctx.db.transaction() as conn:
            if transient(exc) and attempts < settings.max_attempts:
                delay = timedelta(seconds=min(settings.retry_seconds * 2 ** (attempts - 1), 3600))
                await _finish(conn, message["id"], status="queued", last_error=error, next_attempt_at=utcnow() + delay)
            else:
                await _finish(conn, message["id"], status="failed", last_error=error)
        return
    async with ctx.db.transaction() as conn:
        # a fast status callback may already have moved it on: only 'sending' becomes 'sent'
        await conn.run(sa.update(messages).where(messages.c.id == message["id"]).values(
            provider_id=sent.id, last_error=None, sent_at=sa.func.now(), updated_at=sa.func.now(),
            status=sa.case((messages.c.status == "sending", "sent"), else_=messages.c.status)))
        customer = message["customer_id"]
        await publish(conn, ctx, "message.sent", {"message_id": str(message["id"]), "channel": message["channel"],
                                                  "customer_id": str(customer) if customer else None})


async def _finish(conn, message_id: uuid.UUID, **values) -> None:
    await conn.run(sa.update(messages).where(messages.c.id == message_id, messages.c.status == "sending")
                       .values(updated_at=sa.func.now(), **values))


# --- provider callbacks --------------------------------------------------------------------


async def apply_status(conn, channel: str, provider_id: str, status: str, error: str | None = None) -> bool:
    """Move the message the provider calls ``provider_id`` to ``status`` if that is forward."""
    values: dict[str, Any] = {"status": status, "updated_at": sa.func.now()}
    if status == "delivered":
        values["delivered_at"] = sa.func.now()
    if error:
        values["last_error"] = error[:2000]
    return await conn.run(sa.update(messages).where(
        messages.c.channel == channel, messages.c.provider_id == provider_id,
        messages.c.status.in_(MOVES[status])).values(**values)) > 0


async def on_twilio_status(conn, event, ctx) -> None:
    """A Twilio status callback the core's webhook hub received (once per sid and status)."""
    await twilio_status(conn, await webhooks.data_of(conn, ctx, event))


async def on_twilio_inbound(conn, event, ctx) -> None:
    """An inbound SMS the hub received (once per MessageSid: a replayed START sent before a
    later STOP is never applied again)."""
    await twilio_inbound(conn, ctx, await webhooks.data_of(conn, ctx, event))


async def on_sendgrid_event(conn, event, ctx) -> None:
    """One SendGrid event webhook entry the hub received (once per sg_event_id)."""
    await sendgrid_events(conn, ctx, [await webhooks.data_of(conn, ctx, event)])


async def twilio_status(conn, params: dict[str, str]) -> bool:
    status = TWILIO_STATUS.get(params.get("MessageStatus", ""))
    sid = params.get("MessageSid") or params.get("SmsSid")
    if status is None or not sid:
        return False
    error = f"Twilio error {params['ErrorCode']}" if params.get("ErrorCode") else None
    return await apply_status(conn, "sms", sid, status, error)


async def twilio_inbound(conn, ctx, params: dict[str, str]) -> str | None:
    """An inbound SMS: STOP words opt the sender out, START words back in. Returns the change."""
    word = (params.get("Body") or "").strip().upper()
    sender = params.get("From") or ""
    if word not in STOP_WORDS | START_WORDS or not sender:
        return None
    try:
        address = customers.normalise_phone(sender, "From", region=None)
    except Problem:
        return None
    stop = word in STOP_WORDS
    owners = await customers.find_by_phone(conn, ctx, address)
    await set_opt_out(conn, ctx, "sms", address, stop, keyword=word,
                      customer_id=owners[0]["id"] if len(owners) == 1 else None)
    return "opted_out" if stop else "opted_in"


async def sendgrid_events(conn, ctx, events: list[dict[str, Any]]) -> int:
    """Apply SendGrid event webhook entries; returns how many changed something."""
    changed = 0
    for event in events:
        if not isinstance(event, dict):
            continue
        name = event.get("event")
        provider_id = str(event.get("sg_message_id") or "").split(".", 1)[0]
        if name in SENDGRID_STATUS and provider_id:
            reason = event.get("reason") or event.get("response")
            changed += await apply_status(conn, "email", provider_id, SENDGRID_STATUS[name],
                                          f"SendGrid {name}: {reason}" if reason else None)
        elif name in SENDGRID_OPT_OUT and event.get("email"):
            try:
                address = customers.normalise_email(str(event["email"]), "email")
            except Problem:
                continue
            changed += await set_opt_out(conn, ctx, "email", address, True, keyword=name)
    return changed


async def export_sections(conn, ctx, customer_id: uuid.UUID) -> dict[str, list[dict[str, Any]]]:
    """The customer's messages (decrypted) and marketing consents, for their data export."""
    sent = await conn.fetch_all(sa.select(messages).where(messages.c.customer_id == customer_id)
                                .order_by(messages.c.created_at, messages.c.id))
    given = await conn.fetch_all(sa.select(consents).where(consents.c.customer_id == customer_id))
    return {"comms.messages": [_open(ctx, r) for r in sent], "comms.consents": [dict(r) for r in given]}


async def merge_customer(conn, ctx, source_id: uuid.UUID, target_id: uuid.UUID) -> None:
    """A merge: the duplicate's messages move; its consents only where the kept customer has none."""
    await conn.run(sa.update(messages).where(messages.c.customer_id == source_id).values(customer_id=target_id))
    kept = consents.alias("kept")
    await conn.run(sa.update(consents).where(
        consents.c.customer_id == source_id,
        ~sa.exists().where(kept.c.customer_id == target_id, kept.c.channel == consents.c.channel))
        .values(customer_id=target_id))
    await conn.run(sa.delete(consents).where(consents.c.customer_id == source_id))


async def erase_customer(conn, ctx, customer_id: uuid.UUID) -> None:
    """An erasure: the customer's messages (their addresses and texts) and consents go; the
    opt-out list stays, keyed by hash, so a number that said STOP is never texted again."""
    await conn.run(sa.delete(messages).where(messages.c.customer_id == customer_id))
    await conn.run(sa.delete(consents).where(consents.c.customer_id == customer_id))


async def rotate_keys(conn, ctx, *, batch: int) -> int:
    """Every message sealed again under the current PII key (``myhibachi admin rotate-pii``)."""
    return await reseal(conn, ctx, messages, lambda row, field: _aad(row["id"], field), batch=batch)
