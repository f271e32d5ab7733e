"""Bulk export: a job the worker runs a page of customers at a time, each page committed with
its output chunk and the job's cursor, so a worker that stops resumes where the last commit
left off (no customer twice, none missed) and memory holds one page, whatever the total.

JSON is JSON Lines, one customer's record per line, gzip-compressed (each chunk a gzip member:
concatenated they are one valid file). CSV is a zip with one file per section, a
``customer_id`` column first; the zip is assembled while it is downloaded, one chunk at a time.
The download link is signed and expires with the job's output, which a periodic job deletes.
"""
from __future__ import annotations

import base64
import csv
import gzip
import hashlib
import hmac
import io
import json
import logging
import uuid
import zipfile
from datetime import datetime, timedelta
from typing import Any, AsyncIterator

import jwt
import sqlalchemy as sa

from myhibachi.core import Problem, audit, not_found, publish, tables, utcnow, vault
from myhibachi.plugins.customer_export.models import export_chunks, export_jobs
from myhibachi.plugins.customer_export.service import _cell, _plain, gather

log = logging.getLogger("myhibachi.customer_export")
customers = tables.customers
LINK_AUDIENCE = "customer-export-download"
MORE = "_more"  # keys a row has beyond its section's first row, as JSON


def _settings(ctx):
    return ctx.plugins.get("customer_export").settings


def _chosen(customer_ids: list[uuid.UUID] | None, created_since: datetime | None) -> list:
    where = []
    if customer_ids is not None:
        where.append(customers.c.id.in_(customer_ids))
    if created_since is not None:
        where.append(customers.c.created_at >= created_since)
    return where


async def start(conn, ctx, principal, fmt: str, customer_ids: list[uuid.UUID] | None,
                created_since: datetime | None) -> dict[str, Any]:
    total = await conn.scalar(sa.select(sa.func.count()).select_from(customers)
                              .where(*_chosen(customer_ids, created_since)))
    job = await conn.fetch_one(sa.insert(export_jobs).values(
        id=uuid.uuid4(), requested_by=principal.id, format=fmt, customer_ids=customer_ids,
        created_since=created_since, total=total).returning(export_jobs))
    await audit.record(conn, ctx, action="customers.bulk_export_requested", resource_type="customer_export",
                       resource_id=job["id"], changes={"format": {"old": None, "new": fmt},
                                                       "customers": {"old": None, "new": total}}, actor=principal)
    return job


async def get(conn, job_id: uuid.UUID) -> dict[str, Any]:
    job = await conn.fetch_one(sa.select(export_jobs).where(export_jobs.c.id == job_id))
    if job is None:
        raise not_found("Export")
    return job


# --- the worker's part --------------------------------------------------------------------

_CLAIM = (sa.select(export_jobs).where(export_jobs.c.status.in_(("queued", "running")))
          .order_by(export_jobs.c.created_at).limit(1).with_for_update(skip_locked=True))


async def step(ctx) -> int:
    """Export the next page of the oldest unfinished job; returns the customers exported."""
    settings = _settings(ctx)
    async with ctx.db.transaction() as conn:
        job = await conn.fetch_one(_CLAIM)
        if job is None:
            return 0
        page = await conn.scalars(
            sa.select(customers.c.id)
            .where(*_chosen(job["customer_ids"], job["created_since"]),
                   *([customers.c.id > job["cursor"]] if job["cursor"] else []))
            .order_by(customers.c.id).limit(settings.page_size))
        try:
            async with conn.savepoint():
                records = [r for r in [await gather(conn, ctx, cid, None) for cid in page] if r is not None]
                parts, columns = _render(job, records)
        except Exception as exc:  # a plugin's section that cannot be exported fails the job, visibly
            log.exception("customer export %s failed", job["id"])
            await conn.run(sa.update(export_jobs).where(export_jobs.c.id == job["id"]).values(
                status="failed", error=f"{type(exc).__name__}: {exc}"[:2000], finished_at=sa.func.now()))
            return 1
        seq, size = job["chunks"], 0
        for section, data in parts:
            sealed = _seal(ctx, job["id"], seq, data)
            await conn.run(sa.insert(export_chunks).values(job_id=job["id"], seq=seq, section=section, data=sealed))
            seq, size = seq + 1, size + len(data)
        finished = len(page) < settings.page_size
        now = utcnow()
        await conn.run(sa.update(export_jobs).where(export_jobs.c.id == job["id"]).values(
            status="done" if finished else "running", cursor=page[-1] if page else job["cursor"],
            done=export_jobs.c.done + len(records), chunks=seq, bytes=export_jobs.c.bytes + size, columns=columns,
            finished_at=now if finished else None,
            expires_at=now + timedelta(hours=settings.link_hours) if finished else None))
        if finished:
            await publish(conn, ctx, "customer_export.completed", {
                "job_id": str(job["id"]), "format": job["format"], "customers": job["done"] + len(records),
                "requested_by": job["requested_by"]})
        return max(len(page), 1)


