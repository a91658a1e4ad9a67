import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from audit.models import AuditEvent
from capabilities import handlers
from reviews.models import Decision, DecisionOutcome, ExecutionStatus, Suggestion, SuggestionStatus
from reviews.services import (
    AlreadyDecided,
    ClaimedByOther,
    decision_record,
    suggestion_claim,
    suggestion_claim_next,
    suggestion_execute,
    suggestion_release,
)
from tests.factories import submit

pytestmark = pytest.mark.django_db


def actions_for(suggestion: Suggestion) -> list[str]:
    return list(
        AuditEvent.objects.filter(subject_type="suggestion", subject_id=str(suggestion.pk))
        .order_by("sequence")
        .values_list("action", flat=True)
    )


def last_event(suggestion: Suggestion) -> AuditEvent:
    return AuditEvent.objects.filter(subject_id=str(suggestion.pk)).order_by("sequence").last()


# --- Submission -------------------------------------------------------------------------------


def test_pending_submission_records_received_and_routed(capability, api_client_row):
    suggestion = submit(api_client_row, capability, confidence=0.5, external_id="ticket-1")
    assert suggestion.status == SuggestionStatus.PENDING_REVIEW
    assert suggestion.policy.version == 1
    assert actions_for(suggestion) == ["suggestion.received", "suggestion.routed"]
    received, routed = AuditEvent.objects.filter(subject_id=str(suggestion.pk)).order_by("sequence")
    assert received.actor_type == "api_client" and received.actor_label == api_client_row.name
    assert received.data["external_id"] == "ticket-1"
    assert routed.data == {
        "status": "pending_review",
        "reason": "confidence_between_thresholds",
        "policy_version": 1,
        "auto_approve_at": "0.9000",
        "auto_reject_below": "0.3000",
        "confidence": "0.5",
    }
    assert not suggestion.decisions.exists()


