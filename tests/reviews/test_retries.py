"""Retries of failed handlers: back-off with full jitter through the outbox, and a manager's
"Retry" once the attempts have run out."""

import datetime as dt
import random
from collections.abc import Iterator
from email.utils import format_datetime
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from guardian.shortcuts import assign_perm

from audit.models import AuditEvent
from capabilities import handlers
from reviews.backoff import backoff_ceiling, backoff_delay, retry_after_seconds
from reviews.models import ExecutionStatus, OutboxItem, OutboxKind, Suggestion
from reviews.services import decision_record, execution_retry, outbox_sweep
from tests.factories import ApiClientFactory, CapabilityFactory, UserFactory, submit

pytestmark = pytest.mark.django_db

BASE, CAP = 30, 3600


# --- The back-off -----------------------------------------------------------------------------


def test_the_ceiling_starts_at_the_base_and_doubles_with_each_attempt():
    ceilings = [backoff_ceiling(n, base=BASE, cap=10**9) for n in range(1, 7)]
    assert ceilings == [30, 60, 120, 240, 480, 960]


def test_the_ceiling_never_passes_the_cap_however_many_attempts():
    assert backoff_ceiling(8, base=BASE, cap=CAP) == CAP  # 30 * 128 = 3840 > 3600
    assert backoff_ceiling(7, base=BASE, cap=CAP) == 1920
    assert backoff_ceiling(10_000, base=BASE, cap=CAP) == CAP  # no float overflow


def test_every_delay_lies_between_zero_and_its_ceiling():
    rng = random.Random(7)
    for attempt in range(1, 15):
        ceiling = backoff_ceiling(attempt, base=BASE, cap=CAP)
        for _ in range(200):
            assert 0 <= backoff_delay(attempt, base=BASE, cap=CAP, rng=rng) <= ceiling


def test_full_jitter_spreads_delays_over_the_whole_range():
    rng = random.Random(42)
    delays = [backoff_delay(4, base=BASE, cap=CAP, rng=rng) for _ in range(2000)]
    ceiling = backoff_ceiling(4, base=BASE, cap=CAP)  # 240 s
    assert min(delays) < 0.02 * ceiling
    assert max(delays) > 0.98 * ceiling
    assert 0.45 * ceiling < sum(delays) / len(delays) < 0.55 * ceiling
    # Each tenth of the range gets its share: no clustering at the ceiling (plain exponential)
    # or at the middle (equal jitter).
    tenths = [0] * 10
    for delay in delays:
        tenths[min(int(delay / ceiling * 10), 9)] += 1
    assert all(150 < count < 250 for count in tenths), tenths


def test_attempts_count_from_one():
    with pytest.raises(ValueError, match="from 1"):
        backoff_ceiling(0, base=BASE, cap=CAP)


def test_retry_after_reads_seconds_and_http_dates():
    now = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    assert retry_after_seconds("120", now=now) == 120
    assert retry_after_seconds(None, now=now) is None
    assert retry_after_seconds("soon", now=now) is None
    in_two_hours = format_datetime(now + dt.timedelta(hours=2), usegmt=True)
    assert retry_after_seconds(in_two_hours, now=now) == 7200
    an_hour_ago = format_datetime(now - dt.timedelta(hours=1), usegmt=True)
    assert retry_after_seconds(an_hour_ago, now=now) == 0


# --- Retries through the outbox ---------------------------------------------------------------


class Flaky:
    """A handler that raises for its first ``failures`` calls, then succeeds."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if len(self.calls) <= self.failures:
            raise ConnectionError(f"ledger down (call {len(self.calls)})")
        return {"refund": "R-1"}


@pytest.fixture
def flaky(capability) -> Iterator[Flaky]:
    """``capability``'s handler, failing twice before it succeeds."""
    handler = Flaky(failures=2)
    handlers.register(capability.key)(handler)
    yield handler
    handlers._registry.pop(capability.key, None)


