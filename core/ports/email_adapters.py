"""Email through SendGrid (the official ``sendgrid`` SDK) or any SMTP server (smtplib).

Both clients are synchronous, so sends run in a worker thread. Only the SendGrid module
imports the SDK; SMTP needs nothing beyond the standard library.
"""
from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage
from email.utils import make_msgid

from myhibachi.core.ports import inbound
from myhibachi.core.ports.base import InvalidSignature, PortError, SentMessage


class SendGridEmail:
    def __init__(self, ctx) -> None:
        from sendgrid import SendGridAPIClient
        from sendgrid.helpers.eventwebhook import EventWebhook

        settings = ctx.settings
        if not settings.sendgrid_api_key:
            raise PortError("MYHIBACHI_SENDGRID_API_KEY is not set", code="not_configured")
        kw = {"host": settings.sendgrid_api_base} if settings.sendgrid_api_base else {}
        self.client = SendGridAPIClient(settings.sendgrid_api_key, **kw)
        self.sender = settings.email_from
        self.events = EventWebhook()
        key = settings.sendgrid_webhook_public_key
        self.public_key = self.events.convert_public_key_to_ecdsa(key) if key else None
        self.tolerance = settings.webhook_tolerance_seconds

    async def send(self, to, subject, text, *, html=None, from_email=None):
        from python_http_client.exceptions import HTTPError
        from sendgrid.helpers.mail import Mail

        mail = Mail(from_email=from_email or self.sender, to_emails=to, subject=subject, plain_text_content=text,
                    html_content=html)
        try:
            response = await asyncio.to_thread(self.client.send, mail)
        except HTTPError as exc:
            raise PortError(f"SendGrid refused the message: {exc.body!r}", code=str(exc.status_code),
                            status=exc.status_code) from exc
        return SentMessage(id=response.headers.get("X-Message-Id", ""), status="accepted", to=to)

    async def verify_webhook(self, headers, body, url):
        signature = headers.get(inbound.SENDGRID_SIGNATURE)
        timestamp = headers.get(inbound.SENDGRID_TIMESTAMP) or ""
        if self.public_key is None:
            raise InvalidSignature("MYHIBACHI_SENDGRID_WEBHOOK_PUBLIC_KEY is not set")
        try:
            ok = bool(signature and timestamp and self.events.verify_signature(body.decode(), signature, timestamp,
                                                                               self.public_key))
        except (ValueError, UnicodeDecodeError):
            ok = False
        if not ok:
            raise InvalidSignature("the event webhook signature does not match")
        inbound.fresh(timestamp, self.tolerance)
        return inbound.sendgrid_events(body)


class SmtpEmail:
    def __init__(self, ctx) -> None:
        self.settings = ctx.settings

    def _send(self, message: EmailMessage) -> None:
        s = self.settings
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=15) as smtp:
            if s.smtp_starttls:
                smtp.starttls()
            if s.smtp_username:
                smtp.login(s.smtp_username, s.smtp_password or "")
            smtp.send_message(message)

    async def send(self, to, subject, text, *, html=None, from_email=None):
        message = EmailMessage()
        message["From"] = from_email or self.settings.email_from
        message["To"] = to
        message["Subject"] = subject
        message["Message-ID"] = make_msgid(domain=(from_email or self.settings.email_from).rpartition("@")[2])
        message.set_content(text)
        if html:
            message.add_alternative(html, subtype="html")
        try:
            await asyncio.to_thread(self._send, message)
        except (smtplib.SMTPException, OSError) as exc:
            raise PortError(f"SMTP send failed: {exc}", code=type(exc).__name__) from exc
        return SentMessage(id=message["Message-ID"], status="accepted", to=to)

    async def verify_webhook(self, headers, body, url):
        raise InvalidSignature("SMTP has no event webhook")
