"""Customer data export (roadmap 2.2): one customer's complete record as JSON, CSV (a zip, a
file per section) or PDF: the profile decrypted, bookings, and every plugin's data through
the core's ``customer_export_sections`` hook (payments, messages, loyalty, ...); and the
erasure side, ``DELETE /v1/customers/{id}``, through the ``customer_erase`` hook. Staff export
every customer (or a selection) as a background job: ``POST /v1/admin/customers/export``."""
from __future__ import annotations

from pydantic import BaseModel, Field

from myhibachi.core import Plugin, hookimpl


class ExportSettings(BaseModel):
    """Read from ``MYHIBACHI_CUSTOMER_EXPORT_*``."""

    page_size: int = Field(default=200, ge=1, le=5000, description="Customers a worker exports per transaction.")
    link_hours: int = Field(default=24, ge=1, le=24 * 30, description="How long a bulk export can be downloaded.")


class CustomerExportPlugin(Plugin):
    name = "customer_export"
    version = "1.0.0"
    flag = "FEATURE_FLAG_CUSTOMER_EXPORT"
    description = "Export a customer's data (GDPR access): JSON, CSV or PDF, every export audited."
    features = {"2.2": ["test_customer_export_data"]}
    permissions = ("customers.export", "customers.erase")
    settings = ExportSettings

    @hookimpl
    def register_events(self) -> list:
        from myhibachi.core import Event
        from myhibachi.plugins.customer_export.schemas import ExportCompleted

        return [Event("customer_export.completed", ExportCompleted)]


plugin = CustomerExportPlugin()
