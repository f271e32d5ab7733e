"""The plugin platform: discovery, selection, refusals, strict mode, tracing, flag-aware calls."""
from __future__ import annotations

import json
import logging

from typing import Protocol, runtime_checkable

import pytest
from fastapi import APIRouter
from pydantic import BaseModel
from typer.testing import CliRunner

from myhibachi.core import Plugin, hookimpl
from myhibachi.core.app import create_app
from myhibachi.core.auth import create_api_key
from myhibachi.core.flags import Flags, TogglesFile
from myhibachi.core.plugins import PluginError, PluginManager, discover, load_installed
from myhibachi.core.services import ServiceError
from myhibachi.core.settings import Settings
from tests.core.plugin_helpers import fake_distribution, site  # noqa: F401


class Value(BaseModel):
    value: int


def routed(name: str, flag: str | None = None, **manifest):
    """A plugin class with one route ``GET /v1/<name>`` answering ``{"value": 1}``."""

    def register_routes(self, router: APIRouter, ctx):
        @router.get(f"/{name}", response_model=Value)
        async def get() -> Value:
            return Value(value=1)

    attrs = {"name": name, "version": "1.0.0", "flag": flag, "register_routes": hookimpl(register_routes),
             **manifest}
    return type(f"{name.title()}Plugin", (Plugin,), attrs)


GOOD_SOURCE = '''
from myhibachi.core import Plugin


class Hello(Plugin):
    name = "hello"
    version = "2.1.0"
    flag = "FEATURE_FLAG_HELLO"
    features = {"9.9": ["test_hello"]}


plugin = Hello()
'''

# A third party's plugin, as its own distribution (the tip jar example need not be installed).
SAKE_SOURCE = GOOD_SOURCE.replace('"hello"', '"sake"').replace('"2.1.0"', '"0.1.0"').replace(
    "FEATURE_FLAG_HELLO", "FEATURE_FLAG_SAKE").replace('{"9.9": ["test_hello"]}', "{}")


# --- discovery ---------------------------------------------------------------------------


def test_discovery_through_entry_points_includes_third_party_plugins(site, home):
    fake_distribution(site, "hello", GOOD_SOURCE)
    sake_module = fake_distribution(site, "sake", SAKE_SOURCE)
    found = discover()
    assert {"sake", "hello", "audit"} <= set(found)
    manager = load_installed(Settings(home=home), strict=True)
    sake, hello = manager.records["sake"], manager.records["hello"]
    assert sake.state == "enabled" and sake.source == sake_module  # its own package, not myhibachi.*
    assert sake.flag == "FEATURE_FLAG_SAKE"
    assert hello.state == "enabled" and hello.version == "2.1.0" and hello.features == {"9.9": ["test_hello"]}


def test_allow_list_and_disabled_list_leave_plugins_not_selected(site, home, monkeypatch):
    fake_distribution(site, "hello", GOOD_SOURCE)
    fake_distribution(site, "greeter", GOOD_SOURCE.replace('"hello"', '"greeter"').replace(
        "Hello(Plugin):", "Greeter(Plugin):\n    requires = ('hello',)").replace("Hello()", "Greeter()"))
    fake_distribution(site, "sake", SAKE_SOURCE)

    monkeypatch.setenv("MYHIBACHI_PLUGINS", "hello, sake")
    manager = load_installed(Settings(home=home))
    states = {n: r.state for n, r in manager.records.items()}
    assert states["hello"] == "enabled" and states["sake"] == "enabled"
    assert states["greeter"] == "not selected" and manager.get("greeter") is None

    monkeypatch.delenv("MYHIBACHI_PLUGINS")
    monkeypatch.setenv("MYHIBACHI_DISABLED_PLUGINS", "hello")
    manager = load_installed(Settings(home=home))
    assert manager.records["hello"].state == "not selected"
    greeter = manager.records["greeter"]
    assert greeter.state == "failed" and greeter.reason == "requires plugin hello, which is not selected"
    assert manager.records["sake"].state == "enabled"


