"""Reads of the audit trail."""

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from django.db import connection, connections
from django.db.models import CharField, Func, Max, QuerySet, Subquery, TextField
from django.db.models.functions import Cast

from audit import chain
from audit.export import COLUMNS
from audit.models import AuditChainHead, AuditCheckpoint, AuditEvent
from audit.verification import (
    Checkpoint,
    Report,
    Slice,
    verify_events,
    verify_in_slices,
    verify_slice,
)
from config.processes import worker_pool


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


def audit_chain_verify(
    *,
    checkpoints: Sequence[Checkpoint] | None = None,
    public_key: str = "",
    jobs: int = 1,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """Verify the chain as stored: every event's hash, link and number from event 1, the
    signed ``checkpoints`` (by default the database's own), and the recorded head.

    The walk covers the events stored when it begins, up to the last of them, read with the
    head in one statement: events appended meanwhile are left to the next run instead of
    disagreeing with a head read earlier. The database's checkpoints are read before that,
    so none can be newer than the events walked (a checkpoint beyond them means events were
    removed). With ``jobs`` above 1 the chain is cut into as many slices of consecutive
    events, walked at once in as many processes, each with its own database connection, and
    joined: the report names the problem a single walk would have stopped at first.
    ``progress`` hears of a single walk's progress only. SQLite, the embedded default of small
    installations, is walked in one process.
    """
    if checkpoints is None:
        checkpoints = audit_checkpoints()
    head, last = _head_and_last_sequence()
    if jobs <= 1 or last < 2 or connection.vendor == "sqlite":
        return verify_events(
            audit_event_rows(_events_in(Slice(1, last, (), 0))),
            checkpoints=checkpoints,
            head=head,
            public_key=public_key,
            progress=progress,
        )
    started = time.perf_counter()
    report = verify_in_slices(
        last, jobs, _walk_in_processes, checkpoints=checkpoints, head=head, public_key=public_key
    )
    report.seconds = time.perf_counter() - started  # the processes' start and the join included
    return report


def _walk_in_processes(parts: list[Slice]) -> list[Report]:
    with worker_pool(len(parts)) as pool:
        return list(pool.map(_verify_slice_stored, parts))


def _head_and_last_sequence() -> tuple[tuple[int, str], int]:
    """The recorded head and the last stored event's number, as of one moment."""
    last_sequence = Subquery(AuditEvent.objects.order_by("-sequence").values("sequence")[:1])
    row = AuditChainHead.objects.filter(pk=1).values_list("sequence", "hash", last_sequence).first()
    if row is None:
        last = AuditEvent.objects.aggregate(top=Max("sequence"))["top"]
        return (0, chain.GENESIS_HASH), last or 0
    sequence, head_hash, last = row
    return (sequence, head_hash), last or 0


def _events_in(part: Slice) -> QuerySet[AuditEvent]:
    """The stored events of ``part``, in chain order; the first slice also takes any event
    numbered below 1, for its walk to report."""
    events = AuditEvent.objects.filter(sequence__lte=part.high)
    if part.low > 1:
        events = events.filter(sequence__gte=part.low)
    return events.order_by("sequence")


def _verify_slice_stored(part: Slice) -> Report:
    try:
        return verify_slice(audit_event_rows(_events_in(part)), part)
    finally:
        connections.close_all()
