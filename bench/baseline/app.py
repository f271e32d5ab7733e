"""The bare reference for bench/load.py: FastAPI + psycopg 3 pool, no framework of ours.

It runs the same SQL as the hot endpoints (create booking, list own bookings, own
customer profile, one day's availability counted by binary search as the core counts it,
the loyalty plugin's balance), checks the same HS256 token with PyJWT, opens
the same sealed PII (AES-GCM), and answers with the same response shapes through pydantic
response models. Reads run on an autocommit connection (no BEGIN/COMMIT); the create runs
in one transaction. Settings: DATABASE_URL, MYHIBACHI_SECRET_KEY and the booking rules the
benchmark gives the core (MYHIBACHI_BOOKING_CAPACITY ...), read from the environment.

    granian --interface asgi --factory bench.baseline.app:create_app
"""
from __future__ import annotations

import base64
import bisect
import hashlib
import json
import os
import uuid
from datetime import date, datetime, time, timedelta, timezone
from typing import Literal
from zoneinfo import ZoneInfo

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from fastapi import FastAPI, Header, HTTPException, Query
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field

UTC = timezone.utc


class PriceLine(BaseModel):
    code: str
    label: str
    amount_cents: int


class BookingCreate(BaseModel):
    starts_at: datetime
    time_zone: str | None = Field(None, max_length=64)
    duration_minutes: int | None = Field(None, ge=5, le=24 * 60)
    adults: int = Field(ge=0, le=10_000)
    children: int = Field(0, ge=0, le=10_000)
    address: str = Field(min_length=1, max_length=500)
    zip_code: str | None = Field(None, pattern=r"^\d{5}(-\d{4})?$")
    menu: str | None = Field(None, max_length=2000)
    notes: str | None = Field(None, max_length=2000)
    extra: dict = Field(default_factory=dict)


class Booking(BaseModel):
    id: uuid.UUID
    customer_id: uuid.UUID
    starts_at: datetime
    local_start: str
    time_zone: str
    duration_minutes: int
    adults: int
    children: int
    party_size: int
    address: str
    zip_code: str | None
    menu: str | None
    notes: str | None
    status: Literal["pending", "confirmed", "cancelled", "completed"]
    price_lines: list[PriceLine]
    total_cents: int
    currency: str
    cancel_reason: str | None = None
    created_at: datetime
    updated_at: datetime


class BookingPage(BaseModel):
    items: list[Booking]
    next_cursor: str | None = None


class Customer(BaseModel):
    id: uuid.UUID
    email: str
    name: str
    phone: str | None = None
    address: str | None = None
    status: str
    created_at: datetime
    updated_at: datetime


class LoyaltySummary(BaseModel):
    customer_id: uuid.UUID
    points_balance: int
    lifetime_points: int
    points_debt: int
    tier: Literal["bronze", "silver", "gold", "platinum"]
    earn_multiplier_percent: int
    next_tier: Literal["bronze", "silver", "gold", "platinum"] | None
    points_to_next_tier: int | None
    redeemable_points: int
    redeemable_value_cents: int
    next_expiry_at: datetime | None
    next_expiry_points: int


class Slot(BaseModel):
    starts_at: datetime
    local_start: str
    remaining: int
    capacity: int


class Availability(BaseModel):
    time_zone: str
    party_size: int
    duration_minutes: int
    slots: list[Slot]


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _env_time(name: str, default: str) -> time:
    return time.fromisoformat(os.environ.get(name, default))


