"""Lists, segments counted in SQL, and signed unsubscribe tokens."""
from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from myhibachi.core import invalid, not_found, tables, utcnow
from myhibachi.plugins.contact_lists.models import contact_list_members as members
from myhibachi.plugins.contact_lists.models import contact_lists as lists

bookings, customers = tables.bookings, tables.customers


def segment(rules: dict[str, Any]) -> sa.Select:
    """The customer ids a segment's rules select: one SQL query, never a scan in Python."""
    query = sa.select(bookings.c.customer_id).where(bookings.c.status.in_(("confirmed", "completed"))).distinct()
    if rules.get("booked_within_days"):
        query = query.where(bookings.c.created_at >= utcnow() - timedelta(days=rules["booked_within_days"]))
    if rules.get("min_party_size"):
        query = query.where(bookings.c.party_size >= rules["min_party_size"])
    if rules.get("zip_codes"):
        query = query.where(bookings.c.zip_code.in_(rules["zip_codes"]))
    return query


def member_ids(row) -> sa.Select:
    """The ids of a list's members, as a query (a segment's evaluated when it runs)."""
    if row["kind"] == "rules":
        return segment(row["rules"])
    return sa.select(members.c.customer_id).where(members.c.list_id == row["id"])


async def create(conn, body, actor: str | None) -> dict[str, Any]:
    rules = body.rules.model_dump(exclude_none=True) if body.rules else None
    if body.rules is not None and not rules:
        raise invalid("rules", "give at least one rule")
    row = await conn.fetch_one(sa.insert(lists).values(
        id=uuid.uuid4(), name=body.name, kind="rules" if rules else "static", rules=rules, created_by=actor,
    ).returning(lists))
    return dict(row)


async def get(conn, list_id: uuid.UUID) -> dict[str, Any]:
    row = await conn.fetch_one(sa.select(lists).where(lists.c.id == list_id))
    if row is None:
        raise not_found("Contact list")
    return dict(row)


async def count(conn, row) -> int:
    return await conn.scalar(sa.select(sa.func.count()).select_from(member_ids(row).subquery()))


async def add_contacts(conn, list_id: uuid.UUID, customer_ids: list[uuid.UUID]) -> dict[str, int]:
    row = await get(conn, list_id)
    if row["kind"] == "rules":
        raise invalid("customer_ids", "a rule-based segment has no static members", status=409)
    wanted = list(dict.fromkeys(customer_ids))
    known = set(await conn.scalars(sa.select(customers.c.id).where(customers.c.id.in_(wanted))))
    unknown = [str(c) for c in wanted if c not in known]
    if unknown:
        raise invalid("customer_ids", f"unknown customer {unknown[0]}" + (f" and {len(unknown) - 1} more" if
                                                                          len(unknown) > 1 else ""))
    added = await conn.run(pg_insert(members).values([{"list_id": list_id, "customer_id": c} for c in wanted])
                           .on_conflict_do_nothing())
    return {"added": added, "count": await count(conn, row)}


async def preview(conn, list_id: uuid.UUID, limit: int) -> dict[str, Any]:
    row = await get(conn, list_id)
    ids = member_ids(row).subquery()
    sample = await conn.scalars(sa.select(ids.c.customer_id).order_by(ids.c.customer_id).limit(limit))
    return {"count": await count(conn, row), "sample": list(sample)}


class Lists:
    """The ``ContactLists`` service: a list's members as a query, for campaigns."""

    async def members(self, conn, list_id: uuid.UUID) -> sa.Select:
        return member_ids(await get(conn, list_id))


# --- unsubscribe links -------------------------------------------------------------------


def _mac(secret: str, payload: str) -> str:
    digest = hmac.new(secret.encode(), f"unsubscribe:{payload}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def unsubscribe_token(secret: str, customer_id: uuid.UUID, channel: str) -> str:
    """The token of a customer's unsubscribe link for ``channel`` (no expiry: a link in an
    old email must still work)."""
    payload = f"{customer_id}.{channel}"
    return f"{payload}.{_mac(secret, payload)}"


def read_token(secret: str, token: str) -> tuple[uuid.UUID, str]:
    """The customer and channel of a token; a 422 naming ``token`` when it is not ours."""
    payload, _, mac = token.rpartition(".")
    customer, _, channel = payload.partition(".")
    if not payload or channel not in ("sms", "email") or not hmac.compare_digest(mac, _mac(secret, payload)):
        raise invalid("token", "is not a valid unsubscribe link")
    return uuid.UUID(customer), channel
