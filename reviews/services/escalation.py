"""The escalation ladder: an open suggestion nobody decides in time climbs a rung.

Reviewers (rung 0), then senior reviewers (1), then the capability's owner (2), each given the
``sla_minutes`` of the policy version that routed the suggestion; past the owner's deadline,
that policy's ``sla_default`` decides it: rejected (fail closed) or approved (fail open). A
suggestion whose policy has no SLA has no deadline and never climbs by itself.

``escalation_sweep`` takes the steps that are due; a scheduler runs it every minute or so
(``reviews.tasks.sweep_escalations``, or ``manage.py escalation_sweep``). Every step is one
transaction per suggestion, audited with the system actor ``sla``.
"""

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.models import AuditAction
from audit.services import Actor, Subject, audit_event_record
from capabilities.models import Policy
from reviews.diffing import payload_changes
from reviews.models import (
    OPEN_STATUSES,
    Decision,
    DecisionOutcome,
    Suggestion,
    SuggestionStatus,
)
from reviews.permissions import OWNER_LEVEL
from reviews.services.common import after_approval, after_final_decision, claim_live

logger = logging.getLogger(__name__)

SLA_ACTOR = Actor.system("sla")
# The reason of the decision a policy's default takes past the top of the ladder.
SLA_EXPIRED = "sla_expired"


@dataclass(frozen=True)
class EscalationStep:
    """One step a sweep took: ``outcome`` is ``escalated`` (to rung ``to_level``), or the
    default that decided the suggestion, ``rejected`` or ``approved`` (``to_level`` None)."""

    suggestion_id: uuid.UUID
    capability: str
    from_level: int
    to_level: int | None
    outcome: str


def sla_deadline(policy: Policy, start: dt.datetime) -> dt.datetime | None:
    """When a suggestion that reaches a rung at ``start`` is due there under ``policy``; None
    when the policy sets no deadline."""
    if policy.sla_minutes is None:
        return None
    return start + dt.timedelta(minutes=policy.sla_minutes)


def escalation_sweep(
    *,
    now: dt.datetime | None = None,
    on_step: Callable[[EscalationStep], None] | None = None,
) -> int:
    """Take every step of the ladder that is due at ``now`` (default: the current time) and
    return how many were taken.

    Each open suggestion whose ``due_at`` has passed takes one step: rung 0 or 1 climbs to
    the next rung with a fresh deadline (``suggestion.escalated``); rung 2 is decided by its
    policy's default, a system decision (``decision.recorded``), and an approval starts the
    handler through the outbox. Any claim on it is released: the item changes hands.

    Each step is its own transaction, which locks the suggestion with ``FOR UPDATE SKIP
    LOCKED`` and checks again that it is open and due: of two sweeps running at once, each
    skips what the other holds, and neither repeats a step the other committed (the fresh
    deadline, or the decision, takes it out of the due set). One transaction per suggestion,
    not per batch, because every step appends to the audit chain, whose head stays locked
    until the commit: a long batch would hold up every reviewer's decision meanwhile. A
    suggestion whose step fails is logged and left for the next sweep, so it cannot stop
    the others from climbing.
    """
    now = now or timezone.now()
    taken = 0
    failed: set[uuid.UUID] = set()
    while True:
        try:
            step = _step_next(now, failed)
        except _StepFailed as exc:
            failed.add(exc.suggestion_id)
            logger.exception("escalation step failed for suggestion %s", exc.suggestion_id)
            continue
        if step is None:
            return taken
        taken += 1
        if on_step is not None:
            on_step(step)


class _StepFailed(Exception):
    def __init__(self, suggestion_id: uuid.UUID) -> None:
        super().__init__(str(suggestion_id))
        self.suggestion_id = suggestion_id


def _step_next(now: dt.datetime, failed: set[uuid.UUID]) -> EscalationStep | None:
    """Lock the most overdue open suggestion that no one else holds and take its step."""
    # ``status IN (open)`` repeats the predicate of the partial index ``suggestion_open_due``
    # so the planner can use it; the index is ordered by ``due_at``, as this scan is.
    due = Suggestion.objects.filter(status__in=OPEN_STATUSES, due_at__lte=now).exclude(
        pk__in=failed
    )
    suggestion_id = None
    try:
        with transaction.atomic():
            suggestion = (
                due.select_for_update(skip_locked=True, of=("self",))
                .select_related("capability", "policy", "claimed_by")
                .order_by("due_at")
                .first()
            )
            if suggestion is None:
                return None
            suggestion_id = suggestion.pk
            if suggestion.escalation_level < OWNER_LEVEL:
                return _climb(suggestion, now)
            return _apply_default(suggestion, now)
    except Exception as exc:
        if suggestion_id is None:
            raise
        raise _StepFailed(suggestion_id) from exc


