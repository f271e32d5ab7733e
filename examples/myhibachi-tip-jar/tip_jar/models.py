"""Tables of tip_jar: only its own, each tagged ``info={"plugin": "tip_jar"}``."""
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID

from myhibachi.core import created_at, metadata, timestamp, uuid_pk

OWNER = {"plugin": "tip_jar"}

tips = sa.Table(
    "tip_jar_tips",
    metadata,
    uuid_pk(),
    sa.Column("booking_id", UUID(as_uuid=True), sa.ForeignKey("bookings.id", ondelete="CASCADE"), nullable=False),
    sa.Column("customer_id", UUID(as_uuid=True), sa.ForeignKey("customers.id"), nullable=False),
    sa.Column("status", sa.String(10), nullable=False, server_default="invited"),  # invited | given
    sa.Column("amount_cents", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("currency", sa.String(3), nullable=False, server_default="USD"),
    sa.Column("message", sa.Text),
    created_at(),
    timestamp("given_at"),
    sa.UniqueConstraint("booking_id", name="uq_tip_jar_tips_booking_id"),
    sa.CheckConstraint("amount_cents >= 0", name="amount_not_negative"),
    info=OWNER,
)
