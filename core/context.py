"""The application context handed to hooks: everything built once at start-up."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import Request

from myhibachi.core.cache import SharedCache
from myhibachi.core.db import Database
from myhibachi.core.events import Waker
from myhibachi.core.flags import Flags
from myhibachi.core.fields import Models, core_models
from myhibachi.core.hookspecs import Hooks
from myhibachi.core.plugins import PluginManager
from myhibachi.core.services import ServiceError
from myhibachi.core.settings import Settings

T = TypeVar("T")


@dataclass
class AppContext:
    settings: Settings
    db: Database
    flags: Flags
    plugins: PluginManager
    huey: Any = None
    ports: Any = None
    permissions: set[str] = field(default_factory=set)
    events: dict[str, Any] = field(default_factory=dict)  # the catalogue: name -> events.Event
    event_handlers: dict[str, list[tuple[str, Any, Any]]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    cache: SharedCache = field(default_factory=SharedCache)  # live while the app's lifespan runs
    waker: Waker = field(default_factory=Waker)  # wakes the event dispatchers; likewise
    models: Models = field(default_factory=core_models)  # with the plugins' fields (create_app)
    services: dict[tuple[str, type], Any] = field(default_factory=dict)  # by provider and by caller

    def service(self, protocol: type[T], *, caller: str) -> T:
        """The ``protocol`` service of a plugin that plugin ``caller`` lists in ``requires``
        (or in ``uses``: a plugin it works without, so it asks only when that one is loaded).

        Built once per app by the provider's factory. Raises ``ServiceError`` naming the
        plugins when the caller does not require a provider of it, or none is installed.
        """
        granted = self.services.get((caller, protocol))
        if granted is not None:  # a poller asks on every round: check the requirement once
            return granted
        user = self.plugins.get(caller)
        if user is None:
            raise ServiceError(f"{protocol.__name__} asked for by {caller!r}, which is not a loaded plugin")
        providers = [p.name for p in self.plugins.plugins if protocol in p.services]
        required = [name for name in providers if name in user.requires or name in user.uses]
        if not required:
            offer = f"provided by {', '.join(providers)}" if providers else "provided by no loaded plugin"
            raise ServiceError(f"plugin {caller} asked for the {protocol.__name__} service ({offer}) "
                               f"without requiring its provider: add it to {caller}'s requires")
        key = (required[0], protocol)
        if key not in self.services:
            made = self.plugins.get(required[0]).services[protocol](self)
            if getattr(protocol, "_is_runtime_protocol", False) and not isinstance(made, protocol):
                raise ServiceError(f"plugin {required[0]}'s {protocol.__name__} service lacks its methods")
            self.services[key] = made
        self.services[(caller, protocol)] = self.services[key]
        return self.services[key]

    def add_poller(self, name: str, poller) -> None:
        from myhibachi.core.scheduled import add_poller

        add_poller(self, name, poller)

    def hooks(self, context: dict | None = None) -> Hooks:
        """The request-time hooks for the actor of ``context`` (``principal.flag_context()``;
        None for the system): ``await ctx.hooks(context).validate_booking(booking=..., conn=...)``."""
        return self.plugins.relay(self, context)


async def app_context(request: Request) -> AppContext:
    """Dependency: the app's context (``ctx=Depends(app_context)``)."""
    return request.app.state.ctx
