"""The My Hibachi core: bookings, customers, auth, events, plugins, flags, migrations, tasks.

This package is the plugin API: a plugin imports from ``myhibachi.core`` and nothing
deeper (``from myhibachi.core import Conn, Connection, Plugin, hookimpl, not_found``); what
is not exported here may change. Most exports are names; six are namespaces, for the core
tables (``tables.bookings``) and for the areas whose functions need their area's name to read
well (``audit.record``, ``bookings.transition``, ``customers.contacts``,
``idempotency.idempotent``, ``webhooks.data_of``). Each thing has one spelling: a plugin
uses the name where there is one, the namespace otherwise. docs/plugins.md lists them all.

Only ``Plugin`` and ``hookimpl`` are imported with the package; every other export is
imported on first use, so loading a plugin's manifest does not pay for FastAPI, SQLAlchemy
or the auth stack before the app needs them.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from myhibachi.core.plugins import Plugin, hookimpl  # noqa: E402

# name -> the module that defines it
_LAZY = {
    # the connection
    "Conn": "db", "Connection": "routing", "Database": "db", "resolve_url": "db",
    # declaring tables
    "metadata": "db", "uuid_pk": "db", "created_at": "db", "timestamp": "db", "utcnow": "db",
    # errors (RFC 9457 problems)
    "Problem": "errors", "invalid": "errors", "not_found": "errors", "conflict": "errors",
    "error_responses": "errors",
    # request text PostgreSQL can store (no NUL, no lone surrogate: a 422 naming the field)
    "Text": "booking_schemas",
    # keyset paging
    "fetch_page": "pagination", "keyset": "pagination", "page_of": "pagination",
    "encode_cursor": "pagination", "LIMIT": "pagination", "CURSOR": "pagination", "NextCursor": "pagination",
    # events
    "Event": "events", "publish": "events", "publish_many": "events",
    # typed hooks
    "Hooks": "hookspecs", "BookingView": "hookspecs", "Refusal": "hookspecs", "SlotLimit": "hookspecs",
    # plugin services
    "Messaging": "services", "ServiceError": "services", "ContactLists": "services", "PaymentLedger": "services",
    "DepositOperations": "services", "AiOrchestration": "services", "CallTranscripts": "services",
    "CustomerFeedback": "services",
    # ports to providers
    "PortError": "ports", "InvalidSignature": "ports", "PaymentsPort": "ports", "SmsPort": "ports",
    "EmailPort": "ports", "BankLinkPort": "ports", "LlmPort": "ports", "EmbeddingsPort": "ports",
    "SpeechToTextPort": "ports", "TelephonyPort": "ports",
    # auth dependencies and checks
    "Principal": "auth", "authenticated": "auth", "current_principal": "auth", "require": "auth",
    "current_customer": "auth", "check_owner_or": "auth", "has_permission": "auth", "permission_matches_known": "auth",
    "issue_access_token": "auth", "login_guard": "ratelimit",
    # passwords and sealed data
    "hash_password": "passwords", "verify_password": "passwords", "needs_rehash": "passwords",
    "vault": "crypto", "Vault": "crypto", "reseal": "crypto", "seal_offline": "ports.outbox",
    # the application, its settings and context
    "create_app": "app", "Settings": "settings", "AppContext": "context", "app_context": "context",
    # background work
    "periodic": "scheduled", "claim_due": "scheduled", "async_task": "tasks",
}

# namespaces: core modules exported whole
_MODULES = ("audit", "bookings", "customers", "idempotency", "roles", "tables", "webhooks")

__all__ = ["Plugin", "hookimpl", "__version__", *_LAZY, *_MODULES]


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(f"myhibachi.core.{name}")  # the import binds it here
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'myhibachi.core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"myhibachi.core.{module}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # editors and type checkers see the lazy names as plain imports
    from myhibachi.core import audit, bookings, customers, idempotency, roles, tables, webhooks
    from myhibachi.core.app import create_app
    from myhibachi.core.booking_schemas import Text
    from myhibachi.core.auth import (Principal, authenticated, check_owner_or, current_customer, current_principal,
                                     has_permission, issue_access_token, permission_matches_known, require)
    from myhibachi.core.context import AppContext, app_context
    from myhibachi.core.crypto import Vault, reseal, vault
    from myhibachi.core.db import Conn, Database, created_at, metadata, resolve_url, timestamp, utcnow, uuid_pk
    from myhibachi.core.errors import Problem, conflict, error_responses, invalid, not_found
    from myhibachi.core.events import Event, publish, publish_many
    from myhibachi.core.hookspecs import BookingView, Hooks, Refusal, SlotLimit
    from myhibachi.core.pagination import CURSOR, LIMIT, NextCursor, encode_cursor, fetch_page, keyset, page_of
    from myhibachi.core.passwords import hash_password, needs_rehash, verify_password
    from myhibachi.core.ports.outbox import seal_offline
    from myhibachi.core.ports import (BankLinkPort, EmailPort, EmbeddingsPort, InvalidSignature, LlmPort,
                                      PaymentsPort, PortError, SmsPort, SpeechToTextPort, TelephonyPort)
    from myhibachi.core.ratelimit import login_guard
    from myhibachi.core.routing import Connection
    from myhibachi.core.scheduled import claim_due, periodic
    from myhibachi.core.services import (AiOrchestration, CallTranscripts, ContactLists, CustomerFeedback,
                                         DepositOperations, Messaging, PaymentLedger, ServiceError)
    from myhibachi.core.settings import Settings
    from myhibachi.core.tasks import async_task
