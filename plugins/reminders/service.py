"""Reminders: scheduling, the API's operations, the event handlers and the worker that
hands due reminders to the comms plugin, the one sender.

Everything runs on the caller's connection, so it is usable from the routes, the event
handlers and the worker alike.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert

from myhibachi.core import (Messaging, bookings, check_owner_or, claim_due, conflict, fetch_page, invalid, not_found,
                            tables, utcnow)
from myhibachi.plugins.reminders import RemindersSettings
from myhibachi.plugins.reminders.models import booking_reminders as reminders


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
        sa.select(tables.bookings.c.id, tables.bookings.c.customer_id, tables.bookings.c.starts_at,
                  tables.bookings.c.status)
        .where(tables.bookings.c.id == booking_id)
    )
    check_owner_or(principal, row and row["customer_id"], permission, "Booking")
    if row is None:
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
    rows, nxt = await fetch_page(conn, query, (reminders.c.scheduled_at, reminders.c.id), limit=limit, cursor=cursor,
                                 descending=False)
    return {"items": [_public(r) for r in rows], "next_cursor": nxt}


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
        sa.select(tables.bookings.c.id, tables.bookings.c.starts_at, tables.bookings.c.status)
        .where(tables.bookings.c.id == booking_id)
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
    return await conn.run(pg_insert(reminders).values(rows).on_conflict_do_nothing())


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
    return await conn.run(
        sa.update(reminders).where(reminders.c.booking_id == booking_id, reminders.c.status == "pending")
        .values(status="cancelled", last_error=reason, updated_at=sa.func.now()))


async def on_booking_created(conn, event, ctx) -> None:
    await schedule_defaults(conn, ctx, uuid.UUID(str(event["payload"]["booking_id"])))


async def on_booking_updated(conn, event, ctx) -> None:
    payload = event["payload"]
    if "starts_at" in (payload.get("changes") or {}):
        await reschedule(conn, uuid.UUID(str(payload["booking_id"])))


async def on_booking_cancelled(conn, event, ctx) -> None:
    await cancel_pending(conn, uuid.UUID(str(event["payload"]["booking_id"])), "the booking was cancelled")


# --- sending: every reminder is handed to the comms plugin's Messaging service ------------


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


def messages_of(reminder: dict[str, Any], booking: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages of one reminder, one per channel, as comms' ``send_many`` takes them.

    The key is the reminder's and the channel's: handing the same reminder over again
    returns its first messages and sends nothing more."""
    subject, body = render(reminder, booking)
    wanted = ("email", "sms") if reminder["notification_channel"] == "both" else (reminder["notification_channel"],)
    return [{"channel": channel, "customer_id": booking["customer_id"], "body": body,
             "subject": subject if channel == "email" else None,
             "idempotency_key": f"reminders:{reminder['id']}:{channel}"} for channel in wanted]


async def apply_templates(conn, ctx, owners: list[dict[str, Any]], items: list[dict[str, Any]],
                          found: dict[uuid.UUID, dict[str, Any]]) -> None:
    """Use the template ``reminders.<type>`` where one exists (the ``render_messages`` hook,
    one call per type and channel a batch); the built-in text otherwise."""
    groups: dict[tuple[str, str], list[int]] = {}
    for n, (reminder, item) in enumerate(zip(owners, items)):
        groups.setdefault((f"reminders.{reminder['reminder_type']}", item["channel"]), []).append(n)
    hooks = ctx.hooks()
    for (key, channel), ns in groups.items():
        recipients = [{"customer_id": items[n]["customer_id"], "language": None,
                       "variables": variables_of(found[owners[n]["booking_id"]])} for n in ns]
        answers = await hooks.render_messages(key=key, channel=channel, recipients=recipients, conn=conn)
        for n, answer in zip(ns, answers or ()):
            if answer:
                items[n].update(body=answer["text"], subject=answer["subject"], html=answer["html"],
                                template_id=answer["template_id"], template_version=answer["version"])


def variables_of(booking: dict[str, Any]) -> dict[str, str]:
    day, time = local_time(booking["starts_at"], booking["time_zone"]).split(" at ")
    return {"booking_date": day, "booking_time": time, "party_size": str(booking["party_size"]),
            "address": booking["address"]}


def why(problem) -> str:
    """What refused a message: the consent reason, the invalid field's message, or the detail."""
    errors = problem.extra.get("errors")
    return problem.extra.get("reason") or (errors[0]["message"] if errors else problem.detail or problem.title)


_BOOKINGS = sa.select(tables.bookings.c.id, tables.bookings.c.customer_id, tables.bookings.c.starts_at,
                      tables.bookings.c.time_zone, tables.bookings.c.party_size, tables.bookings.c.address_enc,
                      tables.bookings.c.key_id, tables.bookings.c.status) \
    .where(tables.bookings.c.id == sa.any_(sa.bindparam("ids", type_=ARRAY(sa.Uuid))))
