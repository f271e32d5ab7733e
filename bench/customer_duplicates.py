"""Time the duplicate-customer list (customer_merge) over N customers, page by page.

    python bench/customer_duplicates.py [--count 100000] [--pages 5] [--limit 50]

Starts a throwaway embedded PostgreSQL (or uses DATABASE_URL), migrates it, seeds N
customers (sealed as in production) of whom one in ten shares its phone number with
another and one in ten its name and address (written differently), then reads the first
pages of ``GET /v1/admin/customers/duplicates``' query and the first pages past the phone
groups (name and address).
Budget (issue 22): under a second per page at 100,000 customers.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402


async def seed(db, ctx, count: int, *, with_keys: bool = False) -> None:
    from myhibachi.core.customers import sealed
    from myhibachi.core.models import customers

    rows = []
    for i in range(count):
        c = uuid.uuid4()
        phone = f"+1202{(i // 2 if i % 10 < 2 else i + count) % 10_000_000:07d}"
        # one in ten shares its name and address (written differently) with another, phone apart
        twin = i % 10 in (2, 3)
        name, address = (f"Guest {i // 2}", f"{i // 2} Oak {'Street' if i % 2 else 'St.'}") if twin else \
            (f"Guest {i}", f"{i} Pine Road")
        rows.append({"id": c, **sealed(ctx, c, {"email": f"{c.hex}@example.com", "phone": phone,
                                                "name": name, "address": address})})
    async with db.transaction() as conn:
        for start in range(0, count, 10_000):
            await conn.run(sa.insert(customers), rows[start:start + 10_000])
        await conn.run(sa.text("ANALYZE customers"))
    if with_keys:
        from myhibachi.plugins.customer_merge.service import keep_keys

        async with db.transaction() as conn:
            for start in range(0, count, 5_000):
                await keep_keys(conn, ctx, [r["id"] for r in rows[start:start + 5_000]])
            await conn.run(sa.text("ANALYZE customer_match_keys"))


async def main(count: int, pages: int, limit: int) -> None:
    from myhibachi.core.app import create_app
    from myhibachi.plugins.customer_merge import CustomerMergePlugin
    from myhibachi.plugins.customer_merge.service import duplicates

    settings, url, db = harness.scratch_database()
    async with db.transaction() as conn:
        await conn.run(sa.text("TRUNCATE customer_merges, customer_match_keys, customers CASCADE"))
    ctx = create_app([CustomerMergePlugin()], settings=settings, database=db).state.ctx
    started = time.perf_counter()
    await seed(db, ctx, count, with_keys=True)
    seeded = time.perf_counter() - started
    for first in (None, "n:"):  # the phone groups' first pages, then the name and address groups'
        times, groups, cursor, reasons = [], 0, first, set()
        for _ in range(pages):
            async with db.read() as conn:
                t = time.perf_counter()
                page = await duplicates(conn, ctx, limit=limit, cursor=cursor)
                times.append(time.perf_counter() - t)
            groups += len(page["items"])
            reasons |= {g["reason"] for g in page["items"]}
            cursor = page["next_cursor"]
            if cursor is None:
                break
        print(f"customers={count} seeded_in={seeded:.1f}s from={first or 'start'} pages={len(times)} limit={limit} "
              f"groups={groups} reasons={sorted(reasons)} page_seconds=" + ",".join(f"{t:.3f}" for t in times)
              + f" worst={max(times):.3f}")
        assert groups == min(len(times) * limit, count // 10)
    await db.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--pages", type=int, default=5)  # with --count 100000, pages 400-410 are name/address
    parser.add_argument("--limit", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.count, args.pages, args.limit))
