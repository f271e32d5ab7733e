"""SMS and voice on Twilio (the official ``twilio`` SDK).

The SDK is synchronous, so calls run in a worker thread. ``MYHIBACHI_TWILIO_API_BASE``
points every request at another address by swapping the host in the HTTP client:
``client.api.base_url`` alone breaks as soon as a region or edge is set.
"""
from __future__ import annotations

import asyncio
from urllib.parse import urlsplit, urlunsplit

from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.voice_response import VoiceResponse

from myhibachi.core.ports import inbound
from myhibachi.core.ports.base import CallInfo, InvalidSignature, PortError, SentMessage


class HostSwapHttpClient(TwilioHttpClient):
    """Sends each request to ``base`` (scheme and host) instead of Twilio's host."""

    def __init__(self, base: str, **kw) -> None:
        super().__init__(**kw)
        self.base = urlsplit(base)

    def request(self, method, url, *args, **kwargs):
        parts = urlsplit(url)
        url = urlunsplit((self.base.scheme, self.base.netloc, parts.path, parts.query, parts.fragment))
        return super().request(method, url, *args, **kwargs)


class _Twilio:
    def __init__(self, ctx) -> None:
        settings = ctx.settings
        if not (settings.twilio_account_sid and settings.twilio_auth_token):
            raise PortError("MYHIBACHI_TWILIO_ACCOUNT_SID and MYHIBACHI_TWILIO_AUTH_TOKEN are not set",
                            code="not_configured")
        http = HostSwapHttpClient(settings.twilio_api_base, timeout=10) if settings.twilio_api_base else \
            TwilioHttpClient(timeout=10)
        self.client = Client(settings.twilio_account_sid, settings.twilio_auth_token, http_client=http)
        self.from_number = settings.twilio_from_number
        self.validator = RequestValidator(settings.twilio_auth_token)

    async def _call(self, fn, *args, **kwargs):
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except TwilioRestException as exc:
            raise PortError(exc.msg, code=str(exc.code) if exc.code else None, status=exc.status) from exc

    calls = False  # message callbacks (SMS) or call callbacks (telephony)

    async def verify_webhook(self, headers, body, url):
        params = inbound.twilio_form(body)
        signature = headers.get(inbound.TWILIO_SIGNATURE)
        if not (signature and self.validator.validate(url, params, signature)):
            raise InvalidSignature("X-Twilio-Signature does not sign this URL and form")
        return inbound.twilio_events(params, headers, body, calls=self.calls)


class TwilioSms(_Twilio):
    async def send(self, to, body, *, status_callback=None):
        kwargs = {"to": to, "from_": self.from_number, "body": body}
        if status_callback:
            kwargs["status_callback"] = status_callback
        message = await self._call(self.client.messages.create, **kwargs)
        return SentMessage(id=message.sid, status=message.status, to=message.to)


class TwilioTelephony(_Twilio):
    calls = True

    def say(self, text, *, gather_action=None):
        response = VoiceResponse()
        if gather_action:
            gather = response.gather(input="speech", action=gather_action, method="POST")
            gather.say(text)
        else:
            response.say(text)
        return str(response)

    def dial(self, number):
        response = VoiceResponse()
        response.dial(number)
        return str(response)

    async def transfer(self, call_sid, number):
        call = await self._call(self.client.calls(call_sid).update, twiml=self.dial(number))
        return CallInfo(sid=call.sid, status=call.status)

    async def hangup(self, call_sid):
        call = await self._call(self.client.calls(call_sid).update, status="completed")
        return CallInfo(sid=call.sid, status=call.status)

    def menu(self, text, *, action, digits=1, timeout=5):
        response = VoiceResponse()
        response.gather(input="dtmf speech", action=action, method="POST", num_digits=digits, timeout=timeout,
                        action_on_empty_result=True).say(text)
        return str(response)
