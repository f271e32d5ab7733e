"""Campaigns: scheduling, listing recipients, handing them to comms in batches, A/B decisions,
tracking and analytics. Everything runs on the caller's connection or the worker's own
transactions, so the routes, the event handler and the worker share it."""
from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from myhibachi.core import ContactLists, Messaging, Problem, claim_due, invalid, not_found, tables, utcnow
from myhibachi.plugins.campaigns import CampaignsSettings
from myhibachi.plugins.campaigns.models import campaign_recipients as recipients
from myhibachi.plugins.campaigns.models import campaigns

CALLER = "campaigns"
EARLIEST_ZONE = timedelta(hours=14)  # UTC+14: the first place a local wall-clock time arrives
LATEST_ZONE = timedelta(hours=12)  # UTC-12: the last


def settings_of(ctx) -> CampaignsSettings:
    plugin = ctx.plugins.get("campaigns")
    return getattr(plugin, "settings", None) or CampaignsSettings()


# --- scheduling -------------------------------------------------------------------------------


async def _check_content(conn, ctx, channel: str, variant: dict[str, Any], field: str) -> None:
    """A template key must name a live template of the channel; inline text must be complete."""
    if variant.get("template_key"):
        answer = await ctx.hooks().render_messages(
            key=variant["template_key"], channel=channel,
            recipients=[{"customer_id": None, "language": None, "variables": {}}], conn=conn)
        if not answer or not answer[0]:
            raise invalid(f"{field}template_key", f"there is no {channel} template {variant['template_key']!r}")
    elif channel == "email" and not variant.get("subject"):
        raise invalid(f"{field}subject", "an email needs a subject (or a template_key)")
    elif channel == "sms" and (variant.get("subject") or variant.get("html")):
        raise invalid(f"{field}{'subject' if variant.get('subject') else 'html'}", "an SMS has text only")


def _when(send_at: datetime | None, local: bool, zone: str, now: datetime) -> tuple[datetime, datetime]:
    """The stored send time and the time a worker lists the recipients.

    A local send time is a wall-clock time without an offset, stored read as UTC; its
    recipients are listed when it first arrives anywhere (UTC+14), each due at it in their zone."""
    try:
        ZoneInfo(zone)
    except (ValueError, KeyError):
        raise invalid("time_zone", f"unknown time zone {zone!r}") from None
    if send_at is None:
        if local:
            raise invalid("send_at", "give the local time to send at")
        return now, now
    if local:
        if send_at.tzinfo is not None:
            raise invalid("send_at", "in the recipients' time zones, give a local time without an offset")
        stored = send_at.replace(tzinfo=timezone.utc)
        if stored + LATEST_ZONE < now:
            raise invalid("send_at", "that local time has passed everywhere")
        return stored, stored - EARLIEST_ZONE
    if send_at.tzinfo is None:
        raise invalid("send_at", "give an offset (2027-03-20T10:00:00-04:00), or set in_recipient_time_zone")
    if send_at < now - timedelta(minutes=5):
        raise invalid("send_at", "is in the past; leave it out to send now")
    return send_at, max(send_at, now)


async def create(conn, ctx, body, actor: str | None, *, variants: list[dict[str, Any]],
                 metric: str | None = None, decide_after: timedelta | None = None,
                 remainder_to_winner: bool = False) -> dict[str, Any]:
    """Store a campaign (its recipients are listed by the worker when it is due)."""
    now = utcnow()
    send_at, due_at = _when(body.send_at, body.in_recipient_time_zone, body.time_zone, now)
    try:
        await ctx.service(ContactLists, caller=CALLER).members(conn, body.list_id)
    except Problem as exc:
        if exc.status == 404:
            raise invalid("list_id", "there is no such contact list") from None
        raise
    for n, variant in enumerate(variants):
        await _check_content(conn, ctx, body.channel, variant, f"variants.{n}." if metric else "")
    decide_at = None
    if metric is not None:
        decide_at = (send_at + LATEST_ZONE if body.in_recipient_time_zone else due_at) + decide_after
    row = await conn.fetch_one(sa.insert(campaigns).values(
        id=uuid.uuid4(), name=body.name, list_id=body.list_id, channel=body.channel, kind=body.kind,
        variants=variants, variables=body.variables, send_at=send_at, local_time=body.in_recipient_time_zone,
        time_zone=body.time_zone, max_per_minute=body.max_per_minute, due_at=due_at, metric=metric,
        decide_at=decide_at, remainder_to_winner=remainder_to_winner, conversion_days=body.conversion_days,
        created_by=actor).returning(campaigns))
    return await view(conn, dict(row))


