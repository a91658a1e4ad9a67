"""Reads of the audit trail."""

from django.db.models import QuerySet

from audit.models import AuditEvent


def audit_events_for(*, subject_type: str, subject_id: str) -> QuerySet[AuditEvent]:
    """The events about one subject, in chain order."""
    return AuditEvent.objects.filter(subject_type=subject_type, subject_id=subject_id).order_by(
        "sequence"
    )
