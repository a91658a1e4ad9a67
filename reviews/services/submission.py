"""Accepting suggestions: redact, authorize, route by the active policy, record.

``suggestion_submit`` accepts one; ``suggestions_submit_many`` accepts a batch. Both check,
prepare and record each suggestion with the same functions (``_refusal``, ``_prepare``), so
a suggestion is stored, routed and audited alike whichever way it came; the batch only writes
its rows and events together.
"""

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from audit.models import AuditAction
from audit.services import Actor, NewEvent, Subject, audit_events_record
from capabilities.models import ApiClient, ApiToken, Capability, Policy
from capabilities.permissions import can_submit_to_capability
from capabilities.policies import RouteOutcome, route_by_confidence
from capabilities.schemas import schema_errors
from capabilities.services import policy_active
from reviews.diffing import payload_fingerprint
from reviews.models import Decision, DecisionOutcome, Suggestion, SuggestionStatus
from reviews.redaction import redactor
from reviews.services.common import (
    after_approval,
    after_approvals,
    after_final_decision,
    after_final_decisions,
)
from reviews.services.escalation import sla_deadline

_STATUS_BY_ROUTE = {
    RouteOutcome.AUTO_APPROVE: SuggestionStatus.AUTO_APPROVED,
    RouteOutcome.AUTO_REJECT: SuggestionStatus.AUTO_REJECTED,
    RouteOutcome.REVIEW: SuggestionStatus.PENDING_REVIEW,
}
_POLICY_ACTOR = Actor.system("policy")

# Why a submission was not accepted: what suggestion_submit raises for it.
Refusal = PermissionDenied | ValidationError


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


@dataclass(frozen=True)
class Submission:
    """One suggestion as a system sends it: the arguments of ``suggestion_submit`` but the
    caller's (``client`` and ``token``)."""

    capability: Capability
    payload: dict[str, Any]
    confidence: float
    model: ModelInfo
    external_id: str = ""
    prompt: str = ""
    context: dict[str, Any] | None = None
    usage: Usage | None = None
    attempt: int = 1
    callback_url: str = ""


