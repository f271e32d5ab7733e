"""The My Hibachi core: bookings, customers, auth, events, plugins, flags, migrations, tasks.

This package is the plugin API: a plugin imports from ``myhibachi.core`` and nothing
deeper (``from myhibachi.core import Conn, Connection, Plugin, hookimpl, not_found``). Only
``Plugin`` and ``hookimpl`` are imported with the package; every other name is imported on
first use, so loading a plugin's manifest does not pay for FastAPI, SQLAlchemy or the
auth stack before the app needs them.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from myhibachi.core.plugins import Plugin, hookimpl  # noqa: E402

# name -> the module that defines it
_LAZY = {
    # the connection
    "Conn": "db", "Connection": "routing",
    # tables
    "metadata": "db", "uuid_pk": "db", "created_at": "db", "timestamp": "db", "utcnow": "db",
    # errors (RFC 9457 problems)
    "Problem": "errors", "invalid": "errors", "not_found": "errors", "conflict": "errors",
    "error_responses": "errors",
    # keyset paging
    "encode_cursor": "pagination", "decode_cursor": "pagination",
    # events
    "publish": "events", "publish_many": "events",
    # auth dependencies
    "Principal": "auth", "authenticated": "auth", "current_principal": "auth", "require": "auth",
    "check_owner_or": "auth",
    # the application context
    "AppContext": "context", "app_context": "context",
    # scheduled work
    "periodic": "scheduled", "claim_due": "scheduled",
}

__all__ = ["Plugin", "hookimpl", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'myhibachi.core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"myhibachi.core.{module}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # editors and type checkers see the lazy names as plain imports
    from myhibachi.core.auth import Principal, authenticated, check_owner_or, current_principal, require
    from myhibachi.core.context import AppContext, app_context
    from myhibachi.core.db import Conn, created_at, metadata, timestamp, utcnow, uuid_pk
    from myhibachi.core.errors import Problem, conflict, error_responses, invalid, not_found
    from myhibachi.core.events import publish, publish_many
    from myhibachi.core.pagination import decode_cursor, encode_cursor
    from myhibachi.core.routing import Connection
    from myhibachi.core.scheduled import claim_due, periodic
