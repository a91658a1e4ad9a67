"""The one way to write to the audit trail."""

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit import chain, signing
from audit.models import ActorType, AuditAction, AuditChainHead, AuditCheckpoint, AuditEvent
from audit.verification import Checkpoint
from config.jobs import enqueue_on_commit

logger = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class NewEvent:
    """One event for ``audit_events_record``: what ``audit_event_record`` takes as arguments."""

    actor: Actor
    action: AuditAction
    subject: Subject
    data: dict[str, Any] | None = None
    capability: str = ""


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
    _require_transaction("audit_event_record")
    [event] = audit_events_record([NewEvent(actor, action, subject, data, capability)])
    return event


def audit_events_record(events: Sequence[NewEvent]) -> list[AuditEvent]:
    """Append ``events`` to the chain in their order, inside the caller's transaction.

    The result is what calling ``audit_event_record`` for each in turn would store: the same
    fields, numbered on from the head without gaps, each chained to the one before and hashed
    by ``audit.chain``; they share one ``occurred_at``. The head is locked once, the events
    are inserted together and the head moves once, so a thousand events hold the lock for
    about as long as a few single appends; on PostgreSQL, a few events (a submission's two)
    take a single statement. A checkpoint is requested as ``audit_event_record``
    would, at most once. Must be called inside ``transaction.atomic()``, as late in it as the
    caller can: the head stays locked until the commit.
    """
    _require_transaction("audit_events_record")
    if not events:
        return []
    if connection.vendor == "postgresql" and len(events) <= _ONE_STATEMENT_MAX:
        stored, head = _append_in_one_statement([_event_fields(event) for event in events])
        if checkpoint_request := _checkpoint_request(head, stored[-1]):
            AuditChainHead.objects.filter(pk=1).update(**checkpoint_request)
        return stored
    # Everything that does not depend on the head is done before locking it.
    rows = [AuditEvent(**_event_fields(event)) for event in events]
    head = _lock_chain_head()
    occurred_at = timezone.now()
    prev_hash = head.hash
    for sequence, row in enumerate(rows, start=head.sequence + 1):
        row.sequence, row.occurred_at, row.prev_hash = sequence, occurred_at, prev_hash
        row.hash = prev_hash = chain.event_hash(_hashed_fields(row), row.prev_hash)
    stored = AuditEvent.objects.bulk_create(rows)
    last = stored[-1]
    AuditChainHead.objects.filter(pk=1).update(
        sequence=last.sequence, hash=last.hash, **_checkpoint_request(head, last)
    )
    return stored


def _require_transaction(name: str) -> None:
    if not connection.in_atomic_block:
        raise transaction.TransactionManagementError(
            f"{name}() must run inside the transaction of the change it records"
        )


def _event_fields(event: NewEvent) -> dict[str, Any]:
    """The stored fields of ``event`` that do not depend on its place in the chain."""
    return {
        "actor_type": str(event.actor.type),
        "actor_id": event.actor.id,
        "actor_label": event.actor.label,
        "action": str(event.action),
        "subject_type": event.subject.type,
        "subject_id": event.subject.id,
        "capability": event.capability,
        "data": chain.normalize_data(event.data or {}),
    }


def _hashed_fields(event: AuditEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in chain.EVENT_FIELDS}


# Lock the head, insert the events hashed by the database, and move the head: one round trip.
# Every append waits for the head until the appending transaction commits, so the time the lock
# is held bounds the audited writes per second; this keeps it to this statement and the commit.
# Each hash is SHA-256 over the same canonical document as chain.event_hash, completed with the
# values of the row before it (the head's, for the first): tests verify events appended this
# way with the Python implementation. Event n's parameters are suffixed _n.
_APPEND_HEAD = """
WITH head AS (
    SELECT sequence, hash, checkpoint_requested_sequence, checkpoint_requested_at,
           clock_timestamp() AS now
    FROM audit_auditchainhead WHERE id = 1 FOR UPDATE
)"""
_APPEND_EVENT = """, e{n} AS (
    INSERT INTO audit_auditevent (sequence, occurred_at, actor_type, actor_id, actor_label,
                                  action, subject_type, subject_id, capability, data,
                                  prev_hash, hash)
    SELECT {before}.sequence + 1, head.now,
           %(actor_type_{n})s::text, %(actor_id_{n})s::text, %(actor_label_{n})s::text,
           %(action_{n})s::text, %(subject_type_{n})s::text, %(subject_id_{n})s::text,
           %(capability_{n})s::text, %(data_{n})s::jsonb,
           {before}.hash,
           encode(sha256(convert_to(
               %(before_time_{n})s::text
               || to_char(head.now AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
               || %(before_prev_{n})s::text || {before}.hash
               || %(before_sequence_{n})s::text || ({before}.sequence + 1)::text
               || %(after_sequence_{n})s::text, 'UTF8')), 'hex')
    FROM {rows}
    RETURNING id, sequence, occurred_at, prev_hash, hash
)"""
_APPEND_TAIL = """, moved AS (
    UPDATE audit_auditchainhead SET sequence = last.sequence, hash = last.hash
    FROM e{last} AS last WHERE audit_auditchainhead.id = 1
)
SELECT appended.id, appended.sequence, appended.occurred_at, appended.prev_hash, appended.hash,
       head.checkpoint_requested_sequence, head.checkpoint_requested_at
FROM ({appended}) AS appended, head
ORDER BY appended.sequence"""
# Up to this many events are appended in one statement; more are hashed in Python and inserted
# together (the statement's text grows with them, and each count is prepared once).
_ONE_STATEMENT_MAX = 4


