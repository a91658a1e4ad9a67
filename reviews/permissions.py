"""Who may decide a suggestion: the suggestion-level rules, on top of the capability-level
predicates in ``capabilities.permissions``. Pages and services both ask here."""

from typing import Any

from capabilities.permissions import can_resolve_escalations, can_review_capability
from reviews.models import DecisionOutcome, Suggestion, SuggestionStatus


def escalated_by(suggestion: Suggestion) -> set[int]:
    """Ids of the users who escalated ``suggestion`` (uses prefetched decisions when present)."""
    return {
        decision.reviewer_id
        for decision in suggestion.decisions.all()
        if decision.outcome == DecisionOutcome.ESCALATED and decision.reviewer_id is not None
    }


def approvers_of(suggestion: Suggestion, payload: Any) -> set[int]:
    """Ids of the users whose approval of ``payload`` is counted towards the suggestion's
    required approvals (an approval that did not close it yet). Uses prefetched decisions."""
    return {
        decision.reviewer_id
        for decision in suggestion.decisions.all()
        if decision.outcome == DecisionOutcome.APPROVED
        and not decision.is_final
        and decision.reviewer_id is not None
        and decision.final_payload == payload
    }


def submitted_by(user: Any, suggestion: Suggestion) -> bool:
    """Did ``user`` submit ``suggestion`` (through an API client that acts for them)?"""
    return suggestion.api_client is not None and suggestion.api_client.user_id == user.pk


def can_decide_suggestion(user: Any, suggestion: Suggestion) -> bool:
    """May ``user`` decide ``suggestion`` in its current state (claims aside)?

    A pending item: reviewers of its capability. An escalated item: those who resolve its
    capability's escalations, except whoever escalated it. Never: a closed item, an item the
    user submitted, or an item awaiting a second approval that the user already gave.
    """
    if submitted_by(user, suggestion) or user.pk in approvers_of(suggestion, suggestion.proposal):
        return False
    if suggestion.status == SuggestionStatus.PENDING_REVIEW:
        return can_review_capability(user, suggestion.capability)
    if suggestion.status == SuggestionStatus.ESCALATED:
        return user.pk not in escalated_by(suggestion) and can_resolve_escalations(
            user, suggestion.capability
        )
    return False
