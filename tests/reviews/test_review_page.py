"""The review page's aids to a decision: how identical proposals were decided before, the
deadline at the current rung of the ladder, and what the confidence means under the policy.

Access to the page itself (anonymous, no permission, another capability) is covered in
``test_views.py``; these add nothing to who may see it.
"""

import datetime as dt
import hashlib
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.chain import canonical_json
from capabilities.models import ApiClient, Capability
from reviews.models import DecisionOutcome, Suggestion
from reviews.selectors import similar_decisions
from reviews.services import decision_record
from tests.factories import ApiClientFactory, submit

pytestmark = pytest.mark.django_db

PAYLOAD = {"amount": "120.00", "currency": "EUR", "order": "A-1"}


def page(client: Client, user: Any, suggestion: Suggestion) -> str:
    client.force_login(user)
    response = client.get(reverse("reviews:review", args=[suggestion.pk]))
    assert response.status_code == 200
    return response.content.decode()


def reject(user: Any, suggestion: Suggestion, reason: str = "Not this time") -> None:
    decision_record(
        user=user, suggestion_id=suggestion.pk, outcome=DecisionOutcome.REJECTED, reason=reason
    )


# --- Fingerprint ------------------------------------------------------------------------------


def test_submission_sets_the_fingerprint_of_the_canonical_payload(
    api_client_row: ApiClient, capability: Capability
):
    suggestion = submit(api_client_row, capability, payload=PAYLOAD)
    reordered = submit(api_client_row, capability, payload=dict(reversed(PAYLOAD.items())))
    other = submit(api_client_row, capability, payload={**PAYLOAD, "amount": "121.00"})

    expected = hashlib.sha256(canonical_json(PAYLOAD).encode()).hexdigest()
    suggestion.refresh_from_db()
    assert suggestion.fingerprint == expected
    assert reordered.fingerprint == expected
    assert other.fingerprint != expected


# --- Similar earlier decisions ----------------------------------------------------------------


def test_similar_decisions_lists_earlier_decided_identical_proposals_newest_first(
    client: Client,
    reviewer: Any,
    api_client_row: ApiClient,
    capability: Capability,
    other_capability: Capability,
):
    rejected = submit(api_client_row, capability, payload=PAYLOAD)
    reject(reviewer, rejected, reason="Order already refunded")
    edited = submit(api_client_row, capability, payload=PAYLOAD)
    decision_record(
        user=reviewer,
        suggestion_id=edited.pk,
        outcome=DecisionOutcome.APPROVED,
        reason="Partial refund",
        final_payload={**PAYLOAD, "amount": "60.00"},
    )
    auto_rejected = submit(api_client_row, capability, payload=PAYLOAD, confidence=0.1)
    # Not similar: another capability, another payload, still open.
    other_client = ApiClientFactory.create(capabilities=[other_capability])
    submit(other_client, other_capability, payload=PAYLOAD, confidence=0.95)
    submit(api_client_row, capability, payload={**PAYLOAD, "order": "A-2"}, confidence=0.1)
    submit(api_client_row, capability, payload=PAYLOAD)
    current = submit(api_client_row, capability, payload=PAYLOAD)

    similar = similar_decisions(current)

    assert [item.suggestion.pk for item in similar] == [auto_rejected.pk, edited.pk, rejected.pk]
    policy_rejection, override, rejection = similar
    assert (policy_rejection.outcome, policy_rejection.reviewer) == ("Rejected", None)
    assert (override.outcome, override.reviewer, override.is_override) == (
        "Approved",
        reviewer,
        True,
    )
    assert (rejection.outcome, rejection.reason, rejection.is_override) == (
        "Rejected",
        "Order already refunded",
        False,
    )
    assert rejection.decided_at is not None
    assert [item.suggestion.pk for item in similar_decisions(current, limit=2)] == [
        auto_rejected.pk,
        edited.pk,
    ]

    html = page(client, reviewer, current)
    assert "Similar earlier decisions" in html
    assert "Order already refunded" in html
    assert "Partial refund" in html
    assert "No earlier decision on this exact proposal" not in html


