"""``myhibachi plugins new``: a plugin folder of the standard shape, and the shape check.

Every plugin starts from the same files (DESIGN.md, "A plugin folder reads the same
everywhere"): the manifest in ``__init__.py``, ``models.py``, ``schemas.py``,
``service.py``, ``routes.py``, ``migrations/`` with a first revision, and a first test;
``tasks.py`` comes with the first background job, so the scaffold has none. The core finds
``routes.py`` and ``migrations/`` by convention, so the manifest holds no hook for them.
The scaffold is runnable as written: a starter table, a create and a list route behind the
plugin's flag and permissions, so a new plugin migrates and answers before its author
changes anything.
"""
from __future__ import annotations

import keyword
import re
from pathlib import Path
from string import Template

NAME = re.compile(r"[a-z][a-z0-9_]*")

# The shape rule. Always required: __init__.py (the manifest) and service.py (the logic,
# callable without HTTP). The others are required when the plugin has what they hold:
# routes.py and schemas.py when it adds routes (routes.py, or its own register_routes),
# models.py and migrations/ when it owns tables, tasks.py when it implements register_tasks
# itself. "Small plugins may merge files" is read as: a plugin without routes, tables or
# tasks leaves those files out, nothing more. "Big ones may split service.py": any required
# module may be a package (service/__init__.py).
ALWAYS = ("__init__", "service")
WHEN = {
    "register_routes": ("routes", "schemas"),
    "register_tasks": ("tasks",),
}


def _template(text: str) -> Template:
    return Template(text.lstrip("\n"))


INIT = _template('''
"""$title: $description"""
from myhibachi.core import Plugin, hookimpl


class $cls(Plugin):
    name = "$name"
    version = "0.1.0"
    flag = "$flag"
    description = "$description"
    features: dict[str, list[str]] = {}
    requires: tuple[str, ...] = ()
    core = "$core_range"
    permissions = ("$name.read", "$name.write")

    @hookimpl
    def register_event_handlers(self):
        from $package import service

        return service.HANDLERS


plugin = $cls()
''')

MODELS = _template('''
"""Tables of $name: only its own, each tagged ``info={"plugin": "$name"}``."""
import sqlalchemy as sa

from myhibachi.core import created_at, metadata, uuid_pk

OWNER = {"plugin": "$name"}

items = sa.Table(
    "${name}_items",
    metadata,
    uuid_pk(),
    sa.Column("label", sa.Text, nullable=False),
    created_at(),
    info=OWNER,
)
''')

SCHEMAS = _template('''
"""Request and response models of $name."""
import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from myhibachi.core import NextCursor


class ItemIn(BaseModel):
    label: str = Field(min_length=1, max_length=200)


class ItemOut(BaseModel):
    id: uuid.UUID
    label: str
    created_at: datetime


class ItemPage(BaseModel):
    items: list[ItemOut]
    next_cursor: NextCursor
''')

SERVICE = _template('''
"""The logic of $name, callable without HTTP (routes, tasks and event handlers use it)."""
import uuid

import sqlalchemy as sa

from myhibachi.core import fetch_page
from $package.models import items


async def create_item(conn, label: str) -> dict:
    return await conn.fetch_one(sa.insert(items).values(id=uuid.uuid4(), label=label).returning(items))


async def list_items(conn, limit: int, cursor: str | None) -> tuple[list[dict], str | None]:
    """A page of items, newest first, and the next page's cursor."""
    return await fetch_page(conn, sa.select(items), (items.c.created_at, items.c.id), limit=limit, cursor=cursor)


# Domain events this plugin handles: {"booking.created": [async def handler(conn, event, ctx)]}.
HANDLERS: dict[str, list] = {}
''')

