"""The rule for every page and endpoint that lists rows: its number of queries does not grow
with the rows.

Each test renders a page once to warm what is cached per process (content types, a token's
last use), counts the queries of a render with a few rows, adds rows until there are about
three times as many, and asserts that the render costs exactly as many queries again. A count
that grows is a query per row (an N+1): fix the selector, not the test.
"""

import datetime as dt
import importlib
from collections.abc import Callable
from typing import Any, cast

import pytest
from django.contrib.auth.models import Permission
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from audit import views as audit_views
from audit.models import AuditAction
from audit.services import Actor, Subject, audit_event_record
from capabilities.models import ApiClient, Capability
from capabilities.services import IssuedToken
from reviews.models import (
    DecisionOutcome,
    ExecutionStatus,
    IdempotencyKey,
    IdempotencyState,
    Suggestion,
    SuggestionStatus,
    WebhookAttempt,
    WebhookDelivery,
)
from reviews.services import decision_record, suggestion_claim, suggestion_release
from tests.factories import ApiClientFactory, CapabilityFactory, UserFactory, submit

pytestmark = pytest.mark.django_db

QUEUE = reverse("reviews:queue")
QUEUE_TAKEN = reverse("reviews:queue_taken")
API_LIST = "/api/v1/suggestions/"
AUDIT_LOG = reverse("audit:log")
AUDIT_EXPORT = reverse("audit:export")
FAILED_EXECUTIONS = reverse("reviews:failed_executions")
RETRIES = reverse("reviews:submission_retries")
# ``reviews.views`` re-exports the ``queue`` view under the module's name.
queue_views = importlib.import_module("reviews.views.queue")
PAYLOAD = {"amount": "120.00", "currency": "EUR", "order": "A-1"}

# A few rows, then about three times as many.
FEW = 4
MANY = 3 * FEW


@pytest.fixture
def same_queries(django_assert_num_queries: Any) -> Callable[..., Any]:
    """``same_queries(render, grow)``: count ``render()`` with the rows there are, call
    ``grow()``, and assert that ``render()`` costs exactly as many queries again. ``render``
    returns how many rows it listed; the second render must list more."""

    def check(render: Callable[[], int], grow: Callable[[], None]) -> int:
        render()  # warms the per-process caches (content types, a token's last use)
        with CaptureQueriesContext(connection) as few:
            few_rows = render()
        grow()
        with django_assert_num_queries(len(few.captured_queries)):
            many_rows = render()
        assert many_rows > few_rows > 0
        return len(few.captured_queries)

    return check


def ok(response: Any) -> Any:
    assert response.status_code == 200, response.content[:500]
    return response


def make_auditor() -> Any:
    user: Any = UserFactory(username="audrey")
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="audit", codename="view_auditevent")
    )
    return user


# --- The queue --------------------------------------------------------------------------------


@pytest.fixture
def timed(db: Any) -> Capability:
    """A capability with a 60-minute deadline per rung, so rows show their SLA state."""
    return cast(Capability, CapabilityFactory(key="invoices.pay", sla_minutes=60))


@pytest.fixture
def queue_reviewer(
    make_reviewer: Callable[..., Any], capability: Capability, timed: Capability
) -> Any:
    """Reviews and resolves escalations for both capabilities: sees every kind of row."""
    return make_reviewer(capability, timed, senior=True, username="rita")


