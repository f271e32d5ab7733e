"""One test per hook of core/hookspecs.py (the meta-test asks for ``test_hook_<name>``).

The start-up hooks are tested through ``create_app``; the extension points of the booking
flow through the relay (``ctx.hooks(context).<hook>(...)``) with the plugin's flag on and
off (the booking flow's own tests use them in place).
"""
from __future__ import annotations

import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
import typer
from fastapi import Depends
from pydantic import BaseModel
from typer.testing import CliRunner

from myhibachi.core import Plugin, events, hookimpl, migrate
from tests.core.conftest import sign_up
from myhibachi.core.auth import Principal, issue_access_token, require
from myhibachi.core.hookspecs import BookingView, Refusal, SlotLimit
from myhibachi.core.models import bookings, customers
from myhibachi.core.plugins import PluginManager, discover
from tests.core.plugin_helpers import fake_distribution, site  # noqa: F401

ON, OFF = {"FEATURE_FLAG_HOOKED": True}, {"FEATURE_FLAG_HOOKED": False}
WHO = {"userId": "customer-1"}


class Hooked(Plugin):
    name = "hooked"
    version = "1.0.0"
    flag = "FEATURE_FLAG_HOOKED"
    permissions = ("hooked.read",)


class Answer(BaseModel):
    answer: str


async def test_hook_migration_location(tmp_path):
    tip_jar = discover()["tip_jar"]()
    location = Path(tip_jar.migration_location())
    assert location.name == "migrations" and any(location.glob("*.py"))
    assert Hooked().migration_location() is None  # this test module has no migrations folder
    manager = PluginManager()
    manager.load([tip_jar, Hooked()])
    found = migrate.locations(manager)
    assert found["tip_jar"] == str(location.resolve()) and "hooked" not in found and "core" in found


class Routed(Hooked):
    @hookimpl
    def register_routes(self, router, ctx):
        @router.get("/hooked/answer", response_model=Answer)
        async def answer() -> Answer:
            return Answer(answer=f"router of {self.name} under /v1")


async def test_hook_register_routes(make_app, client_of):
    app = make_app([Routed()], flags=ON)
    async with client_of(app) as c:
        on = await c.get("/v1/hooked/answer")
        spec = (await c.get("/openapi.json")).json()
    assert on.json() == {"answer": "router of hooked under /v1"}
    assert spec["paths"]["/v1/hooked/answer"]["get"]["tags"] == ["hooked"]
    async with client_of(make_app([Routed()], flags=OFF)) as c:
        off = await c.get("/v1/hooked/answer")
    assert off.status_code == 404 and off.json()["flag"] == "FEATURE_FLAG_HOOKED"


class RoutedTwice(Hooked):
    @hookimpl
    def register_routes(self, router, ctx):
        from fastapi import APIRouter

        own = APIRouter()

        @own.get("/hooked/elsewhere", response_model=Answer)
        async def elsewhere() -> Answer:
            return Answer(answer="from an included router")

        router.include_router(own)


async def test_hook_register_routes_gates_routes_of_an_included_router_too(make_app, client_of):
    async with client_of(make_app([RoutedTwice()], flags=ON)) as c:
        assert (await c.get("/v1/hooked/elsewhere")).json() == {"answer": "from an included router"}
    async with client_of(make_app([RoutedTwice()], flags=OFF)) as c:
        off = await c.get("/v1/hooked/elsewhere")
    assert off.status_code == 404 and off.json()["flag"] == "FEATURE_FLAG_HOOKED"


class Tasked(Hooked):
    @hookimpl
    def register_tasks(self, huey, ctx):
        @huey.task(name="hooked.double")
        def double(n):
            return n * 2 + (ctx is not None)

        self.task = double


async def test_hook_register_tasks(make_app):
    plugin = Tasked()
    app = make_app([plugin], flags=OFF)  # start-up hooks run whatever the flag
    huey = app.state.ctx.huey
    assert any(name.endswith("hooked.double") for name in huey._registry._registry)
    huey.immediate = True
    try:
        assert plugin.task(20).get() == 41
    finally:
        huey.immediate = False