@dataclass(frozen=True)
class _Prepared:
    """A submission ready to be written: its suggestion, the policy's decision when the policy
    decided it, and the events that record it; nothing saved yet."""

    suggestion: Suggestion
    decision: Decision | None
    events: list[NewEvent]


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
    ``suggestion.received`` and ``suggestion.routed`` events in one transaction, and returns
    the suggestion with its ``decisions`` loaded. An auto-approved suggestion's handler is
    enqueued on commit. Raises ``PermissionDenied`` when the capability is outside the scope
    of ``token`` (the API always passes the caller's), or of ``client`` for internal callers,
    and ``ValidationError`` naming ``payload`` when the payload does not satisfy the
    capability's schema; nothing is stored then.
    """
    submission = Submission(
        capability=capability,
        payload=payload,
        confidence=confidence,
        model=model,
        external_id=external_id,
        prompt=prompt,
        context=context,
        usage=usage,
        attempt=attempt,
        callback_url=callback_url,
    )
    _check_caller(client, token)
    if refusal := _refusal(submission, _scope(client, token)):
        raise refusal
    with transaction.atomic():
        prepared = _prepare(
            submission, client=client, policy=policy_active(capability), now=timezone.now()
        )
        suggestion = prepared.suggestion
        suggestion.save(force_insert=True)
        if prepared.decision is not None:
            prepared.decision.save(force_insert=True)
            after_final_decision(suggestion)
        if suggestion.status == SuggestionStatus.AUTO_APPROVED:
            after_approval(suggestion)
        # Last: the chain head stays locked from here until the commit.
        audit_events_record(prepared.events)
    _keep_decisions(prepared)
    return suggestion


def suggestions_submit_many(
    *,
    client: ApiClient,
    submissions: Sequence[Submission],
    token: ApiToken | None = None,
) -> list[Suggestion | Refusal]:
    """Accept a batch of suggestions from ``client``: each as ``suggestion_submit`` would.

    Returns one outcome per submission, in their order: the stored suggestion (its
    ``decisions`` loaded), or the ``PermissionDenied`` or ``ValidationError`` that
    ``suggestion_submit`` would have raised for it; a refused submission stores nothing and
    does not stop the others. Every accepted one gets the same rows, audit events (with the
    same data) and follow-up work (its handler and its webhook, through the outbox) as through
    ``suggestion_submit``. They are written in one transaction, all or none, in a number of
    statements that grows with the capabilities the batch names, not with its size; the chain
    head is locked only for the last of them. Raises ``PermissionDenied``, storing nothing,
    when ``token`` belongs to another client.
    """
    _check_caller(client, token)
    in_scope = _scope(client, token)
    refusals = [_refusal(submission, in_scope) for submission in submissions]
    accepted = [
        submission
        for submission, refusal in zip(submissions, refusals, strict=True)
        if refusal is None
    ]
    stored = iter(_write_many(accepted, client=client))
    return [next(stored) if refusal is None else refusal for refusal in refusals]


def _check_caller(client: ApiClient, token: ApiToken | None) -> None:
    if token is not None and token.client_id != client.pk:
        raise PermissionDenied("This token belongs to another client.")


def _scope(client: ApiClient, token: ApiToken | None) -> Callable[[Capability], bool]:
    """``can_submit_to_capability`` for the caller, asked once per capability."""
    answers: dict[Any, bool] = {}

    def in_scope(capability: Capability) -> bool:
        if capability.pk not in answers:
            answers[capability.pk] = can_submit_to_capability(token or client, capability)
        return answers[capability.pk]

    return in_scope


def _refusal(submission: Submission, in_scope: Callable[[Capability], bool]) -> Refusal | None:
    """Why ``submission`` may not be accepted, or None: its capability is outside the caller's
    scope, or its payload does not satisfy the capability's schema."""
    capability = submission.capability
    if not in_scope(capability):
        return PermissionDenied(f"This token may not submit to {capability.key}.")
    if errors := schema_errors(capability.payload_schema, submission.payload):
        return ValidationError({"payload": errors})
    return None


def _prepare(
    submission: Submission, *, client: ApiClient, policy: Policy, now: dt.datetime
) -> _Prepared:
    """Redact ``submission``, route it by ``policy``, and build what records it."""
    scrub = redactor()
    prompt = scrub.text(submission.prompt)
    context = scrub.json(submission.context or {})
    usage = submission.usage or Usage()
    capability, payload, model = submission.capability, submission.payload, submission.model
    confidence = submission.confidence
    route = route_by_confidence(
        confidence=confidence,
        auto_approve_at=policy.auto_approve_at,
        auto_reject_below=policy.auto_reject_below,
    )
    status = _STATUS_BY_ROUTE[route.outcome]
    pending = status == SuggestionStatus.PENDING_REVIEW
    suggestion = Suggestion(
        capability=capability,
        policy=policy,
        api_client=client,
        external_id=submission.external_id,
        status=status,
        route_reason=route.reason,
        payload=payload,
        fingerprint=payload_fingerprint(payload),
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
        attempt=submission.attempt,
        callback_url=submission.callback_url,
        decided_at=None if pending else now,
        due_at=sla_deadline(policy, now) if pending else None,
    )
    decision = None
    if not pending:
        decision = Decision(
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
    subject = Subject.of(suggestion)
    received = NewEvent(
        actor=Actor.api_client(client.pk, client.name),
        action=AuditAction.SUGGESTION_RECEIVED,
        subject=subject,
        capability=capability.key,
        data={
            "external_id": submission.external_id,
            "confidence": confidence,
            "model": {"name": model.name, "version": model.version, "provider": model.provider},
            "attempt": submission.attempt,
            "usage": {
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "cost": usage.cost,
            },
            "redactions": scrub.counts,
        },
    )
    routed = NewEvent(
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
    return _Prepared(suggestion=suggestion, decision=decision, events=[received, routed])


def _write_many(submissions: list[Submission], *, client: ApiClient) -> list[Suggestion]:
    """Prepare and store ``submissions`` (already checked) together, in one transaction."""
    if not submissions:
        return []
    with transaction.atomic():
        policies: dict[Any, Policy] = {}
        for submission in submissions:
            capability = submission.capability
            if capability.pk not in policies:
                policies[capability.pk] = policy_active(capability)
        now = timezone.now()
        prepared = [
            _prepare(item, client=client, policy=policies[item.capability.pk], now=now)
            for item in submissions
        ]
        suggestions = Suggestion.objects.bulk_create([item.suggestion for item in prepared])
        decisions = [item.decision for item in prepared if item.decision is not None]
        Decision.objects.bulk_create(decisions)
        decided = [decision.suggestion for decision in decisions]
        after_final_decisions(decided)
        after_approvals([s for s in decided if s.status == SuggestionStatus.AUTO_APPROVED])
        # Last: the chain head stays locked from here until the commit.
        audit_events_record([event for item in prepared for event in item.events])
    for item in prepared:
        _keep_decisions(item)
    return suggestions


def _keep_decisions(prepared: _Prepared) -> None:
    """Load the suggestion's ``decisions`` with the one just written with it, or none: a new
    suggestion has no other. ``suggestion.decisions.all()`` then answers without a query, as
    after ``prefetch_related``, and so does the answer that shows them to the caller."""
    suggestion = prepared.suggestion
    # Django keeps prefetched rows as the relation's queryset with its results filled in,
    # under the relation's name (DRF's own update views clear the same cache); no public call
    # fills it.
    decisions = suggestion.decisions.all()
    decisions._result_cache = [prepared.decision] if prepared.decision is not None else []
    decisions._prefetch_done = True  # type: ignore[attr-defined]
    suggestion._prefetched_objects_cache = {"decisions": decisions}  # type: ignore[attr-defined]
