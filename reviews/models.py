import datetime as dt
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from capabilities.models import ApiClient, Capability, Policy
from capabilities.policies import describe_route_reason
from reviews.identifiers import uuid7


class SuggestionStatus(models.TextChoices):
    PENDING_REVIEW = "pending_review", "Pending review"
    ESCALATED = "escalated", "Escalated"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    AUTO_APPROVED = "auto_approved", "Auto-approved"
    AUTO_REJECTED = "auto_rejected", "Auto-rejected"
    EXPIRED = "expired", "Expired"


OPEN_STATUSES = (SuggestionStatus.PENDING_REVIEW, SuggestionStatus.ESCALATED)
APPROVED_STATUSES = (SuggestionStatus.APPROVED, SuggestionStatus.AUTO_APPROVED)


class ExecutionStatus(models.TextChoices):
    NOT_STARTED = "not_started", "Not started"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    # Failed for now: retried at ``execution_next_attempt_at`` until attempts run out.
    FAILED = "failed", "Failed"


# Where an item without a deadline sorts in the queue: after every real deadline.
NO_DEADLINE = dt.datetime(9999, 12, 31, tzinfo=dt.UTC)


class NoDeadline(models.Func):
    """``NO_DEADLINE`` as an SQL literal, not a parameter: the queue's ORDER BY must repeat
    its index's expression exactly, also in a prepared statement's generic plan."""

    arity = 0
    template = "'9999-12-31 00:00:00'"
    output_field = models.DateTimeField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return "'9999-12-31 00:00:00+00'::timestamptz", []


def sla_order_key() -> Coalesce:
    """The queue's first sort key: the deadline, or ``NO_DEADLINE`` for an item without one."""
    return Coalesce(F("due_at"), NoDeadline())