@pytest.fixture
def queue_rows(
    queue_reviewer: Any,
    capability: Capability,
    timed: Capability,
    api_client_row: ApiClient,
    make_reviewer: Callable[..., Any],
) -> Callable[[int], list[Suggestion]]:
    """``add(n)``: n more open suggestions of every kind the queue shows: both capabilities,
    with and without a deadline, pending and escalated, free, held by the reviewer and held
    by others."""
    timed_client = ApiClientFactory.create(capabilities=[timed])
    holders = [queue_reviewer, *(make_reviewer(capability, timed, senior=True) for _ in range(2))]
    made: list[Suggestion] = []

    def add(n: int) -> list[Suggestion]:
        rows = []
        for _ in range(n):
            index = len(made)
            if index % 2:
                suggestion = submit(timed_client, timed, external_id=f"t-{index}")
            else:
                suggestion = submit(api_client_row, capability, external_id=f"c-{index}")
            holder = holders[(index // 3) % len(holders)]
            if index % 3 == 1:
                suggestion_claim(user=holder, suggestion_id=suggestion.pk)
            elif index % 3 == 2:
                decision_record(
                    user=holder,
                    suggestion_id=suggestion.pk,
                    outcome=DecisionOutcome.ESCALATED,
                    reason="A second look.",
                )
            made.append(suggestion)
            rows.append(suggestion)
        return rows

    return add


def queue_rows_shown(response: Any) -> int:
    page = ok(response).context["page"]
    assert page is not None, response.context["form"].errors
    return len(page.object_list)


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"sort": "oldest"},
        {"capability": "invoices.pay"},
        {"status": SuggestionStatus.ESCALATED},
        {"model": "gpt-4o 2024-08-06", "confidence_min": "0.1", "confidence_max": "0.9"},
        {"mine": "on"},
    ],
    ids=["default", "oldest-first", "one-capability", "escalated", "model-and-confidence", "mine"],
)
def test_queue_page_costs_the_same_queries_for_few_and_many_rows(
    client: Client,
    queue_reviewer: Any,
    queue_rows: Callable[[int], list[Suggestion]],
    same_queries: Callable[..., int],
    query: dict[str, str],
):
    queue_rows(2 * FEW)
    client.force_login(queue_reviewer)

    same_queries(
        lambda: queue_rows_shown(client.get(QUEUE, query)),
        lambda: queue_rows(4 * FEW),
    )


def test_a_later_queue_page_costs_the_same_queries_for_few_and_many_rows(
    client: Client,
    queue_reviewer: Any,
    queue_rows: Callable[[int], list[Suggestion]],
    same_queries: Callable[..., int],
    monkeypatch: pytest.MonkeyPatch,
):
    # The second page of FEW + 2 rows holds 2; with MANY rows more, a full page of FEW.
    monkeypatch.setattr(queue_views, "QUEUE_PAGE_SIZE", FEW)
    queue_rows(FEW + 2)
    client.force_login(queue_reviewer)

    def second_page() -> int:
        first = ok(client.get(QUEUE)).context["page"]
        assert first.next_cursor is not None
        return queue_rows_shown(client.get(QUEUE, {"cursor": first.next_cursor.encode()}))

    same_queries(second_page, lambda: queue_rows(MANY))


def test_queue_taken_costs_the_same_queries_for_few_and_many_ids(
    client: Client,
    queue_reviewer: Any,
    queue_rows: Callable[[int], list[Suggestion]],
    same_queries: Callable[..., int],
):
    shown = queue_rows(2 * FEW)
    client.force_login(queue_reviewer)

    def taken() -> int:
        ids = ",".join(str(s.pk) for s in shown)
        assert ok(client.get(QUEUE_TAKEN, {"ids": ids})).json()["taken"]
        return len(shown)

    same_queries(taken, lambda: shown.extend(queue_rows(4 * FEW)))


# --- One suggestion: the review page and its timeline ----------------------------------------


@pytest.fixture
def four_eyes(db: Any) -> Capability:
    """Two approvals of the same payload close an item: edits keep it open, one decision each."""
    return cast(
        Capability,
        CapabilityFactory(key="payments.send", required_approvals=2, sla_minutes=60),
    )


