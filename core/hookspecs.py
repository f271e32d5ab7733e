"""The plugin API: every hook a plugin may implement.

A plugin implements a hook by defining a method of the same name, marked with
``@hookimpl`` (``from myhibachi.core import hookimpl``), on its plugin object. Arguments
may be left out of an implementation's signature when it does not need them.

Two kinds of hooks:

* ``register_*`` and ``migration_location`` are called once at start-up, for every loaded
  plugin whatever its flag, to build the app (routes, tasks, handlers, permissions).
* The extension points inside core flows (``validate_booking``, ``price_booking``,
  ``booking_query_filters``, ``booking_capacity``, ``booking_slots``, ``may_send``, ...) are called per
  request or per event. The plugin manager calls only the plugins whose flag is on for the
  current context (the acting customer or admin), so plugins never check their own flag.
  Their implementations may be ``async def``; they receive ``conn``, the connection of the
  caller's transaction, so what they read and write commits or rolls back with it.

Keep this list short: a hook is added only when two plugins need it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from fastapi import APIRouter
    from huey import Huey

    from myhibachi.core.context import AppContext
    from myhibachi.core.events import Event

hookspec = pluggy.HookspecMarker("myhibachi")

# Request-time hooks called for every loaded plugin whatever its flag: a customer's opt-out
# recorded by a plugin binds every sender, also where that plugin's feature is not rolled out.
UNGATED = frozenset({"may_send"})


@hookspec
def migration_location() -> str | None:
    """Return the folder of this plugin's Alembic branch, or None when it has no tables.

    Called when Alembic is configured (``myhibachi db ...``, tests). The default in
    :class:`myhibachi.core.Plugin` returns the ``migrations`` folder beside the plugin's
    module when it exists. The branch label must equal the plugin's name.

    :return: an absolute path, or None.
    """


@hookspec
def register_routes(router: APIRouter, ctx: AppContext) -> None:
    """Add the plugin's endpoints to ``router``.

    Called once at start-up with a router owned by this plugin. The core mounts it under
    ``/v1`` behind its auth dependency and the plugin's flag: when the flag is off for the
    caller, every route of the router answers 404 with a feature-disabled problem.

    :param router: a fresh ``APIRouter`` for this plugin alone.
    :param ctx: the application context (settings, database, flags, ports).
    """


@hookspec
def register_tasks(huey: Huey, ctx: AppContext) -> None:
    """Declare background work: periodic jobs, pollers and on-demand huey tasks.

    Called once at start-up in the API process and in the worker, so task names are
    known to both. Periodic work is a core periodic job,
    :func:`myhibachi.core.scheduled.periodic` (``every=`` seconds or ``cron=``), run once
    across all workers by their dispatch loop; huey's periodic tasks are not used. Work
    due at a time kept in a database row is a poller: ``ctx.add_poller(name, poller)``,
    claiming rows with :func:`myhibachi.core.scheduled.claim_due`. Tasks enqueued on demand
    are ``huey.task()`` (or :func:`myhibachi.core.tasks.async_task` for an ``async`` body).

    :param huey: the application's huey instance (Redis in production, SQLite embedded).
    :param ctx: the application context.
    """


@hookspec
def register_event_handlers() -> dict[str, list]:
    """Subscribe to domain events.

    Called once at start-up. Each handler is ``async def handler(conn, event, ctx)``
    (``event``: id, name, payload, actor, created_at, attempt) and runs on ``conn`` in a
    savepoint of the transaction that records its delivery, at least once per event; a
    handler whose statements committed for an event is never run again for it. A raising handler is retried with
    backoff and never rolls back the request that published the event. Handlers of a
    plugin whose flag is off for the customer the event concerns (its payload's
    ``customer_id``; else its actor) are skipped.

    :return: ``{"booking.created": [handler, ...], ...}``; names from
        :mod:`myhibachi.core.events`.
    """


@hookspec
def register_events() -> list[Event]:
    """Declare the domain events this plugin publishes.

    Called once at start-up, before ``register_event_handlers``. Only declared events can
    be published (``publish`` raises on any other name) or subscribed to: a plugin
    subscribing to an event that no installed plugin declares is left out. A name has one
    owner: declaring a name already declared (by the core or another plugin) leaves the
    plugin out. ``myhibachi events catalogue`` lists every declared event.

    :return: ``[Event("tip.paid", TipPaid), ...]``: each :class:`myhibachi.core.events.Event`
        names the event (``<area>.<past tense verb>``), the pydantic model of its payload
        (plain JSON data) and its docstring (the model's docstring when not given).
    """


@hookspec
def register_permissions() -> list[str]:
    """Declare the permission strings the plugin's routes require.

    Called once at start-up. Names are ``<area>.<verb>`` (``loyalty.read``); the admin
    user plugin offers them in roles and refuses unknown ones.

    :return: a list of permission strings.
    """


@hookspec
def register_cli(app: Any) -> None:
    """Add subcommands to the ``myhibachi`` command line.

    Called when the CLI starts.

    :param app: the root ``typer.Typer`` application; add a sub-app with ``app.add_typer``.
    """


@hookspec
def register_adapters() -> dict[str, dict[str, Any]]:
    """Offer adapters for the core's ports.

    The ports are payments, sms, email, bank, llm, embeddings, speech and telephony; see
    :mod:`myhibachi.core.ports.base` for their interfaces.

    Called once at start-up. A port uses the adapter its setting names
    (``MYHIBACHI_SMS_ADAPTER=myprovider``); the factory is called with the application
    context the first time the port is used, so import the provider's SDK inside it, not
    at the top of the plugin. A name that clashes with a built-in adapter, or an unknown
    port, leaves the plugin out.

    :return: ``{"sms": {"myprovider": factory}, ...}`` where ``factory(ctx)`` returns an
        object implementing that port.
    """


@hookspec
def integration_health(ctx: AppContext) -> dict[str, Any] | None:
    """Report the health of the outside services this plugin depends on.

    Called by ``/readyz`` and the admin integration status. Must not block for long.

    :param ctx: the application context.
    :return: ``{"name": ..., "ok": bool, "detail": ...}`` or None when it has none.
    """


@hookspec
def validate_booking(booking: dict[str, Any], conn: Any, ctx: AppContext) -> str | dict[str, Any] | None:
    """Check a booking about to be created or changed, or a slot about to be offered.

    Called inside the booking's transaction after the core's own rules (party size, hours,
    lead time, capacity). On create and update the booking's row is already written in
    that transaction, so a plugin may store its own rows referencing ``booking["id"]``;
    a refusal rolls them back with the booking. Quotes and ``GET /v1/availability`` ask
    too (``id`` None, ``address`` possibly empty), so a slot offered is a slot accepted;
    availability runs on a connection without a transaction (each statement commits on
    its own), so write nothing when ``id`` is None. Every enabled plugin is asked; the
    first refusal wins. What a plugin puts in ``booking["extra"]`` reaches the
    ``booking.created`` and ``booking.updated`` events' ``extra``.

    :param booking: the booking as plain data: ``id``, ``customer_id``, ``status``,
        ``starts_at``/``ends_at`` (aware UTC datetimes), ``local_start``, ``time_zone``,
        ``duration_minutes``, ``adults``, ``children``, ``party_size``, ``address``,
        ``zip_code``, ``menu``, ``notes``, ``slot_key``, ``stored`` (True once the
        booking's row exists: False while a create prices it, for quotes and
        availability) and ``extra`` (plugin-specific input from the request's ``extra``
        object, e.g. ``location_id``; on update only what the update sent).
    :param conn: the connection of the booking's transaction.
    :param ctx: the application context.
    :return: None to accept; a human-readable reason to refuse with 422; or
        ``{"status": 409, "reason": "..."}`` to refuse with 409 (a conflict, such as a
        resource the plugin owns being taken).
    """


@hookspec
def price_booking(booking: dict[str, Any], conn: Any, ctx: AppContext) -> list[dict[str, Any]] | None:
    """Add price lines to a booking's quote: discounts (negative) and fees (positive).

    Called for quotes, on create and on update; all results are collected in plugin order.
    The lines and total are stored on the booking, so later price changes never rewrite
    history. A total below zero is brought to zero by a final core line.

    :param booking: the prospective booking (as for ``validate_booking``) with the core's
        base lines in ``lines``.
    :param conn: the connection of the caller's transaction.
    :param ctx: the application context.
    :return: a list of ``{"code", "label", "amount_cents"}`` lines (integer cents), or None.
    """


@hookspec
def booking_query_filters(params: dict[str, str], ctx: AppContext) -> list[Any] | None:
    """Turn extra query parameters of ``GET /v1/bookings`` into SQL conditions.

    Called per list request that carries query parameters the core did not consume, with
    the caller's flags applied.

    :param params: the remaining query parameters.
    :param ctx: the application context.
    :return: SQLAlchemy boolean expressions on the bookings table (ANDed), or None.
    """


@hookspec(firstresult=True)
def booking_capacity(booking: dict[str, Any], conn: Any, ctx: AppContext) -> int | None:
    """Supply the number of events that may run at the booking's slot.

    Called on create and on a reschedule (with the booking's slot rows locked), and for
    every slot ``GET /v1/availability`` considers. ``firstresult``: the first plugin to answer decides
    (for example locations, per location); None from every plugin means the core's
    ``booking_capacity`` setting applies.

    :param booking: the prospective booking as plain data (``starts_at``, ``extra``...).
    :param conn: the connection of the caller's transaction.
    :param ctx: the application context.
    :return: the capacity of the slot, or None.
    """


@hookspec(firstresult=True)
def booking_slot_scope(booking: dict[str, Any], conn: Any, ctx: AppContext) -> str | None:
    """Name the part of the business whose capacity a booking draws on.

    Called when the core computes a booking's slot (create, reschedule, availability),
    after ``validate_booking``. The core makes the scope part of the slot key, so the
    slot's lock and its count of bookings (compared with ``booking_capacity``) cover that
    scope alone: two locations' bookings at the same time do not compete for one pool.
    ``firstresult``: one plugin partitions capacity; None from all means one shared pool.

    :param booking: the prospective booking as plain data (``extra`` included).
    :param conn: the connection of the booking's transaction.
    :param ctx: the application context.
    :return: a stable string of at most 32 characters (a location's id in hex), or None.
    """


@hookspec
def booking_slots(booking: dict[str, Any], starts: list[Any], conn: Any, ctx: AppContext) -> list[Any] | None:
    """Answer ``GET /v1/availability`` for every candidate slot at once.

    Called once per availability query, before its slots are counted. Availability otherwise asks ``validate_booking`` and ``booking_capacity`` once per slot
    (a day of hourly slots is 24 calls of each); a plugin that answers here is not asked
    those two per slot for that query. Its answers must be the ones those hooks give for
    each slot, which create asks, so a slot offered is a slot accepted. For each slot, the
    first plugin answering a capacity decides it (these answers before ``booking_capacity``
    ones), and any refusal removes the slot.

    :param booking: the prospective booking as for ``validate_booking`` (``id`` None),
        with ``starts_at`` the first candidate.
    :param starts: the candidate starts, aware UTC datetimes in order.
    :param conn: the query's connection (no transaction).
    :param ctx: the application context.
    :return: one answer per start: None (no opinion), an ``int`` (the slot's capacity, as
        ``booking_capacity`` gives), or a refusal (a reason, or ``{"status": 409,
        "reason": ...}``, as ``validate_booking`` gives); or None to be asked slot by slot.
    """


@hookspec
def may_send(customer_id: Any, channel: str, kind: str, conn: Any, ctx: AppContext) -> str | None:
    """Consent check before any message is sent.

    Called by every sender, for every loaded plugin whatever its flag (consent is not a
    feature to roll out). ``kind`` is ``transactional`` or ``marketing``; ``channel`` is
    ``sms`` or ``email``. Any plugin's reason refuses the send.

    :param customer_id: the customer the message is for (None for a bare address).
    :param channel: ``sms`` or ``email``.
    :param kind: ``transactional`` or ``marketing``.
    :param conn: the connection of the sender's transaction.
    :param ctx: the application context.
    :return: None to allow, or the reason to refuse.
    """


@hookspec
def customer_export_sections(customer_id: Any, conn: Any, ctx: AppContext) -> dict[str, Any] | None:
    """Add this plugin's data about a customer to the customer's data export.

    Called by the customer data export (and before an erasure), once per customer.

    :param customer_id: the customer being exported.
    :param conn: the connection of the export's transaction.
    :param ctx: the application context.
    :return: ``{section_name: plain data}`` or None.
    """


@hookspec(firstresult=True)
def resolve_principal(claims: dict[str, Any], ctx: AppContext) -> Any:
    """Turn a verified access token of a kind the core does not own into a principal.

    Called once per request carrying a token whose ``kind`` claim is not ``customer``
    (for example ``admin`` tokens issued by the admin users plugin), so that plugin can
    refuse revoked sessions and supply current permissions. ``firstresult``: the plugin
    owning the kind answers; None from all means the token is refused.

    :param claims: the verified JWT claims (``sub``, ``kind``, ``sid``, ...).
    :param ctx: the application context.
    :return: a :class:`myhibachi.core.auth.Principal`, or None.
    """


@hookspec
def record_admin_action(conn: Any, action: dict[str, Any], ctx: AppContext) -> None:
    """Record one action a staff member (admin or API key) took.

    Called by the core (:mod:`myhibachi.core.audit`) for every state-changing request
    (POST, PUT, PATCH, DELETE) by a staff principal on a route that declares a permission,
    once per change the route noted with ``note_change`` (or once for the request when it
    noted nothing), and for service calls marked ``@audited``. For routes using
    ``get_conn`` it runs on the request's connection just before the commit: what it
    writes commits or rolls back with the change. Other routes are recorded after their
    response, in a transaction of their own. All enabled implementations are called; one
    that raises fails the request's transaction.

    :param conn: the connection of the transaction that made the change.
    :param action: plain data: ``actor_kind`` (admin, api_key, system), ``actor_id``,
        ``action``, ``permission``, ``resource_type``, ``resource_id`` (text or None),
        ``changes`` (``{"field": {"old", "new"}}``, PII already masked, or None),
        ``method``, ``path``, ``ip``, ``user_agent``, ``request_id`` and ``at`` (UTC).
    :param ctx: the application context.
    :return: nothing; raise to fail the request.
    """
