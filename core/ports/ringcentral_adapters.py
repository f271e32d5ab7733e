"""Voice calls on RingCentral: its webhook subscriptions' telephony/sessions notifications.

RingCentral signs nothing: a subscription is created with a ``verificationToken`` that each
notification carries in its ``Verification-Token`` header (compared here in constant time
with ``MYHIBACHI_RINGCENTRAL_VERIFICATION_TOKEN``), and its creation is confirmed by a
request with a ``Validation-Token`` header the address answers 200 with that header echoed
(a ``validation`` event; the voice plugin's incoming route echoes it). Point the
subscription (event filter ``/restapi/v1.0/account/~/extension/~/telephony/sessions``) at
``/v1/ai/voice/incoming``.

Answering: RingCentral has no TwiML, a notification's answer is not what the caller hears.
``say``, ``menu`` and ``dial`` answer the IVR's next step as JSON (what to say, what input
it waits for, or the number to hand the call to), so the step is recorded and answered
the same way on every provider; ``transfer`` and ``hangup`` record the call update in the
offline outbox like the offline adapter does.
"""
from __future__ import annotations

import hmac
import json

from myhibachi.core.ports import inbound
from myhibachi.core.ports.base import CallInfo, InvalidSignature, PortError, WebhookEvent
from myhibachi.core.ports.offline import _Recorder


class RingCentralTelephony(_Recorder):
    port = "telephony"
    provider = "ringcentral"
    answer_type = "application/json"

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        if not ctx.settings.ringcentral_verification_token:
            raise PortError("MYHIBACHI_RINGCENTRAL_VERIFICATION_TOKEN is not set", code="not_configured")
        self.token = ctx.settings.ringcentral_verification_token

    async def verify_webhook(self, headers, body, url):
        validation = headers.get(inbound.RINGCENTRAL_VALIDATION)
        if validation is not None:
            if not 0 < len(validation) <= 255:
                raise InvalidSignature("Validation-Token must be 1 to 255 characters")
            return [WebhookEvent(id=f"validation:{validation}", type="validation",
                                 data={"ValidationToken": validation}, topic="validation")]
        given = headers.get(inbound.RINGCENTRAL_VERIFICATION) or ""
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            raise InvalidSignature("Verification-Token is not the subscription's")
        return inbound.ringcentral_events(body)

    def say(self, text, *, gather_action=None):
        return json.dumps({"say": text, "listen": {"input": "speech", "action": gather_action}}
                          if gather_action else {"say": text})

    def dial(self, number):
        return json.dumps({"dial": number})

    def menu(self, text, *, action, digits=1, timeout=5):
        return json.dumps({"say": text, "listen": {"input": "dtmf speech", "action": action, "digits": digits,
                                                   "timeout": timeout}})

    async def transfer(self, call_sid, number):
        await self._record("call.update", {"sid": call_sid, "dial": number})
        return CallInfo(sid=call_sid, status="in-progress")

    async def hangup(self, call_sid):
        await self._record("call.update", {"sid": call_sid, "status": "completed"})
        return CallInfo(sid=call_sid, status="completed")