async def get(conn, campaign_id: uuid.UUID) -> dict[str, Any]:
    row = await conn.fetch_one(sa.select(campaigns).where(campaigns.c.id == campaign_id))
    if row is None:
        raise not_found("Campaign")
    return await view(conn, dict(row))


_PROGRESS = sa.select(recipients.c.status, sa.func.count().label("n")).where(
    recipients.c.campaign_id == sa.bindparam("campaign_id")).group_by(recipients.c.status)


async def view(conn, row: dict[str, Any]) -> dict[str, Any]:
    progress = {r["status"]: r["n"] for r in await conn.fetch_all(_PROGRESS, {"campaign_id": row["id"]})}
    return {**row, "in_recipient_time_zone": row["local_time"], "variants": [{"name": v["name"], "share": v["share"]} for v in row["variants"]],
            "progress": {s: progress.get(s, 0) for s in ("pending", "held", "sent", "refused")}}


# --- the worker: list the recipients of due campaigns ------------------------------------------


def _recipients_of(campaign: dict[str, Any], members: sa.Select) -> sa.Insert:
    """One INSERT ... SELECT of every member: its variant (an exact split, in a shuffled
    order fixed by the campaign), its due time (the send time in its zone when local, spread
    to ``max_per_minute``), held for the winner when it falls outside the test's shares."""
    m = members.subquery("m")
    order = sa.func.md5(sa.cast(sa.literal(campaign["id"], sa.Uuid), sa.String) + sa.cast(m.c.customer_id, sa.String))
    zone = sa.literal(campaign["time_zone"])
    if campaign["local_time"]:
        b = tables.bookings
        zone = sa.func.coalesce(sa.select(b.c.time_zone).where(b.c.customer_id == m.c.customer_id)
                                .order_by(b.c.created_at.desc()).limit(1).scalar_subquery(), zone)
    ranked = sa.select(m.c.customer_id, sa.func.row_number().over(order_by=order).label("rn"),
                       sa.func.count().over().label("total"), zone.label("zone")).subquery("r")
    bucket = (ranked.c.rn - 1) * 100 // ranked.c.total
    whens, upto = [], 0
    for variant in campaign["variants"]:
        upto += variant["share"]
        whens.append((bucket < upto, variant["name"]))
    due = sa.literal(campaign["send_at"], sa.DateTime(timezone=True))
    if campaign["local_time"]:
        due = sa.func.timezone(ranked.c.zone, sa.func.timezone("UTC", due))
    if campaign["max_per_minute"]:
        due = due + sa.literal_column("interval '1 minute'") * ((ranked.c.rn - 1) // campaign["max_per_minute"])
    rows = sa.select(sa.func.gen_random_uuid(), sa.literal(campaign["id"], sa.Uuid), ranked.c.customer_id,
                     sa.case(*whens, else_=None), sa.case((bucket < upto, "pending"), else_="held"), due)
    return sa.insert(recipients).from_select(
        ["id", "campaign_id", "customer_id", "variant", "status", "due_at"], rows)


_STARTED = sa.update(campaigns).where(campaigns.c.id == sa.bindparam("cid")).values(
    status="sending", recipients=sa.bindparam("n"), updated_at=sa.func.now())


async def list_due(ctx, *, now: datetime | None = None) -> int:
    """List the recipients of each due campaign, in the transaction that claims it."""
    lists = ctx.service(ContactLists, caller=CALLER)
    async with ctx.db.transaction() as conn:
        due = await claim_due(conn, campaigns, due_column="due_at", pending="scheduled", limit=5, now=now)
        for campaign in due:
            try:
                members = await lists.members(conn, campaign["list_id"])
            except Problem:  # the list was deleted: nobody to send to
                await conn.run(_STARTED, {"cid": campaign["id"], "n": 0})
                continue
            await conn.run(_recipients_of(campaign, members))
            n = await conn.scalar(sa.select(sa.func.count()).where(recipients.c.campaign_id == campaign["id"]))
            await conn.run(_STARTED, {"cid": campaign["id"], "n": n})
    return len(due)


# --- the worker: hand due recipients to comms ---------------------------------------------------


_CAMPAIGNS = sa.select(campaigns).where(campaigns.c.id == sa.any_(sa.bindparam("ids", type_=ARRAY(sa.Uuid))))
_OUTCOMES = sa.text("""
UPDATE campaign_recipients AS r SET status = u.status, message_id = u.message_id, error = u.error,
       queued_at = CASE WHEN u.status = 'sent' THEN now() END
FROM unnest(CAST(:ids AS uuid[]), CAST(:statuses AS text[]), CAST(:messages AS uuid[]), CAST(:errors AS text[]))
     AS u(id, status, message_id, error)
WHERE r.id = u.id""")
_DONE = sa.text("""
UPDATE campaigns AS c SET status = 'done', updated_at = now()
WHERE c.id = ANY(CAST(:ids AS uuid[])) AND c.status = 'sending' AND NOT EXISTS (
  SELECT 1 FROM campaign_recipients r WHERE r.campaign_id = c.id AND r.status IN ('pending', 'held'))""")


def day_of(at: datetime, zone: str) -> str:
    local = at.astimezone(ZoneInfo(zone))
    return f"{local:%A, %B} {local.day}, {local.year}"


async def variables_of(conn, ctx, customer_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, str]]:
    """Each customer's personal values: their next booking's date (the core's bookings) and
    what other plugins answer through ``message_variables`` (loyalty's balance...)."""
    out: dict[uuid.UUID, dict[str, str]] = {c: {} for c in customer_ids}
    for answer in reversed(await ctx.hooks().message_variables(customer_ids=customer_ids, conn=conn)):
        for customer_id, values in (answer or {}).items():
            if customer_id in out:
                out[customer_id].update(values)
    upcoming = {r["customer_id"]: r for r in await conn.fetch_all(
        sa.select(tables.bookings.c.customer_id, tables.bookings.c.starts_at, tables.bookings.c.time_zone)
        .where(tables.bookings.c.customer_id == sa.any_(sa.bindparam("ids", type_=ARRAY(sa.Uuid))),
               tables.bookings.c.status.in_(("pending", "confirmed")), tables.bookings.c.starts_at > sa.func.now())
        .order_by(tables.bookings.c.customer_id, tables.bookings.c.starts_at)
        .distinct(tables.bookings.c.customer_id), {"ids": customer_ids})}
    for customer_id, booking in upcoming.items():
        out[customer_id]["next_booking_date"] = day_of(booking["starts_at"], booking["time_zone"])
    return out


