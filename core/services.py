"""Plugin services: typed interfaces one plugin provides and others call through the context.

A provider lists what it offers on its manifest, a protocol and a factory called once with
the app's context::

    class CommsPlugin(Plugin):
        services = {Messaging: messaging}        # def messaging(ctx) -> Messaging

A plugin that uses it names the provider in ``requires`` and asks the context, naming
itself, so that the requirement is checked where the service is reached::

    class RemindersPlugin(Plugin):
        requires = ("comms",)

    messaging = ctx.service(Messaging, caller="reminders")
    results = await messaging.send_many(conn, items)

A protocol shared by several plugins lives here; one that only its provider's callers know
may live in the provider's package (its callers still import nothing else of it).
"""
from __future__ import annotations

import uuid
from typing import Any, Protocol, runtime_checkable


class ServiceError(RuntimeError):
    """A service was asked for that no required plugin provides."""


@runtime_checkable
class Messaging(Protocol):
    """Sending SMS and email (provided by the ``comms`` plugin): the one sender of every message.

    Messages are queued in the caller's transaction and sent by the comms worker, so a
    message exists exactly when the caller's change commits; history, opt-outs, consent
    (``may_send``) and idempotency apply to all of them.
    """

    async def send(self, conn, *, channel: str, to: str | None = None, customer_id: uuid.UUID | None = None,
                   body: str | None = None, subject: str | None = None, text: str | None = None,
                   html: str | None = None, kind: str = "transactional", idempotency_key: str | None = None,
                   actor: str | None = None, template_id: uuid.UUID | None = None,
                   template_version: int | None = None) -> dict[str, Any]:
        """Queue one message and return it; raise a Problem (422, 404, or 409 with ``reason``
        when consent or an opt-out refuses it).

        :param channel: ``sms`` or ``email``.
        :param to: an E.164 number or an email address; None sends to the customer's own.
        :param customer_id: the customer it is for (recorded, and used for consent).
        :param body: the SMS text, or the plain text of an email (``text`` also).
        :param kind: ``transactional`` (needs no consent) or ``marketing`` (needs recorded consent).
        :param idempotency_key: unique to this message across callers, prefixed with the
            caller's plugin name: a second call with it returns the first message.
        :param template_id: the template rendered (``render_messages``), with ``template_version``.
        """

    async def send_many(self, conn, items: list[dict[str, Any]]) -> list[Any]:
        """Queue many messages (each item the keyword arguments of ``send``) in a few statements.

        :return: in order, each item's message (a dict with ``id``, ``status``, ...) or the
            Problem that refused it (its ``reason`` says why when consent refused it).
        """

    def segments(self, body: str) -> tuple[int, str]:
        """The SMS segments ``body`` takes and its encoding (``GSM-7`` or ``UCS-2``)."""

    async def opt_out(self, conn, *, channel: str, customer_id: uuid.UUID | None = None, to: str | None = None,
                      opted_out: bool = True, keyword: str | None = None) -> bool:
        """Opt a number or address (``to``, or the customer's own) out of ``channel``, or back
        in; every later send to it is refused. True when it changed (``message.opted_out``
        is published once)."""

    async def opt_outs(self, conn, *, channel: str | None = None, to: str | None = None, limit: int = 50,
                       cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """A page of the opted-out addresses, newest first (``channel``, ``keyword``, times; the
        list keeps keyed hashes, not addresses, so ``to`` asks about one address), and the next
        page's cursor."""

    async def statuses(self, conn, message_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
        """The current status of each of these messages (``queued``, ``sending``, ``sent``,
        ``delivered``, ``failed``, ``bounced``), for senders that report on what they sent."""


@runtime_checkable
class ContactLists(Protocol):
    """Who is on a contact list (provided by the ``contact_lists`` plugin), for senders of campaigns."""

    async def members(self, conn, list_id: uuid.UUID) -> Any:
        """A SQLAlchemy select of one column, ``customer_id``, of the list's members now (a
        rule-based segment evaluated in SQL), to be used inside the caller's own statements;
        a 404 Problem when there is no such list."""


@runtime_checkable
class PaymentLedger(Protocol):
    """The payments ledger (provided by ``payment_history``): one row per charge, refund and fee,
    written from the payment events."""

    async def entries(self, conn, *, payment_ids: list[uuid.UUID] | None = None, occurred_from=None,
                      occurred_to=None) -> list[dict[str, Any]]:
        """The rows (``id``, ``kind``, ``payment_id``, ``booking_id``, ``customer_id``,
        ``amount_cents``, ``currency``, ``occurred_at``) of those payments, or those that occurred
        in ``[occurred_from, occurred_to)``: given both, a row matching either."""


@runtime_checkable
class DepositOperations(Protocol):
    """Moving a booking deposit's money (provided by ``deposits``), with its state rules and
    refund caps; each raises a Problem when refused."""

    async def refund(self, conn, principal, deposit_id: uuid.UUID, *, amount_cents: int | None, reason: str | None,
                     key: str) -> dict[str, Any]:
        """Refund ``amount_cents`` (all that is left when None) and return the refund row; one
        ``key`` refunds once: a second call with it answers the first refund."""

    async def capture(self, conn, principal, deposit_id: uuid.UUID, *, payment_method: str) -> dict[str, Any]:
        """Take a deposit's payment (its PaymentIntent confirmed with ``payment_method``) and return
        the deposit; one already paid answers as it is."""

    async def paid_cents(self, conn, booking_id: uuid.UUID) -> int:
        """What a booking's payments stand at: captured less refunded, in cents."""

    async def pay_share(self, conn, principal, booking_id: uuid.UUID, *, share: str, shares: int,
                        payer_id: uuid.UUID, owed_cents: int, amount_cents: int | None, payment_method: str,
                        key: str) -> dict[str, Any]:
        """One payer's deposit of a booking whose bill is split into ``shares`` shares, paid at once
        with ``payment_method`` and returned (a decline: status ``failed``): the deposit rule on
        ``owed_cents``, or ``amount_cents`` (422 above it); ``payer_id`` is the customer it is
        theirs. The caller decides who may pay ``share``; one ``key`` pays once."""

    async def shares(self, conn, booking_id: uuid.UUID) -> dict[str, Any]:
        """The booking's split deposits: ``deposit_status`` over all its shares (``succeeded`` once
        every share's is captured, ``partially_paid`` while some are, else the latest's or
        ``none``) and ``shares``, each share's latest deposit row by share."""


@runtime_checkable
class CallTranscripts(Protocol):
    """What callers said on the phone (provided by ``voice_ai``), for plugins that search or
    learn from it."""

    async def utterance_text(self, conn, utterance_id: uuid.UUID) -> str | None:
        """The words of one transcribed utterance (opened from its sealed column); None when unknown."""


@runtime_checkable
class CustomerFeedback(Protocol):
    """What customers said of their bookings (provided by ``feedback``), for plugins that search
    or learn from it."""

    async def feedback_text(self, conn, feedback_id: uuid.UUID) -> str | None:
        """The words of one feedback (opened from its sealed column); None when unknown."""


__all__ = ["CallTranscripts", "CustomerFeedback", "ContactLists", "DepositOperations", "Messaging", "PaymentLedger", "ServiceError"]


@runtime_checkable
class AiOrchestration(Protocol):
    """Model calls for the AI plugins (provided by ``ml_ops``): each through the LLM port with
    a response cache, rate limits per principal and per model, tokens and cost recorded, the
    model chosen by configuration or the caller, a fallback down to the offline engine, a
    conversation's context windowed by tokens, and versioned prompt templates."""

    async def complete(self, conn, *, principal: str, feature: str = "default",
                       messages: list[dict[str, str]] | None = None, template: str | None = None,
                       version: int | None = None, variables: dict[str, str] | None = None,
                       model: str | None = None, conversation_id: uuid.UUID | None = None,
                       max_tokens: int | None = None, temperature: float | None = None,
                       cache: bool = True) -> dict[str, Any]:
        """Answer ``messages`` (or the rendered ``template``), recording the call on ``conn``.

        :param principal: who asks (``customer:<id>``, ``plugin:voice_ai``): its rate limit.
        :param feature: what the call is for; costs are reported by it.
        :param model: a model of the catalogue, overriding the feature's and the default.
        :param conversation_id: the conversation whose earlier turns give the context; the
            new turns and the answer are added to it.
        :return: ``call_id``, ``content``, ``model`` (that answered), ``requested_model``,
            ``fallback_from``, ``cached``, ``prompt_tokens``, ``completion_tokens``,
            ``cost_microcents``, ``conversation_id``, ``context_turns``, ``summarised_turns``.
        :raises Problem: 422 naming the field (unknown model, template or variable), 429 with
            Retry-After over a rate limit, 503 when every model of the chain failed.
        """