def _render(job: dict[str, Any], records: list[dict[str, Any]]) -> tuple[list[tuple[str, bytes]], dict]:
    """This page's output: (section, uncompressed bytes) parts, and the columns known so far."""
    if job["format"] == "json":
        lines = b"".join(json.dumps(_plain(r), sort_keys=True).encode() + b"\n" for r in records)
        return ([("records", lines)] if lines else []), job["columns"]
    columns = dict(job["columns"])
    texts: dict[str, io.StringIO] = {}
    for record in records:
        for name, rows in record["sections"].items():
            for row in rows:
                if name not in texts:
                    texts[name] = io.StringIO()
                    if name not in columns:
                        columns[name] = [k for k in row if k != "customer_id"]
                        csv.writer(texts[name]).writerow(["customer_id", *columns[name], MORE])
                known = columns[name]
                extra = {k: v for k, v in row.items() if k not in known and k != "customer_id"}
                csv.writer(texts[name]).writerow([str(record["customer_id"]), *(_cell(row.get(c)) for c in known),
                                                  json.dumps(_plain(extra)) if extra else ""])
    return [(name, text.getvalue().encode()) for name, text in texts.items()], columns


def _seal(ctx, job_id: uuid.UUID, seq: int, data: bytes) -> str:
    packed = base64.b64encode(gzip.compress(data, compresslevel=6)).decode()
    v = vault(ctx)
    return f"{v.current_id}:{v.encrypt(packed, f'customer_export:{job_id}:{seq}')}"


def _open(ctx, job_id: uuid.UUID, seq: int, sealed: str) -> bytes:
    """The chunk's gzip member (the JSON download sends it as it is)."""
    key_id, _, token = sealed.partition(":")
    return base64.b64decode(vault(ctx).decrypt(token, key_id, f"customer_export:{job_id}:{seq}"))


async def expire(conn, ctx) -> int:
    """Periodic: delete the output of jobs whose link has expired."""
    ended = await conn.scalars(sa.update(export_jobs).where(
        export_jobs.c.status == "done", export_jobs.c.expires_at <= sa.func.now()).values(
        status="expired").returning(export_jobs.c.id))
    if ended:
        await conn.run(sa.delete(export_chunks).where(export_chunks.c.job_id.in_(ended)))
    return len(ended)


# --- the download link --------------------------------------------------------------------


def _link_key(ctx) -> bytes:
    # its own key: a download token is never a valid access token, nor the other way round
    return hmac.new(ctx.settings.signing_key.encode(), b"myhibachi/customer-export-link", hashlib.sha256).digest()


def link_token(ctx, job: dict[str, Any]) -> str:
    return jwt.encode({"sub": str(job["id"]), "aud": LINK_AUDIENCE, "exp": job["expires_at"]},
                      _link_key(ctx), algorithm="HS256")


def job_of_token(ctx, token: str) -> uuid.UUID:
    try:
        claims = jwt.decode(token, _link_key(ctx), algorithms=["HS256"], audience=LINK_AUDIENCE,
                            options={"require": ["exp", "sub", "aud"]})
        return uuid.UUID(claims["sub"])
    except jwt.ExpiredSignatureError:
        raise Problem(410, "Gone", "this download link has expired", kind="expired")
    except (jwt.PyJWTError, ValueError):
        raise Problem(403, "Forbidden", "this download link is not valid", kind="forbidden")


async def chunks(ctx, job: dict[str, Any], section: str | None = None) -> AsyncIterator[bytes]:
    """The job's chunks in order, each read on its own short connection while the body streams."""
    seq = -1
    while True:
        async with ctx.db.read() as conn:
            query = sa.select(export_chunks.c.seq, export_chunks.c.data).where(
                export_chunks.c.job_id == job["id"], export_chunks.c.seq > seq)
            if section is not None:
                query = query.where(export_chunks.c.section == section)
            row = await conn.fetch_one(query.order_by(export_chunks.c.seq).limit(1))
        if row is None:
            return
        seq = row["seq"]
        yield _open(ctx, job["id"], seq, row["data"])


class _Pipe:
    """An unseekable file for zipfile: what it writes is taken out after each call."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


async def body(ctx, job: dict[str, Any]) -> AsyncIterator[bytes]:
    if job["format"] == "json":
        async for member in chunks(ctx, job):
            yield member
        return
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, "w", zipfile.ZIP_DEFLATED) as archive:
        for section in job["columns"]:
            with archive.open(f"{section}.csv", "w", force_zip64=True) as entry:
                async for member in chunks(ctx, job, section):
                    entry.write(gzip.decompress(member))
                    yield pipe.take()
            yield pipe.take()
    yield pipe.take()