async def messages_of(conn, ctx, claimed: list[dict[str, Any]], found: dict[uuid.UUID, dict[str, Any]]
                      ) -> list[dict[str, Any]]:
    """The message of each claimed recipient, as comms' ``send_many`` takes them: the variant's
    template rendered with the recipient's values (one ``render_messages`` call per variant),
    or its inline text, with tracked links and an open pixel."""
    personal = await variables_of(conn, ctx, list({r["customer_id"] for r in claimed}))
    items: list[dict[str, Any]] = []
    groups: dict[tuple[uuid.UUID, str], list[int]] = {}
    for n, recipient in enumerate(claimed):
        campaign = found[recipient["campaign_id"]]
        variant = next(v for v in campaign["variants"] if v["name"] == recipient["variant"])
        items.append({"channel": campaign["channel"], "customer_id": recipient["customer_id"], "kind": campaign["kind"],
                      "subject": variant.get("subject"), "body": variant.get("text"), "html": variant.get("html"),
                      "idempotency_key": f"campaigns:{campaign['id']}:{recipient['customer_id']}"})
        if variant.get("template_key"):
            groups.setdefault((campaign["id"], variant["name"]), []).append(n)
    hooks = ctx.hooks()
    for (campaign_id, name), ns in groups.items():
        campaign = found[campaign_id]
        key = next(v for v in campaign["variants"] if v["name"] == name)["template_key"]
        answers = await hooks.render_messages(key=key, channel=campaign["channel"], conn=conn, recipients=[
            {"customer_id": claimed[n]["customer_id"], "language": None,
             "variables": {**campaign["variables"], **personal[claimed[n]["customer_id"]]}} for n in ns])
        for n, answer in zip(ns, answers or [None] * len(ns)):
            if answer:
                items[n].update(body=answer["text"], subject=answer["subject"], html=answer["html"],
                                template_id=answer["template_id"], template_version=answer["version"])
    secret, base = ctx.settings.signing_key, tracking_base(ctx)
    for recipient, item in zip(claimed, items):
        tracked(item, recipient["id"], secret, base)
        if item["channel"] == "sms":
            item.pop("subject"), item.pop("html")
    return items


