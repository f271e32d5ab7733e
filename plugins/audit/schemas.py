"""Response models of the audit log API."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from myhibachi.core import NextCursor


class AuditLog(BaseModel):
    id: uuid.UUID
    seq: int
    actor_kind: str
    actor_id: str | None
    action: str
    permission: str | None
    resource_type: str
    resource_id: str | None
    changes: dict[str, Any] | None
    method: str | None
    path: str | None
    ip: str | None
    user_agent: str | None
    request_id: str | None
    created_at: datetime
    hash: str


class AuditLogPage(BaseModel):
    items: list[AuditLog]
    next_cursor: NextCursor