SECRET = os.environ["MYHIBACHI_SECRET_KEY"]
CAPACITY = _env_int("MYHIBACHI_BOOKING_CAPACITY", 2)
OPEN = _env_time("MYHIBACHI_BUSINESS_OPEN", "11:00")
CLOSE = _env_time("MYHIBACHI_BUSINESS_CLOSE", "22:00")
SLOT = timedelta(minutes=_env_int("MYHIBACHI_BOOKING_SLOT_MINUTES", 60))
DURATION = _env_int("MYHIBACHI_BOOKING_DEFAULT_DURATION_MINUTES", 120)
LEAD = timedelta(hours=_env_int("MYHIBACHI_BOOKING_LEAD_TIME_HOURS", 48))
ADVANCE = timedelta(days=_env_int("MYHIBACHI_BOOKING_MAX_ADVANCE_DAYS", 180))
TZ_NAME = os.environ.get("MYHIBACHI_DEFAULT_TIME_ZONE", "America/Los_Angeles")
MIN_PARTY = _env_int("MYHIBACHI_BOOKING_MIN_PARTY_SIZE", 2)
ADULT, CHILD, MINIMUM = 6000, 3000, 55000
# the loyalty plugin's defaults
THRESHOLDS = {"silver": 1000, "gold": 5000, "platinum": 15000}
PERCENT = {"bronze": 100, "silver": 125, "gold": 150, "platinum": 200}
POINTS_PER_REWARD, REWARD_CENTS = 100, 1000


def _key() -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"myhibachi/pii-encryption").derive(SECRET.encode())


CIPHER = AESGCM(_key())
# the core's id of the key derived from the secret key (crypto.Vault.from_settings)
KEY_ID = "d" + hashlib.sha256(_key()).hexdigest()[:12]


def _open(token: str | None, aad: str) -> str | None:
    if token is None:
        return None
    raw = base64.b64decode(token)
    return CIPHER.decrypt(raw[:12], raw[12:], aad.encode()).decode()


def _seal(value: str | None, aad: str) -> str | None:
    if value is None:
        return None
    nonce = os.urandom(12)
    return base64.b64encode(nonce + CIPHER.encrypt(nonce, value.encode(), aad.encode())).decode()


def customer_of(authorization: str | None) -> uuid.UUID:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(401, "sign in first")
    try:
        claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"require": ["exp", "sub"]})
    except jwt.PyJWTError:
        raise HTTPException(401, "the access token is not valid") from None
    if claims.get("kind") != "customer":
        raise HTTPException(403, "customers only")
    return uuid.UUID(claims["sub"])


SEALED = ("address", "menu", "notes")


def booking(row: dict) -> Booking:
    """The booking of a row, its sealed address, menu and notes opened (a write's row has them plain)."""
    rid = row["id"]
    for field in SEALED:
        if f"{field}_enc" in row:
            row[field] = _open(row.pop(f"{field}_enc"), f"bookings.{field}:{rid}")
    row["local_start"] = row["starts_at"].astimezone(ZoneInfo(row["time_zone"])).replace(tzinfo=None).isoformat()
    return Booking(**row)


BOOKING_COLUMNS = ("id, customer_id, starts_at, time_zone, duration_minutes, party_size, adults, children, "
                   "zip_code, status, price_lines, total_cents, currency, slot_key, cancel_reason, created_at, "
                   "updated_at")
BUSY = ("SELECT array_agg(starts_at ORDER BY starts_at), "
        "array_agg(starts_at + duration_minutes * interval '1 minute' ORDER BY "
        "starts_at + duration_minutes * interval '1 minute') FROM bookings "
        "WHERE status = any('{pending,confirmed}') AND starts_at < %s AND starts_at > %s "
        "AND starts_at + duration_minutes * interval '1 minute' > %s")


