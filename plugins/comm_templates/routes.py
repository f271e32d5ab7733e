"""The templates API (staff), thin over the service."""
from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Response

from myhibachi.core import CURSOR, LIMIT, Conn, Connection, Messaging, Principal, error_responses, require
from myhibachi.plugins.comm_templates import service
from myhibachi.plugins.comm_templates.schemas import (
    Channel, Preview, PreviewRequest, Template, TemplateCreate, TemplatePage, TemplateWrite,
)


def add_routes(router: APIRouter, ctx) -> None:
    base = "/admin/templates"
    messaging = ctx.service(Messaging, caller="comm_templates")

    @router.get(base, response_model=TemplatePage, responses=error_responses(401, 403, 422),
                summary="List the live templates, newest first")
    async def list_(channel: Channel | None = None, language: str | None = None, key: str | None = None,
                    limit: int = LIMIT, cursor: str | None = CURSOR, conn: Conn = Connection,
                    _: Principal = Depends(require("templates.read"))) -> TemplatePage:
        return TemplatePage(**await service.list_(conn, channel=channel, language=language, key=key, limit=limit,
                                                  cursor=cursor))

    @router.post(base, response_model=Template, status_code=201, responses=error_responses(401, 403, 409, 422),
                 summary="Create a template (version 1)")
    async def create(body: TemplateCreate, conn: Conn = Connection,
                     principal: Principal = Depends(require("templates.write"))) -> Template:
        return Template(**await service.create(conn, body, principal.id))

    @router.get(base + "/{template_id}", response_model=Template, responses=error_responses(401, 403, 404),
                summary="One template's current version")
    async def get(template_id: uuid.UUID, conn: Conn = Connection,
                  _: Principal = Depends(require("templates.read"))) -> Template:
        return Template(**await service.get(conn, template_id))

    @router.put(base + "/{template_id}", response_model=Template, responses=error_responses(401, 403, 404, 422),
                summary="Edit a template: saved as its next version")
    async def update(template_id: uuid.UUID, body: TemplateWrite, conn: Conn = Connection,
                     principal: Principal = Depends(require("templates.write"))) -> Template:
        return Template(**await service.update(conn, template_id, body, principal.id))

    @router.delete(base + "/{template_id}", status_code=204, responses=error_responses(401, 403, 404),
                   summary="Retire a template (its versions are kept)")
    async def delete(template_id: uuid.UUID, conn: Conn = Connection,
                     _: Principal = Depends(require("templates.write"))) -> Response:
        await service.delete(conn, template_id)
        return Response(status_code=204)

    @router.post(base + "/{template_id}/preview", response_model=Preview, responses=error_responses(401, 403, 404, 422),
                 summary="Render a template with sample data (and the SMS segment count)")
    async def preview(template_id: uuid.UUID, body: PreviewRequest, conn: Conn = Connection,
                      _: Principal = Depends(require("templates.read"))) -> Preview:
        template = await service.version_of(conn, template_id, body.version)
        out = service.preview(template, body.values)
        segments, encoding = messaging.segments(out["text"]) if template["channel"] == "sms" else (None, None)
        return Preview(**out, segments=segments, encoding=encoding)
