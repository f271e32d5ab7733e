"""Crash safety of a campaign: a worker SIGKILLed at random points while it hands 1,000
recipients of a campaign to comms and comms sends them on the offline adapter, restarted
until the work is done: every recipient handed over once, sent once, nobody left out.

The campaign is scheduled over HTTP; the workers are separate processes running the
production dispatch loop (``myhibachi.core.tasks.dispatch_forever``) with the comms,
templates, contact lists and campaigns plugins, small batches so kills land mid-campaign.
Kill points come from a seeded random generator (``MYHIBACHI_CHAOS_SEED``), printed on failure.
"""
from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from myhibachi.core.customers import sealed
from myhibachi.core.models import customers, offline_outbox
from myhibachi.plugins.campaigns.models import campaign_recipients
from myhibachi.plugins.comms.models import comms_consents, comms_messages
from myhibachi.plugins.contact_lists.models import contact_list_members
from tests.plugins.campaigns.helpers import SCHEDULE, campaigns_app
from tests.plugins.conftest import Seed
from tests.reliability.conftest import ROOT, SECRET

N = 1000
TOTAL = 2 * N  # recipients handed over, their messages sent
SEED = int(os.environ.get("MYHIBACHI_CHAOS_SEED", "20261204"))

WORKER = """
import asyncio, sys
from myhibachi.core.app import create_app
from myhibachi.core.settings import Settings
from myhibachi.core.tasks import dispatch_forever
from myhibachi.plugins.campaigns import CampaignsPlugin
from myhibachi.plugins.comm_templates import CommTemplatesPlugin
from myhibachi.plugins.comms import CommsPlugin
from myhibachi.plugins.contact_lists import ContactListsPlugin

settings = Settings(home=sys.argv[1], database_url=sys.argv[2], secret_key=sys.argv[3])
ctx = create_app([CommsPlugin(batch_size=20), CommTemplatesPlugin(), ContactListsPlugin(),
                  CampaignsPlugin(batch_size=20)], settings=settings).state.ctx
ctx.flags.start()
print("ready", flush=True)
asyncio.run(dispatch_forever(ctx, interval=0.05))
"""


def start_worker(home: Path, db_url: str) -> subprocess.Popen:
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("REDIS_URL", None)
    return subprocess.Popen([sys.executable, "-c", WORKER, str(home), db_url, SECRET], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=open(home / "stderr.log", "ab"), text=True)


async def load(make_app, client_of, database, settings) -> str:
    """1,000 consenting customers on a static list, and a campaign to them scheduled over HTTP."""
    app = campaigns_app(make_app)
    ctx = app.state.ctx
    ids = [uuid.uuid4() for _ in range(N)]
    async with database.transaction() as conn:
        await conn.run(sa.insert(customers), [
            {"id": c, **sealed(ctx, c, {"email": f"{c.hex}@example.com", "phone": None, "name": "Guest",
                                        "address": None})} for c in ids])
        await conn.run(sa.insert(comms_consents), [
            {"customer_id": c, "channel": "email", "marketing": True, "source": "test"} for c in ids])
    staff = await Seed(database, settings).staff("campaigns.write", "contacts.write")
    async with client_of(app, headers=staff) as c:
        made = await c.post("/v1/admin/contact-lists", json={"name": "Everyone"})
        list_id = made.json()["id"]
        async with database.transaction() as conn:
            await conn.run(sa.insert(contact_list_members), [{"list_id": uuid.UUID(list_id), "customer_id": x}
                                                             for x in ids])
        scheduled = await c.post(SCHEDULE, headers={"Idempotency-Key": "crash"}, json={
            "name": "Crash", "list_id": list_id, "channel": "email", "subject": "Spring menu",
            "text": "See https://myhibachi.example/spring"})
        assert scheduled.status_code == 201, scheduled.text
    return scheduled.json()["id"]


async def settled(database) -> int:
    async with database.read() as conn:
        handed = await conn.scalar(sa.select(sa.func.count()).where(campaign_recipients.c.status == "sent"))
        sent = await conn.scalar(sa.select(sa.func.count()).where(comms_messages.c.status == "sent"))
    return handed + sent


async def chaos(tmp_path: Path, db_url: str, database, *, kills: int) -> list[str]:
    rng = random.Random(SEED)
    targets = sorted(rng.sample(range(50, TOTAL - 100), kills))
    proc = start_worker(tmp_path / "w0", db_url)
    log = []
    try:
        for k, target in enumerate(targets):
            deadline = time.monotonic() + 60
            while await settled(database) < target and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await asyncio.sleep(rng.uniform(0.0, 0.03))
            proc.kill()
            proc.wait(10)
            log.append(f"kill {k} at {await settled(database)}/{TOTAL}")
            proc = start_worker(tmp_path / f"w{k + 1}", db_url)
        deadline = time.monotonic() + 90
        while await settled(database) < TOTAL and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # a late duplicate would show now
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    return log


async def test_a_worker_killed_mid_campaign_sends_each_recipient_once(make_app, client_of, database, settings,
                                                                       db_url, tmp_path):
    """Broken on purpose: the recipients' outcomes written in a transaction of their own after
    comms queued the batch, and the key made unique per hand-over (a kill between the two
    re-hands the batch): 1,040 messages for 1,000 recipients (red)."""
    campaign_id = await load(make_app, client_of, database, settings)
    log = await chaos(tmp_path, db_url, database, kills=4)
    why = f"seed {SEED}; " + "; ".join(log)
    assert sum(0 < int(line.split(" at ")[1].split("/")[0]) < TOTAL for line in log) == 4, why
    async with database.read() as conn:
        statuses = {r["status"]: r["n"] for r in await conn.fetch_all(
            sa.select(campaign_recipients.c.status, sa.func.count().label("n")).group_by(campaign_recipients.c.status))}
        keys = list(await conn.scalars(sa.select(comms_messages.c.idempotency_key)))
        # what the offline adapter recorded, traced to its recipient by the message's key
        recorded = [key.rsplit(":", 1)[1] for key in await conn.scalars(
            sa.select(comms_messages.c.idempotency_key).join(
                offline_outbox, offline_outbox.c.payload["message_id"].astext.cast(sa.Uuid) == comms_messages.c.id))]
        members = {str(c) for c in await conn.scalars(sa.select(campaign_recipients.c.customer_id))}
    assert statuses == {"sent": N}, why
    assert len(keys) == len(set(keys)) == N and all(k.startswith(f"campaigns:{campaign_id}:") for k in keys), why
    assert len(recorded) == N and set(recorded) == members and len(members) == N, (why, len(recorded))