async def test_missing_requirement_and_cycle_are_refused_naming_the_plugins(make_app, client_of):
    plugins = [
        routed("lonely", requires=("ghost",))(),
        routed("chicken", requires=("egg",))(),
        routed("egg", requires=("chicken",))(),
        routed("omelette", requires=("egg",))(),
        routed("rice")(),
        routed("fried_rice", requires=("rice",))(),
    ]
    manager = PluginManager()
    manager.load(plugins)
    reasons = {n: r.reason for n, r in manager.records.items() if r.state == "failed"}
    assert reasons["lonely"] == "requires plugin ghost, which is not installed"
    assert "chicken" in reasons["egg"] and "egg" in reasons["egg"] and reasons["egg"].startswith("requirement cycle")
    assert reasons["chicken"] == reasons["egg"]
    assert reasons["omelette"] == "requires plugin egg, which was refused"
    assert sorted(p.name for p in manager.plugins) == ["fried_rice", "rice"]

    with pytest.raises(PluginError, match="chicken|egg|lonely"):
        PluginManager().load(plugins, strict=True)

    app = make_app(plugins, strict_plugins=False)
    async with client_of(app) as c:
        assert (await c.get("/v1/fried_rice")).json() == {"value": 1}
        refused = await c.get("/v1/omelette")
    assert refused.status_code == 404 and "flag" not in refused.json()  # not mounted at all


@runtime_checkable
class Greeting(Protocol):
    def greet(self, who: str) -> str: ...


class Greeter:
    built = 0

    def __init__(self, ctx) -> None:
        Greeter.built += 1

    def greet(self, who: str) -> str:
        return f"hello {who}"


def test_a_service_reaches_only_plugins_that_require_its_provider(make_app):
    """Broken on purpose by dropping the requires check in AppContext.service: red."""
    greeter = routed("greeter", services={Greeting: Greeter})()
    guest = routed("guest", requires=("greeter",))()
    stranger = routed("stranger")()
    ctx = make_app([greeter, guest, stranger]).state.ctx
    Greeter.built = 0
    assert ctx.service(Greeting, caller="guest").greet("ana") == "hello ana"
    assert ctx.service(Greeting, caller="guest") is ctx.service(Greeting, caller="guest")
    assert Greeter.built == 1  # built once per app
    with pytest.raises(ServiceError, match="stranger asked for the Greeting service .provided by greeter. "
                                           "without requiring its provider"):
        ctx.service(Greeting, caller="stranger")
    with pytest.raises(ServiceError, match="provided by no loaded plugin"):
        make_app([routed("guest", requires=())()]).state.ctx.service(Greeting, caller="guest")

    hollow = routed("hollow", services={Greeting: lambda ctx: object()})()
    user = routed("user", requires=("hollow",))()
    with pytest.raises(ServiceError, match="hollow's Greeting service lacks its methods"):
        make_app([hollow, user]).state.ctx.service(Greeting, caller="user")

    manager = PluginManager()
    manager.load([routed("muddled", services={"greeting": Greeter})()])
    assert manager.records["muddled"].reason == \
        "PluginError: plugin muddled: services must map protocol classes to factories"


class RaisesInRoutes(Plugin):
    name = "clumsy"
    version = "1.0.0"

    @hookimpl
    def register_routes(self, router, ctx):
        raise RuntimeError("dropped the spatula")


class Misspelled(Plugin):
    name = "typo"
    version = "1.0.0"

    @hookimpl
    def register_route(self, router, ctx):  # no such hook
        pass


async def test_bad_plugins_are_reported_and_left_out_while_the_app_starts(site, home, make_app, client_of):
    fake_distribution(site, "broken", "import a_module_that_does_not_exist\n")
    fake_distribution(site, "wrongname", GOOD_SOURCE)  # its object says "hello"
    fake_distribution(site, "sake", SAKE_SOURCE)
    manager = load_installed(Settings(home=home, plugins="broken,wrongname,sake"))
    broken, wrong = manager.records["broken"], manager.records["wrongname"]
    assert broken.state == "failed" and "ModuleNotFoundError" in broken.reason
    assert "a_module_that_does_not_exist" in broken.reason
    assert wrong.state == "failed" and "entry point 'wrongname' names plugin 'hello'" in wrong.reason
    assert manager.records["sake"].state == "enabled"

    bad = [routed("badversion", version="one point oh")(), routed("lowerflag", flag="feature_x")(),
           routed("future", core=">=2.0")(), routed("badcore", core="latest")(), RaisesInRoutes(), Misspelled()]
    app = make_app([*bad, routed("fine")()], strict_plugins=False)
    records = app.state.ctx.plugins.records
    assert "bad version 'one point oh'" in records["badversion"].reason
    assert "flag 'feature_x'" in records["lowerflag"].reason
    assert records["future"].reason.endswith("supports core >=2.0, this core is 0.1.0")
    assert "bad core specifier 'latest'" in records["badcore"].reason
    assert records["clumsy"].reason == "register_routes raised RuntimeError: dropped the spatula"
    assert "register_route" in records["typo"].reason
    assert all(records[p.name].state == "failed" for p in bad)
    async with client_of(app) as c:
        assert (await c.get("/v1/fine")).status_code == 200
        assert (await c.get("/healthz")).status_code == 200