# One statement per outcome of a batch (most of a batch shares one: sent, no error).
_IDS = reminders.c.id == sa.any_(sa.bindparam("ids", type_=ARRAY(sa.Uuid)))
_OUTCOME = sa.update(reminders).where(_IDS).values(
    status=sa.bindparam("new_status"), last_error=sa.bindparam("error"),
    sent_at=sa.case((sa.bindparam("new_status") == "sent", sa.func.now())),
    attempts=reminders.c.attempts + sa.bindparam("tried"), updated_at=sa.func.now())
_DEFER = sa.update(reminders).where(_IDS).values(next_attempt_at=sa.bindparam("at"), updated_at=sa.func.now())


async def dispatch_due(ctx, *, now: datetime | None = None, limit: int | None = None) -> int:
    """Hand one batch of due reminders to comms as messages; returns how many were claimed.

    The claim, the queued messages and the reminders' new statuses commit in one
    transaction, so a worker killed mid-batch leaves every reminder pending and no message;
    each message's idempotency key makes a second hand-over return the first. A reminder is
    ``sent`` when comms queued at least one of its messages (comms sends them, retries the
    provider and records their delivery in its history), ``failed`` with the reasons when
    every channel was refused (an opt-out, consent, no address). Reminders of a customer
    for whom the flag is off wait.
    """
    settings = settings_of(ctx)
    now = now or utcnow()
    messaging = ctx.service(Messaging, caller="reminders")
    async with ctx.db.transaction() as conn:
        claimed = await claim_due(conn, reminders, due_column="next_attempt_at", limit=limit or settings.batch_size,
                                  now=now)
        if not claimed:
            return 0
        found = {b["id"]: bookings.opened(ctx, b)
                 for b in await conn.fetch_all(_BOOKINGS, {"ids": list({r["booking_id"] for r in claimed})})}
        outcomes: dict[tuple[str, str | None, int], list[uuid.UUID]] = {}
        deferred, items, owners = [], [], []
        flag_on: dict[uuid.UUID, bool] = {}
        for reminder in claimed:
            booking = found.get(reminder["booking_id"])
            if booking is None or booking["status"] in ENDED:
                outcomes.setdefault(("cancelled", "the booking is cancelled", 0), []).append(reminder["id"])
            elif booking["starts_at"] <= now:
                outcomes.setdefault(("failed", "the event had already started", 1), []).append(reminder["id"])
            elif not _flag_on(ctx, flag_on, booking["customer_id"]):
                deferred.append(reminder["id"])
            else:
                for item in messages_of(reminder, booking):
                    items.append(item)
                    owners.append(reminder)
        if items:
            await apply_templates(conn, ctx, owners, items, found)
        queued: dict[uuid.UUID, bool] = {}
        refused: dict[uuid.UUID, list[str]] = {}
        for reminder, item, result in zip(owners, items, await messaging.send_many(conn, items) if items else []):
            queued.setdefault(reminder["id"], False)
            if isinstance(result, Exception):
                refused.setdefault(reminder["id"], []).append(f"{item['channel']}: {why(result)}")
            else:
                queued[reminder["id"]] = True
        for rid, any_queued in queued.items():
            reasons = "; ".join(refused.get(rid, ())) or None
            outcomes.setdefault(("sent" if any_queued else "failed", reasons and reasons[:2000], 1), []).append(rid)
        for (status, error, tried), ids in outcomes.items():
            await conn.run(_OUTCOME, {"ids": ids, "new_status": status, "error": error, "tried": tried})
        if deferred:
            await conn.run(_DEFER, {"ids": deferred, "at": now + FLAG_OFF_DELAY})
    return len(claimed)


def _flag_on(ctx, seen: dict[uuid.UUID, bool], customer_id: uuid.UUID) -> bool:
    """The flag for this customer, asked once per batch (customers often have many reminders)."""
    if customer_id not in seen:
        seen[customer_id] = ctx.flags.enabled(FLAG, {"userId": str(customer_id)})
    return seen[customer_id]


async def export_sections(conn, ctx, customer_id: uuid.UUID) -> dict[str, list[dict[str, Any]]]:
    """The reminders of the customer's bookings, for their data export."""
    found = await conn.fetch_all(sa.select(reminders).join(tables.bookings, tables.bookings.c.id == reminders.c.booking_id)
                                 .where(tables.bookings.c.customer_id == customer_id).order_by(reminders.c.scheduled_at))
    return {"reminders.reminders": [dict(r) for r in found]}
