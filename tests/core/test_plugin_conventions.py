"""What a manifest need not say: settings from the environment by the plugin's name, and
``routes.py`` / ``tasks.py`` found in the plugin's package."""
from __future__ import annotations

import importlib
import json
import sys
import uuid

import pytest
from pydantic import BaseModel, Field
from typer.testing import CliRunner

from myhibachi.core import Plugin, hookimpl
from myhibachi.core.plugins import PluginError, PluginManager, load_installed
from myhibachi.core.settings import Settings
from tests.core.plugin_helpers import fake_distribution, site  # noqa: F401


class Knobs(BaseModel):
    batch_size: int = Field(default=10, ge=1, description="Rows a round.")
    label: str = Field(default="knob", description="What it is called.")


class KnobsPlugin(Plugin):
    name = "knobs"
    version = "1.0.0"
    settings = Knobs


class Dependent(Plugin):
    name = "dependent"
    version = "1.0.0"
    requires = ("knobs",)


def test_settings_are_read_from_the_prefixed_environment_keywords_first(monkeypatch):
    monkeypatch.setenv("MYHIBACHI_KNOBS_BATCH_SIZE", "25")
    monkeypatch.setenv("MYHIBACHI_BATCH_SIZE", "99")  # another prefix: not this plugin's
    from_env = KnobsPlugin()
    assert isinstance(from_env.settings, Knobs)
    assert (from_env.settings.batch_size, from_env.settings.label) == (25, "knob")
    assert KnobsPlugin(batch_size=3).settings.batch_size == 3
    monkeypatch.delenv("MYHIBACHI_KNOBS_BATCH_SIZE")
    assert KnobsPlugin().settings.batch_size == 10  # the model's default

    from myhibachi.plugins.comms import CommsPlugin

    monkeypatch.setenv("MYHIBACHI_COMMS_MAX_ATTEMPTS", "2")
    assert CommsPlugin().settings.max_attempts == 2

    with pytest.raises(PluginError, match="plugin knobs has no setting batch_sise"):
        KnobsPlugin(batch_sise=3)
    with pytest.raises(PluginError, match="plugin dependent has no setting batch_size"):
        Dependent(batch_size=3)


def test_a_bad_setting_refuses_the_plugin_naming_the_variable(monkeypatch):
    monkeypatch.setenv("MYHIBACHI_KNOBS_BATCH_SIZE", "0")
    monkeypatch.setenv("MYHIBACHI_KNOBS_LABEL", "fine")
    manager = PluginManager()
    manager.load({"knobs": KnobsPlugin, "dependent": Dependent})  # loaders, as entry points are
    knobs = manager.records["knobs"]
    assert knobs.state == "failed" and manager.get("knobs") is None
    assert knobs.reason == ("PluginError: plugin knobs: MYHIBACHI_KNOBS_BATCH_SIZE='0': "
                            "Input should be greater than or equal to 1")
    assert manager.records["dependent"].reason == "requires plugin knobs, which is failed"

    monkeypatch.setenv("MYHIBACHI_KNOBS_BATCH_SIZE", "many")
    with pytest.raises(PluginError, match="MYHIBACHI_KNOBS_BATCH_SIZE='many': Input should be a valid integer"):
        PluginManager().load({"knobs": KnobsPlugin}, strict=True)
    with pytest.raises(PluginError, match=r"setting batch_size=-1: Input should be greater"):
        KnobsPlugin(batch_size=-1)


KNOBS_SOURCE = '''
from pydantic import BaseModel, Field

from myhibachi.core import Plugin


class Knobs(BaseModel):
    batch_size: int = Field(default=10, ge=1, description="Rows a round.")


class KnobsPlugin(Plugin):
    name = "knobs"
    version = "1.0.0"
    settings = Knobs


plugin = KnobsPlugin()
'''


