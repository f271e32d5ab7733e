"""Alembic configured in code: one branch for the core, one per installed plugin.

The API process never imports this module (Alembic costs start-up time); the CLI and the
tests do. Upgrades hold a PostgreSQL advisory lock, so two processes never race.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from myhibachi.core.plugins import PluginManager, import_submodule

CORE_DIR = Path(__file__).parent / "migrations"
LOCK_ID = 0x6D796869  # "myhi"


class MigrationError(RuntimeError):
    pass


def load_models(manager: PluginManager) -> None:
    import myhibachi.core.models  # noqa: F401

    for plugin in manager.plugins:
        import_submodule(plugin, "models")


def locations(manager: PluginManager) -> dict[str, str]:
    found = {"core": str(CORE_DIR / "versions")}
    for plugin, location in manager.setup_call("migration_location"):
        if location:
            found[plugin.name] = str(Path(location).resolve())
    return found


def config(url: str, manager: PluginManager, *, owner: str | None = None) -> Config:
    load_models(manager)
    cfg = Config()
    cfg.set_main_option("script_location", str(CORE_DIR))
    cfg.set_main_option("path_separator", "newline")
    cfg.set_main_option("version_locations", "\n".join(locations(manager).values()))
    cfg.attributes["url"] = url
    cfg.attributes["owner"] = owner
    return cfg


def upgrade(url: str, manager: PluginManager) -> None:
    command.upgrade(config(url, manager), "heads")


def downgrade_plugin(url: str, manager: PluginManager, name: str, *, cascade: bool = False) -> None:
    """Remove one plugin's tables (``downgrade NAME@base``); refuse when others depend on it."""
    if name == "core":
        raise MigrationError("the core branch is not downgraded on its own")
    cfg = config(url, manager)
    script = ScriptDirectory.from_config(cfg)
    try:
        script.get_revisions(f"{name}@base")
    except Exception as exc:
        raise MigrationError(f"plugin {name} has no migration branch") from exc
    applied = set(current(url, manager))
    dependents = [p.name for p in manager.plugins if name in p.requires and p.name in applied]
    if dependents and not cascade:
        raise MigrationError(
            f"plugins {', '.join(sorted(dependents))} depend on {name}; downgrade them first or pass --cascade"
        )
    command.downgrade(cfg, f"{name}@base")


def current(url: str, manager: PluginManager) -> dict[str, str]:
    """Applied revision per branch label."""
    import sqlalchemy as sa

    cfg = config(url, manager)
    script = ScriptDirectory.from_config(cfg)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            heads = MigrationContext.configure(conn).get_current_heads()
    finally:
        engine.dispose()
    out: dict[str, str] = {}
    for head in heads:
        for rev in script.iterate_revisions(head, "base"):
            for label in rev.branch_labels or ():
                out.setdefault(label, head)
    return out


def new_revision(url: str, manager: PluginManager, owner: str, message: str) -> Any:
    """Autogenerate a revision of ``owner``'s tables into its own branch."""
    locs = locations(manager)
    if owner not in locs:
        raise MigrationError(f"{owner} has no migrations folder")
    cfg = config(url, manager, owner=owner)
    script = ScriptDirectory.from_config(cfg)
    first = not any(owner in (rev.branch_labels or ()) for rev in script.walk_revisions())
    if first:
        return command.revision(
            cfg, message, autogenerate=True, head="base", branch_label=owner, version_path=locs[owner],
            depends_on=None if owner == "core" else "core@head",
        )
    return command.revision(cfg, message, autogenerate=True, head=f"{owner}@head", version_path=locs[owner])
