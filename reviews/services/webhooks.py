"""Webhooks to submitters, in the Standard Webhooks format (https://www.standardwebhooks.com/).

A suggestion with a ``callback_url`` tells its submitter when it is decided for good
(``suggestion.decided``) and when its execution has finished, succeeded or failed for good
(``suggestion.executed``). Each message is a ``WebhookDelivery`` written in the transaction of
the change it reports, with an outbox item that carries it; the delivery job POSTs it:

* the body is the message's JSON, byte for byte the same on every attempt;
* ``webhook-id`` is the message id, the same on every attempt, so receivers drop duplicates;
* ``webhook-timestamp`` is the attempt's time in unix seconds;
* ``webhook-signature`` is ``v1,`` and the base64 HMAC-SHA256 of ``{id}.{timestamp}.{body}``,
  keyed with the submitting client's secret (the bytes after ``whsec_``, base64-decoded).

A 2xx answer delivers it; 410 Gone stops it; anything else, or no answer, is tried again after
an exponential back-off with full jitter (longer if the receiver's ``Retry-After`` asks), until
``SIGNOFF_WEBHOOK_MAX_ATTEMPTS`` attempts have failed. Every attempt is kept.
"""

import datetime as dt
import hashlib
import hmac
import json
import logging
import time
import uuid
from base64 import b64encode
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.models import AuditAction
from audit.services import Actor, Subject, audit_event_record
from capabilities.services.clients import api_client_webhook_secret, webhook_secret_key
from reviews.backoff import backoff_delay, retry_after_seconds
from reviews.models import (
    APPROVED_STATUSES,
    OutboxKind,
    Suggestion,
    WebhookAttempt,
    WebhookDelivery,
    WebhookState,
)
from reviews.redaction import redactor
from reviews.services.outbox import outbox_add_many

logger = logging.getLogger(__name__)

EVENT_DECIDED = "suggestion.decided"
EVENT_EXECUTED = "suggestion.executed"

TIMEOUT_SECONDS = 10
# Callback URLs are untrusted input: only these schemes are ever requested.
ALLOWED_SCHEMES = frozenset({"http", "https"})
# A receiver's Retry-After is honoured up to this long; beyond it, the delivery is tried then.
RETRY_AFTER_LIMIT = dt.timedelta(days=1)

_ACTOR = Actor.system("webhooks")


def webhook_schedule(*, suggestion: Suggestion, event_type: str) -> WebhookDelivery | None:
    """Write a message of ``event_type`` about ``suggestion`` as it now stands, and the outbox
    item that delivers it, in the current transaction. Nothing when the suggestion has no
    ``callback_url``, or no API client whose secret would sign it."""
    deliveries = webhooks_schedule(suggestions=[suggestion], event_type=event_type)
    return deliveries[0] if deliveries else None


def webhooks_schedule(
    *, suggestions: Sequence[Suggestion], event_type: str
) -> list[WebhookDelivery]:
    """``webhook_schedule`` for each of ``suggestions``, in a number of statements that does
    not grow with them: the messages written, in the order of their suggestions."""
    now = timezone.now()
    deliveries = WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(
                suggestion=suggestion,
                message_id=f"msg_{uuid.uuid4().hex}",
                event_type=event_type,
                url=suggestion.callback_url,
                payload=webhook_payload(suggestion, event_type=event_type, now=now),
                next_attempt_at=now,
            )
            for suggestion in suggestions
            if suggestion.callback_url and suggestion.api_client_id is not None
        ]
    )
    outbox_add_many(kind=OutboxKind.WEBHOOK, refs=[str(delivery.pk) for delivery in deliveries])
    return deliveries


def webhook_payload(suggestion: Suggestion, *, event_type: str, now: dt.datetime) -> dict[str, Any]:
    """The message: ``type``, ``timestamp`` (ISO 8601, UTC) and ``data``, the suggestion's id,
    status, external id, capability, approved payload (when approved) and execution."""
    data: dict[str, Any] = {
        "id": str(suggestion.pk),
        "status": suggestion.status,
        "external_id": suggestion.external_id,
        "capability": suggestion.capability.key,
    }
    if suggestion.status in APPROVED_STATUSES:
        data["final_payload"] = suggestion.final_payload
    data["execution"] = {
        "status": suggestion.execution_status,
        "attempts": suggestion.execution_attempts,
        "error": suggestion.execution_error,
        "executed_at": _iso(suggestion.executed_at),
    }
    return {"type": event_type, "timestamp": _iso(now), "data": data}


def webhook_body(payload: dict[str, Any]) -> bytes:
    """The bytes sent for ``payload``: compact JSON with sorted keys, so every attempt (and
    every database, whatever order it keeps JSON keys in) sends the same bytes."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def webhook_signature(*, secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: ``v1,`` and the base64 HMAC-SHA256 of
    ``{message_id}.{timestamp}.{body}`` keyed with the decoded secret."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(webhook_secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + b64encode(digest).decode("ascii")


def webhook_headers(*, secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one attempt."""
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": webhook_signature(
            secret=secret, message_id=message_id, timestamp=timestamp, body=body
        ),
    }


@dataclass(frozen=True)
class _Outcome:
    """What one attempt got: a status code, or an error, and what the receiver asked for."""

    status_code: int | None
    error: str
    retry_after: str | None = None
    refused: bool = False


