"""The one way to write to the audit trail."""

from dataclasses import dataclass
from typing import Any, Protocol

from django.db import connection, transaction
from django.utils import timezone

from audit import chain
from audit.models import ActorType, AuditAction, AuditChainHead, AuditEvent


class _UserLike(Protocol):
    pk: Any

    def get_username(self) -> str: ...


@dataclass(frozen=True)
class Actor:
    """Who caused an event, as plain values."""

    type: str
    id: str = ""
    label: str = ""

    @classmethod
    def user(cls, user: _UserLike) -> "Actor":
        return cls(ActorType.USER, str(user.pk), user.get_username())

    @classmethod
    def api_client(cls, client_id: object, name: str) -> "Actor":
        return cls(ActorType.API_CLIENT, str(client_id), name)

    @classmethod
    def system(cls, label: str = "signoff") -> "Actor":
        return cls(ActorType.SYSTEM, "", label)


@dataclass(frozen=True)
class Subject:
    """What an event is about: a type name and an identifier."""

    type: str
    id: str

    @classmethod
    def of(cls, obj: Any) -> "Subject":
        return cls(obj._meta.model_name, str(obj.pk))


def audit_event_record(
    *,
    actor: Actor,
    action: AuditAction,
    subject: Subject,
    data: dict[str, Any] | None = None,
    capability: str = "",
) -> AuditEvent:
    """Append one event to the chain, inside the caller's transaction.

    Must be called inside ``transaction.atomic()``: the event commits or rolls back with the
    change it records. Appends are serialised by a lock on the chain head, so concurrent
    callers wait for each other's commit; keep the surrounding transaction short.
    """
    if not connection.in_atomic_block:
        raise transaction.TransactionManagementError(
            "audit_event_record() must run inside the transaction of the change it records"
        )
    head = _lock_chain_head()
    fields: dict[str, Any] = {
        "sequence": head.sequence + 1,
        "occurred_at": timezone.now(),
        "actor_type": str(actor.type),
        "actor_id": actor.id,
        "actor_label": actor.label,
        "action": str(action),
        "subject_type": subject.type,
        "subject_id": subject.id,
        "capability": capability,
        "data": chain.normalize_data(data or {}),
    }
    digest = chain.event_hash(fields, head.hash)
    event = AuditEvent.objects.create(**fields, prev_hash=head.hash, hash=digest)
    AuditChainHead.objects.filter(pk=1).update(sequence=event.sequence, hash=digest)
    return event


def _lock_chain_head() -> AuditChainHead:
    """Lock the chain head: whoever holds it appends next; the rest wait for this commit.

    The migration creates the head. Should it be missing (a database flushed by a test
    runner), it is recreated at the genesis; if events survived, the next one then collides
    with an existing sequence number and the write fails loudly instead of forking the chain.
    """
    try:
        return AuditChainHead.objects.select_for_update().get(pk=1)
    except AuditChainHead.DoesNotExist:
        AuditChainHead.objects.bulk_create(
            [AuditChainHead(pk=1, sequence=0, hash=chain.GENESIS_HASH)], ignore_conflicts=True
        )
        return AuditChainHead.objects.select_for_update().get(pk=1)