@functools.cache
def _append_sql(count: int) -> str:
    """The statement that appends ``count`` events (see ``_APPEND_HEAD``)."""
    events = "".join(
        _APPEND_EVENT.format(
            n=n,
            before="head" if n == 0 else f"e{n - 1}",
            rows="head" if n == 0 else f"head, e{n - 1}",
        )
        for n in range(count)
    )
    appended = " UNION ALL ".join(f"SELECT * FROM e{n}" for n in range(count))  # noqa: S608 - names only
    return _APPEND_HEAD + events + _APPEND_TAIL.format(last=count - 1, appended=appended)


def _append_in_one_statement(
    fields_list: Sequence[dict[str, Any]],
) -> tuple[list[AuditEvent], AuditChainHead]:
    """PostgreSQL: append up to ``_ONE_STATEMENT_MAX`` events in a single statement (see
    ``_APPEND_HEAD``); returns them, and the head as it was before them."""
    params: dict[str, Any] = {}
    for n, fields in enumerate(fields_list):
        before_time, before_prev, before_sequence, after_sequence = chain.event_document_parts(
            fields
        )
        values = {
            **fields,
            "data": chain.canonical_json(fields["data"]),
            "before_time": before_time,
            "before_prev": before_prev,
            "before_sequence": before_sequence,
            "after_sequence": after_sequence,
        }
        params.update({f"{name}_{n}": value for name, value in values.items()})
    sql = _append_sql(len(fields_list))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
        if not rows:  # no head row (a flushed database): recreate it, then append
            _lock_chain_head()
            cursor.execute(sql, params)
            rows = cursor.fetchall()
    events = []
    for fields, (pk, sequence, occurred_at, prev_hash, digest, _, _) in zip(
        fields_list, rows, strict=True
    ):
        event = AuditEvent(
            pk=pk,
            sequence=sequence,
            occurred_at=occurred_at,
            prev_hash=prev_hash,
            hash=digest,
            **fields,
        )
        event._state.adding = False
        event._state.db = connection.alias
        events.append(event)
    _pk, sequence, _at, prev_hash, _hash, requested_sequence, requested_at = rows[0]
    head = AuditChainHead(
        sequence=sequence - 1,
        hash=prev_hash,
        checkpoint_requested_sequence=requested_sequence,
        checkpoint_requested_at=requested_at,
    )
    return events, head


def audit_checkpoint_write() -> AuditCheckpoint | None:
    """Sign and store a checkpoint of the chain's current head, if it moved since the last one.

    Returns the new checkpoint, or None when there is nothing new to sign. When
    ``SIGNOFF_AUDIT_CHECKPOINT_FILE`` is set, the checkpoint is also appended there as a JSON
    line once it commits.
    """
    with transaction.atomic():
        head = _lock_chain_head()  # appends wait a moment: the head cannot move while signing
        latest = AuditCheckpoint.objects.order_by("-sequence").first()
        if head.sequence == 0 or (latest is not None and latest.sequence >= head.sequence):
            return None
        signed_at = chain.format_timestamp(timezone.now())
        message = signing.checkpoint_message(
            sequence=head.sequence, head_hash=head.hash, signed_at=signed_at
        )
        signature = signing.sign(message)
        record = Checkpoint(
            sequence=head.sequence,
            head_hash=head.hash,
            signed_at=signed_at,
            algorithm=signature.algorithm,
            key_id=signature.key_id,
            signature=signature.signature,
        )
        checkpoint = AuditCheckpoint.objects.create(
            **{**record.as_dict(), "signed_at": parse_datetime(signed_at)}
        )
        path = settings.SIGNOFF_AUDIT_CHECKPOINT_FILE
        if path:
            line = chain.canonical_json(record.as_dict())
            transaction.on_commit(lambda: _append_line(path, line))
    return checkpoint


def _checkpoint_request(head: AuditChainHead, event: AuditEvent) -> dict[str, Any]:
    """Ask for a checkpoint once ``CHECKPOINT_EVERY`` events or ``CHECKPOINT_MINUTES`` passed
    since the last request; the head remembers the request, so one crossing asks once."""
    if head.checkpoint_requested_at is None:  # a new chain: start counting, sign later
        return {
            "checkpoint_requested_sequence": event.sequence,
            "checkpoint_requested_at": event.occurred_at,
        }
    events_since = event.sequence - head.checkpoint_requested_sequence
    waited = event.occurred_at - head.checkpoint_requested_at
    if (
        events_since < settings.SIGNOFF_AUDIT_CHECKPOINT_EVERY
        and waited.total_seconds() < settings.SIGNOFF_AUDIT_CHECKPOINT_MINUTES * 60
    ):
        return {}
    from audit.tasks import write_checkpoint  # tasks import services

    enqueue_on_commit(write_checkpoint)
    return {
        "checkpoint_requested_sequence": event.sequence,
        "checkpoint_requested_at": event.occurred_at,
    }


def _append_line(path: str, line: str) -> None:
    try:
        with open(path, "a", encoding="utf-8") as file:
            file.write(line + "\n")
    except OSError:
        logger.exception("could not append the audit checkpoint to %s", path)


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
