"""Plugin manifests, discovery through entry points, and the flag-aware plugin manager."""
from __future__ import annotations

import importlib
import inspect
import logging
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable, Iterable

import pluggy
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

log = logging.getLogger("myhibachi.plugins")

ENTRY_POINT_GROUP = "myhibachi.plugins"
hookimpl = pluggy.HookimplMarker("myhibachi")


class PluginError(RuntimeError):
    """A plugin was refused (bad manifest, missing requirement, cycle, failed import)."""


class Plugin:
    """Base of every plugin object; its class attributes are the plugin's manifest.

    ``name`` is the folder, the entry point and the Alembic branch label. ``flag`` is the
    Unleash flag that gates the plugin's routes and hooks (None: always on). ``features``
    maps roadmap ids to the test names that prove them. ``requires`` names other plugins.
    ``core`` is a version specifier of the core versions the plugin supports.
    """

    name: str = ""
    version: str = "0.0.0"
    flag: str | None = None
    description: str = ""
    features: dict[str, list[str]] = {}
    requires: tuple[str, ...] = ()
    core: str = ">=0.1"
    permissions: tuple[str, ...] = ()

    @hookimpl
    def migration_location(self) -> str | None:
        folder = Path(inspect.getfile(type(self))).parent / "migrations"
        return str(folder) if folder.is_dir() else None

    @hookimpl
    def register_permissions(self) -> list[str]:
        return list(self.permissions)

    def __repr__(self) -> str:
        return f"<plugin {self.name} {self.version}>"


@dataclass
class PluginRecord:
    """What the manager knows about one discovered plugin."""

    name: str
    plugin: Plugin | None = None
    state: str = "enabled"  # enabled | failed | not selected
    reason: str = ""
    source: str = ""

    @property
    def version(self) -> str:
        return self.plugin.version if self.plugin else ""

    @property
    def flag(self) -> str | None:
        return self.plugin.flag if self.plugin else None

    @property
    def requires(self) -> tuple[str, ...]:
        return tuple(self.plugin.requires) if self.plugin else ()

    @property
    def features(self) -> dict[str, list[str]]:
        return dict(self.plugin.features) if self.plugin else {}


def validate_manifest(plugin: Any, core_version: str) -> None:
    """Raise PluginError unless ``plugin`` is a well-formed manifest this core supports."""
    if not isinstance(plugin, Plugin):
        raise PluginError(f"{plugin!r} is not a myhibachi.core.Plugin instance")
    if not plugin.name or not plugin.name.isidentifier():
        raise PluginError(f"plugin name {plugin.name!r} must be a Python identifier")
    try:
        Version(plugin.version)
    except Exception as exc:
        raise PluginError(f"plugin {plugin.name}: bad version {plugin.version!r}") from exc
    try:
        supported = SpecifierSet(plugin.core)
    except InvalidSpecifier as exc:
        raise PluginError(f"plugin {plugin.name}: bad core specifier {plugin.core!r}") from exc
    if Version(core_version) not in supported:
        raise PluginError(
            f"plugin {plugin.name} supports core {plugin.core}, this core is {core_version}"
        )


