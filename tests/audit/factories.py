"""Test data for the audit trail."""

import datetime as dt
from typing import Any

from django.db import transaction

from audit import chain
from audit.models import AuditChainHead, AuditEvent


def append_recorded_at(when: dt.datetime, **fields: Any) -> AuditEvent:
    """Continue the chain with an event dated ``when``, hashed and linked like any other.

    The trail dates its events itself; pages that filter by time need events from other days.
    """
    with transaction.atomic():
        head = AuditChainHead.objects.select_for_update().get(pk=1)
        fields = {**fields, "sequence": head.sequence + 1, "occurred_at": when}
        fields["data"] = chain.normalize_data(fields["data"])
        digest = chain.event_hash(fields, head.hash)
        event = AuditEvent.objects.create(**fields, prev_hash=head.hash, hash=digest)
        AuditChainHead.objects.filter(pk=1).update(sequence=event.sequence, hash=digest)
    return event
