"""The business actions behind capabilities: what runs once a suggestion is approved.

A handler is plain Python registered for a capability key, or an HTTP endpoint configured for
it (``SIGNOFF_HTTP_HANDLERS``). It receives the final (possibly edited) payload and plain
identifiers, never a suggestion object: the code that decides when to run it, and records how
it went, lives in ``reviews``. A Python handler runs inside the transaction that records its
success, so what it writes to this database happens exactly once. Whatever it does elsewhere
must be idempotent for ``suggestion_id``: a worker that dies after the action and before the
commit leads to one more run. HTTP handlers send the suggestion id as ``Idempotency-Key``.
"""

import json
import logging
from collections.abc import Callable
from typing import Any

import requests
from django.conf import settings

logger = logging.getLogger(__name__)

Handler = Callable[..., dict[str, Any] | None]

_registry: dict[str, Handler] = {}


def register(capability_key: str) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of ``capability_key``."""

    def decorate(func: Handler) -> Handler:
        _registry[capability_key] = func
        return func

    return decorate


class HandlerFailed(Exception):
    """The action did not happen; the caller records it and retries later."""


def handler_for(capability_key: str) -> Handler:
    """The registered Python handler; else the configured HTTP endpoint; else one that records
    the approval and does nothing else."""
    if capability_key in _registry:
        return _registry[capability_key]
    url = http_handler_urls().get(capability_key)
    if url:
        return lambda **kwargs: call_http_handler(url, **kwargs)
    return record_only


def http_handler_urls() -> dict[str, str]:
    """``SIGNOFF_HTTP_HANDLERS`` as {capability key: URL}."""
    pairs = (item.split("=", 1) for item in settings.SIGNOFF_HTTP_HANDLERS if "=" in item)
    return {key.strip(): url.strip() for key, url in pairs}


def call_http_handler(
    url: str, *, capability: str, suggestion_id: str, payload: dict[str, Any]
) -> dict[str, Any]:
    """POST the approved action to ``url``; a 2xx answer means it was done.

    The body is ``{"capability", "suggestion_id", "payload"}`` and the ``Idempotency-Key``
    header is the suggestion id, so the endpoint can tell a retry from a new action. Anything
    but 2xx, or no answer within 10 s, raises ``HandlerFailed`` and the run is retried.
    """
    body = json.dumps(
        {"capability": capability, "suggestion_id": suggestion_id, "payload": payload}
    )
    try:
        response = requests.post(
            url,
            data=body.encode(),
            headers={"Content-Type": "application/json", "Idempotency-Key": suggestion_id},
            timeout=10,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        raise HandlerFailed(f"{type(exc).__name__} calling the handler endpoint") from None
    if not 200 <= response.status_code < 300:
        raise HandlerFailed(f"the handler endpoint answered {response.status_code}")
    return {"handler": "http", "status": response.status_code}


def record_only(*, capability: str, suggestion_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Default for capabilities without a handler: the approval itself is the outcome."""
    logger.info("approved %s suggestion %s (no handler registered)", capability, suggestion_id)
    return {"handler": "record_only"}
