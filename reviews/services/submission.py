"""Accepting a suggestion: redact, authorize, route by the active policy, record."""

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from audit.models import AuditAction
from audit.services import Actor, Subject, audit_event_record
from capabilities.models import ApiClient, ApiToken, Capability
from capabilities.permissions import can_submit_to_capability
from capabilities.policies import RouteOutcome, route_by_confidence
from capabilities.schemas import schema_errors
from capabilities.services import policy_active
from reviews.diffing import payload_fingerprint
from reviews.models import Decision, DecisionOutcome, Suggestion, SuggestionStatus
from reviews.redaction import redactor
from reviews.services.common import after_approval, after_final_decision
from reviews.services.escalation import sla_deadline

_STATUS_BY_ROUTE = {
    RouteOutcome.AUTO_APPROVE: SuggestionStatus.AUTO_APPROVED,
    RouteOutcome.AUTO_REJECT: SuggestionStatus.AUTO_REJECTED,
    RouteOutcome.REVIEW: SuggestionStatus.PENDING_REVIEW,
}
_POLICY_ACTOR = Actor.system("policy")


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
    of ``client`` for internal callers, and ``ValidationError`` naming ``payload`` when the
    payload does not satisfy the capability's schema; nothing is stored then.
    """
    if token is not None and token.client_id != client.pk:
        raise PermissionDenied("This token belongs to another client.")
    if not can_submit_to_capability(token or client, capability):
        raise PermissionDenied(f"This token may not submit to {capability.key}.")
    if errors := schema_errors(capability.payload_schema, payload):
        raise ValidationError({"payload": errors})
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
            attempt=attempt,
            callback_url=callback_url,
            decided_at=None if status == SuggestionStatus.PENDING_REVIEW else now,
            due_at=sla_deadline(policy, now) if status == SuggestionStatus.PENDING_REVIEW else None,
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
            after_final_decision(suggestion)
        if status == SuggestionStatus.AUTO_APPROVED:
            after_approval(suggestion)
    return suggestion
