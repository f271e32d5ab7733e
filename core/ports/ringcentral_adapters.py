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
the same way on every provider. Call Control carries no keypad or speech: the call's media
leg (a WebPhone or SIP device of the extension, which speaks ``say`` and listens as
``listen`` asks) posts what the caller pressed or said to ``listen.action`` with the same
Verification-Token (``inbound.ringcentral_input``), each input named by its ``uuid``.

Call control (the official ``ringcentral`` SDK, logged in with the extension's JWT
credential): ``transfer`` and ``hangup`` find the extension's live party of the telephony
session (``GET .../telephony/sessions/{id}``), then transfer it
(``POST .../parties/{partyId}/transfer``) or drop it (``DELETE .../parties/{partyId}``).
The SDK is synchronous: calls run in a worker thread, each with a 10 s timeout.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import threading

import requests
from ringcentral.http.api_exception import ApiException
from ringcentral.http.api_response import ApiResponse
from ringcentral.http.client import Client
from ringcentral.platform import Platform

from myhibachi.core.ports import inbound
from myhibachi.core.ports.base import CallInfo, InvalidSignature, PortError, WebhookEvent

SESSIONS = "/restapi/v1.0/account/~/telephony/sessions/"
GONE = {"Disconnected", "Gone"}
TIMEOUT = 10


class _TimedClient(Client):
    """The SDK's HTTP client with a timeout (the SDK's own waits forever)."""

    def load_response(self, request):
        with requests.sessions.Session() as session:
            return ApiResponse(request, session.send(request, timeout=TIMEOUT))


def _port_error(exc: ApiException) -> PortError:
    response = exc.api_response().response() if exc.api_response() else None
    code = None
    try:
        found = response.json() if response is not None else None
        code = found.get("errorCode") if isinstance(found, dict) else None
    except ValueError:
        pass
    return PortError(str(exc), code=code, status=response.status_code if response is not None else None)


class RingCentralTelephony:
    port = "telephony"
    provider = "ringcentral"
    answer_type = "application/json"
    answer_dials = False  # the answer does not connect the caller: the IVR hands the call over by call control
    input_ids = True  # each input the media leg posts carries its uuid

    def __init__(self, ctx) -> None:
        settings = ctx.settings
        if not settings.ringcentral_verification_token:
            raise PortError("MYHIBACHI_RINGCENTRAL_VERIFICATION_TOKEN is not set", code="not_configured")
        self.token = settings.ringcentral_verification_token
        self.jwt, self.platform, self._auth = settings.ringcentral_jwt, None, threading.Lock()
        if settings.ringcentral_client_id and settings.ringcentral_client_secret and self.jwt:
            self.platform = Platform(_TimedClient(), settings.ringcentral_client_id,
                                     settings.ringcentral_client_secret, settings.ringcentral_server_url.rstrip("/"),
                                     "MyHibachi")

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

    def _party(self, session: str) -> str:
        """The extension's live party of ``session`` (the one call control moves or drops)."""
        with self._auth:
            if not self.platform.logged_in():
                self.platform.login(jwt=self.jwt)
        try:
            parties = self.platform.get(SESSIONS + session).response().json()["parties"]
            live = [p["id"] for p in parties if p.get("owner") and (p.get("status") or {}).get("code") not in GONE]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise PortError(f"RingCentral's status of session {session} is not a call session", status=502) from exc
        if live:
            return live[0]
        raise PortError(f"no live party of ours in telephony session {session}", code="party_not_found", status=409)

    async def _control(self, session: str, method: str, action: str = "", body: dict | None = None) -> None:
        if self.platform is None:
            raise PortError("MYHIBACHI_RINGCENTRAL_CLIENT_ID, _CLIENT_SECRET and _JWT are not set",
                            code="not_configured")

        def run():
            party = SESSIONS + f"{session}/parties/{self._party(session)}"
            return getattr(self.platform, method)(party + action, body)

        try:
            await asyncio.to_thread(run)
        except ApiException as exc:
            raise _port_error(exc) from exc

    async def transfer(self, call_sid, number):
        await self._control(call_sid, "post", "/transfer", {"phoneNumber": number})
        return CallInfo(sid=call_sid, status="in-progress")

    async def hangup(self, call_sid):
        await self._control(call_sid, "delete")
        return CallInfo(sid=call_sid, status="completed")
