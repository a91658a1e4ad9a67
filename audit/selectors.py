"""Reads of the audit trail."""

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

from django.db import connection
from django.db.models import CharField, Func, QuerySet, TextField
from django.db.models.functions import Cast

from audit import chain
from audit.export import COLUMNS
from audit.models import AuditChainHead, AuditCheckpoint, AuditEvent
from audit.verification import Checkpoint


def audit_events_for(*, subject_type: str, subject_id: str) -> QuerySet[AuditEvent]:
    """The events about one subject, in chain order."""
    return AuditEvent.objects.filter(subject_type=subject_type, subject_id=subject_id).order_by(
        "sequence"
    )


def audit_event_list(
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    actor: str = "",
    capability: str = "",
    action: str = "",
    subject_type: str = "",
    subject_id: str = "",
) -> QuerySet[AuditEvent]:
    """Events matching every given filter, in chain order. ``until`` is exclusive; ``actor``
    matches the actor's label exactly, case-insensitively."""
    events = AuditEvent.objects.all()
    if since is not None:
        events = events.filter(occurred_at__gte=since)
    if until is not None:
        events = events.filter(occurred_at__lt=until)
    if actor:
        events = events.filter(actor_label__iexact=actor)
    if capability:
        events = events.filter(capability=capability)
    if action:
        events = events.filter(action=action)
    if subject_type:
        events = events.filter(subject_type=subject_type)
    if subject_id:
        events = events.filter(subject_id=subject_id)
    return events.order_by("sequence")


def audit_events_any(events: QuerySet[AuditEvent]) -> bool:
    """Does ``events`` hold at least one event? One query that reads an index.

    Asked as "the first one in chain order": ``QuerySet.exists()`` drops the order, and
    PostgreSQL may then answer ``sequence > n`` with a table scan that expects a match at
    once but, the rows being stored in chain order, passes every older event first.
    """
    return events.order_by("sequence").values_list("sequence", flat=True).first() is not None


def audit_event_rows(
    events: QuerySet[AuditEvent], chunk_size: int = 5000
) -> Iterator[dict[str, Any]]:
    """Stream ``events`` as plain rows (``export.COLUMNS``), a chunk at a time.

    On PostgreSQL this is a server-side cursor (memory stays flat over millions of rows), and
    the database renders the timestamp and the JSON as text: verification and export re-encode
    them anyway, and skipping Django's per-row conversion nearly doubles their throughput.
    """
    if connection.vendor != "postgresql":
        for values in events.values_list(*COLUMNS).iterator(chunk_size=chunk_size):
            yield dict(zip(COLUMNS, values, strict=True))
        return
    as_text = events.annotate(
        occurred_at_text=_UtcTimestampText("occurred_at"), data_text=Cast("data", TextField())
    )
    columns = [{"occurred_at": "occurred_at_text", "data": "data_text"}.get(c, c) for c in COLUMNS]
    loads = json.loads
    for values in as_text.values_list(*columns).iterator(chunk_size=chunk_size):
        row = dict(zip(COLUMNS, values, strict=True))
        row["data"] = loads(row["data"])
        yield row


class _UtcTimestampText(Func):
    """PostgreSQL: a timestamp as ``chain.format_timestamp`` writes it."""

    template = "to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    output_field = CharField()


def audit_checkpoints() -> list[Checkpoint]:
    """Every stored checkpoint, oldest first."""
    return [
        Checkpoint.from_mapping(row)
        for row in AuditCheckpoint.objects.order_by("sequence").values(
            "sequence", "head_hash", "signed_at", "algorithm", "key_id", "signature"
        )
    ]


def audit_checkpoint_latest() -> Checkpoint | None:
    """The newest checkpoint, if any."""
    row = (
        AuditCheckpoint.objects.order_by("-sequence")
        .values("sequence", "head_hash", "signed_at", "algorithm", "key_id", "signature")
        .first()
    )
    return Checkpoint.from_mapping(row) if row else None


def audit_chain_head() -> tuple[int, str]:
    """The (sequence, hash) the database records as the chain's end."""
    head = AuditChainHead.objects.filter(pk=1).values_list("sequence", "hash").first()
    return head if head is not None else (0, chain.GENESIS_HASH)
