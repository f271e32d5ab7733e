"""Ports to the outside world; adapters are chosen by settings (see ``build``).

Each port has an ``offline`` adapter (the embedded default: it records what it would send
in ``offline_outbox``) and adapters on the providers' official SDKs. An adapter module is
imported only when its adapter is the configured one, so an app on offline adapters never
imports an SDK. Third parties add adapters with the ``register_adapters`` hook.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

from myhibachi.core.ports.base import (  # noqa: F401  (the port types are part of this API)
    PORTS,
    BankLinkPort,
    EmailPort,
    EmbeddingsPort,
    InvalidSignature,
    LlmPort,
    PaymentsPort,
    PortError,
    SmsPort,
    SpeechToTextPort,
    TelephonyPort,
)


def _at(path: str) -> str:
    return f"{__name__}.{path}"


BUILTIN: dict[str, dict[str, str]] = {
    "payments": {"offline": _at("offline:OfflinePayments"), "stripe": _at("stripe_payments:StripePayments")},
    "sms": {"offline": _at("offline:OfflineSms"), "twilio": _at("twilio_adapters:TwilioSms")},
    "email": {"offline": _at("offline:OfflineEmail"), "sendgrid": _at("email_adapters:SendGridEmail"),
              "smtp": _at("email_adapters:SmtpEmail")},
    "bank": {"offline": _at("offline:OfflineBankLink"), "plaid": _at("plaid_bank:PlaidBankLink")},
    "llm": {"offline": _at("offline:OfflineLlm"), "openai": _at("openai_adapters:OpenAILlm")},
    "embeddings": {"offline": _at("local_ai:OnnxMiniLMEmbeddings"), "openai": _at("openai_adapters:OpenAIEmbeddings"),
                   "minilm": _at("local_ai:MiniLMEmbeddings"), "hashing": _at("offline:HashingEmbeddings")},
    "speech": {"offline": _at("offline:OfflineSpeechToText"), "openai": _at("openai_adapters:OpenAISpeechToText"),
               "whisper": _at("local_ai:WhisperSpeechToText")},
    "telephony": {"offline": _at("offline:OfflineTelephony"), "twilio": _at("twilio_adapters:TwilioTelephony"),
                  "ringcentral": _at("ringcentral_adapters:RingCentralTelephony")},
}

Factory = Callable[[Any], Any]


class UnknownAdapter(ValueError):
    pass


def _import(path: str) -> Factory:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


class Ports:
    """The adapters of one application, each built on first use and then kept."""

    def __init__(self, ctx, factories: dict[str, dict[str, str | Factory]] | None = None) -> None:
        self.ctx = ctx
        self.factories = factories or {p: dict(a) for p, a in BUILTIN.items()}
        self._adapters: dict[str, Any] = {}
        for port in PORTS:
            self.adapter_name(port)

    def adapter_name(self, port: str) -> str:
        """The configured adapter of ``port`` (setting ``MYHIBACHI_<PORT>_ADAPTER``)."""
        name = getattr(self.ctx.settings, f"{port}_adapter")
        if name not in self.factories[port]:
            raise UnknownAdapter(f"{port} adapter {name!r} is not installed; choose one of "
                                 f"{', '.join(sorted(self.factories[port]))}")
        return name

    def get(self, port: str) -> Any:
        adapter = self._adapters.get(port)
        if adapter is None:
            factory = self.factories[port][self.adapter_name(port)]
            adapter = (_import(factory) if isinstance(factory, str) else factory)(self.ctx)
            self._adapters[port] = adapter
        return adapter

    def named(self, port: str, name: str) -> Any:
        """The adapter ``name`` of ``port`` whatever is configured (a fallback to the offline
        engine, say), built on first use and then kept."""
        if name == self.adapter_name(port):
            return self.get(port)
        if name not in self.factories[port]:
            raise UnknownAdapter(f"{port} adapter {name!r} is not installed; choose one of "
                                 f"{', '.join(sorted(self.factories[port]))}")
        adapter = self._adapters.get(f"{port}:{name}")
        if adapter is None:
            factory = self.factories[port][name]
            adapter = (_import(factory) if isinstance(factory, str) else factory)(self.ctx)
            self._adapters[f"{port}:{name}"] = adapter
        return adapter

    @property
    def payments(self) -> PaymentsPort:
        return self.get("payments")

    @property
    def sms(self) -> SmsPort:
        return self.get("sms")

    @property
    def email(self) -> EmailPort:
        return self.get("email")

    @property
    def bank(self) -> BankLinkPort:
        return self.get("bank")

    @property
    def llm(self) -> LlmPort:
        return self.get("llm")

    @property
    def embeddings(self) -> EmbeddingsPort:
        return self.get("embeddings")

    @property
    def speech(self) -> SpeechToTextPort:
        return self.get("speech")

    @property
    def telephony(self) -> TelephonyPort:
        return self.get("telephony")


def build(ctx) -> Ports:
    """The ports of ``ctx``: built-in adapters plus those plugins register (a plugin's
    adapter may not replace a built-in one of the same name)."""
    factories: dict[str, dict[str, str | Factory]] = {p: dict(a) for p, a in BUILTIN.items()}
    strict = ctx.settings.strict_plugins
    for plugin, offered in ctx.plugins.setup_call("register_adapters", strict=strict):
        offered = offered or {}
        problems = [f"unknown port {p!r}" for p in offered if p not in factories]
        problems += [f"{p} adapter {n!r} is built in" for p, named in offered.items() if p in BUILTIN
                     for n in named if n in BUILTIN[p]]
        if problems:
            ctx.plugins.fail(plugin, "register_adapters: " + "; ".join(problems), strict)
            continue
        for port, named in offered.items():
            factories[port].update(named)
    return Ports(ctx, factories)
