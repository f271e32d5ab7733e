"""The plugin API: every hook a plugin may implement, and the types they receive.

A plugin implements a hook by defining a method of the same name, marked with
``@hookimpl`` (``from myhibachi.core import hookimpl``), on its plugin object. Arguments
may be left out of an implementation's signature when it does not need them.

The core calls a hook as an attribute of :class:`Hooks` (``hooks =
ctx.hooks(principal.flag_context())``, then ``await hooks.validate_booking(booking=...,
conn=...)``), so an editor follows a call to its spec here and to its implementations.
``ctx`` is passed by the relay. What a call returns comes from its spec: a spec marked
``firstresult=True`` gives the first implementation's non-None answer (or None); any other
gives the list of every non-None answer, in call order (the last registered plugin first).

Two kinds of hooks:

* ``register_*`` and ``migration_location`` are called once at start-up, for every loaded
  plugin whatever its flag, to build the app (routes, tasks, handlers, permissions).
* The extension points inside core flows (``validate_booking``, ``price_booking``,
  ``booking_limits``, ``booking_stored``, ``booking_query_filters``, ``may_send``, ...) are
  called per request or per event. The relay calls only the plugins whose flag is on for
  the actor it was made for (flags resolved once per hook and relay), so plugins never
  check their own flag; hooks in ``UNGATED`` ignore flags. Implementations may be ``async
  def`` (awaited); they receive ``conn``, the connection of the caller, so what they read
  and write commits or rolls back with it.

Keep this list short: a hook is added only when two plugins need it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import pluggy

if TYPE_CHECKING:
    from fastapi import APIRouter
    from huey import Huey

    from myhibachi.core.auth import Principal
    from myhibachi.core.context import AppContext
    from myhibachi.core.db import Conn
    from myhibachi.core.events import Event

hookspec = pluggy.HookspecMarker("myhibachi")

# Request-time hooks called for every loaded plugin whatever its flag: a customer's opt-out
# recorded by a plugin binds every sender, also where that plugin's feature is not rolled out,
# and a customer's data export, merge or erasure (and a key rotation) covers what every plugin
# keeps, rolled out or not.
UNGATED = frozenset({"may_send", "customer_languages", "customer_export_sections", "customer_merge", "customer_erase",
                     "rotate_keys"})


@dataclass(frozen=True, slots=True)
class BookingView:
    """A booking as the booking hooks see it: prospective (a draft) or stored. Read-only.

    :ivar id: the booking's id; None for quotes and availability.
    :ivar customer_id: the customer it is for; None for an anonymous quote or availability.
    :ivar status: ``pending``, ``confirmed``, ``cancelled`` or ``completed`` (``pending``
        for a draft).
    :ivar starts_at: the start, an aware UTC datetime; None for a quote without a time and
        for ``validate_booking`` asked by availability.
    :ivar ends_at: ``starts_at`` plus the duration, or None.
    :ivar local_start: the start as wall-clock time in ``time_zone`` (ISO, no offset), or None.
    :ivar time_zone: the event's IANA time zone.
    :ivar duration_minutes: how long the event lasts.
    :ivar adults: adult guests.
    :ivar children: child guests.
    :ivar party_size: ``adults + children``.
    :ivar address: where the event takes place (empty for quotes and availability).
    :ivar zip_code: the address's zip code, or None.
    :ivar menu: the customer's menu notes, or None.
    :ivar notes: other notes, or None.
    :ivar stored: True once the booking's row exists (``booking_stored``, a reschedule).
    :ivar price_lines: the stored price lines (empty before pricing).
    :ivar total_cents: the stored total (0 before pricing).
    :ivar inputs: the plugins' own fields of the request, by plugin name, each the model
        the plugin declared in ``register_fields`` (``booking.inputs.get("locations")``);
        on update only what the update sent; empty on a status change.
    """

    id: UUID | None
    customer_id: UUID | None
    status: str
    starts_at: datetime | None
    ends_at: datetime | None
    local_start: str | None
    time_zone: str
    duration_minutes: int
    adults: int
    children: int
    party_size: int
    address: str = ""
    zip_code: str | None = None
    menu: str | None = None
    notes: str | None = None
    stored: bool = False
    price_lines: tuple[Mapping[str, Any], ...] = ()
    total_cents: int = 0
    inputs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a plugin refuses a booking: ``reason`` for people, ``status`` 422 (bad input) or
    409 (a conflict, such as a resource the plugin owns being taken), and ``field``, the
    request field at fault when there is one (the problem's ``errors`` name it)."""

    reason: str
    status: int = 422
    field: str | None = None