@pytest.fixture
def retry_settings(settings):
    settings.SIGNOFF_EXECUTION_MAX_ATTEMPTS = 5
    settings.SIGNOFF_EXECUTION_RETRY_BASE_SECONDS = BASE
    settings.SIGNOFF_EXECUTION_RETRY_CAP_SECONDS = CAP
    return settings


def approve(suggestion: Suggestion, reviewer: Any, capture: Any) -> None:
    """Approve, and let the relay run the first attempt after the commit."""
    with capture(execute=True):
        decision_record(user=reviewer, suggestion_id=suggestion.pk, outcome="approved")


def actions_of(suggestion: Suggestion) -> list[tuple[str, str]]:
    events = AuditEvent.objects.filter(subject_type="suggestion", subject_id=str(suggestion.pk))
    return [(event.action, event.actor_label) for event in events]


def test_a_handler_failing_twice_then_succeeding_ends_succeeded_after_three_attempts(
    capability,
    api_client_row,
    reviewer,
    flaky,
    retry_settings,
    django_capture_on_commit_callbacks,
):
    suggestion = submit(api_client_row, capability)
    approve(suggestion, reviewer, django_capture_on_commit_callbacks)

    for attempt, ceiling in ((1, BASE), (2, 2 * BASE)):
        suggestion.refresh_from_db()
        assert suggestion.execution_status == ExecutionStatus.FAILED
        assert suggestion.execution_attempts == attempt
        assert suggestion.execution_error == f"ConnectionError: ledger down (call {attempt})"
        # The next attempt is drawn within the back-off of this attempt...
        wait = suggestion.execution_next_attempt_at - suggestion.executed_at
        assert dt.timedelta(0) <= wait <= dt.timedelta(seconds=ceiling)
        # ...and the outbox holds the work until then, not a moment before.
        item = OutboxItem.objects.get(kind=OutboxKind.EXECUTE)
        assert item.done_at is None
        assert item.available_at == suggestion.execution_next_attempt_at
        just_before = item.available_at - dt.timedelta(microseconds=1)
        assert outbox_sweep(now=just_before) == 0
        assert len(flaky.calls) == attempt
        assert outbox_sweep(now=item.available_at) == 1

    suggestion.refresh_from_db()
    assert suggestion.execution_status == ExecutionStatus.SUCCEEDED
    assert suggestion.execution_attempts == 3
    assert suggestion.execution_result == {"refund": "R-1"}
    assert suggestion.execution_error == ""
    assert suggestion.execution_next_attempt_at is None
    assert len(flaky.calls) == 3
    assert OutboxItem.objects.get().done_at is not None
    assert outbox_sweep(now=timezone.now() + dt.timedelta(days=30)) == 0
    assert actions_of(suggestion)[-4:] == [
        ("decision.recorded", "rita"),
        ("execution.failed", "executor"),
        ("execution.failed", "executor"),
        ("execution.succeeded", "executor"),
    ]
    failures = AuditEvent.objects.filter(action="execution.failed")
    assert [event.data["attempt"] for event in failures] == [1, 2]
    assert all(event.data["next_attempt_at"] for event in failures)


@pytest.fixture
def exhausted(
    capability, api_client_row, reviewer, retry_settings, django_capture_on_commit_callbacks
):
    """A suggestion whose handler failed ``SIGNOFF_EXECUTION_MAX_ATTEMPTS`` (2) times."""
    retry_settings.SIGNOFF_EXECUTION_MAX_ATTEMPTS = 2
    handler = Flaky(failures=2)
    handlers.register(capability.key)(handler)
    suggestion = submit(api_client_row, capability, external_id="ticket-77")
    approve(suggestion, reviewer, django_capture_on_commit_callbacks)
    suggestion.refresh_from_db()
    assert outbox_sweep(now=suggestion.execution_next_attempt_at) == 1
    suggestion.refresh_from_db()
    yield suggestion
    handlers._registry.pop(capability.key, None)


