"""Deciding: approve (four eyes), edit, reject, escalate, and the rules that refuse."""

import datetime as dt
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import prefetch_related_objects
from django.utils import timezone

from audit.models import AuditAction
from audit.services import Actor, Subject, audit_event_record
from capabilities.schemas import schema_errors
from reviews.diffing import payload_changes
from reviews.models import Decision, DecisionOutcome, Suggestion, SuggestionStatus
from reviews.permissions import (
    SENIOR_LEVEL,
    approvers_of,
    can_decide_suggestion,
    decides_by_role,
    submitted_by,
)
from reviews.services.common import (
    AlreadyDecided,
    ClaimedByOther,
    DecisionRefused,
    after_approval,
    after_final_decision,
    claim_live,
    lock_suggestion,
)
from reviews.services.escalation import sla_deadline


def decision_record(
    *,
    user: Any,
    suggestion_id: Any,
    outcome: DecisionOutcome,
    reason: str = "",
    final_payload: dict[str, Any] | None = None,
) -> Decision:
    """Record ``user``'s decision on an open suggestion.

    ``approved`` with a ``final_payload`` that differs from the proposal is an edit, recorded
    as a human override. ``rejected`` and ``escalated`` need a reason. A rejection closes the
    suggestion; an escalation hands it to those who resolve escalations. An approval closes it
    once as many distinct people as its policy version requires (two for four eyes) have
    approved the same payload; until then it stays open for the next approver, and an edit
    starts the count again.

    The suggestion row is locked first, so of two concurrent decisions the second sees the
    first one's result and is refused with ``AlreadyDecided``; a partial unique index on final
    decisions backs this up. Raises ``DecisionRefused`` (after auditing the refusal) when the
    rules say no to someone their role lets decide it: deciding what one submitted, or
    approving twice (anyone else gets ``PermissionDenied``, unaudited). Raises ``ClaimedByOther``
    while another reviewer holds the item, ``PermissionDenied`` if ``user`` may not decide it,
    and ``ValidationError`` (naming the field) for a missing reason, or an edited payload that
    is not a JSON object or does not satisfy the capability's schema. Nothing else changes
    when it raises.
    """
    reason = reason.strip()
    if outcome in (DecisionOutcome.REJECTED, DecisionOutcome.ESCALATED) and not reason:
        raise ValidationError({"reason": f"A reason is required to mark this {outcome}."})
    if final_payload is not None and (
        outcome != DecisionOutcome.APPROVED or not isinstance(final_payload, dict)
    ):
        raise ValidationError({"final_payload": "An edited payload must be a JSON object."})
    now = timezone.now()
    refusal: str | None = None
    with transaction.atomic():
        suggestion = lock_suggestion(suggestion_id)
        # The rules below (refusals, four eyes, escalations) all read its decisions: once.
        prefetch_related_objects([suggestion], "decisions")
        if not suggestion.is_open:
            status = suggestion.get_status_display().lower()
            raise AlreadyDecided(f"This suggestion was already {status}.")
        proposal = suggestion.proposal
        final = proposal if final_payload is None else final_payload
        refusal = _refusal(user, suggestion, outcome, final)
        if refusal is not None and not decides_by_role(user, suggestion):
            refusal = None  # not theirs to decide at all: check_may_decide says so, unaudited
        if refusal is not None:
            # The refusal is a fact the trail keeps: it commits, then the caller is told.
            audit_event_record(
                actor=Actor.user(user),
                action=AuditAction.DECISION_REFUSED,
                subject=Subject.of(suggestion),
                capability=suggestion.capability.key,
                data={"outcome": outcome, "rule": refusal, "message": REFUSALS[refusal]},
            )
        else:
            check_may_decide(user, suggestion, now)
            if final_payload is not None:
                errors = schema_errors(suggestion.capability.payload_schema, final_payload)
                if errors:
                    raise ValidationError({"final_payload": errors})
            decision = _decide(user, suggestion, outcome, reason, final, now)
    if refusal is not None:
        raise DecisionRefused(REFUSALS[refusal])
    return decision


