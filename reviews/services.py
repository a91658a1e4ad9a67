"""Every change to suggestions and decisions: submit, claim, release, decide, execute.

Each function runs in one transaction that locks the suggestion it changes, checks permission
through ``capabilities.permissions``, writes, and records its audit events; follow-up work is
enqueued on commit.
"""

import datetime as dt
import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit.models import AuditAction
from audit.services import Actor, Subject, audit_event_record
from capabilities import handlers
from capabilities.models import ApiClient, ApiToken, Capability
from capabilities.permissions import can_submit_to_capability
from capabilities.policies import RouteOutcome, route_by_confidence
from capabilities.services import policy_active
from config.jobs import enqueue_on_commit
from reviews.diffing import payload_changes
from reviews.models import (
    APPROVED_STATUSES,
    Decision,
    DecisionOutcome,
    ExecutionStatus,
    Suggestion,
    SuggestionStatus,
)
from reviews.permissions import approvers_of, can_decide_suggestion
from reviews.redaction import redactor
from reviews.selectors import suggestions_decidable_by

logger = logging.getLogger(__name__)

_STATUS_BY_ROUTE = {
    RouteOutcome.AUTO_APPROVE: SuggestionStatus.AUTO_APPROVED,
    RouteOutcome.AUTO_REJECT: SuggestionStatus.AUTO_REJECTED,
    RouteOutcome.REVIEW: SuggestionStatus.PENDING_REVIEW,
}
_POLICY_ACTOR = Actor.system("policy")


class ReviewConflict(Exception):
    """The suggestion is no longer in a state that allows this action; nothing was changed."""


class AlreadyDecided(ReviewConflict):
    pass


class ClaimedByOther(ReviewConflict):
    pass


class DecisionRefused(ReviewConflict):
    """A decision rule forbids it (four eyes, one's own submission); the refusal is audited."""


# --- Submission -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str = ""
    provider: str = ""


@dataclass(frozen=True)
class Usage:
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: Decimal | None = None


def suggestion_submit(
    *,
    client: ApiClient,
    capability: Capability,
    payload: dict[str, Any],
    token: ApiToken | None = None,
    confidence: float,
    model: ModelInfo,
    external_id: str = "",
    prompt: str = "",
    context: dict[str, Any] | None = None,
    usage: Usage | None = None,
    attempt: int = 1,
    callback_url: str = "",
) -> Suggestion:
    """Accept a suggestion from ``client``, redact it, and route it by the active policy.

    Writes the suggestion, the policy's decision when it routes automatically, and the
    ``suggestion.received`` and ``suggestion.routed`` events in one transaction. An
    auto-approved suggestion's handler is enqueued on commit. Raises ``PermissionDenied`` when
    the capability is outside the scope of ``token`` (the API always passes the caller's), or
    of ``client`` for internal callers.
    """
    if token is not None and token.client_id != client.pk:
        raise PermissionDenied("This token belongs to another client.")
    if not can_submit_to_capability(token or client, capability):
        raise PermissionDenied(f"This token may not submit to {capability.key}.")
    scrub = redactor()
    prompt = scrub.text(prompt)
    context = scrub.json(context or {})
    usage = usage or Usage()
    with transaction.atomic():
        policy = policy_active(capability)
        route = route_by_confidence(
            confidence=confidence,
            auto_approve_at=policy.auto_approve_at,
            auto_reject_below=policy.auto_reject_below,
        )
        status = _STATUS_BY_ROUTE[route.outcome]
        now = timezone.now()
        suggestion = Suggestion.objects.create(
            capability=capability,
            policy=policy,
            api_client=client,
            external_id=external_id,
            status=status,
            route_reason=route.reason,
            payload=payload,
            final_payload=payload if status == SuggestionStatus.AUTO_APPROVED else None,
            confidence=confidence,
            model_name=model.name,
            model_version=model.version,
            model_provider=model.provider,
            prompt=prompt,
            context=context,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost=usage.cost,
            attempt=attempt,
            callback_url=callback_url,
            decided_at=None if status == SuggestionStatus.PENDING_REVIEW else now,
        )
        subject = Subject.of(suggestion)
        audit_event_record(
            actor=Actor.api_client(client.pk, client.name),
            action=AuditAction.SUGGESTION_RECEIVED,
            subject=subject,
            capability=capability.key,
            data={
                "external_id": external_id,
                "confidence": confidence,
                "model": {"name": model.name, "version": model.version, "provider": model.provider},
                "attempt": attempt,
                "usage": {
                    "input_tokens": usage.input_tokens,
                    "output_tokens": usage.output_tokens,
                    "cost": usage.cost,
                },
                "redactions": scrub.counts,
            },
        )
        audit_event_record(
            actor=_POLICY_ACTOR,
            action=AuditAction.SUGGESTION_ROUTED,
            subject=subject,
            capability=capability.key,
            data={
                "status": status,
                "reason": route.reason,
                "policy_version": policy.version,
                "auto_approve_at": policy.auto_approve_at,
                "auto_reject_below": policy.auto_reject_below,
                "confidence": confidence,
            },
        )
        if status != SuggestionStatus.PENDING_REVIEW:
            Decision.objects.create(
                suggestion=suggestion,
                reviewer=None,
                outcome=(
                    DecisionOutcome.APPROVED
                    if status == SuggestionStatus.AUTO_APPROVED
                    else DecisionOutcome.REJECTED
                ),
                is_final=True,
                reason=route.reason,
                final_payload=suggestion.final_payload,
                policy=policy,
            )
        if status == SuggestionStatus.AUTO_APPROVED:
            _schedule_execution(suggestion)
    return suggestion


