"""A campaign to a rule-based segment of N customers, queued and sent by one worker, timed.

    python bench/campaign.py [--customers 100000] [--batch 1000] [--comms-batch 1000] [--record]

Starts a throwaway embedded PostgreSQL (or uses DATABASE_URL), migrates it, seeds N customers
(PII sealed as in production, marketing consent by email) with one booking each, makes the
segment "booked in the last 12 months, party size >= 10" (contact_lists) and times its count
(five times, the median), then schedules an email campaign to it with a personalised
template (comm_templates) and runs the worker's dispatch step (every poller: campaigns lists
the recipients and hands them to comms in batches, comms sends them on the offline adapter)
until nothing is left. Checks every customer got exactly one message.
Budgets (issue 23): the segment counted in under 1 s; 100,000 sent in under 60 s.
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

# a placeholder ciphertext for the bookings' sealed address: a campaign reads only their time zone
SEED = """
INSERT INTO bookings (id, customer_id, starts_at, time_zone, duration_minutes, party_size, adults, address_enc,
                      key_id, zip_code, status, total_cents, slot_key)
SELECT gen_random_uuid(), id, now() + interval '10 days', 'America/New_York', 120, 12, 12, 'x', 'bench', '10001',
       'confirmed', 60000, 's' || id FROM customers;
