"""Reminders: scheduling, the API's operations, the event handlers and the sending worker.

Everything runs on the caller's connection (SQLAlchemy Core), so it is usable from the
routes, the event handlers and the worker alike.
"""
from __future__ import annotations

import inspect
import json
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from myhibachi.core.db import utcnow
from myhibachi.core.errors import Problem, conflict, invalid, not_found
from myhibachi.core.customers import contacts
from myhibachi.core.pagination import decode_cursor, encode_cursor
from myhibachi.core.models import bookings, offline_outbox
from myhibachi.core.scheduled import claim_due
from myhibachi.plugins.reminders import RemindersSettings
from myhibachi.plugins.reminders.models import booking_reminders as reminders

log = logging.getLogger("myhibachi.reminders")

FLAG = "FEATURE_FLAG_BOOKING_REMINDERS"
OFFSETS = {"24h_before": timedelta(hours=24), "1h_before": timedelta(hours=1)}
ENDED = ("cancelled", "completed")
FLAG_OFF_DELAY = timedelta(minutes=5)


def settings_of(ctx) -> RemindersSettings:
    plugin = ctx.plugins.get("reminders")
    return getattr(plugin, "settings", None) or RemindersSettings()


# --- the API's operations ------------------------------------------------------------------


async def booking_for(conn, booking_id: uuid.UUID, principal, permission: str) -> dict[str, Any]:
    """The booking, if the caller may manage its reminders: its customer, or staff holding
    ``permission``. Another customer's booking answers 404, as if it did not exist."""
    row = await conn.fetch_one(
        sa.select(bookings.c.id, bookings.c.customer_id, bookings.c.starts_at, bookings.c.status)
        .where(bookings.c.id == booking_id)
    )
    if principal.kind == "customer":
        if row is None or str(row["customer_id"]) != principal.id:
            raise not_found("Booking")
    elif not principal.can(permission):
        raise Problem(403, "Forbidden", f"missing permission {permission}", kind="forbidden", permission=permission)
    elif row is None:
        raise not_found("Booking")
    return dict(row)


def _public(row) -> dict[str, Any]:
    data = dict(row)
    data["channel"] = data.pop("notification_channel")
    return data