def create_app() -> FastAPI:
    url = os.environ["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    pool = AsyncConnectionPool(url, min_size=10, max_size=20, open=False, kwargs={"autocommit": True})

    async def lifespan(app):
        await pool.open()
        yield
        await pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/v1/customers/me", response_model=Customer)
    async def me(authorization: str | None = Header(None)):
        cid = customer_of(authorization)
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT id, email_enc, name_enc, phone_enc, address_enc, key_id, status, created_at, updated_at "
                "FROM customers WHERE id = %s", (cid,))
            row = await cur.fetchone()
        if row is None:
            raise HTTPException(404, "no such customer")
        rid, email, name, phone, address, _key, status, created, updated = row
        return Customer(id=rid, email=_open(email, f"customers.email:{rid}"), name=_open(name, f"customers.name:{rid}"),
                        phone=_open(phone, f"customers.phone:{rid}"),
                        address=_open(address, f"customers.address:{rid}"),
                        status=status, created_at=created, updated_at=updated)

    @app.get("/v1/bookings", response_model=BookingPage)
    async def list_bookings(limit: int = Query(20, ge=1, le=100), authorization: str | None = Header(None)):
        cid = customer_of(authorization)
        async with pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(f"SELECT {BOOKING_COLUMNS}, address_enc, menu_enc, notes_enc, key_id FROM bookings "
                              "WHERE customer_id = %s "
                              "ORDER BY created_at DESC, id DESC LIMIT %s", (cid, limit + 1))
            rows = await cur.fetchall()
        cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            raw = json.dumps([last["created_at"].isoformat(), str(last["id"])]).encode()
            cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        return BookingPage(items=[booking(r) for r in rows[:limit]], next_cursor=cursor)

    @app.post("/v1/bookings", response_model=Booking, status_code=201)
    async def create_booking(body: BookingCreate, authorization: str | None = Header(None)):
        cid = customer_of(authorization)
        tz_name = body.time_zone or TZ_NAME
        tz = ZoneInfo(tz_name)
        start = body.starts_at if body.starts_at.tzinfo else body.starts_at.replace(tzinfo=tz)
        start = start.astimezone(UTC)
        duration = body.duration_minutes or DURATION
        now = datetime.now(UTC)
        if not now + LEAD <= start <= now + ADVANCE:
            raise HTTPException(422, "starts_at is outside the bookable window")
        lines = [{"code": "base.adults", "label": f"{body.adults} adults", "amount_cents": body.adults * ADULT}]
        if body.children:
            lines.append({"code": "base.children", "label": f"{body.children} children",
                          "amount_cents": body.children * CHILD})
        subtotal = sum(line["amount_cents"] for line in lines)
        if subtotal < MINIMUM:
            lines.append({"code": "base.minimum", "label": "minimum order", "amount_cents": MINIMUM - subtotal})
        total = sum(line["amount_cents"] for line in lines)
        end = start + timedelta(minutes=duration)
        slots = []
        s = start
        while s < end:
            slots.append(s)
            s += SLOT
        keys = sorted(s.strftime("%Y-%m-%dT%H:%MZ") for s in slots)
        booking_id = uuid.uuid4()
        async with pool.connection() as conn, conn.transaction():
            found = await (await conn.execute("SELECT status FROM customers WHERE id = %s", (cid,))).fetchone()
            if found is None or found[0] != "active":
                raise HTTPException(403, "this customer account cannot book")
            await conn.execute("INSERT INTO booking_slots (slot_key) SELECT unnest(%s::text[]) "
                               "ON CONFLICT DO NOTHING", (keys,))
            await conn.execute("SELECT slot_key FROM booking_slots WHERE slot_key = ANY(%s) ORDER BY slot_key "
                               "FOR UPDATE", (keys,))
            starts, ends = await (await conn.execute(BUSY, (slots[-1] + SLOT, slots[0] - timedelta(days=1),
                                                            slots[0]))).fetchone()
            starts, ends = starts or [], ends or []
            used = max(bisect.bisect_left(starts, slot + SLOT) - bisect.bisect_right(ends, slot) for slot in slots)
            if used >= CAPACITY:
                raise HTTPException(409, "no chef team is free")
            cur = conn.cursor(row_factory=dict_row)
            sealed = [_seal(getattr(body, f), f"bookings.{f}:{booking_id}") for f in SEALED]
            await cur.execute(
                "INSERT INTO bookings (id, customer_id, starts_at, time_zone, duration_minutes, party_size, adults, "
                "children, address_enc, zip_code, menu_enc, notes_enc, key_id, status, price_lines, total_cents, "
                "currency, slot_key) "
                f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'pending', %s, %s, 'USD', %s) "
                f"RETURNING {BOOKING_COLUMNS}",
                (booking_id, cid, start, tz_name, duration, body.adults + body.children, body.adults, body.children,
                 sealed[0], body.zip_code, sealed[1], sealed[2], KEY_ID, Jsonb(lines), total, keys[0]))
            row = await cur.fetchone()
            row.update(address=body.address, menu=body.menu, notes=body.notes)
            payload = {"booking_id": str(booking_id), "customer_id": str(cid), "starts_at": start.isoformat(),
                       "time_zone": tz_name, "party_size": row["party_size"], "total_cents": total,
                       "extra": body.extra}
            await conn.execute("INSERT INTO outbox_events (id, name, payload, actor, dispatched_at) "
                               "VALUES (%s, 'booking.created', %s, %s, now())",
                               (uuid.uuid4(), Jsonb(payload), str(cid)))
        return booking(row)

    @app.get("/v1/customers/{customer_id}/loyalty", response_model=LoyaltySummary)
    async def loyalty(customer_id: uuid.UUID, authorization: str | None = Header(None)):
        if customer_of(authorization) != customer_id:
            raise HTTPException(404, "no such customer")
        nxt = None
        async with pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute("SELECT id FROM customers WHERE id = %s", (customer_id,))
            if await cur.fetchone() is None:
                raise HTTPException(404, "no such customer")
            await cur.execute("SELECT * FROM loyalty_accounts WHERE customer_id = %s", (customer_id,))
            account = await cur.fetchone() or {"points_balance": 0, "lifetime_points": 0, "points_debt": 0,
                                               "tier": "bronze"}
            if account.get("id"):
                await cur.execute("SELECT expires_at, sum(remaining) AS points FROM loyalty_transactions "
                                  "WHERE account_id = %s AND lot_status = 'open' GROUP BY expires_at "
                                  "ORDER BY expires_at LIMIT 1", (account["id"],))
                nxt = await cur.fetchone()
        following = next((t for t in ("silver", "gold", "platinum") if account["lifetime_points"] < THRESHOLDS[t]),
                         None)
        balance = account["points_balance"]
        return LoyaltySummary(
            customer_id=customer_id, points_balance=balance, lifetime_points=account["lifetime_points"],
            points_debt=account["points_debt"], tier=account["tier"], earn_multiplier_percent=PERCENT[account["tier"]],
            next_tier=following,
            points_to_next_tier=THRESHOLDS[following] - account["lifetime_points"] if following else None,
            redeemable_points=balance - balance % POINTS_PER_REWARD,
            redeemable_value_cents=balance // POINTS_PER_REWARD * REWARD_CENTS,
            next_expiry_at=nxt["expires_at"] if nxt else None, next_expiry_points=int(nxt["points"]) if nxt else 0)

    @app.get("/v1/availability", response_model=Availability)
    async def availability(start_day: date = Query(alias="from"), end_day: date = Query(alias="to"),
                           party_size: int | None = None, authorization: str | None = Header(None)):
        if authorization:
            customer_of(authorization)
        tz = ZoneInfo(TZ_NAME)
        now = datetime.now(UTC)
        size = party_size or MIN_PARTY
        duration = DURATION
        candidates = []
        day = start_day
        while day <= end_day:
            t, closing = datetime.combine(day, OPEN), datetime.combine(day, CLOSE)
            while t < closing:
                utc = t.replace(tzinfo=tz).astimezone(UTC)
                if (now + LEAD <= utc <= now + ADVANCE
                        and t + timedelta(minutes=duration) <= closing):
                    candidates.append(utc)
                t += SLOT
            day += timedelta(days=1)
        slots = []
        if candidates:
            end = candidates[-1] + timedelta(minutes=duration)
            async with pool.connection() as conn:
                starts, ends = await (await conn.execute(BUSY, (end, candidates[0] - timedelta(days=1),
                                                                candidates[0]))).fetchone()
            starts, ends = starts or [], ends or []
            for start in candidates:
                cover = []
                s = start
                while s < start + timedelta(minutes=duration):
                    cover.append(s)
                    s += SLOT
                used = max(bisect.bisect_left(starts, c + SLOT) - bisect.bisect_right(ends, c) for c in cover)
                if CAPACITY - used > 0:
                    slots.append(Slot(starts_at=start, remaining=CAPACITY - used, capacity=CAPACITY,
                                      local_start=start.astimezone(tz).replace(tzinfo=None).isoformat()))
        return Availability(time_zone=TZ_NAME, party_size=size, duration_minutes=duration, slots=slots)

    return app

