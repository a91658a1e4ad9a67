"""Many writers at once on PostgreSQL: the chain stays contiguous and verifies."""

import threading

import pytest
from django.db import connection

from audit.models import AuditEvent
from audit.selectors import audit_chain_head, audit_event_rows
from audit.verification import verify_events
from capabilities.services import policy_active
from reviews.models import Suggestion, SuggestionStatus
from reviews.services import decision_record

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

WRITERS, DECISIONS_EACH = 16, 500


def test_sixteen_writers_recording_500_decisions_each_leave_one_contiguous_chain(
    capability, api_client_row, make_reviewer
):
    policy = policy_active(capability)
    # Seeded directly: this test is about the decisions, not about intake.
    Suggestion.objects.bulk_create(
        Suggestion(
            capability=capability,
            policy=policy,
            api_client=api_client_row,
            status=SuggestionStatus.PENDING_REVIEW,
            route_reason="confidence_between_thresholds",
            payload={"n": n},
            confidence=0.5,
            model_name="gpt-4o",
        )
        for n in range(WRITERS * DECISIONS_EACH)
    )
    ids = list(Suggestion.objects.order_by("created_at", "id").values_list("pk", flat=True))
    reviewers = [make_reviewer(capability, username=f"writer{n}") for n in range(WRITERS)]
    before = AuditEvent.objects.count()
    barrier = threading.Barrier(WRITERS)
    errors: list[Exception] = []

    def write(index: int) -> None:
        try:
            barrier.wait()
            for pk in ids[index::WRITERS]:
                decision_record(
                    user=reviewers[index], suggestion_id=pk, outcome="rejected", reason="Duplicate"
                )
        except Exception as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)

    assert errors == []
    assert AuditEvent.objects.filter(action="decision.recorded").count() == 8000
    assert AuditEvent.objects.count() == before + 8000
    sequences = list(AuditEvent.objects.values_list("sequence", flat=True))
    assert sequences == list(range(1, len(sequences) + 1))
    report = verify_events(
        audit_event_rows(AuditEvent.objects.order_by("sequence")), head=audit_chain_head()
    )
    assert report.ok, report.problem
    assert report.events == len(sequences)
