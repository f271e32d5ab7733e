"""Customers: the service behind ``/v1/customers``, callable without HTTP.

Name, email, phone and address are stored sealed (see :mod:`myhibachi.core.crypto`);
email and phone are normalised (lower-case address, E.164 number) and found through their
keyed hashes. Functions take the caller's connection, so their writes and the events they
publish commit or roll back together. Every function returns plain dicts:
``{id, email, name, phone, address, status, created_at, updated_at}``; the ones whose
customers become the customer view (sign-up, get, list, update) add the plugins' columns
under their labels (``loyalty.points_balance``), read by the same statement.
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import phonenumbers
import psycopg
import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, Field, WithJsonSchema
from pydantic_core import PydanticCustomError
from sqlalchemy.dialects.postgresql import insert as pg_insert

from myhibachi.core import events
from myhibachi.core.crypto import reseal, vault

from myhibachi.core.errors import Problem, conflict, invalid
from myhibachi.core.models import customers
from myhibachi.core.passwords import hash_password, needs_rehash, verify_password
from myhibachi.core.pagination import NextCursor, fetch_page

if TYPE_CHECKING:
    from myhibachi.core.auth import Principal

PII = ("email", "name", "phone", "address")
STATUSES = ("active", "disabled")
DEFAULT_REGION = "US"
MAX_NAME = 200
MAX_ADDRESS = 500
MIN_PASSWORD, MAX_PASSWORD = 8, 256

_PROFILE = (customers.c.id, customers.c.email_enc, customers.c.name_enc, customers.c.phone_enc,
            customers.c.address_enc, customers.c.key_id, customers.c.status, customers.c.created_at,
            customers.c.updated_at)


@dataclass(frozen=True)
class Profile:
    """What the customer view reads of a customer row: the core's columns and the plugins'
    (``register_fields``' ``customer_columns``), and the lookup by id, built once per app
    (``ctx.models.customer_profile``) so the hot path only binds the id."""

    columns: tuple
    by_id: sa.Select


def profile(plugin_columns: tuple = ()) -> Profile:
    columns = (*_PROFILE, *plugin_columns)
    return Profile(columns, sa.select(*columns).where(customers.c.id == sa.bindparam("customer_id")))


CORE_PROFILE = profile()


class Customer(BaseModel):
    """The customer view (the plugins' fields are added at start-up, see ``ctx.models.customer``)."""

    id: uuid.UUID
    email: str
    name: str
    phone: str | None = Field(None, description="E.164")
    address: str | None = None
    status: str
    created_at: datetime
    updated_at: datetime


class CustomerPage(BaseModel):
    items: list[Customer]
    next_cursor: NextCursor


# --- normalisation ---------------------------------------------------------------------


def _email_value(value: str) -> str:
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise PydanticCustomError("value_error", "value is not a valid email address: {reason}",
                                  {"reason": str(exc)}) from None


# An email address in a request model, checked as pydantic's EmailStr checks it; EmailStr asks
# the installed distributions for email-validator's version on every model using it (~50 ms
# each at start-up, five models with every plugin).
EmailAddress = Annotated[str, AfterValidator(_email_value), WithJsonSchema({"type": "string", "format": "email"})]


def normalise_email(value: str, field: str = "email") -> str:
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized.lower()
    except (EmailNotValidError, AttributeError) as exc:
        raise invalid(field, str(exc) or "not a valid email address") from exc


def normalise_phone(value: str, field: str = "phone", region: str = DEFAULT_REGION) -> str:
    try:
        number = phonenumbers.parse(value, region)
    except (phonenumbers.NumberParseException, TypeError) as exc:
        raise invalid(field, "not a valid phone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise invalid(field, "not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _clean_name(value: str) -> str:
    value = (value or "").strip()
    if not value:
        raise invalid("name", "must not be empty")
    if len(value) > MAX_NAME:
        raise invalid("name", f"at most {MAX_NAME} characters")
    return value


def _clean_address(value: str | None) -> str | None:
    value = (value or "").strip()
    if len(value) > MAX_ADDRESS:
        raise invalid("address", f"at most {MAX_ADDRESS} characters")
    return value or None


def _check_password(value: str) -> str:
    if not MIN_PASSWORD <= len(value) <= MAX_PASSWORD:
        raise invalid("password", f"between {MIN_PASSWORD} and {MAX_PASSWORD} characters")
    return value


# Argon2 is deliberately slow and takes 64 MiB a hash: run it off the event loop, a few at a time.
# --- sealing -------------------------------------------------------------------------------


def _aad(customer_id: uuid.UUID, field: str) -> str:
    return f"customers.{field}:{customer_id}"


def sealed(ctx, customer_id: uuid.UUID, values: dict[str, str | None]) -> dict[str, Any]:
    """The stored columns for plaintext PII, all under the current key."""
    v = vault(ctx)
    columns: dict[str, Any] = {f"{f}_enc": v.encrypt(values[f], _aad(customer_id, f)) for f in PII}
    columns["key_id"] = v.current_id
    columns["email_hash"] = v.lookup_hash("email", values["email"])
    columns["phone_hash"] = v.lookup_hash("phone", values["phone"]) if values["phone"] else None
    return columns


def _open(ctx, row) -> dict[str, Any]:
    """The plain customer of a stored row (and the plugins' columns it carries)."""
    v = vault(ctx)
    out = {f: v.decrypt(row[f"{f}_enc"], row["key_id"], _aad(row["id"], f)) for f in PII}
    out.update(id=row["id"], status=row["status"], created_at=row["created_at"], updated_at=row["updated_at"])
    out.update((k, value) for k, value in row.items() if "." in k)
    return out


# --- reads ---------------------------------------------------------------------------------


async def contacts(conn, ctx, customer_ids) -> dict[uuid.UUID, dict[str, Any]]:
    """Email, phone and name of many customers at once, decrypted: what a sender needs."""
    ids = list(set(customer_ids))
    if not ids:
        return {}
    rows = await conn.fetch_all(sa.select(
        customers.c.id, customers.c.key_id, customers.c.status, customers.c.email_enc, customers.c.phone_enc,
        customers.c.name_enc).where(customers.c.id.in_(ids)))
    v = vault(ctx)
    return {r["id"]: {f: v.decrypt(r[f"{f}_enc"], r["key_id"], _aad(r["id"], f)) for f in ("email", "phone", "name")}
            | {"status": r["status"]} for r in rows}



async def profiles(conn, ctx, customer_ids) -> dict[uuid.UUID, dict[str, Any]]:
    """Many customers' profiles at once, decrypted (without the plugins' columns)."""
    ids = list(set(customer_ids))
    rows = await conn.fetch_all(sa.select(*_PROFILE).where(customers.c.id.in_(ids))) if ids else []
    return {r["id"]: _open(ctx, r) for r in rows}


async def get_customer(conn, ctx, customer_id: uuid.UUID) -> dict[str, Any] | None:
    row = await conn.fetch_one(ctx.models.customer_profile.by_id, {"customer_id": customer_id})
    return _open(ctx, row) if row else None


async def find_by_email(conn, ctx, email: str) -> dict[str, Any] | None:
    digest = vault(ctx).lookup_hash("email", normalise_email(email))
    row = await conn.fetch_one(sa.select(*_PROFILE).where(customers.c.email_hash == digest))
    return _open(ctx, row) if row else None


def phone_hash(ctx, number: str | None) -> bytes | None:
    """The lookup hash a profile with ``number`` (in any spelling) has for its phone, so a plugin
    keeping numbers (a caller's, an SMS sender's) finds a customer's rows by it; None when
    ``number`` is not a phone number (a withheld caller id)."""
    try:
        return vault(ctx).lookup_hash("phone", normalise_phone(number)) if number else None
    except Problem:
        return None


async def find_by_phone(conn, ctx, phone: str) -> list[dict[str, Any]]:
    digest = vault(ctx).lookup_hash("phone", normalise_phone(phone))
    rows = await conn.fetch_all(sa.select(*_PROFILE).where(customers.c.phone_hash == digest)
                               .order_by(customers.c.created_at, customers.c.id))
    return [_open(ctx, r) for r in rows]






async def list_customers(conn, ctx, *, limit: int = 50, cursor: str | None = None, email: str | None = None,
                         phone: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first; ``email``/``phone`` filter exactly through the keyed hashes."""
    v = vault(ctx)
    query = sa.select(*ctx.models.customer_profile.columns)
    if email is not None:
        query = query.where(customers.c.email_hash == v.lookup_hash("email", normalise_email(email)))
    if phone is not None:
        query = query.where(customers.c.phone_hash == v.lookup_hash("phone", normalise_phone(phone)))
    rows, next_cursor = await fetch_page(conn, query, (customers.c.created_at, customers.c.id), limit=limit,
                                         cursor=cursor)
    return [_open(ctx, r) for r in rows], next_cursor


async def views(ctx, principal: Principal, rows: list[dict[str, Any]]) -> list[BaseModel]:
    """Customers as the customer view, the plugins' fields filled from the rows for all of them at once."""
    model = ctx.models.customer
    if not ctx.models.owners.get("customer") or not rows:
        return [model(**row) for row in rows]
    filled: dict[str, list] = {}
    for answer in await ctx.hooks(principal.flag_context()).customer_fields(customers=tuple(rows), principal=principal):
        filled.update(answer)
    return [model(**row, **{name: values[i] for name, values in filled.items()}) for i, row in enumerate(rows)]


# --- writes --------------------------------------------------------------------------------


async def create_customer(conn, ctx, *, email: str, name: str, phone: str | None = None,
                          address: str | None = None, password: str | None = None,
                          actor: str | None = None, password_hash: str | None = None) -> dict[str, Any]:
    """Create a customer; 422 problem on bad input (field named), 409 when the email is taken.
    ``password_hash`` is a password hashed already (a confirmed sign-up's)."""
    values = _checked(email=email, name=name, phone=phone, address=address)
    if password is not None:
        password_hash = await hash_password(_check_password(password))
    customer_id = uuid.uuid4()
    # Read back by the view's own lookup (RETURNING cannot carry the plugins' correlated
    # columns); nothing found means the insert met the email of another customer.
    await conn.run(
        pg_insert(customers)
        .values(id=customer_id, password_hash=password_hash, **sealed(ctx, customer_id, values))
        .on_conflict_do_nothing(constraint="uq_customers_email_hash"))
    row = await conn.fetch_one(ctx.models.customer_profile.by_id, {"customer_id": customer_id})
    if row is None:
        raise conflict("a customer with this email already exists", field="email")
    await events.publish(conn, ctx, "customer.created", {"customer_id": str(customer_id)},
                         actor=actor or str(customer_id))
    return _open(ctx, row)


def _checked(*, email: str, name: str, phone: str | None, address: str | None) -> dict[str, Any]:
    return {"email": normalise_email(email), "name": _clean_name(name),
            "phone": normalise_phone(phone) if phone else None, "address": _clean_address(address)}


# --- confirming an email: sign-up and email change -------------------------------------------
# Whether an address has an account is told only to that mailbox: sign-up and an email change
# answer the same either way and send one email either way (a code, or a notice that the
# address has an account already), so neither the answer nor its timing is an oracle.

CODE_TTL_SECONDS = 24 * 3600


def _seal_code(ctx, aad: str, data: dict[str, Any]) -> str:
    """A code only this service can open: ``data`` and its expiry sealed under the current key."""
    v = vault(ctx)
    sealed = v.encrypt(json.dumps({**data, "exp": int(time.time()) + CODE_TTL_SECONDS}), aad)
    return f"{v.current_id}.{sealed.replace('+', '-').replace('/', '_').rstrip('=')}"


def _open_code(ctx, aad: str, code: str) -> dict[str, Any]:
    key_id, _, sealed = code.strip().rpartition(".")
    try:
        data = json.loads(vault(ctx).decrypt(
            sealed.replace("-", "+").replace("_", "/") + "=" * (-len(sealed) % 4), key_id, aad))
    except Exception:  # not ours, altered, for another purpose or under a retired key
        raise invalid("code", "the code is not valid") from None
    if data["exp"] < time.time():
        raise invalid("code", "the code has expired; ask for a new one")
    return data


async def _email_taken(conn, ctx, email: str) -> bool:
    digest = vault(ctx).lookup_hash("email", email)
    return await conn.scalar(sa.select(customers.c.id).where(customers.c.email_hash == digest)) is not None


async def _mail(ctx, to: str, subject: str, text: str) -> None:
    try:
        await ctx.ports.email.send(to, subject, text)
    except Exception as exc:
        raise Problem(503, "Email unavailable", "the confirmation email could not be sent; try again",
                      kind="email-unavailable") from exc


_ALREADY = ("Someone, hopefully you, asked to use this email address for a My Hibachi account, but it "
            "has one already. Sign in with it instead. If this was not you, you can ignore this email.")


async def request_signup(conn, ctx, *, email: str, name: str, password: str, phone: str | None = None,
                         address: str | None = None) -> None:
    """Check a sign-up and email its address a code (``confirm_signup`` creates the account),
    or, when the address has an account, a notice saying so: the caller learns neither."""
    values = _checked(email=email, name=name, phone=phone, address=address)
    password_hash = await hash_password(_check_password(password))  # both ways: the same work
    subject = "Confirm your My Hibachi account"
    if await _email_taken(conn, ctx, values["email"]):
        await _mail(ctx, values["email"], subject, _ALREADY)
        return
    code = _seal_code(ctx, "customers.signup", {**values, "password_hash": password_hash})
    await _mail(ctx, values["email"], subject,
                f"Your sign-up code is:\n\n{code}\n\nEnter it with your password to finish signing up; it "
                f"expires in 24 hours. If you did not sign up, you can ignore this email.")


async def confirm_signup(conn, ctx, code: str, password: str) -> dict[str, Any]:
    """The account of an emailed sign-up code, with the password chosen at sign-up (so a code
    alone, forwarded or sent to a victim's mailbox, opens nothing); 409 if it exists by now."""
    data = _open_code(ctx, "customers.signup", code)
    if not await verify_password(data["password_hash"], password):
        raise Problem(401, "Unauthorized", "the code or password is wrong", kind="invalid-credentials")
    return await create_customer(conn, ctx, email=data["email"], name=data["name"], phone=data["phone"],
                                 address=data["address"], password_hash=data["password_hash"])


async def request_email_change(conn, ctx, customer_id: uuid.UUID, email: str) -> None:
    """Email the new address a code that moves the account there (``confirm_email_change``),
    or a notice when it has an account already; the answer is the same."""
    email = normalise_email(email)
    subject = "Confirm your new My Hibachi email"
    if await _email_taken(conn, ctx, email):
        await _mail(ctx, email, subject, _ALREADY)
        return
    code = _seal_code(ctx, f"customers.email_change:{customer_id}", {"email": email})
    await _mail(ctx, email, subject, f"Your code to move your My Hibachi account to this address is:\n\n{code}\n\n"
                                     f"It expires in 24 hours. If you did not ask for this, you can ignore this email.")


async def confirm_email_change(conn, ctx, customer_id: uuid.UUID, code: str, *,
                               actor: str | None = None) -> dict[str, Any] | None:
    """Move the account to the address its code was sent to; 409 if that has an account by now."""
    data = _open_code(ctx, f"customers.email_change:{customer_id}", code)
    return await update_customer(conn, ctx, customer_id, actor=actor, email=data["email"])


async def update_customer(conn, ctx, customer_id: uuid.UUID, *, actor: str | None = None,
                          **changes: Any) -> dict[str, Any] | None:
    """Change any of email, name, phone, address, status, password; None when there is no such customer.

    The row is sealed again under the current key whatever changed, since one key id covers
    all of a row's fields.
    """
    unknown = set(changes) - set(PII) - {"status", "password"}
    if unknown:
        raise TypeError(f"update_customer got unknown fields {sorted(unknown)}")
    row = await conn.fetch_one(
        sa.select(*ctx.models.customer_profile.columns).where(customers.c.id == customer_id).with_for_update())
    if row is None:
        return None
    current = _open(ctx, row)
    wanted = dict(current)
    if "email" in changes:
        wanted["email"] = normalise_email(changes["email"])
    if "name" in changes:
        wanted["name"] = _clean_name(changes["name"])
    if "phone" in changes:
        wanted["phone"] = normalise_phone(changes["phone"]) if changes["phone"] else None
    if "address" in changes:
        wanted["address"] = _clean_address(changes["address"])
    values: dict[str, Any] = {}
    if "status" in changes and changes["status"] != current["status"]:
        if changes["status"] not in STATUSES:
            raise invalid("status", f"one of {', '.join(STATUSES)}")
        values["status"] = wanted["status"] = changes["status"]
    if changes.get("password") is not None:
        values["password_hash"] = await hash_password(_check_password(changes["password"]))
    changed = [f for f in (*PII, "status") if wanted[f] != current[f]]
    if "password_hash" in values:
        changed.append("password")
    if not changed and row["key_id"] == vault(ctx).current_id:
        return current
    values.update(sealed(ctx, customer_id, wanted), updated_at=sa.func.now())
    try:
        async with conn.savepoint():
            stamp = await conn.scalar(
                sa.update(customers).where(customers.c.id == customer_id).values(**values)
                .returning(customers.c.updated_at))
    except psycopg.IntegrityError as exc:
        raise conflict("a customer with this email already exists", field="email") from exc
    if values.get("status") == "disabled":
        from myhibachi.core.auth import revoke_subject

        await revoke_subject(conn, str(customer_id), "customer", ctx.cache)
    if changed:
        await events.publish(conn, ctx, "customer.updated", {"customer_id": str(customer_id), "fields": changed},
                             actor=actor)
    return {**wanted, "updated_at": stamp}


async def authenticate(conn, ctx, email: str, password: str) -> dict[str, Any] | None:
    """The active customer with this email and password (as ``{id, status}``), else None."""
    try:
        digest = vault(ctx).lookup_hash("email", normalise_email(email))
    except Problem:
        digest = None
    row = None
    if digest is not None:
        row = await conn.fetch_one(
            sa.select(customers.c.id, customers.c.password_hash, customers.c.status)
            .where(customers.c.email_hash == digest))
    stored = row["password_hash"] if row and row["password_hash"] else None
    ok = await verify_password(stored, password)
    if not ok or row is None or row["password_hash"] is None or row["status"] != "active":
        return None
    if needs_rehash(stored):
        await conn.run(sa.update(customers).where(customers.c.id == row["id"])
                           .values(password_hash=await hash_password(password)))
    return {"id": row["id"], "status": row["status"]}


async def is_active(conn, customer_id: uuid.UUID) -> bool:
    status = await conn.scalar(sa.select(customers.c.status).where(customers.c.id == customer_id))
    return status == "active"


async def rotate_keys(conn, ctx, *, batch: int = 500) -> int:
    """Seal every row under the current key again; returns how many rows changed."""
    return await reseal(conn, ctx, customers, lambda row, field: _aad(row["id"], field), batch=batch)
