"""All settings, read from the environment (``MYHIBACHI_*`` plus the standard service URLs).

The README's settings table is kept in step with this class by a test. A plugin's own
settings (its manifest's model) are read by :func:`plugin_settings` from ``MYHIBACHI_<NAME>_*``.
"""
from __future__ import annotations

import ipaddress
import os
import secrets
from datetime import time
from functools import cached_property
from pathlib import Path
from typing import Literal, Any

from pydantic import AliasChoices, BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


def _networks(value: str) -> tuple:
    return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in value.split(",") if p.strip())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MYHIBACHI_", extra="ignore", populate_by_name=True)

    home: Path = Field(
        default=Path("~/.local/share/myhibachi"),
        description="Data folder of the embedded default (PostgreSQL data, task queue, toggles file, secret).",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias=_env("DATABASE_URL"),
        description="PostgreSQL URL (with the vector extension). Unset: the embedded PostgreSQL under the home folder.",
    )
    database_owner_url: str | None = Field(
        default=None,
        description="PostgreSQL URL migrations run as (the tables' owner); DATABASE_URL then names the app's role, "
                    "granted by `db upgrade` only what the API and workers need. Unset: DATABASE_URL does both "
                    "(the embedded default: its superuser migrates, the role myhibachi_app serves).",
    )
    max_body_bytes: int = Field(
        default=1 << 20, ge=1024,
        description="Largest request body accepted: a bigger one is a 413 problem, refused before it is read.",
    )
    db_write_pool_size: int = Field(
        default=20, ge=1, le=200,
        description="Connections of each API process's pool for requests that write (one transaction each).",
    )
    db_read_pool_size: int = Field(
        default=20, ge=1, le=200,
        description="Connections of each API process's pool for read-only requests (autocommit).",
    )
    redis_url: str | None = Field(
        default=None,
        validation_alias=_env("REDIS_URL"),
        description="Redis URL for the task queue and rate limits. Unset: SQLite queue and in-process limits.",
    )
    unleash_url: str | None = Field(
        default=None,
        validation_alias=_env("UNLEASH_URL"),
        description="Unleash server API URL ending in /api. Unset: flags come from the local toggles file.",
    )
    unleash_api_token: str | None = Field(
        default=None, validation_alias=_env("UNLEASH_API_TOKEN"), description="Unleash backend (client) token."
    )
    unleash_admin_token: str | None = Field(
        default=None,
        validation_alias=_env("UNLEASH_ADMIN_TOKEN"),
        description="Unleash admin token, used only by the CLI: `myhibachi flags sync/enable/disable/rollout`.",
    )
    unleash_environment: str | None = Field(
        default=None,
        validation_alias=_env("UNLEASH_ENVIRONMENT"),
        description="Unleash environment the CLI's flag commands change. Unset: the one in UNLEASH_API_TOKEN.",
    )
    unleash_refresh_seconds: int = Field(default=5, description="How often flags are re-read (file or server).")
    log_format: Literal["json", "text"] = Field(
        default="json", description="Logs of `myhibachi up` and `worker`: JSON lines (request id, route, status, "
                                    "duration, principal kind) or plain text.")
    tracing: Literal["off", "console", "otlp"] = Field(
        default="off", description="OpenTelemetry spans of every request (the `tracing` extra): off, console "
                                   "(stdout) or otlp (to where the standard OTEL_EXPORTER_OTLP_* variables say).")
    flags_file: Path | None = Field(
        default=None, description="Toggles file in Unleash's client features format. Unset: <home>/flags.json."
    )
    plugins: str | None = Field(default=None, description="Comma-separated allow list of plugins to load.")
    disabled_plugins: str = Field(default="", description="Comma-separated plugins not to load.")
    strict_plugins: bool = Field(
        default=False, description="Refuse to start when any plugin fails to load (CI sets it)."
    )
    trace_hooks: bool = Field(default=False, description="Log every hook call with its arguments and result.")
    validate_events: bool = Field(
        default=False, description="Check every published event's payload against its declared model (debugging).")
    secret_key: str | None = Field(
        default=None,
        description="Key for signing tokens and for PII encryption. Unset: generated once and kept in the home folder.",
    )
    host: str = Field(default="127.0.0.1", description="Address `myhibachi up` listens on.")
    port: int = Field(default=8000, description="Port `myhibachi up` listens on.")
    workers: int = Field(default=1, description="API worker processes `myhibachi up` starts.")
    rate_limit_ip: int = Field(default=1200, description="Requests per window from one IP address (0: no limit).")
    trusted_proxies: str = Field(
        default="", description="Comma-separated addresses or networks of the proxies in front of the API: from them, "
                                "the client's address is the nearest untrusted one of X-Forwarded-For.")
    rate_limit_principal: int = Field(
        default=600, description="Requests per window from one signed-in caller (0: no limit)."
    )
    rate_limit_window: int = Field(default=60, description="Length of a rate limit window, in seconds.")
    pii_keys: str | None = Field(
        default=None,
        description="Customer PII encryption keys as comma-separated id:base64url(32 bytes), the first one current "
        "(`myhibachi admin new-pii-key ID` makes one). The key derived from the secret key stays readable. Keep a "
        "retired key listed, and the secret key unchanged, until `myhibachi admin rotate-pii` has run.",
    )
    pii_lookup_key: str | None = Field(
        default=None,
        description="Key of the keyed hashes used to look customers up by email/phone. Unset: derived from the "
        "secret key (set it before rotating the secret key).",
    )
    access_token_minutes: int = Field(default=15, description="Lifetime of an access token.")
    refresh_token_days: int = Field(default=30, description="Lifetime of a refresh token.")
    default_time_zone: str = Field(
        default="America/Los_Angeles",
        description="IANA time zone of an event or availability query that names none.",
    )
    booking_min_party_size: int = Field(default=2, ge=1, description="Fewest guests (adults + children) per booking.")
    booking_max_party_size: int = Field(default=60, ge=1, description="Most guests (adults + children) per booking.")
    booking_lead_time_hours: int = Field(default=48, ge=0, description="How long before its start an event can still be booked.")
    booking_max_advance_days: int = Field(default=180, ge=1, description="How far ahead an event can be booked.")
    business_open: time = Field(
        default=time(11, 0), description="First event start of the day, in the event's own time zone."
    )
    business_close: time = Field(
        default=time(22, 0), description="Every event ends by this time, in the event's own time zone (after the opening)."
    )
    booking_slot_minutes: int = Field(
        default=60, ge=5, le=720, description="Spacing of the start times offered from the opening time."
    )
    booking_capacity: int = Field(
        default=2, ge=0, description="Chef teams: events that may run at once (a plugin's booking_capacity overrides)."
    )
    booking_default_duration_minutes: int = Field(default=120, ge=5, description="Length of an event that names none.")
    booking_max_duration_minutes: int = Field(default=360, ge=5, description="Longest event that can be booked.")
    price_adult_cents: int = Field(default=6000, ge=0, description="Base price per adult, in cents.")
    price_child_cents: int = Field(default=3000, ge=0, description="Base price per child, in cents.")
    minimum_order_cents: int = Field(default=55000, ge=0, description="Smallest base order; the difference is a line.")
    currency: str = Field(default="USD", min_length=3, max_length=3, description="Currency of every price (ISO 4217).")

    @model_validator(mode="after")
    def _booking_rules_agree(self) -> "Settings":
        if self.business_close <= self.business_open:
            raise ValueError("business_close must be after business_open")
        if self.booking_min_party_size > self.booking_max_party_size:
            raise ValueError("booking_min_party_size must not exceed booking_max_party_size")
        if self.booking_default_duration_minutes > self.booking_max_duration_minutes:
            raise ValueError("booking_default_duration_minutes must not exceed booking_max_duration_minutes")
        return self

    # Ports: which adapter each one uses ("offline" records what it would send in the database).
    payments_adapter: str = Field(default="offline", description="Payments adapter: offline or stripe.")
    sms_adapter: str = Field(default="offline", description="SMS adapter: offline or twilio.")
    email_adapter: str = Field(default="offline", description="Email adapter: offline, sendgrid or smtp.")
    bank_adapter: str = Field(default="offline", description="Bank link adapter: offline or plaid.")
    llm_adapter: str = Field(default="offline", description="Language model adapter: offline or openai.")
    embeddings_adapter: str = Field(
        default="offline",
        description="Embeddings adapter: offline (all-MiniLM-L6-v2 int8 ONNX on this machine, 384 dims, no "
        "PyTorch), minilm (the same model through sentence-transformers, needs PyTorch), openai, or hashing "
        "(deterministic feature hashing, not semantic: a test double).",
    )
    speech_adapter: str = Field(
        default="offline",
        description="Speech-to-text adapter: offline (records the audio, transcribes nothing), whisper (Whisper "
        "tiny.en on this machine, English, needs the speech extra) or openai.",
    )
    telephony_adapter: str = Field(default="offline", description="Telephony adapter: offline, twilio or ringcentral.")
    stripe_api_key: str | None = Field(default=None, description="Stripe secret key.")
    stripe_api_base: str | None = Field(default=None, description="Stripe API address. Unset: Stripe's.")
    public_url: str | None = Field(
        default=None,
        description="The API's public address (https://api.example.com): provider callbacks are sent there and "
                    "Twilio's webhook signatures are checked against it. Unset: the URL a request arrived on.")
    webhook_tolerance_seconds: int = Field(
        default=300, ge=1, description="Provider webhooks signed longer ago than this are refused.")
    stripe_webhook_secret: str | None = Field(
        default=None,
        description="Stripe webhook signing secret (whsec_...). Unset offline: derived from the secret key.",
    )
    twilio_account_sid: str | None = Field(default=None, description="Twilio account SID.")
    twilio_auth_token: str | None = Field(default=None, description="Twilio auth token (also checks its webhooks).")
    twilio_from_number: str | None = Field(default=None, description="Twilio number SMS and calls come from.")
    twilio_api_base: str | None = Field(default=None, description="Twilio API address. Unset: Twilio's.")
    ringcentral_verification_token: str | None = Field(
        default=None, description="The verificationToken of the RingCentral webhook subscription: each "
        "notification's Verification-Token header must be it.")
    ringcentral_client_id: str | None = Field(default=None, description="RingCentral app's client id (Call Control).")
    ringcentral_client_secret: str | None = Field(default=None, description="RingCentral app's client secret.")
    ringcentral_jwt: str | None = Field(
        default=None, description="RingCentral JWT credential of the extension whose calls are controlled "
        "(transfer, hang-up).")
    ringcentral_server_url: str = Field(default="https://platform.ringcentral.com",
                                        description="RingCentral API address.")
    sendgrid_api_key: str | None = Field(default=None, description="SendGrid API key.")
    sendgrid_api_base: str | None = Field(default=None, description="SendGrid API address. Unset: SendGrid's.")
    sendgrid_webhook_public_key: str | None = Field(
        default=None, description="SendGrid signed event webhook verification key (base64 DER, ECDSA P-256)."
    )
    email_from: str = Field(default="bookings@myhibachi.example", description="Sender address of emails.")
    smtp_host: str = Field(default="localhost", description="SMTP server host.")
    smtp_port: int = Field(default=587, description="SMTP server port.")
    smtp_username: str | None = Field(default=None, description="SMTP user name. Unset: no login.")
    smtp_password: str | None = Field(default=None, description="SMTP password.")
    smtp_starttls: bool = Field(default=True, description="Upgrade the SMTP connection with STARTTLS.")
    plaid_client_id: str | None = Field(default=None, description="Plaid client id.")
    plaid_secret: str | None = Field(default=None, description="Plaid secret.")
    plaid_api_base: str = Field(default="https://sandbox.plaid.com", description="Plaid environment address.")
    openai_api_key: str | None = Field(default=None, description="OpenAI API key.")
    openai_api_base: str | None = Field(default=None, description="OpenAI-compatible API address. Unset: OpenAI's.")
    openai_chat_model: str = Field(default="gpt-4o-mini", description="Chat model of the LLM port.")
    openai_embedding_model: str = Field(
        default="text-embedding-3-small", description="Embedding model (asked for 384 dimensions)."
    )
    openai_transcription_model: str = Field(default="whisper-1", description="Speech-to-text model.")

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        return init_settings, env_settings, _FromFiles(settings_cls), dotenv_settings, file_secret_settings

    def require_secret_key(self) -> None:
        """Refuse a production start (an external database) without MYHIBACHI_SECRET_KEY: each
        host would make its own key, and tokens and PII encryption would differ between them."""
        if self.database_url and not self.secret_key:
            raise SecretKeyMissing("MYHIBACHI_SECRET_KEY (or MYHIBACHI_SECRET_KEY_FILE) must be set when DATABASE_URL "
                                   "is: every host must sign tokens and encrypt PII with the same key")

    @field_validator("pii_keys")
    @classmethod
    def _valid_pii_keys(cls, value: str | None) -> str | None:
        if value is not None:
            from myhibachi.core.crypto import parse_keys

            parse_keys(value)  # a bad key stops start-up rather than a request
        return value

    @property
    def home_dir(self) -> Path:
        path = self.home.expanduser()
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def toggles_path(self) -> Path:
        return (self.flags_file or self.home_dir / "flags.json").expanduser()

    @property
    def allowed_plugins(self) -> set[str] | None:
        if self.plugins is None:
            return None
        return {p.strip() for p in self.plugins.split(",") if p.strip()}

    @cached_property
    def proxies(self) -> tuple:
        """``trusted_proxies`` as networks (checked when the settings are read)."""
        return _networks(self.trusted_proxies)

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_proxies(cls, value: str) -> str:
        _networks(value)  # a bad address stops start-up, named, rather than a request
        return value

    @property
    def excluded_plugins(self) -> set[str]:
        return {p.strip() for p in self.disabled_plugins.split(",") if p.strip()}

    @cached_property
    def signing_key(self) -> str:
        if self.secret_key:
            return self.secret_key
        path = self.home_dir / "secret.key"
        if not path.exists():
            try:  # 0600 from creation: never readable by others, even for a moment
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process of this home made it first
                pass
            else:
                with os.fdopen(fd, "w") as out:
                    out.write(secrets.token_urlsafe(48))
        return path.read_text().strip()

    def private_file(self, name: str) -> Path:
        """A file under the home folder, created empty and 0600 when missing."""
        path = self.home_dir / name
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
        return path