class Subscribed(Hooked):
    seen: list = []

    @hookimpl
    def register_event_handlers(self):
        async def on_cancelled(conn, event, ctx):
            self.seen.append((event["name"], event["payload"]["booking_id"]))

        return {"booking.cancelled": [on_cancelled]}


class BadSubscriber(Hooked):
    name = "bad_subscriber"

    @hookimpl
    def register_event_handlers(self):
        async def handler(conn, event, ctx):
            pass

        return {"booking.exploded": [handler]}


async def test_hook_register_event_handlers(make_app):
    plugin = Subscribed()
    plugin.seen = []
    app = make_app([plugin, BadSubscriber()], flags=ON, strict_plugins=False)
    ctx = app.state.ctx
    assert "event 'booking.exploded', which no installed plugin declares" in ctx.plugins.records["bad_subscriber"].reason
    async with ctx.db.transaction() as conn:
        await events.publish(conn, ctx, "booking.cancelled", {"booking_id": "b1", "reason": "rain"}, actor="c1")
    assert await events.deliver_due(ctx) == 1
    assert plugin.seen == [("booking.cancelled", "b1")]
    assert await events.deliver_due(ctx) == 0  # delivered once


class Permitted(Hooked):
    @hookimpl
    def register_permissions(self):
        return ["hooked.write"]


async def test_hook_register_permissions(make_app):
    ctx = make_app([Permitted()]).state.ctx
    assert {"hooked.write", "plugins.read"} <= ctx.permissions
    plain = make_app([Hooked()]).state.ctx  # the default implementation returns the manifest's
    assert "hooked.read" in plain.permissions


CLI_PLUGIN = '''
import typer
from myhibachi.core import Plugin, hookimpl


class Griddle(Plugin):
    name = "griddle"
    version = "1.0.0"

    @hookimpl
    def register_cli(self, app):
        griddle = typer.Typer(help="The griddle.")

        @griddle.command()
        def heat(degrees: int):
            print(f"griddle at {degrees}")

        app.add_typer(griddle, name="griddle")


plugin = Griddle()
'''


def test_hook_register_cli(site, monkeypatch, tmp_path, capsys):
    from myhibachi.core import cli

    fake_distribution(site, "griddle", CLI_PLUGIN)
    fresh = typer.Typer()
    monkeypatch.setattr(cli, "app", fresh)
    monkeypatch.setenv("MYHIBACHI_HOME", str(tmp_path))
    monkeypatch.setenv("MYHIBACHI_PLUGINS", "griddle")
    monkeypatch.setattr(sys, "argv", ["myhibachi", "griddle", "heat", "260"])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 0
    assert "griddle at 260" in capsys.readouterr().out
    assert CliRunner().invoke(fresh, ["griddle", "heat", "x"]).exit_code == 2


class Booking(Hooked):
    @hookimpl
    async def validate_booking(self, booking, conn, ctx):
        if booking.party_size > 40:
            return Refusal("parties over 40 need two chefs")

    @hookimpl
    def price_booking(self, booking, lines, conn, ctx):
        return [{"code": "travel", "label": "Travel fee", "amount_cents": 2500}]

    @hookimpl
    def booking_query_filters(self, params, ctx):
        if "min_party" in params:
            return [bookings.c.party_size >= int(params["min_party"])]

    @hookimpl
    def booking_limits(self, booking, starts, conn, ctx):
        return SlotLimit("hooked", [3 if start.hour % 2 == 0 else Refusal("odd hours are closed") for start in starts])

    @hookimpl
    async def may_send(self, customer_id, channel, kind, conn, ctx):
        if kind == "marketing":
            return "no marketing consent"


