"""Background jobs of the review loop: take ids, load, call one service."""

from django.tasks import task

from reviews.models import OutboxKind
from reviews.services import outbox_done, suggestion_execute
from reviews.services.outbox import outbox_item, outbox_sweep


@task
def run_outbox_item(item_id: int) -> str:
    """Do the work of one outbox item, then mark it done. Idempotent: a done or unknown item
    is skipped, and each kind of work is itself safe to run twice for its subject."""
    item = outbox_item(item_id)
    if item is None:
        return "done already"
    if item.kind == OutboxKind.EXECUTE:
        suggestion_execute(suggestion_id=item.ref)
    outbox_done(item_id=item.pk)
    return "done"


@task
def sweep_outbox() -> int:
    """Enqueue outbox work that is due and not in the queue (run every minute)."""
    return outbox_sweep()
