"""Daily and monthly payment reports over a large ledger (issue 24: under 200 ms at 1M rows).

Starts a throwaway embedded PostgreSQL (or uses DATABASE_URL), migrates it, fills
``payment_ledger`` with ``--rows`` rows spread over a year (one SQL statement), then times
the reports' own query (``payment_history.service.totals``) for one day and one month, then
the same split by location (three locations and bookings without one).
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

FILL = """
INSERT INTO payment_ledger (id, event_id, kind, payment_id, booking_id, customer_id, amount_cents, currency,
                            occurred_at, location_id)
SELECT gen_random_uuid(), gen_random_uuid(),
       CASE WHEN i % 10 = 0 THEN 'refund' WHEN i % 10 IN (1, 2) THEN 'fee' ELSE 'charge' END,
       gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 1 + (i * 7919) % 100000,
       CASE WHEN i % 20 = 0 THEN 'CAD' ELSE 'USD' END,
       timestamptz '2026-01-01 00:00+00' + (i * interval '365 days') / :rows,
       (ARRAY[NULL, 'a0000000-0000-0000-0000-000000000001', 'a0000000-0000-0000-0000-000000000002',
              'a0000000-0000-0000-0000-000000000003'])[1 + i % 4]::uuid
FROM generate_series(1::bigint, :rows) AS i
"""


async def main(rows: int, runs: int) -> None:
    from myhibachi.plugins.payment_history import service

    settings, url, db = harness.scratch_database()
    async with db.transaction() as conn:
        await conn.run(sa.text("TRUNCATE payment_ledger"))
        await conn.run(sa.text(FILL), {"rows": rows})
    async with db.transaction() as conn:
        await conn.run(sa.text("ANALYZE payment_ledger"))
    tz = "America/Los_Angeles"
    cases = {"daily": (date(2026, 11, 1), date(2026, 11, 2), "day"),
             "monthly": (date(2026, 11, 1), date(2026, 12, 1), "month")}
    for (name, (first, after, group)), by_location in [(c, b) for b in (False, True) for c in cases.items()]:
        times = []
        async with db.read() as conn:
            for _ in range(runs):
                started = time.perf_counter()
                result = await service.totals(conn, first, after, tz, group, by_location=by_location)
                times.append((time.perf_counter() - started) * 1000)
        print(f"{name}{' by location' if by_location else ''}: rows={rows} median_ms={statistics.median(times):.1f} max_ms={max(times):.1f} "
              f"groups={len(result)}")
    await db.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.runs))