INSERT INTO comms_consents (customer_id, channel, marketing, source) SELECT id, 'email', true, 'bench' FROM customers;
ANALYZE customers; ANALYZE bookings; ANALYZE comms_consents
"""


async def seed(db, ctx, n: int) -> None:
    from myhibachi.core.customers import sealed
    from myhibachi.core.models import customers

    async with db.transaction() as conn:
        await conn.run(sa.text("TRUNCATE campaigns, contact_lists, comm_templates, comms_messages, offline_outbox, "
                               "outbox_events, bookings, customers CASCADE"))
        for start in range(0, n, 10_000):
            ids = [uuid.uuid4() for _ in range(min(10_000, n - start))]
            await conn.run(sa.insert(customers), [
                {"id": c, **sealed(ctx, c, {"email": f"{c.hex}@example.com", "phone": None, "name": "Ana Cook",
                                            "address": None})} for c in ids])
        for statement in SEED.split(";"):
            await conn.run(sa.text(statement))


async def main(n: int, batch: int, comms_batch: int, record: bool) -> None:
    from myhibachi.core import ContactLists
    from myhibachi.core.app import create_app
    from myhibachi.core.flags import TogglesFile
    from myhibachi.core.models import offline_outbox
    from myhibachi.core.tasks import dispatch_once
    from myhibachi.plugins.campaigns import CampaignsPlugin
    from myhibachi.plugins.campaigns import service as campaigns
    from myhibachi.plugins.campaigns.models import campaign_recipients
    from myhibachi.plugins.campaigns.schemas import ScheduleRequest
    from myhibachi.plugins.comm_templates import CommTemplatesPlugin
    from myhibachi.plugins.comm_templates import service as templates
    from myhibachi.plugins.comm_templates.schemas import TemplateCreate
    from myhibachi.plugins.comms import CommsPlugin
    from myhibachi.plugins.comms.models import comms_messages
    from myhibachi.plugins.contact_lists import ContactListsPlugin
    from myhibachi.plugins.contact_lists import service as lists
    from myhibachi.plugins.contact_lists.schemas import ListCreate

    settings, url, db = harness.scratch_database()
    toggles = TogglesFile(settings.toggles_path)
    for flag in ("FEATURE_FLAG_DIRECT_COMMUNICATIONS", "FEATURE_FLAG_COMMUNICATION_TEMPLATES",
                 "FEATURE_FLAG_CONTACT_LISTS", "FEATURE_FLAG_ADVANCED_COMMUNICATIONS"):
        toggles.set(flag, enabled=True, rollout=100)
    app = create_app([CommsPlugin(batch_size=comms_batch), CommTemplatesPlugin(), ContactListsPlugin(),
                      CampaignsPlugin(batch_size=batch)], settings=settings, database=db)
    ctx = app.state.ctx
    ctx.flags.start()
    started = time.perf_counter()
    await seed(db, ctx, n)
    seeded = time.perf_counter() - started

    async with db.transaction() as conn:
        segment = await lists.create(conn, ListCreate(name="Big parties this year", rules={
            "booked_within_days": 365, "min_party_size": 10}), None)
        await templates.create(conn, TemplateCreate(
            key="campaigns.bench", channel="email", subject="{first_name}, your table is waiting",
            text="Hi {customer_name}, book your spring hibachi at https://myhibachi.example/book"), None)
    counts = []
    for _ in range(5):
        began = time.perf_counter()
        async with db.read() as conn:
            members = await ctx.service(ContactLists, caller="campaigns").members(conn, segment["id"])
            counted = await conn.scalar(sa.select(sa.func.count()).select_from(members.subquery()))
        counts.append(time.perf_counter() - began)

    async with db.transaction() as conn:
        await campaigns.create(conn, ctx, ScheduleRequest(
            name="bench", list_id=segment["id"], channel="email", template_key="campaigns.bench"), None,
            variants=[{"name": "main", "share": 100, "template_key": "campaigns.bench"}])
    began, cpu = time.perf_counter(), time.process_time()
    rounds = 0
    while await dispatch_once(ctx):
        rounds += 1
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu

    async with db.read() as conn:
        handed = await conn.scalar(sa.select(sa.func.count()).where(campaign_recipients.c.status == "sent"))
        sent = await conn.scalar(sa.select(sa.func.count()).where(comms_messages.c.status == "sent"))
        keys = await conn.scalar(sa.select(sa.func.count(sa.distinct(comms_messages.c.customer_id))))
        recorded = await conn.scalar(sa.select(sa.func.count()).select_from(offline_outbox))
    ctx.flags.stop()
    await db.close()
    line = (f"customers={n} segment={counted} count_median_seconds={statistics.median(counts):.3f} "
            f"count_max_seconds={max(counts):.3f} handed={handed} sent={sent} distinct_customers={keys} "
            f"outbox_rows={recorded} rounds={rounds} seconds={elapsed:.2f} worker_cpu={cpu:.2f} "
            f"messages_per_second={sent / elapsed:.0f} seed_seconds={seeded:.1f}")
    print(line)
    assert counted == handed == sent == keys == recorded == n, "every customer must get exactly one message"
    if record:
        harness.record("Campaigns (bench/campaign.py)", f"""
- Command: `python bench/campaign.py --customers {n} --batch {batch} --comms-batch {comms_batch}` on
  {harness.machine()}, {time.strftime('%Y-%m-%d %H:%M')} UTC.
- A rule-based segment (booked in the last 12 months, party size >= 10) of {counted:,} customers counted in
  {statistics.median(counts):.3f} s (median of 5, max {max(counts):.3f} s). Budget: under 1 s.
- An email campaign to it with a personalised template ({{first_name}}, {{customer_name}}, a tracked link):
  listed, handed to comms and sent on the offline adapter by one worker in {elapsed:.1f} s
  ({sent / elapsed:,.0f} messages/s, worker CPU {cpu:.1f} s, {rounds} rounds). Budget: under 60 s.
- Checked: {handed:,} recipients handed over, {sent:,} messages sent, {keys:,} distinct customers,
  {recorded:,} offline outbox rows: one each.
""")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000, help="recipients handed to comms per round")
    parser.add_argument("--comms-batch", type=int, default=1000, help="messages comms sends per round")
    parser.add_argument("--record", action="store_true", help="write the result into bench/RESULTS.md")
    args = parser.parse_args()
    asyncio.run(main(args.customers, args.batch, args.comms_batch, args.record))
