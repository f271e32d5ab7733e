"""Senders use a template by key through the ``render_messages`` hook: reminders, here."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from myhibachi.core.db import utcnow
from myhibachi.plugins.comm_templates import CommTemplatesPlugin
from myhibachi.plugins.reminders.service import dispatch_due
from tests.plugins.reminders.helpers import messages, reminders_app, sent, work

TEMPLATES_FLAG = "FEATURE_FLAG_COMMUNICATION_TEMPLATES"


async def test_hook_render_messages(make_app, client_of, seed):
    """A reminder's SMS uses the template ``reminders.custom`` (with the customer's name, read
    by the templates plugin, and the booking's local time); its email, with no template of
    that key and channel, keeps the built-in text. Broken by leaving out the hook call in
    reminders: the SMS has the built-in text (red)."""
    app = reminders_app(make_app, CommTemplatesPlugin(), flags={TEMPLATES_FLAG: True})
    ctx = app.state.ctx
    customer = await seed.customer(email="kai@example.com", phone="+12025550110", name="Kai <Ho>")
    starts = datetime(2031, 3, 20, 22, 0, tzinfo=timezone.utc)  # 6:00 PM EDT in New York
    booking = await seed.booking(customer, starts, party_size=12)
    at = (utcnow() + timedelta(hours=2)).replace(microsecond=0)
    async with client_of(app, headers=await seed.staff("templates.write")) as c:
        made = await c.post("/v1/admin/templates", json={
            "key": "reminders.custom", "channel": "sms",
            "text": "{first_name}: {party_size} guests, {booking_date} at {booking_time}, {address}."})
        assert made.status_code == 201, made.text
        # a template of another language only is not used for English recipients
        other = await c.post("/v1/admin/templates", json={
            "key": "reminders.custom", "channel": "email", "language": "es", "subject": "Hola", "text": "Hola"})
        assert other.status_code == 201, other.text
    async with client_of(app, headers=seed.token(customer)) as c:
        reminder = await c.post(f"/v1/bookings/{booking}/reminders",
                                json={"reminder_type": "custom", "channel": "both", "scheduled_at": at.isoformat()})
        assert reminder.status_code == 201, reminder.text
    assert await dispatch_due(ctx, now=at) == 1
    await work(ctx)
    by_port = {m["port"]: m for m in await sent(seed.db)}
    assert by_port["sms"]["body"] == "Kai: 12 guests, Thursday, March 20, 2031 at 6:00 PM EDT, 1 Main St, Springfield."
    assert by_port["email"]["subject"].startswith("Reminder: your hibachi event on Thursday, March 20, 2031")
    # each message records the template version it used (none for the built-in text)
    stored = {m["channel"]: (m["template_id"], m["template_version"]) for m in await messages(seed.db)}
    assert stored == {"sms": (uuid.UUID(made.json()["id"]), 1), "email": (None, None)}