class SecretKeyMissing(RuntimeError):
    """A production start without a shared secret key."""


class _FromFiles(PydanticBaseSettingsSource):
    """``<VARIABLE>_FILE=/run/secrets/x``: the setting read from that file (Docker, Kubernetes
    and systemd secrets), its surrounding whitespace stripped. The variable itself wins."""

    def get_field_value(self, field, field_name):
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for (var, _, _), name in zip(env_table(self.settings_cls), self.settings_cls.model_fields):
            path = os.environ.get(f"{var}_FILE")
            if path and var not in os.environ:
                try:
                    values[name] = Path(path).read_text().strip()
                except OSError as exc:
                    raise ValueError(f"{var}_FILE: cannot read {path}: {exc.strerror}") from exc
        return values


def env_table(model: type[BaseModel] = Settings, prefix: str = "MYHIBACHI_") -> list[tuple[str, str, str]]:
    """(variable, default, description) for every setting of ``model``, in declaration order."""
    rows = []
    for name, field in model.model_fields.items():
        alias = field.validation_alias
        var = alias.choices[0] if isinstance(alias, AliasChoices) else f"{prefix}{name.upper()}"
        default = "" if field.default is None else str(field.default)
        rows.append((var, default, field.description or ""))
    return rows


def plugin_prefix(name: str) -> str:
    """The environment prefix of a plugin's settings: ``MYHIBACHI_<NAME>_``."""
    return f"MYHIBACHI_{name.upper()}_"


