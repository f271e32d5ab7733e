"""Rate limits: a per-IP and a per-principal budget on every /v1 request, stricter ones per route.

Fixed windows. With ``REDIS_URL`` the counters live in Redis (one Lua call per request
checks every budget at once, so all API processes share them); on the embedded default
they live in the process. Over budget answers a 429 problem with ``Retry-After``. When Redis
is unreachable the limits fail open for a few seconds rather than failing requests.

A route asks for a stricter budget with one dependency::

    @router.post("/auth/login", dependencies=[Depends(limit(5, 60, per="ip"))])
"""
from __future__ import annotations

import ipaddress
import logging
import math
import time
from typing import Literal

from fastapi import Request

from myhibachi.core.errors import Problem

log = logging.getLogger("myhibachi.ratelimit")

Bucket = tuple[str, int, int]  # key, requests allowed, window in seconds

_LUA = """
local wait = 0
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i - 1])
  local window = tonumber(ARGV[2 * i])
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('PEXPIRE', key, window) end
  if n > limit then
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then
      redis.call('PEXPIRE', key, window)
      ttl = window
    end
    if ttl > wait then wait = ttl end
  end
end
return wait
"""


class MemoryLimiter:
    """Counters in this process: the embedded default (one API process)."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self._windows: dict[str, list[float]] = {}

    async def hit(self, buckets: list[Bucket]) -> float:
        """Count one request against each bucket; seconds to wait, 0 when allowed."""
        now = time.monotonic()
        wait = 0.0
        for key, allowed, window in buckets:
            entry = self._windows.get(self.prefix + key)
            if entry is None or entry[0] <= now:
                entry = self._windows[self.prefix + key] = [now + window, 0]
            entry[1] += 1
            if entry[1] > allowed:
                wait = max(wait, entry[0] - now)
        if len(self._windows) > 100_000:
            self._windows = {k: v for k, v in self._windows.items() if v[0] > now}
        return wait

    async def close(self) -> None:
        pass


class RedisLimiter:
    """Counters in Redis, shared by every API process."""

    def __init__(self, url: str, prefix: str = "myhibachi:rl:") -> None:
        import redis.asyncio as redis

        self.prefix = prefix
        self.client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        self.script = self.client.register_script(_LUA)
        self._down_until = 0.0

    async def hit(self, buckets: list[Bucket]) -> float:
        if time.monotonic() < self._down_until:
            return 0.0
        args: list[int] = []
        for _, allowed, window in buckets:
            args += [allowed, window * 1000]
        try:
            wait_ms = await self.script(keys=[self.prefix + k for k, _, _ in buckets], args=args)
        except Exception as exc:
            self._down_until = time.monotonic() + 5
            log.warning("rate limits off for 5 s: redis unreachable (%r)", exc)
            return 0.0
        return int(wait_ms) / 1000

    async def close(self) -> None:
        await self.client.aclose()


def build(settings) -> MemoryLimiter | RedisLimiter:
    return RedisLimiter(settings.redis_url) if settings.redis_url else MemoryLimiter()


def _too_many(wait: float, what: str) -> Problem:
    seconds = max(1, math.ceil(wait))
    return Problem(429, "Too many requests", f"{what}; retry in {seconds} s", kind="rate-limited",
                   headers={"Retry-After": str(seconds)})


def client_address(request: Request) -> str:
    """The caller's address: the peer's, or behind a trusted proxy (``trusted_proxies``) the
    nearest address of X-Forwarded-For that is not one of them (the hops before it are the
    caller's own claims)."""
    peer = request.client.host if request.client else "-"
    proxies = request.app.state.ctx.settings.proxies
    if not proxies or not _trusted(peer, proxies):
        return peer
    for hop in reversed(request.headers.get("x-forwarded-for", "").split(",")):
        if (hop := hop.strip()) and not _trusted(hop, proxies):
            return hop
    return peer


def _trusted(address: str, proxies) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:  # not an address: a caller's made-up hop is never a proxy
        return False
    return any(ip in network for network in proxies)


def _who(request: Request, principal) -> str:
    if principal is not None and principal.id:
        return f"{principal.kind}:{principal.id}"
    return "ip:" + client_address(request)


async def rate_limit(request: Request) -> None:
    """Dependency on every /v1 router: the caller's IP and principal budgets (settings)."""
    from myhibachi.core.auth import current_principal

    if getattr(request.state, "rate_checked", False):  # a gated plugin route checks first
        return
    request.state.rate_checked = True
    ctx = request.app.state.ctx
    settings = ctx.settings
    window = settings.rate_limit_window
    buckets: list[Bucket] = []
    if settings.rate_limit_ip:
        buckets.append(("ip:" + client_address(request), settings.rate_limit_ip, window))
    failure = None
    principal = None
    if settings.rate_limit_principal:
        try:
            principal = await current_principal(request)
        except Problem as exc:  # a bad token still spends its address's budget
            failure = exc
        if principal is not None and principal.id:
            buckets.append((f"p:{principal.kind}:{principal.id}", settings.rate_limit_principal, window))
    if buckets:
        wait = await ctx.extra["ratelimiter"].hit(buckets)
        if wait:
            raise _too_many(wait, "request budget spent")
    if failure is not None:
        raise failure


def limit(times: int, seconds: int, *, per: Literal["principal", "ip"] = "principal", name: str | None = None):
    """Dependency: a budget of ``times`` requests per ``seconds`` on one route (or a named group
    of routes), counted per principal (anonymous callers per IP) or per IP."""
    if times < 1 or seconds < 1:
        raise ValueError("a budget needs at least one request and one second")

    async def dependency(request: Request) -> None:
        from myhibachi.core.auth import current_principal

        route = request.scope.get("route")
        group = name or f"{request.method} {getattr(route, 'path', request.url.path)}"
        who = _who(request, None if per == "ip" else await current_principal(request))
        wait = await request.app.state.ctx.extra["ratelimiter"].hit([(f"r:{group}:{who}", times, seconds)])
        if wait:
            raise _too_many(wait, f"at most {times} requests per {seconds} s here")

    dependency.rate_limit = (times, seconds, per)
    return dependency


# --- login abuse -----------------------------------------------------------------------------

LOGIN_FREE = 5  # failed logins per account and source that start the backoff (1 s, 2 s, 4 s, ...)
LOGIN_SOURCE_FREE = 30  # failed logins per source across accounts that start it (password spraying)
LOGIN_WINDOW = 900  # seconds a failure is remembered after the last one
LOGIN_BACKOFF_FIRST = 1  # seconds of the first wait, doubled at each further failure
LOGIN_BACKOFF_MAX = 900  # the doubling wait stops at 15 min

_FAIL_LUA = """
local n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
local over = n - tonumber(ARGV[1])
if over >= 0 then
  local wait = math.min(tonumber(ARGV[4]) * 2 ^ over, tonumber(ARGV[3]))
  redis.call('SET', KEYS[2], '1', 'PX', math.floor(wait * 1000))
  return wait
end
return 0
"""
_BLOCKED_LUA = """
local wait = 0
for _, key in ipairs(KEYS) do
  local ttl = redis.call('PTTL', key)
  if ttl > wait then wait = ttl end
end
return wait
"""


class LoginGuard:
    """Per account *and source* exponential backoff on failed logins, plus a per-source budget
    across accounts: an attacker slows only their own address down, never locks the owner
    out. Keyed by the email as typed (hashed), so an unknown account is throttled exactly as a
    known one; a throttled login answers the same 429 before any lookup, whoever it names."""

    def __init__(self, ctx, kind: str) -> None:
        self.limiter = ctx.extra["ratelimiter"]
        self.kind = kind

    def _keys(self, email: str, source: str) -> tuple[str, str]:
        import hashlib

        account = hashlib.sha256(f"{self.kind}:{email.strip().lower()}".encode()).hexdigest()[:32]
        return f"lf:{self.kind}:{account}:{source}", f"lf:{self.kind}:src:{source}"

    async def check(self, email: str, source: str) -> None:
        """Refuse with a 429 while this account from this source, or this source, backs off."""
        wait = await _blocked(self.limiter, [k + ":until" for k in self._keys(email, source)])
        if wait:
            raise _too_many(wait, "too many failed logins")

    async def failed(self, email: str, source: str) -> None:
        pair, spray = self._keys(email, source)
        await _fail(self.limiter, pair, LOGIN_FREE)
        await _fail(self.limiter, spray, LOGIN_SOURCE_FREE)

    async def succeeded(self, email: str, source: str) -> None:
        await _forget(self.limiter, self._keys(email, source)[0])


def login_guard(request: Request, kind: str) -> tuple[LoginGuard, str]:
    """The guard of ``kind`` logins (``customer``, ``staff``) and the caller's source address."""
    return LoginGuard(request.app.state.ctx, kind), client_address(request)


async def _blocked(limiter, keys: list[str]) -> float:
    if isinstance(limiter, RedisLimiter):
        if time.monotonic() < limiter._down_until:
            return 0.0
        try:
            return int(await limiter.client.eval(_BLOCKED_LUA, len(keys), *[limiter.prefix + k for k in keys])) / 1000
        except Exception as exc:
            limiter._down_until = time.monotonic() + 5
            log.warning("login backoff off for 5 s: redis unreachable (%r)", exc)
            return 0.0
    now = time.monotonic()
    return max([0.0, *(limiter._windows.get(limiter.prefix + k, [now])[0] - now for k in keys)])


async def _fail(limiter, key: str, free: int) -> None:
    if isinstance(limiter, RedisLimiter):
        try:
            await limiter.client.eval(_FAIL_LUA, 2, limiter.prefix + key, limiter.prefix + key + ":until",
                                      free, LOGIN_WINDOW, LOGIN_BACKOFF_MAX, LOGIN_BACKOFF_FIRST)
        except Exception as exc:
            log.warning("login failure not counted: redis unreachable (%r)", exc)
        return
    now = time.monotonic()
    name = limiter.prefix + key
    entry = limiter._windows.get(name)
    count = 1 if entry is None or entry[0] <= now else entry[1] + 1
    limiter._windows[name] = [now + LOGIN_WINDOW, count]
    if count >= free:
        limiter._windows[name + ":until"] = [now + min(LOGIN_BACKOFF_FIRST * 2 ** (count - free), LOGIN_BACKOFF_MAX), 0]


async def _forget(limiter, key: str) -> None:
    if isinstance(limiter, RedisLimiter):
        try:
            await limiter.client.delete(limiter.prefix + key)
        except Exception:
            pass
        return
    limiter._windows.pop(limiter.prefix + key, None)
