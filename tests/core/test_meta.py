"""Meta-tests: the plugin contract stays honest as hooks and plugins are added.

Generic on purpose: a new hook in core/hookspecs.py or a new installed plugin is checked
here without editing this file.
"""
from __future__ import annotations

import importlib.util
import inspect
import re
import typing
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

from myhibachi.core import hookspecs
from myhibachi.core.plugins import PluginManager, discover, validate_manifest
from myhibachi.core.scaffold import scaffold, shape_problems

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"


def hookspec_functions() -> dict[str, typing.Callable]:
    return {name: fn for name, fn in vars(hookspecs.Hooks).items()
            if callable(fn) and hasattr(fn, "myhibachi_spec")}


def docstring_problems(fn) -> list[str]:
    """What a hook's docstring lacks: what it does, when it is called, each parameter, the return."""
    doc = inspect.getdoc(fn) or ""
    problems = []
    if not doc or not doc.splitlines()[0].strip().endswith("."):
        problems.append("no one-line summary ending with a period")
    if "Called" not in doc:
        problems.append("does not say when it is called ('Called ...')")
    for param in inspect.signature(fn).parameters:
        if param != "self" and f":param {param}:" not in doc:
            problems.append(f"no ':param {param}:'")
    returns = inspect.signature(fn).return_annotation
    if returns not in ("None", None, inspect.Signature.empty) and ":return:" not in doc:
        problems.append("no ':return:'")
    return problems


def test_every_hookspec_documents_what_when_params_and_return():
    specs = hookspec_functions()
    assert len(specs) >= 10
    missing = {name: p for name, fn in specs.items() if (p := docstring_problems(fn))}
    assert missing == {}


def test_the_docstring_rule_catches_an_undocumented_hook():
    def hook(booking, conn) -> int:
        """Does something.

        :param booking: the booking.
        """

    assert docstring_problems(hook) == ["does not say when it is called ('Called ...')", "no ':param conn:'",
                                        "no ':return:'"]


def test_functions_under(folder: Path = TESTS) -> set[str]:
    pattern = re.compile(r"^\s*(?:async\s+)?def\s+(test_\w+)\s*\(", re.M)
    return {m for path in folder.rglob("*.py") for m in pattern.findall(path.read_text())}


test_functions_under.__test__ = False  # a helper, not a test


def test_every_hookspec_has_a_test_hook_function():
    tests = test_functions_under()
    missing = sorted(f"test_hook_{name}" for name in hookspec_functions() if f"test_hook_{name}" not in tests)
    assert missing == []


# --- installed plugins ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def installed() -> dict[str, object]:
    """Every installed plugin, by entry point name (third-party ones too, when installed)."""
    return {name: load() for name, load in discover().items()}


def revisions_in(folder: Path) -> list:
    modules = []
    for path in sorted(folder.glob("*.py")):
        if path.name == "__init__.py":
            continue
        spec = importlib.util.spec_from_file_location(f"_rev_{folder.parent.name}_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules.append(module)
    return modules


def as_tuple(value) -> tuple:
    return () if value is None else (value,) if isinstance(value, str) else tuple(value)


def branch_problems(plugin, known_revisions: dict[str, str]) -> list[str]:
    """The plugin's Alembic folder is one branch labelled with its name, rooted on the core."""
    location = plugin.migration_location()
    if location is None:
        return []
    revs = revisions_in(Path(location))
    if not revs:
        return [f"{location} holds no revision"]
    problems = []
    roots = [r for r in revs if r.down_revision is None]
    if len(roots) != 1:
        problems.append(f"{len(roots)} root revisions (one branch has exactly one)")
    for rev in revs:
        labels = as_tuple(getattr(rev, "branch_labels", None))
        if rev in roots and labels != (plugin.name,):
            problems.append(f"root revision {rev.revision} has branch label {labels}, not ({plugin.name!r},)")
        if rev not in roots and labels:
            problems.append(f"revision {rev.revision} opens another branch {labels}")
        for dep in as_tuple(getattr(rev, "depends_on", None)):
            owner = known_revisions.get(dep)
            if owner is None:
                problems.append(f"revision {rev.revision} depends on unknown {dep}")
            elif owner not in ("core", plugin.name, *plugin.requires):
                problems.append(f"revision {rev.revision} depends on {owner}, which it does not require")
    if roots and not any(known_revisions.get(d) in ("core", *plugin.requires) for d in as_tuple(roots[0].depends_on)):
        problems.append("its first revision depends neither on the core nor on a plugin it requires")
    return problems


def test_every_installed_manifest_validates(installed):
    from myhibachi.core import __version__
    from myhibachi.core.migrate import CORE_DIR

    known = {r.revision: "core" for r in revisions_in(CORE_DIR / "versions")}
    for plugin in installed.values():
        location = plugin.migration_location()
        if location:
            known.update({r.revision: plugin.name for r in revisions_in(Path(location))})
    flags: dict[str, str] = {}
    problems = {}
    for entry, plugin in installed.items():
        found = []
        try:
            validate_manifest(plugin, __version__)
        except Exception as exc:
            found.append(str(exc))
        if entry != plugin.name:
            found.append(f"entry point {entry} names plugin {plugin.name}")
        folder = Path(inspect.getfile(type(plugin))).parent.name
        if folder != plugin.name:
            found.append(f"folder {folder} is not named {plugin.name}")
        if plugin.flag and flags.setdefault(plugin.flag, plugin.name) != plugin.name:
            found.append(f"flag {plugin.flag} is also the flag of {flags[plugin.flag]}")
        found.extend(f"requires {r}, which is not installed" for r in plugin.requires if r not in installed)
        found.extend(branch_problems(plugin, known))
        if found:
            problems[entry] = found
    assert problems == {}
    try:
        TopologicalSorter({n: list(p.requires) for n, p in installed.items()}).prepare()
    except CycleError as exc:
        pytest.fail(f"requirement cycle: {' -> '.join(exc.args[1])}")


def test_every_feature_test_named_in_a_manifest_exists(installed):
    tests = test_functions_under()
    for plugin in installed.values():
        package = Path(inspect.getfile(type(plugin))).parent
        tests |= test_functions_under(package.parent)
    missing = {p.name: sorted(t for names in p.features.values() for t in names if t not in tests)
               for p in installed.values()}
    assert {k: v for k, v in missing.items() if v} == {}


def builtin_folders() -> list[Path]:
    return sorted(p for p in (ROOT / "plugins").iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))


