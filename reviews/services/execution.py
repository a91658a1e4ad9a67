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


def suggestion_execute(*, suggestion_id: Any) -> Suggestion:
    """Run the capability's handler for an approved suggestion, once.

    The row is locked while its execution is marked running, so a second job for the same
    suggestion finds it running or finished and does nothing. The handler itself runs outside
    any transaction (it may call other systems); its outcome is recorded and audited after.
    """
    with transaction.atomic():
        suggestion = lock_suggestion(suggestion_id)
        if (
            suggestion.status not in APPROVED_STATUSES
            or suggestion.execution_status != ExecutionStatus.NOT_STARTED
        ):
            return suggestion
        suggestion.execution_status = ExecutionStatus.RUNNING
        suggestion.execution_attempts += 1
        suggestion.save(update_fields=["execution_status", "execution_attempts"])

    handler = handlers.handler_for(suggestion.capability.key)
    started = time.monotonic()
    try:
        result = handler(
            capability=suggestion.capability.key,
            suggestion_id=str(suggestion.pk),
            payload=suggestion.final_payload,
        )
        error = ""
    except Exception as exc:  # a failing handler is recorded, never lost
        logger.exception("handler for %s failed on %s", suggestion.capability.key, suggestion.pk)
        result, error = None, f"{type(exc).__name__}: {exc}"
    duration_ms = round((time.monotonic() - started) * 1000)

    with transaction.atomic():
        suggestion = lock_suggestion(suggestion_id)
        suggestion.execution_status = ExecutionStatus.FAILED if error else ExecutionStatus.SUCCEEDED
        suggestion.execution_result = result
        suggestion.execution_error = error
        suggestion.executed_at = timezone.now()
        suggestion.save(
            update_fields=["execution_status", "execution_result", "execution_error", "executed_at"]
        )
        audit_event_record(
            actor=Actor.system("executor"),
            action=AuditAction.EXECUTION_FAILED if error else AuditAction.EXECUTION_SUCCEEDED,
            subject=Subject.of(suggestion),
            capability=suggestion.capability.key,
            data={
                "attempt": suggestion.execution_attempts,
                "duration_ms": duration_ms,
                "error": error,
            },
        )
    return suggestion