async def create_reminder(conn, booking: dict[str, Any], reminder_type: str, channel: str,
                          scheduled_at: datetime | None, *, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    if booking["status"] in ENDED:
        raise conflict(f"the booking is {booking['status']}")
    if reminder_type == "custom":
        if scheduled_at is None:
            raise invalid("scheduled_at", "is required for custom reminders")
        if scheduled_at <= now:
            raise invalid("scheduled_at", "must be in the future")
        if scheduled_at >= booking["starts_at"]:
            raise invalid("scheduled_at", "must be before the event starts")
        at = scheduled_at
    else:
        if scheduled_at is not None:
            raise invalid("scheduled_at", f"is set by the type for {reminder_type} reminders; leave it out")
        at = booking["starts_at"] - OFFSETS[reminder_type]
        if at <= now:
            raise invalid("reminder_type", f"the time of a {reminder_type} reminder ({at.isoformat()}) has passed")
    row = await conn.fetch_one(
        pg_insert(reminders).values(id=uuid.uuid4(), booking_id=booking["id"], reminder_type=reminder_type,
                                    scheduled_at=at, next_attempt_at=at, notification_channel=channel)
        .on_conflict_do_nothing().returning(reminders)
    )
    if row is None:
        raise conflict(f"this booking already has a {reminder_type} reminder at {at.isoformat()}")
    return _public(row)


async def list_reminders(conn, booking_id: uuid.UUID, *, limit: int, cursor: str | None) -> dict[str, Any]:
    query = sa.select(reminders).where(reminders.c.booking_id == booking_id)
    if cursor:
        at, rid = decode_cursor(cursor)
        query = query.where(sa.tuple_(reminders.c.scheduled_at, reminders.c.id) > sa.tuple_(at, rid))
    rows = await conn.fetch_all(
        query.order_by(reminders.c.scheduled_at, reminders.c.id).limit(limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [_public(r) for r in rows],
            "next_cursor": encode_cursor(rows[-1]["scheduled_at"], rows[-1]["id"]) if more else None}


async def cancel_reminder(conn, booking_id: uuid.UUID, reminder_id: uuid.UUID) -> dict[str, Any]:
    row = await conn.fetch_one(
        sa.select(reminders).where(reminders.c.id == reminder_id, reminders.c.booking_id == booking_id)
        .with_for_update()
    )
    if row is None:
        raise not_found("Reminder")
    if row["status"] == "cancelled":
        return _public(row)
    if row["status"] != "pending":
        raise conflict(f"the reminder is already {row['status']}")
    row = await conn.fetch_one(
        sa.update(reminders).where(reminders.c.id == reminder_id)
        .values(status="cancelled", updated_at=sa.func.now()).returning(reminders)
    )
    return _public(row)


# --- event handlers ------------------------------------------------------------------------


async def _booking_row(conn, booking_id: uuid.UUID):
    return await conn.fetch_one(
        sa.select(bookings.c.id, bookings.c.starts_at, bookings.c.status).where(bookings.c.id == booking_id)
    )


async def schedule_defaults(conn, ctx, booking_id: uuid.UUID, *, now: datetime | None = None) -> int:
    """Create the default reminders of a booking whose time has not passed yet."""
    settings = settings_of(ctx)
    now = now or utcnow()
    booking = await _booking_row(conn, booking_id)
    if booking is None or booking["status"] in ENDED:
        return 0
    rows = []
    for kind in settings.default_types:
        at = booking["starts_at"] - OFFSETS[kind]
        if at > now:
            rows.append({"id": uuid.uuid4(), "booking_id": booking_id, "reminder_type": kind, "scheduled_at": at,
                         "next_attempt_at": at, "notification_channel": settings.default_channel})
    if not rows:
        return 0
    result = await conn.execute(pg_insert(reminders).values(rows).on_conflict_do_nothing())
    return result.rowcount


async def reschedule(conn, booking_id: uuid.UUID, *, now: datetime | None = None) -> None:
    """Move pending 24h/1h reminders with the booking's new start; drop those now impossible."""
    now = now or utcnow()
    booking = await _booking_row(conn, booking_id)
    if booking is None:
        return
    if booking["status"] in ENDED:  # events may arrive out of order
        await cancel_pending(conn, booking_id, f"the booking is {booking['status']}")
        return
    starts_at = booking["starts_at"]
    pending = (reminders.c.booking_id == booking_id) & (reminders.c.status == "pending")
    other = reminders.alias("other")
    for kind, offset in OFFSETS.items():
        at = starts_at - offset
        if at > now:
            taken = sa.exists().where(other.c.booking_id == booking_id, other.c.reminder_type == kind,
                                      other.c.scheduled_at == at, other.c.status != "cancelled",
                                      other.c.id != reminders.c.id)
            await conn.run(sa.update(reminders).where(pending, reminders.c.reminder_type == kind, ~taken)
                               .values(scheduled_at=at, next_attempt_at=at, attempts=0, last_error=None,
                                       updated_at=sa.func.now()))
        await conn.run(sa.update(reminders).where(pending, reminders.c.reminder_type == kind,
                                                      reminders.c.scheduled_at != at)
                           .values(status="cancelled", last_error="rescheduled: its time has passed",
                                   updated_at=sa.func.now()))
    await conn.run(sa.update(reminders).where(pending, reminders.c.reminder_type == "custom",
                                                  reminders.c.scheduled_at >= starts_at)
                       .values(status="cancelled", last_error="rescheduled: the event now starts earlier",
                               updated_at=sa.func.now()))


async def cancel_pending(conn, booking_id: uuid.UUID, reason: str) -> int:
    result = await conn.execute(
        sa.update(reminders).where(reminders.c.booking_id == booking_id, reminders.c.status == "pending")
        .values(status="cancelled", last_error=reason, updated_at=sa.func.now()))
    return result.rowcount


async def on_booking_created(conn, event, ctx) -> None:
    await schedule_defaults(conn, ctx, uuid.UUID(str(event["payload"]["booking_id"])))


async def on_booking_updated(conn, event, ctx) -> None:
    payload = event["payload"]
    if "starts_at" in (payload.get("changes") or {}):
        await reschedule(conn, uuid.UUID(str(payload["booking_id"])))


async def on_booking_cancelled(conn, event, ctx) -> None:
    await cancel_pending(conn, uuid.UUID(str(event["payload"]["booking_id"])), "the booking was cancelled")


# --- sending -------------------------------------------------------------------------------


class Undeliverable(Exception):
    """No channel can carry this reminder (no address, or consent refused): never retried."""


class SendFailed(Exception):
    """Every channel that could carry the reminder failed: retried later."""


def local_time(starts_at: datetime, time_zone: str) -> str:
    """``Monday, March 15, 2027 at 6:00 PM EDT``: the event's wall-clock time where it happens."""
    local = starts_at.astimezone(ZoneInfo(time_zone))
    return (f"{local:%A, %B} {local.day}, {local.year} at "
            f"{local.hour % 12 or 12}:{local:%M} {'AM' if local.hour < 12 else 'PM'} {local.tzname()}")


def render(reminder: dict[str, Any], booking: dict[str, Any]) -> tuple[str, str]:
    when = local_time(booking["starts_at"], booking["time_zone"])
    subject = f"Reminder: your hibachi event on {when.split(' at ')[0]}"
    body = (f"My Hibachi reminder: your hibachi event for {booking['party_size']} guests is on {when} "
            f"at {booking['address']}.")
    return subject, body


def _port(ctx, channel: str):
    """The configured outside adapter for ``channel``; None when it is the offline one.

    The offline adapter only records; the plugin records the same rows itself, in the
    claim's transaction and in one batch, so a reminder is recorded exactly once and
    10,000 due reminders fit in seconds.
    """
    if ctx.ports is None or ctx.ports.adapter_name(channel) == "offline":
        return None
    return ctx.ports.get(channel)


async def send_reminder(ctx, conn, reminder: dict[str, Any], booking: dict[str, Any],
                        *, outbox: list[dict[str, Any]] | None = None) -> list[str]:
    """Send one reminder on each of its channels the customer can receive; returns them.

    A channel goes through ``ctx.ports.<channel>`` when configured, else it is recorded in
    the offline outbox (appended to ``outbox`` for one batched insert, or inserted now).
    Raises ``Undeliverable`` when no channel can carry it, and ``SendFailed`` (retried) when
    every channel that could carry it failed.
    """
    wanted = ("email", "sms") if reminder["notification_channel"] == "both" else (reminder["notification_channel"],)
    subject, body = render(reminder, booking)
    refs = {"reminder_id": str(reminder["id"]), "booking_id": str(booking["id"]),
            "customer_id": str(booking["customer_id"])}
    rows, sent, refused, failures = [], [], [], []
    for channel in wanted:
        to = booking.get(channel if channel == "email" else "phone")
        if not to:
            refused.append(f"no {'email address' if channel == 'email' else 'phone number'}")
            continue
        reasons = await ctx.hooks({"userId": refs["customer_id"]}).may_send(
            customer_id=booking["customer_id"], channel=channel, kind="transactional", conn=conn)
        if reasons:
            refused.append(f"{channel}: {reasons[0]}")
            continue
        port = _port(ctx, channel)
        if port is not None:
            try:
                result = (port.send(to=to, subject=subject, text=body) if channel == "email"
                          else port.send(to=to, body=body))
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                failures.append(f"{channel}: {type(exc).__name__}: {exc}")
                continue
        elif channel == "email":
            rows.append({"port": "email", "operation": "mail.send",
                         "payload": {"to": to, "subject": subject, "text": body, **refs}})
        else:
            rows.append({"port": "sms", "operation": "message.send", "payload": {"to": to, "body": body, **refs}})
        sent.append(channel)
    if failures and not sent:
        raise SendFailed("; ".join(failures))
    if not sent:
        raise Undeliverable("; ".join(refused) or "no channel")
    if failures:  # retrying would repeat the channels that did go out
        log.warning("reminder %s sent by %s only: %s", reminder["id"], ",".join(sent), "; ".join(failures))
    if rows:
        if outbox is None:
            await conn.run(sa.insert(offline_outbox), rows)
        else:
            outbox.extend(rows)
    return sent


async def record_offline(conn, rows: list[dict[str, Any]]) -> None:
    """Insert many offline outbox rows as one JSON parameter: one statement, one round trip."""
    await conn.run(sa.text(
        "INSERT INTO offline_outbox (id, port, operation, payload) "
        "SELECT gen_random_uuid(), r.port, r.operation, r.payload "
        "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(port text, operation text, payload jsonb)"
    ), {"rows": json.dumps(rows)})


async def _bookings(conn, ctx, ids) -> dict[uuid.UUID, dict[str, Any]]:
    rows = await conn.fetch_all(
        sa.select(bookings.c.id, bookings.c.customer_id, bookings.c.starts_at, bookings.c.time_zone,
                  bookings.c.party_size, bookings.c.address, bookings.c.status)
        .where(bookings.c.id.in_(list(ids)))
    )
    people = await contacts(conn, ctx, [r["customer_id"] for r in rows])
    found = {}
    for row in rows:
        person = people.get(row["customer_id"], {})
        found[row["id"]] = {**row, "email": person.get("email"), "phone": person.get("phone")}
    return found


class _Outcomes:
    """Status changes of one batch, written with a few statements instead of one per row."""

    def __init__(self, settings: RemindersSettings, now: datetime) -> None:
        self.settings, self.now = settings, now
        self.sent: list[uuid.UUID] = []
        self.deferred: list[uuid.UUID] = []
        self.ended: dict[tuple[str, str], list[uuid.UUID]] = {}
        self.retries: list[tuple[uuid.UUID, int, str]] = []

    def end(self, rid, status: str, reason: str) -> None:
        self.ended.setdefault((status, reason), []).append(rid)

    def retry(self, reminder: dict[str, Any], attempts: int, error: str) -> None:
        if attempts >= self.settings.max_attempts:
            self.end(reminder["id"], "failed", error)
        else:
            self.retries.append((reminder["id"], attempts, error))

    async def write(self, conn, *, count_attempt: bool) -> None:
        bump = reminders.c.attempts + (1 if count_attempt else 0)
        if self.sent:
            await conn.run(sa.update(reminders).where(reminders.c.id.in_(self.sent)).values(
                status="sent", sent_at=sa.func.now(), attempts=bump, last_error=None, updated_at=sa.func.now()))
        if self.deferred:
            await conn.run(sa.update(reminders).where(reminders.c.id.in_(self.deferred)).values(
                next_attempt_at=self.now + FLAG_OFF_DELAY, updated_at=sa.func.now()))
        for (status, reason), ids in self.ended.items():
            await conn.run(sa.update(reminders).where(reminders.c.id.in_(ids)).values(
                status=status, last_error=reason[:2000], attempts=bump if status == "failed" else reminders.c.attempts,
                updated_at=sa.func.now()))
        for rid, attempts, error in self.retries:
            delay = timedelta(seconds=min(self.settings.retry_seconds * 2 ** (attempts - 1), 3600))
            await conn.run(sa.update(reminders).where(reminders.c.id == rid).values(
                status="pending", attempts=attempts, last_error=error[:2000], next_attempt_at=self.now + delay,
                updated_at=sa.func.now()))


async def dispatch_due(ctx, *, now: datetime | None = None, limit: int | None = None) -> int:
    """Send one batch of due reminders; returns how many were claimed.

    Through the offline outbox (the embedded default) the claim, the outbox rows and the
    new statuses commit together: exactly once. Through an outside port the batch is first
    committed as 'sending' and then sent, so a crash loses a reminder rather than repeating
    it; those left 'sending' are failed after ``sending_timeout_minutes``.
    """
    settings = settings_of(ctx)
    now = now or utcnow()
    outside = any(_port(ctx, c) is not None for c in ("email", "sms"))
    async with ctx.db.transaction() as conn:
        await conn.run(sa.update(reminders).where(
            reminders.c.status == "sending",
            reminders.c.updated_at < now - timedelta(minutes=settings.sending_timeout_minutes),
        ).values(status="failed", last_error="outcome unknown: the worker stopped while sending",
                 updated_at=sa.func.now()))
        claimed = await claim_due(conn, reminders, due_column="next_attempt_at", limit=limit or settings.batch_size,
                                  now=now)
        if not claimed:
            return 0
        found = await _bookings(conn, ctx, {r["booking_id"] for r in claimed})
        outcomes = _Outcomes(settings, now)
        ready = []
        flag_on: dict[uuid.UUID, bool] = {}
        for reminder in claimed:
            booking = found.get(reminder["booking_id"])
            if booking is None or booking["status"] in ENDED:
                outcomes.end(reminder["id"], "cancelled", "the booking is cancelled")
            elif booking["starts_at"] <= now:
                outcomes.end(reminder["id"], "failed", "the event had already started")
            elif not _flag_on(ctx, flag_on, booking["customer_id"]):
                outcomes.deferred.append(reminder["id"])
            else:
                ready.append((reminder, booking))
        if not outside:
            outbox: list[dict[str, Any]] = []
            for reminder, booking in ready:
                await _attempt(ctx, conn, reminder, booking, outcomes, reminder["attempts"] + 1, outbox)
            if outbox:
                await record_offline(conn, outbox)
            await outcomes.write(conn, count_attempt=True)
            return len(claimed)
        await outcomes.write(conn, count_attempt=True)
        if ready:
            await conn.run(sa.update(reminders).where(reminders.c.id.in_([r["id"] for r, _ in ready])).values(
                status="sending", attempts=reminders.c.attempts + 1, updated_at=sa.func.now()))
    for reminder, booking in ready:
        async with ctx.db.transaction() as conn:
            single = _Outcomes(settings, now)
            await _attempt(ctx, conn, reminder, booking, single, reminder["attempts"] + 1, None)
            await single.write(conn, count_attempt=False)
    return len(claimed)


def _flag_on(ctx, seen: dict[uuid.UUID, bool], customer_id: uuid.UUID) -> bool:
    """The flag for this customer, asked once per batch (customers often have many reminders)."""
    if customer_id not in seen:
        seen[customer_id] = ctx.flags.enabled(FLAG, {"userId": str(customer_id)})
    return seen[customer_id]


async def _attempt(ctx, conn, reminder, booking, outcomes: _Outcomes, attempts: int, outbox) -> None:
    try:
        await send_reminder(ctx, conn, reminder, booking, outbox=outbox)
    except Undeliverable as exc:
        outcomes.end(reminder["id"], "failed", str(exc))
    except Exception as exc:
        log.warning("reminder %s not sent (attempt %d): %s", reminder["id"], attempts, exc)
        outcomes.retry(reminder, attempts, str(exc) if isinstance(exc, SendFailed) else f"{type(exc).__name__}: {exc}")
    else:
        outcomes.sent.append(reminder["id"])
