"""Fast seeding for benchmarks: a realistic world of capabilities, reviewers and a million
suggestions, and a long, valid audit chain, written with COPY.

The chain is computed exactly as ``audit_event_record`` computes it (same hashing, same head
update), only without a transaction per event, so a million suggestions and their three
million events take minutes, not a day. ``python manage.py audit_verify`` passes afterwards.

What is seeded (``seed_suggestions``) is what the benchmarks need and nothing the product would
not write itself: every suggestion has its ``suggestion.received`` and ``suggestion.routed``
events; every decided one its final ``Decision`` and, when a person decided, the
``suggestion.claimed`` and ``decision.recorded`` events.
"""

import datetime as dt
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection, models, transaction
from django.utils import timezone

from audit import chain
from audit.models import AuditChainHead, AuditEvent
from audit.services import Actor
from capabilities.models import ApiClient, Capability, Policy
from reviews.diffing import payload_fingerprint
from reviews.models import Decision, Suggestion

CAPABILITIES = 20
REVIEWERS = 8
# Each reviewer may review a quarter of the capabilities: the queue filters on permissions, as
# a real one does, and two reviewers share each quarter (so claims really compete).
REVIEWER_GROUPS = 4
SPAN = dt.timedelta(days=60)
BENCH_ACTOR = Actor.system("bench")
_CHUNK = 20_000  # suggestions held in memory at once


@dataclass(frozen=True)
class BenchWorld:
    """The capabilities, policies, API client and reviewers the benchmarks work with."""

    capabilities: list[Capability]
    policies: dict[int, Policy]  # active policy by capability id
    client: ApiClient
    reviewers: list[Any]

    def reviewer_of(self, capability_index: int) -> Any:
        """A reviewer allowed on the capability (the first of the two who share it)."""
        return self.reviewers[capability_index % REVIEWER_GROUPS]


def bench_world() -> BenchWorld:
    """Get or create the benchmark world: 20 capabilities ``bench.capNN`` (half with a 60-minute
    SLA), an owner, an API client scoped to all of them, and 8 reviewers, each allowed to review
    5 capabilities. Created through the services, so it is audited as any setup is."""
    from capabilities.services import api_client_create, capability_create, permission_grant

    user_model = get_user_model()
    owner, _ = user_model.objects.get_or_create(username="bench-owner")
    capabilities = []
    for index in range(CAPABILITIES):
        key = f"bench.cap{index:02d}"
        capability = Capability.objects.filter(key=key).first() or capability_create(
            key=key,
            name=f"Bench capability {index:02d}",
            owner=owner,
            auto_approve_at=Decimal("0.95"),
            auto_reject_below=Decimal("0.20"),
            sla_minutes=60 if index % 2 == 0 else None,
            actor=BENCH_ACTOR,
        )
        capabilities.append(capability)
    client = ApiClient.objects.filter(name="bench-client").first()
    if client is None:
        client = api_client_create(
            name="bench-client", capabilities=capabilities, actor=BENCH_ACTOR
        ).token.client
    reviewers = []
    for index in range(REVIEWERS):
        reviewer, created = user_model.objects.get_or_create(username=f"bench-reviewer{index}")
        if created:
            for capability in capabilities[index % REVIEWER_GROUPS :: REVIEWER_GROUPS]:
                permission_grant(
                    user=reviewer,
                    permission="capabilities.review_capability",
                    capability=capability,
                    actor=BENCH_ACTOR,
                )
        reviewers.append(reviewer)
    policies = {
        policy.capability_id: policy
        for policy in Policy.objects.filter(capability__in=capabilities).order_by("version")
    }
    return BenchWorld(capabilities, policies, client, reviewers)


# --- Suggestions --------------------------------------------------------------------------------

_SUGGESTION_COLUMNS = (
    "id",
    "capability_id",
    "policy_id",
    "api_client_id",
    "external_id",
    "fingerprint",
    "status",
    "route_reason",
    "payload",
    "final_payload",
    "confidence",
    "model_name",
    "model_version",
    "model_provider",
    "prompt",
    "context",
    "input_tokens",
    "output_tokens",
    "cost",
    "attempt",
    "callback_url",
    "created_at",
    "decided_at",
    "claimed_by_id",
    "claim_expires_at",
    "execution_status",
    "execution_attempts",
    "execution_error",
    "execution_result",
    "executed_at",
    "execution_duration_ms",
    "execution_next_attempt_at",
    "escalation_level",
    "due_at",
)
_DECISION_COLUMNS = (
    "suggestion_id",
    "reviewer_id",
    "outcome",
    "is_final",
    "reason",
    "final_payload",
    "is_override",
    "policy_id",
    "created_at",
)
# How the decided suggestions were decided, in turn: (status, decision outcome, by a person).
_DECIDED = (
    ("approved", "approved", True),
    ("auto_approved", "approved", False),
    ("rejected", "rejected", True),
    ("approved", "approved", True),
    ("auto_rejected", "rejected", False),
)
_ROUTE_REASONS = {
    "approved": "confidence_between_thresholds",
    "rejected": "confidence_between_thresholds",
    "pending_review": "confidence_between_thresholds",
    "auto_approved": "confidence_at_or_above_auto_approve",
    "auto_rejected": "confidence_below_auto_reject",
}
_CONFIDENCE = {"auto_approved": 0.97, "auto_rejected": 0.12}


