"""Shared pieces of the campaigns tests: the app, customers with marketing consent, a list."""
from __future__ import annotations

import uuid

import sqlalchemy as sa

from myhibachi.plugins.campaigns import CampaignsPlugin
from myhibachi.plugins.campaigns.models import campaign_recipients, campaigns
from myhibachi.plugins.comm_templates import CommTemplatesPlugin
from myhibachi.plugins.comms import CommsPlugin
from myhibachi.plugins.comms.service import record_consent
from myhibachi.plugins.contact_lists import ContactListsPlugin

FLAGS = {"FEATURE_FLAG_DIRECT_COMMUNICATIONS": True, "FEATURE_FLAG_COMMUNICATION_TEMPLATES": True,
         "FEATURE_FLAG_CONTACT_LISTS": True, "FEATURE_FLAG_ADVANCED_COMMUNICATIONS": True}
SCHEDULE = "/v1/communications/schedule"
AB_TEST = "/v1/communications/ab-test"
ANALYTICS = "/v1/communications/analytics"
SCOPES = ("campaigns.read", "campaigns.write", "contacts.read", "contacts.write", "templates.read",
          "templates.write", "comms.read")


def campaigns_app(make_app, *extra, flags=None, **settings):
    return make_app([CommsPlugin(), CommTemplatesPlugin(), ContactListsPlugin(), CampaignsPlugin(**settings), *extra],
                    flags={**FLAGS, **(flags or {})})


async def consenting(seed, n: int = 1, *, channel: str = "email", consent: bool = True, **kw) -> list[uuid.UUID]:
    """Customers who agreed to marketing on ``channel`` (recorded as the comms plugin keeps it)."""
    made = [await seed.customer(**kw) for _ in range(n)]
    if consent:
        async with seed.db.transaction() as conn:
            for customer in made:
                await record_consent(conn, customer, channel, True, source="signup form")
    return made


async def static_list(c, customer_ids) -> str:
    made = await c.post("/v1/admin/contact-lists", json={"name": "Guests"})
    assert made.status_code == 201, made.text
    added = await c.post(f"/v1/admin/contact-lists/{made.json()['id']}/contacts",
                         json={"customer_ids": [str(x) for x in customer_ids]})
    assert added.status_code == 200, added.text
    return made.json()["id"]


def key(n="1") -> dict[str, str]:
    return {"Idempotency-Key": f"campaign-{n}"}


async def recipients_of(db, campaign_id) -> dict[uuid.UUID, dict]:
    async with db.read() as conn:
        found = await conn.fetch_all(sa.select(campaign_recipients).where(
            campaign_recipients.c.campaign_id == uuid.UUID(str(campaign_id))))
    return {r["customer_id"]: dict(r) for r in found}


async def campaign_row(db, campaign_id) -> dict:
    async with db.read() as conn:
        return dict(await conn.fetch_one(sa.select(campaigns).where(campaigns.c.id == uuid.UUID(str(campaign_id)))))


def field_of(response) -> str:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return response.json()["errors"][0]["field"]
