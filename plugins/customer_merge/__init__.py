"""Customer merge (roadmap 2.1): find duplicates, preview and merge them. A merge moves the
bookings and, through the core's ``customer_merge`` hook, every plugin's rows in one
transaction, keeps the most complete profile field by field, and leaves the duplicate
disabled with a tombstone row pointing at the customer kept: the old id still resolves, its
customer view carries ``customer_merge.merged_into``."""
from __future__ import annotations

from myhibachi.core import Plugin, hookimpl


class CustomerMergePlugin(Plugin):
    name = "customer_merge"
    version = "1.0.0"
    flag = "FEATURE_FLAG_CUSTOMER_MERGE"
    description = "Find duplicate customers, preview a merge and merge them all-or-nothing."
    features = {"2.1": ["test_customer_merge_duplicates"]}
    permissions = ("customers.merge",)

    @hookimpl
    def register_events(self) -> list:
        from myhibachi.core import Event
        from myhibachi.plugins.customer_merge.schemas import CustomerMerged

        return [Event("customer.merged", CustomerMerged)]

    @hookimpl
    def register_event_handlers(self) -> dict[str, list]:
        from myhibachi.plugins.customer_merge.service import on_customer_changed

        return {"customer.created": [on_customer_changed], "customer.updated": [on_customer_changed]}

    @hookimpl
    def register_fields(self):
        from myhibachi.plugins.customer_merge.schemas import MergedInto
        from myhibachi.plugins.customer_merge.service import CUSTOMER_COLUMNS

        return {"customer": MergedInto, "customer_columns": CUSTOMER_COLUMNS}

    @hookimpl
    def customer_fields(self, customers, principal):
        return {self.name: [{"merged_into": c["customer_merge.merged_into"]} for c in customers]}


plugin = CustomerMergePlugin()
