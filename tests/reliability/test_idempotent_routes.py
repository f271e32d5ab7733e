"""Money and messages: every route marked ``@idempotent`` in the app (every installed plugin,
flags on), found by introspection, answers 20 parallel identical requests with one
``Idempotency-Key`` with one effect, one stored response and identical replies.

A route's request is made by a builder named in ``BUILDERS`` when it needs more than its
OpenAPI schema says (a free slot, a customer of its own); otherwise it is built from the
schema: examples and defaults first, then a value of the right type, with ``booking_id``
and ``customer_id`` (in the path or the body) pointing at a fresh booking and customer.
"""
from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable

import sqlalchemy as sa

from myhibachi.core.app import _leaf_routes
from myhibachi.core.db import metadata
from myhibachi.core.idempotency import HEADER
from myhibachi.core.models import idempotency_keys
from tests.core.conftest import booking_body
from tests.reliability.conftest import add_location, all_flags_on, installed_plugins, super_admin_and_customer

PARALLEL = 20
_days = itertools.cycle(range(30, 175))


class Caller:
    """What a builder may use: the client, a super-admin and a customer, and fresh resources."""

    def __init__(self, client, staff, customer, customer_id) -> None:
        self.client, self.staff, self.customer, self.customer_id = client, staff, customer, customer_id

    async def setup(self, spec: dict) -> None:
        """With the locations plugin installed a booking needs a location serving its zip code."""
        if "/v1/locations" in spec["paths"]:
            assert await add_location(self.client, self.staff) == 201

    async def booking(self) -> str:
        r = await self.client.post("/v1/bookings", json=booking_body(starts_at=_start()), headers=self.customer)
        assert r.status_code == 201, r.text
        return r.json()["id"]


def _start() -> str:
    day = datetime.now().date() + timedelta(days=next(_days))
    return datetime.combine(day, datetime.min.time()).replace(hour=17).isoformat()


Request = tuple[dict[str, str], dict[str, Any] | None, dict[str, str]]  # path params, body, headers


async def build_booking(caller: Caller, spec: dict, op: dict) -> Request:
    """A customer books a free evening of their own (the schema cannot know which slot is free)."""
    return {}, booking_body(starts_at=_start()), caller.customer


async def build_redemption(caller: Caller, spec: dict, op: dict) -> Request:
    """Points to spend first (a staff adjustment), then the customer redeems 100 on a booking."""
    path = f"/v1/customers/{caller.customer_id}/loyalty"
    r = await caller.client.post(path + "/earn", json={"points": 300, "reason": "reliability"}, headers=caller.staff)
    assert r.status_code == 201, r.text
    return {"customer_id": str(caller.customer_id)}, {"booking_id": await caller.booking(), "points": 100}, \
        caller.customer


async def build_adjustment(caller: Caller, spec: dict, op: dict) -> Request:
    """Staff add points to an account that exists already (its first points open it)."""
    path = f"/v1/customers/{caller.customer_id}/loyalty/earn"
    r = await caller.client.post(path, json={"points": 1, "reason": "opens the account"}, headers=caller.staff)
    assert r.status_code == 201, r.text
    return {"customer_id": str(caller.customer_id)}, {"points": 50, "reason": "reliability"}, caller.staff


async def build_refund(caller: Caller, spec: dict, op: dict) -> Request:
    """A captured deposit to refund part of (offline payments adapter)."""
    booking = await caller.booking()
    r = await caller.client.post("/v1/payments/deposits", json={"booking_id": booking},
                                 headers={**caller.customer, HEADER: str(uuid.uuid4())})
    assert r.status_code == 201, r.text
    deposit = r.json()["id"]
    r = await caller.client.put(f"/v1/payments/deposits/{deposit}/confirm", json={"payment_method": "pm_card_visa"},
                                headers=caller.customer)
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    return {"deposit_id": deposit}, {"amount_cents": 100, "reason": "reliability"}, caller.staff


async def build_balance(caller: Caller, spec: dict, op: dict) -> Request:
    """The customer pays the whole price of a fresh booking of theirs (offline payments adapter)."""
    return {}, {"booking_id": await caller.booking(), "payment_method": "pm_card_visa"}, caller.customer