def draft(party_size: int = 8) -> BookingView:
    start = datetime(2027, 5, 1, 16, tzinfo=timezone.utc)
    return BookingView(id=None, customer_id=None, status="pending", starts_at=start, ends_at=None, local_start=None,
                       time_zone="UTC", duration_minutes=120, adults=party_size, children=0, party_size=party_size)


async def flag_on_and_off(make_app, hook, **kwargs):
    """The hook called as an attribute of the relay, with the plugin's flag on, then off."""
    results = []
    for flags in (ON, OFF):
        ctx = make_app([Booking()], flags=flags).state.ctx
        results.append(await getattr(ctx.hooks(WHO), hook)(**kwargs))
    return results


async def test_hook_validate_booking(make_app):
    on, off = await flag_on_and_off(make_app, "validate_booking", booking=draft(50), conn=None)
    assert (on, off) == ([Refusal("parties over 40 need two chefs")], [])
    small, _ = await flag_on_and_off(make_app, "validate_booking", booking=draft(8), conn=None)
    assert small == []


async def test_hook_price_booking(make_app):
    on, off = await flag_on_and_off(make_app, "price_booking", booking=draft(), lines=(), conn=None)
    assert on == [[{"code": "travel", "label": "Travel fee", "amount_cents": 2500}]] and off == []


async def test_hook_booking_query_filters(make_app):
    on, off = await flag_on_and_off(make_app, "booking_query_filters", params={"min_party": "12"})
    assert off == [] and len(on) == 1
    query = sa.select(bookings.c.id).where(*on[0])
    assert "bookings.party_size >= " in str(query)


async def test_hook_booking_limits_called_through_the_relay(make_app):
    starts = (datetime(2027, 5, 1, 16, tzinfo=timezone.utc), datetime(2027, 5, 1, 17, tzinfo=timezone.utc))
    on, off = await flag_on_and_off(make_app, "booking_limits", booking=draft(), starts=starts, conn=None)
    assert (on, off) == ([SlotLimit("hooked", [3, Refusal("odd hours are closed")])], [])


async def test_hook_may_send(make_app):
    """Consent binds whatever the plugin's flag: seen failing when may_send was flag-filtered."""
    customer = uuid.uuid4()
    on, off = await flag_on_and_off(make_app, "may_send", customer_id=customer, channel="sms", kind="marketing",
                                    conn=None)
    assert (on, off) == (["no marketing consent"], ["no marketing consent"])
    ok, _ = await flag_on_and_off(make_app, "may_send", customer_id=customer, channel="sms", kind="transactional",
                                  conn=None)
    assert ok == []


async def test_relay_refuses_a_hook_that_does_not_exist(make_app):
    with pytest.raises(AttributeError, match="no hook named 'validate_bookings'"):
        make_app([Booking()], flags=ON).state.ctx.hooks(WHO).validate_bookings


class AdminSessions(Hooked):
    revoked: set = set()

    @hookimpl
    def resolve_principal(self, claims, ctx):
        if claims["kind"] == "admin" and claims["sid"] not in self.revoked:
            return Principal("admin", claims["sub"], frozenset({"hooked.read"}), claims["sid"])

    @hookimpl
    def register_routes(self, router, ctx):
        @router.get("/hooked/admin", response_model=Answer)
        async def who(principal: Principal = Depends(require("hooked.read"))) -> Answer:
            return Answer(answer=principal.id)


async def test_hook_resolve_principal(make_app, client_of):
    plugin = AdminSessions()
    plugin.revoked = {"old-session"}
    app = make_app([plugin], flags=ON)
    settings = app.state.ctx.settings

    def bearer(session):
        token, _ = issue_access_token(settings, subject="admin-7", kind="admin", session=session)
        return {"Authorization": f"Bearer {token}"}

    async with client_of(app) as c:
        ok = await c.get("/v1/hooked/admin", headers=bearer("live-session"))
        revoked = await c.get("/v1/hooked/admin", headers=bearer("old-session"))
    assert ok.status_code == 200 and ok.json() == {"answer": "admin-7"}
    assert revoked.status_code == 401
    ctx = make_app([plugin], flags=OFF).state.ctx
    claims = {"sub": "admin-7", "kind": "admin", "sid": "live-session"}
    assert await ctx.hooks().resolve_principal(claims=claims) is None  # firstresult: one answer, not a list


