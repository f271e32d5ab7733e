"""Memory of a bulk customer export (customer_export) at N customers: the worker's job run to
the end, then its download read through, while the process's resident memory is sampled.

    python bench/customer_export_bulk.py [--counts 10000,100000] [--format json]

Starts a throwaway embedded PostgreSQL (or uses DATABASE_URL), migrates it, seeds N customers
(sealed as in production) and runs ``POST /v1/admin/customers/export``'s job a page at a time
as the worker does, then streams the download, discarding it. Budget (issue 22): memory flat,
the peak above the start the same at 10k and 100k customers.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from customer_duplicates import seed  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


async def run(db, ctx, count: int, fmt: str) -> dict:
    from myhibachi.core.auth import Principal
    from myhibachi.plugins.customer_export import bulk

    async with db.transaction() as conn:
        await conn.run(sa.text("TRUNCATE customer_export_jobs, customers CASCADE"))
    await seed(db, ctx, count)
    base = peak = rss_mb()
    started = time.perf_counter()
    async with db.transaction() as conn:
        job = await bulk.start(conn, ctx, Principal(kind="api_key", id="bench", permissions=frozenset({"*"})), fmt, None, None)
    while await bulk.step(ctx):
        peak = max(peak, rss_mb())
    exported = time.perf_counter() - started
    async with db.read() as conn:
        job = await bulk.get(conn, job["id"])
    size, started = 0, time.perf_counter()
    async for part in bulk.body(ctx, job):
        size += len(part)
        peak = max(peak, rss_mb())
    assert job["status"] == "done" and job["done"] == count, job
    return {"customers": count, "format": fmt, "export_s": round(exported, 1),
            "download_s": round(time.perf_counter() - started, 1), "download_mb": round(size / 2**20, 1),
            "rss_start_mb": round(base, 1), "rss_peak_above_start_mb": round(peak - base, 1)}


async def main(counts: list[int], fmt: str) -> None:
    from myhibachi.core.app import create_app
    from myhibachi.plugins.audit import AuditPlugin
    from myhibachi.plugins.customer_export import CustomerExportPlugin

    settings, url, db = harness.scratch_database()
    ctx = create_app([CustomerExportPlugin(), AuditPlugin()], settings=settings, database=db).state.ctx
    for count in counts:
        print(await run(db, ctx, count, fmt), flush=True)
    await db.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="10000,100000")
    parser.add_argument("--format", default="json", choices=("json", "csv"))
    args = parser.parse_args()
    asyncio.run(main([int(c) for c in args.counts.split(",")], args.format))
