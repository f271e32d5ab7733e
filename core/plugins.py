"""Plugin manifests, discovery through entry points, and the flag-aware plugin manager."""
from __future__ import annotations

import importlib
import inspect
import logging
import re
import sys
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable, Iterable, cast

import pluggy
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from myhibachi.core.hookspecs import UNGATED, Hooks

log = logging.getLogger("myhibachi.plugins")

ENTRY_POINT_GROUP = "myhibachi.plugins"
_FLAG = re.compile(r"[A-Z][A-Z0-9_]*")
SYSTEM = {"userId": "system"}
hookimpl = pluggy.HookimplMarker("myhibachi")


class PluginError(RuntimeError):
    """A plugin was refused (bad manifest, missing requirement, cycle, failed import)."""


class Plugin:
    """Base of every plugin object; its class attributes are the plugin's manifest.

    ``name`` is the folder, the entry point and the Alembic branch label. ``flag`` is the
    Unleash flag that gates the plugin's routes and hooks (None: always on). ``features``
    maps roadmap ids to the test names that prove them. ``requires`` names other plugins;
    ``uses`` names plugins whose services it takes when they are installed (it runs without them).
    ``core`` is a version specifier of the core versions the plugin supports.
    ``services`` maps the protocols it provides (``myhibachi.core.services``) to factories
    called once with the app's context; other plugins reach them with ``ctx.service``.
    ``settings`` is a pydantic model; the object's ``settings`` is its instance, read from
    ``MYHIBACHI_<NAME>_<FIELD>`` after the constructor's keywords. By convention the package's
    ``routes.py`` has ``add_routes(router, ctx)``, ``tasks.py`` ``add_tasks(huey, ctx)`` and
    ``migrations/`` the Alembic branch; a plugin implementing those hooks replaces the convention.
    """

    name: str = ""
    version: str = "0.0.0"
    flag: str | None = None
    description: str = ""
    features: dict[str, list[str]] = {}
    requires: tuple[str, ...] = ()
    uses: tuple[str, ...] = ()
    core: str = ">=0.1"
    permissions: tuple[str, ...] = ()
    services: dict[type, Callable[[Any], Any]] = {}
    settings: Any = None  # the model on the class, its instance on the object
    compliance: bool = False  # its flag is created on, and kept on, by `myhibachi flags sync`

    def __init__(self, **overrides: Any) -> None:
        from myhibachi.core.settings import plugin_settings

        self.settings = plugin_settings(self, overrides)

    @hookimpl
    def register_routes(self, router, ctx) -> None:
        _by_convention(self, "routes", "add_routes", router, ctx)

    @hookimpl
    def register_tasks(self, huey, ctx) -> None:
        _by_convention(self, "tasks", "add_tasks", huey, ctx)

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

    def __getattr__(self, field: str) -> Any:
        # version, flag, requires, features: the manifest's, or empty for a plugin that did not load
        if field not in _MANIFEST_DEFAULTS:
            raise AttributeError(field)
        return getattr(self.plugin, field) if self.plugin else _MANIFEST_DEFAULTS[field]


_MANIFEST_DEFAULTS: dict[str, Any] = {"version": "", "flag": None, "requires": (), "features": {}, "compliance": False}


def validate_manifest(plugin: Any, core_version: str) -> None:
    """Raise PluginError unless ``plugin`` is a well-formed manifest this core supports."""
    if not isinstance(plugin, Plugin):
        raise PluginError(f"{plugin!r} is not a myhibachi.core.Plugin instance")
    if not plugin.name or not plugin.name.isidentifier():
        raise PluginError(f"plugin name {plugin.name!r} must be a Python identifier")
    if plugin.flag is not None and not (isinstance(plugin.flag, str) and _FLAG.fullmatch(plugin.flag)):
        raise PluginError(f"plugin {plugin.name}: flag {plugin.flag!r} must be an UPPER_CASE name or None")
    if isinstance(plugin.requires, str) or not all(isinstance(r, str) for r in plugin.requires):
        raise PluginError(f"plugin {plugin.name}: requires must be a list of plugin names")
    if plugin.name in plugin.requires:
        raise PluginError(f"plugin {plugin.name} requires itself")
    if not isinstance(plugin.features, dict) or not all(
            isinstance(v, (list, tuple)) and all(isinstance(t, str) for t in v) for v in plugin.features.values()):
        raise PluginError(f"plugin {plugin.name}: features must map roadmap ids to lists of test names")
    if isinstance(plugin.permissions, str) or not all(isinstance(p, str) and "." in p for p in plugin.permissions):
        raise PluginError(f"plugin {plugin.name}: permissions must be '<area>.<verb>' strings")
    if not isinstance(plugin.services, dict) or not all(
            isinstance(k, type) and callable(v) for k, v in plugin.services.items()):
        raise PluginError(f"plugin {plugin.name}: services must map protocol classes to factories")
    try:
        Version(plugin.version)
    except Exception as exc:
        raise PluginError(f"plugin {plugin.name}: bad version {plugin.version!r}") from exc
    try:
        supported = SpecifierSet(plugin.core)
    except InvalidSpecifier as exc:
        raise PluginError(f"plugin {plugin.name}: bad core specifier {plugin.core!r}") from exc
    if Version(core_version) not in supported:
        raise PluginError(f"plugin {plugin.name} supports core {plugin.core}, this core is {core_version}")