class Tagging(Plugin):
    """Adds a typed ``tagging`` field to create and to the booking view, filled from the rows."""

    name = "tagging"
    version = "1.0.0"

    class Tag(BaseModel):
        tag: str | None = None
        size: int | None = None

    def __init__(self) -> None:
        self.calls = []

    @hookimpl
    def register_fields(self):
        return {"booking_create": self.Tag, "booking": self.Tag}

    @hookimpl
    def booking_fields(self, rows):
        self.calls.append(len(rows))
        return {self.name: [{"size": row["party_size"]} for row in rows]}


class BadFields(Plugin):
    name = "bad_fields"
    version = "1.0.0"

    @hookimpl
    def register_fields(self):
        return {"customer_view": Tagging.Tag}


class BadColumns(Plugin):
    name = "bad_columns"
    version = "1.0.0"

    @hookimpl
    def register_fields(self):
        return {"customer": Tagging.Tag, "customer_columns": [customers.c.status.label("status")]}


async def test_hook_register_fields(make_app, client_of, add_customer):
    """A plugin's model becomes a typed field named after it on the models it names (the
    OpenAPI document says so and the hooks get it validated); an unknown kind, or a customer
    column not labelled in the plugin's name (it would shadow the core's), leaves the plugin
    out at start-up."""
    from tests.core.conftest import booking_body

    app = make_app([Tagging(), BadFields(), BadColumns()], strict_plugins=False)
    records = app.state.ctx.plugins.records
    assert records["bad_fields"].state == "failed" and "not extendable" in records["bad_fields"].reason
    assert records["bad_columns"].state == "failed" and "'bad_columns.<name>'" in records["bad_columns"].reason
    assert "bad_columns" not in app.state.ctx.models.owners["customer"]
    _, auth = await add_customer()
    async with client_of(app, headers=auth) as c:
        schemas = (await c.get("/openapi.json")).json()["components"]["schemas"]
        bad = await c.post("/v1/bookings", json=booking_body(tagging={"size": "big"}))
        made = await c.post("/v1/bookings", json=booking_body(tagging={"tag": "vip"}))
    assert "tagging" in schemas["BookingCreate"]["properties"] and "tagging" in schemas["Booking"]["properties"]
    assert "tagging" not in schemas["QuoteRequest"]["properties"]
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "body.tagging.size"
    assert made.status_code == 201, made.text


async def test_hook_booking_fields(make_app, client_of, add_customer):
    """The booking view's plugin fields are filled once per response for all of its rows."""
    from tests.core.conftest import booking_body, local_start

    plugin = Tagging()
    app = make_app([plugin])
    _, auth = await add_customer()
    async with client_of(app, headers=auth) as c:
        for day in (7, 8, 9):
            assert (await c.post("/v1/bookings", json=booking_body(starts_at=local_start(day)))).status_code == 201
        plugin.calls.clear()
        listed = (await c.get("/v1/bookings")).json()["items"]
    assert [b["tagging"] for b in listed] == [{"tag": None, "size": 10}] * 3
    assert plugin.calls == [3]


class Initials(Plugin):
    """Adds a typed ``initials`` field to the customer view, filled from the rows: the name
    the core reads, and the count of the customer's bookings, a column of its own."""

    name = "initials"
    version = "1.0.0"

    class Initial(BaseModel):
        letter: str
        asked_by: str
        bookings: int

    def __init__(self) -> None:
        self.calls = []

    @hookimpl
    def register_fields(self):
        count = sa.select(sa.func.count()).where(bookings.c.customer_id == customers.c.id).scalar_subquery()
        return {"customer": self.Initial, "customer_columns": [count.label("initials.bookings")]}

    @hookimpl
    def customer_fields(self, customers, principal):
        self.calls.append(len(customers))
        return {self.name: [{"letter": c["name"][0], "asked_by": principal.kind, "bookings": c["initials.bookings"]}
                            for c in customers]}


