"""Fast seeding for benchmarks: a long, valid audit chain written with COPY.

The chain is computed exactly as ``audit_event_record`` computes it (same hashing, same head
update), only without a transaction per event, so a million events take seconds, not an hour.
"""

import datetime as dt
from collections.abc import Iterator

from django.db import connection, transaction

from audit import chain
from audit.models import AuditChainHead, AuditEvent

ACTIONS = ("suggestion.received", "suggestion.routed", "suggestion.claimed", "decision.recorded")


def synthetic_events(start: int, count: int, prev_hash: str) -> Iterator[tuple[dict, str]]:
    """``count`` realistic events chained after ``prev_hash``, as (fields, hash) pairs."""
    moment = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for sequence in range(start, start + count):
        action = ACTIONS[sequence % len(ACTIONS)]
        fields = {
            "sequence": sequence,
            "occurred_at": moment + dt.timedelta(milliseconds=sequence),
            "actor_type": "system" if action.endswith(("received", "routed")) else "user",
            "actor_id": str(sequence % 40),
            "actor_label": f"reviewer{sequence % 40}",
            "action": action,
            "subject_type": "suggestion",
            "subject_id": f"00000000-0000-4000-8000-{sequence // 4:012d}",
            "capability": f"capability{sequence % 20}.act",
            "data": {
                "outcome": "approved",
                "reason": "Matches the order history and the refund policy.",
                "policy_version": 3,
                "confidence": "0.87",
                "changes": [],
            },
        }
        digest = chain.event_hash(fields, prev_hash)
        yield fields, digest
        prev_hash = digest


def seed_audit_events(total: int) -> int:
    """Extend the chain to at least ``total`` events; returns how many were added."""
    with transaction.atomic():
        head = AuditChainHead.objects.select_for_update().get(pk=1)
        missing = total - head.sequence
        if missing <= 0:
            return 0
        columns = (*chain.EVENT_FIELDS, "hash")
        last_hash = head.hash
        last_sequence = head.sequence
        with connection.cursor() as cursor:
            raw = cursor.cursor
            if connection.vendor == "postgresql":
                copy_sql = f"COPY audit_auditevent ({', '.join(columns)}) FROM STDIN"
                with raw.copy(copy_sql) as copy:
                    for fields, digest in synthetic_events(head.sequence + 1, missing, head.hash):
                        copy.write_row(
                            (
                                *(
                                    chain.canonical_json(fields[c]) if c == "data" else fields[c]
                                    for c in chain.EVENT_FIELDS[:-1]
                                ),
                                last_hash,
                                digest,
                            )
                        )
                        last_hash, last_sequence = digest, fields["sequence"]
            else:
                batch = []
                for fields, digest in synthetic_events(head.sequence + 1, missing, head.hash):
                    batch.append(AuditEvent(**fields, prev_hash=last_hash, hash=digest))
                    last_hash, last_sequence = digest, fields["sequence"]
                AuditEvent.objects.bulk_create(batch, batch_size=2000)
        AuditChainHead.objects.filter(pk=1).update(
            sequence=last_sequence,
            hash=last_hash,
            checkpoint_requested_sequence=last_sequence,
        )
    return missing
