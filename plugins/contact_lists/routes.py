"""Contact lists (staff) and opt-outs (customers, unsubscribe links, staff's view)."""
from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query, Request

from myhibachi.core import (
    CURSOR, LIMIT, Conn, Connection, Messaging, Principal, current_principal, error_responses, idempotency, invalid,
    require,
)
from myhibachi.plugins.contact_lists import service
from myhibachi.plugins.contact_lists.schemas import (
    Added, Channel, ContactList, ContactsAdd, ListCreate, Members, OptOut, OptOutDone, OptOutPage, OptOutRequest,
)


def add_routes(router: APIRouter, ctx) -> None:
    base = "/admin/contact-lists"
    messaging = ctx.service(Messaging, caller="contact_lists")

    @router.post(base, response_model=ContactList, status_code=201, responses=error_responses(401, 403, 422),
                 summary="Create a static list, or a rule-based segment")
    @idempotency.idempotent(required=False)
    async def create(body: ListCreate, conn: Conn = Connection,
                     principal: Principal = Depends(require("contacts.write"))) -> ContactList:
        return ContactList(**await service.create(conn, body, principal.id))

    @router.post(base + "/{list_id}/contacts", response_model=Added, responses=error_responses(401, 403, 404, 409, 422),
                 summary="Add customers to a static list")
    async def add(list_id: uuid.UUID, body: ContactsAdd, conn: Conn = Connection,
                  _: Principal = Depends(require("contacts.write"))) -> Added:
        return Added(**await service.add_contacts(conn, list_id, body.customer_ids))

    @router.get(base + "/{list_id}/members", response_model=Members, responses=error_responses(401, 403, 404),
                summary="How many are on a list now, and the first of them")
    async def members(list_id: uuid.UUID, sample: int = Query(20, ge=0, le=200, description="How many ids to show."),
                      conn: Conn = Connection, _: Principal = Depends(require("contacts.read"))) -> Members:
        return Members(**await service.preview(conn, list_id, sample))

    @router.post("/communications/opt-out", response_model=OptOutDone, responses=error_responses(401, 404, 422),
                 summary="Opt out of a channel: a signed-in customer, or an unsubscribe link's token")
    async def opt_out(request: Request, body: OptOutRequest, conn: Conn = Connection) -> OptOutDone:
        if body.token is not None:
            customer_id, channel = service.read_token(ctx.settings.signing_key, body.token)
            keyword = "link"
        else:
            principal = await current_principal(request)
            if principal.kind != "customer":
                raise invalid("token", "sign in as the customer, or give an unsubscribe link's token", status=401)
            if body.channel is None:
                raise invalid("channel", "give sms or email")
            customer_id, channel, keyword = uuid.UUID(principal.id), body.channel, "customer"
        changed = await messaging.opt_out(conn, channel=channel, customer_id=customer_id, keyword=keyword)
        return OptOutDone(channel=channel, changed=changed)

    @router.get("/admin/opt-outs", response_model=OptOutPage, responses=error_responses(401, 403, 422),
                summary="Opted-out numbers and addresses, newest first")
    async def opt_outs(channel: Channel | None = None,
                       to: str | None = Query(None, description="Ask about one number or address."),
                       limit: int = LIMIT, cursor: str | None = CURSOR, conn: Conn = Connection,
                       _: Principal = Depends(require("contacts.read"))) -> OptOutPage:
        rows, next_cursor = await messaging.opt_outs(conn, channel=channel, to=to, limit=limit, cursor=cursor)
        return OptOutPage(items=[OptOut(**r) for r in rows], next_cursor=next_cursor)