async def test_hook_customer_fields(make_app, client_of, customer, staff, monkeypatch):
    """The customer view's plugin fields are typed in OpenAPI and filled once per response,
    for all of its customers, on every route that answers a customer, from the columns the
    core reads with the customer: ``/v1/customers/me`` stays one statement, as without
    plugins (broken on purpose by reading the plugin's columns with a statement of their
    own: two)."""
    from myhibachi.core import db
    from tests.core.conftest import booking_body

    plugin = Initials()
    app = make_app([plugin])
    reader = await staff(["customers.read", "customers.write"])
    statements = []
    compile_ = db._compile

    from myhibachi.core.auth import _family_revoked

    def counted(stmt, params):
        if stmt is not _family_revoked():  # the session check: the shared cache's, once the app runs
            statements.append(str(stmt))
        return compile_(stmt, params)

    async with client_of(app) as c:
        schemas = (await c.get("/openapi.json")).json()["components"]["schemas"]
        signed_up = await sign_up(c, app, {"email": "zoe@example.com", "password": "long enough pw",
                                           "name": "Zoe Cook"})
        zoe = {"Authorization": f"Bearer {signed_up['access_token']}"}
        monkeypatch.setattr(db, "_compile", counted)
        me = (await c.get("/v1/customers/me", headers=zoe)).json()
        monkeypatch.undo()
        assert (await c.post("/v1/bookings", json=booking_body(), headers=zoe)).status_code == 201
        await customer(name="Abe Cook")
        plugin.calls.clear()
        listed = (await c.get("/v1/admin/customers", headers=reader)).json()["items"]
        changed = (await c.patch(f"/v1/admin/customers/{me['id']}", json={"name": "Yara Cook"}, headers=reader)).json()
    assert "initials" in schemas["Customer"]["properties"] and schemas["CustomerPage"]["properties"]["items"]
    assert signed_up["customer"]["initials"] == me["initials"] == {"letter": "Z", "asked_by": "customer", "bookings": 0}
    assert len(statements) == 1, statements
    assert [item["initials"] for item in listed] == [{"letter": "A", "asked_by": "api_key", "bookings": 0},
                                                     {"letter": "Z", "asked_by": "api_key", "bookings": 1}]
    assert plugin.calls == [2, 1]
    assert changed["initials"] == {"letter": "Y", "asked_by": "api_key", "bookings": 1}


async def test_hook_rotate_keys(make_app, customer, rotate_pii):
    """``myhibachi admin rotate-pii`` calls every loaded plugin's ``rotate_keys``, its flag off
    too, in the transaction that has just sealed the core's rows again, and counts what they
    sealed; a plugin that raises leaves every row under the key it had. Broken on purpose by
    gating the hook on flags: red (the plugin is not called)."""
    class Rotates(Hooked):
        seen: list = []

        @hookimpl
        async def rotate_keys(self, batch, conn, ctx):
            self.seen.append((batch, await conn.scalar(sa.select(customers.c.key_id))))
            if len(self.seen) > 1:
                raise RuntimeError("the second rotation fails half-way")
            return 7

    plugin = Rotates()
    app = make_app([plugin], flags=OFF)
    await customer(name="Ana Cook")
    again, counts = await rotate_pii(app, key_id="k2")
    assert counts == {"customer(s)": 1, "booking(s)": 0, "webhook event(s)": 0, "plugin row(s)": 7}
    assert plugin.seen == [(500, "k2")]
    with pytest.raises(RuntimeError, match="half-way"):
        await rotate_pii(again, key_id="k3")
    async with again.state.ctx.db.read() as conn:
        assert await conn.scalar(sa.select(customers.c.key_id)) == "k2"