def test_similar_decisions_leave_out_the_suggestion_itself(
    reviewer: Any, api_client_row: ApiClient, capability: Capability
):
    earlier = submit(api_client_row, capability, payload=PAYLOAD)
    reject(reviewer, earlier)
    current = submit(api_client_row, capability, payload=PAYLOAD)
    reject(reviewer, current)
    current.refresh_from_db()

    assert [item.suggestion.pk for item in similar_decisions(current)] == [earlier.pk]
    assert similar_decisions(earlier) == []


def test_review_page_says_when_no_identical_proposal_was_decided(
    client: Client, reviewer: Any, api_client_row: ApiClient, capability: Capability
):
    submit(api_client_row, capability, payload=PAYLOAD)  # identical but still open
    current = submit(api_client_row, capability, payload=PAYLOAD)

    html = page(client, reviewer, current)

    assert 'id="similar-decisions"' in html
    assert "No earlier decision on this exact proposal." in html


def test_review_page_query_count_does_not_grow_with_similar_decisions(
    client: Client, reviewer: Any, api_client_row: ApiClient, capability: Capability
):
    def queries_for(suggestion: Suggestion) -> int:
        client.force_login(reviewer)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(reverse("reviews:review", args=[suggestion.pk]))
        assert response.status_code == 200
        return len(queries)

    reject(reviewer, submit(api_client_row, capability, payload=PAYLOAD))
    with_one = queries_for(submit(api_client_row, capability, payload=PAYLOAD))
    for _ in range(4):
        reject(reviewer, submit(api_client_row, capability, payload=PAYLOAD))
    current = submit(api_client_row, capability, payload=PAYLOAD)
    assert len(similar_decisions(current)) == 5

    assert queries_for(current) == with_one


# --- SLA clock --------------------------------------------------------------------------------


def test_review_page_shows_time_left_at_the_current_rung(
    client: Client, reviewer: Any, api_client_row: ApiClient, capability: Capability
):
    suggestion = submit(api_client_row, capability)
    Suggestion.objects.filter(pk=suggestion.pk).update(
        due_at=timezone.now() + dt.timedelta(minutes=12)
    )

    html = page(client, reviewer, suggestion)

    assert 'id="sla-clock"' in html
    assert "Due in 12 min" in html
    assert "at the reviewers rung" in html


def test_review_page_shows_how_long_an_item_is_overdue(
    client: Client, senior: Any, api_client_row: ApiClient, capability: Capability
):
    suggestion = submit(api_client_row, capability)
    Suggestion.objects.filter(pk=suggestion.pk).update(
        status="escalated", escalation_level=1, due_at=timezone.now() - dt.timedelta(minutes=3)
    )

    html = page(client, senior, suggestion)

    assert "Overdue by 3 min" in html
    assert "at the senior reviewers rung" in html


def test_review_page_shows_no_clock_without_a_deadline(
    client: Client, reviewer: Any, api_client_row: ApiClient, capability: Capability
):
    suggestion = submit(api_client_row, capability)
    assert suggestion.due_at is None

    html = page(client, reviewer, suggestion)

    assert 'id="sla-clock"' not in html
    assert "Due in" not in html
    assert "Overdue by" not in html


# --- Confidence -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("confidence", "meaning"),
    [
        (0.43, "0.43 — between auto-reject below 0.30 and auto-approve at 0.90: a person decides"),
        (0.95, "0.95 — at or above auto-approve at 0.90: approved without review"),
        (0.12, "0.12 — below auto-reject at 0.30: rejected without review"),
    ],
)
def test_review_page_explains_the_confidence_under_the_routing_policy(
    client: Client,
    reviewer: Any,
    api_client_row: ApiClient,
    capability: Capability,
    confidence: float,
    meaning: str,
):
    suggestion = submit(api_client_row, capability, confidence=confidence)

    assert meaning in page(client, reviewer, suggestion)
