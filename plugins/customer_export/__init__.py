"""Customer data export (roadmap 2.2): one customer's complete record as JSON, CSV (a zip, a
file per section) or PDF: the profile decrypted, bookings, and every plugin's data through
the core's ``customer_export_sections`` hook (payments, messages, loyalty, ...); and the
erasure side, ``DELETE /v1/customers/{id}``, through the ``customer_erase`` hook."""
from __future__ import annotations

from myhibachi.core import Plugin


class CustomerExportPlugin(Plugin):
    name = "customer_export"
    version = "1.0.0"
    flag = "FEATURE_FLAG_CUSTOMER_EXPORT"
    description = "Export a customer's data (GDPR access): JSON, CSV or PDF, every export audited."
    features = {"2.2": ["test_customer_export_data"]}
    permissions = ("customers.export", "customers.erase")


plugin = CustomerExportPlugin()
