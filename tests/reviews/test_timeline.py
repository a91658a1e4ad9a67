"""The decision timeline of a suggestion: who may see it, what each step says, and that it
stays one page of constant cost however long the history.
"""

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit.models import AuditAction, AuditEvent
from audit.services import Actor, Subject, audit_event_record
from capabilities import handlers
from capabilities.models import ApiClient, Capability
from reviews.models import DecisionOutcome, Suggestion, SuggestionStatus
from reviews.services import (
    Usage,
    decision_record,
    suggestion_claim,
    suggestion_execute,
    suggestion_release,
)
from reviews.timeline import suggestion_timeline
from tests.factories import UserFactory, submit

pytestmark = pytest.mark.django_db

XSS_SCRIPT = "<script>alert(1)</script>"
ESCAPED_SCRIPT = "&lt;script&gt;alert(1)&lt;/script&gt;"


# --- Helpers ----------------------------------------------------------------------------------


@pytest.fixture
def auditor(db: Any) -> Any:
    user = UserFactory(username="audrey")
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="audit", codename="view_auditevent")
    )
    return user


@pytest.fixture
def outsider(make_reviewer: Callable[..., Any], other_capability: Capability) -> Any:
    return make_reviewer(other_capability, username="otto")


@pytest.fixture
def pending(api_client_row: ApiClient, capability: Capability) -> Suggestion:
    return submit(
        api_client_row,
        capability,
        payload={"amount": "120.00", "currency": "EUR", "order": "A-1"},
        external_id="ticket-8812",
        prompt="Refund order A-1; the customer wrote from jane@example.com.",
        context={"ticket": {"subject": "Broken kettle"}},
        usage=Usage(input_tokens=1200, output_tokens=300, cost=Decimal("0.0042")),
    )


def timeline_url(suggestion: Suggestion) -> str:
    return reverse("reviews:timeline", args=[suggestion.pk])


def page(client: Client, user: Any, suggestion: Suggestion) -> Any:
    client.force_login(user)
    return client.get(timeline_url(suggestion))


def entries_of(response: Any) -> list[Any]:
    return response.context["entries"]


# --- Who may see it ---------------------------------------------------------------------------


def test_anonymous_user_is_sent_to_login(client: Client, pending: Suggestion):
    response = client.get(timeline_url(pending))

    assert response.status_code == 302
    assert response.url == f"{reverse('login')}?next={timeline_url(pending)}"


def test_reviewer_of_the_capability_sees_the_timeline(
    client: Client, reviewer: Any, pending: Suggestion
):
    response = page(client, reviewer, pending)

    assert response.status_code == 200
    assert "ticket-8812" in response.content.decode()


def test_reviewer_of_another_capability_gets_404(
    client: Client, outsider: Any, pending: Suggestion
):
    assert page(client, outsider, pending).status_code == 404


def test_user_without_any_permission_gets_404(client: Client, pending: Suggestion):
    assert page(client, UserFactory(), pending).status_code == 404


def test_unknown_suggestion_is_404(client: Client, auditor: Any, pending: Suggestion):
    client.force_login(auditor)

    response = client.get(
        reverse("reviews:timeline", args=["00000000-0000-0000-0000-000000000000"])
    )

    assert response.status_code == 404


def test_auditor_sees_any_timeline_read_only(client: Client, auditor: Any, pending: Suggestion):
    response = page(client, auditor, pending)

    assert response.status_code == 200
    html = response.content.decode()
    assert "<form" not in html.split('<main id="main"', 1)[1]
    for name in ("approve", "reject", "escalate", "claim", "release", "edit"):
        assert reverse(f"reviews:{name}", args=[pending.pk]) not in html
    assert f"{reverse('audit:log')}?suggestion={pending.pk}" in html


def test_auditor_reads_a_suggestion_but_cannot_claim_or_decide_it(
    client: Client, auditor: Any, pending: Suggestion
):
    client.force_login(auditor)
    events_before = AuditEvent.objects.count()

    review = client.get(reverse("reviews:review", args=[pending.pk]))
    assert review.status_code == 200
    assert not review.context["state"].may_decide
    assert reverse("reviews:approve", args=[pending.pk]) not in review.content.decode()
    for name, data in (
        ("reviews:claim", {}),
        ("reviews:approve", {}),
        ("reviews:reject", {"reason": "No"}),
        ("reviews:escalate", {"reason": "Hm"}),
        ("reviews:edit", {"payload": "{}", "action": "confirm"}),
    ):
        assert client.post(reverse(name, args=[pending.pk]), data).status_code == 404

    pending.refresh_from_db()
    assert pending.status == SuggestionStatus.PENDING_REVIEW
    assert pending.claimed_by_id is None
    assert AuditEvent.objects.count() == events_before


def test_review_page_links_to_the_timeline(client: Client, reviewer: Any, pending: Suggestion):
    client.force_login(reviewer)

    html = client.get(reverse("reviews:review", args=[pending.pk])).content.decode()

    assert f'href="{timeline_url(pending)}"' in html


# --- What it says -----------------------------------------------------------------------------


