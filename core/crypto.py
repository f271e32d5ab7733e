"""Encryption of personal data at rest, and keyed hashes to look it up.

Values are sealed with AES-256-GCM under the current key of a key ring; each row records
the id of the key that sealed it, so a new key can become current while rows sealed under
older ones stay readable (decrypt with the row's key, encrypt with the current one). The
associated data binds a ciphertext to its table, column and row, so ciphertexts cannot be
swapped between fields or customers. Lookups use HMAC-SHA256 under a separate key that
does not rotate with the encryption keys.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from typing import Any, Callable

import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_BYTES = 12


class UnknownKey(LookupError):
    """A row was sealed under a key that is not in the configured key ring."""


def _derive(secret: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret.encode())


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_keys(spec: str) -> list[tuple[str, bytes]]:
    """``id:base64url,id2:base64url`` -> [(id, 32-byte key)], first is current."""
    keys = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        key_id, sep, material = part.partition(":")
        key = _b64decode(material) if sep else b""
        if not key_id or len(key_id) > 32 or len(key) != 32:
            raise ValueError("each PII key is id:base64url of 32 bytes, id at most 32 characters")
        keys.append((key_id, key))
    if not keys:
        raise ValueError("MYHIBACHI_PII_KEYS names no key")
    return keys


def new_key_spec(key_id: str) -> str:
    """A fresh ``id:base64url`` entry for MYHIBACHI_PII_KEYS."""
    return f"{key_id}:{base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip('=')}"


class Vault:
    """The key ring and the lookup key; built once per application."""

    def __init__(self, keys: list[tuple[str, bytes]], lookup_key: bytes) -> None:
        self.current_id = keys[0][0]
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys}
        self._lookup_key = lookup_key

    @classmethod
    def from_settings(cls, settings) -> "Vault":
        derived = _derive(settings.signing_key, b"myhibachi/pii-encryption")
        # The id is a fingerprint, so a changed secret never passes for the old key.
        derived_id = "d" + hashlib.sha256(derived).hexdigest()[:12]
        keys = parse_keys(settings.pii_keys) if settings.pii_keys else []
        # The derived key stays readable after explicit keys are configured.
        if derived_id not in dict(keys):
            keys.append((derived_id, derived))
        lookup = settings.pii_lookup_key or settings.signing_key
        return cls(keys, _derive(lookup, b"myhibachi/pii-lookup"))

    def encrypt(self, value: str | None, aad: str) -> str | None:
        if value is None:
            return None
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.current_id].encrypt(nonce, value.encode(), aad.encode())
        return base64.b64encode(nonce + sealed).decode()

    def decrypt(self, token: str | None, key_id: str, aad: str) -> str | None:
        if token is None:
            return None
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnknownKey(f"no PII key with id {key_id!r} is configured")
        raw = base64.b64decode(token)
        return cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad.encode()).decode()

    def rekey(self, token: str | None, key_id: str, aad: str) -> str | None:
        """A ciphertext sealed under ``key_id``, sealed again under the current key (same ``aad``)."""
        return self.encrypt(self.decrypt(token, key_id, aad), aad)

    def seal_json(self, value: Any, aad: str, field: str = "sealed") -> dict[str, str]:
        """A JSON value's stored form, ``{field: ciphertext, "key_id": key id}``, bound to ``aad``."""
        return {field: self.encrypt(json.dumps(value, ensure_ascii=False), aad), "key_id": self.current_id}

    def open_json(self, stored: dict[str, Any], aad: str, field: str = "sealed") -> Any:
        """The value :meth:`seal_json` sealed (under any configured key, with the same ``aad``)."""
        return json.loads(self.decrypt(stored[field], stored["key_id"], aad))

    def lookup_hash(self, kind: str, normalised: str) -> bytes:
        """Deterministic keyed hash of a normalised value; ``kind`` keeps email and phone apart."""
        return hmac.new(self._lookup_key, f"{kind}:{normalised}".encode(), hashlib.sha256).digest()


def vault(ctx) -> Vault:
    """The application's vault, built on first use."""
    found = ctx.extra.get("vault")
    if found is None:
        found = ctx.extra["vault"] = Vault.from_settings(ctx.settings)
    return found


async def reseal(conn, ctx, table: sa.Table, aad: Callable[[Any, str], str], *, batch: int = 500) -> int:
    """Seal every row of ``table`` under the current key again: each ``<field>_enc`` column,
    opened under the row's ``key_id`` and sealed with the same associated data
    (``aad(row, field)``, the whole row given). Returns how many rows changed;
    afterwards no row of the table needs a retired key (a row without a ``key_id`` has
    nothing sealed). Rows another transaction holds are left to the next run."""
    v = vault(ctx)
    key = list(table.primary_key.columns)
    fields = [c.name[:-4] for c in table.c if c.name.endswith("_enc")]
    read = sa.select(table).where(table.c.key_id != v.current_id).limit(batch).with_for_update(skip_locked=True)
    done = 0
    while rows := await conn.fetch_all(read):
        for row in rows:
            values = {f"{f}_enc": v.rekey(row[f"{f}_enc"], row["key_id"], aad(row, f)) for f in fields}
            await conn.run(sa.update(table).where(*(c == row[c.name] for c in key))
                           .values(**values, key_id=v.current_id))
        done += len(rows)
    return done
