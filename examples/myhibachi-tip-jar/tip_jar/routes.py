"""HTTP routes of tip_jar: thin, the logic is in service."""
from fastapi import APIRouter, Depends, Query

from myhibachi.core.auth import require
from myhibachi.core.db import get_conn
from myhibachi.core.errors import error_responses
from tip_jar import service
from tip_jar.schemas import ItemIn, ItemOut


def setup(router: APIRouter) -> None:
    @router.post("/tip-jar/items", response_model=ItemOut, status_code=201,
                 responses=error_responses(401, 403, 404))
    async def create_item(body: ItemIn, conn=Depends(get_conn), _=Depends(require("tip_jar.write"))) -> ItemOut:
        return ItemOut(**await service.create_item(conn, body.label))

    @router.get("/tip-jar/items", response_model=list[ItemOut], responses=error_responses(401, 403, 404))
    async def list_items(limit: int = Query(50, ge=1, le=200), conn=Depends(get_conn),
                         _=Depends(require("tip_jar.read"))) -> list[ItemOut]:
        return [ItemOut(**row) for row in await service.list_items(conn, limit)]