class Suggestion(models.Model):
    """An action an AI system proposes on a capability, and where it stands.

    ``payload`` is what the system proposed and is kept as sent; ``final_payload`` is what was
    approved (equal to ``payload`` unless a reviewer edited it). ``prompt`` and ``context`` are
    stored already redacted. ``policy`` is the version that routed it. The claim fields say which
    reviewer holds the item, and until when.
    """

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    # No index of their own for ``capability`` and ``api_client``: the composite indexes below
    # start with them and serve every lookup one would, and each index costs every insert.
    capability = models.ForeignKey(
        Capability, on_delete=models.PROTECT, related_name="suggestions", db_index=False
    )
    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="suggestions")
    api_client = models.ForeignKey(
        ApiClient,
        on_delete=models.PROTECT,
        related_name="suggestions",
        null=True,
        blank=True,
        db_index=False,
    )
    external_id = models.CharField(max_length=200, blank=True)
    # SHA-256 of the payload's canonical JSON: the same proposal, whoever made it and when.
    fingerprint = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=20, choices=SuggestionStatus.choices)
    route_reason = models.CharField(max_length=64)

    payload = models.JSONField()
    final_payload = models.JSONField(null=True, blank=True)
    confidence = models.FloatField()
    model_name = models.CharField(max_length=200)
    model_version = models.CharField(max_length=200, blank=True)
    model_provider = models.CharField(max_length=100, blank=True)
    prompt = models.TextField(blank=True)
    context = models.JSONField(default=dict, blank=True)
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    cost = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    attempt = models.PositiveIntegerField(default=1)
    callback_url = models.URLField(max_length=500, blank=True)

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="claimed_suggestions",
    )
    claim_expires_at = models.DateTimeField(null=True, blank=True)

    execution_status = models.CharField(
        max_length=20, choices=ExecutionStatus.choices, default=ExecutionStatus.NOT_STARTED
    )
    execution_attempts = models.PositiveIntegerField(default=0)
    execution_error = models.TextField(blank=True)
    execution_result = models.JSONField(null=True, blank=True)
    executed_at = models.DateTimeField(null=True, blank=True)
    execution_duration_ms = models.PositiveIntegerField(null=True, blank=True)
    execution_next_attempt_at = models.DateTimeField(null=True, blank=True)

    # The escalation ladder: 0 reviewers, 1 senior reviewers, 2 the capability's owner. An open
    # suggestion not decided by ``due_at`` climbs a rung; past the top, its policy's default
    # decides it.
    escalation_level = models.PositiveSmallIntegerField(default=0)
    due_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The queue: open items of a capability, oldest first.
            models.Index(
                fields=["capability", "created_at"],
                condition=models.Q(status__in=["pending_review", "escalated"]),
                name="suggestion_open_queue",
            ),
            # A client's own list, newest first, optionally by status or external id.
            models.Index(fields=["api_client", "-created_at"], name="suggestion_client_recent"),
            models.Index(fields=["api_client", "external_id"], name="suggestion_client_external"),
            models.Index(fields=["status", "created_at"], name="suggestion_status_age"),
            models.Index(
                fields=["due_at"],
                condition=models.Q(status__in=["pending_review", "escalated"]),
                name="suggestion_open_due",
            ),
            # The queue in its default order: the soonest deadline first, those without one
            # last, then the oldest. Ordered scans of it give any page of the queue, and the
            # keyset of the next page is a range of it (see ``reviews.selectors``).
            models.Index(
                sla_order_key(),
                F("created_at"),
                F("id"),
                condition=models.Q(status__in=["pending_review", "escalated"]),
                name="suggestion_open_sla_order",
            ),
            # The same order within one capability: the queue filtered by capability, and each
            # capability's first rows of a reviewer's queue (``first_ids_by_capability``). It
            # also holds every column the queue's conditions and counts read, after the unique
            # ``id`` (so they change no order): the queue reads it in order and alone, with no
            # table row to fetch per candidate, and the counts, reading every open item of the
            # reviewer's capabilities, are answered from it alone too.
            models.Index(
                F("capability"),
                sla_order_key(),
                F("created_at"),
                F("id"),
                F("status"),
                F("due_at"),
                F("escalation_level"),
                F("api_client"),
                F("policy"),
                F("claimed_by"),
                F("claim_expires_at"),
                condition=models.Q(status__in=["pending_review", "escalated"]),
                name="suggestion_open_cap_order",
            ),
            # Open items oldest first: the queue sorted by age. The plain ``created_at`` index
            # would walk every decided item older than the first open one.
            models.Index(
                fields=["created_at", "id"],
                condition=models.Q(status__in=["pending_review", "escalated"]),
                name="suggestion_open_age",
            ),
            # The API's lists filtered by capability, newest first.
            models.Index(
                fields=["capability", "created_at", "id"], name="suggestion_capability_recent"
            ),
            # The managers' failed executions, latest failure first: the few that failed for
            # good, not the million that ran.
            models.Index(
                fields=["executed_at", "id"],
                condition=models.Q(
                    execution_status="failed", execution_next_attempt_at__isnull=True
                ),
                name="suggestion_failed_for_good",
            ),
            # The review page's similar decisions. Declared here rather than with db_index on
            # the field, which on PostgreSQL adds a text-pattern twin for LIKE queries that
            # nobody runs, and every submission would pay for both.
            models.Index(fields=["fingerprint"], name="suggestion_fingerprint"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(confidence__gte=0) & models.Q(confidence__lte=1),
                name="suggestion_confidence_unit_interval",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.capability.key} {self.external_id or self.pk}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def is_override(self) -> bool:
        return self.final_payload is not None and self.final_payload != self.payload

    @property
    def proposal(self) -> Any:
        """The payload the next approver is asked to approve: while four-eyes approval is under
        way, the one already approved by someone (edits included); otherwise the proposal."""
        if self.is_open and self.final_payload is not None:
            return self.final_payload
        return self.payload

    @property
    def route_reason_text(self) -> str:
        return describe_route_reason(self.route_reason)

    @property
    def sla_state(self) -> str:
        """Where an open item stands against the deadline of its rung of the escalation
        ladder: ``on_time``, ``due_soon`` (under a quarter of its policy's SLA left) or
        ``overdue``; empty without a deadline or once decided."""
        if self.due_at is None or not self.is_open or not self.policy.sla_minutes:
            return ""
        left = self.due_at - timezone.now()
        if left <= dt.timedelta(0):
            return "overdue"
        if left < dt.timedelta(minutes=self.policy.sla_minutes) / 4:
            return "due_soon"
        return "on_time"


class DecisionOutcome(models.TextChoices):
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    ESCALATED = "escalated", "Escalated"