def why(problem: Problem) -> str:
    errors = problem.extra.get("errors")
    return problem.extra.get("reason") or (errors[0]["message"] if errors else problem.detail or problem.title)


async def send_due(ctx, *, now: datetime | None = None, limit: int | None = None) -> int:
    """Hand one batch of due recipients to comms; returns how many were claimed.

    The claim, the queued messages and the recipients' outcomes commit in one transaction:
    a worker killed mid-batch leaves the batch pending and no message, and each message's key
    (``campaigns:<campaign>:<customer>``) makes a second hand-over return the first."""
    messaging = ctx.service(Messaging, caller=CALLER)
    async with ctx.db.transaction() as conn:
        claimed = await claim_due(conn, recipients, due_column="due_at", now=now,
                                  limit=limit or settings_of(ctx).batch_size)
        if not claimed:
            return 0
        found = {c["id"]: dict(c) for c in await conn.fetch_all(
            _CAMPAIGNS, {"ids": list({r["campaign_id"] for r in claimed})})}
        live = [r for r in claimed if found[r["campaign_id"]]["status"] == "sending"]
        items = await messages_of(conn, ctx, live, found) if live else []
        results = await messaging.send_many(conn, items) if items else []
        outcome = {"ids": [], "statuses": [], "messages": [], "errors": []}
        for recipient, result in zip(live, results):
            refused = isinstance(result, Exception)
            outcome["ids"].append(recipient["id"])
            outcome["statuses"].append("refused" if refused else "sent")
            outcome["messages"].append(None if refused else result["id"])
            outcome["errors"].append(why(result)[:2000] if refused else None)
        for recipient in claimed:  # a cancelled campaign's
            if found[recipient["campaign_id"]]["status"] != "sending":
                for column, value in (("ids", recipient["id"]), ("statuses", "refused"), ("messages", None),
                                      ("errors", f"the campaign is {found[recipient['campaign_id']]['status']}")):
                    outcome[column].append(value)
        await conn.run(_OUTCOMES, outcome)
        await conn.run(_DONE, {"ids": list(found)})
    return len(claimed)


# --- A/B tests ----------------------------------------------------------------------------------


def z_test(successes: list[int], trials: list[int]) -> tuple[float, float]:
    """Two-proportion z-test (pooled), two-sided: the z statistic and its p-value."""
    from scipy.stats import norm

    (x1, x2), (n1, n2) = successes, trials
    pooled = (x1 + x2) / (n1 + n2)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if spread == 0:
        return 0.0, 1.0
    z = (x1 / n1 - x2 / n2) / spread
    return z, float(2 * norm.sf(abs(z)))


_METRIC_COUNTS = sa.text("""
SELECT variant, count(*) FILTER (WHERE status = 'sent') AS sent,
       count(*) FILTER (WHERE status = 'sent' AND opened_at IS NOT NULL) AS opened,
       count(*) FILTER (WHERE status = 'sent' AND clicked_at IS NOT NULL) AS clicked,
       count(*) FILTER (WHERE status = 'sent' AND converted_at IS NOT NULL) AS converted
FROM campaign_recipients WHERE campaign_id = :cid AND variant IS NOT NULL GROUP BY variant""")
_RELEASE = sa.text("""
UPDATE campaign_recipients SET variant = :winner, status = 'pending', due_at = greatest(due_at, now())
WHERE campaign_id = :cid AND status = 'held'""")


async def decide(conn, ctx, campaign_id: uuid.UUID) -> dict[str, Any]:
    """Decide an A/B test now: the two best variants by the metric compared with a z-test;
    the best wins when its p-value is under ``alpha``, else the first variant (the control)
    stays. The held remainder then gets the winner, when the test says so."""
    row = await conn.fetch_one(sa.select(campaigns).where(campaigns.c.id == campaign_id).with_for_update())
    if row is None or row["metric"] is None:
        raise not_found("A/B test")
    if row["decided_at"] is not None:
        return await view(conn, dict(row))
    if row["status"] == "scheduled":
        raise invalid("campaign_id", "the test has not started sending", status=409)
    names = [v["name"] for v in row["variants"]]
    counts = {r["variant"]: dict(r) for r in await conn.fetch_all(_METRIC_COUNTS, {"cid": campaign_id})}
    stats = [{"variant": n, "sent": counts.get(n, {}).get("sent", 0),
              "successes": counts.get(n, {}).get(row["metric"], 0)} for n in names]
    for s in stats:
        s["rate"] = s["successes"] / s["sent"] if s["sent"] else 0.0
    best, second = sorted(stats, key=lambda s: s["rate"], reverse=True)[:2]
    if best["sent"] and second["sent"]:
        z, p_value = z_test([best["successes"], second["successes"]], [best["sent"], second["sent"]])
    else:
        z, p_value = 0.0, 1.0
    significant = p_value < settings_of(ctx).alpha and best["rate"] > second["rate"]
    winner = best["variant"] if significant else names[0]
    decision = {"metric": row["metric"], "variants": stats, "z": z, "p_value": p_value, "significant": significant,
                "alpha": settings_of(ctx).alpha, "compared": [best["variant"], second["variant"]]}
    if row["remainder_to_winner"]:
        await conn.run(_RELEASE, {"winner": winner, "cid": campaign_id})
    updated = await conn.fetch_one(sa.update(campaigns).where(campaigns.c.id == campaign_id).values(
        winner=winner, decision=decision, decided_at=sa.func.now(), updated_at=sa.func.now()).returning(campaigns))
    await conn.run(_DONE, {"ids": [campaign_id]})
    return await view(conn, dict(updated))