ROUTES = _template('''
"""HTTP routes of $name: thin, the logic is in service."""
from fastapi import APIRouter, Depends

from myhibachi.core import CURSOR, LIMIT, Conn, Connection, error_responses, require
from $package import service
from $package.schemas import ItemIn, ItemOut, ItemPage


def add_routes(router: APIRouter, ctx) -> None:
    @router.post("/$slug/items", response_model=ItemOut, status_code=201,
                 responses=error_responses(401, 403, 404))
    async def create_item(body: ItemIn, conn: Conn = Connection, _=Depends(require("$name.write"))) -> ItemOut:
        return ItemOut(**await service.create_item(conn, body.label))

    # The same conn parameter is a transaction on the POST above and a read connection here.
    @router.get("/$slug/items", response_model=ItemPage, responses=error_responses(401, 403, 404, 422))
    async def list_items(limit: int = LIMIT, cursor: str | None = CURSOR, conn: Conn = Connection,
                         _=Depends(require("$name.read"))) -> ItemPage:
        rows, next_cursor = await service.list_items(conn, limit, cursor)
        return ItemPage(items=[ItemOut(**row) for row in rows], next_cursor=next_cursor)
''')

MIGRATION = _template('''
"""$name items

Revision ID: ${name}_0001
Revises:
Create Date: scaffold
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "${name}_0001"
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = ("$name",)
depends_on: Union[str, Sequence[str], None] = "$core_head"


def upgrade() -> None:
    op.create_table(
        "${name}_items",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_${name}_items")),
    )


def downgrade() -> None:
    op.drop_table("${name}_items")
''')

TEST = _template('''
"""$name: the scaffold's routes, behind the flag $flag and the $name.* permissions.

Only the myhibachi.testing fixtures (make_app, client_of, staff), so it runs where the
plugin's own distribution is tested."""
from $package import plugin


async def test_${name}_items_created_and_listed_behind_flag(make_app, client_of, staff):
    app = make_app([plugin], flags={"$flag": True})
    headers = await staff(["$name.read", "$name.write"])
    async with client_of(app, headers=headers) as c:
        created = await c.post("/v1/$slug/items", json={"label": "first"})
        listed = await c.get("/v1/$slug/items")
        empty = await c.post("/v1/$slug/items", json={"label": ""})
    assert created.status_code == 201, created.text
    assert [i["label"] for i in listed.json()["items"]] == ["first"] and listed.json()["next_cursor"] is None
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "body.label"

    off = make_app([plugin], flags={"$flag": False})
    async with client_of(off, headers=headers) as c:
        gated = await c.get("/v1/$slug/items")
    assert gated.status_code == 404 and gated.json()["flag"] == "$flag"
''')

PYPROJECT = _template('''
[build-system]
requires = ["setuptools>=69", "wheel"]
build-backend = "setuptools.build_meta"

[project]
name = "$distribution"
version = "0.1.0"
description = "$description"
requires-python = ">=3.11"
dependencies = ["myhibachi$core_range"]

[project.entry-points."myhibachi.plugins"]
$name = "$package:plugin"

[project.optional-dependencies]
test = ["myhibachi[testing]"]  # the myhibachi.testing fixtures: make_app, client_of, customer, staff, ...

[tool.setuptools]
packages = ["$package", "$package.migrations"]  # the migrations folder ships as a package of its own

[tool.pytest.ini_options]
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "session"
asyncio_default_test_loop_scope = "session"
''')


def core_head() -> str:
    """The core branch's head revision, read from its files (no database needed)."""
    from alembic.script import ScriptDirectory

    from myhibachi.core.migrate import CORE_DIR

    heads = ScriptDirectory(str(CORE_DIR), version_locations=[str(CORE_DIR / "versions")]).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"the core branch has {len(heads)} heads: {', '.join(heads)}")
    return heads[0]


def core_range() -> str:
    """The core versions a new plugin supports: from this core's minor release to the next major."""
    from packaging.version import Version

    from myhibachi.core import __version__

    v = Version(__version__)
    return f">={v.major}.{v.minor},<{v.major + 1}"


