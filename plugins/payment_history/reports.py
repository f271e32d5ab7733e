"""Generated reports: a worker job sums the range in SQL and renders its CSV and PDF, kept in
the database with the job, so any API process serves the download."""
from __future__ import annotations

import io
import logging
import uuid
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from myhibachi.core import not_found
from myhibachi.plugins.payment_history import service
from myhibachi.plugins.payment_history.models import payment_reports as R

log = logging.getLogger("myhibachi.payment_history")
MONEY = ("gross_cents", "refunds_cents", "fees_cents", "net_cents")


NAMESPACE = uuid.UUID("5d0c2a8e-7b41-4c1f-9e63-2f8a4b6d1c05")


async def start(conn, scope: str, key: str | None, body, tz: str) -> dict[str, Any]:
    """A queued report; one per caller and ``Idempotency-Key`` when it names one."""
    report_id = uuid.uuid5(NAMESPACE, f"report|{scope}|{key}") if key else uuid.uuid4()
    await conn.run(pg_insert(R).values(
        id=report_id, requested_by=scope, first_day=body.first_day, last_day=body.last_day,
        group_by=body.group_by, time_zone=tz, by_location=body.by_location).on_conflict_do_nothing(index_elements=["id"]))
    return await get(conn, report_id)


async def get(conn, report_id: uuid.UUID, *columns) -> dict[str, Any]:
    row = await conn.fetch_one(sa.select(*(columns or [R])).where(R.c.id == report_id))
    if row is None:
        raise not_found("Report")
    return dict(row)


# what the status route reads: every column but the files
VIEW = [c for c in R.c if c.name not in ("csv", "pdf")]
_CLAIM = (sa.select(R.c.id, R.c.first_day, R.c.last_day, R.c.group_by, R.c.time_zone, R.c.by_location)
          .where(R.c.status == "queued").order_by(R.c.created_at).limit(1).with_for_update(skip_locked=True))


async def step(ctx) -> int:
    """Render the oldest queued report; returns how many it rendered (0 or 1)."""
    async with ctx.db.transaction() as conn:
        job = await conn.fetch_one(_CLAIM)
        if job is None:
            return 0
        try:
            async with conn.savepoint():
                rows = await service.totals(conn, job["first_day"], job["last_day"] + timedelta(days=1),
                                            job["time_zone"], job["group_by"], by_location=job["by_location"])
                text, pdf = service.as_csv(rows, job["by_location"]), as_pdf(job, rows)
        except Exception as exc:  # a report that cannot be rendered fails visibly, not forever queued
            log.exception("payment report %s failed", job["id"])
            await conn.run(sa.update(R).where(R.c.id == job["id"]).values(
                status="failed", error=f"{type(exc).__name__}: {exc}"[:2000], finished_at=sa.func.now()))
            return 1
        stored = [{**r, "location_id": str(r["location_id"]) if r["location_id"] else None} if "location_id" in r
                  else r for r in rows]
        await conn.run(sa.update(R).where(R.c.id == job["id"]).values(
            status="done", rows=stored, csv=text, pdf=pdf, finished_at=sa.func.now()))
        return 1


def money(cents: int) -> str:
    return f"{'-' if cents < 0 else ''}{abs(cents) // 100:,}.{abs(cents) % 100:02d}"


def as_pdf(job, rows: list[dict[str, Any]]) -> bytes:
    """A page per ~40 rows: the table, then each currency's totals."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import letter
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    where = ["Location"] if job["by_location"] else []
    head = ["Period", *where, "Currency", "Gross", "Refunds", "Fees", "Net", "Charges"]
    body = [[r["period"], *([str(r.get("location_id") or "none")] if where else []), r["currency"],
             *(money(r[k]) for k in MONEY), str(r["count"])] for r in rows]
    sums: dict[str, list[int]] = {}
    for r in rows:
        cell = sums.setdefault(r["currency"], [0] * 5)
        for i, k in enumerate((*MONEY, "count")):
            cell[i] += r[k]
    foot = [["Total", *([""] if where else []), cur, *(money(v) for v in cell[:4]), str(cell[4])]
            for cur, cell in sorted(sums.items())]
    table = Table([head, *body, *foot], repeatRows=1)
    table.setStyle(TableStyle([
        ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"), ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.black),
        ("ALIGN", (len(where) + 2, 0), (-1, -1), "RIGHT"), ("FONTSIZE", (0, 0), (-1, -1), 8),
        *([("LINEABOVE", (0, len(body) + 1), (-1, len(body) + 1), 0.5, colors.black),
           ("FONTNAME", (0, len(body) + 1), (-1, -1), "Helvetica-Bold")] if foot else []),
    ]))
    story = [Paragraph(f"Payments {job['first_day']} to {job['last_day']}", styles["Title"]),
             Paragraph(f"By {job['group_by']}{' and location' if where else ''}, {job['time_zone']} time; "
                       "amounts in the currency's units", styles["Normal"]), Spacer(1, 12),
             table if body else Paragraph("No payments in this range.", styles["Normal"])]
    out = io.BytesIO()
    SimpleDocTemplate(out, pagesize=letter, title="Payments report").build(story)
    return out.getvalue()