class Decision(models.Model):
    """A decision on a suggestion: a person's, or the policy's when ``reviewer`` is empty.

    ``is_final`` marks the decision that closed the suggestion; at most one exists per
    suggestion (a database constraint backs the lock in the service). An escalation is not
    final. ``is_override`` marks an approval whose ``final_payload`` differs from the proposal.
    """

    suggestion = models.ForeignKey(Suggestion, on_delete=models.PROTECT, related_name="decisions")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="decisions",
    )
    outcome = models.CharField(max_length=16, choices=DecisionOutcome.choices)
    is_final = models.BooleanField()
    reason = models.TextField(blank=True)
    final_payload = models.JSONField(null=True, blank=True)
    is_override = models.BooleanField(default=False)
    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["suggestion"],
                condition=models.Q(is_final=True),
                name="decision_one_final_per_suggestion",
            ),
        ]
        indexes = [
            # The queue leaves out what the reviewer already did: their approvals still waiting
            # for a second person, and the items they escalated. Both are a handful of rows
            # among the reviewer's thousands of final decisions.
            models.Index(
                fields=["reviewer", "suggestion"],
                condition=models.Q(is_final=False, outcome="approved"),
                name="decision_approval_waiting",
            ),
            models.Index(
                fields=["reviewer", "suggestion"],
                condition=models.Q(outcome="escalated"),
                name="decision_escalated_by",
            ),
        ]

    def __str__(self) -> str:
        who = self.reviewer or "policy"
        return f"{self.outcome} by {who}"

    @property
    def is_automatic(self) -> bool:
        return self.reviewer_id is None


class OutboxKind(models.TextChoices):
    EXECUTE = "execute", "Run the capability's handler"
    WEBHOOK = "webhook", "Deliver a webhook"


class OutboxItem(models.Model):
    """Work that must happen because of a committed change, written in that same transaction.

    ``transaction.on_commit`` alone loses the work when the process dies between the commit and
    the enqueue. An outbox row cannot be lost that way: the relay enqueues it after the commit,
    and a periodic sweep enqueues again whatever is due and not done (never enqueued, or its
    worker died). ``ref`` identifies the subject (a suggestion id, a webhook delivery id); the
    job that runs it is idempotent for it.
    """

    kind = models.CharField(max_length=16, choices=OutboxKind.choices)
    ref = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    available_at = models.DateTimeField(help_text="Not to be run before this (retries back off).")
    enqueued_at = models.DateTimeField(null=True, blank=True)
    enqueue_count = models.PositiveIntegerField(default=0)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["available_at", "id"]
        indexes = [
            models.Index(
                fields=["available_at"],
                condition=models.Q(done_at__isnull=True),
                name="outbox_due",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "ref"],
                condition=models.Q(done_at__isnull=True),
                name="outbox_one_open_item_per_subject",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.ref}"


class WebhookState(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed (retries exhausted)"
    GONE = "gone", "Stopped (the receiver answered 410 Gone)"


class WebhookDelivery(models.Model):
    """One message to a submitter's ``callback_url`` (Standard Webhooks), and how it went.

    ``message_id`` is the ``webhook-id`` header: the same across retries, so a receiver can
    drop duplicates. Every attempt is kept in ``WebhookAttempt``.
    """

    suggestion = models.ForeignKey(Suggestion, on_delete=models.PROTECT, related_name="webhooks")
    message_id = models.CharField(max_length=64, unique=True)
    event_type = models.CharField(max_length=64)
    url = models.URLField(max_length=500)
    payload = models.JSONField()
    state = models.CharField(max_length=16, choices=WebhookState.choices, default="pending")
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.event_type} {self.message_id}"


class WebhookAttempt(models.Model):
    """One HTTP attempt of a webhook delivery."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="tries")
    attempted_at = models.DateTimeField(auto_now_add=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["attempted_at", "id"]

    def __str__(self) -> str:
        return f"{self.delivery_id} → {self.status_code or self.error[:40]}"


class IdempotencyState(models.TextChoices):
    IN_FLIGHT = "in_flight", "In flight"
    COMPLETED = "completed", "Completed"


class IdempotencyKey(models.Model):
    """An ``Idempotency-Key`` a client sent with a submission, and the answer it got.

    Scoped to the API client. The same key with the same body replays ``response_body`` byte
    for byte; with another body it is refused (422); while the first request is in flight, a
    second one gets 409. Kept at least ``SIGNOFF_IDEMPOTENCY_TTL_SECONDS``.
    """

    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="idempotency_keys")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    state = models.CharField(max_length=16, choices=IdempotencyState.choices)
    capability_key = models.CharField(max_length=100, blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.BinaryField(null=True, blank=True)
    replays = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["client", "key"], name="idempotency_key_per_client"),
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_age")]

    def __str__(self) -> str:
        return f"{self.client_id}:{self.key}"
