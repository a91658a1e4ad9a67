"""The whole loop through HTTP, as a system and a reviewer see it: submit over REST at three
confidences, claim, edit and approve in the browser, then read the outcome back over REST."""

import json

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from reviews.models import Decision, ExecutionStatus, Suggestion, SuggestionStatus

pytestmark = pytest.mark.django_db


def post_suggestion(client: Client, token: str, confidence: float, external_id: str) -> dict:
    response = client.post(
        "/api/v1/suggestions/",
        json.dumps(
            {
                "capability": "refunds.issue",
                "external_id": external_id,
                "payload": {"amount": "120.00", "currency": "EUR", "order": "A-1"},
                "confidence": confidence,
                "model": {"name": "gpt-4o", "version": "2024-08-06", "provider": "openai"},
                "prompt": "Refund order A-1 for jane@example.com?",
                "usage": {"input_tokens": 1200, "output_tokens": 300, "cost": "0.0042"},
            }
        ),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.content
    return response.json()


def test_submit_route_claim_edit_approve_and_read_back(
    issued, reviewer, django_capture_on_commit_callbacks
):
    system = Client()
    token = issued.secret
    with django_capture_on_commit_callbacks(execute=True):
        high = post_suggestion(system, token, 0.95, "ticket-1")
    middle = post_suggestion(system, token, 0.50, "ticket-2")
    low = post_suggestion(system, token, 0.10, "ticket-3")
    assert [s["status"] for s in (high, middle, low)] == [
        "auto_approved",
        "pending_review",
        "auto_rejected",
    ]
    assert {s["route"]["policy_version"] for s in (high, middle, low)} == {1}

    browser = Client()
    browser.force_login(reviewer)
    queue = browser.get(reverse("reviews:queue"))
    assert queue.status_code == 200
    assert "ticket-2" in queue.text and "ticket-1" not in queue.text

    claimed = browser.post(reverse("reviews:claim_next"))
    review_url = reverse("reviews:review", args=[middle["id"]])
    assert claimed.status_code == 302 and claimed.url == review_url
    page = browser.get(review_url)
    assert "jane@example.com" not in page.text  # redacted before it was stored

    edit_url = reverse("reviews:edit", args=[middle["id"]])
    edited = {"amount": "100.00", "currency": "EUR", "order": "A-1"}
    preview = browser.post(edit_url, {"payload": json.dumps(edited), "action": "preview"})
    assert preview.status_code == 200
    assert Suggestion.objects.get(pk=middle["id"]).status == SuggestionStatus.PENDING_REVIEW
    with django_capture_on_commit_callbacks(execute=True):
        confirmed = browser.post(
            edit_url,
            {
                "payload": json.dumps(edited),
                "action": "confirm",
                "previewed": preview.context["previewed"],
                "reason": "Shipping is not refundable",
            },
        )
    assert confirmed.status_code == 302

    suggestion = Suggestion.objects.get(pk=middle["id"])
    assert suggestion.status == SuggestionStatus.APPROVED
    assert suggestion.final_payload == edited
    assert suggestion.execution_status == ExecutionStatus.SUCCEEDED
    decision = Decision.objects.get(suggestion=suggestion)
    assert (decision.reviewer, decision.outcome, decision.is_override) == (
        reviewer,
        "approved",
        True,
    )
    assert list(
        AuditEvent.objects.filter(subject_id=middle["id"])
        .order_by("sequence")
        .values_list("action", "actor_label")
    ) == [
        ("suggestion.received", issued.token.client.name),
        ("suggestion.routed", "policy"),
        ("suggestion.claimed", reviewer.username),
        ("decision.recorded", reviewer.username),
        ("execution.succeeded", "executor"),
    ]
    recorded = AuditEvent.objects.get(subject_id=middle["id"], action="decision.recorded")
    assert recorded.data["changes"] == [{"path": "/amount", "before": "120.00", "after": "100.00"}]

    answer = system.get(
        f"/api/v1/suggestions/{middle['id']}/", headers={"Authorization": f"Bearer {token}"}
    ).json()
    assert answer["status"] == "approved"
    assert answer["final_payload"] == edited
    assert answer["decisions"][0]["reviewer"] == reviewer.username
    assert answer["decisions"][0]["is_override"] is True
    assert answer["execution"]["status"] == "succeeded"

    high_row = Suggestion.objects.get(pk=high["id"])
    assert high_row.execution_status == ExecutionStatus.SUCCEEDED
    assert Suggestion.objects.get(pk=low["id"]).execution_status == ExecutionStatus.NOT_STARTED