async def decide_due(ctx, *, now: datetime | None = None) -> int:
    """Decide the A/B tests whose time has come (the ones already sending)."""
    now = now or utcnow()
    async with ctx.db.transaction() as conn:
        due = await conn.scalars(sa.select(campaigns.c.id).where(
            campaigns.c.decided_at.is_(None), campaigns.c.metric.is_not(None), campaigns.c.decide_at <= now,
            campaigns.c.status != "scheduled").limit(10).with_for_update(skip_locked=True))
        for campaign_id in due:
            await decide(conn, ctx, campaign_id)
    return len(due)


async def dispatch_due(ctx) -> int:
    """The poller: list due campaigns, decide due tests, hand a batch of recipients to comms."""
    return await list_due(ctx) + await decide_due(ctx) + await send_due(ctx)


# --- tracking: an open pixel and signed redirect links -------------------------------------------


def tracking_base(ctx) -> str:
    return (ctx.settings.public_url or "http://localhost:8000").rstrip("/") + "/v1/communications"


def sign(secret: str, *parts: str) -> str:
    digest = hmac.new(secret.encode(), ":".join(("campaigns", *parts)).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def verify(secret: str, signature: str, *parts: str) -> bool:
    return hmac.compare_digest(signature.encode(), sign(secret, *parts).encode())


_URL = re.compile(r"https?://[^\s\"'<>]+")


def tracked(item: dict[str, Any], recipient_id: uuid.UUID, secret: str, base: str) -> None:
    """Links of the message's text and HTML through our redirect; an open pixel in the HTML."""
    rid = recipient_id.hex

    def link(match: re.Match) -> str:
        url = match.group(0)
        if url.startswith(base):
            return url
        return f"{base}/c/{rid}?u={quote(url, safe='')}&s={sign(secret, 'click', rid, url)}"

    for part in ("body", "html"):
        if item.get(part):
            item[part] = _URL.sub(link, item[part])
    if item.get("html"):
        pixel = f'<img src="{base}/o/{rid}.gif?s={sign(secret, "open", rid)}" width="1" height="1" alt="">'
        html = item["html"]
        at = html.lower().rfind("</body>")
        item["html"] = html[:at] + pixel + html[at:] if at >= 0 else html + pixel


_OPENED = sa.update(recipients).where(recipients.c.id == sa.bindparam("rid"), recipients.c.status == "sent",
                                      recipients.c.opened_at.is_(None)).values(opened_at=sa.func.now())
_CLICKED = sa.text("""
UPDATE campaign_recipients SET clicked_at = coalesce(clicked_at, now()), opened_at = coalesce(opened_at, now())
WHERE id = :rid AND status = 'sent' AND clicked_at IS NULL""")


def recipient_of(rid: str) -> uuid.UUID:
    try:
        return uuid.UUID(hex=rid)
    except ValueError:
        raise not_found("Link") from None


async def opened(conn, ctx, rid: str, signature: str) -> None:
    if not verify(ctx.settings.signing_key, signature, "open", rid):
        raise not_found("Link")
    await conn.run(_OPENED, {"rid": recipient_of(rid)})


async def clicked(conn, ctx, rid: str, url: str, signature: str) -> str:
    """Record the first click (an open too: images may be blocked) and answer where to go."""
    if not verify(ctx.settings.signing_key, signature, "click", rid, url):
        raise not_found("Link")
    await conn.run(_CLICKED, {"rid": recipient_of(rid)})
    return url


# --- conversions and analytics ------------------------------------------------------------------


_CONVERTED = sa.text("""
UPDATE campaign_recipients AS r SET converted_at = now(), booking_id = :booking_id
FROM campaigns AS c
WHERE r.customer_id = :customer_id AND r.converted_at IS NULL AND r.status = 'sent' AND c.id = r.campaign_id
  AND r.queued_at >= now() - c.conversion_days * interval '1 day'""")


async def on_booking_created(conn, event, ctx) -> None:
    """A booking within a campaign's window after its message converts that recipient (once)."""
    payload = event["payload"]
    await conn.run(_CONVERTED, {"customer_id": uuid.UUID(str(payload["customer_id"])),
                                "booking_id": uuid.UUID(str(payload["booking_id"]))})


_COUNTS = sa.text("""
SELECT variant, count(*) AS recipients, count(*) FILTER (WHERE status = 'pending') AS pending,
       count(*) FILTER (WHERE status = 'held') AS held, count(*) FILTER (WHERE status = 'sent') AS queued,
       count(*) FILTER (WHERE status = 'refused') AS refused, count(opened_at) AS opened,
       count(clicked_at) AS clicked, count(converted_at) AS converted
FROM campaign_recipients WHERE campaign_id = :cid GROUP BY variant""")
_MESSAGES = sa.select(recipients.c.variant, recipients.c.message_id).where(
    recipients.c.campaign_id == sa.bindparam("cid"), recipients.c.message_id.is_not(None))
# what comms' status of a message counts as: a delivered or bounced message was sent first
DELIVERY = {"sent": ("sent", "delivered", "bounced"), "delivered": ("delivered",), "bounced": ("bounced",),
            "failed": ("failed",)}
COUNTED = ("recipients", "pending", "held", "queued", "refused", "sent", "delivered", "bounced", "failed",
           "opened", "clicked", "converted")


async def analytics(conn, ctx, campaign_id: uuid.UUID) -> dict[str, Any]:
    """Per campaign and variant: who is pending, handed over, refused; what comms says of
    delivery (sent, delivered, bounced, failed); opens, clicks and conversions."""
    row = await conn.fetch_one(sa.select(campaigns).where(campaigns.c.id == campaign_id))
    if row is None:
        raise not_found("Campaign")
    by_variant = {r["variant"]: {k: v for k, v in dict(r).items() if k != "variant"}
                  for r in await conn.fetch_all(_COUNTS, {"cid": campaign_id})}
    sent = await conn.fetch_all(_MESSAGES, {"cid": campaign_id})
    statuses = await ctx.service(Messaging, caller=CALLER).statuses(conn, [r["message_id"] for r in sent]) \
        if sent else {}
    for r in sent:
        counts = by_variant[r["variant"]]
        for name, states in DELIVERY.items():
            counts[name] = counts.get(name, 0) + (statuses.get(r["message_id"]) in states)
    total = {k: sum(c.get(k, 0) for c in by_variant.values()) for k in COUNTED}
    variants = [{"variant": name, **{k: c.get(k, 0) for k in COUNTED}}
                for name, c in sorted(by_variant.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))]
    return {"campaign_id": row["id"], "name": row["name"], "status": row["status"], **total,
            "variants": variants, "winner": row["winner"], "decision": row["decision"],
            "conversion_days": row["conversion_days"]}


async def export_sections(conn, customer_id: uuid.UUID) -> dict[str, list[dict[str, Any]]]:
    found = await conn.fetch_all(sa.select(recipients).where(recipients.c.customer_id == customer_id))
    return {"campaigns.recipients": [dict(r) for r in found]}


async def merge_customer(conn, source_id: uuid.UUID, target_id: uuid.UUID) -> None:
    """The duplicate's campaign history moves to the customer kept (where the kept one was not
    a recipient of the same campaign)."""
    taken = sa.select(recipients.c.campaign_id).where(recipients.c.customer_id == target_id)
    await conn.run(sa.update(recipients).where(recipients.c.customer_id == source_id,
                                               recipients.c.campaign_id.not_in(taken)).values(customer_id=target_id))
    await conn.run(sa.delete(recipients).where(recipients.c.customer_id == source_id))


async def erase_customer(conn, customer_id: uuid.UUID) -> None:
    """A customer erased leaves no trace of what they were sent, opened or clicked here
    (comms keeps its own message history by its own rules)."""
    await conn.run(sa.delete(recipients).where(recipients.c.customer_id == customer_id))