def discover() -> dict[str, Callable[[], Any]]:
    """Entry points of the group, by name: loaders that import the plugin object."""
    return {ep.name: ep.load for ep in entry_points(group=ENTRY_POINT_GROUP)}


class PluginManager:
    """Loads plugins, registers them with pluggy, and calls hooks with the flags applied.

    ``relay(ctx, context)`` gives the request-time hooks as attributes typed by
    :class:`~myhibachi.core.hookspecs.Hooks`, over the plugins whose flag is on for the
    given flag context. ``setup_call`` runs a start-up hook plugin by plugin. With
    ``trace`` every hook call and result is logged (``myhibachi.plugins``, level INFO).
    """

    def __init__(self, *, trace: bool = False) -> None:
        from myhibachi.core import hookspecs

        self.pm = pluggy.PluginManager("myhibachi")
        self.pm.add_hookspecs(hookspecs.Hooks)
        self._spec_names = [n for n, fn in vars(hookspecs.Hooks).items() if hasattr(fn, "myhibachi_spec")]
        self._specs: dict[str, bool] = {}
        self.records: dict[str, PluginRecord] = {}
        self.flags = None  # set by the app: an object with enabled(flag, context) -> bool
        self._impls: dict[str, list] = {}
        self.trace = trace
        self._hooktrace = self.pm.trace.root.get("hook")
        if trace:
            log.setLevel(logging.INFO)
            if not logging.getLogger().handlers and not log.handlers:
                # nothing configured logging (granian, the CLI): tracing must still be seen
                handler = logging.StreamHandler()
                handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
                log.addHandler(handler)
            self.pm.trace.root.setwriter(lambda msg: log.info("hook %s", msg.rstrip()))
            self.pm.enable_tracing()
        self._build_registry()

    @property
    def plugins(self) -> list[Plugin]:
        return [r.plugin for r in self.records.values() if r.state == "enabled" and r.plugin]

    def get(self, name: str) -> Plugin | None:
        rec = self.records.get(name)
        return rec.plugin if rec and rec.state == "enabled" else None

    def load(self, candidates: Iterable[Any] | dict[str, Callable[[], Any]], *, allow: set[str] | None = None,
             deny: Iterable[str] = (), strict: bool = False, core_version: str | None = None) -> None:
        """Load plugins from objects or from ``{name: loader}``; refuse the bad ones.

        A plugin that fails to import, has a bad manifest, lacks a requirement, is part of
        a requirement cycle, or implements a hook that does not exist is recorded as
        failed and left out (``strict`` raises instead). Plugins outside ``allow`` or in
        ``deny`` are recorded as "not selected"; their import errors are not failures.
        """
        from myhibachi.core import __version__

        core_version = core_version or __version__
        deny = set(deny)
        loaded: dict[str, Plugin] = {}
        items = candidates.items() if isinstance(candidates, dict) else ((None, c) for c in candidates)
        for name, cand in items:
            label = name or getattr(cand, "name", None) or repr(cand)
            selected = name is None or ((allow is None or name in allow) and name not in deny)
            try:
                plugin = cand() if name is not None else cand
                if isinstance(plugin, type):
                    plugin = plugin()
                validate_manifest(plugin, core_version)
                if name is not None and plugin.name != name:
                    raise PluginError(f"entry point {name!r} names plugin {plugin.name!r}")
            except Exception as exc:
                if selected:
                    self._fail(label, f"{type(exc).__name__}: {exc}", strict)
                else:
                    self.records[label] = PluginRecord(label, None, "not selected", f"{type(exc).__name__}: {exc}")
                continue
            if not selected or (allow is not None and plugin.name not in allow) or plugin.name in deny:
                self.records[plugin.name] = PluginRecord(plugin.name, plugin, "not selected",
                                                         source=type(plugin).__module__)
                continue
            if plugin.name in loaded or self.get(plugin.name):
                self._fail(plugin.name, f"two plugins are named {plugin.name}", strict)
                continue
            loaded[plugin.name] = plugin

        for name in self._unresolvable(loaded, strict):
            loaded.pop(name)

        order = TopologicalSorter({n: list(p.requires) for n, p in loaded.items()}).static_order()
        for name in order:
            plugin = loaded.get(name)
            if plugin is None:  # an already loaded requirement
                continue
            if missing := [r for r in plugin.requires if self.get(r) is None]:
                self._fail(name, f"requires plugin {', '.join(missing)}, which failed to register", strict, plugin)
                continue
            try:
                self.pm.register(plugin, name=name)
                # the plugins registered before passed this check, so what is pending is this one's
                self.pm.check_pending()
                self.records[name] = PluginRecord(name, plugin, "enabled", source=type(plugin).__module__)
            except Exception as exc:
                if self.pm.is_registered(plugin):
                    self.pm.unregister(plugin)
                self._fail(name, f"{type(exc).__name__}: {exc}", strict, plugin)
        self._build_registry()

    def _fail(self, name: str, reason: str, strict: bool, plugin: Plugin | None = None) -> None:
        reason = "; ".join(line.strip() for line in reason.splitlines() if line.strip())  # one table row
        log.error("plugin %s left out: %s", name, reason)
        if (exc := sys.exc_info()[1]) is not None:
            log.debug("plugin %s failed here", name, exc_info=exc)
        self.records[name] = PluginRecord(name, plugin, "failed", reason,
                                          source=type(plugin).__module__ if plugin else "")
        if strict:
            raise PluginError(f"plugin {name} failed: {reason}")

    def _unresolvable(self, loaded: dict[str, Plugin], strict: bool) -> list[str]:
        """Names to drop: plugins in a requirement cycle, or missing a requirement (transitively)."""
        dropped: dict[str, str] = {}
        graph = {n: [r for r in p.requires if r in loaded] for n, p in loaded.items()}
        while True:
            try:
                TopologicalSorter(graph).prepare()
                break
            except CycleError as exc:
                cycle = exc.args[1]
                names = " -> ".join(reversed(cycle))
                for n in set(cycle):
                    dropped[n] = f"requirement cycle: {names}"
                    graph.pop(n, None)
                graph = {n: [r for r in reqs if r in graph] for n, reqs in graph.items()}

        def missing(req: str) -> str | None:
            if self.get(req) is not None or (req in loaded and req not in dropped):
                return None
            return ("was refused" if req in dropped else f"is {self.records[req].state}" if req in self.records
                    else "is not installed")

        changed = True
        while changed:
            changed = False
            for name, plugin in loaded.items():
                if name in dropped:
                    continue
                for req in plugin.requires:
                    if why := missing(req):
                        dropped[name] = f"requires plugin {req}, which {why}"
                        changed = True
                        break
        for name, reason in dropped.items():
            self._fail(name, reason, strict, loaded[name])
        return list(dropped)

    # --- calling hooks ------------------------------------------------------------------------

    def _hookimpls(self, hook_name: str) -> list:
        impls = self._impls.get(hook_name)
        if impls is None:
            # pluggy calls the last registered first; keep that order.
            impls = list(reversed(getattr(self.pm.hook, hook_name).get_hookimpls()))
            self._impls[hook_name] = impls
        return impls

    def _build_registry(self) -> None:
        """Every hook's implementations and call semantics, worked out once at start-up."""
        self._impls.clear()
        self._specs = {name: bool(getattr(self.pm.hook, name).spec.opts.get("firstresult"))
                       for name in self._spec_names}
        for name in self._spec_names:
            self._hookimpls(name)

    def _active(self, impl, context: dict | None) -> bool:
        flag = impl.plugin.flag
        if not flag or self.flags is None:
            return True
        # A call with no actor (token resolution) asks as "system": with stickiness on
        # userId, Unleash answers False to a context without one.
        return self.flags.enabled(flag, context or SYSTEM)

    def _call(self, hook_name: str, impl, kwargs: dict[str, Any]) -> Any:
        if self.trace:
            self._hooktrace(f"{hook_name} [{impl.plugin_name}]", {a: kwargs[a] for a in impl.argnames})
        return impl.function(*[kwargs[a] for a in impl.argnames])

    def _traced(self, hook_name: str, impl, result: Any) -> Any:
        if self.trace:
            self._hooktrace("finish", f"{hook_name} [{impl.plugin_name}]", "-->", result)
        return result

    def relay(self, ctx: Any, context: dict | None = None) -> Hooks:
        """The request-time hooks as attributes, for the actor whose Unleash context is
        ``context`` (``Principal.flag_context()``; None is the system itself)."""
        return cast(Hooks, _Relay(self, ctx, context))

    def setup_call(self, hook_name: str, *, strict: bool = False, own: Callable[[Plugin], dict] | None = None,
                   **kwargs: Any) -> list[tuple[Plugin, Any]]:
        """Call a start-up hook plugin by plugin, whatever the flags; a plugin that raises
        is reported and left out.

        ``own(plugin)`` gives arguments of that plugin's own (its router, for example).
        """
        out = []
        for impl in list(self._hookimpls(hook_name)):
            args = {**kwargs, **own(impl.plugin)} if own else kwargs
            try:
                out.append((impl.plugin, self._traced(hook_name, impl, self._call(hook_name, impl, args))))
            except Exception as exc:
                self.fail(impl.plugin, f"{hook_name} raised {type(exc).__name__}: {exc}", strict)
        return out

    def fail(self, plugin: Plugin, reason: str, strict: bool = False) -> None:
        """Leave a registered plugin out after it failed during start-up, with its dependents."""
        if self.pm.is_registered(plugin):
            self.pm.unregister(plugin)
        self._build_registry()
        self._fail(plugin.name, reason, strict, plugin)
        for other in self.plugins:
            if plugin.name in other.requires:
                self.fail(other, f"requires plugin {plugin.name}, which failed", strict)

    def states(self, flags=None) -> list[dict[str, Any]]:
        """One row per known plugin: name, version, flag, state, reason, requires, features,
        settings (each one's variable, default and description).

        ``state`` is ``enabled``, ``disabled by flag`` (its flag is off for everyone),
        ``failed: <reason>`` or ``not selected``; a partial rollout reads ``enabled (N%)``.
        """
        from myhibachi.core.settings import settings_rows

        rows = []
        for rec in sorted(self.records.values(), key=lambda r: r.name):
            state = rec.state
            if state == "enabled" and rec.flag and flags is not None:
                rollout = flags.rollout(rec.flag)
                if rollout == 0:
                    state = "disabled by flag"
                elif rollout < 100:
                    state = f"enabled ({rollout}%)"
            elif state == "failed":
                state = f"failed: {rec.reason}"
            rows.append({"name": rec.name, "version": rec.version, "flag": rec.flag, "state": state,
                         "reason": rec.reason, "requires": list(rec.requires), "features": dict(rec.features),
                         "settings": settings_rows(rec.plugin)})
        return rows