def test_strict_mode_makes_any_plugin_failure_fatal(site, home, settings, clean_db, monkeypatch):
    monkeypatch.setenv("MYHIBACHI_STRICT_PLUGINS", "1")
    assert Settings().strict_plugins is True
    fake_distribution(site, "broken", "raise ImportError('no wok')\n")
    with pytest.raises(PluginError, match="plugin broken failed: ImportError: no wok"):
        load_installed(Settings(home=home))
    strict = settings.model_copy(update={"strict_plugins": Settings().strict_plugins})
    with pytest.raises(PluginError, match="clumsy failed: register_routes raised"):
        create_app([RaisesInRoutes()], settings=strict, database=clean_db)
    with pytest.raises(PluginError, match="typo failed: .*register_route"):
        create_app([Misspelled()], settings=strict, database=clean_db)
    with pytest.raises(PluginError, match="supports core >=9"):
        create_app([routed("future", core=">=9")()], settings=strict, database=clean_db)


class ExtraArgument(Plugin):
    name = "extra"
    version = "1.0.0"

    @hookimpl
    def register_routes(self, router, ctx, oven):
        pass


def test_check_pending_refuses_a_misspelled_hookimpl():
    manager = PluginManager()
    manager.load([Misspelled(), ExtraArgument(), routed("fine")()])
    assert manager.records["typo"].state == "failed"
    assert "unknown hook 'register_route'" in manager.records["typo"].reason
    extra = manager.records["extra"]
    assert extra.state == "failed" and "{'oven'} are declared in the hookimpl" in extra.reason
    assert "\n" not in extra.reason
    assert not manager.pm.is_registered(Misspelled) and manager.get("fine") is not None
    manager.pm.check_pending()  # what stays registered is clean


class Validator(Plugin):
    version = "1.0.0"

    @hookimpl
    async def validate_booking(self, booking, conn, ctx):
        return f"{self.name} refuses {booking['party_size']}"

    @hookimpl
    def resolve_principal(self, claims, ctx):
        return f"{self.name} for {claims['sub']}"


def validator(name: str, flag: str | None, capacity: int) -> Plugin:
    return type(name.title(), (Validator,), {"name": name, "flag": flag, "capacity": capacity})()


async def test_trace_hooks_logs_every_hook_call(monkeypatch, settings, clean_db, caplog):
    monkeypatch.setenv("MYHIBACHI_TRACE_HOOKS", "1")
    assert Settings().trace_hooks is True
    traced = settings.model_copy(update={"trace_hooks": Settings().trace_hooks})
    with caplog.at_level(logging.INFO, logger="myhibachi.plugins"):
        app = create_app([routed("echo")(), validator("strict", None, 3)], settings=traced, database=clean_db)
        await app.state.ctx.hooks().validate_booking(booking={"party_size": 9}, conn=None)
        app.state.ctx.plugins.pm.hook.register_permissions()  # pluggy's own relay is traced too
    lines = [r.getMessage() for r in caplog.records if r.name == "myhibachi.plugins"]
    assert any("register_routes [echo]" in line for line in lines), lines
    assert any("validate_booking [strict]" in line and "party_size" in line for line in lines), lines
    assert any("finish validate_booking [strict] --> strict refuses 9" in line for line in lines), lines
    assert any("hook register_permissions" in line for line in lines), lines

    caplog.clear()
    quiet = create_app([validator("strict", None, 3)], settings=settings, database=clean_db)
    await quiet.state.ctx.hooks().validate_booking(booking={"party_size": 9}, conn=None)
    assert not [r for r in caplog.records if r.name == "myhibachi.plugins" and "validate_booking" in r.getMessage()]