def test_exhausting_the_attempts_leaves_it_failed_with_no_next_attempt(exhausted):
    assert exhausted.execution_status == ExecutionStatus.FAILED
    assert exhausted.execution_attempts == 2
    assert exhausted.execution_next_attempt_at is None
    assert OutboxItem.objects.get().done_at is not None
    assert outbox_sweep(now=timezone.now() + dt.timedelta(days=30)) == 0
    last = AuditEvent.objects.filter(action="execution.failed").last()
    assert last.data["attempt"] == 2 and last.data["next_attempt_at"] is None


def test_the_manager_sees_executions_that_ran_out_of_attempts(client: Client, exhausted, manager):
    client.force_login(manager)
    response = client.get(reverse("reviews:failed_executions"))
    assert response.status_code == 200
    assert list(response.context["page"].object_list) == [exhausted]
    html = response.content.decode()
    assert "ticket-77" in html
    assert "ConnectionError: ledger down (call 2)" in html
    assert reverse("reviews:retry_execution", args=[exhausted.pk]) in html
    # The navigation leads managers there.
    assert f'href="{reverse("reviews:failed_executions")}"' in html


def test_executions_still_being_retried_are_not_listed(
    client: Client,
    exhausted,
    manager,
    capability,
    reviewer,
    retry_settings,
    django_capture_on_commit_callbacks,
):
    retry_settings.SIGNOFF_EXECUTION_MAX_ATTEMPTS = 5
    handlers.register(capability.key)(Flaky(failures=99))
    retrying = submit(exhausted.api_client, capability)
    approve(retrying, reviewer, django_capture_on_commit_callbacks)
    retrying.refresh_from_db()
    assert retrying.execution_status == ExecutionStatus.FAILED
    assert retrying.execution_next_attempt_at is not None

    client.force_login(manager)
    listed = client.get(reverse("reviews:failed_executions")).context["page"].object_list
    assert list(listed) == [exhausted]


def test_people_who_manage_nothing_get_404_and_no_link(client: Client, exhausted, reviewer):
    client.force_login(reviewer)
    assert client.get(reverse("reviews:failed_executions")).status_code == 404
    queue = client.get(reverse("reviews:queue")).content.decode()
    assert reverse("reviews:failed_executions") not in queue


def test_the_retry_button_runs_it_again_and_is_audited(
    client: Client, exhausted, manager, capability, django_capture_on_commit_callbacks
):
    before = AuditEvent.objects.count()
    client.force_login(manager)
    # The cause is fixed (the flaky handler's failures are used up): the retry succeeds.
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("reviews:retry_execution", args=[exhausted.pk]))
    assert response.status_code == 302
    assert response.url == reverse("reviews:failed_executions")
    exhausted.refresh_from_db()
    assert exhausted.execution_status == ExecutionStatus.SUCCEEDED
    assert exhausted.execution_attempts == 3
    new = list(AuditEvent.objects.filter(sequence__gt=before))
    assert [(e.action, e.actor_type, e.actor_label) for e in new] == [
        ("execution.retried", "user", "maya"),
        ("execution.succeeded", "system", "executor"),
    ]
    retried = new[0]
    assert retried.actor_id == str(manager.pk)
    assert retried.data == {
        "attempts": 2,
        "last_error": "ConnectionError: ledger down (call 2)",
        "scheduled_attempt_at": None,
    }
    page = client.get(reverse("reviews:failed_executions"))
    assert list(page.context["page"].object_list) == []


def test_a_retry_that_fails_again_is_listed_again_without_an_automatic_retry(
    exhausted, manager, capability, django_capture_on_commit_callbacks
):
    handlers.register(capability.key)(Flaky(failures=99))
    with django_capture_on_commit_callbacks(execute=True):
        execution_retry(user=manager, suggestion_id=exhausted.pk)
    exhausted.refresh_from_db()
    assert exhausted.execution_status == ExecutionStatus.FAILED
    assert exhausted.execution_attempts == 3
    assert exhausted.execution_next_attempt_at is None
    assert OutboxItem.objects.filter(done_at__isnull=True).count() == 0