def test_received_and_routed_entries_tell_what_arrived_and_why_it_went_to_review(
    client: Client, reviewer: Any, pending: Suggestion, api_client_row: ApiClient
):
    response = page(client, reviewer, pending)

    received, routed = entries_of(response)
    events = list(AuditEvent.objects.filter(subject_id=str(pending.pk)).order_by("sequence"))
    assert [received.sequence, routed.sequence] == [e.sequence for e in events]
    assert received.hash_prefix == events[0].hash[:12]

    facts = {fact.label: fact.value for fact in received.facts}
    assert received.headline == f"Received from {api_client_row.name}"
    assert facts["Client"] == api_client_row.name
    assert facts["Model"] == "gpt-4o 2024-08-06 (openai)"
    assert facts["Confidence"] == "0.5"
    assert facts["External id"] == "ticket-8812"
    assert facts["Usage"] == "1200 input tokens, 300 output tokens, cost 0.0042"
    assert facts["Redactions"] == "email: 1"
    passages = {passage.label: passage.text for passage in received.passages}
    assert "jane@example.com" not in passages["Prompt (as stored, redacted)"]
    assert passages["Prompt (as stored, redacted)"] == pending.prompt
    assert '"subject": "Broken kettle"' in passages["Context (as stored, redacted)"]

    facts = {fact.label: fact.value for fact in routed.facts}
    assert routed.headline == "Routed to a person for review"
    assert facts["Status"] == "Pending review"
    assert facts["Why"] == "Confidence between the thresholds: a person decides."
    assert facts["Policy version"] == "1"
    assert facts["Auto-approve at"] == "0.9000"
    assert facts["Auto-reject below"] == "0.3000"

    html = response.content.decode()
    assert f"#{routed.sequence}" in html and routed.hash_prefix in html
    assert "Confidence between the thresholds: a person decides." in html
    assert "email: 1" in html


def test_auto_approved_suggestion_says_the_policy_approved_it(
    client: Client, reviewer: Any, api_client_row: ApiClient, capability: Capability
):
    suggestion = submit(api_client_row, capability, confidence=0.95)

    _received, routed = entries_of(page(client, reviewer, suggestion))

    assert routed.headline == "Approved automatically by the policy"
    assert {f.label: f.value for f in routed.facts}["Why"].startswith(
        "Confidence at or above the auto-approve threshold"
    )


def test_claim_release_and_edited_approval_are_told_with_the_changes_and_the_diff(
    client: Client, reviewer: Any, pending: Suggestion
):
    suggestion_claim(user=reviewer, suggestion_id=pending.pk)
    suggestion_release(user=reviewer, suggestion_id=pending.pk)
    claim = suggestion_claim(user=reviewer, suggestion_id=pending.pk)
    decision_record(
        user=reviewer,
        suggestion_id=pending.pk,
        outcome=DecisionOutcome.APPROVED,
        reason="Only half was damaged",
        final_payload={"amount": "60.00", "currency": "EUR", "order": "A-1", "note": "half"},
    )

    response = page(client, reviewer, pending)

    entries = entries_of(response)
    assert [entry.kind for entry in entries] == [
        "received",
        "routed",
        "claimed",
        "released",
        "claimed",
        "decided-approved",
    ]
    claimed, released, decided = entries[2], entries[3], entries[5]
    assert claimed.headline == "Claimed by rita"
    until = claim.claim_expires_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    assert {f.label: f.value for f in claimed.facts}["Held until"] == until
    assert released.headline.startswith("Released by rita")

    assert decided.headline == "Approved by rita with changes"
    facts = {f.label: f.value for f in decided.facts}
    assert facts["Outcome"] == "Approved"
    assert facts["Reason"] == "Only half was damaged"
    assert facts["Human override"].startswith("yes")
    assert facts["Status"] == "Pending review → Approved"
    assert [(c.path, c.before, c.after) for c in decided.changes] == [
        ("/amount", '"120.00"', '"60.00"'),
        ("/note", "(absent)", '"half"'),
    ]
    assert ("removed", '-  "amount": "120.00",') in decided.diff
    assert ("added", '+  "amount": "60.00",') in decided.diff
    assert ("added", '+  "note": "half",') in decided.diff

    html = response.content.decode()
    assert "diff__line--added" in html and "diff__line--removed" in html
    assert "Only half was damaged" in html


def test_rejection_and_escalation_are_told_with_their_reasons(
    client: Client, reviewer: Any, senior: Any, pending: Suggestion
):
    decision_record(
        user=reviewer, suggestion_id=pending.pk, outcome=DecisionOutcome.ESCALATED, reason="Big"
    )
    decision_record(
        user=senior, suggestion_id=pending.pk, outcome=DecisionOutcome.REJECTED, reason="Fraud"
    )

    escalated, rejected = entries_of(page(client, reviewer, pending))[2:]

    assert escalated.headline == "Escalated by rita"
    assert {f.label: f.value for f in escalated.facts}["Reason"] == "Big"
    assert rejected.headline == "Rejected by sam"
    facts = {f.label: f.value for f in rejected.facts}
    assert facts["Reason"] == "Fraud"
    assert facts["Human override"] == "no"
    assert rejected.diff == [] and rejected.changes == []


