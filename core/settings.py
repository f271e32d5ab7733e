"""All settings, read from the environment (``MYHIBACHI_*`` plus the standard service URLs).

The README's settings table is kept in step with this class by a test.
"""
from __future__ import annotations

import secrets
from functools import cached_property
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


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
        description="Unleash admin token, used only by `myhibachi flags sync`.",
    )
    unleash_refresh_seconds: int = Field(default=5, description="How often flags are re-read (file or server).")
    flags_file: Path | None = Field(
        default=None, description="Toggles file in Unleash's client features format. Unset: <home>/flags.json."
    )
    plugins: str | None = Field(default=None, description="Comma-separated allow list of plugins to load.")
    disabled_plugins: str = Field(default="", description="Comma-separated plugins not to load.")
    strict_plugins: bool = Field(
        default=False, description="Refuse to start when any plugin fails to load (CI sets it)."
    )
    trace_hooks: bool = Field(default=False, description="Log every hook call with its arguments and result.")
    secret_key: str | None = Field(
        default=None,
        description="Key for signing tokens and for PII encryption. Unset: generated once and kept in the home folder.",
    )
    host: str = Field(default="127.0.0.1", description="Address `myhibachi up` listens on.")
    port: int = Field(default=8000, description="Port `myhibachi up` listens on.")
    workers: int = Field(default=1, description="API worker processes `myhibachi up` starts.")
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

    @property
    def excluded_plugins(self) -> set[str]:
        return {p.strip() for p in self.disabled_plugins.split(",") if p.strip()}

    @cached_property
    def signing_key(self) -> str:
        if self.secret_key:
            return self.secret_key
        path = self.home_dir / "secret.key"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()


def env_table() -> list[tuple[str, str, str]]:
    """(variable, default, description) for every setting, in declaration order."""
    rows = []
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        var = alias.choices[0] if isinstance(alias, AliasChoices) else f"MYHIBACHI_{name.upper()}"
        default = "" if field.default is None else str(field.default)
        rows.append((var, default, field.description or ""))
    return rows
