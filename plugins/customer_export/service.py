"""Building one customer's export and rendering it as JSON, CSV (zip) or PDF."""
from __future__ import annotations

import csv
import io
import json
import uuid
import zipfile
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from myhibachi.core import audit, bookings, check_owner_or, customers, not_found, tables, utcnow

_BOOKINGS = (sa.select(tables.bookings).where(tables.bookings.c.customer_id == sa.bindparam("customer_id"))
             .order_by(tables.bookings.c.starts_at, tables.bookings.c.id))
# a booking's fields in the table's order, the sealed ones opened in their place (the CSV's columns)
_BOOKING_FIELDS = tuple(c.name.removesuffix("_enc") for c in tables.bookings.c if c.name != "key_id")


async def record_of(conn, ctx, customer_id: uuid.UUID, principal) -> dict[str, Any]:
    """The customer's complete record: ``{"customer_id", "exported_at", "sections": {...}}``."""
    check_owner_or(principal, customer_id, "customers.export", "Customer")
    record = await gather(conn, ctx, customer_id, principal.flag_context())
    if record is None:
        raise not_found("Customer")
    return record


async def gather(conn, ctx, customer_id: uuid.UUID, context: dict | None) -> dict[str, Any] | None:
    profile = await customers.get_customer(conn, ctx, customer_id)
    if profile is None:
        return None
    sections: dict[str, list[dict[str, Any]]] = {
        "profile": [{k: v for k, v in profile.items() if "." not in k}],
        "bookings": [{k: r[k] for k in _BOOKING_FIELDS} for r in (
            bookings.opened(ctx, row) for row in await conn.fetch_all(_BOOKINGS, {"customer_id": customer_id}))],
    }
    for answer in reversed(await ctx.hooks(context).customer_export_sections(customer_id=customer_id, conn=conn)):
        sections.update(answer)
    return {"customer_id": customer_id, "exported_at": utcnow(), "sections": sections}


async def audit_export(ctx, customer_id: uuid.UUID, principal, fmt: str, sections: list[str]) -> None:
    # its own transaction: the export itself runs on a read connection
    async with ctx.db.transaction() as conn:
        await audit.record(conn, ctx, action="customer.exported", resource_type="customer", resource_id=customer_id,
                           changes={"format": {"old": None, "new": fmt}, "sections": {"old": None, "new": sections}}, actor=principal)


def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, memoryview)):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def as_json(record: dict[str, Any]) -> bytes:
    return json.dumps(_plain(record), indent=2, sort_keys=True).encode()


def as_zip(record: dict[str, Any]) -> bytes:
    """One CSV per section (columns: every key its rows have), in a zip."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, rows in record["sections"].items():
            columns = list(dict.fromkeys(k for row in rows for k in row))
            text = io.StringIO()
            writer = csv.writer(text)
            writer.writerow(columns)
            for row in rows:
                writer.writerow([_cell(row.get(c)) for c in columns])
            archive.writestr(f"{name}.csv", text.getvalue())
    return out.getvalue()


def _cell(value: Any) -> Any:
    value = _plain(value)
    return json.dumps(value) if isinstance(value, (dict, list)) else ("" if value is None else value)


def _money(cents: int | None, currency: str | None) -> str:
    return "" if cents is None else f"{cents / 100:,.2f} {currency or ''}".strip()


def as_pdf(record: dict[str, Any]) -> bytes:
    """A readable summary: the profile, bookings and payments, then every other section."""
    from reportlab.lib.pagesizes import letter
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer
    from xml.sax.saxutils import escape

    styles = getSampleStyleSheet()
    story: list = []

    def line(text: str, style: str = "Normal") -> None:
        story.append(Paragraph(escape(text), styles[style]))

    sections = record["sections"]
    [profile] = sections["profile"]
    line(f"Personal data of {profile['name']}", "Title")
    line(f"Exported {record['exported_at']:%Y-%m-%d %H:%M} UTC")
    for key in ("name", "email", "phone", "address", "status", "created_at"):
        line(f"{key}: {_plain(profile.get(key)) or ''}")
    line("Bookings", "Heading2")
    for b in sections["bookings"]:
        line(f"{b['starts_at']:%Y-%m-%d %H:%M} UTC, {b['party_size']} guests, {b['status']}, "
             f"total {_money(b['total_cents'], b['currency'])}, {b['address']}")
    for name, rows in sections.items():
        if name in ("profile", "bookings"):
            continue
        line(name, "Heading2")
        for row in rows:
            money = _money(row.get("amount_cents"), row.get("currency")) if "amount_cents" in row else None
            text = ", ".join(f"{k}: {_plain(v)}" for k, v in row.items() if v is not None and k != "amount_cents")
            line((f"amount {money}, " if money else "") + text)
        story.append(Spacer(1, 6))
    out = io.BytesIO()
    SimpleDocTemplate(out, pagesize=letter, title="Customer data export").build(story)
    return out.getvalue()


async def erase(conn, ctx, customer_id: uuid.UUID, principal) -> dict[str, Any]:
    """GDPR erasure in the caller's transaction: every plugin erases its data (``customer_erase``),
    then the profile is anonymised and disabled. Bookings and payments stay (bookkeeping law),
    tied to the anonymous profile."""
    check_owner_or(principal, customer_id, "customers.erase", "Customer")
    if await customers.get_customer(conn, ctx, customer_id) is None:
        raise not_found("Customer")
    await ctx.hooks(principal.flag_context()).customer_erase(customer_id=customer_id, conn=conn)
    erased = await customers.update_customer(
        conn, ctx, customer_id, actor=principal.id, email=f"erased-{customer_id.hex}@example.com",
        name="Erased customer", phone=None, address=None, status="disabled")
    await audit.record(conn, ctx, action="customer.erased", resource_type="customer", resource_id=customer_id,
                       actor=principal)
    return erased
