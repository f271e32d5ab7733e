"""``myhibachi plugins new``: the scaffold is a working plugin of the standard shape."""
from __future__ import annotations

import importlib
import sys

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from myhibachi.core import migrate
from myhibachi.core.app import create_app
from myhibachi.core.auth import create_api_key
from myhibachi.core.cli import app as cli
from myhibachi.core.db import Database
from myhibachi.core.flags import TogglesFile
from myhibachi.core.plugins import PluginManager
from myhibachi.core.scaffold import shape_problems
from myhibachi.testing import client_for
from tests.core.test_migrations import fresh_url, tables  # noqa: F401


def test_plugins_new_writes_a_builtin_of_the_standard_shape(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tests" / "plugins").mkdir(parents=True)
    (tmp_path / "tests" / "plugins" / "__init__.py").write_text("")
    made = CliRunner().invoke(cli, ["plugins", "new", "sake_pairing"])
    assert made.exit_code == 0, made.output
    assert 'sake_pairing = "myhibachi.plugins.sake_pairing:plugin"' in made.output
    folder = tmp_path / "plugins" / "sake_pairing"
    assert sorted(p.name for p in folder.iterdir()) == [
        "__init__.py", "migrations", "models.py", "routes.py", "schemas.py", "service.py", "tasks.py"]
    assert [p.name for p in (folder / "migrations").iterdir()] == ["sake_pairing_0001_items.py"]
    test = tmp_path / "tests" / "plugins" / "sake_pairing" / "test_sake_pairing.py"
    assert "from myhibachi.plugins.sake_pairing import plugin" in test.read_text()
    assert (test.parent / "__init__.py").exists()
    init = (folder / "__init__.py").read_text()
    assert 'flag = "FEATURE_FLAG_SAKE_PAIRING"' in init and 'name = "sake_pairing"' in init

    again = CliRunner().invoke(cli, ["plugins", "new", "sake_pairing"])
    bad = CliRunner().invoke(cli, ["plugins", "new", "Sake-Pairing"])
    assert again.exit_code == 2 and "already exists" in again.output
    assert bad.exit_code == 2 and "must be lower_case" in bad.output


async def test_a_scaffolded_third_party_plugin_migrates_serves_and_passes_its_first_test(tmp_path, monkeypatch,
                                                                                         fresh_url, settings):
    made = CliRunner().invoke(cli, [
        "plugins", "new", "chef_notes", "--directory", str(tmp_path), "--distribution", "myhibachi-chef-notes",
        "--flag", "FEATURE_FLAG_CHEF_NOTES"])
    assert made.exit_code == 0, made.output
    dist = tmp_path / "myhibachi-chef-notes"
    pyproject = (dist / "pyproject.toml").read_text()
    assert 'chef_notes = "chef_notes:plugin"' in pyproject and '"myhibachi>=0.1"' in pyproject
    assert 'test = ["myhibachi[testing]"]' in pyproject and 'asyncio_mode = "auto"' in pyproject
    own_test = (dist / "tests" / "test_chef_notes.py").read_text()  # inside its own distribution
    imports = {line for line in own_test.splitlines() if line.startswith(("import ", "from "))}
    assert imports == {"from chef_notes import plugin"}  # the rest comes from myhibachi.testing's fixtures
    monkeypatch.syspath_prepend(str(dist))
    monkeypatch.syspath_prepend(str(dist / "tests"))
    chef_notes = importlib.import_module("chef_notes")
    assert shape_problems(chef_notes.plugin) == []

    manager = PluginManager()
    manager.load([chef_notes.plugin], strict=True)
    migrate.upgrade(fresh_url, manager)
    assert "chef_notes_items" in tables(fresh_url)
    assert migrate.current(fresh_url, manager)["chef_notes"] == "chef_notes_0001"

    # Its own first test, run against an app on that database.
    database = Database(fresh_url)
    apps = []

    def make_app(plugins=(), flags=None):
        for name, on in (flags or {}).items():
            TogglesFile(settings.toggles_path).set(name, enabled=on, rollout=100)
        app = create_app(list(plugins), settings=settings, database=database)
        app.state.ctx.flags.start()
        apps.append(app)
        return app

    async def staff(scopes):
        async with database.transaction() as conn:
            key, _ = await create_api_key(conn, settings, name="test", scopes=scopes)
        return {"Authorization": f"Bearer {key}"}

    first_test = importlib.import_module("test_chef_notes")
    try:
        await first_test.test_chef_notes_items_created_and_listed_behind_flag(make_app, client_for, staff)
    finally:
        for app in apps:
            app.state.ctx.flags.stop()
        await database.close()
        for module in [m for m in sys.modules if m == "chef_notes" or m.startswith("chef_notes.")]:
            del sys.modules[module]
    engine = sa.create_engine(fresh_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT label FROM chef_notes_items")).scalars().all() == ["first"]
    engine.dispose()


def test_scaffold_refuses_a_package_folder_named_unlike_the_plugin(tmp_path):
    from myhibachi.core.scaffold import scaffold

    with pytest.raises(ValueError, match="must be named like the plugin"):
        scaffold("tips", tmp_path, distribution="x", package="gratuity")