def _decided(n: int) -> tuple[str, str, bool]:
    # By round, not by row: each capability gets every kind of decision in turn.
    return _DECIDED[n // CAPABILITIES % len(_DECIDED)]


def bench_suggestion_count(world: BenchWorld) -> int:
    return Suggestion.objects.filter(capability__in=world.capabilities).count()


def seed_suggestions(total: int, *, pending_share: float = 0.1) -> int:
    """Top the benchmark capabilities up to ``total`` suggestions; returns how many were added.

    The new suggestions are spread over the last 60 days, one capability after another in turn
    (a round is one suggestion for each). In the newest fifth, every other round is still
    pending (a tenth of the whole, with the default ``pending_share``); everything else was
    decided, each kind of decision in turn. Suggestions, decisions and audit events are written
    with COPY in one transaction, the chain extended from its current head.
    """
    world = bench_world()
    missing = total - bench_suggestion_count(world)
    if missing <= 0:
        return 0
    backlog_from = missing - int(missing * pending_share * 2)
    step = SPAN / missing
    start = timezone.now() - SPAN
    with transaction.atomic():
        for first in range(0, missing, _CHUNK):
            suggestions: list[dict[str, Any]] = []
            decisions: list[dict[str, Any]] = []
            events: list[dict[str, Any]] = []
            for n in range(first, min(first + _CHUNK, missing)):
                pending = n >= backlog_from and (n - backlog_from) // CAPABILITIES % 2 == 0
                row = _suggestion_row(world, n, start + step * n, pending)
                suggestions.append(row)
                decision = None if pending else _decision_row(world, n, row)
                if decision is not None:
                    decisions.append(decision)
                events.extend(_events_of(world, n, row, decision))
            _copy(Suggestion, _SUGGESTION_COLUMNS, suggestions)
            _copy(Decision, _DECISION_COLUMNS, decisions)
            chain_append(events)
    return missing


def _suggestion_row(world: BenchWorld, n: int, created_at: dt.datetime, pending: bool) -> dict:
    index = n % CAPABILITIES
    capability = world.capabilities[index]
    policy = world.policies[capability.pk]
    status, _outcome, _by_person = _decided(n)
    status = "pending_review" if pending else status
    payload = {
        "order": f"A-{n:07d}",
        "amount": f"{(n % 500) + 10}.00",
        "currency": "EUR",
        "reason": "Damaged on arrival",
        "lines": [{"sku": f"SKU-{n % 997}", "quantity": 1 + n % 3}],
    }
    decided_at = None if pending else created_at + dt.timedelta(minutes=3)
    approved = status in ("approved", "auto_approved")
    return {
        "id": uuid.uuid4(),
        "capability_id": capability.pk,
        "policy_id": policy.pk,
        "api_client_id": world.client.pk,
        "external_id": f"bench-{n}",
        "fingerprint": payload_fingerprint(payload),
        "status": status,
        "route_reason": _ROUTE_REASONS[status],
        "payload": payload,
        "final_payload": payload if approved else None,
        "confidence": _CONFIDENCE.get(status, 0.5 + (n % 40) / 100),
        "model_name": "gpt-4o",
        "model_version": "2024-08-06",
        "model_provider": "openai",
        "prompt": f"Customer asks for a refund of order A-{n:07d}: the parcel arrived damaged.",
        "context": {"channel": "email", "customer_tier": ("gold", "silver", "bronze")[n % 3]},
        "input_tokens": 1200,
        "output_tokens": 300,
        "cost": Decimal("0.0042"),
        "attempt": 1,
        "callback_url": "",
        "created_at": created_at,
        "decided_at": decided_at,
        "claimed_by_id": None,
        "claim_expires_at": None,
        "execution_status": "succeeded" if approved else "not_started",
        "execution_attempts": 1 if approved else 0,
        "execution_error": "",
        "execution_result": {} if approved else None,
        "executed_at": decided_at if approved else None,
        "execution_duration_ms": 12 if approved else None,
        "execution_next_attempt_at": None,
        "escalation_level": 0,
        "due_at": (
            created_at + dt.timedelta(minutes=policy.sla_minutes)
            if pending and policy.sla_minutes
            else None
        ),
    }


def _decision_row(world: BenchWorld, n: int, suggestion: dict) -> dict:
    _status, outcome, by_person = _decided(n)
    reviewer = world.reviewer_of(n % CAPABILITIES) if by_person else None
    return {
        "suggestion_id": suggestion["id"],
        "reviewer_id": reviewer.pk if reviewer else None,
        "outcome": outcome,
        "is_final": True,
        "reason": "Matches the order history." if by_person else suggestion["route_reason"],
        "final_payload": suggestion["final_payload"],
        "is_override": False,
        "policy_id": suggestion["policy_id"],
        "created_at": suggestion["decided_at"],
    }


def _events_of(
    world: BenchWorld, n: int, suggestion: dict, decision: dict | None
) -> Iterator[dict[str, Any]]:
    """The events the product writes for this suggestion, in order."""
    subject = {"subject_type": "suggestion", "subject_id": str(suggestion["id"])}
    capability = world.capabilities[n % CAPABILITIES].key
    created_at = suggestion["created_at"]
    client = Actor.api_client(world.client.pk, world.client.name)
    yield event_fields(
        client,
        "suggestion.received",
        created_at,
        capability,
        subject,
        {"external_id": suggestion["external_id"], "confidence": suggestion["confidence"]},
    )
    yield event_fields(
        Actor.system("policy"),
        "suggestion.routed",
        created_at,
        capability,
        subject,
        {"status": suggestion["status"], "reason": suggestion["route_reason"]},
    )
    if decision is None or decision["reviewer_id"] is None:
        return
    reviewer = world.reviewer_of(n % CAPABILITIES)
    decided_at = suggestion["decided_at"]
    yield event_fields(
        Actor.user(reviewer), "suggestion.claimed", decided_at, capability, subject, {}
    )
    yield event_fields(
        Actor.user(reviewer),
        "decision.recorded",
        decided_at,
        capability,
        subject,
        {"outcome": decision["outcome"], "reason": decision["reason"], "final": True},
    )


def event_fields(
    actor: Actor,
    action: str,
    occurred_at: dt.datetime,
    capability: str,
    subject: dict[str, str],
    data: dict[str, Any],
) -> dict[str, Any]:
    """An event's fields as ``audit_event_record`` would fill them, but for sequence and hash."""
    return {
        "occurred_at": occurred_at,
        "actor_type": str(actor.type),
        "actor_id": actor.id,
        "actor_label": actor.label,
        "action": action,
        "capability": capability,
        "data": chain.normalize_data(data),
        **subject,
    }


# --- The chain ------------------------------------------------------------------------------------


def chain_append(events: Iterable[dict[str, Any]]) -> int:
    """Append ``events`` (fields without sequence and hashes) to the chain, hashed as
    ``audit_event_record`` hashes, in the caller's transaction; returns how many."""
    head = AuditChainHead.objects.select_for_update().get(pk=1)
    prev_hash, sequence = head.hash, head.sequence
    rows = []
    for fields in events:
        sequence += 1
        fields = {**fields, "sequence": sequence}
        digest = chain.event_hash(fields, prev_hash)
        rows.append({**fields, "prev_hash": prev_hash, "hash": digest})
        prev_hash = digest
    columns = (*chain.EVENT_FIELDS, "hash")
    _copy(AuditEvent, columns, rows)
    AuditChainHead.objects.filter(pk=1).update(
        sequence=sequence, hash=prev_hash, checkpoint_requested_sequence=sequence
    )
    return len(rows)


def seed_audit_events(total: int) -> int:
    """Extend the chain to at least ``total`` events; returns how many were added."""
    with transaction.atomic():
        head = AuditChainHead.objects.select_for_update().get(pk=1)
        missing = total - head.sequence
        if missing <= 0:
            return 0
        return chain_append(synthetic_events(missing))


def synthetic_events(count: int) -> Iterator[dict[str, Any]]:
    """``count`` realistic decision events, a millisecond apart from now on."""
    moment = timezone.now()
    actions = ("suggestion.received", "suggestion.routed", "suggestion.claimed")
    for n in range(count):
        action = (*actions, "decision.recorded")[n % 4]
        system = action in actions[:2]
        yield event_fields(
            Actor.system("policy") if system else Actor("user", str(n % 40), f"reviewer{n % 40}"),
            action,
            moment + dt.timedelta(milliseconds=n),
            f"capability{n % 20}.act",
            {"subject_type": "suggestion", "subject_id": f"00000000-0000-4000-8000-{n // 4:012d}"},
            {
                "outcome": "approved",
                "reason": "Matches the order history and the refund policy.",
                "policy_version": 3,
                "confidence": "0.87",
                "changes": [],
            },
        )


# --- Writing ----------------------------------------------------------------------------------


def _copy(model: type[models.Model], columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts by column name) into ``model``'s table: with COPY on PostgreSQL,
    JSON values written as their canonical text; with ``bulk_create`` elsewhere."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create((model(**row) for row in rows), batch_size=1000)
        return
    sql = f"COPY {model._meta.db_table} ({', '.join(columns)}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row([_json_as_text(row[column]) for column in columns])


def _json_as_text(value: Any) -> Any:
    return chain.canonical_json(value) if isinstance(value, dict | list) else value