def plugin_settings(plugin, overrides: dict[str, Any]) -> BaseModel | None:
    """The settings of a plugin whose manifest names a model: each field from a keyword
    override, else ``MYHIBACHI_<NAME>_<FIELD>`` when set, else the model's default.

    Raises PluginError naming the variable (or the keyword) of every value the model refuses.
    """
    from myhibachi.core.plugins import PluginError

    model, prefix = type(plugin).settings, plugin_prefix(plugin.name)
    unknown = sorted(set(overrides) - set(model.model_fields if model else ()))
    if unknown:
        raise PluginError(f"plugin {plugin.name} has no setting {', '.join(unknown)}")
    if model is None:
        return None
    values: dict[str, Any] = {f: os.environ[prefix + f.upper()] for f in model.model_fields
                              if prefix + f.upper() in os.environ}
    values.update(overrides)
    try:
        return model(**values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            if field in overrides:
                where = f"setting {field}={overrides[field]!r}: "
            elif field:
                where = f"{prefix}{field.upper()}" + (f"={values[field]!r}: " if field in values else ": ")
            else:
                where = ""
            problems.append(where + error["msg"])
        raise PluginError(f"plugin {plugin.name}: {'; '.join(problems)}") from None


def settings_rows(plugin) -> list[dict[str, str]]:
    """A plugin's settings as ``plugins list --json`` shows them: variable, default, description."""
    model = type(plugin).settings if plugin is not None else None
    return [dict(zip(("variable", "default", "description"), row))
            for row in (env_table(model, plugin_prefix(plugin.name)) if model else [])]
