"""The logic of tip_jar, callable without HTTP (routes, tasks and event handlers use it)."""
import uuid

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from myhibachi.core import utcnow
from tip_jar.models import tips


async def invite(conn, booking_id: uuid.UUID, customer_id: uuid.UUID) -> None:
    """Open the tip jar of a booking (once, however often the event arrives)."""
    await conn.run(insert(tips).values(id=uuid.uuid4(), booking_id=booking_id, customer_id=customer_id)
                       .on_conflict_do_nothing(index_elements=["booking_id"]))


async def give(conn, booking_id: uuid.UUID, customer_id: uuid.UUID, amount_cents: int, currency: str,
               message: str | None) -> dict | None:
    """Record the customer's tip; None when the booking has no jar of this customer's."""
    row = await conn.fetch_one(
        sa.update(tips)
        .where(tips.c.booking_id == booking_id, tips.c.customer_id == customer_id)
        .values(status="given", amount_cents=amount_cents, currency=currency, message=message, given_at=utcnow())
        .returning(tips)
    )
    return dict(row) if row else None


async def on_booking_created(conn, event, ctx) -> None:
    payload = event["payload"]
    await invite(conn, uuid.UUID(payload["booking_id"]), uuid.UUID(payload["customer_id"]))


HANDLERS: dict[str, list] = {"booking.created": [on_booking_created]}
