"""Feedback history (roadmap 2.6): a customer's feedback on their own completed bookings
(a rating and their words, sealed by the vault), scored by VADER as it is stored, listed per
customer and for staff, and summed up as counts by sentiment, average rating and a monthly
trend. Other plugins read the words through the ``CustomerFeedback`` service (the embeddings
search them as ``feedback`` conversations)."""
from __future__ import annotations

from myhibachi.core import CustomerFeedback, Plugin, hookimpl


def feedback_texts(ctx) -> CustomerFeedback:
    from myhibachi.plugins.feedback.service import Texts

    return Texts(ctx)


class FeedbackPlugin(Plugin):
    name = "feedback"
    version = "1.0.0"
    flag = "FEATURE_FLAG_CUSTOMER_FEEDBACK_HISTORY"
    description = "Customers rate their completed bookings; feedback history per customer and a sentiment summary."
    features = {"2.6": ["test_customer_feedback_history"]}
    permissions = ("feedback.read", "feedback.write")
    services = {CustomerFeedback: feedback_texts}

    @hookimpl
    def register_events(self) -> list:
        from myhibachi.core import Event
        from myhibachi.plugins.feedback.schemas import FeedbackSubmitted

        return [Event("feedback.submitted", FeedbackSubmitted)]

    @hookimpl
    async def customer_export_sections(self, customer_id, conn, ctx):
        from myhibachi.plugins.feedback.service import export_sections

        return await export_sections(conn, ctx, customer_id)

    @hookimpl
    async def customer_merge(self, source_id, target_id, conn, ctx):
        from myhibachi.plugins.feedback.service import merge_customer

        await merge_customer(conn, source_id, target_id)

    @hookimpl
    async def customer_erase(self, customer_id, conn, ctx):
        from myhibachi.plugins.feedback.service import erase_customer

        await erase_customer(conn, customer_id)

    @hookimpl
    async def rotate_keys(self, batch, conn, ctx):
        from myhibachi.plugins.feedback.service import rotate_keys

        return await rotate_keys(conn, ctx, batch=batch)


plugin = FeedbackPlugin()