REFUSALS = {
    "own_submission": "You submitted this suggestion: someone else must decide it.",
    "second_approval_by_same_person": (
        "You already approved this suggestion: its policy needs a second, different person."
    ),
}


def _refusal(user: Any, suggestion: Suggestion, outcome: str, final: Any) -> str | None:
    """Which decision rule, if any, forbids this decision (beyond permissions and claims)."""
    if submitted_by(user, suggestion):
        return "own_submission"
    if outcome == DecisionOutcome.APPROVED and user.pk in approvers_of(suggestion, final):
        return "second_approval_by_same_person"
    return None


def _decide(
    user: Any,
    suggestion: Suggestion,
    outcome: str,
    reason: str,
    final: Any,
    now: dt.datetime,
) -> Decision:
    previous_status = suggestion.status
    decision = Decision(
        suggestion=suggestion,
        reviewer=user,
        outcome=outcome,
        is_final=outcome == DecisionOutcome.REJECTED,
        reason=reason,
        policy=suggestion.policy,
    )
    changes: list[dict[str, Any]] = []
    approvals = 0
    if outcome == DecisionOutcome.APPROVED:
        changes = payload_changes(suggestion.payload, final)
        approvals = len(approvers_of(suggestion, final)) + 1
        decision.final_payload = final
        decision.is_override = bool(changes)
        decision.is_final = approvals >= suggestion.policy.required_approvals
        suggestion.final_payload = final
        if decision.is_final:
            suggestion.status = SuggestionStatus.APPROVED
    elif outcome == DecisionOutcome.REJECTED:
        suggestion.status = SuggestionStatus.REJECTED
    else:
        suggestion.status = SuggestionStatus.ESCALATED
        # Onto the senior reviewers' rung with its own deadline. Passed on from a higher rung,
        # it keeps its clock: re-escalating must not postpone the policy's default.
        if suggestion.escalation_level < SENIOR_LEVEL:
            suggestion.escalation_level = SENIOR_LEVEL
            suggestion.due_at = sla_deadline(suggestion.policy, now)
    if decision.is_final:
        suggestion.decided_at = now
    suggestion.claimed_by = None
    suggestion.claim_expires_at = None
    suggestion.save(
        update_fields=[
            "status",
            "final_payload",
            "decided_at",
            "claimed_by",
            "claim_expires_at",
            "escalation_level",
            "due_at",
        ]
    )
    decision.save()
    data: dict[str, Any] = {
        "decision_id": decision.pk,
        "outcome": outcome,
        "from_status": previous_status,
        "to_status": suggestion.status,
        "reason": reason,
        "is_override": decision.is_override,
        "changes": changes,
        "policy_version": suggestion.policy.version,
    }
    if suggestion.policy.required_approvals > 1 and outcome == DecisionOutcome.APPROVED:
        data["approvals"] = approvals
        data["required_approvals"] = suggestion.policy.required_approvals
    audit_event_record(
        actor=Actor.user(user),
        action=AuditAction.DECISION_RECORDED,
        subject=Subject.of(suggestion),
        capability=suggestion.capability.key,
        data=data,
    )
    if decision.is_final:
        after_final_decision(suggestion)
    if suggestion.status == SuggestionStatus.APPROVED:
        after_approval(suggestion)
    return decision


def check_may_decide(user: Any, suggestion: Suggestion, now: dt.datetime) -> None:
    if not suggestion.is_open:
        status = suggestion.get_status_display().lower()
        raise AlreadyDecided(f"This suggestion was already {status}.")
    if not can_decide_suggestion(user, suggestion):
        raise PermissionDenied("You may not decide this suggestion.")
    if suggestion.claimed_by_id not in (None, user.pk) and claim_live(suggestion, now):
        raise ClaimedByOther(f"{suggestion.claimed_by} is reviewing this suggestion.")
