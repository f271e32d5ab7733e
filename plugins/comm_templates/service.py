"""Templates: create, edit (a new version), delete, list, preview, and render by key for senders."""
from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from myhibachi.core import conflict, customers, fetch_page, invalid, not_found
from myhibachi.plugins.comm_templates.models import comm_template_versions as versions
from myhibachi.plugins.comm_templates.models import comm_templates as templates
from myhibachi.plugins.comm_templates.render import VARIABLES, render, variables_of

_CURRENT = sa.select(templates.c.id, templates.c.key, templates.c.channel, templates.c.language,
                     templates.c.version, templates.c.created_at, templates.c.updated_at, versions.c.subject,
                     versions.c.text, versions.c.html, versions.c.variables) \
    .join(versions, sa.and_(versions.c.template_id == templates.c.id, versions.c.version == templates.c.version)) \
    .where(templates.c.deleted_at.is_(None))


def _checked(channel: str, subject: str | None, text: str, html: str | None) -> list[str]:
    """The variables a template's parts use; a 422 naming the part that is wrong."""
    if not text.strip():
        raise invalid("text", "must not be empty")
    if channel == "sms" and (subject is not None or html is not None):
        raise invalid("subject" if subject is not None else "html", "an SMS template has text only")
    if channel == "email" and not (subject or "").strip():
        raise invalid("subject", "an email template needs a subject")
    if subject is not None and ("\n" in subject or "\r" in subject):
        raise invalid("subject", "must be one line")
    used = variables_of(subject, "subject") + variables_of(text, "text") + variables_of(html, "html")
    return list(dict.fromkeys(used))


async def create(conn, body, actor: str | None) -> dict[str, Any]:
    used = _checked(body.channel, body.subject, body.text, body.html)
    tid = uuid.uuid4()
    created = await conn.fetch_one(pg_insert(templates).values(
        id=tid, key=body.key, channel=body.channel, language=body.language, version=1,
    ).on_conflict_do_nothing().returning(templates.c.id))
    if created is None:
        raise conflict(f"a {body.channel} template {body.key!r} in {body.language!r} exists", field="key")
    await conn.run(sa.insert(versions).values(template_id=tid, version=1, subject=body.subject, text=body.text,
                                              html=body.html, variables=used, created_by=actor))
    return await get(conn, tid)


async def get(conn, template_id: uuid.UUID) -> dict[str, Any]:
    row = await conn.fetch_one(_CURRENT.where(templates.c.id == template_id))
    if row is None:
        raise not_found("Template")
    return dict(row)


async def update(conn, template_id: uuid.UUID, body, actor: str | None) -> dict[str, Any]:
    """Save an edit as the next version (the row lock orders concurrent edits)."""
    current = await conn.fetch_one(sa.select(templates.c.channel, templates.c.version).where(
        templates.c.id == template_id, templates.c.deleted_at.is_(None)).with_for_update())
    if current is None:
        raise not_found("Template")
    used = _checked(current["channel"], body.subject, body.text, body.html)
    version = current["version"] + 1
    await conn.run(sa.insert(versions).values(template_id=template_id, version=version, subject=body.subject,
                                              text=body.text, html=body.html, variables=used, created_by=actor))
    await conn.run(sa.update(templates).where(templates.c.id == template_id).values(
        version=version, updated_at=sa.func.now()))
    return await get(conn, template_id)


async def delete(conn, template_id: uuid.UUID) -> None:
    """Retire a template; its versions stay, as sent messages name them."""
    done = await conn.run(sa.update(templates).where(
        templates.c.id == template_id, templates.c.deleted_at.is_(None)).values(deleted_at=sa.func.now()))
    if not done:
        raise not_found("Template")


async def list_(conn, *, channel: str | None, language: str | None, key: str | None, limit: int,
                cursor: str | None) -> dict[str, Any]:
    query = _CURRENT
    for column, value in ((templates.c.channel, channel), (templates.c.language, language), (templates.c.key, key)):
        if value is not None:
            query = query.where(column == value)
    rows, nxt = await fetch_page(conn, query, (templates.c.created_at, templates.c.id), limit=limit, cursor=cursor)
    return {"items": rows, "next_cursor": nxt}


async def version_of(conn, template_id: uuid.UUID, version: int | None) -> dict[str, Any]:
    current = await get(conn, template_id)
    if version is None or version == current["version"]:
        return current
    row = await conn.fetch_one(sa.select(versions).where(versions.c.template_id == template_id,
                                                         versions.c.version == version))
    if row is None:
        raise invalid("version", f"template has versions 1 to {current['version']}")
    return {**current, **dict(row)}


def rendered(template: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    return {"template_id": template["id"], "key": template["key"], "version": template["version"],
            "language": template["language"], "subject": render(template["subject"], values),
            "text": render(template["text"], values), "html": render(template["html"], values, html=True)}


def preview(template: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    unknown = sorted(set(values) - set(VARIABLES))
    if unknown:
        raise invalid("values", f"unknown variable {{{unknown[0]}}}")
    return rendered(template, {**VARIABLES, **values})


NAMES = {"customer_name", "first_name"}


async def render_by_key(conn, ctx, key: str, channel: str, recipients) -> list[dict[str, Any] | None] | None:
    """The ``render_messages`` hook: the live template ``key`` in each recipient's language
    (else English) rendered with their variables; None when there is none at all. Names
    are read (one query a batch) only when the template uses them and the sender gave none."""
    rows = await conn.fetch_all(_CURRENT.where(templates.c.key == key, templates.c.channel == channel))
    if not rows:
        return None
    by_language = {r["language"]: dict(r) for r in rows}
    unknown = {r["customer_id"] for r in recipients if not r.get("language") and r.get("customer_id")}
    chosen_by = {}
    if unknown and len(by_language) > 1:  # only a choice to make asks who prefers what
        for answer in reversed(await ctx.hooks().customer_languages(customer_ids=list(unknown), conn=conn)):
            chosen_by.update(answer or {})
    chosen = [by_language.get(r.get("language") or chosen_by.get(r.get("customer_id")) or "en")
              or by_language.get("en") for r in recipients]
    wanted = {r["customer_id"] for r, t in zip(recipients, chosen)
              if t and r.get("customer_id") and NAMES & set(t["variables"]) - set(r.get("variables") or {})}
    people = await customers.contacts(conn, ctx, wanted) if wanted else {}
    out = []
    for recipient, template in zip(recipients, chosen):
        if template is None:
            out.append(None)
            continue
        name = (people.get(recipient.get("customer_id")) or {}).get("name") or ""
        names = {"customer_name": name, "first_name": name.split(" ")[0]} if name else {}
        out.append(rendered(template, names | (recipient.get("variables") or {})))
    return out
