"""The orchestration of model calls (the ``AiOrchestration`` service), prompt templates and
cost analytics.

A call: the model is the request's, else its feature's (``feature_models``), else the default;
the template, when named, is rendered (bare ``{name}`` placeholders only, values inserted as
text and never parsed again); the principal's and the model's rate limits are spent (the
core's limiter: Redis with ``REDIS_URL``, so every API process shares them); a conversation's
earlier turns are added newest first up to ``context_tokens``, the older ones folded into its
summary; the cache answers a call with the same model, messages and parameters within its
TTL; otherwise the fallback chain is tried model by model (a failure or a timeout moves on;
the offline engine ends every chain). Each call is a row with its tokens (the provider's
count, or an estimate where the engine reports none) and its cost in millionths of a cent,
written in the caller's transaction with its ``ai.call_completed`` event.
"""
from __future__ import annotations

import asyncio
import copy
import json
import logging
import math
import re
import time
import uuid
from datetime import date, datetime, time as dtime, timedelta, timezone
from string import Formatter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from myhibachi.core import PortError, Problem, fetch_page, invalid, not_found, publish, reseal, vault
from myhibachi.plugins.ml_ops.models import aad, batch_items, calls, conversations, examples, templates, turns
from myhibachi.plugins.ml_ops.models import cache as C

log = logging.getLogger("myhibachi.ml_ops")
OFFLINE = "offline"
_TOKEN = re.compile(r"\w+|[^\w\s]")
_parse = Formatter().parse
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,49}$")


def count_tokens(text: str) -> int:
    """Words and punctuation marks: close to a BPE count for English, and the same everywhere."""
    return len(_TOKEN.findall(text))


def _pairs(text: str, setting: str) -> dict[str, str]:
    pairs = {}
    for entry in filter(None, (e.strip() for e in text.split(","))):
        name, sep, value = entry.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"MYHIBACHI_ML_OPS_{setting.upper()}: {entry!r} is not name=value")
        pairs[name.strip()] = value.strip()
    return pairs


class Catalogue:
    """The models a call may use, from the plugin's settings."""

    def __init__(self, settings) -> None:
        self.adapters = _pairs(settings.models, "models")
        self.adapters.setdefault(OFFLINE, "offline")
        self.default = settings.default_model
        self.features = _pairs(settings.feature_models, "feature_models")
        self.next = _pairs(settings.fallbacks, "fallbacks")
        self.prices = {m: tuple(int(x) for x in p.split("/")) for m, p in _pairs(settings.prices, "prices").items()}
        for model in [self.default, *self.features.values(), *self.next, *self.next.values(), *self.prices]:
            if model not in self.adapters:
                raise ValueError(f"ml_ops: model {model!r} is not in MYHIBACHI_ML_OPS_MODELS")

    def choose(self, feature: str, requested: str | None) -> str:
        if requested is None:
            return self.features.get(feature, self.default)
        if requested not in self.adapters:
            raise invalid("model", f"unknown model {requested!r}; known: {', '.join(sorted(self.adapters))}")
        return requested

    def chain(self, model: str) -> list[str]:
        out = [model]
        while (after := self.next.get(out[-1])) and after not in out:
            out.append(after)
        return out if OFFLINE in out else [*out, OFFLINE]

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> int:
        """Millionths of a cent: a price in cents per million tokens is micro-cents per token."""
        prompt, completion = self.prices.get(model, (0, 0))
        return prompt_tokens * prompt + completion_tokens * completion


# --- templates -----------------------------------------------------------------------------


def variables_of(text: str | None, field: str) -> list[str]:
    """The variables ``text`` uses, in order; a 422 naming ``field`` for anything but ``{name}``."""
    if text is None:
        return []
    found: list[str] = []
    try:
        parts = list(_parse(text))
    except ValueError:
        raise invalid(field, "has an unmatched { or }; write {{ or }} for a literal brace") from None
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if not _NAME.match(name) or spec or conversion:
            raise invalid(field, f"{{{name}}} is not a variable: use {{name}} with letters, digits and _ only")
        if name not in found:
            found.append(name)
    return found