def _climb(suggestion: Suggestion, now: dt.datetime) -> EscalationStep:
    from_level, from_status = suggestion.escalation_level, suggestion.status
    missed = suggestion.due_at
    released = _release_claim(suggestion, now)
    suggestion.escalation_level = from_level + 1
    suggestion.status = SuggestionStatus.ESCALATED
    suggestion.due_at = sla_deadline(suggestion.policy, now)
    suggestion.save(
        update_fields=["escalation_level", "status", "due_at", "claimed_by", "claim_expires_at"]
    )
    audit_event_record(
        actor=SLA_ACTOR,
        action=AuditAction.SUGGESTION_ESCALATED,
        subject=Subject.of(suggestion),
        capability=suggestion.capability.key,
        data={
            "from_level": from_level,
            "to_level": suggestion.escalation_level,
            "from_status": from_status,
            "to_status": suggestion.status,
            "deadline_missed": missed,
            "due_at": suggestion.due_at,
            "sla_minutes": suggestion.policy.sla_minutes,
            "policy_version": suggestion.policy.version,
            "released_claim_of": released,
        },
    )
    return EscalationStep(
        suggestion.pk,
        suggestion.capability.key,
        from_level,
        suggestion.escalation_level,
        "escalated",
    )


def _apply_default(suggestion: Suggestion, now: dt.datetime) -> EscalationStep:
    policy = suggestion.policy
    from_status = suggestion.status
    missed = suggestion.due_at
    released = _release_claim(suggestion, now)
    # Anything but an explicit "approve" fails closed.
    approve = policy.sla_default == "approve"
    decision = Decision(
        suggestion=suggestion,
        reviewer=None,
        outcome=DecisionOutcome.APPROVED if approve else DecisionOutcome.REJECTED,
        is_final=True,
        reason=SLA_EXPIRED,
        policy=policy,
    )
    changes: list[dict[str, Any]] = []
    if approve:
        # What the next approver was asked to approve: the proposal, or a payload a first
        # approver edited while four-eyes approval was under way.
        final = suggestion.proposal
        changes = payload_changes(suggestion.payload, final)
        decision.final_payload = final
        decision.is_override = bool(changes)
        suggestion.final_payload = final
        suggestion.status = SuggestionStatus.APPROVED
    else:
        suggestion.status = SuggestionStatus.REJECTED
    suggestion.decided_at = now
    suggestion.save(
        update_fields=["status", "final_payload", "decided_at", "claimed_by", "claim_expires_at"]
    )
    decision.save()
    audit_event_record(
        actor=SLA_ACTOR,
        action=AuditAction.DECISION_RECORDED,
        subject=Subject.of(suggestion),
        capability=suggestion.capability.key,
        data={
            "decision_id": decision.pk,
            "outcome": decision.outcome,
            "from_status": from_status,
            "to_status": suggestion.status,
            "reason": SLA_EXPIRED,
            "rule": f"sla_default_{policy.sla_default}",
            "sla_default": policy.sla_default,
            "from_level": suggestion.escalation_level,
            "deadline_missed": missed,
            "is_override": decision.is_override,
            "changes": changes,
            "policy_version": policy.version,
            "released_claim_of": released,
        },
    )
    after_final_decision(suggestion)
    if approve:
        after_approval(suggestion)
    return EscalationStep(
        suggestion.pk,
        suggestion.capability.key,
        suggestion.escalation_level,
        None,
        decision.outcome,
    )


def _release_claim(suggestion: Suggestion, now: dt.datetime) -> str | None:
    """Drop the claim on a suggestion that changes hands; the holder's name if it was live."""
    holder = suggestion.claimed_by
    live = claim_live(suggestion, now)
    suggestion.claimed_by = None
    suggestion.claim_expires_at = None
    return holder.get_username() if holder is not None and live else None