class _Relay:
    """What ``ctx.hooks(context)`` returns: each hook an async callable with its spec's call
    semantics, over the implementations enabled for one actor (resolved on first use)."""

    def __init__(self, manager: PluginManager, ctx: Any, context: dict | None) -> None:
        self._manager, self._ctx, self._context = manager, ctx, context

    def __getattr__(self, name: str) -> Callable[..., Any]:
        manager = self._manager
        try:
            first = manager._specs[name]
        except KeyError:
            raise AttributeError(f"no hook named {name!r}") from None
        impls = manager._hookimpls(name)
        if name not in UNGATED:
            impls = [impl for impl in impls if manager._active(impl, self._context)]
        ctx = self._ctx

        async def call(**kwargs: Any) -> Any:
            kwargs["ctx"] = ctx
            results = []
            for impl in impls:
                result = manager._call(name, impl, kwargs)
                if inspect.isawaitable(result):
                    result = await result
                if manager._traced(name, impl, result) is not None:
                    if first:
                        return result
                    results.append(result)
            return None if first else results

        call.__name__ = name
        setattr(self, name, call)  # later calls on this relay skip __getattr__
        return call


def load_installed(settings, *, strict: bool | None = None, trace: bool | None = None) -> PluginManager:
    """A manager with the installed plugins selected by the settings."""
    manager = PluginManager(trace=settings.trace_hooks if trace is None else trace)
    manager.load(discover(), allow=settings.allowed_plugins, deny=settings.excluded_plugins,
                 strict=settings.strict_plugins if strict is None else strict)
    return manager


def _by_convention(plugin: Plugin, module: str, function: str, *args: Any) -> None:
    if (found := import_submodule(plugin, module)) is not None:
        if not callable(entry := getattr(found, function, None)):
            raise PluginError(f"{found.__name__} has no {function}() to call")
        entry(*args)


def import_submodule(plugin: Plugin, name: str):
    """Import ``<plugin package>.<name>`` when it exists, else None."""
    package = type(plugin).__module__
    try:
        return importlib.import_module(f"{package}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"{package}.{name}":
            return None
        raise


__all__ = ["ENTRY_POINT_GROUP", "Plugin", "PluginError", "PluginManager", "PluginRecord", "discover", "hookimpl",
           "load_installed"]