def test_plugins_list_shows_settings_and_an_installed_plugin_with_a_bad_one_is_refused(site, home, monkeypatch):
    from myhibachi.core.cli import app

    fake_distribution(site, "knobs", KNOBS_SOURCE)
    monkeypatch.setenv("MYHIBACHI_HOME", str(home))
    rows = {r["name"]: r for r in json.loads(CliRunner().invoke(app, ["plugins", "list", "--json"]).output)}
    assert rows["knobs"]["settings"] == [
        {"variable": "MYHIBACHI_KNOBS_BATCH_SIZE", "default": "10", "description": "Rows a round."}]
    assert {"variable": "MYHIBACHI_COMMS_MAX_ATTEMPTS", "default": "5",
            "description": "Provider tries before a message is marked failed."} in rows["comms"]["settings"]

    for loaded in [m for m in sys.modules if m.startswith("mh_fake_knobs_")]:
        monkeypatch.delitem(sys.modules, loaded)  # as a new process would, import the plugin again
    monkeypatch.setenv("MYHIBACHI_KNOBS_BATCH_SIZE", "none")
    manager = load_installed(Settings(home=home), strict=False)
    assert manager.records["knobs"].state == "failed"
    assert "MYHIBACHI_KNOBS_BATCH_SIZE='none'" in manager.records["knobs"].reason
    with pytest.raises(PluginError, match="plugin knobs failed: .*MYHIBACHI_KNOBS_BATCH_SIZE='none'"):
        load_installed(Settings(home=home), strict=True)


# --- routes.py and tasks.py by convention ------------------------------------------------------

MANIFEST = '''
from myhibachi.core import Plugin, hookimpl


class ConventionPlugin(Plugin):
    name = "{name}"
    version = "1.0.0"
    flag = "FEATURE_FLAG_{upper}"
{extra}

plugin = ConventionPlugin()
'''

ROUTES = '''
from fastapi import APIRouter
import sqlalchemy as sa

from myhibachi.core.db import Conn
from myhibachi.core.routing import Connection


def add_routes(router: APIRouter, ctx) -> None:
    @router.get("/{slug}")
    async def read(conn: Conn = Connection) -> dict:
        return {{"value": await conn.scalar(sa.text("SELECT 1")), "plugins": len(ctx.plugins.plugins)}}
'''

TASKS = '''
CALLS = []


def add_tasks(huey, ctx) -> None:
    async def poll(ctx) -> int:
        CALLS.append(ctx)
        return 1 if len(CALLS) == 1 else 0

    ctx.add_poller("{name}", poll)
'''


def plugin_package(root, files: dict[str, str], extra: str = ""):
    """A plugin as a package of its own on sys.path: its manifest and the given modules."""
    name = f"conv_{uuid.uuid4().hex[:8]}"
    folder = root / name
    folder.mkdir()
    values = {"name": name, "upper": name.upper(), "slug": name, "extra": extra}
    (folder / "__init__.py").write_text(MANIFEST.format(**values))
    for module, source in files.items():
        (folder / f"{module}.py").write_text(source.format(**values))
    return importlib.import_module(name)


async def test_routes_and_tasks_modules_are_registered_without_hooks(site, make_app, client_of, drain):
    package = plugin_package(site, {"routes": ROUTES, "tasks": TASKS})
    flag = f"FEATURE_FLAG_{package.plugin.name.upper()}"
    app = make_app([package.plugin], flags={flag: True})
    async with client_of(app) as c:
        answer = await c.get(f"/v1/{package.plugin.name}")
    assert answer.status_code == 200 and answer.json() == {"value": 1, "plugins": 1}
    assert await drain(app) == 1  # its poller ran in the worker's round
    tasks = importlib.import_module(f"{package.__name__}.tasks")
    assert tasks.CALLS[0] is app.state.ctx

    off = make_app([package.plugin], flags={flag: False})  # mounted behind the plugin's flag
    async with client_of(off) as c:
        gated = await c.get(f"/v1/{package.plugin.name}")
    assert gated.status_code == 404 and gated.json()["flag"] == flag


async def test_an_explicit_hook_replaces_the_convention_and_a_module_without_its_entry_is_refused(
        site, make_app, client_of):
    explicit = plugin_package(site, {"routes": ROUTES}, extra='''
    @hookimpl
    def register_routes(self, router, ctx):
        @router.get("/elsewhere")
        async def elsewhere() -> dict:
            return {"value": 2}
''')
    app = make_app([explicit.plugin], flags={f"FEATURE_FLAG_{explicit.plugin.name.upper()}": True})
    async with client_of(app) as c:
        assert (await c.get("/v1/elsewhere")).json() == {"value": 2}
        assert (await c.get(f"/v1/{explicit.plugin.name}")).status_code == 404

    entryless = plugin_package(site, {"tasks": "def register(huey, ctx):\n    pass\n"})
    app = make_app([entryless.plugin], strict_plugins=False)
    record = app.state.ctx.plugins.records[entryless.plugin.name]
    assert record.state == "failed"
    assert record.reason == f"register_tasks raised PluginError: {entryless.__name__}.tasks has no add_tasks() to call"
    with pytest.raises(PluginError, match="has no add_tasks"):
        make_app([entryless.plugin], strict_plugins=True)