def test_a_retry_before_the_commit_runs_leaves_work_in_the_outbox(exhausted, manager):
    # The web process dies after the commit: the sweep still finds the retry.
    execution_retry(user=manager, suggestion_id=exhausted.pk)
    exhausted.refresh_from_db()
    assert exhausted.execution_next_attempt_at is not None
    item = OutboxItem.objects.get(done_at__isnull=True)
    assert (item.kind, item.ref) == (OutboxKind.EXECUTE, str(exhausted.pk))
    assert outbox_sweep() == 1
    exhausted.refresh_from_db()
    assert exhausted.execution_status == ExecutionStatus.SUCCEEDED


@pytest.mark.parametrize("who", ["anonymous", "reviewer", "auditor", "other_manager"])
def test_nobody_but_a_manager_of_the_capability_may_retry(
    client: Client, exhausted, reviewer, other_capability, who
):
    if who == "reviewer":
        client.force_login(reviewer)
    elif who == "auditor":
        auditor = UserFactory(username="ada")
        assign_perm("audit.view_auditevent", auditor)
        assign_perm("reviews.view_suggestion", auditor)
        client.force_login(auditor)
    elif who == "other_manager":
        other_manager = UserFactory(username="omar", is_staff=True)
        assign_perm("capabilities.manage_capability", other_manager, other_capability)
        client.force_login(other_manager)
    before = AuditEvent.objects.count()
    response = client.post(reverse("reviews:retry_execution", args=[exhausted.pk]))
    assert response.status_code == (302 if who == "anonymous" else 404)
    if who == "anonymous":
        assert response.url.startswith(reverse("login"))
    exhausted.refresh_from_db()
    assert exhausted.execution_next_attempt_at is None
    assert AuditEvent.objects.count() == before


def test_the_service_checks_the_permission_again(exhausted, reviewer):
    with pytest.raises(PermissionDenied):
        execution_retry(user=reviewer, suggestion_id=exhausted.pk)
    assert not AuditEvent.objects.filter(action="execution.retried").exists()


def test_retrying_what_did_not_fail_changes_nothing(
    client: Client, capability, api_client_row, manager
):
    succeeded = submit(api_client_row, capability, confidence=0.95)
    pending = submit(api_client_row, capability)
    client.force_login(manager)
    before = AuditEvent.objects.count()
    for suggestion in (succeeded, pending):
        response = client.post(
            reverse("reviews:retry_execution", args=[suggestion.pk]), follow=True
        )
        assert response.redirect_chain[-1][0] == reverse("reviews:failed_executions")
        assert "Not retried: Its execution has not failed" in response.content.decode()
    assert AuditEvent.objects.count() == before


def test_a_manager_neither_sees_nor_retries_failures_of_capabilities_they_do_not_manage(
    client: Client, exhausted, manager
):
    other = CapabilityFactory(key="payouts.send")
    other_manager = UserFactory(username="omar", is_staff=True)
    assign_perm("capabilities.manage_capability", other_manager, other)
    foreign = submit(ApiClientFactory.create(capabilities=[other]), other, confidence=0.95)
    Suggestion.objects.filter(pk=foreign.pk).update(
        execution_status=ExecutionStatus.FAILED, execution_next_attempt_at=None
    )

    client.force_login(manager)
    listed = client.get(reverse("reviews:failed_executions")).context["page"].object_list
    assert list(listed) == [exhausted]
    assert client.post(reverse("reviews:retry_execution", args=[foreign.pk])).status_code == 404

    client.force_login(other_manager)
    listed = client.get(reverse("reviews:failed_executions")).context["page"].object_list
    assert list(listed) == [foreign]
    assert client.post(reverse("reviews:retry_execution", args=[exhausted.pk])).status_code == 404
