"""Every change to suggestions and decisions: submit, claim, release, decide, execute (and
retry), the webhooks that tell submitters, and the outbox that carries the work they cause.
One module per subject; import from here.

Each function runs in one transaction that locks the suggestion it changes, checks permission
through the predicates, writes, and records its audit events; work it causes goes through the
outbox in the same transaction.
"""

from reviews.services.claims import suggestion_claim, suggestion_claim_next, suggestion_release
from reviews.services.common import (
    AlreadyDecided,
    ClaimedByOther,
    DecisionRefused,
    ReviewConflict,
)
from reviews.services.decisions import REFUSALS, decision_record
from reviews.services.escalation import EscalationStep, escalation_sweep, sla_deadline
from reviews.services.execution import execution_retry, execution_retry_at, suggestion_execute
from reviews.services.idempotency import (
    IDEMPOTENCY_HEADER,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    IdempotencyPurge,
    IdempotentReplay,
    idempotency_key_check,
    idempotency_key_purge,
    idempotency_key_use,
    idempotency_request_hash,
)
from reviews.services.outbox import (
    outbox_add,
    outbox_add_many,
    outbox_done,
    outbox_relay,
    outbox_relay_many,
    outbox_retry_at,
    outbox_sweep,
)
from reviews.services.submission import (
    ModelInfo,
    Refusal,
    Submission,
    Usage,
    suggestion_submit,
    suggestions_submit_many,
)
from reviews.services.webhooks import (
    EVENT_DECIDED,
    EVENT_EXECUTED,
    webhook_body,
    webhook_deliver,
    webhook_headers,
    webhook_schedule,
    webhook_signature,
    webhooks_schedule,
)

__all__ = [
    "EVENT_DECIDED",
    "EVENT_EXECUTED",
    "IDEMPOTENCY_HEADER",
    "REFUSALS",
    "AlreadyDecided",
    "ClaimedByOther",
    "DecisionRefused",
    "EscalationStep",
    "IdempotencyKeyInFlight",
    "IdempotencyKeyReused",
    "IdempotencyPurge",
    "IdempotentReplay",
    "ModelInfo",
    "Refusal",
    "ReviewConflict",
    "Submission",
    "Usage",
    "decision_record",
    "escalation_sweep",
    "execution_retry",
    "execution_retry_at",
    "idempotency_key_check",
    "idempotency_key_purge",
    "idempotency_key_use",
    "idempotency_request_hash",
    "outbox_add",
    "outbox_add_many",
    "outbox_done",
    "outbox_relay",
    "outbox_relay_many",
    "outbox_retry_at",
    "outbox_sweep",
    "sla_deadline",
    "suggestion_claim",
    "suggestion_claim_next",
    "suggestion_execute",
    "suggestion_release",
    "suggestion_submit",
    "suggestions_submit_many",
    "webhook_body",
    "webhook_deliver",
    "webhook_headers",
    "webhook_schedule",
    "webhook_signature",
    "webhooks_schedule",
]
