"""The ports: one small async interface per outside service, with plain results.

Feature code talks to these interfaces only (``ctx.ports.sms.send(...)``), never to an SDK.
Money is integer cents with a currency; provider ids are strings.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, runtime_checkable


class PortError(Exception):
    """The provider refused or failed an operation; ``code`` is the provider's reason."""

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class InvalidSignature(PortError):
    """A webhook's signature does not match its body (or is missing or stale)."""


# --- payments ------------------------------------------------------------------------------


@dataclass
class PaymentIntent:
    id: str
    amount_cents: int
    currency: str
    status: str  # Stripe's: requires_payment_method, requires_confirmation, processing, succeeded, canceled, ...
    payment_method: str | None = None
    client_secret: str | None = None
    amount_refunded_cents: int = 0
    last_error: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    # the provider's fee on the captured charge (its balance transaction's), None while unknown
    fee_cents: int | None = None


@dataclass
class Refund:
    id: str
    payment_intent_id: str
    amount_cents: int
    currency: str
    status: str


@dataclass
class BalanceTransaction:
    """One movement of the provider's balance (Stripe's ``balance_transaction``)."""

    id: str
    type: str  # charge, refund, adjustment, payout, ...
    amount_cents: int  # signed: a refund is negative
    fee_cents: int
    currency: str
    created: int  # Unix seconds
    source_id: str | None = None  # the charge or refund it moved money for
    intent_id: str | None = None  # that source's PaymentIntent
    metadata: dict[str, str] = field(default_factory=dict)  # the PaymentIntent's


@dataclass
class WebhookEvent:
    """One provider event of a verified webhook, for the core's webhook hub."""

    id: str  # the provider's id of this event: a replay carries the same one
    type: str  # the provider's kind: payment_intent.succeeded, delivered, TRANSACTIONS.SYNC_UPDATES_AVAILABLE...
    data: dict[str, Any]
    topic: str = ""  # splits one provider's events by name: webhook.twilio.status, webhook.twilio.inbound


class WebhookReceiver(Protocol):
    async def verify_webhook(self, headers: Mapping[str, str], body: bytes, url: str) -> list[WebhookEvent]:
        """The events of a webhook request, once its signature is checked.

        :param headers: the request's headers (a case-insensitive mapping).
        :param body: the raw body, as signed.
        :param url: the public URL the provider posted to (Twilio signs it).
        :raises InvalidSignature: missing, wrong or stale signature.
        :raises ValueError: a signed body that is not the provider's format.
        """
        ...


@runtime_checkable
class PaymentsPort(Protocol):
    async def create_intent(self, amount_cents: int, currency: str, *, idempotency_key: str,
                            payment_method: str | None = None,
                            metadata: dict[str, str] | None = None) -> PaymentIntent: ...

    async def confirm_intent(self, intent_id: str, *, payment_method: str | None = None,
                             idempotency_key: str | None = None) -> PaymentIntent:
        """Confirm, first attaching ``payment_method`` when given (``pm_card_visa`` in tests)."""
        ...

    async def cancel_intent(self, intent_id: str) -> PaymentIntent: ...

    async def retrieve_intent(self, intent_id: str) -> PaymentIntent: ...

    async def refund(self, intent_id: str, amount_cents: int | None = None, *,
                     idempotency_key: str) -> Refund: ...

    async def verify_webhook(self, headers: Mapping[str, str], body: bytes, url: str) -> list[WebhookEvent]:
        """Stripe's events (``Stripe-Signature``); see :class:`WebhookReceiver`."""
        ...

    async def submit_dispute_evidence(self, dispute_id: str, evidence: dict[str, str], *,
                                      idempotency_key: str) -> str:
        """Submit ``evidence`` (Stripe's evidence field names) for a dispute; returns its status."""
        ...

    async def balance_transactions(self, *, created_from: int, created_to: int, starting_after: str | None = None,
                                   limit: int = 100) -> tuple[list[BalanceTransaction], str | None]:
        """One page of the balance transactions created in ``[created_from, created_to)`` (Unix
        seconds), newest first, each with its source's PaymentIntent and that intent's metadata.

        :param starting_after: the cursor a previous page answered.
        :return: the page and the cursor of the next one (None after the last).
        """
        ...


