from typing import Any

from django.db import models
from django.db.models.functions import Upper


class AuditAction(models.TextChoices):
    """Every kind of fact the trail records, as dotted ``<subject>.<verb>`` names."""

    SUGGESTION_RECEIVED = "suggestion.received", "Suggestion received"
    SUGGESTION_ROUTED = "suggestion.routed", "Suggestion routed"
    SUGGESTION_CLAIMED = "suggestion.claimed", "Suggestion claimed"
    SUGGESTION_RELEASED = "suggestion.released", "Suggestion released"
    DECISION_RECORDED = "decision.recorded", "Decision recorded"
    DECISION_REFUSED = "decision.refused", "Decision refused"
    SUGGESTION_ESCALATED = "suggestion.escalated", "Suggestion escalated by its deadline"
    EXECUTION_SUCCEEDED = "execution.succeeded", "Execution succeeded"
    EXECUTION_FAILED = "execution.failed", "Execution failed"
    EXECUTION_RETRIED = "execution.retried", "Execution retried by hand"
    WEBHOOK_DELIVERED = "webhook.delivered", "Webhook delivered"
    WEBHOOK_FAILED = "webhook.failed", "Webhook failed"
    CAPABILITY_CREATED = "capability.created", "Capability created"
    CAPABILITY_UPDATED = "capability.updated", "Capability updated"
    POLICY_PUBLISHED = "policy.published", "Policy published"
    API_CLIENT_CREATED = "api_client.created", "API client created"
    API_CLIENT_UPDATED = "api_client.updated", "API client updated"
    API_TOKEN_ISSUED = "api_token.issued", "API token issued"
    API_TOKEN_ROTATED = "api_token.rotated", "API token rotated"
    API_TOKEN_REVOKED = "api_token.revoked", "API token revoked"
    PERMISSION_GRANTED = "permission.granted", "Permission granted"
    PERMISSION_REVOKED = "permission.revoked", "Permission revoked"
    ROLE_GRANTED = "role.granted", "Role granted"
    ROLE_REVOKED = "role.revoked", "Role revoked"
    USER_CREATED = "user.created", "User created"
    USER_UPDATED = "user.updated", "User updated"
    LOGIN_LOCKED_OUT = "login.locked_out", "Login locked out"


class ActorType(models.TextChoices):
    USER = "user", "User"
    API_CLIENT = "api_client", "API client"
    SYSTEM = "system", "System"


class AppendOnlyQuerySet(models.QuerySet[Any]):
    """Refuses bulk changes: the trail is append-only (the database refuses them too)."""

    def update(self, **kwargs: object) -> int:
        raise TypeError("the audit trail is append-only: rows cannot be updated")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise TypeError("the audit trail is append-only: rows cannot be deleted")


class AuditEvent(models.Model):
    """One fact in the append-only, hash-chained audit trail.

    Written only by ``audit.services.audit_event_record``, inside the transaction of the change
    it describes, so a change and its event commit or roll back together. Rows are never updated
    or deleted: the ORM refuses, and database triggers refuse raw SQL too.

    Fields:

    * ``sequence``: position in the chain, 1, 2, 3 … without gaps.
    * ``occurred_at``: when the event was recorded (UTC).
    * ``actor_type`` / ``actor_id`` / ``actor_label``: who caused it: a user (id and username),
      an API client (id and name) or the system (e.g. the routing policy). Plain values, not
      foreign keys: the trail outlives and never depends on the rows it talks about.
    * ``action``: what happened, one of ``AuditAction``.
    * ``subject_type`` / ``subject_id``: what it happened to (``suggestion`` and its UUID,
      ``policy`` and its id, …).
    * ``capability``: the capability key involved, if any, for filtering.
    * ``data``: the details, as JSON: thresholds, outcome, reason, the diff of an edit …
      Already redacted by the caller.
    * ``prev_hash`` / ``hash``: the predecessor's hash and this event's own, see ``audit.chain``.
    """

    sequence = models.PositiveBigIntegerField(unique=True, editable=False)
    occurred_at = models.DateTimeField(editable=False)
    actor_type = models.CharField(max_length=16, choices=ActorType.choices, editable=False)
    actor_id = models.CharField(max_length=64, blank=True, editable=False)
    actor_label = models.CharField(max_length=150, blank=True, editable=False)
    action = models.CharField(max_length=64, choices=AuditAction.choices, editable=False)
    subject_type = models.CharField(max_length=32, editable=False)
    subject_id = models.CharField(max_length=64, editable=False)
    capability = models.CharField(max_length=100, blank=True, editable=False)
    data = models.JSONField(default=dict, editable=False)
    prev_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, editable=False)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["sequence"]
        indexes = [
            models.Index(fields=["subject_type", "subject_id", "sequence"]),
            models.Index(fields=["capability", "sequence"]),
            models.Index(fields=["action", "sequence"]),
            models.Index(fields=["occurred_at"]),
            # The auditor's actor filter matches labels whatever their case.
            models.Index(Upper("actor_label"), "sequence", name="audit_event_actor"),
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action} {self.subject_type}:{self.subject_id}"

    def save(self, *args: object, **kwargs: object) -> None:
        if not self._state.adding:
            raise TypeError("audit events are append-only: they cannot be changed")
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise TypeError("audit events are append-only: they cannot be deleted")


class AuditChainHead(models.Model):
    """The single row that serialises appends: the last sequence number and hash.

    Every append locks this row, so sequence numbers stay contiguous (a database sequence would
    leave gaps on rollback) and each event is chained to the one committed before it. It also
    remembers up to where a checkpoint was last requested, so that crossing the checkpoint
    interval asks for one checkpoint, not one per event.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    sequence = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64)
    checkpoint_requested_sequence = models.PositiveBigIntegerField(default=0)
    checkpoint_requested_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(id=1), name="audit_chain_head_single_row")
        ]

    def __str__(self) -> str:
        return f"chain head #{self.sequence}"


class AuditCheckpoint(models.Model):
    """A signed statement that the chain had ``head_hash`` at ``sequence`` at ``signed_at``.

    Exported beyond the database's reach (``audit_checkpoint --export``, or appended to
    ``SIGNOFF_AUDIT_CHECKPOINT_FILE`` as it is written), checkpoints reveal what the chain
    alone cannot: a cut tail, or a history rewritten and re-hashed after the fact. Append-only
    like the events.

    ``algorithm`` is ``ed25519`` (signed with ``SIGNOFF_AUDIT_SIGNING_KEY``, verifiable with
    the public key alone) or ``hmac-sha256`` (keyed with ``SIGNOFF_AUDIT_HMAC_KEY``);
    ``key_id`` names the key (a fingerprint), ``signature`` is hex.
    """

    sequence = models.PositiveBigIntegerField(unique=True, editable=False)
    head_hash = models.CharField(max_length=64, editable=False)
    signed_at = models.DateTimeField(editable=False)
    algorithm = models.CharField(max_length=16, editable=False)
    key_id = models.CharField(max_length=64, editable=False)
    signature = models.CharField(max_length=256, editable=False)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["sequence"]

    def __str__(self) -> str:
        return f"checkpoint #{self.sequence}"

    def save(self, *args: object, **kwargs: object) -> None:
        if not self._state.adding:
            raise TypeError("checkpoints are append-only: they cannot be changed")
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise TypeError("checkpoints are append-only: they cannot be deleted")