# --- Claiming ---------------------------------------------------------------------------------


def suggestion_claim_next(*, user: Any) -> Suggestion | None:
    """Give ``user`` the oldest open suggestion they may decide and nobody else holds.

    A reviewer who already holds a live claim gets that item back. Two reviewers calling at
    the same moment never get the same item: on PostgreSQL the candidate row is locked with
    ``FOR UPDATE SKIP LOCKED``, so the second caller skips it instead of waiting for it; on
    SQLite every write transaction is serialised (``BEGIN IMMEDIATE``). Returns None when
    nothing is waiting.
    """
    now = timezone.now()
    with transaction.atomic():
        held = (
            suggestions_decidable_by(user=user)
            .filter(claimed_by=user, claim_expires_at__gt=now)
            .order_by("created_at")
            .first()
        )
        if held is not None:
            return held
        candidate = (
            suggestions_decidable_by(user=user)
            .filter(Q(claimed_by__isnull=True) | Q(claim_expires_at__lte=now))
            .order_by("created_at")
            .select_for_update(skip_locked=True, of=("self",))
            .first()
        )
        if candidate is None:
            return None
        _claim(candidate, user, now)
        return candidate


def suggestion_claim(*, user: Any, suggestion_id: Any) -> Suggestion:
    """Claim one particular open suggestion for ``user``.

    Raises ``AlreadyDecided`` if it was decided meanwhile, ``ClaimedByOther`` while another
    reviewer's claim is live, and ``PermissionDenied`` if ``user`` may not decide it.
    """
    now = timezone.now()
    with transaction.atomic():
        suggestion = _lock(suggestion_id)
        _check_may_decide(user, suggestion, now)
        if suggestion.claimed_by_id != user.pk or not _claim_live(suggestion, now):
            _claim(suggestion, user, now)
        return suggestion


def suggestion_release(*, user: Any, suggestion_id: Any) -> Suggestion:
    """Give up ``user``'s claim so the item returns to the queue. A no-op without a claim."""
    with transaction.atomic():
        suggestion = _lock(suggestion_id)
        if suggestion.claimed_by_id == user.pk:
            suggestion.claimed_by = None
            suggestion.claim_expires_at = None
            suggestion.save(update_fields=["claimed_by", "claim_expires_at"])
            audit_event_record(
                actor=Actor.user(user),
                action=AuditAction.SUGGESTION_RELEASED,
                subject=Subject.of(suggestion),
                capability=suggestion.capability.key,
            )
        return suggestion


