"""Who may decide a suggestion: the suggestion-level rules, on top of the capability-level
predicates in ``capabilities.permissions``. Pages and services both ask here."""

from typing import Any

from capabilities.permissions import can_resolve_escalations, can_review_capability
from reviews.models import Decision, DecisionOutcome, Suggestion, SuggestionStatus

# The rungs of the escalation ladder (``Suggestion.escalation_level``): who decides there.
REVIEWERS_LEVEL = 0
SENIOR_LEVEL = 1
OWNER_LEVEL = 2


def escalated_by(suggestion: Suggestion) -> set[int]:
    """Ids of the users who escalated ``suggestion`` (uses prefetched decisions when present)."""
    return {
        decision.reviewer_id
        for decision in suggestion.decisions.all()
        if decision.outcome == DecisionOutcome.ESCALATED and decision.reviewer_id is not None
    }


def approvals_of(suggestion: Suggestion, payload: Any) -> list[Decision]:
    """The approvals of ``payload`` counted towards the suggestion's required approvals (by a
    person, and not closing it yet), in order. Uses prefetched decisions."""
    return [
        decision
        for decision in suggestion.decisions.all()
        if decision.outcome == DecisionOutcome.APPROVED
        and not decision.is_final
        and decision.reviewer_id is not None
        and decision.final_payload == payload
    ]


def approvers_of(suggestion: Suggestion, payload: Any) -> set[int]:
    """Ids of the users whose approval of ``payload`` is counted (``approvals_of``)."""
    return {decision.reviewer_id for decision in approvals_of(suggestion, payload)}  # type: ignore[misc]  # by people


def submitted_by(user: Any, suggestion: Suggestion) -> bool:
    """Did ``user`` submit ``suggestion`` (through an API client that acts for them)?"""
    return suggestion.api_client is not None and suggestion.api_client.user_id == user.pk


def can_decide_suggestion(user: Any, suggestion: Suggestion) -> bool:
    """May ``user`` decide ``suggestion`` in its current state (claims aside)?

    A pending item: reviewers of its capability. An escalated item: those who resolve its
    capability's escalations and, once it reached the owner's rung of the ladder, the
    capability's owner (see ``decides_as_owner``), except whoever escalated it. Never: a
    closed item, an item the user submitted, or an item awaiting a second approval that the
    user already gave.
    """
    if submitted_by(user, suggestion) or user.pk in approvers_of(suggestion, suggestion.proposal):
        return False
    return decides_by_role(user, suggestion)


def decides_by_role(user: Any, suggestion: Suggestion) -> bool:
    """Would ``user``'s role let them decide ``suggestion`` in its current state, before the
    two rules ``can_decide_suggestion`` adds (not what they submitted, not a second approval
    of their own)? ``decision_record`` audits a refusal by those rules, and tells why, only to
    someone this lets through; anyone else is simply not allowed."""
    if suggestion.status == SuggestionStatus.PENDING_REVIEW:
        return can_review_capability(user, suggestion.capability)
    if suggestion.status == SuggestionStatus.ESCALATED:
        return user.pk not in escalated_by(suggestion) and (
            can_resolve_escalations(user, suggestion.capability)
            or decides_as_owner(user, suggestion)
        )
    return False


def decides_as_owner(user: Any, suggestion: Suggestion) -> bool:
    """Did ``suggestion`` climb to the owner's rung of the escalation ladder, and is ``user``
    its capability's owner (``Capability.owner``, or a member of ``owner_group``)?

    Only the ladder's rung and ownership: ``can_decide_suggestion`` adds the other rules.
    """
    if (
        suggestion.status != SuggestionStatus.ESCALATED
        or suggestion.escalation_level < OWNER_LEVEL
        or not user.is_active
    ):
        return False
    capability = suggestion.capability
    if capability.owner_id is not None and capability.owner_id == user.pk:
        return True
    return (
        capability.owner_group_id is not None
        and user.groups.filter(pk=capability.owner_group_id).exists()
    )
