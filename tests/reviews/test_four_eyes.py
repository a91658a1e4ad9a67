"""Decision rules beyond permissions: four eyes, and nobody decides what they submitted."""

from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from audit.models import AuditEvent
from capabilities.services import policy_publish
from reviews.models import Decision, ExecutionStatus, SuggestionStatus
from reviews.selectors import queue_counts, suggestion_queue
from reviews.services import DecisionRefused, decision_record, suggestion_claim_next
from tests.factories import submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def four_eyes(capability, manager):
    policy_publish(
        capability=capability,
        auto_approve_at=Decimal("0.90"),
        auto_reject_below=Decimal("0.30"),
        required_approvals=2,
        note="Refunds need two approvers",
        user=manager,
    )
    return capability


def refusals(suggestion):
    return list(AuditEvent.objects.filter(subject_id=str(suggestion.pk), action="decision.refused"))


def test_four_eyes_needs_two_distinct_approvers(
    four_eyes, api_client_row, make_reviewer, django_capture_on_commit_callbacks
):
    rita, sam = make_reviewer(four_eyes, username="rita"), make_reviewer(four_eyes, username="sam")
    suggestion = submit(api_client_row, four_eyes)
    assert suggestion.policy.required_approvals == 2

    first = decision_record(user=rita, suggestion_id=suggestion.pk, outcome="approved")
    suggestion.refresh_from_db()
    assert not first.is_final
    assert suggestion.status == SuggestionStatus.PENDING_REVIEW
    assert suggestion.execution_status == ExecutionStatus.NOT_STARTED
    assert suggestion not in suggestion_queue(user=rita)  # rita waits for someone else
    assert suggestion in suggestion_queue(user=sam)

    with django_capture_on_commit_callbacks(execute=True):
        second = decision_record(user=sam, suggestion_id=suggestion.pk, outcome="approved")
    suggestion.refresh_from_db()
    assert second.is_final
    assert suggestion.status == SuggestionStatus.APPROVED
    assert suggestion.execution_status == ExecutionStatus.SUCCEEDED
    recorded = AuditEvent.objects.filter(
        subject_id=str(suggestion.pk), action="decision.recorded"
    ).order_by("sequence")
    assert [(e.actor_label, e.data["approvals"], e.data["to_status"]) for e in recorded] == [
        ("rita", 1, "pending_review"),
        ("sam", 2, "approved"),
    ]


def test_a_second_approval_by_the_same_person_is_refused_and_audited(
    four_eyes, api_client_row, reviewer
):
    suggestion = submit(api_client_row, four_eyes)
    decision_record(user=reviewer, suggestion_id=suggestion.pk, outcome="approved")
    with pytest.raises(DecisionRefused, match="already approved"):
        decision_record(user=reviewer, suggestion_id=suggestion.pk, outcome="approved")
    suggestion.refresh_from_db()
    assert suggestion.status == SuggestionStatus.PENDING_REVIEW
    assert Decision.objects.filter(suggestion=suggestion).count() == 1
    (refusal,) = refusals(suggestion)
    assert refusal.actor_label == reviewer.username
    assert refusal.data["rule"] == "second_approval_by_same_person"


def test_an_edit_during_four_eyes_needs_another_persons_approval(
    four_eyes, api_client_row, make_reviewer
):
    rita, sam = make_reviewer(four_eyes, username="rita"), make_reviewer(four_eyes, username="sam")
    suggestion = submit(api_client_row, four_eyes, payload={"amount": "120.00"})
    decision_record(user=rita, suggestion_id=suggestion.pk, outcome="approved")
    # Sam changes what rita approved: his approval starts the count again.
    edited = decision_record(
        user=sam,
        suggestion_id=suggestion.pk,
        outcome="approved",
        final_payload={"amount": "100.00"},
    )
    assert not edited.is_final and edited.is_override
    suggestion.refresh_from_db()
    assert suggestion.proposal == {"amount": "100.00"}
    final = decision_record(user=rita, suggestion_id=suggestion.pk, outcome="approved")
    assert final.is_final
    suggestion.refresh_from_db()
    assert suggestion.final_payload == {"amount": "100.00"}


def test_one_approval_then_a_rejection_closes_it(four_eyes, api_client_row, make_reviewer):
    rita, sam = make_reviewer(four_eyes), make_reviewer(four_eyes)
    suggestion = submit(api_client_row, four_eyes)
    decision_record(user=rita, suggestion_id=suggestion.pk, outcome="approved")
    decision_record(user=sam, suggestion_id=suggestion.pk, outcome="rejected", reason="No")
    suggestion.refresh_from_db()
    assert suggestion.status == SuggestionStatus.REJECTED
    assert suggestion.execution_status == ExecutionStatus.NOT_STARTED


def test_nobody_decides_what_they_submitted_and_the_refusal_is_audited(
    capability, make_reviewer, issued
):
    rita = make_reviewer(capability, username="rita")
    client = issued.token.client
    client.user = rita  # rita's own script submits through this client
    client.save()
    suggestion = submit(client, capability)
    assert suggestion not in suggestion_queue(user=rita)
    assert queue_counts(user=rita) == []
    assert suggestion_claim_next(user=rita) is None
    for outcome, reason in (("approved", ""), ("rejected", "Typo"), ("escalated", "Unsure")):
        with pytest.raises(DecisionRefused, match="You submitted this suggestion"):
            decision_record(user=rita, suggestion_id=suggestion.pk, outcome=outcome, reason=reason)
    assert [e.data["rule"] for e in refusals(suggestion)] == ["own_submission"] * 3
    assert not Decision.objects.filter(suggestion=suggestion).exists()
    other = make_reviewer(capability)
    assert decision_record(user=other, suggestion_id=suggestion.pk, outcome="approved").is_final


def test_someone_without_a_role_is_not_allowed_even_on_their_own_submission(
    capability, issued, manager
):
    client = issued.token.client
    client.user = manager  # manages the capability, does not review it
    client.save()
    suggestion = submit(client, capability)

    with pytest.raises(PermissionDenied, match="You may not decide this suggestion"):
        decision_record(user=manager, suggestion_id=suggestion.pk, outcome="approved")

    # Not a refusal by the rules, which would be audited and say why: they may not decide it.
    assert refusals(suggestion) == []
    assert not Decision.objects.filter(suggestion=suggestion).exists()


def test_a_manager_cannot_approve_just_by_being_a_manager(capability, api_client_row, manager):
    suggestion = submit(api_client_row, capability)
    assert suggestion not in suggestion_queue(user=manager)
    with pytest.raises(PermissionDenied):
        decision_record(user=manager, suggestion_id=suggestion.pk, outcome="approved")


def test_the_review_page_shows_progress_and_refuses_a_second_approval_with_a_message(
    client, four_eyes, api_client_row, reviewer
):
    suggestion = submit(api_client_row, four_eyes)
    client.force_login(reviewer)
    client.post(reverse("reviews:approve", args=[suggestion.pk]))
    page = client.get(reverse("reviews:review", args=[suggestion.pk]))
    assert "1 of 2 approvals" in page.text and "rita" in page.text
    assert "needs a second, different person" in page.text

    again = client.post(reverse("reviews:approve", args=[suggestion.pk]), follow=True)
    assert again.status_code == 200
    assert "already approved" in again.text
    assert len(refusals(suggestion)) == 1
