"""Acting on an approved suggestion: its capability's handler, run once."""

import logging
import time
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.models import AuditAction
from audit.services import Actor, Subject, audit_event_record
from capabilities import handlers
from reviews.models import APPROVED_STATUSES, ExecutionStatus, Suggestion
from reviews.services.common import lock_suggestion

logger = logging.getLogger(__name__)

_EXECUTOR = Actor.system("executor")


def suggestion_execute(*, suggestion_id: Any) -> Suggestion:
    """Run the capability's handler for an approved suggestion, once.

    The handler runs inside the transaction that locks the suggestion and records the success:
    what a handler writes to this database commits together with "succeeded", or not at all.
    So a worker killed mid-run leaves no trace, the outbox runs the work again, and the action
    happens once; a second job for the same suggestion waits for the lock, then finds it done.
    A handler that calls another system gets the suggestion id to make that call idempotent.
    A failure is recorded (attempt, error, duration) and audited; nothing else is kept.
    """
    started = time.monotonic()
    try:
        with transaction.atomic():
            suggestion = lock_suggestion(suggestion_id)
            if (
                suggestion.status not in APPROVED_STATUSES
                or suggestion.execution_status == ExecutionStatus.SUCCEEDED
            ):
                return suggestion
            handler = handlers.handler_for(suggestion.capability.key)
            result = handler(
                capability=suggestion.capability.key,
                suggestion_id=str(suggestion.pk),
                payload=suggestion.final_payload,
            )
            _record(suggestion, result=result, error="", started=started)
            return suggestion
    except Exception as exc:  # a failing handler is recorded, never lost
        logger.exception("handler failed on suggestion %s", suggestion_id)
        error = f"{type(exc).__name__}: {exc}"
    with transaction.atomic():
        suggestion = lock_suggestion(suggestion_id)
        _record(suggestion, result=None, error=error, started=started)
    return suggestion


def _record(suggestion: Suggestion, *, result: Any, error: str, started: float) -> None:
    duration_ms = round((time.monotonic() - started) * 1000)
    suggestion.execution_status = ExecutionStatus.FAILED if error else ExecutionStatus.SUCCEEDED
    suggestion.execution_attempts += 1
    suggestion.execution_result = result
    suggestion.execution_error = error
    suggestion.execution_duration_ms = duration_ms
    suggestion.executed_at = timezone.now()
    suggestion.save(
        update_fields=[
            "execution_status",
            "execution_attempts",
            "execution_result",
            "execution_error",
            "execution_duration_ms",
            "executed_at",
        ]
    )
    audit_event_record(
        actor=_EXECUTOR,
        action=AuditAction.EXECUTION_FAILED if error else AuditAction.EXECUTION_SUCCEEDED,
        subject=Subject.of(suggestion),
        capability=suggestion.capability.key,
        data={"attempt": suggestion.execution_attempts, "duration_ms": duration_ms, "error": error},
    )
