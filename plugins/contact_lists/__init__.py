"""Contact lists and opt-outs (roadmap 6.3): static lists, rule-based segments counted in SQL,
and opt-outs (by the customer, a signed unsubscribe link) recorded through comms, so every
later send is refused by its consent check."""
from __future__ import annotations

from myhibachi.core import ContactLists, Plugin


def contact_lists(ctx) -> ContactLists:
    from myhibachi.plugins.contact_lists.service import Lists

    return Lists()


class ContactListsPlugin(Plugin):
    name = "contact_lists"
    version = "1.0.0"
    flag = "FEATURE_FLAG_CONTACT_LISTS"
    description = "Static contact lists, rule-based segments, and opt-outs honoured by every sender."
    features = {"6.3": ["test_contact_list_management", "test_opt_out_management"]}
    permissions = ("contacts.read", "contacts.write")
    requires = ("comms",)  # opt-outs are comms' list, reached through its Messaging service
    services = {ContactLists: contact_lists}


plugin = ContactListsPlugin()
