"""The application context handed to hooks: everything built once at start-up."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from myhibachi.core.cache import SharedCache
from myhibachi.core.db import Database
from myhibachi.core.events import Waker
from myhibachi.core.flags import Flags
from myhibachi.core.fields import Models, core_models
from myhibachi.core.hookspecs import Hooks
from myhibachi.core.plugins import PluginManager
from myhibachi.core.settings import Settings


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