@pytest.fixture
def busy_suggestion(
    four_eyes: Capability, make_reviewer: Callable[..., Any]
) -> tuple[Suggestion, Any, Callable[[int], None]]:
    """An open suggestion, a reviewer who may read it, and ``grow(n)``: n more of each thing
    the review page lists about it: decisions (edited approvals by turns, each with its
    audit events), claims and releases, webhook deliveries with their attempts, and earlier
    identical proposals that were decided (the page shows up to five)."""
    client_row = ApiClientFactory.create(capabilities=[four_eyes])
    first, second, reader = (make_reviewer(four_eyes) for _ in range(3))
    suggestion = submit(
        client_row, four_eyes, payload=PAYLOAD, callback_url="https://example.invalid/hook"
    )
    state = {"edits": 0}

    def grow(n: int) -> None:
        for _ in range(n):
            state["edits"] += 1
            edits = state["edits"]
            earlier = submit(client_row, four_eyes, payload=PAYLOAD)
            Suggestion.objects.filter(pk=earlier.pk).update(
                created_at=suggestion.created_at - dt.timedelta(minutes=edits)
            )
            decision_record(
                user=first,
                suggestion_id=earlier.pk,
                outcome=DecisionOutcome.REJECTED,
                reason=f"Not this time ({edits}).",
            )
            approver = first if edits % 2 else second
            suggestion_claim(user=approver, suggestion_id=suggestion.pk)
            decision_record(
                user=approver,
                suggestion_id=suggestion.pk,
                outcome=DecisionOutcome.APPROVED,
                final_payload={**PAYLOAD, "amount": f"{100 + edits}.00"},
                reason=f"Edit {edits}.",
            )
            suggestion_release(user=approver, suggestion_id=suggestion.pk)
            delivery = WebhookDelivery.objects.create(
                suggestion=suggestion,
                message_id=f"msg_{edits}",
                event_type="suggestion.updated",
                url="https://example.invalid/hook",
                payload={"edit": edits},
            )
            for status_code in (500, 200):
                WebhookAttempt.objects.create(
                    delivery=delivery, status_code=status_code, duration_ms=12
                )

    grow(1)
    return suggestion, reader, grow


def test_review_page_costs_the_same_queries_for_few_and_many_decisions(
    client: Client,
    busy_suggestion: tuple[Suggestion, Any, Callable[[int], None]],
    same_queries: Callable[..., int],
):
    suggestion, reader, grow = busy_suggestion
    grow(FEW - 1)
    client.force_login(reader)
    url = reverse("reviews:review", args=[suggestion.pk])

    def rendered() -> int:
        context = ok(client.get(url)).context
        assert context["similar"]
        return len(context["decisions"])

    same_queries(rendered, lambda: grow(MANY - FEW))


def test_timeline_costs_the_same_queries_for_few_and_many_events(
    client: Client,
    busy_suggestion: tuple[Suggestion, Any, Callable[[int], None]],
    same_queries: Callable[..., int],
):
    suggestion, reader, grow = busy_suggestion
    grow(FEW - 1)
    client.force_login(reader)
    url = reverse("reviews:timeline", args=[suggestion.pk])

    same_queries(
        lambda: len(ok(client.get(url)).context["entries"]),
        lambda: grow(MANY - FEW),
    )


# --- The list API -----------------------------------------------------------------------------


@pytest.fixture
def api_rows(
    capability: Capability,
    other_capability: Capability,
    make_reviewer: Callable[..., Any],
) -> tuple[IssuedToken, Any, Callable[[int], None]]:
    """A token of a client of two capabilities, a reviewer of both, and ``add(n)``: n more
    suggestions of that client, half decided by one of several reviewers."""
    issued = ApiClientFactory.issue(capabilities=[capability, other_capability])
    client_row = issued.token.client
    reviewers = [make_reviewer(capability, other_capability) for _ in range(3)]
    reader = make_reviewer(capability, other_capability)
    made = [0]

    def add(n: int) -> None:
        for _ in range(n):
            made[0] += 1
            target = capability if made[0] % 2 else other_capability
            suggestion = submit(client_row, target, external_id=f"ext-{made[0]}")
            if made[0] % 4 < 2:
                decision_record(
                    user=reviewers[made[0] % len(reviewers)],
                    suggestion_id=suggestion.pk,
                    outcome=DecisionOutcome.REJECTED,
                    reason="Not this time.",
                )

    return issued, reader, add