@dataclass(frozen=True, slots=True)
class SlotLimit:
    """A plugin's limit on a booking's candidate starts (``booking_limits``).

    :ivar pool: what is limited, e.g. ``location:<id hex>`` or ``chef:<id>``: bookings that
        named the same pool count against each other. At most 48 characters, no ``|``.
        None counts nothing: only the refusals in ``capacity`` apply.
    :ivar capacity: one answer per start: an ``int`` (events of this pool that may run in
        that slot), None (no limit there) or a :class:`Refusal` (the slot is not offered,
        and create refuses with that reason).
    :ivar slot: what the availability slots this limit counts in say, under the plugin's
        name: its ``register_fields`` model of kind ``slot`` (``{"locations": {"location_id": ...}}``).

    Places held that are not bookings (a waitlist offer's) are the core's ``bookings.hold``:
    they count in their pools like bookings, in the core's one read of what is busy.
    """

    pool: str | None
    capacity: Sequence[int | Refusal | None]
    slot: Mapping[str, Any] | None = None


class Hooks:
    """The hooks, as methods: implement one by its name; call one as ``hooks.<name>(...)``."""

    @hookspec
    def migration_location(self) -> str | None:
        """Return the folder of this plugin's Alembic branch, or None when it has no tables.

        Called when Alembic is configured (``myhibachi db ...``, tests). The default in
        :class:`myhibachi.core.Plugin` returns the ``migrations`` folder beside the plugin's
        module when it exists. The branch label must equal the plugin's name.

        :return: an absolute path, or None.
        """

    @hookspec
    def register_routes(self, router: APIRouter, ctx: AppContext) -> None:
        """Add the plugin's endpoints to ``router``.

        Called once at start-up with a router owned by this plugin. The core mounts it under
        ``/v1`` behind its auth dependency and the plugin's flag: when the flag is off for the
        caller, every route of the router answers 404 with a feature-disabled problem. The
        default (:class:`myhibachi.core.Plugin`) calls ``add_routes(router, ctx)`` of the
        plugin package's ``routes`` module when it has one.

        :param router: a fresh ``APIRouter`` for this plugin alone.
        :param ctx: the application context (settings, database, flags, ports).
        """

    @hookspec
    def register_tasks(self, huey: Huey, ctx: AppContext) -> None:
        """Declare on-demand tasks on ``huey`` and periodic jobs.

        Called once at start-up in the API process and in the worker, so task names are
        known to both. Use ``huey.task()`` (or :func:`myhibachi.core.tasks.async_task` for an
        ``async`` body) for work started on demand, and :func:`myhibachi.core.scheduled.periodic`
        for work every interval or on a cron schedule (huey runs no periodic tasks: the
        worker's dispatch loop runs periodic jobs on claimed rows). Work that is due at a
        time kept in a database row belongs in a poller instead: ``ctx.add_poller(name,
        poller)``, run by the worker's dispatch loop, claiming rows with
        :func:`myhibachi.core.scheduled.claim_due`. The default (:class:`myhibachi.core.Plugin`)
        calls ``add_tasks(huey, ctx)`` of the plugin package's ``tasks`` module when it has one.

        :param huey: the application's huey instance (Redis in production, SQLite embedded).
        :param ctx: the application context.
        """

    @hookspec
    def register_event_handlers(self, ctx) -> dict[str, list]:
        """Subscribe to domain events.

        Called once at start-up. Each handler is ``async def handler(conn, event, ctx)``
        (``event``: id, name, payload, actor, created_at, attempt) and runs on ``conn`` in a
        savepoint of the transaction that records its delivery, at least once per event; a
        handler whose statements committed for an event is never run again for it. A raising handler is retried with
        backoff and never rolls back the request that published the event. Handlers of a
        plugin whose flag is off for the customer the event concerns (its payload's
        ``customer_id``; else its actor) are skipped.

        :param ctx: the application context; ``ctx.plugins.get(name)`` says whether a plugin
            the subscriber ``uses`` is loaded, so it subscribes to that one's events only then.
        :return: ``{"booking.created": [handler, ...], ...}``; names from
            :mod:`myhibachi.core.events`.
        """

    @hookspec
    def register_events(self) -> list[Event]:
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
    def register_permissions(self) -> list[str]:
        """Declare the permission strings the plugin's routes require.

        Called once at start-up. Names are ``<area>.<verb>`` (``loyalty.read``); the admin
        user plugin offers them in roles and refuses unknown ones.

        :return: a list of permission strings.
        """

    @hookspec
    def register_cli(self, app: Any) -> None:
        """Add subcommands to the ``myhibachi`` command line.

        Called when the CLI starts.

        :param app: the root ``typer.Typer`` application; add a sub-app with ``app.add_typer``.
        """

    @hookspec
    def register_adapters(self) -> dict[str, dict[str, Any]]:
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
    def register_fields(self) -> dict[str, Any]:
        """Add this plugin's typed fields to the core's request and response models.

        Called once at start-up. Each model given becomes one optional field named after the
        plugin on the core's model of that kind, so the OpenAPI document types it:
        ``{"booking_create": LocationChoice}`` lets a create say ``{"locations":
        {"location_id": "..."}}``. The kinds: ``booking_create``, ``booking_update`` and
        ``quote`` (request bodies; the hooks see them in ``BookingView.inputs``),
        ``booking`` (the booking view; filled by ``booking_fields``), ``customer`` (the
        customer view; filled by ``customer_fields``) and ``availability`` (its fields
        become query parameters of ``GET /v1/availability``, flat, so their names must be
        unique; the hooks see them in ``inputs`` too).

        ``customer_columns`` are what the customer view's field is made of: SQL column
        expressions on the ``customers`` table (a correlated scalar subquery:
        ``sa.select(t.c.x).where(t.c.customer_id == customers.c.id).scalar_subquery()``),
        each labelled ``<plugin>.<name>``, that the core selects in its own lookup of
        every customer it answers, so ``customer_fields`` reads them from the rows and the
        field costs no statement. A column not labelled so leaves the plugin out.

        ``booking_columns`` are the same for the booking view: labelled SQL expressions that the
        core answers with the booking's row in its own statements of bookings (create, get,
        list, update, status changes), so ``booking_fields`` reads them from the rows and the
        field costs no statement. Correlate to the booking by ``sa.literal_column("bookings.id")``
        (the statement may be an ``INSERT ... RETURNING``, where a table would not correlate);
        rows a plugin's own call of the core's service answers may lack them.

        :return: ``{kind: pydantic model}``, and ``"customer_columns"`` / ``"booking_columns"``:
            [labelled columns].
        """

    @hookspec
    def booking_fields(self, rows: tuple[Mapping[str, Any], ...], ctx: AppContext) -> dict[str, list] | None:
        """Fill this plugin's field of the booking view for bookings about to be answered.

        Called once per response with every booking of it (a page of a list, or one), for
        plugins that declared a ``booking`` model; answer from the rows (``pools`` says
        which pools the booking draws on) or one query for all of them, never one per row.

        :param rows: the bookings' rows (every column of ``bookings``, the sealed ones opened by
            ``bookings.opened``: ``address``, ``menu``, ``notes``).
        :param ctx: the application context.
        :return: ``{plugin name: [its model, a dict or None per row, in order]}``, or None.
        """

    @hookspec
    def customer_fields(self, customers: tuple[Mapping[str, Any], ...], principal: Principal,
                        ctx: AppContext) -> dict[str, list] | None:
        """Fill this plugin's field of the customer view for customers about to be answered.

        Called once per response with every customer of it (a page of the admin list, or
        one: sign-up, ``/v1/customers/me``, the admin get and update), for plugins that
        declared a ``customer`` model and whose flag is on for the caller. The customer view
        is a hot read, so there is no connection: answer from the rows, which carry the
        plugin's ``customer_columns`` (see ``register_fields``) read by the core's own
        statement, and None for a customer the caller may not see this field of.

        :param customers: the customers as the core answers them (``id``, ``email``, ``name``,
            ``phone``, ``address``, ``status``, ``created_at``, ``updated_at``) and the
            plugins' columns under their labels (``loyalty.points_balance``).
        :param principal: who asked: the customer themself, or staff with ``customers.read``.
        :param ctx: the application context.
        :return: ``{plugin name: [its model, a dict or None per customer, in order]}``, or None.
        """

    @hookspec
    def validate_booking(self, booking: BookingView, conn: Conn, ctx: AppContext) -> Refusal | None:
        """Check a booking about to be created, changed or quoted, or asked for by availability.

        Called before the booking is written (create, update), for quotes, and once per
        ``GET /v1/availability`` query. It only answers: it writes nothing and changes
        nothing (``booking`` is frozen); writes that belong with the booking go in
        ``booking_stored``. Availability asks once for all its slots with ``starts_at``
        None, so a rule that depends on the time belongs in ``booking_limits``, which is
        asked for every slot at once. Every enabled plugin is asked; the first refusal wins.

        :param booking: the booking as it would be (``id`` None for quotes and availability).
        :param conn: the connection of the caller (a transaction on create and update).
        :param ctx: the application context.
        :return: None to accept, or a :class:`Refusal` (422, or 409 for a conflict).
        """

    @hookspec
    def price_booking(self, booking: BookingView, lines: tuple[dict[str, Any], ...], conn: Conn,
                      ctx: AppContext) -> list[dict[str, Any]] | None:
        """Add price lines to a booking's quote: discounts (negative) and fees (positive).

        Called for quotes, on create and on an update that can change the price; all
        results are collected in plugin order. The lines and total are stored on the
        booking, so later price changes never rewrite history. A total below zero is
        brought to zero by a final core line.

        :param booking: the prospective booking.
        :param lines: the core's base lines (``{"code", "label", "amount_cents"}``).
        :param conn: the connection of the caller's transaction.
        :param ctx: the application context.
        :return: a list of ``{"code", "label", "amount_cents"}`` lines (integer cents), or None.
        """

    @hookspec
    def booking_limits(self, booking: BookingView, starts: tuple[datetime, ...], conn: Conn,
                       ctx: AppContext) -> SlotLimit | None:
        """Limit how many events may run at each of a booking's candidate starts.

        Called once per create and reschedule (``starts`` is the booking's start) and once
        per ``GET /v1/availability`` query (``starts`` are all its candidate slots, up to
        31 days), after ``validate_booking`` accepted. Every enabled plugin may answer and
        all answers apply: a slot is free only when every limit has room. The core counts
        the active bookings of each limit's ``pool`` (a booking draws on the pools its
        limits named when it was stored) and takes the slots' locks of every pool in one
        global order before counting, so concurrent creates never exceed any limit. With
        no limit from any plugin, the core's ``booking_capacity`` setting applies to all
        bookings. Answer from cached data: this runs for every availability query.

        :param booking: the prospective booking (``starts_at`` the first of ``starts``).
        :param starts: the candidate starts, aware UTC datetimes in order.
        :param conn: the caller's connection (a transaction on create; none for availability).
        :param ctx: the application context.
        :return: a :class:`SlotLimit` with one answer per start, or None for no limit.
        """

    @hookspec(firstresult=True)
    def customer_tier(self, customer_id: UUID, conn: Conn, ctx: AppContext) -> str | None:
        """The customer's tier (``bronze``, ``silver``, ``gold``, ``platinum``...), for ranking.

        For whoever ranks customers (the waitlist offers a freed slot to VIPs first). Called
        once per customer ranked, with the flags of the caller; the first answer wins.

        :param customer_id: the customer.
        :param conn: the caller's connection.
        :param ctx: the application context.
        :return: the tier's name, or None when the plugin knows nothing of the customer.
        """

    @hookspec
    def booking_stored(self, booking: BookingView, previous: BookingView | None, conn: Conn,
                       ctx: AppContext) -> None:
        """Write what must commit with a booking: its row was just inserted or updated.

        Called inside the booking's transaction after the core wrote the row: on create
        (``previous`` None), on update, and on a status change (confirm, complete, cancel).
        What a plugin writes here commits or rolls back with the booking; raising a
        :class:`myhibachi.core.errors.Problem` refuses the change (it rolls back). Work
        that may happen after the commit belongs in an event handler instead.

        :param booking: the booking as stored now (``stored`` True).
        :param previous: the booking before the change, or None on create.
        :param conn: the connection of the booking's transaction.
        :param ctx: the application context.
        :return: nothing; raise a Problem to refuse.
        """

    @hookspec
    def booking_query_filters(self, params: dict[str, str], ctx: AppContext) -> list[Any] | None:
        """Turn extra query parameters of ``GET /v1/bookings`` into SQL conditions.

        Called per list request that carries query parameters the core did not consume, with
        the caller's flags applied; all results are ANDed.

        :param params: the remaining query parameters.
        :param ctx: the application context.
        :return: SQLAlchemy boolean expressions on the bookings table, or None.
        """

    @hookspec
    def may_send(self, customer_id: Any, channel: str, kind: str, conn: Any,
                 ctx: AppContext) -> str | datetime | None:
        """Consent check before any message is sent.

        Called by every sender, for every loaded plugin whatever its flag (consent is not a
        feature to roll out). ``kind`` is ``transactional`` or ``marketing``; ``channel`` is
        ``sms`` or ``email``. Any plugin's reason refuses the send; a time holds it (queued,
        sent from then: the latest of the answers).

        :param customer_id: the customer the message is for (None for a bare address).
        :param channel: ``sms`` or ``email``.
        :param kind: ``transactional`` or ``marketing``.
        :param conn: the connection of the sender's transaction.
        :param ctx: the application context.
        :return: None to allow, the reason to refuse, or an aware datetime before which the
            message must not go out (quiet hours).
        """

    @hookspec(firstresult=True)
    def render_messages(self, key: str, channel: str, recipients: Sequence[dict[str, Any]], conn: Any,
                        ctx: AppContext) -> list[dict[str, Any]] | None:
        """The message template ``key`` rendered for each recipient, for any sender.

        Called by a sender for each batch of messages before it composes its own text; it
        uses its own text where no plugin answers (no template of that key, or the
        templates plugin off).

        :param key: the template's key, e.g. ``reminders.24h``.
        :param channel: ``sms`` or ``email``.
        :param recipients: each a dict of ``customer_id`` (or None), ``language`` (None:
            English) and ``variables`` (values of the template's ``{variables}``; the
            customer's name is looked up when not given).
        :param conn: the connection of the sender's transaction.
        :param ctx: the application context.
        :return: in order, each recipient's ``subject``, ``text``, ``html``, ``template_id``
            and ``version`` (None where no version of its language or English exists), or None.
        """

    @hookspec
    def customer_languages(self, customer_ids: Sequence[Any], conn: Any, ctx: AppContext) -> dict[Any, str] | None:
        """The language each customer asked to be written to in.

        For whoever picks a message's wording (``render_messages``' implementers, when the
        sender gave no language).

        Called once per batch, for every loaded plugin whatever its flag, like ``may_send``;
        the first plugin's answer for a customer wins.

        :param customer_ids: the customers of the batch.
        :param conn: the caller's connection.
        :param ctx: the application context.
        :return: ``{customer_id: language tag}`` for those with a preference, or None.
        """

    @hookspec
    def message_variables(self, customer_ids: Sequence[Any], conn: Any, ctx: AppContext) -> dict[Any, dict[str, str]] | None:
        """Per-customer values of template variables a plugin owns (``loyalty_balance``...).

        Called by a sender of personalised messages (campaigns) once per batch, before it
        renders them (``render_messages``), with the flags of the system.

        :param customer_ids: the customers of the batch.
        :param conn: the sender's connection.
        :param ctx: the application context.
        :return: ``{customer_id: {variable: text}}`` for the customers it knows, or None.
        """

    @hookspec(firstresult=True)
    def resolve_principal(self, claims: dict[str, Any], ctx: AppContext) -> Any:
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
    def record_admin_action(self, conn: Any, action: dict[str, Any], ctx: AppContext) -> None:
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

    @hookspec
    def customer_export_sections(self, customer_id: UUID, conn: Conn, ctx: AppContext) -> dict[str, list[dict]] | None:
        """Contribute this plugin's data about one customer to their data export (GDPR).

        Called by the export for every loaded plugin whatever its flag (the data is held
        either way), once per exported customer, on the export's read connection. Give
        every row the plugin keeps about the customer, decrypted, as plain values (text,
        numbers, booleans, UUIDs, datetimes; money as integer cents with its currency).

        :param customer_id: the customer exported.
        :param conn: the export's connection.
        :param ctx: the application context.
        :return: ``{section name: [row, ...]}`` (names prefixed by the plugin, for example
            ``loyalty.transactions``), or None when the plugin holds nothing for anyone.
        """

    @hookspec
    def customer_merge(self, source_id: UUID, target_id: UUID, conn: Conn, ctx: AppContext) -> None:
        """Move this plugin's rows of a duplicate customer (``source_id``) to the one kept.

        Called inside the merge's transaction, after the core moved the source's bookings
        and before the source becomes a tombstone, for every loaded plugin whatever its flag
        (a merge must leave no row behind). Combine where the target has rows of its own
        (a balance, a preference). Raising (a :class:`myhibachi.core.errors.Problem` to say
        why) refuses the whole merge: nothing of it is kept.

        :param source_id: the duplicate, left as a tombstone pointing at the target.
        :param target_id: the customer kept.
        :param conn: the merge's transaction.
        :param ctx: the application context.
        :return: nothing; raise to refuse the merge.
        """

    @hookspec
    def customer_erase(self, customer_id: UUID, conn: Conn, ctx: AppContext) -> None:
        """Erase this plugin's personal data of a customer (GDPR erasure).

        Called inside the erasure's transaction, before the core anonymises the profile,
        for every loaded plugin whatever its flag. Delete or anonymise what identifies the
        customer; keep what the law requires (payments, the proof of consent and opt-outs)
        and say so in the plugin's docs. Raising refuses the whole erasure.

        :param customer_id: the customer erased.
        :param conn: the erasure's transaction.
        :param ctx: the application context.
        :return: nothing; raise to refuse.
        """

    @hookspec
    def rotate_keys(self, batch: int, conn: Conn, ctx: AppContext) -> int:
        """Seal this plugin's rows again under the current PII key.

        Called by ``myhibachi admin rotate-pii`` (so a retired key can leave
        ``MYHIBACHI_PII_KEYS``), in its one transaction after the core's rows, for every
        loaded plugin whatever its flag; raising rolls the whole rotation back. For a
        table whose rows carry ``key_id`` and ``<field>_enc`` columns,
        :func:`myhibachi.core.crypto.reseal` does it with the associated data the plugin seals
        with.

        :param batch: rows per statement.
        :param conn: the rotation's transaction.
        :param ctx: the application context.
        :return: how many rows were sealed again.
        """
