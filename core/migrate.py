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
        if manager.get(plugin.name) is None:  # left out with a requirement that failed here
            continue
        try:
            import_submodule(plugin, "models")
        except Exception as exc:
            manager.fail(plugin, f"models raised {type(exc).__name__}: {exc}")


def locations(manager: PluginManager) -> dict[str, str]:
    found = {"core": str(CORE_DIR / "versions")}
    for plugin, location in manager.setup_call("migration_location"):
        if location:
            found[plugin.name] = str(Path(location).resolve())
    return found


def config(url: str, manager: PluginManager, *, owner: str | None = None, settings: Any = None) -> Config:
    """Alembic's configuration; ``settings`` (the app's) give data migrations the key that seals
    PII (a revision reads ``config.attributes["settings"]``, the environment's when None)."""
    load_models(manager)
    cfg = Config()
    cfg.set_main_option("script_location", str(CORE_DIR))
    cfg.set_main_option("path_separator", "newline")
    cfg.set_main_option("version_locations", "\n".join(locations(manager).values()))
    cfg.attributes["url"] = url
    cfg.attributes["owner"] = owner
    cfg.attributes["settings"] = settings
    return cfg


def upgrade(url: str, manager: PluginManager, *, app_role: str | None = None, settings: Any = None) -> None:
    """Apply every branch's heads as the owner at ``url``; then grant ``app_role`` (when the API
    and workers connect as a role of their own) what they need (see :mod:`myhibachi.core.roles`)."""
    cfg = config(url, manager, settings=settings)
    applied_heads(url, ScriptDirectory.from_config(cfg))
    try:
        command.upgrade(cfg, "heads")
    except Exception as exc:  # all branches run in one transaction: nothing was applied
        owner = _failed_owner(exc, locations(manager))
        if owner is None:
            raise
        import logging

        logging.getLogger("myhibachi.plugins").debug("migration of %s failed here", owner, exc_info=True)
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        what = "the core" if owner == "core" else f"plugin {owner}"
        raise MigrationError(f"the migration of {what} failed, nothing was applied: "
                             f"{type(getattr(exc, 'orig', None) or exc).__name__}: {reason}") from None
    if app_role:
        from myhibachi.core import roles

        roles.grant(url, app_role)


def _failed_owner(exc: BaseException, found: dict[str, str]) -> str | None:
    """The branch whose revision file raised: the innermost traceback frame in a versions folder."""
    owner, tb = None, exc.__traceback__
    while tb is not None:
        path = str(Path(tb.tb_frame.f_code.co_filename).resolve())
        owner = next((name for name, folder in found.items() if path.startswith(folder.rstrip("/") + "/")), owner)
        tb = tb.tb_next
    return owner


def applied_heads(url: str, script: ScriptDirectory) -> tuple[str, ...]:
    """The revisions recorded in the database; refuses those no installed branch knows.

    Alembic's own error for that case ("Can't locate revision") names no plugin and
    comes from every command, so say what happened and what to do.
    """
    import sqlalchemy as sa
    from alembic.script.revision import ResolutionError
    from alembic.util import CommandError

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            heads = MigrationContext.configure(conn).get_current_heads()
    finally:
        engine.dispose()
    unknown = []
    for head in heads:
        try:
            script.get_revision(head)
        except (ResolutionError, CommandError):
            unknown.append(head)
    if unknown:
        raise MigrationError(
            f"the database has revision {', '.join(unknown)} of a plugin that is not installed (or not "
            "selected); install it again, then `myhibachi db downgrade <plugin>` before uninstalling it"
        )
    return heads


def downgrade_plugin(url: str, manager: PluginManager, name: str, *, cascade: bool = False,
                     settings: Any = None) -> None:
    """Remove one plugin's tables (``downgrade NAME@base``); refuse when others depend on it."""
    if name == "core":
        raise MigrationError("the core branch is not downgraded on its own")
    cfg = config(url, manager, settings=settings)
    script = ScriptDirectory.from_config(cfg)
    if not any(name in (rev.branch_labels or ()) for rev in script.walk_revisions()):
        raise MigrationError(f"plugin {name} has no migration branch")
    applied = current(url, manager)
    if name not in applied:
        raise MigrationError(f"plugin {name} has no tables applied")
    # Alembic's "downgrade A@base" silently takes every branch whose revisions depend on A
    # down first; a plugin that requires A may also rely on A's tables without saying so.
    dependents = sorted(
        branch for branch, head in applied.items()
        if branch not in (name, "core") and (
            any(_branch(script, rev.revision) == name for rev in script.iterate_revisions(head, "base"))
            or any(name in p.requires for p in manager.plugins if p.name == branch))
    )
    if dependents and not cascade:
        raise MigrationError(
            f"plugins {', '.join(sorted(dependents))} depend on {name}; downgrade them first or pass --cascade"
        )
    for dependent in dependents:
        if dependent in current(url, manager):
            command.downgrade(cfg, f"{dependent}@base")
    command.downgrade(cfg, f"{name}@base")


def current(url: str, manager: PluginManager) -> dict[str, str]:
    """Applied revision per branch label."""
    cfg = config(url, manager)
    script = ScriptDirectory.from_config(cfg)
    heads = applied_heads(url, script)
    applied: set[str] = set()
    for head in heads:
        applied.update(rev.revision for rev in script.iterate_revisions(head, "base"))
    out: dict[str, str] = {}
    for revision in applied:
        if not any(revision in _downs(script.get_revision(other)) for other in applied):
            out[_branch(script, revision)] = revision
    return dict(sorted(out.items()))


def _downs(rev) -> tuple[str, ...]:
    down = rev.down_revision
    return () if down is None else (down,) if isinstance(down, str) else tuple(down)


def _branch(script: ScriptDirectory, revision: str) -> str:
    """The label declared at the root of a revision's own chain (dependencies not followed)."""
    rev = script.get_revision(revision)
    while _downs(rev):
        rev = script.get_revision(_downs(rev)[0])
    labels = getattr(rev.module, "branch_labels", None) or ()
    labels = (labels,) if isinstance(labels, str) else tuple(labels)
    return labels[0] if labels else rev.revision


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