async def contact_list(caller: Caller) -> str:
    r = await caller.client.post("/v1/admin/contact-lists", json={"name": "reliability"}, headers=caller.staff)
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def build_campaign(caller: Caller, spec: dict, op: dict) -> Request:
    """A message to an existing list (a list id from the schema names no list)."""
    return {}, {"name": "reliability", "list_id": await contact_list(caller), "channel": "sms",
                "text": "Tables free tonight"}, caller.staff


async def build_ab_test(caller: Caller, spec: dict, op: dict) -> Request:
    variants = [{"name": name, "share": 50, "text": f"Variant {name}"} for name in "AB"]
    return {}, {"name": "reliability", "list_id": await contact_list(caller), "channel": "sms",
                "variants": variants}, caller.staff


def _waiting(start: str) -> dict:
    return {"requested_date": start[:10], "time_zone": "America/New_York", "party_size": 6}


async def build_waitlist_entry(caller: Caller, spec: dict, op: dict) -> Request:
    """A customer waits for a day of their own (an entry per customer and day)."""
    return {}, _waiting(_start()), caller.customer


async def build_waitlist_conversion(caller: Caller, spec: dict, op: dict) -> Request:
    """A waiting entry, booked at a free evening of its day."""
    start = _start()
    r = await caller.client.post("/v1/bookings/waitlist", json=_waiting(start), headers=caller.customer)
    assert r.status_code == 201, r.text
    body = booking_body(starts_at=start)
    return {"entry_id": r.json()["id"]}, {"address": body["address"], "zip_code": body["zip_code"],
                                          "starts_at": start}, caller.customer


async def build_group(caller: Caller, spec: dict, op: dict) -> Request:
    """A group of two at one chef station of a free evening."""
    body = booking_body(starts_at=_start())
    seat = {"menu_choice": "chicken", "payer": "Ana"}
    return {}, {"starts_at": body["starts_at"], "time_zone": body["time_zone"], "address": body["address"],
                "zip_code": body["zip_code"], "menu": [{"code": "chicken", "label": "Chicken"}],
                "guests": [{"name": "Ana", **seat}, {"name": "Bo", **seat}],
                "billing": {"payers": [{"name": "Ana"}]}}, caller.customer


