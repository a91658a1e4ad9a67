import uuid
from typing import Any

from django.conf import settings
from django.db import models

from capabilities.models import ApiClient, Capability, Policy
from capabilities.policies import describe_route_reason


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
    FAILED = "failed", "Failed"


class Suggestion(models.Model):
    """An action an AI system proposes on a capability, and where it stands.

    ``payload`` is what the system proposed and is kept as sent; ``final_payload`` is what was
    approved (equal to ``payload`` unless a reviewer edited it). ``prompt`` and ``context`` are
    stored already redacted. ``policy`` is the version that routed it. The claim fields say which
    reviewer holds the item, and until when.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    capability = models.ForeignKey(Capability, on_delete=models.PROTECT, related_name="suggestions")
    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="suggestions")
    api_client = models.ForeignKey(
        ApiClient, on_delete=models.PROTECT, related_name="suggestions", null=True, blank=True
    )
    external_id = models.CharField(max_length=200, blank=True)
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

    def __str__(self) -> str:
        who = self.reviewer or "policy"
        return f"{self.outcome} by {who}"

    @property
    def is_automatic(self) -> bool:
        return self.reviewer_id is None