def test_trace_hooks_is_seen_on_stderr_of_a_plain_process(tmp_path, site):
    import os
    import subprocess
    import sys

    fake_distribution(site, "sake", SAKE_SOURCE)
    env = {**os.environ, "MYHIBACHI_TRACE_HOOKS": "1", "MYHIBACHI_HOME": str(tmp_path),
           "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", "PYTHONPATH": str(site)}
    code = "from myhibachi.core.app import create_app; create_app(['sake'])"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "myhibachi.plugins hook register_permissions [sake]" in done.stderr
    assert "finish register_permissions [sake] --> []" in done.stderr


async def test_manager_skips_hookimpls_of_plugins_whose_flag_is_off(make_app):
    plugins = [validator("always", None, 1), validator("gated", "FEATURE_FLAG_GATED", 7)]
    on = make_app(plugins, flags={"FEATURE_FLAG_GATED": True}).state.ctx
    off = make_app(plugins, flags={"FEATURE_FLAG_GATED": False}).state.ctx
    booking = {"party_size": 4}
    assert await on.hooks({"userId": "u1"}).validate_booking(booking=booking, conn=None) == [
        "gated refuses 4", "always refuses 4"]
    assert await off.hooks({"userId": "u1"}).validate_booking(booking=booking, conn=None) == [
        "always refuses 4"]
    # firstresult (from the spec): the last registered answers first, unless its flag is off.
    assert await on.hooks({"userId": "u1"}).resolve_principal(claims={"sub": "x"}) == "gated for x"
    assert await off.hooks({"userId": "u1"}).resolve_principal(claims={"sub": "x"}) == "always for x"


# --- plugins list and /v1/meta/plugins -------------------------------------------------------


def four_states(site, home) -> dict[str, str]:
    """Installed plugins in every state: enabled, disabled by flag, failed, not selected."""
    fake_distribution(site, "hello", GOOD_SOURCE)
    fake_distribution(site, "broken", "raise ImportError('no wok')\n")
    fake_distribution(site, "greeter", GOOD_SOURCE.replace('"hello"', '"greeter"').replace(
        "Hello(Plugin):", "Greeter(Plugin):\n    requires = ('hello',)").replace("Hello()", "Greeter()")
        .replace("FEATURE_FLAG_HELLO", "FEATURE_FLAG_GREETER"))
    fake_distribution(site, "sake", SAKE_SOURCE)
    TogglesFile(home / "flags.json").set("FEATURE_FLAG_SAKE", enabled=False)
    TogglesFile(home / "flags.json").set("FEATURE_FLAG_GREETER", enabled=True, rollout=30)
    return {"MYHIBACHI_HOME": str(home), "MYHIBACHI_DISABLED_PLUGINS": "hello"}


def test_plugins_list_prints_a_table_and_json(site, home):
    from myhibachi.core.cli import app

    env = four_states(site, home)
    runner = CliRunner()
    table = runner.invoke(app, ["plugins", "list"], env=env)
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split() == ["name", "version", "flag", "state", "requires", "features"]
    rows = {line.split()[0]: line for line in lines[2:]}
    assert rows["sake"].split()[1:4] == ["0.1.0", "FEATURE_FLAG_SAKE", "disabled"]
    assert "disabled by flag" in rows["sake"]
    assert "not selected" in rows["hello"] and "2.1.0" in rows["hello"] and "9.9" in rows["hello"]
    assert "failed: ImportError: no wok" in rows["broken"]
    assert "failed: requires plugin hello, which is not selected" in rows["greeter"]

    as_json = runner.invoke(app, ["plugins", "list", "--json"], env=env)
    data = {row["name"]: row for row in json.loads(as_json.output)}
    assert data["sake"]["state"] == "disabled by flag" and data["sake"]["requires"] == []
    assert data["hello"] == {"name": "hello", "version": "2.1.0", "flag": "FEATURE_FLAG_HELLO",
                             "state": "not selected", "reason": "", "requires": [],
                             "features": {"9.9": ["test_hello"]}, "settings": []}
    assert data["greeter"]["requires"] == ["hello"] and data["broken"]["version"] == ""


