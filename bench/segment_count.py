"""Count a rule-based segment of N customers (contact_lists), and time it.

    python bench/segment_count.py [--customers 100000]

Starts a throwaway embedded PostgreSQL (or uses DATABASE_URL), migrates it, seeds N
customers with 1-2 bookings each in SQL (placeholder PII: only the bookings are read), then
times the members preview of the segment "booked in the last 12 months, party size >= 10,
ZIP 10001 or 10002" (the count and the first 20 ids) five times and prints the median.
Budget (issue 23): 100,000 customers counted in under a second.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

# placeholder ciphertexts for the sealed columns: segments read no PII
SEED = """
INSERT INTO customers (id, email_hash, email_enc, name_enc, key_id)
SELECT md5('c' || i)::uuid, sha256(('c' || i)::bytea), 'x', 'x', 'bench' FROM generate_series(1, :n) AS i;
INSERT INTO bookings (id, customer_id, starts_at, time_zone, duration_minutes, party_size, adults, address_enc,
                      key_id, zip_code, status, total_cents, slot_key, created_at)
SELECT gen_random_uuid(), md5('c' || (i % :n + 1))::uuid, now() + interval '10 days', 'America/New_York', 120,
       4 + i % 12, 4 + i % 12, 'x', 'bench', '1000' || (i % 5),
       CASE WHEN i % 7 = 0 THEN 'cancelled' ELSE 'confirmed' END, 60000, 's' || i, now() - (i % 500) * interval '1 day'
FROM generate_series(1, :bookings) AS i;
ANALYZE customers; ANALYZE bookings;
"""


async def main(n: int) -> None:
    from myhibachi.plugins.contact_lists import service
    from myhibachi.plugins.contact_lists.schemas import ListCreate

    settings, url, db = harness.scratch_database()
    async with db.transaction() as conn:
        await conn.run(sa.text("TRUNCATE contact_lists, bookings, customers CASCADE"))
        for statement in filter(str.strip, SEED.split(";")):
            await conn.run(sa.text(statement), {"n": n, "bookings": n * 3 // 2})
        made = await service.create(conn, ListCreate(name="bench", rules={
            "booked_within_days": 365, "min_party_size": 10, "zip_codes": ["10001", "10002"]}), None)
    times, counted = [], None
    for _ in range(5):
        started = time.perf_counter()
        async with db.read() as conn:
            counted = await service.preview(conn, made["id"], 20)
        times.append(time.perf_counter() - started)
    await db.close()
    print(f"customers={n} bookings={n * 3 // 2} segment_members={counted['count']} "
          f"median_seconds={statistics.median(times):.3f} max_seconds={max(times):.3f}")
    assert counted["count"] > 0 and len(counted["sample"]) == 20 and isinstance(counted["sample"][0], uuid.UUID)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    asyncio.run(main(parser.parse_args().customers))