def discover() -> dict[str, Callable[[], Any]]:
    """Entry points of the group, by name: loaders that import the plugin object."""
    found: dict[str, Callable[[], Any]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = ep.load
    return found


class PluginManager:
    """Loads plugins, registers them with pluggy, and calls hooks with the flags applied.

    ``call_all``/``call_first`` run the request-time hooks of the plugins whose flag is on
    for the given flag context; both await async implementations. ``register_*`` hooks
    are called through ``hook`` (pluggy's relay) for every loaded plugin.
    """

    def __init__(self, *, trace: bool = False) -> None:
        from myhibachi.core import hookspecs

        self.pm = pluggy.PluginManager("myhibachi")
        self.pm.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}
        self.flags = None  # set by the app: an object with enabled(flag, context) -> bool
        self._impls: dict[str, list] = {}
        if trace:
            self.pm.trace.root.setwriter(lambda msg: log.info("hook %s", msg.rstrip()))
            self.pm.enable_tracing()

    @property
    def hook(self):
        return self.pm.hook

    @property
    def plugins(self) -> list[Plugin]:
        return [r.plugin for r in self.records.values() if r.state == "enabled" and r.plugin]

    def get(self, name: str) -> Plugin | None:
        rec = self.records.get(name)
        return rec.plugin if rec and rec.state == "enabled" else None

    def load(
        self,
        candidates: Iterable[Any] | dict[str, Callable[[], Any]],
        *,
        allow: set[str] | None = None,
        deny: Iterable[str] = (),
        strict: bool = False,
        core_version: str | None = None,
    ) -> None:
        """Load plugins from objects or from ``{name: loader}``; refuse the bad ones.

        A plugin that fails to import, has a bad manifest, lacks a requirement, is part of
        a requirement cycle, or raises while registering is recorded as failed and left
        out (``strict`` raises instead).
        """
        from myhibachi.core import __version__

        core_version = core_version or __version__
        deny = set(deny)
        loaded: dict[str, Plugin] = {}
        items = candidates.items() if isinstance(candidates, dict) else ((None, c) for c in candidates)
        for name, cand in items:
            try:
                plugin = cand() if name is not None else cand
                if isinstance(plugin, type):
                    plugin = plugin()
                validate_manifest(plugin, core_version)
                if name is not None and plugin.name != name:
                    raise PluginError(f"entry point {name!r} names plugin {plugin.name!r}")
            except Exception as exc:
                self._fail(name or getattr(cand, "name", repr(cand)), f"{type(exc).__name__}: {exc}", strict)
                continue
            if (allow is not None and plugin.name not in allow) or plugin.name in deny:
                self.records[plugin.name] = PluginRecord(plugin.name, plugin, "not selected")
                continue
            loaded[plugin.name] = plugin

        for name in self._unresolvable(loaded, strict):
            loaded.pop(name)

        order = TopologicalSorter({n: [r for r in p.requires] for n, p in loaded.items()}).static_order()
        for name in order:
            plugin = loaded[name]
            try:
                self.pm.register(plugin, name=name)
                self.records[name] = PluginRecord(name, plugin, "enabled", source=type(plugin).__module__)
            except Exception as exc:
                if self.pm.is_registered(plugin):
                    self.pm.unregister(plugin)
                self._fail(name, f"{type(exc).__name__}: {exc}", strict, plugin)
        self.pm.check_pending()
        self._impls.clear()

    def _fail(self, name: str, reason: str, strict: bool, plugin: Plugin | None = None) -> None:
        log.error("plugin %s left out: %s", name, reason)
        self.records[name] = PluginRecord(name, plugin, "failed", reason)
        if strict:
            raise PluginError(f"plugin {name} failed: {reason}")

    def _unresolvable(self, loaded: dict[str, Plugin], strict: bool) -> list[str]:
        """Names to drop: plugins with a missing requirement (transitively) or in a cycle."""
        dropped: dict[str, str] = {}
        changed = True
        while changed:
            changed = False
            for name, plugin in loaded.items():
                if name in dropped:
                    continue
                for req in plugin.requires:
                    if req not in loaded or req in dropped:
                        why = "is not installed" if req not in loaded and req not in self.records else (
                            f"is {self.records[req].state}" if req in self.records else "was refused")
                        dropped[name] = f"requires plugin {req}, which {why}"
                        changed = True
                        break
        graph = {n: [r for r in p.requires if r not in dropped] for n, p in loaded.items() if n not in dropped}
        while True:
            try:
                TopologicalSorter(graph).prepare()
                break
            except CycleError as exc:
                cycle = exc.args[1]
                names = " -> ".join(cycle)
                for n in set(cycle):
                    dropped[n] = f"requirement cycle: {names}"
                    graph.pop(n, None)
                graph = {n: [r for r in reqs if r in graph] for n, reqs in graph.items()}
        for name, reason in dropped.items():
            self._fail(name, reason, strict, loaded[name])
        return list(dropped)

    # --- request-time hooks, flags applied ------------------------------------------------

    def _hookimpls(self, hook_name: str) -> list:
        impls = self._impls.get(hook_name)
        if impls is None:
            # pluggy calls the last registered first; keep that order.
            impls = list(reversed(getattr(self.pm.hook, hook_name).get_hookimpls()))
            self._impls[hook_name] = impls
        return impls

    def _active(self, impl, context: dict | None) -> bool:
        plugin = impl.plugin
        flag = getattr(plugin, "flag", None)
        if not flag or self.flags is None:
            return True
        return self.flags.enabled(flag, context)

    async def call_all(self, hook_name: str, context: dict | None = None, **kwargs: Any) -> list[Any]:
        """Every enabled implementation's non-None result, awaited, in call order."""
        results = []
        for impl in self._hookimpls(hook_name):
            if not self._active(impl, context):
                continue
            result = impl.function(*[kwargs[a] for a in impl.argnames])
            if inspect.isawaitable(result):
                result = await result
            if result is not None:
                results.append(result)
        return results

    async def call_first(self, hook_name: str, context: dict | None = None, **kwargs: Any) -> Any:
        """The first enabled implementation's non-None result, awaited."""
        for impl in self._hookimpls(hook_name):
            if not self._active(impl, context):
                continue
            result = impl.function(*[kwargs[a] for a in impl.argnames])
            if inspect.isawaitable(result):
                result = await result
            if result is not None:
                return result
        return None

    def setup_call(self, hook_name: str, *, strict: bool = False, own: Callable[[Plugin], dict] | None = None,
                   **kwargs: Any) -> list[tuple[Plugin, Any]]:
        """Call a start-up hook plugin by plugin; a plugin that raises is reported and left out.

        ``own(plugin)`` gives arguments of that plugin's own (its router, for example).
        """
        out = []
        for impl in list(self._hookimpls(hook_name)):
            args = {**kwargs, **own(impl.plugin)} if own else kwargs
            try:
                out.append((impl.plugin, impl.function(*[args[a] for a in impl.argnames])))
            except Exception as exc:
                self.fail(impl.plugin, f"{hook_name} raised {type(exc).__name__}: {exc}", strict)
        return out

    def fail(self, plugin: Plugin, reason: str, strict: bool = False) -> None:
        """Leave a registered plugin out after it failed during start-up."""
        if self.pm.is_registered(plugin):
            self.pm.unregister(plugin)
        self._impls.clear()
        self._fail(plugin.name, reason, strict, plugin)


def load_installed(settings, *, strict: bool | None = None, trace: bool | None = None) -> PluginManager:
    """A manager with the installed plugins selected by the settings."""
    manager = PluginManager(trace=settings.trace_hooks if trace is None else trace)
    manager.load(
        discover(),
        allow=settings.allowed_plugins,
        deny=settings.excluded_plugins,
        strict=settings.strict_plugins if strict is None else strict,
    )
    return manager


def import_submodule(plugin: Plugin, name: str):
    """Import ``<plugin package>.<name>`` when it exists, else None."""
    package = type(plugin).__module__
    try:
        return importlib.import_module(f"{package}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"{package}.{name}":
            return None
        raise


__all__ = [
    "ENTRY_POINT_GROUP",
    "Plugin",
    "PluginError",
    "PluginManager",
    "PluginRecord",
    "discover",
    "hookimpl",
    "load_installed",
]