API_FILTERS = pytest.mark.parametrize(
    "query",
    [
        {},
        {"status": SuggestionStatus.PENDING_REVIEW},
        {"capability": "refunds.issue"},
        {"status": SuggestionStatus.REJECTED, "capability": "content.moderate"},
    ],
    ids=["all", "status", "capability", "status-and-capability"],
)


def api_rows_listed(response: Any) -> int:
    results = ok(response).json()["results"]
    assert all(isinstance(row["decisions"], list) for row in results)
    return len(results)


@API_FILTERS
def test_list_api_costs_a_token_the_same_queries_for_few_and_many_rows(
    api_rows: tuple[IssuedToken, Any, Callable[[int], None]],
    same_queries: Callable[..., int],
    query: dict[str, str],
):
    issued, _reader, add = api_rows
    add(2 * FEW)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")

    same_queries(lambda: api_rows_listed(api.get(API_LIST, query)), lambda: add(4 * FEW))


@API_FILTERS
def test_list_api_costs_a_signed_in_user_the_same_queries_for_few_and_many_rows(
    api_rows: tuple[IssuedToken, Any, Callable[[int], None]],
    same_queries: Callable[..., int],
    query: dict[str, str],
):
    _issued, reader, add = api_rows
    add(2 * FEW)
    api = APIClient()
    api.force_login(reader)

    same_queries(lambda: api_rows_listed(api.get(API_LIST, query)), lambda: add(4 * FEW))


# --- The audit log and its export -------------------------------------------------------------


@pytest.fixture
def audit_rows(db: Any) -> tuple[Any, Callable[[int], None]]:
    """An auditor, and ``add(n)``: n more rounds of events about one suggestion: received,
    claimed by a person, decided, and a policy published elsewhere."""
    auditor = make_auditor()
    subject = Subject("suggestion", "00000000-0000-4000-8000-000000000001")

    def add(n: int) -> None:
        with transaction.atomic():
            for index in range(n):
                for action, actor, about in (
                    (AuditAction.SUGGESTION_RECEIVED, Actor.api_client(1, "client1"), subject),
                    (AuditAction.SUGGESTION_CLAIMED, Actor("user", "7", "Rita"), subject),
                    (AuditAction.DECISION_RECORDED, Actor("user", "7", "Rita"), subject),
                    (AuditAction.POLICY_PUBLISHED, Actor("user", "8", "maya"), None),
                ):
                    audit_event_record(
                        actor=actor,
                        action=action,
                        subject=about or Subject("policy", str(index)),
                        capability="refunds.issue" if about else "content.moderate",
                        data={"index": index, "reason": "Matches the refund policy."},
                    )

    return auditor, add


AUDIT_FILTERS = pytest.mark.parametrize(
    "query",
    [
        {},
        {"capability": "refunds.issue"},
        {"action": AuditAction.DECISION_RECORDED},
        {"suggestion": "00000000-0000-4000-8000-000000000001"},
        {"actor": "rita"},
        {"since": "2000-01-01", "until": "2999-01-01"},
    ],
    ids=["all", "capability", "action", "suggestion", "actor", "time"],
)


@AUDIT_FILTERS
def test_audit_log_costs_the_same_queries_for_few_and_many_events(
    client: Client,
    audit_rows: tuple[Any, Callable[[int], None]],
    same_queries: Callable[..., int],
    query: dict[str, str],
):
    auditor, add = audit_rows
    add(FEW)
    client.force_login(auditor)

    same_queries(
        lambda: len(ok(client.get(AUDIT_LOG, query)).context["page"].rows), lambda: add(2 * FEW)
    )


