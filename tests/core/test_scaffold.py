"""``myhibachi plugins new``: the scaffold is a working plugin of the standard shape."""
from __future__ import annotations

import ast
import importlib
import re
import sys
from pathlib import Path

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

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def test_plugins_new_writes_a_builtin_of_the_standard_shape(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tests" / "plugins").mkdir(parents=True)
    (tmp_path / "tests" / "plugins" / "__init__.py").write_text("")
    made = CliRunner().invoke(cli, ["plugins", "new", "sake_pairing"])
    assert made.exit_code == 0, made.output
    assert 'sake_pairing = "myhibachi.plugins.sake_pairing:plugin"' in made.output
    folder = tmp_path / "plugins" / "sake_pairing"
    assert sorted(p.name for p in folder.iterdir()) == [  # no tasks.py: it has no background work
        "__init__.py", "migrations", "models.py", "routes.py", "schemas.py", "service.py"]
    assert [p.name for p in (folder / "migrations").iterdir()] == ["sake_pairing_0001_items.py"]
    test = tmp_path / "tests" / "plugins" / "sake_pairing" / "test_sake_pairing.py"
    assert "from myhibachi.plugins.sake_pairing import plugin" in test.read_text()
    assert (test.parent / "__init__.py").exists()
    init = (folder / "__init__.py").read_text()
    assert 'flag = "FEATURE_FLAG_SAKE_PAIRING"' in init and 'name = "sake_pairing"' in init
    assert 'core = ">=0.1,<1"' in init
    # routes.py is found by convention: the manifest holds no hook for it
    assert "register_routes" not in init and "register_tasks" not in init

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
    assert 'chef_notes = "chef_notes:plugin"' in pyproject and '"myhibachi>=0.1,<1"' in pyproject
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


def documented_scaffold() -> list[str]:
    """The files section 1 of docs/plugins.md says the scaffold writes, relative to the distribution."""
    block = DOCS.read_text().split("## 1. Scaffold it", 1)[1].split("writes\n\n```\n", 1)[1].split("```", 1)[0]
    lines = block.splitlines()[1:]  # under examples/myhibachi-tip-jar/
    paths, parents = [], []
    for line in lines:
        indent, entry = (len(line) - len(line.lstrip())) // 2, line.split()[0]
        parents[indent - 1:] = [entry]
        paths.append("".join(parents))
    return sorted(paths)


def test_the_scaffold_writes_what_the_plugin_guide_says(tmp_path):
    from myhibachi.core.scaffold import scaffold

    folder = scaffold("tip_jar", tmp_path, distribution="myhibachi-tip-jar")
    root = folder.parent
    documented = documented_scaffold()
    written = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.parent.name != "migrations")
    assert written == [p for p in documented if not p.endswith("/")]
    assert "tip_jar/migrations/" in documented
    assert [p.name for p in (folder / "migrations").iterdir()] == ["tip_jar_0001_items.py"]

    guide = DOCS.read_text()
    core = re.search(r'core = "([^"]+)"', (folder / "__init__.py").read_text()).group(1)
    assert f'core = "{core}"' in guide and f"myhibachi{core}" in guide  # the manifest and the dependency
    assert f'dependencies = ["myhibachi{core}"]' in (root / "pyproject.toml").read_text()

    routes = ast.parse((folder / "routes.py").read_text())
    entry = next(f for f in routes.body if isinstance(f, ast.FunctionDef))
    assert (entry.name, [a.arg for a in entry.args.args]) == ("add_routes", ["router", "ctx"])
    endpoints = {fn.decorator_list[0].func.attr: fn for fn in entry.body if isinstance(fn, ast.AsyncFunctionDef)}
    assert set(endpoints) == {"get", "post"}
    for verb, fn in endpoints.items():  # one way to the database: a read on the GET, a transaction on the POST
        params = dict(zip([a.arg for a in fn.args.args][-len(fn.args.defaults):], fn.args.defaults))
        assert ast.unparse(params["conn"]) == "Connection", verb
