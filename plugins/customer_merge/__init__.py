"""Customer merge (roadmap 2.1): find duplicates, preview and merge them. A merge moves the
bookings and, through the core's ``customer_merge`` hook, every plugin's rows in one
transaction, keeps the most complete profile field by field, and leaves the duplicate
disabled with a tombstone row pointing at the customer kept."""
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


plugin = CustomerMergePlugin()