def scaffold(name: str, directory: Path, *, flag: str | None = None, package: str | None = None,
             distribution: str | None = None, tests: Path | None = None,
             description: str | None = None) -> Path:
    """Write a new plugin; returns its package folder.

    Built-in (default): ``<directory>/<name>/`` as ``myhibachi.plugins.<name>`` and its
    test in ``tests/plugins/<name>/``. Third party (``distribution``): a distribution
    folder ``<directory>/<distribution>/`` with ``pyproject.toml`` (the entry point), the
    package ``<package or name>/`` and its test in ``tests/`` inside it. The test uses only
    the ``myhibachi.testing`` fixtures.
    """
    if not NAME.fullmatch(name) or keyword.iskeyword(name):
        raise ValueError(f"plugin name {name!r} must be lower_case letters, digits and _")
    flag = flag or f"FEATURE_FLAG_{name.upper()}"
    if distribution:
        package = package or name
        root = Path(directory) / distribution
        folder = root / package.replace(".", "/")
        tests = Path(tests or root / "tests")
    else:
        package = package or f"myhibachi.plugins.{name}"
        root = None
        folder = Path(directory) / name
        tests = Path(tests or Path("tests") / "plugins" / name)
    if folder.name != name:
        raise ValueError(f"the package folder ({folder.name}) must be named like the plugin ({name})")
    if folder.exists():
        raise FileExistsError(f"{folder} already exists")
    values = {
        "name": name, "flag": flag, "package": package, "slug": name.replace("_", "-"),
        "cls": "".join(part.title() for part in name.split("_")) + "Plugin",
        "title": name.replace("_", " ").capitalize(),
        "description": description or f"the {name.replace('_', ' ')} plugin.",
        "core_head": core_head(), "core_range": core_range(), "distribution": distribution or "",
    }
    files = {
        folder / "__init__.py": INIT, folder / "models.py": MODELS, folder / "schemas.py": SCHEMAS,
        folder / "service.py": SERVICE, folder / "routes.py": ROUTES,
        folder / "migrations" / f"{name}_0001_items.py": MIGRATION,
        tests / f"test_{name}.py": TEST,
    }
    if root is not None:
        files[root / "pyproject.toml"] = PYPROJECT
    for path, template in files.items():
        if path.exists():
            raise FileExistsError(f"{path} already exists")
    for path, template in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.substitute(values))
    init = tests / "__init__.py"
    if not init.exists() and (tests.parent / "__init__.py").exists():
        init.write_text("")
    return folder


def shape_problems(plugin) -> list[str]:
    """What is missing or out of place in a plugin's folder, by the rule above."""
    import inspect

    import myhibachi.core.models  # noqa: F401  (plugins' foreign keys point at core tables)
    from myhibachi.core.db import tables_of
    from myhibachi.core.plugins import import_submodule

    folder = Path(inspect.getfile(type(plugin))).parent
    problems = []
    if folder.name != plugin.name:
        problems.append(f"folder {folder.name} is not named like the plugin {plugin.name}")

    def has(module: str) -> bool:
        return (folder / f"{module}.py").is_file() or (folder / module / "__init__.py").is_file()

    from myhibachi.core.plugins import Plugin

    needed = list(ALWAYS)
    for hook, modules in WHEN.items():
        if has(modules[0]) or getattr(type(plugin), hook, None) is not getattr(Plugin, hook):
            needed.extend(modules)
    if has("models"):
        import_submodule(plugin, "models")
    owned = tables_of(plugin.name)
    if owned or (folder / "migrations").is_dir():
        needed.append("models")
        if not (folder / "migrations").is_dir():
            problems.append("owns tables but has no migrations/ folder")
    if has("models") and not owned:
        problems.append("models.py declares no table tagged with the plugin's name")
    if Path(inspect.getfile(type(plugin))).name != "__init__.py":
        problems.append(f"the manifest is defined in {type(plugin).__module__}, not in the package's __init__.py")
    problems.extend(f"{m}.py is missing" for m in dict.fromkeys(needed) if not has(m))
    return problems