def test_auto_approved_submission_is_decided_by_the_policy_and_executed_once(
    capability, api_client_row, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        suggestion = submit(api_client_row, capability, confidence=0.95)
    assert len(callbacks) == 1
    suggestion.refresh_from_db()
    assert suggestion.status == SuggestionStatus.AUTO_APPROVED
    assert suggestion.final_payload == suggestion.payload
    decision = suggestion.decisions.get()
    assert (decision.outcome, decision.reviewer, decision.is_final) == ("approved", None, True)
    assert suggestion.execution_status == ExecutionStatus.SUCCEEDED
    assert actions_for(suggestion) == [
        "suggestion.received",
        "suggestion.routed",
        "execution.succeeded",
    ]


def test_auto_rejected_submission_is_not_executed(capability, api_client_row):
    suggestion = submit(api_client_row, capability, confidence=0.1)
    suggestion.refresh_from_db()
    assert suggestion.status == SuggestionStatus.AUTO_REJECTED
    assert suggestion.execution_status == ExecutionStatus.NOT_STARTED
    assert suggestion.decisions.get().outcome == DecisionOutcome.REJECTED


def test_submission_outside_the_clients_scope_is_refused_and_stores_nothing(
    capability, other_capability, api_client_row
):
    with pytest.raises(PermissionDenied):
        submit(api_client_row, other_capability)
    assert not Suggestion.objects.exists()


def test_prompt_and_context_are_redacted_before_storage(capability, api_client_row):
    suggestion = submit(
        api_client_row,
        capability,
        prompt="Customer jane.doe@example.com paid with 4111 1111 1111 1111",
        context={"customer": {"email": "x@y.io", "password": "hunter2"}, "order": "A-1"},
    )
    suggestion.refresh_from_db()
    assert suggestion.prompt == "Customer [REDACTED:email] paid with [REDACTED:card]"
    assert suggestion.context == {
        "customer": {"email": "[REDACTED:email]", "password": "[REDACTED:key]"},
        "order": "A-1",
    }
    received = AuditEvent.objects.get(subject_id=str(suggestion.pk), action="suggestion.received")
    assert received.data["redactions"] == {"email": 2, "card": 1, "key": 1}
    assert "jane.doe" not in str(received.data)


# --- Claiming ---------------------------------------------------------------------------------


def test_claim_next_takes_the_oldest_waiting_item(capability, api_client_row, reviewer):
    first = submit(api_client_row, capability)
    submit(api_client_row, capability)
    claimed = suggestion_claim_next(user=reviewer)
    assert claimed.pk == first.pk
    assert claimed.claimed_by == reviewer
    assert actions_for(first)[-1] == "suggestion.claimed"
    event = AuditEvent.objects.get(subject_id=str(first.pk), action="suggestion.claimed")
    assert (event.capability, event.actor_label) == (capability.key, reviewer.username)


def test_claim_next_takes_the_soonest_deadline_first_as_the_queue_shows(
    capability, api_client_row, make_reviewer
):
    oldest, older, newer = (submit(api_client_row, capability) for _ in range(3))
    soon = timezone.now() + dt.timedelta(minutes=5)
    Suggestion.objects.filter(pk=newer.pk).update(due_at=soon + dt.timedelta(hours=1))
    Suggestion.objects.filter(pk=older.pk).update(due_at=soon)
    taken = [suggestion_claim_next(user=make_reviewer(capability)).pk for _ in range(3)]
    assert taken == [older.pk, newer.pk, oldest.pk]  # by deadline; none comes last


def test_claim_next_takes_the_first_item_across_all_the_reviewers_capabilities(
    capability, other_capability, api_client_row, make_reviewer
):
    api_client_row.capabilities.add(other_capability)
    later = [submit(api_client_row, capability) for _ in range(3)]
    first = submit(api_client_row, other_capability)
    Suggestion.objects.filter(pk=first.pk).update(due_at=timezone.now() + dt.timedelta(hours=1))
    both = [make_reviewer(capability, other_capability) for _ in range(4)]
    taken = [suggestion_claim_next(user=reviewer).pk for reviewer in both]
    assert taken == [first.pk, *(s.pk for s in later)]


def test_claim_next_returns_the_item_already_held(capability, api_client_row, reviewer):
    submit(api_client_row, capability)
    submit(api_client_row, capability)
    held = suggestion_claim_next(user=reviewer)
    assert suggestion_claim_next(user=reviewer).pk == held.pk
    assert AuditEvent.objects.filter(action="suggestion.claimed").count() == 1


def test_claim_next_skips_items_held_by_others(capability, api_client_row, make_reviewer):
    first, second = submit(api_client_row, capability), submit(api_client_row, capability)
    rita, sam = make_reviewer(capability), make_reviewer(capability)
    assert suggestion_claim_next(user=rita).pk == first.pk
    assert suggestion_claim_next(user=sam).pk == second.pk
    assert suggestion_claim_next(user=make_reviewer(capability)) is None


def test_an_expired_claim_can_be_taken_over(capability, api_client_row, make_reviewer):
    suggestion = submit(api_client_row, capability)
    rita, sam = make_reviewer(capability), make_reviewer(capability)
    suggestion_claim_next(user=rita)
    Suggestion.objects.filter(pk=suggestion.pk).update(
        claim_expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    assert suggestion_claim_next(user=sam).pk == suggestion.pk


def test_claim_next_offers_nothing_from_capabilities_the_user_cannot_review(
    capability, other_capability, api_client_row, make_reviewer
):
    submit(api_client_row, capability)
    assert suggestion_claim_next(user=make_reviewer(other_capability)) is None


def test_claiming_an_item_held_by_another_is_refused(capability, api_client_row, make_reviewer):
    suggestion = submit(api_client_row, capability)
    rita, sam = make_reviewer(capability), make_reviewer(capability, username="sam")
    suggestion_claim(user=rita, suggestion_id=suggestion.pk)
    with pytest.raises(ClaimedByOther):
        suggestion_claim(user=sam, suggestion_id=suggestion.pk)


def test_release_returns_the_item_to_the_queue(capability, api_client_row, reviewer):
    suggestion = submit(api_client_row, capability)
    suggestion_claim(user=reviewer, suggestion_id=suggestion.pk)
    released = suggestion_release(user=reviewer, suggestion_id=suggestion.pk)
    assert released.claimed_by is None
    assert actions_for(suggestion)[-2:] == ["suggestion.claimed", "suggestion.released"]


# --- Deciding ---------------------------------------------------------------------------------


def test_approval_closes_the_item_and_runs_the_handler_after_commit(
    capability, api_client_row, reviewer, django_capture_on_commit_callbacks
):
    suggestion = submit(api_client_row, capability)
    with django_capture_on_commit_callbacks(execute=True):
        decision = decision_record(
            user=reviewer, suggestion_id=suggestion.pk, outcome=DecisionOutcome.APPROVED
        )
    suggestion.refresh_from_db()
    assert suggestion.status == SuggestionStatus.APPROVED
    assert suggestion.final_payload == suggestion.payload
    assert not decision.is_override and decision.is_final
    assert suggestion.execution_status == ExecutionStatus.SUCCEEDED
    assert actions_for(suggestion)[2:] == ["decision.recorded", "execution.succeeded"]


def test_an_edited_approval_is_recorded_as_a_human_override(capability, api_client_row, reviewer):
    suggestion = submit(api_client_row, capability, payload={"amount": "120.00", "order": "A-1"})
    decision = decision_record(
        user=reviewer,
        suggestion_id=suggestion.pk,
        outcome=DecisionOutcome.APPROVED,
        final_payload={"amount": "100.00", "order": "A-1", "note": "partial"},
    )
    suggestion.refresh_from_db()
    assert decision.is_override
    assert suggestion.is_override
    assert suggestion.payload == {"amount": "120.00", "order": "A-1"}
    assert suggestion.final_payload["amount"] == "100.00"
    event = AuditEvent.objects.get(subject_id=str(suggestion.pk), action="decision.recorded")
    assert event.actor_label == reviewer.username
    assert event.data["is_override"] is True
    assert event.data["changes"] == [
        {"path": "/amount", "before": "120.00", "after": "100.00"},
        {"path": "/note", "after": "partial"},
    ]


@pytest.mark.parametrize("outcome", [DecisionOutcome.REJECTED, DecisionOutcome.ESCALATED])
def test_reject_and_escalate_need_a_reason(capability, api_client_row, reviewer, outcome):
    suggestion = submit(api_client_row, capability)
    with pytest.raises(ValidationError) as error:
        decision_record(user=reviewer, suggestion_id=suggestion.pk, outcome=outcome, reason="  ")
    assert "reason" in error.value.message_dict
    suggestion.refresh_from_db()
    assert suggestion.status == SuggestionStatus.PENDING_REVIEW
    assert actions_for(suggestion) == ["suggestion.received", "suggestion.routed"]


def test_a_decided_item_cannot_be_decided_again(capability, api_client_row, reviewer):
    suggestion = submit(api_client_row, capability)
    decision_record(user=reviewer, suggestion_id=suggestion.pk, outcome=DecisionOutcome.APPROVED)
    with pytest.raises(AlreadyDecided):
        decision_record(
            user=reviewer, suggestion_id=suggestion.pk, outcome=DecisionOutcome.REJECTED, reason="x"
        )
    assert Decision.objects.filter(suggestion=suggestion).count() == 1


def test_an_item_held_by_another_reviewer_cannot_be_decided(
    capability, api_client_row, make_reviewer
):
    suggestion = submit(api_client_row, capability)
    rita, sam = make_reviewer(capability), make_reviewer(capability)
    suggestion_claim(user=rita, suggestion_id=suggestion.pk)
    with pytest.raises(ClaimedByOther):
        decision_record(user=sam, suggestion_id=suggestion.pk, outcome=DecisionOutcome.APPROVED)
    assert not Decision.objects.filter(suggestion=suggestion).exists()


def test_a_user_without_review_permission_cannot_decide(
    capability, other_capability, api_client_row, make_reviewer
):
    suggestion = submit(api_client_row, capability)
    with pytest.raises(PermissionDenied):
        decision_record(
            user=make_reviewer(other_capability),
            suggestion_id=suggestion.pk,
            outcome=DecisionOutcome.APPROVED,
        )


def test_an_escalated_item_goes_to_a_senior_but_not_back_to_the_escalator(
    capability, api_client_row, reviewer, make_reviewer
):
    suggestion = submit(api_client_row, capability)
    decision = decision_record(
        user=reviewer,
        suggestion_id=suggestion.pk,
        outcome=DecisionOutcome.ESCALATED,
        reason="Amount above my limit",
    )
    assert not decision.is_final
    suggestion.refresh_from_db()
    assert suggestion.status == SuggestionStatus.ESCALATED
    assert suggestion.decided_at is None
    assert suggestion_claim_next(user=reviewer) is None
    with pytest.raises(PermissionDenied):
        decision_record(user=reviewer, suggestion_id=suggestion.pk, outcome="approved")

    # A senior who escalated it themselves may not resolve it either.
    senior_escalator = make_reviewer(capability, senior=True)
    other = submit(api_client_row, capability)
    decision_record(
        user=senior_escalator,
        suggestion_id=other.pk,
        outcome="escalated",
        reason="Need a second look",
    )
    assert suggestion_claim_next(user=senior_escalator).pk == suggestion.pk

    resolved = decision_record(
        user=senior_escalator,
        suggestion_id=suggestion.pk,
        outcome=DecisionOutcome.REJECTED,
        reason="Duplicate refund",
    )
    assert resolved.is_final
    suggestion.refresh_from_db()
    assert suggestion.status == SuggestionStatus.REJECTED


# --- Execution --------------------------------------------------------------------------------


def test_execution_runs_the_handler_once_however_often_it_is_asked(
    capability, api_client_row, reviewer
):
    calls = []
    handlers.register(capability.key)(lambda **kwargs: calls.append(kwargs) or {"refund": "R-1"})
    try:
        suggestion = submit(api_client_row, capability, payload={"amount": "5.00"})
        decision_record(
            user=reviewer,
            suggestion_id=suggestion.pk,
            outcome="approved",
            final_payload={"amount": "4.00"},
        )
        suggestion_execute(suggestion_id=suggestion.pk)
        suggestion_execute(suggestion_id=suggestion.pk)
    finally:
        handlers._registry.pop(capability.key)
    assert calls == [
        {
            "capability": capability.key,
            "suggestion_id": str(suggestion.pk),
            "payload": {"amount": "4.00"},
        }
    ]
    suggestion.refresh_from_db()
    assert suggestion.execution_result == {"refund": "R-1"}
    assert suggestion.execution_attempts == 1


def test_a_failing_handler_is_recorded_not_lost(
    capability, api_client_row, reviewer, django_capture_on_commit_callbacks
):
    def explode(**kwargs):
        raise ConnectionError("payments API unreachable")

    handlers.register(capability.key)(explode)
    try:
        suggestion = submit(api_client_row, capability)
        with django_capture_on_commit_callbacks(execute=True):
            decision_record(user=reviewer, suggestion_id=suggestion.pk, outcome="approved")
    finally:
        handlers._registry.pop(capability.key)
    suggestion.refresh_from_db()
    assert suggestion.execution_status == ExecutionStatus.FAILED
    assert suggestion.execution_error == "ConnectionError: payments API unreachable"
    event = last_event(suggestion)
    assert event.action == "execution.failed"
    assert event.data["error"] == "ConnectionError: payments API unreachable"


def test_a_rejected_item_is_never_executed(capability, api_client_row, reviewer):
    suggestion = submit(api_client_row, capability)
    decision_record(user=reviewer, suggestion_id=suggestion.pk, outcome="rejected", reason="No")
    suggestion_execute(suggestion_id=suggestion.pk)
    suggestion.refresh_from_db()
    assert suggestion.execution_status == ExecutionStatus.NOT_STARTED


def test_a_handler_error_is_redacted_before_it_is_stored_and_audited(
    capability, api_client_row, reviewer, django_capture_on_commit_callbacks
):
    def leak(**kwargs):
        raise ValueError("refund refused for jane.doe@example.com with Bearer abcdefgh12345678")

    handlers.register(capability.key)(leak)
    try:
        suggestion = submit(api_client_row, capability)
        with django_capture_on_commit_callbacks(execute=True):
            decision_record(user=reviewer, suggestion_id=suggestion.pk, outcome="approved")
    finally:
        handlers._registry.pop(capability.key)
    suggestion.refresh_from_db()
    assert suggestion.execution_error == (
        "ValueError: refund refused for [REDACTED:email] with [REDACTED:bearer]"
    )
    assert "jane.doe" not in str(last_event(suggestion).data)
