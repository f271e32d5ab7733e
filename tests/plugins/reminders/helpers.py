"""Shared pieces of the reminders tests: an app with comms (the sender) and what comms sent."""
from __future__ import annotations

import uuid

import sqlalchemy as sa

from myhibachi.core.models import offline_outbox
from myhibachi.testing import offline_payload
from myhibachi.core.tasks import dispatch_once
from myhibachi.plugins.comms import CommsPlugin
from myhibachi.plugins.comms.models import comms_messages
from myhibachi.plugins.reminders import RemindersPlugin
from myhibachi.plugins.reminders.models import booking_reminders

FLAG = "FEATURE_FLAG_BOOKING_REMINDERS"
COMMS_FLAG = "FEATURE_FLAG_DIRECT_COMMUNICATIONS"


def reminders_app(make_app, *extra, flags=None, comms=None, **settings):
    """Reminders with the comms plugin it requires (and its flag on, for the history route)."""
    return make_app([CommsPlugin(**(comms or {})), RemindersPlugin(**settings), *extra],
                    flags={FLAG: True, COMMS_FLAG: True, **(flags or {})})


async def work(ctx) -> int:
    """The worker's loop until nothing is left: reminders become messages, comms sends them."""
    done = 0
    while claimed := await dispatch_once(ctx):
        done += claimed
    return done


async def add_reminder(db, booking_id, at, *, channel="email", kind="custom") -> uuid.UUID:
    rid = uuid.uuid4()
    async with db.transaction() as conn:
        await conn.run(sa.insert(booking_reminders).values(
            id=rid, booking_id=booking_id, reminder_type=kind, scheduled_at=at, next_attempt_at=at,
            notification_channel=channel))
    return rid


async def reminder(db, rid):
    async with db.read() as conn:
        return await conn.fetch_one(sa.select(booking_reminders).where(booking_reminders.c.id == rid))


async def sent(db) -> list[dict]:
    """What the offline adapters recorded, oldest first, each with the reminder it came from
    (``reminder_id``, from the message's idempotency key ``reminders:<id>:<channel>``)."""
    async with db.read() as conn:
        rows = await conn.fetch_all(
            sa.select(offline_outbox.c.port, offline_outbox.c.payload, comms_messages.c.idempotency_key)
            .join(comms_messages, comms_messages.c.id == offline_outbox.c.payload["message_id"].astext.cast(sa.Uuid))
            .order_by(offline_outbox.c.created_at, offline_outbox.c.port))
    return [{"port": r["port"], **offline_payload(r["port"], r["payload"]), "reminder_id": (r["idempotency_key"] or "::").split(":")[1]}
            for r in rows]


async def messages(db) -> list[dict]:
    async with db.read() as conn:
        return await conn.fetch_all(sa.select(comms_messages).order_by(comms_messages.c.created_at))
