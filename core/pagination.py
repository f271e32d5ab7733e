"""Opaque cursors for keyset pagination on (timestamp, id): every list of the API uses them."""
from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime

from myhibachi.core.errors import invalid


def encode_cursor(at: datetime, ident: uuid.UUID) -> str:
    raw = json.dumps([at.isoformat(), str(ident)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The (timestamp, id) a cursor carries; 422 naming ``cursor`` for anything else."""
    try:
        stamp, ident = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        at = datetime.fromisoformat(stamp)
        if at.tzinfo is None:
            raise ValueError
        return at, uuid.UUID(ident)
    except (ValueError, TypeError, UnicodeDecodeError):
        raise invalid("cursor", "is not a cursor this API returned") from None