def test_every_plugin_folder_has_the_shape_of_design_md(installed):
    names = {p.name for p in builtin_folders()}
    not_installed = sorted(names - set(installed))
    assert not_installed == [], "plugins/ folders without an installed entry point (pip install -e .)"
    problems = {name: shape_problems(plugin) for name, plugin in installed.items()}
    assert {k: v for k, v in problems.items() if v} == {}


def deep_core_imports(folder: Path) -> dict[str, list[str]]:
    """Imports under ``folder`` that reach past the core's exports into a submodule, by file:
    ``myhibachi.core.<module>``, and ``from myhibachi.core import <module>`` of a module it
    does not export (Python would import it all the same)."""
    import ast

    import myhibachi.core as core

    found: dict[str, list[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            deep = [n for n in names if n.startswith("myhibachi.core.")]
            if names == ["myhibachi.core"] and isinstance(node, ast.ImportFrom):
                deep = [f"myhibachi.core.{a.name}" for a in node.names if a.name not in core.__all__]
            if deep:
                found.setdefault(str(path.relative_to(folder)), []).extend(f"{n} (line {node.lineno})" for n in deep)
    return found


def test_plugins_the_examples_and_the_scaffold_import_only_the_public_api(tmp_path):
    """Built-in plugins, the example plugins and what the scaffold writes import
    ``myhibachi.core`` itself, never ``myhibachi.core.<module>``: the package's exports are
    the plugin API, and what is not exported may change.

    Broken on purpose by putting ``from myhibachi.core.db import Conn`` back in
    plugins/reminders/routes.py and in examples/myhibachi-tip-jar/tip_jar/routes.py: red,
    naming both files and lines."""
    folders = [*builtin_folders(), *sorted((ROOT / "examples").iterdir())]
    found = {f"{folder.relative_to(ROOT)}/{path}": lines
             for folder in folders for path, lines in deep_core_imports(folder).items()}
    assert found == {}
    scaffold("public_probe", tmp_path, distribution="public-probe", tests=tmp_path / "tests")
    assert deep_core_imports(tmp_path) == {}


def test_docs_list_every_export_of_the_public_api():
    """docs/plugins.md's table of the public API names every export of ``myhibachi.core``
    and nothing it does not export (a namespace's row also names the namespace's members)."""
    import myhibachi.core as core

    section = (ROOT / "docs" / "plugins.md").read_text().split("### The public API", 1)[1].split("\n### ", 1)[0]
    listed = set()
    for row in re.findall(r"^\| (.+?) \| (.+) \|$", section, re.M)[1:]:  # past the header
        what, names = row
        listed |= set(re.findall(r"`(\w+)` \(" if what == "namespaces" else r"`(\w+)[`(]", names))
    assert listed == set(core.__all__) - {"__version__"}


def test_every_lazy_export_is_imported_for_type_checkers():
    """Each lazy export is also a plain import under ``if TYPE_CHECKING:`` in
    core/__init__.py, from the module that defines it, so an editor follows it there."""
    import ast

    import myhibachi.core as core

    tree = ast.parse(Path(core.__file__).read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING")
    typed = {a.name: node.module for node in block.body for a in node.names}
    lazy = {name: f"myhibachi.core.{module}" for name, module in core._LAZY.items()}
    assert typed == {**lazy, **{name: "myhibachi.core" for name in core._MODULES}}


def test_importing_the_core_and_every_manifest_stays_cheap():
    """``import myhibachi.core`` and loading every installed plugin's manifest import neither
    FastAPI, SQLAlchemy, psycopg nor the core's modules behind the lazy exports (a fresh
    interpreter: what start-up pays before the app is built).

    Broken on purpose by importing ``Conn`` from ``myhibachi.core.db`` at the top of
    core/__init__.py: red, naming sqlalchemy and myhibachi.core.db."""
    import json
    import subprocess
    import sys

    heavy = ["fastapi", "sqlalchemy", "psycopg", "myhibachi.core.db", "myhibachi.core.auth", "myhibachi.core.routing"]
    code = ("import json, sys\nimport myhibachi.core\nfrom myhibachi.core.plugins import discover\n"
            "loaded = [load() for load in discover().values()]\n"
            f"print(json.dumps([len(loaded), [m for m in {heavy!r} if m in sys.modules]]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    count, imported = json.loads(out.stdout)
    assert count >= len(builtin_folders())
    assert imported == []


def test_the_public_api_rule_catches_a_deep_import_and_every_export_resolves(tmp_path):
    import myhibachi.core as core

    (tmp_path / "ok.py").write_text("from myhibachi.core import Conn, hookimpl, tables\nimport myhibachi.core\n"
                                    "from . import models\n")
    (tmp_path / "deep.py").write_text("import os\nfrom myhibachi.core.db import Conn\nimport myhibachi.core.auth\n"
                                      "from myhibachi.core import Conn, db\n")
    assert deep_core_imports(tmp_path) == {"deep.py": ["myhibachi.core.db (line 2)", "myhibachi.core.auth (line 3)",
                                                       "myhibachi.core.db (line 4)"]}
    assert [name for name in core.__all__ if getattr(core, name, None) is None] == []


def test_the_shape_rule_catches_a_misshapen_plugin(tmp_path, monkeypatch):
    folder = scaffold("shape_probe", tmp_path, distribution="shape-probe", tests=tmp_path / "tests")
    monkeypatch.syspath_prepend(str(folder.parent))
    import shape_probe

    assert shape_problems(shape_probe.plugin) == []
    (folder / "service.py").unlink()
    (folder / "schemas.py").rename(folder / "api_models.py")
    import shutil

    shutil.rmtree(folder / "migrations")
    assert sorted(shape_problems(shape_probe.plugin)) == [
        "owns tables but has no migrations/ folder", "schemas.py is missing", "service.py is missing"]


def test_plugin_managers_see_the_same_hooks_as_the_spec():
    """Every hookspec is registered with pluggy (nothing defined in the module but left out)."""
    manager = PluginManager()
    assert set(hookspec_functions()) <= {name for name in dir(manager.pm.hook) if not name.startswith("_")}


def test_the_branch_rule_catches_a_wrong_label_and_a_stray_dependency(tmp_path):
    from myhibachi.core import Plugin

    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "a.py").write_text('revision = "sauce_1"\ndown_revision = None\nbranch_labels = ("sauces",)\n'
                                 'depends_on = "other_1"\n')
    (folder / "b.py").write_text('revision = "sauce_2"\ndown_revision = "sauce_1"\nbranch_labels = ("x",)\n'
                                 'depends_on = None\n')

    class Sauce(Plugin):
        name = "sauce"

        def migration_location(self):
            return str(folder)

    known = {"core_0001": "core", "other_1": "other", "sauce_1": "sauce", "sauce_2": "sauce"}
    assert branch_problems(Sauce(), known) == [
        "root revision sauce_1 has branch label ('sauces',), not ('sauce',)",
        "revision sauce_1 depends on other, which it does not require",
        "revision sauce_2 opens another branch ('x',)",
        "its first revision depends neither on the core nor on a plugin it requires",
    ]


def foreign_imports(folder: Path) -> list[str]:
    """Imports of another plugin's modules (``myhibachi.plugins.<other>``) in a plugin's folder."""
    import ast

    own = f"myhibachi.plugins.{folder.name}"
    found = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[:2] == ["myhibachi", "plugins"] and len(parts) > 2 and ".".join(parts[:3]) != own:
                    found.append(f"{path.relative_to(folder.parent)}:{node.lineno} imports {name}")
                    break
    return found


def test_no_plugin_imports_another_plugins_modules():
    """Plugins reach each other through services (ctx.service), never by import.

    Broken on purpose by adding ``from myhibachi.plugins.comms import service`` to
    plugins/reminders/service.py: red, naming the file and line."""
    assert [f for folder in builtin_folders() for f in foreign_imports(folder)] == []


def test_the_import_rule_catches_each_form_of_import(tmp_path):
    folder = tmp_path / "reminders"
    folder.mkdir()
    (folder / "service.py").write_text(
        "import myhibachi.plugins.comms.service\n"
        "from myhibachi.plugins.comms import service\n"
        "from myhibachi.plugins import comms\n"
        "from myhibachi.plugins.reminders import models\n"
        "from myhibachi.core.services import Messaging\n"
        "from . import models\n")
    assert foreign_imports(folder) == [
        "reminders/service.py:1 imports myhibachi.plugins.comms.service",
        "reminders/service.py:2 imports myhibachi.plugins.comms",
        "reminders/service.py:3 imports myhibachi.plugins.comms",
    ]
