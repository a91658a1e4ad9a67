"""The outbox: work caused by a commit survives the process that committed it."""

import datetime as dt

import pytest
from django.db import transaction
from django.utils import timezone

from reviews.models import ExecutionStatus, OutboxItem, OutboxKind
from reviews.services import decision_record, outbox_done, outbox_sweep
from reviews.services.outbox import outbox_add, outbox_item, outbox_retry_at
from tests.factories import submit

pytestmark = pytest.mark.django_db


def test_an_approval_writes_its_execution_into_the_outbox_in_the_same_transaction(
    capability, api_client_row, reviewer
):
    suggestion = submit(api_client_row, capability)
    decision_record(user=reviewer, suggestion_id=suggestion.pk, outcome="approved")
    item = OutboxItem.objects.get()
    assert (item.kind, item.ref, item.done_at) == (OutboxKind.EXECUTE, str(suggestion.pk), None)


def test_the_relay_runs_the_work_after_commit_and_marks_it_done(
    capability, api_client_row, reviewer, django_capture_on_commit_callbacks
):
    suggestion = submit(api_client_row, capability)
    with django_capture_on_commit_callbacks(execute=True):
        decision_record(user=reviewer, suggestion_id=suggestion.pk, outcome="approved")
    item = OutboxItem.objects.get()
    assert item.done_at is not None and item.enqueue_count == 1
    suggestion.refresh_from_db()
    assert suggestion.execution_status == ExecutionStatus.SUCCEEDED


def test_work_whose_process_died_after_commit_is_run_by_the_sweep(
    capability, api_client_row, reviewer, django_capture_on_commit_callbacks
):
    suggestion = submit(api_client_row, capability)
    # The web process dies between commit and enqueue: its on-commit hook never runs.
    with django_capture_on_commit_callbacks(execute=False):
        decision_record(user=reviewer, suggestion_id=suggestion.pk, outcome="approved")
    suggestion.refresh_from_db()
    assert suggestion.execution_status == ExecutionStatus.NOT_STARTED

    assert outbox_sweep() == 1
    suggestion.refresh_from_db()
    assert suggestion.execution_status == ExecutionStatus.SUCCEEDED
    assert OutboxItem.objects.get().done_at is not None
    assert outbox_sweep() == 0  # nothing left to do


def test_the_sweep_re_enqueues_work_lost_in_the_queue_only_once_it_is_stale(
    capability, api_client_row, reviewer, settings, django_capture_on_commit_callbacks
):
    settings.SIGNOFF_OUTBOX_STALE_SECONDS = 300
    suggestion = submit(api_client_row, capability)
    with django_capture_on_commit_callbacks(execute=False):
        decision_record(user=reviewer, suggestion_id=suggestion.pk, outcome="approved")
    # Enqueued, then lost by the queue (the job never ran).
    OutboxItem.objects.update(enqueued_at=timezone.now(), enqueue_count=1)
    assert outbox_sweep() == 0  # still within its time: maybe a worker has it
    later = timezone.now() + dt.timedelta(seconds=301)
    assert outbox_sweep(now=later) == 1
    item = OutboxItem.objects.get()
    assert item.done_at is not None and item.enqueue_count == 2


def test_work_asked_for_again_while_its_job_ran_is_not_closed_by_that_job(
    capability, api_client_row, reviewer, django_capture_on_commit_callbacks
):
    """A job loads its item, does the work, then closes it. Should the same work be asked for
    again in between (a manager's retry of an execution that has just failed), closing it
    would leave the new request's job nothing to do: the item must stay open for it."""
    suggestion = submit(api_client_row, capability)
    with django_capture_on_commit_callbacks(execute=False):
        decision_record(user=reviewer, suggestion_id=suggestion.pk, outcome="approved")
    loaded = outbox_item(OutboxItem.objects.get().pk)

    with transaction.atomic(), django_capture_on_commit_callbacks(execute=False):
        outbox_add(kind=OutboxKind.EXECUTE, ref=str(suggestion.pk))  # asked for again
    outbox_done(item=loaded)
    assert OutboxItem.objects.get().done_at is None
    outbox_retry_at(item=loaded, when=timezone.now() + dt.timedelta(hours=1))
    assert OutboxItem.objects.get().available_at <= timezone.now()  # the new request stands

    outbox_done(item=outbox_item(loaded.pk))  # as its own job loads it
    assert OutboxItem.objects.get().done_at is not None
