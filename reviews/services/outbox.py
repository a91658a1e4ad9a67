"""The outbox: work a committed change must cause, recorded in the change's own transaction.

A row is written with the change; after the commit, the relay enqueues its job; the job marks
it done. If the process dies between commit and enqueue, or the queue loses the job, or its
worker dies, ``outbox_sweep`` (run every minute by the scheduler) enqueues it again. Jobs are
idempotent for their subject, so a second enqueue costs a little work, never a second effect.
"""

import datetime as dt
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from reviews.models import OutboxItem


def outbox_add(*, kind: str, ref: str, available_at: dt.datetime | None = None) -> OutboxItem:
    """Record work of ``kind`` on subject ``ref``, to run once the current transaction commits
    (or at ``available_at``, when later: the sweep picks it up then).

    Must run inside the transaction of the change that causes it. An open item for the same
    kind and subject is reused, so asking twice schedules the work once.
    """
    now = timezone.now()
    due = available_at or now
    [item] = _record(kind=kind, refs=[ref], due=due)
    if due <= now:
        item_id = item.pk
        transaction.on_commit(lambda: outbox_relay(item_id=item_id), robust=True)
    return item


def outbox_add_many(*, kind: str, refs: Sequence[str]) -> list[OutboxItem]:
    """``outbox_add`` of work of ``kind`` on each of ``refs``, due now: the items in the order
    of ``refs`` (one per distinct ref), written and, after the commit, enqueued in a number of
    statements that does not grow with the refs."""
    items = _record(kind=kind, refs=refs, due=timezone.now())
    if items:
        item_ids = [item.pk for item in items]
        transaction.on_commit(lambda: outbox_relay_many(item_ids=item_ids), robust=True)
    return items


def _record(*, kind: str, refs: Sequence[str], due: dt.datetime) -> list[OutboxItem]:
    """An open item of ``kind`` due at ``due`` for each distinct ref, in order: the open one
    already there (moved to ``due``), or a new one."""
    refs = list(dict.fromkeys(refs))
    if not refs:
        return []
    if not connection.in_atomic_block:
        raise transaction.TransactionManagementError(
            "outbox work must be added inside the transaction of the change that causes it"
        )
    found = {
        item.ref: item
        for item in OutboxItem.objects.filter(kind=kind, ref__in=refs, done_at__isnull=True)
    }
    moved = [item for item in found.values() if item.available_at != due]
    if moved:
        OutboxItem.objects.filter(pk__in=[item.pk for item in moved]).update(
            available_at=due, enqueued_at=None
        )
        for item in moved:
            item.available_at, item.enqueued_at = due, None
    created = iter(
        OutboxItem.objects.bulk_create(
            [OutboxItem(kind=kind, ref=ref, available_at=due) for ref in refs if ref not in found]
        )
    )
    return [found[ref] if ref in found else next(created) for ref in refs]


def outbox_relay(*, item_id: int) -> None:
    """Enqueue the job of one outbox item, and note when it was enqueued."""
    from reviews.tasks import run_outbox_item  # tasks import services

    if _mark_enqueued(OutboxItem.objects.filter(pk=item_id, done_at__isnull=True)):
        run_outbox_item.enqueue(item_id)


def outbox_relay_many(*, item_ids: Sequence[int]) -> None:
    """``outbox_relay`` for each of ``item_ids``, noting them enqueued in one statement.

    An item finished between the read of the open ones and that statement is enqueued all
    the same: its job finds it done and does nothing.
    """
    from reviews.tasks import run_outbox_item  # tasks import services

    open_ids = list(
        OutboxItem.objects.filter(pk__in=item_ids, done_at__isnull=True).values_list(
            "pk", flat=True
        )
    )
    if not open_ids:
        return
    _mark_enqueued(OutboxItem.objects.filter(pk__in=open_ids, done_at__isnull=True))
    for item_id in open_ids:
        run_outbox_item.enqueue(item_id)


def _mark_enqueued(items: QuerySet[OutboxItem]) -> int:
    return items.update(enqueued_at=timezone.now(), enqueue_count=F("enqueue_count") + 1)


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


def outbox_done(*, item: OutboxItem) -> None:
    """The work of ``item``, as its job loaded it, is finished: the sweep forgets it.

    Unless the work was asked for again meanwhile (``outbox_add`` on an open item moves it to
    a new time: a manager's retry of an execution that had just failed, say): then the item
    stays open for the job that request enqueues, which would otherwise find it done.
    """
    _as_loaded(item).update(done_at=timezone.now())


def outbox_retry_at(*, item: OutboxItem, when: dt.datetime) -> None:
    """Run the work of ``item``, as its job loaded it, again at ``when`` (a retry with
    back-off): the sweep enqueues it once it is due. A request made meanwhile stands, as for
    ``outbox_done``."""
    _as_loaded(item).update(available_at=when, enqueued_at=None)


def _as_loaded(item: OutboxItem) -> QuerySet[OutboxItem]:
    return OutboxItem.objects.filter(
        pk=item.pk, done_at__isnull=True, available_at=item.available_at
    )


def outbox_item(item_id: int) -> Any:
    """The open item, or None when it is done or unknown."""
    return OutboxItem.objects.filter(pk=item_id, done_at__isnull=True).first()