def render(text: str | None, values: dict[str, str]) -> str | None:
    if text is None:
        return None
    out = []
    for literal, name, _, _ in _parse(text):
        out.append(literal)
        if name is not None:
            out.append(values[name])
    return "".join(out)


_TEMPLATE_COLS = [templates.c[n] for n in ("key", "version", "system", "user", "variables", "description",
                                            "created_by", "created_at")]


async def save_template(conn, ctx, body, actor: str) -> dict[str, Any]:
    variables = variables_of(body.system, "system")
    variables += [v for v in variables_of(body.user, "user") if v not in variables]
    # one writer per key at a time, so two saves never take the same version
    await conn.run(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext("ml_ops.template:" + body.key))))
    version = await conn.scalar(sa.select(sa.func.coalesce(sa.func.max(templates.c.version), 0) + 1)
                                .where(templates.c.key == body.key))
    row = await conn.fetch_one(sa.insert(templates).values(
        key=body.key, version=version, system=body.system, user=body.user, variables=variables,
        description=body.description, created_by=actor).returning(*_TEMPLATE_COLS))
    await publish(conn, ctx, "ai.template_saved", {"key": body.key, "version": version}, actor=actor)
    return row


async def template_of(conn, key: str, version: int | None = None, *, field: str | None = None) -> dict[str, Any]:
    """A template's version (its latest by default); 422 naming ``field`` when given, else 404."""
    query = sa.select(*_TEMPLATE_COLS).where(templates.c.key == key)
    query = query.where(templates.c.version == version) if version else query.order_by(templates.c.version.desc())
    row = await conn.fetch_one(query.limit(1))
    if row is None:
        what = f"template {key!r}" + (f" version {version}" if version else "")
        if field:
            raise invalid(field, f"no {what}")
        raise not_found("Template", f"no {what}")
    return row


async def list_templates(conn, *, limit: int, cursor: str | None):
    latest = (sa.select(*_TEMPLATE_COLS).distinct(templates.c.key)
              .order_by(templates.c.key, templates.c.version.desc()).subquery())
    return await fetch_page(conn, sa.select(latest), [latest.c.key], limit=limit, cursor=cursor, descending=False)


def rendered(template: dict[str, Any], variables: dict[str, str]) -> list[dict[str, str]]:
    for name in variables:
        if name not in template["variables"]:
            raise invalid(f"variables.{name}", f"is not a variable of template {template['key']!r} "
                                              f"v{template['version']} ({', '.join(template['variables']) or 'none'})")
    for name in template["variables"]:
        if name not in variables:
            raise invalid(f"variables.{name}", f"is required by template {template['key']!r} v{template['version']}")
    out = []
    if template["system"]:
        out.append({"role": "system", "content": render(template["system"], variables)})
    out.append({"role": "user", "content": render(template["user"], variables)})
    return out


# --- calls ---------------------------------------------------------------------------------


