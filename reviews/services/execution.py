"""Acting on an approved suggestion: its capability's handler, run once, retried with back-off
when it fails, and retried by hand once its attempts have run out."""

import datetime as dt
import logging
import time
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from audit.models import AuditAction
from audit.services import Actor, Subject, audit_event_record
from capabilities import handlers
from capabilities.permissions import can_manage_capability
from reviews.backoff import backoff_delay
from reviews.models import APPROVED_STATUSES, ExecutionStatus, OutboxKind, Suggestion
from reviews.redaction import redactor
from reviews.services.common import ReviewConflict, after_execution, lock_suggestion
from reviews.services.outbox import outbox_add

logger = logging.getLogger(__name__)

_EXECUTOR = Actor.system("executor")


def suggestion_execute(*, suggestion_id: Any) -> Suggestion:
    """Run the capability's handler for an approved suggestion, once.

    The handler runs inside the transaction that locks the suggestion and records the success:
    what a handler writes to this database commits together with "succeeded", or not at all.
    So a worker killed mid-run leaves no trace, the outbox runs the work again, and the action
    happens once; a second job for the same suggestion waits for the lock, then finds it done.
    A handler that calls another system gets the suggestion id to make that call idempotent.

    A failure is recorded (attempt, error, duration) and audited, and nothing else is kept.
    Until the suggestion has been tried ``SIGNOFF_EXECUTION_MAX_ATTEMPTS`` times, the failure
    sets ``execution_next_attempt_at`` (``execution_retry_at``): the caller, the outbox job,
    schedules the next attempt then. After that it stays failed with no next attempt, and only
    ``execution_retry`` (a manager) starts it again. A finished execution (succeeded, or failed
    with no attempt left) tells the submitter (``after_execution``).
    """
    started = time.monotonic()
    try:
        with transaction.atomic():
            suggestion = lock_suggestion(suggestion_id)
            if not _runnable(suggestion):
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
        # Handlers quote what they were given (payloads, URLs with credentials): the message is
        # redacted before it is stored, audited or logged, and the traceback is not logged.
        error = redactor().text(f"{type(exc).__name__}: {exc}")
        logger.warning("handler failed on suggestion %s: %s", suggestion_id, error)
    with transaction.atomic():
        suggestion = lock_suggestion(suggestion_id)
        # Between the rollback and this lock another job may have run it: its outcome stands.
        if _runnable(suggestion):
            _record(suggestion, result=None, error=error, started=started)
    return suggestion


def execution_retry_at(attempts: int, *, now: dt.datetime) -> dt.datetime | None:
    """When to try again an execution that has failed ``attempts`` times: after a back-off
    with full jitter (``SIGNOFF_EXECUTION_RETRY_BASE_SECONDS`` doubled per attempt, at most
    ``SIGNOFF_EXECUTION_RETRY_CAP_SECONDS``), or None once ``SIGNOFF_EXECUTION_MAX_ATTEMPTS``
    attempts have been made."""
    if attempts >= settings.SIGNOFF_EXECUTION_MAX_ATTEMPTS:
        return None
    delay = backoff_delay(
        attempts,
        base=settings.SIGNOFF_EXECUTION_RETRY_BASE_SECONDS,
        cap=settings.SIGNOFF_EXECUTION_RETRY_CAP_SECONDS,
    )
    return now + dt.timedelta(seconds=delay)


def execution_retry(*, user: Any, suggestion_id: Any) -> Suggestion:
    """Try the failed execution of a suggestion again, now, at a manager's request.

    ``user`` must manage the suggestion's capability (else ``PermissionDenied``). The next
    attempt is set to now and written to the outbox, in one transaction with the
    ``execution.retried`` audit event. The retry is one more attempt: if it fails too, the
    execution is failed again with no automatic retry. Raises ``ReviewConflict`` when the
    execution has not failed (it succeeded meanwhile, or never ran).
    """
    with transaction.atomic():
        suggestion = lock_suggestion(suggestion_id)
        if not can_manage_capability(user, suggestion.capability):
            raise PermissionDenied("You may not retry executions of this capability.")
        if (
            suggestion.status not in APPROVED_STATUSES
            or suggestion.execution_status != ExecutionStatus.FAILED
        ):
            status = suggestion.get_execution_status_display().lower()
            raise ReviewConflict(f"Its execution has not failed (it is {status}).")
        now = timezone.now()
        previous = suggestion.execution_next_attempt_at
        suggestion.execution_next_attempt_at = now
        suggestion.save(update_fields=["execution_next_attempt_at"])
        audit_event_record(
            actor=Actor.user(user),
            action=AuditAction.EXECUTION_RETRIED,
            subject=Subject.of(suggestion),
            capability=suggestion.capability.key,
            data={
                "attempts": suggestion.execution_attempts,
                "last_error": suggestion.execution_error,
                "scheduled_attempt_at": previous,
            },
        )
        outbox_add(kind=OutboxKind.EXECUTE, ref=str(suggestion.pk))
    return suggestion


def _runnable(suggestion: Suggestion) -> bool:
    """Approved, not done, and not given up on (failed with no next attempt)."""
    if suggestion.status not in APPROVED_STATUSES:
        return False
    if suggestion.execution_status == ExecutionStatus.SUCCEEDED:
        return False
    return not (
        suggestion.execution_status == ExecutionStatus.FAILED
        and suggestion.execution_next_attempt_at is None
    )


def _record(suggestion: Suggestion, *, result: Any, error: str, started: float) -> None:
    duration_ms = round((time.monotonic() - started) * 1000)
    now = timezone.now()
    suggestion.execution_status = ExecutionStatus.FAILED if error else ExecutionStatus.SUCCEEDED
    suggestion.execution_attempts += 1
    suggestion.execution_result = result
    suggestion.execution_error = error
    suggestion.execution_duration_ms = duration_ms
    suggestion.executed_at = now
    suggestion.execution_next_attempt_at = (
        execution_retry_at(suggestion.execution_attempts, now=now) if error else None
    )
    suggestion.save(
        update_fields=[
            "execution_status",
            "execution_attempts",
            "execution_result",
            "execution_error",
            "execution_duration_ms",
            "executed_at",
            "execution_next_attempt_at",
        ]
    )
    data: dict[str, Any] = {
        "attempt": suggestion.execution_attempts,
        "duration_ms": duration_ms,
        "error": error,
    }
    if error:
        data["next_attempt_at"] = suggestion.execution_next_attempt_at
    audit_event_record(
        actor=_EXECUTOR,
        action=AuditAction.EXECUTION_FAILED if error else AuditAction.EXECUTION_SUCCEEDED,
        subject=Subject.of(suggestion),
        capability=suggestion.capability.key,
        data=data,
    )
    if suggestion.execution_next_attempt_at is None:
        after_execution(suggestion)
