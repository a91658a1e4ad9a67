"""The business actions behind capabilities: what runs once a suggestion is approved.

A handler is plain Python registered for a capability key. It receives the final (possibly
edited) payload and plain identifiers, never a suggestion object: the code that decides when
to run it, and records how it went, lives in ``reviews``. A handler must be idempotent with
respect to ``suggestion_id``: the caller guarantees one successful run, but a crash after the
action and before its record can lead to one retry.
"""

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

Handler = Callable[..., dict[str, Any] | None]

_registry: dict[str, Handler] = {}


def register(capability_key: str) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of ``capability_key``."""

    def decorate(func: Handler) -> Handler:
        _registry[capability_key] = func
        return func

    return decorate


def handler_for(capability_key: str) -> Handler:
    """The registered handler, or one that records the approval and does nothing else."""
    return _registry.get(capability_key, record_only)


def record_only(*, capability: str, suggestion_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Default for capabilities without a handler: the approval itself is the outcome."""
    logger.info("approved %s suggestion %s (no handler registered)", capability, suggestion_id)
    return {"handler": "record_only"}