def test_execution_success_and_failure_are_told_with_attempt_duration_and_error(
    client: Client,
    reviewer: Any,
    api_client_row: ApiClient,
    capability: Capability,
    pending: Suggestion,
):
    approved = submit(api_client_row, capability, confidence=0.95)
    suggestion_execute(suggestion_id=approved.pk)

    def explode(**kwargs: Any) -> None:
        raise RuntimeError("ledger <down>")

    decision_record(user=reviewer, suggestion_id=pending.pk, outcome=DecisionOutcome.APPROVED)
    handlers.register(capability.key)(explode)
    try:
        suggestion_execute(suggestion_id=pending.pk)
    finally:
        handlers._registry.pop(capability.key)

    executed = entries_of(page(client, reviewer, approved))[-1]
    response = page(client, reviewer, pending)
    failed = entries_of(response)[-1]

    assert executed.kind == "executed"
    facts = {f.label: f.value for f in executed.facts}
    assert facts["Attempt"] == "1"
    assert facts["Duration"].endswith(" ms")
    assert failed.kind == "execution-failed"
    assert failed.headline == "Execution failed"
    assert [(p.label, p.text) for p in failed.passages] == [
        ("Error", "RuntimeError: ledger <down>")
    ]
    assert "RuntimeError: ledger &lt;down&gt;" in response.content.decode()


def test_an_unknown_kind_of_event_is_shown_with_its_label_and_data(
    client: Client, reviewer: Any, pending: Suggestion
):
    with transaction.atomic():
        audit_event_record(
            actor=Actor.system("webhooks"),
            action="webhook.delivered",  # type: ignore[arg-type]
            subject=Subject("suggestion", str(pending.pk)),
            capability=pending.capability.key,
            data={"url": "https://example.invalid/hook", "status": 200},
        )

    response = page(client, reviewer, pending)

    entry = entries_of(response)[-1]
    assert entry.kind == "other"
    assert entry.headline == "Webhook delivered"
    assert entry.actor_label == "webhooks"
    html = response.content.decode()
    assert "Webhook delivered" in html
    assert "&quot;url&quot;: &quot;https://example.invalid/hook&quot;" in html


def test_ai_supplied_content_is_escaped(
    client: Client, reviewer: Any, api_client_row: ApiClient, capability: Capability
):
    suggestion = submit(
        api_client_row,
        capability,
        payload={"amount": XSS_SCRIPT, XSS_SCRIPT: "1"},
        external_id=XSS_SCRIPT,
        prompt=f"Do it {XSS_SCRIPT}",
        context={"note": XSS_SCRIPT},
    )
    decision_record(
        user=reviewer,
        suggestion_id=suggestion.pk,
        outcome=DecisionOutcome.APPROVED,
        reason=XSS_SCRIPT,
        final_payload={"amount": f"{XSS_SCRIPT}!"},
    )

    html = page(client, reviewer, suggestion).content.decode()

    assert XSS_SCRIPT not in html
    # The only scripts are the project's own files that base.html loads.
    own_scripts = f'<script src="{settings.STATIC_URL}[^"]+" defer></script>'
    assert "<script" not in re.sub(own_scripts, "", html)
    assert ESCAPED_SCRIPT in html
    assert f"Do it {ESCAPED_SCRIPT}" in html


def test_page_costs_the_same_queries_for_three_events_as_for_twelve(
    client: Client,
    reviewer: Any,
    pending: Suggestion,
    api_client_row: ApiClient,
    capability: Capability,
):
    short = submit(api_client_row, capability)
    suggestion_claim(user=reviewer, suggestion_id=short.pk)  # 3 events
    for _ in range(4):
        suggestion_claim(user=reviewer, suggestion_id=pending.pk)
        suggestion_release(user=reviewer, suggestion_id=pending.pk)
    suggestion_claim(user=reviewer, suggestion_id=pending.pk)
    decision_record(
        user=reviewer,
        suggestion_id=pending.pk,
        outcome=DecisionOutcome.APPROVED,
        final_payload={"amount": "1.00"},
    )  # 2 + 8 + 1 + 1 = 12 events
    client.force_login(reviewer)
    client.get(timeline_url(short))  # warm the session and permission caches alike

    counts = []
    for suggestion, expected in ((short, 3), (pending, 12)):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(timeline_url(suggestion))
        assert len(response.context["entries"]) == expected
        counts.append(len(queries))

    assert counts[0] == counts[1]


def test_timeline_builds_one_entry_per_event_in_chain_order(reviewer: Any, pending: Suggestion):
    suggestion_claim(user=reviewer, suggestion_id=pending.pk)
    decision_record(user=reviewer, suggestion_id=pending.pk, outcome=DecisionOutcome.APPROVED)

    entries = suggestion_timeline(pending)

    assert [(e.sequence, e.action) for e in entries] == list(
        AuditEvent.objects.filter(subject_type="suggestion", subject_id=str(pending.pk))
        .order_by("sequence")
        .values_list("sequence", "action")
    )
    assert entries[-1].action == AuditAction.DECISION_RECORDED
    assert entries[-1].headline == "Approved by rita"