@pytest.mark.parametrize("direction", ["before", "after"])
def test_a_later_audit_log_page_costs_the_same_queries_for_few_and_many_events(
    client: Client,
    audit_rows: tuple[Any, Callable[[int], None]],
    same_queries: Callable[..., int],
    monkeypatch: pytest.MonkeyPatch,
    direction: str,
):
    # Four events a round: FEW rounds fill part of a page, 3 * FEW rounds more than one.
    monkeypatch.setattr(audit_views, "PAGE_SIZE", 8 * FEW)
    auditor, add = audit_rows
    add(FEW)
    client.force_login(auditor)

    def later_page() -> int:
        # Older than the newest event, or newer than the first: a page with a neighbour to
        # look for, on the side it came from.
        newest = ok(client.get(AUDIT_LOG)).context["head_sequence"]
        cursor = newest if direction == "before" else 1
        return len(ok(client.get(AUDIT_LOG, {direction: cursor})).context["page"].rows)

    same_queries(later_page, lambda: add(2 * FEW))


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_audit_export_costs_the_same_queries_for_few_and_many_events(
    client: Client,
    audit_rows: tuple[Any, Callable[[int], None]],
    same_queries: Callable[..., int],
    fmt: str,
):
    auditor, add = audit_rows
    add(FEW)
    client.force_login(auditor)

    def exported() -> int:
        response = ok(client.get(AUDIT_EXPORT, {"format": fmt, "capability": "refunds.issue"}))
        return len(b"".join(response.streaming_content).decode().splitlines())

    same_queries(exported, lambda: add(2 * FEW))


# --- Pages for managers, administrators and auditors ------------------------------------------


@pytest.fixture
def failed_rows(capability: Capability, api_client_row: ApiClient) -> Callable[[int], None]:
    """``add(n)``: n more approved suggestions whose execution failed for good."""

    def add(n: int) -> None:
        for _ in range(n):
            suggestion = submit(api_client_row, capability, confidence=0.95)
            Suggestion.objects.filter(pk=suggestion.pk).update(
                execution_status=ExecutionStatus.FAILED,
                execution_attempts=5,
                execution_error="HTTP 500 from the handler",
                executed_at=timezone.now(),
                execution_next_attempt_at=None,
            )

    return add


def test_failed_executions_page_costs_the_same_queries_for_few_and_many_rows(
    client: Client,
    manager: Any,
    failed_rows: Callable[[int], None],
    same_queries: Callable[..., int],
):
    failed_rows(FEW)
    client.force_login(manager)

    same_queries(
        lambda: len(ok(client.get(FAILED_EXECUTIONS)).context["page"].object_list),
        lambda: failed_rows(2 * FEW),
    )


def test_retries_page_costs_the_same_queries_for_few_and_many_rows(
    client: Client, same_queries: Callable[..., int]
):
    auditor = make_auditor()
    made: list[ApiClient] = []

    def add(n: int) -> None:
        for _ in range(n):
            capability = cast(Capability, CapabilityFactory())
            client_row = ApiClientFactory.create(capabilities=[capability])
            submit(client_row, capability, attempt=2)
            IdempotencyKey.objects.create(
                client=client_row,
                key=f"key-{len(made)}",
                request_hash="0" * 64,
                state=IdempotencyState.COMPLETED,
                capability_key=capability.key,
                replays=3,
            )
            made.append(client_row)

    add(FEW)
    client.force_login(auditor)

    same_queries(
        lambda: len(ok(client.get(RETRIES)).context["counts"]),
        lambda: add(2 * FEW),
    )


# --- The rule's own check --------------------------------------------------------------------


def test_same_queries_catches_a_query_per_row(same_queries: Callable[..., int], db: Any):
    rows = [1]

    def a_query_per_row() -> int:
        for _ in rows:
            list(ApiClient.objects.all()[:1])
        return len(rows)

    with pytest.raises(pytest.fail.Exception, match="queries"):
        same_queries(a_query_per_row, lambda: rows.extend([2, 3]))