# --- Deciding ---------------------------------------------------------------------------------


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
    rules say no: deciding what one submitted, or approving twice. Raises ``ClaimedByOther``
    while another reviewer holds the item, ``PermissionDenied`` if ``user`` may not decide it,
    and ``ValidationError`` (naming the field) for a missing reason or a payload that is not a
    JSON object. Nothing else changes when it raises.
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
        suggestion = _lock(suggestion_id)
        if not suggestion.is_open:
            status = suggestion.get_status_display().lower()
            raise AlreadyDecided(f"This suggestion was already {status}.")
        proposal = suggestion.proposal
        final = proposal if final_payload is None else final_payload
        refusal = _refusal(user, suggestion, outcome, final)
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
            _check_may_decide(user, suggestion, now)
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
    if suggestion.api_client is not None and suggestion.api_client.user_id == user.pk:
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
    if decision.is_final:
        suggestion.decided_at = now
    suggestion.claimed_by = None
    suggestion.claim_expires_at = None
    suggestion.save(
        update_fields=["status", "final_payload", "decided_at", "claimed_by", "claim_expires_at"]
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
    if suggestion.status == SuggestionStatus.APPROVED:
        _schedule_execution(suggestion)
    return decision


# --- Execution --------------------------------------------------------------------------------


def suggestion_execute(*, suggestion_id: Any) -> Suggestion:
    """Run the capability's handler for an approved suggestion, once.

    The row is locked while its execution is marked running, so a second job for the same
    suggestion finds it running or finished and does nothing. The handler itself runs outside
    any transaction (it may call other systems); its outcome is recorded and audited after.
    """
    with transaction.atomic():
        suggestion = _lock(suggestion_id)
        if (
            suggestion.status not in APPROVED_STATUSES
            or suggestion.execution_status != ExecutionStatus.NOT_STARTED
        ):
            return suggestion
        suggestion.execution_status = ExecutionStatus.RUNNING
        suggestion.execution_attempts += 1
        suggestion.save(update_fields=["execution_status", "execution_attempts"])

    handler = handlers.handler_for(suggestion.capability.key)
    started = time.monotonic()
    try:
        result = handler(
            capability=suggestion.capability.key,
            suggestion_id=str(suggestion.pk),
            payload=suggestion.final_payload,
        )
        error = ""
    except Exception as exc:  # a failing handler is recorded, never lost
        logger.exception("handler for %s failed on %s", suggestion.capability.key, suggestion.pk)
        result, error = None, f"{type(exc).__name__}: {exc}"
    duration_ms = round((time.monotonic() - started) * 1000)

    with transaction.atomic():
        suggestion = _lock(suggestion_id)
        suggestion.execution_status = ExecutionStatus.FAILED if error else ExecutionStatus.SUCCEEDED
        suggestion.execution_result = result
        suggestion.execution_error = error
        suggestion.executed_at = timezone.now()
        suggestion.save(
            update_fields=["execution_status", "execution_result", "execution_error", "executed_at"]
        )
        audit_event_record(
            actor=Actor.system("executor"),
            action=AuditAction.EXECUTION_FAILED if error else AuditAction.EXECUTION_SUCCEEDED,
            subject=Subject.of(suggestion),
            capability=suggestion.capability.key,
            data={
                "attempt": suggestion.execution_attempts,
                "duration_ms": duration_ms,
                "error": error,
            },
        )
    return suggestion


# --- Helpers ----------------------------------------------------------------------------------


def _schedule_execution(suggestion: Suggestion) -> None:
    from reviews.tasks import execute_suggestion  # tasks import services

    enqueue_on_commit(execute_suggestion, str(suggestion.pk))


def _lock(suggestion_id: Any) -> Suggestion:
    return (
        Suggestion.objects.select_for_update(of=("self",))
        .select_related("capability", "policy", "api_client")
        .get(pk=suggestion_id)
    )


def _check_may_decide(user: Any, suggestion: Suggestion, now: dt.datetime) -> None:
    if not suggestion.is_open:
        status = suggestion.get_status_display().lower()
        raise AlreadyDecided(f"This suggestion was already {status}.")
    if not can_decide_suggestion(user, suggestion):
        raise PermissionDenied("You may not decide this suggestion.")
    if suggestion.claimed_by_id not in (None, user.pk) and _claim_live(suggestion, now):
        raise ClaimedByOther(f"{suggestion.claimed_by} is reviewing this suggestion.")


def _claim_live(suggestion: Suggestion, now: dt.datetime) -> bool:
    return suggestion.claim_expires_at is not None and suggestion.claim_expires_at > now


def _claim(suggestion: Suggestion, user: Any, now: dt.datetime) -> None:
    suggestion.claimed_by = user
    suggestion.claim_expires_at = now + dt.timedelta(seconds=settings.SIGNOFF_CLAIM_TTL_SECONDS)
    suggestion.save(update_fields=["claimed_by", "claim_expires_at"])
    audit_event_record(
        actor=Actor.user(user),
        action=AuditAction.SUGGESTION_CLAIMED,
        subject=Subject.of(suggestion),
        capability=suggestion.capability.key,
        data={"claim_expires_at": suggestion.claim_expires_at},
    )