# --- messages ------------------------------------------------------------------------------


@dataclass
class SentMessage:
    id: str
    status: str
    to: str


@runtime_checkable
class SmsPort(Protocol):
    async def send(self, to: str, body: str, *, status_callback: str | None = None) -> SentMessage: ...

    async def verify_webhook(self, headers: Mapping[str, str], body: bytes, url: str) -> list[WebhookEvent]:
        """Status callbacks and inbound messages (``X-Twilio-Signature`` over the URL and form)."""
        ...


@runtime_checkable
class EmailPort(Protocol):
    async def send(self, to: str, subject: str, text: str, *, html: str | None = None,
                   from_email: str | None = None) -> SentMessage: ...

    async def verify_webhook(self, headers: Mapping[str, str], body: bytes, url: str) -> list[WebhookEvent]:
        """The event webhook's batch, one event per entry (refused where the provider has none)."""
        ...


# --- bank link -----------------------------------------------------------------------------


@dataclass
class LinkToken:
    link_token: str
    expiration: str


@dataclass
class BankItem:
    access_token: str
    item_id: str


@dataclass
class BankAccount:
    account_id: str
    name: str
    mask: str | None
    type: str
    subtype: str | None
    balance_cents: int | None
    currency: str | None


@runtime_checkable
class BankLinkPort(Protocol):
    async def create_link_token(self, user_id: str) -> LinkToken: ...

    async def exchange_public_token(self, public_token: str) -> BankItem: ...

    async def get_accounts(self, access_token: str) -> list[BankAccount]: ...

    async def verify_webhook(self, headers: Mapping[str, str], body: bytes, url: str) -> list[WebhookEvent]:
        """A webhook signed with a ``Plaid-Verification`` JWT."""
        ...


# --- AI ------------------------------------------------------------------------------------


@dataclass
class ChatResult:
    content: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


@runtime_checkable
class LlmPort(Protocol):
    async def chat(self, messages: list[dict[str, str]], *, max_tokens: int | None = None,
                   temperature: float | None = None) -> ChatResult:
        """``messages`` are ``{"role": "system"|"user"|"assistant", "content": ...}``."""
        ...


@runtime_checkable
class EmbeddingsPort(Protocol):
    dimensions: int
    model: str

    async def embed(self, texts: list[str]) -> list[list[float]]: ...


@dataclass
class Transcript:
    text: str
    language: str | None = None


@runtime_checkable
class SpeechToTextPort(Protocol):
    async def transcribe(self, audio: bytes, *, filename: str = "audio.wav",
                         language: str | None = None) -> Transcript: ...


# --- telephony -----------------------------------------------------------------------------


@dataclass
class CallInfo:
    sid: str
    status: str


@runtime_checkable
class TelephonyPort(Protocol):
    def say(self, text: str, *, gather_action: str | None = None) -> str:
        """TwiML that speaks ``text``; with ``gather_action``, then listens for speech and posts it there."""
        ...

    def dial(self, number: str) -> str:
        """TwiML that connects the caller to ``number``."""
        ...

    async def transfer(self, call_sid: str, number: str) -> CallInfo:
        """Move a live call to ``number`` (a call update with new TwiML)."""
        ...

    async def hangup(self, call_sid: str) -> CallInfo: ...

    async def verify_webhook(self, headers: Mapping[str, str], body: bytes, url: str) -> list[WebhookEvent]:
        """Call status callbacks (``X-Twilio-Signature``)."""
        ...

    def menu(self, text: str, *, action: str, digits: int = 1, timeout: int = 5) -> str:
        """TwiML that speaks ``text`` and listens for up to ``digits`` keypad presses or speech,
        posting them to ``action``; after ``timeout`` seconds of silence it posts there empty."""
        ...


PORTS: dict[str, type] = {
    "payments": PaymentsPort,
    "sms": SmsPort,
    "email": EmailPort,
    "bank": BankLinkPort,
    "llm": LlmPort,
    "embeddings": EmbeddingsPort,
    "speech": SpeechToTextPort,
    "telephony": TelephonyPort,
}