def webhook_deliver(*, delivery_id: Any) -> WebhookDelivery | None:
    """Make one attempt at a pending delivery, and record it.

    Returns the delivery: ``delivered``, ``gone`` or ``failed`` when it is finished, or still
    ``pending`` with ``next_attempt_at`` for the outbox to try again then. A delivery already
    finished is returned unchanged; an unknown one is None. The request is made outside any
    transaction: no row stays locked while a slow receiver makes us wait.
    """
    delivery = (
        WebhookDelivery.objects.select_related("suggestion__api_client", "suggestion__capability")
        .filter(pk=delivery_id)
        .first()
    )
    if delivery is None or delivery.state != WebhookState.PENDING:
        return delivery
    started = time.monotonic()
    outcome = _attempt(delivery)
    duration_ms = round((time.monotonic() - started) * 1000)
    return _record(delivery.pk, outcome, duration_ms)


def _attempt(delivery: WebhookDelivery) -> _Outcome:
    scheme = urlsplit(delivery.url).scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        refusal = f"refused: {scheme or 'no'} scheme; only http and https"
        return _Outcome(None, refusal, refused=True)
    client = delivery.suggestion.api_client
    if client is None:
        return _Outcome(None, "refused: no API client to sign for", refused=True)
    secret = api_client_webhook_secret(client=client, actor=_ACTOR)
    body = webhook_body(delivery.payload)
    headers = webhook_headers(
        secret=secret,
        message_id=delivery.message_id,
        timestamp=int(timezone.now().timestamp()),
        body=body,
    )
    try:
        # No redirects: a receiver must not be able to point the request somewhere else. The
        # answer's body is never read (stream=True, then closed).
        with requests.post(
            delivery.url,
            data=body,
            headers=headers,
            timeout=TIMEOUT_SECONDS,
            allow_redirects=False,
            stream=True,
        ) as response:
            code = response.status_code
            retry_after = response.headers.get("retry-after")
    except requests.RequestException as exc:
        error = _scrub(f"{type(exc).__name__}: {exc}", delivery.url)
        logger.info("webhook %s failed: %s", delivery.message_id, error)
        return _Outcome(None, error)
    return _Outcome(code, "" if 200 <= code < 300 else f"HTTP {code}", retry_after)


def _scrub(error: str, url: str) -> str:
    """``error`` fit to store and log: errors quote the URL, and a callback URL may carry a
    credential in its query string or user info; then the usual redaction."""
    parts = urlsplit(url)
    if parts.query:
        error = error.replace(f"?{parts.query}", "?[redacted]")
    if parts.password:
        error = error.replace(f":{parts.password}@", ":[redacted]@")
    return redactor().text(error)


def _record(delivery_id: int, outcome: _Outcome, duration_ms: int) -> WebhookDelivery:
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(of=("self",))
            .select_related("suggestion__capability")
            .get(pk=delivery_id)
        )
        WebhookAttempt.objects.create(
            delivery=delivery,
            status_code=outcome.status_code,
            duration_ms=duration_ms,
            error=outcome.error,
        )
        if delivery.state != WebhookState.PENDING:
            # Another worker finished it meanwhile: the attempt is kept, the outcome stands.
            return delivery
        now = timezone.now()
        delivery.attempts += 1
        delivery.last_status_code = outcome.status_code
        delivery.last_error = outcome.error
        delivery.next_attempt_at = None
        code = outcome.status_code
        if code is not None and 200 <= code < 300:
            delivery.state = WebhookState.DELIVERED
            delivery.delivered_at = now
        elif code == 410:
            delivery.state = WebhookState.GONE
        elif outcome.refused or delivery.attempts >= settings.SIGNOFF_WEBHOOK_MAX_ATTEMPTS:
            delivery.state = WebhookState.FAILED
        else:
            delivery.next_attempt_at = now + _retry_delay(delivery.attempts, outcome, now)
        delivery.save(
            update_fields=[
                "state",
                "attempts",
                "last_status_code",
                "last_error",
                "next_attempt_at",
                "delivered_at",
            ]
        )
        if delivery.state != WebhookState.PENDING:
            _audit(delivery)
    return delivery


def _retry_delay(attempts: int, outcome: _Outcome, now: dt.datetime) -> dt.timedelta:
    """The back-off after ``attempts`` failed attempts, or the receiver's ``Retry-After`` when
    it asks for longer (up to ``RETRY_AFTER_LIMIT``)."""
    delay = dt.timedelta(
        seconds=backoff_delay(
            attempts,
            base=settings.SIGNOFF_WEBHOOK_RETRY_BASE_SECONDS,
            cap=settings.SIGNOFF_WEBHOOK_RETRY_CAP_SECONDS,
        )
    )
    asked = retry_after_seconds(outcome.retry_after, now=now)
    if asked is not None:
        delay = max(delay, min(dt.timedelta(seconds=asked), RETRY_AFTER_LIMIT))
    return delay


def _audit(delivery: WebhookDelivery) -> None:
    delivered = delivery.state == WebhookState.DELIVERED
    audit_event_record(
        actor=_ACTOR,
        action=AuditAction.WEBHOOK_DELIVERED if delivered else AuditAction.WEBHOOK_FAILED,
        subject=Subject.of(delivery.suggestion),
        capability=delivery.suggestion.capability.key,
        data={
            "message_id": delivery.message_id,
            "event_type": delivery.event_type,
            "state": delivery.state,
            "attempts": delivery.attempts,
            "status_code": delivery.last_status_code,
            "error": delivery.last_error,
        },
    )


def _iso(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