def test_plugins_list_check_fails_on_a_failed_plugin(site, home):
    from myhibachi.core.cli import app

    env = four_states(site, home)
    checked = CliRunner().invoke(app, ["plugins", "list", "--check"], env=env)
    assert checked.exit_code == 1, checked.output
    assert checked.output.splitlines()[-1] == "error: 2 plugin(s) failed: broken, greeter"
    fine = CliRunner().invoke(app, ["plugins", "list", "--check"], env={
        **env, "MYHIBACHI_DISABLED_PLUGINS": "broken", "MYHIBACHI_PLUGINS": "sake"})
    assert fine.exit_code == 0, fine.output


async def test_meta_plugins_endpoint_gives_the_same_rows_behind_plugins_read(site, home, settings, clean_db,
                                                                               client_of, monkeypatch):
    from myhibachi.core.cli import app as cli

    env = four_states(site, home)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    app = create_app(settings=Settings(home=home, database_url=settings.database_url,
                                       secret_key=settings.secret_key), database=clean_db)
    app.state.ctx.flags.start()
    async with clean_db.transaction() as conn:
        good, _ = await create_api_key(conn, app.state.ctx.settings, name="ops", scopes=["plugins.read"])
        other, _ = await create_api_key(conn, app.state.ctx.settings, name="ops", scopes=["bookings.read"])
    try:
        async with client_of(app) as c:
            anonymous = await c.get("/v1/meta/plugins")
            forbidden = await c.get("/v1/meta/plugins", headers={"Authorization": f"Bearer {other}"})
            ok = await c.get("/v1/meta/plugins", headers={"Authorization": f"Bearer {good}"})
    finally:
        app.state.ctx.flags.stop()
    assert anonymous.status_code == 401
    assert forbidden.status_code == 403 and forbidden.json()["permission"] == "plugins.read"
    assert ok.status_code == 200
    cli_rows = json.loads(CliRunner().invoke(cli, ["plugins", "list", "--json"], env=env).output)
    assert ok.json() == {"items": cli_rows, "next_cursor": None}
    states = {row["name"]: row["state"] for row in ok.json()["items"]}
    assert states.items() >= {"broken": "failed: ImportError: no wok",
                              "greeter": "failed: requires plugin hello, which is not selected",
                              "hello": "not selected", "sake": "disabled by flag"}.items()


def test_partial_rollout_reads_as_enabled_with_its_share(home):
    TogglesFile(home / "flags.json").set("FEATURE_FLAG_HALF", enabled=True, rollout=50)
    manager = PluginManager()
    manager.load([routed("half", flag="FEATURE_FLAG_HALF")()])
    flags = Flags(Settings(home=home))
    flags.start()
    try:
        assert manager.states(flags)[0]["state"] == "enabled (50%)"
    finally:
        flags.stop()


def test_flag_answers_are_remembered_until_the_definitions_change(home):
    toggles = TogglesFile(home / "flags.json")
    toggles.set("FEATURE_FLAG_MEMO", enabled=True, rollout=100)
    flags = Flags(Settings(home=home))
    flags.start()
    who = {"userId": "customer-9"}
    try:
        assert flags.enabled("FEATURE_FLAG_MEMO", who) is True
        assert flags.enabled("FEATURE_FLAG_MEMO", who) is True  # from memory
        toggles.set("FEATURE_FLAG_MEMO", enabled=False)
        flags.reload()  # what the refresh job does every few seconds
        assert flags.enabled("FEATURE_FLAG_MEMO", who) is False
        toggles.set("FEATURE_FLAG_MEMO", enabled=True, rollout=0)
        flags.reload()
        assert flags.enabled("FEATURE_FLAG_MEMO", who) is False
        toggles.set("FEATURE_FLAG_MEMO", rollout=100)
        flags.reload()
        assert flags.enabled("FEATURE_FLAG_MEMO", who) is True
        assert flags.enabled("FEATURE_FLAG_MEMO", {"userId": "x", "properties": {"tier": "gold"}}) is True
    finally:
        flags.stop()