def cache_key(ctx, model: str, messages: list[dict[str, str]], max_tokens, temperature) -> str:
    """The cache's key of a call: a keyed hash (the vault's lookup key), so the stored key of
    an answer confirms no guess of the messages."""
    raw = json.dumps({"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": temperature},
                     sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return vault(ctx).lookup_hash("ml_ops.cache", raw).hex()


_HIT = (sa.update(C).where(C.c.key == sa.bindparam("k"), C.c.expires_at > sa.func.now())
        .values(hits=C.c.hits + 1).returning(C.c.model, C.c.content_enc, C.c.key_id))
_CONV = sa.select(conversations).where(conversations.c.id == sa.bindparam("id")).with_for_update()
_TURNS = (sa.select(turns.c.seq, turns.c.role, turns.c.content_enc, turns.c.key_id, turns.c.tokens)
          .where(turns.c.conversation_id == sa.bindparam("id"), turns.c.seq > sa.bindparam("after"))
          .order_by(turns.c.seq))


async def expire_cache(conn, ctx) -> None:
    """Delete the cache entries past their TTL (a hit never answers from them)."""
    await conn.run(sa.delete(C).where(C.c.expires_at <= sa.func.now()))


def _too_many(wait: float, what: str) -> Problem:
    seconds = max(1, math.ceil(wait))
    return Problem(429, "Too many requests", f"{what}; retry in {seconds} s", kind="rate-limited",
                   headers={"Retry-After": str(seconds)})


def summarise(summary: str, older: list[dict[str, Any]], budget: int) -> str:
    """Fold ``older`` turns into ``summary``: each turn's first sentence (at most 25 tokens),
    keeping the newest lines that fit in ``budget`` tokens."""
    lines = [line for line in summary.split("\n") if line]
    for turn in older:
        first = re.split(r"(?<=[.!?])\s", turn["content"].strip(), maxsplit=1)[0]
        words = first.split()
        lines.append(f"{turn['role']}: {' '.join(words[:25])}{' ...' if len(words) > 25 else ''}")
    while len(lines) > 1 and count_tokens("\n".join(lines)) > budget:
        lines.pop(0)
    return "\n".join(lines)


def orchestrator_of(ctx) -> Orchestrator:
    """The app's one orchestrator (its catalogue and adapters are built once)."""
    made = ctx.extra.get("ml_ops.orchestrator")
    if made is None:
        made = ctx.extra["ml_ops.orchestrator"] = Orchestrator(ctx)
    return made


class Orchestrator:
    """The ``AiOrchestration`` service (see ``myhibachi.core.services``)."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self.settings = ctx.plugins.get("ml_ops").settings
        self.catalogue = Catalogue(self.settings)
        self._models: dict[str, Any] = {}

    async def _limit(self, principal: str, model: str) -> None:
        s, limiter = self.settings, self.ctx.extra["ratelimiter"]
        window = s.rate_window_seconds
        wait = await limiter.hit([(f"ml_ops:p:{principal}", s.rate_per_principal, window)])
        if wait:
            raise _too_many(wait, f"at most {s.rate_per_principal} AI calls per {window} s for one caller")
        wait = await limiter.hit([(f"ml_ops:m:{model}", s.rate_per_model, window)])
        if wait:
            raise _too_many(wait, f"model {model} takes at most {s.rate_per_model} calls per {window} s")

    async def _context(self, conn, principal: str, conversation_id: uuid.UUID, messages: list[dict[str, str]]):
        """The messages to send for a conversation: system parts, its summary, the newest earlier
        turns within the token budget, then the new turns; older turns fold into the summary."""
        conv = await conn.fetch_one(_CONV, {"id": conversation_id})
        if conv is None:
            await conn.run(pg_insert(conversations).values(id=conversation_id, principal=principal)
                           .on_conflict_do_nothing(index_elements=["id"]))
            conv = await conn.fetch_one(_CONV, {"id": conversation_id})
        if conv["principal"] != principal:
            raise not_found("Conversation")
        system = [m for m in messages if m["role"] == "system"]
        new = [m for m in messages if m["role"] != "system"]
        v = vault(self.ctx)
        earlier = [{**t, "content": v.decrypt(t["content_enc"], t["key_id"], aad(turns, "content", conversation_id,
                                                                                   t["seq"]))}
                   for t in await conn.fetch_all(_TURNS, {"id": conversation_id, "after": conv["summarised_through"]})]
        budget = self.settings.context_tokens - sum(count_tokens(m["content"]) for m in messages)
        kept: list[dict[str, Any]] = []
        used = 0
        for turn in reversed(earlier):
            if used + turn["tokens"] > max(budget, 0) * 3 // 4:  # a quarter is left for the summary
                break
            kept.insert(0, turn)
            used += turn["tokens"]
        older = earlier[:len(earlier) - len(kept)]
        summary = v.decrypt(conv["summary_enc"], conv["key_id"], aad(conversations, "summary", conversation_id)) or ""
        if older:
            summary = summarise(summary, older, max(budget // 4, 20))
            await conn.run(sa.update(conversations).where(conversations.c.id == conversation_id).values(
                summary_enc=v.encrypt(summary, aad(conversations, "summary", conversation_id)), key_id=v.current_id,
                summarised_through=older[-1]["seq"], updated_at=sa.func.now()))
        last = earlier[-1]["seq"] if earlier else conv["summarised_through"]
        history = [{"role": "system", "content": "Summary of the earlier conversation:\n" + summary}] if summary else []
        sent = system + history + [{"role": t["role"], "content": t["content"]} for t in kept] + new
        summarised = older[-1]["seq"] if older else conv["summarised_through"]
        return sent, new, len(kept), summarised, last

    async def complete(self, conn, *, principal: str, feature: str = "default",
                       messages: list[dict[str, str]] | None = None, template: str | None = None,
                       version: int | None = None, variables: dict[str, str] | None = None,
                       model: str | None = None, conversation_id: uuid.UUID | None = None,
                       max_tokens: int | None = None, temperature: float | None = None,
                       cache: bool = True) -> dict[str, Any]:
        requested = self.catalogue.choose(feature, model)
        sent = [{"role": m["role"], "content": m["content"]} for m in messages or []]
        tpl = None
        if template is not None:
            tpl = await template_of(conn, template, version, field="template")
            sent += rendered(tpl, variables or {})
        elif variables:
            raise invalid("variables", "given without a template")
        if not sent:
            raise invalid("messages", "give messages or a template")
        await self._limit(principal, requested)
        context_turns = summarised = 0
        new = sent
        if conversation_id is not None:
            sent, new, context_turns, summarised, last = await self._context(conn, principal, conversation_id, sent)
        key, v = cache_key(self.ctx, requested, sent, max_tokens, temperature), vault(self.ctx)
        started = time.perf_counter()
        attempts: list[dict[str, str]] = []
        ttl = self.settings.cache_ttl_seconds
        hit = await conn.fetch_one(_HIT, {"k": key}) if cache and ttl else None
        if hit is not None:
            content = v.decrypt(hit["content_enc"], hit["key_id"], aad(C, "content", key))
            served, prompt_tokens, completion_tokens, estimated = hit["model"], 0, 0, False
        else:
            served, result = await self._call(sent, requested, attempts, max_tokens=max_tokens, temperature=temperature)
            content = result.content
            prompt_tokens, completion_tokens = result.prompt_tokens, result.completion_tokens
            estimated = not (prompt_tokens or completion_tokens)
            if estimated:  # the offline engine counts nothing: estimate, so usage is never blank
                prompt_tokens = sum(count_tokens(m["content"]) + 4 for m in sent)
                completion_tokens = count_tokens(content)
            if cache and ttl and not attempts:  # a fallback's answer is not the requested model's
                values = {"model": served, "content_enc": v.encrypt(content, aad(C, "content", key)),
                          "key_id": v.current_id, "prompt_tokens": prompt_tokens,
                          "completion_tokens": completion_tokens,
                          "expires_at": sa.func.now() + timedelta(seconds=ttl)}
                await conn.run(pg_insert(C).values(key=key, **values)
                               .on_conflict_do_update(index_elements=["key"], set_={**values, "hits": 0}))
        cost = 0 if hit is not None else self.catalogue.cost(served, prompt_tokens, completion_tokens)
        call_id = uuid.uuid4()
        await conn.run(sa.insert(calls).values(
            id=call_id, feature=feature, principal=principal, requested_model=requested, model=served,
            adapter=self.catalogue.adapters[served], fallback_from=attempts, cache_key=key, cached=hit is not None,
            prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, tokens_estimated=estimated,
            cost_microcents=cost, latency_ms=int((time.perf_counter() - started) * 1000),
            template_key=tpl and tpl["key"], template_version=tpl and tpl["version"], conversation_id=conversation_id))
        if conversation_id is not None:
            said = [*new, {"role": "assistant", "content": content}]
            await conn.run(sa.insert(turns), [
                {"conversation_id": conversation_id, "seq": last + i + 1, "role": m["role"], "key_id": v.current_id,
                 "content_enc": v.encrypt(m["content"], aad(turns, "content", conversation_id, last + i + 1)),
                 "tokens": count_tokens(m["content"])} for i, m in enumerate(said)])
        await publish(conn, self.ctx, "ai.call_completed", {
            "call_id": str(call_id), "feature": feature, "model": served, "requested_model": requested,
            "cached": hit is not None, "fallback": bool(attempts), "cost_microcents": cost}, actor=principal)
        return {"call_id": call_id, "content": content, "model": served, "requested_model": requested,
                "fallback_from": attempts, "cached": hit is not None, "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens, "cost_microcents": cost, "conversation_id": conversation_id,
                "context_turns": context_turns, "summarised_turns": summarised}

    def _llm(self, name: str):
        """The LLM port's adapter serving model ``name``: the adapter of the catalogue, asking
        for that model where the adapter names one (OpenAI's ``model``)."""
        llm = self._models.get(name)
        if llm is None:
            llm = self.ctx.ports.named("llm", self.catalogue.adapters[name])
            if name != OFFLINE and getattr(llm, "model", name) != name:
                llm = copy.copy(llm)  # the same client, another model
                llm.model = name
            self._models[name] = llm
        return llm

    async def _call(self, messages, requested: str, attempts: list[dict[str, str]], **params):
        """The first answer down the fallback chain; each failure is noted in ``attempts``."""
        timeout = self.settings.timeout_seconds
        for name in self.catalogue.chain(requested):
            try:
                result = await asyncio.wait_for(self._llm(name).chat(messages, **params), timeout)
                return name, result
            except asyncio.TimeoutError:
                attempts.append({"model": name, "error": f"no answer within {timeout:g} s"})
            except PortError as exc:
                attempts.append({"model": name, "error": str(exc)[:300]})
            except Exception as exc:  # a broken adapter is one more failed model, never a 500
                log.exception("model %s failed", name)
                attempts.append({"model": name, "error": f"{type(exc).__name__}: {exc}"[:300]})
        raise Problem(503, "No model answered", "; ".join(f"{a['model']}: {a['error']}" for a in attempts),
                      kind="unavailable")


# --- costs ---------------------------------------------------------------------------------


def _sum(column) -> sa.ColumnElement:
    return sa.cast(sa.func.coalesce(sa.func.sum(column), 0), sa.BigInteger)


_GROUPS = {"day": sa.func.to_char(sa.func.timezone("UTC", calls.c.created_at), "YYYY-MM-DD", type_=sa.String),
           "model": calls.c.model, "feature": calls.c.feature}
_MEASURES = [sa.func.count().label("calls"), _sum(sa.cast(calls.c.cached, sa.Integer)).label("cached_calls"),
             _sum(calls.c.prompt_tokens).label("prompt_tokens"),
             _sum(calls.c.completion_tokens).label("completion_tokens"),
             _sum(calls.c.cost_microcents).label("cost_microcents")]


def _rate(row) -> float:
    return round(row["cached_calls"] / row["calls"], 4) if row["calls"] else 0.0


async def costs(conn, *, group_by: str, since: date | None, until: date | None, feature: str | None,
                model: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
    where = []
    if since:
        where.append(calls.c.created_at >= datetime.combine(since, dtime(), timezone.utc))
    if until:
        where.append(calls.c.created_at < datetime.combine(until + timedelta(days=1), dtime(), timezone.utc))
    if feature:
        where.append(calls.c.feature == feature)
    if model:
        where.append(calls.c.model == model)
    key = _GROUPS[group_by]
    grouped = sa.select(key.label("key"), *_MEASURES).where(*where).group_by(key).subquery()
    rows, next_cursor = await fetch_page(conn, sa.select(grouped), [grouped.c.key], limit=limit, cursor=cursor,
                                         descending=group_by == "day")
    total = await conn.fetch_one(sa.select(*_MEASURES).where(*where))
    return {"items": [{**r, "cache_hit_rate": _rate(r)} for r in rows], "next_cursor": next_cursor,
            "group_by": group_by, "total_cost_microcents": total["cost_microcents"], "calls": total["calls"],
            "cache_hit_rate": _rate(total)}


async def rotate_keys(conn, ctx, *, batch: int) -> int:
    """Every sealed text (turns, summaries, cached answers, examples, batch items) sealed again
    under the current PII key; each bound, as written, to its table, field and primary key."""
    done = 0
    for table in (C, conversations, turns, examples, batch_items):
        def bound(row, field, table=table):
            return aad(table, field, *(row[c.name] for c in table.primary_key.columns))

        done += await reseal(conn, ctx, table, bound, batch=batch)
    return done
