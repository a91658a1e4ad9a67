"""The outbox: work a committed change must cause, recorded in the change's own transaction.

A row is written with the change; after the commit, the relay enqueues its job; the job marks
it done. If the process dies between commit and enqueue, or the queue loses the job, or its
worker dies, ``outbox_sweep`` (run every minute by the scheduler) enqueues it again. Jobs are
idempotent for their subject, so a second enqueue costs a little work, never a second effect.
"""

import datetime as dt
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from reviews.models import OutboxItem


def outbox_add(*, kind: str, ref: str, available_at: dt.datetime | None = None) -> OutboxItem:
    """Record work of ``kind`` on subject ``ref``, to run once the current transaction commits
    (or at ``available_at``, when later: the sweep picks it up then).

    Must run inside the transaction of the change that causes it. An open item for the same
    kind and subject is reused, so asking twice schedules the work once.
    """
    if not connection.in_atomic_block:
        raise transaction.TransactionManagementError(
            "outbox_add() must run inside the transaction of the change that causes the work"
        )
    now = timezone.now()
    due = available_at or now
    item = OutboxItem.objects.filter(kind=kind, ref=ref, done_at__isnull=True).first()
    if item is None:
        item = OutboxItem.objects.create(kind=kind, ref=ref, available_at=due)
    elif due != item.available_at:
        OutboxItem.objects.filter(pk=item.pk).update(available_at=due, enqueued_at=None)
    if due <= now:
        item_id = item.pk
        transaction.on_commit(lambda: outbox_relay(item_id=item_id), robust=True)
    return item


def outbox_relay(*, item_id: int) -> None:
    """Enqueue the job of one outbox item, and note when it was enqueued."""
    from reviews.tasks import run_outbox_item  # tasks import services

    marked = OutboxItem.objects.filter(pk=item_id, done_at__isnull=True).update(
        enqueued_at=timezone.now(), enqueue_count=F("enqueue_count") + 1
    )
    if marked:
        run_outbox_item.enqueue(item_id)


def outbox_sweep(*, now: dt.datetime | None = None) -> int:
    """Enqueue every open item that is due and not in the queue: never enqueued (its process
    died after the commit), or enqueued longer ago than ``SIGNOFF_OUTBOX_STALE_SECONDS`` (the
    queue lost it, or its worker died). Returns how many were enqueued."""
    now = now or timezone.now()
    stale = now - dt.timedelta(seconds=settings.SIGNOFF_OUTBOX_STALE_SECONDS)
    due = (
        OutboxItem.objects.filter(done_at__isnull=True, available_at__lte=now)
        .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=stale))
        .values_list("pk", flat=True)
    )
    count = 0
    for item_id in list(due):
        outbox_relay(item_id=item_id)
        count += 1
    return count


def outbox_done(*, item_id: int) -> None:
    """The work of ``item_id`` is finished: the sweep forgets it."""
    OutboxItem.objects.filter(pk=item_id, done_at__isnull=True).update(done_at=timezone.now())


def outbox_retry_at(*, item_id: int, when: dt.datetime) -> None:
    """Run the work of ``item_id`` again at ``when`` (a retry with back-off): the sweep enqueues
    it once it is due."""
    OutboxItem.objects.filter(pk=item_id, done_at__isnull=True).update(
        available_at=when, enqueued_at=None
    )


def outbox_item(item_id: int) -> Any:
    """The open item, or None when it is done or unknown."""
    return OutboxItem.objects.filter(pk=item_id, done_at__isnull=True).first()
