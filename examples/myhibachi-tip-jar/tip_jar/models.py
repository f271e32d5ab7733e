"""Tables of tip_jar: only its own, each tagged ``info={"plugin": "tip_jar"}``."""
import sqlalchemy as sa

from myhibachi.core.db import created_at, metadata, uuid_pk

OWNER = {"plugin": "tip_jar"}

items = sa.Table(
    "tip_jar_items",
    metadata,
    uuid_pk(),
    sa.Column("label", sa.Text, nullable=False),
    created_at(),
    info=OWNER,
)