async def build_group_deposit(caller: Caller, spec: dict, op: dict) -> Request:
    """A fresh group's one payer (the customer) pays their share's deposit (offline payments adapter)."""
    _, body, headers = await build_group(caller, spec, op)
    r = await caller.client.post("/v1/bookings/groups", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return {"group_id": r.json()["id"]}, {"payer": "Ana", "payment_method": "pm_card_visa"}, caller.customer


async def build_voice_transfer(caller: Caller, spec: dict, op: dict) -> Request:
    """A live call (the provider's signed incoming webhook) to hand to a person."""
    ctx, sid = caller.client._transport.app.state.ctx, f"CA{uuid.uuid4().hex}"
    form = {"CallSid": sid, "From": "+12025550123", "To": "+15550100000"}
    signature = ctx.ports.telephony.sign_webhook("http://test/v1/ai/voice/incoming", form)
    r = await caller.client.post("/v1/ai/voice/incoming", data=form, headers={"X-Twilio-Signature": signature})
    assert r.status_code == 200, r.text
    async with ctx.db.read() as conn:
        call_id = await conn.scalar(sa.text("SELECT id FROM voice_calls WHERE provider_call_id = :sid"), {"sid": sid})
    return {"call_id": str(call_id)}, {"to": "+15550100777", "agent": "Sam"}, caller.staff


async def build_completion_of_booking(caller: Caller, spec: dict, op: dict) -> Request:
    """A confirmed booking (only a confirmed one completes)."""
    booking_id = await caller.booking()
    r = await caller.client.post(f"/v1/bookings/{booking_id}/confirm", headers=caller.staff)
    assert r.status_code == 200, r.text
    return {"booking_id": booking_id}, None, caller.staff


async def build_feedback(caller: Caller, spec: dict, op: dict) -> Request:
    """The customer's feedback on a booking of theirs that took place (one per booking)."""
    params, _, _ = await build_completion_of_booking(caller, spec, op)
    r = await caller.client.post(f"/v1/bookings/{params['booking_id']}/complete", headers=caller.staff)
    assert r.status_code == 200, r.text
    return ({"customer_id": str(caller.customer_id)},
            {"booking_id": params["booking_id"], "rating": 4, "text": "A lovely evening"}, caller.customer)


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def build_completion(caller: Caller, spec: dict, op: dict) -> Request:
    """A question never asked before (a cached answer would store no cache entry the second time)."""
    return {}, {"messages": [{"role": "user", "content": _unique("Do you cater")}]}, caller.staff


async def build_template(caller: Caller, spec: dict, op: dict) -> Request:
    """A new template key (a known one would be saved as its next version)."""
    return {}, {"key": _unique("reliability"), "user": "Answer {text}"}, caller.staff


def _examples() -> list[dict[str, str]]:
    return [{"text": f"{word} question {i}", "label": word} for word in ("booking", "pricing") for i in range(2)]


async def build_training(caller: Caller, spec: dict, op: dict) -> Request:
    return {}, {"name": "reliability", "examples": _examples(), "test_size": 0.5}, caller.staff


async def _trained_model(caller: Caller) -> str:
    """An intent classifier trained by the worker's poller (offline embeddings)."""
    r = await caller.client.post("/v1/ai/models/train", json={"name": "reliability", "examples": _examples(),
                                                              "test_size": 0.5}, headers=caller.staff)
    assert r.status_code == 202, r.text
    ctx = caller.client._transport.app.state.ctx
    while await ctx.extra["pollers"]["ml_ops.training"](ctx):
        pass
    return r.json()["id"]


async def build_evaluation(caller: Caller, spec: dict, op: dict) -> Request:
    return {"model_id": await _trained_model(caller)}, None, caller.staff


async def build_prediction(caller: Caller, spec: dict, op: dict) -> Request:
    return {"model_id": await _trained_model(caller)}, {"texts": ["Can I book a chef?"]}, caller.staff


async def build_batch(caller: Caller, spec: dict, op: dict) -> Request:
    """Messages to answer through a template saved first."""
    template = (await build_template(caller, spec, op))[1]
    r = await caller.client.post("/v1/ai/templates", json=template, headers=caller.staff)
    assert r.status_code == 201, r.text
    return {}, {"template": template["key"], "items": [{"text": "Do you cater?"}]}, caller.staff


async def build_fine_tuning(caller: Caller, spec: dict, op: dict) -> Request:
    """Chat examples for a hosted model: the app's catalogue gains one (the installed plugins'
    settings hold only the offline engine); the worker, which would call OpenAI, does not run here."""
    from myhibachi.plugins.ml_ops.service import orchestrator_of

    orchestrator_of(caller.client._transport.app.state.ctx).catalogue.adapters.setdefault("gpt-4o-mini", "openai")
    chats = [{"messages": [{"role": "user", "content": f"{10 + i} guests?"}, {"role": "assistant", "content": "Yes."}]}
             for i in range(10)]
    return {}, {"name": "reliability", "base_model": "gpt-4o-mini", "examples": chats}, caller.staff


async def build_series(caller: Caller, spec: dict, op: dict) -> Request:
    """A customer's weekly series of two evenings from a free one (any taken later is skipped)."""
    start = _start()
    body = booking_body(starts_at=start)
    return {}, {"recurrence_rule": "FREQ=WEEKLY;COUNT=2", "start_date": start[:10], "local_time": start[11:16],
                "time_zone": body["time_zone"], "adults": 6, "address": body["address"], "zip_code": body["zip_code"],
                "skip_conflicts": True}, caller.customer


async def build_location(caller: Caller, spec: dict, op: dict) -> Request:
    """A location of its own zip code (the walk's bookings stay with the one serving 12345)."""
    zip_code = f"{next(_zips):05d}"
    return {}, {"name": f"Branch {zip_code}", "address": "2 Grill Ave", "city": "Shelbyville", "state": "NY",
                "zip_code": zip_code, "time_zone": "America/New_York", "capacity": 10,
                "service_area": {"zip_codes": [zip_code]}}, caller.staff


_zips = itertools.count(60001)


# (method, path template) -> builder. A route absent from here is built from its schema.
BUILDERS: dict[tuple[str, str], Callable[[Caller, dict, dict], Awaitable[Request]]] = {
    ("POST", "/v1/bookings"): build_booking,
    ("POST", "/v1/customers/{customer_id}/loyalty/redeem"): build_redemption,
    ("POST", "/v1/customers/{customer_id}/loyalty/earn"): build_adjustment,
    ("POST", "/v1/payments/deposits/{deposit_id}/refunds"): build_refund,
    ("POST", "/v1/payments/balance"): build_balance,
    ("POST", "/v1/communications/schedule"): build_campaign,
    ("POST", "/v1/communications/ab-test"): build_ab_test,
    ("POST", "/v1/bookings/waitlist"): build_waitlist_entry,
    ("POST", "/v1/bookings/waitlist/{entry_id}/convert"): build_waitlist_conversion,
    ("POST", "/v1/bookings/{booking_id}/complete"): build_completion_of_booking,
    ("POST", "/v1/customers/{customer_id}/feedback"): build_feedback,
    ("POST", "/v1/bookings/groups"): build_group,
    ("POST", "/v1/bookings/groups/{group_id}/deposits"): build_group_deposit,
    ("POST", "/v1/ai/voice/calls/{call_id}/transfer"): build_voice_transfer,
    ("POST", "/v1/ai/completions"): build_completion,
    ("POST", "/v1/ai/templates"): build_template,
    ("POST", "/v1/ai/models/train"): build_training,
    ("POST", "/v1/ai/models/{model_id}/evaluate"): build_evaluation,
    ("POST", "/v1/ai/models/{model_id}/predict"): build_prediction,
    ("POST", "/v1/ai/batches"): build_batch,
    ("POST", "/v1/ai/models/fine-tune"): build_fine_tuning,
    ("POST", "/v1/bookings/recurring"): build_series,
    ("POST", "/v1/locations"): build_location,
}


def deref(spec: dict, schema: dict) -> dict:
    while isinstance(schema, dict) and "$ref" in schema:
        node = spec
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


async def value_for(caller: Caller, spec: dict, name: str, schema: dict) -> Any:
    schema = deref(spec, schema)
    if name == "booking_id":
        return await caller.booking()
    if name == "customer_id":
        return str(caller.customer_id)
    for key in ("example", "default", "const"):
        if key in schema and schema[key] is not None:
            return schema[key]
    if schema.get("examples"):
        return schema["examples"][0]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = [o for o in schema.get(key, []) if deref(spec, o).get("type") != "null"]
        if options:
            return await value_for(caller, spec, name, options[0])
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        # required fields, and the references to a fresh booking or customer the test can fill
        wanted = [k for k in props if k in schema.get("required", []) or k in ("booking_id", "customer_id")]
        return {k: await value_for(caller, spec, k, props[k]) for k in wanted}
    if kind == "array":
        return [await value_for(caller, spec, name, schema.get("items", {}))] * schema.get("minItems", 0)
    if kind == "integer":
        return max(schema.get("minimum", 1), 1)
    if kind == "number":
        return schema.get("minimum", 1)
    if kind == "boolean":
        return True
    fmt = schema.get("format")
    if fmt == "uuid":
        return str(uuid.uuid4())
    if fmt == "date-time":
        return (datetime.now(timezone.utc) + timedelta(days=next(_days))).isoformat()
    if fmt == "date":
        return (datetime.now().date() + timedelta(days=next(_days))).isoformat()
    if fmt == "email":
        return "idempotent@example.com"
    return "x" * max(schema.get("minLength", 1), 1)


async def build_from_schema(caller: Caller, spec: dict, op: dict) -> Request:
    params = {p["name"]: await value_for(caller, spec, p["name"], p.get("schema", {}))
              for p in op.get("parameters", []) if p["in"] == "path"}
    content = op.get("requestBody", {}).get("content", {}).get("application/json")
    body = await value_for(caller, spec, "body", content["schema"]) if content else None
    return params, body, caller.staff


def idempotent_operations(app, spec: dict) -> list[tuple[str, str]]:
    """(method, path) of every operation whose OpenAPI document takes an Idempotency-Key,
    checked against the routes marked @idempotent (included routers keep their own paths)."""
    marked = sorted((m, r.path) for r in _leaf_routes(app.router)
                    if hasattr(getattr(r, "endpoint", None), "idempotent") for m in r.methods)
    documented = sorted((m.upper(), path) for path, ops in spec["paths"].items() for m, op in ops.items()
                        if any(p["in"] == "header" and p["name"] == HEADER for p in op.get("parameters", [])))
    assert len(marked) == len(documented) and all(p.endswith(q) for (_, p), (_, q) in zip(documented, marked)), (
        marked, documented)
    return documented


async def row_counts(database) -> dict[str, int]:
    async with database.read() as conn:
        names = set(await conn.scalars(sa.text(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")))
        tables = [t.name for t in metadata.sorted_tables if t.name in names and t.name != "idempotency_keys"]
        query = " UNION ALL ".join(f"SELECT '{n}' AS name, count(*) AS n FROM \"{n}\"" for n in tables)
        return {r["name"]: r["n"] for r in await conn.fetch_all(query)}


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {t: after[t] - before[t] for t in after if after[t] != before[t]}


async def retrying(client, method: str, url: str, body, headers) -> Any:
    """A client that honours 409 request-in-progress by retrying (sooner than Retry-After asks)."""
    for _ in range(200):
        r = await client.request(method, url, json=body, headers=headers)
        if r.status_code != 409 or not r.json().get("type", "").endswith("/idempotency-in-progress"):
            return r
        await asyncio.sleep(0.05)
    raise AssertionError(f"{method} {url} stayed in progress")


async def test_every_idempotent_route_has_one_effect_for_twenty_parallel_retries(make_app, client_of, database):
    """Seen failing when the advisory lock on the key was dropped (every one of the 20 parallel
    requests booked: 20 bookings for one key) and when ``@idempotent`` was taken off the
    booking route (the walk found no idempotent route and said so)."""
    app = make_app(installed_plugins(), flags=all_flags_on(), rate_limit_ip=0, rate_limit_principal=0)
    staff, customer, customer_id = await super_admin_and_customer(database, app.state.ctx)
    async with client_of(app) as client:
        spec = (await client.get("/openapi.json")).json()
        caller = Caller(client, staff, customer, customer_id)
        await caller.setup(spec)
        operations = idempotent_operations(app, spec)
        assert ("POST", "/v1/bookings") in operations, operations
        for method, path in operations:
            op = spec["paths"][path][method.lower()]
            build = BUILDERS.get((method, path), build_from_schema)

            params, body, headers = await build(caller, spec, op)
            before = await row_counts(database)
            single = await client.request(method, path.format(**params), json=body,
                                          headers={**headers, HEADER: str(uuid.uuid4())})
            assert 200 <= single.status_code < 300, (method, path, single.text)
            one_effect = delta(before, await row_counts(database))

            params, body, headers = await build(caller, spec, op)
            key = str(uuid.uuid4())
            before = await row_counts(database)
            replies = await asyncio.gather(*[retrying(client, method, path.format(**params), body,
                                                      {**headers, HEADER: key}) for _ in range(PARALLEL)])
            assert delta(before, await row_counts(database)) == one_effect, (method, path)
            first = replies[0]
            assert all((r.status_code, r.json()) == (single.status_code, first.json()) for r in replies), path
            assert sum("idempotent-replayed" not in r.headers for r in replies) == 1, path
            async with database.read() as conn:
                stored = await conn.scalar(sa.select(sa.func.count()).where(idempotency_keys.c.key == key))
            assert stored == 1, path
