"""Background jobs of the review loop: take ids, load, call one service."""

import datetime as dt

from django.tasks import task

from reviews.models import ExecutionStatus, OutboxKind, WebhookState
from reviews.services import outbox_done, suggestion_execute, webhook_deliver
from reviews.services.outbox import outbox_item, outbox_retry_at, outbox_sweep


@task
def run_outbox_item(item_id: int) -> str:
    """Do the work of one outbox item, then mark it done, or schedule its next attempt when
    the work failed and may be tried again. Idempotent: a done or unknown item is skipped, and
    each kind of work is itself safe to run twice for its subject."""
    item = outbox_item(item_id)
    if item is None:
        return "done already"
    retry_at: dt.datetime | None = None
    if item.kind == OutboxKind.EXECUTE:
        suggestion = suggestion_execute(suggestion_id=item.ref)
        if suggestion.execution_status == ExecutionStatus.FAILED:
            retry_at = suggestion.execution_next_attempt_at
    elif item.kind == OutboxKind.WEBHOOK:
        delivery = webhook_deliver(delivery_id=item.ref)
        if delivery is not None and delivery.state == WebhookState.PENDING:
            retry_at = delivery.next_attempt_at
    # A worker that dies between the service's commit and this line leaves the item open and
    # enqueued: the sweep runs it again once it is stale, which is one more attempt, never a
    # second effect.
    if retry_at is not None:
        outbox_retry_at(item=item, when=retry_at)
        return f"retry at {retry_at.isoformat()}"
    outbox_done(item=item)
    return "done"


@task
def sweep_outbox() -> int:
    """Enqueue outbox work that is due and not in the queue (run every minute)."""
    return outbox_sweep()


@task
def sweep_escalations() -> int:
    """Move every overdue open suggestion one rung up the escalation ladder, or past its top
    to its policy's default (run every minute). Returns how many steps were taken."""
    from reviews.services.escalation import escalation_sweep

    return escalation_sweep()


@task
def purge_idempotency_keys() -> int:
    """Delete the Idempotency-Keys no longer kept (run hourly or daily). Returns how many."""
    from reviews.services.idempotency import idempotency_key_purge

    return idempotency_key_purge().total
