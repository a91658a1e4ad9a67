"""Races between reviewers, on PostgreSQL with real connections and real commits."""

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, transaction

from audit.models import AuditEvent
from reviews.models import Decision, DecisionOutcome, Suggestion, SuggestionStatus
from reviews.services import AlreadyDecided, decision_record, suggestion_claim_next
from tests.concurrency import run_together
from tests.factories import submit

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_eight_reviewers_working_a_queue_of_200_never_share_an_item(
    capability, api_client_row, make_reviewer
):
    for number in range(200):
        submit(api_client_row, capability, external_id=f"ticket-{number}")
    reviewers = [make_reviewer(capability, username=f"reviewer{n}") for n in range(8)]

    def work_queue(user: Any) -> Callable[[], list[str]]:
        def work() -> list[str]:
            claimed = []
            while (item := suggestion_claim_next(user=user)) is not None:
                claimed.append(str(item.pk))
                decision_record(user=user, suggestion_id=item.pk, outcome=DecisionOutcome.APPROVED)
            return claimed

        return work

    results = run_together([work_queue(user) for user in reviewers])
    assert not [r for r in results if isinstance(r, Exception)], results
    claimed = [pk for per_reviewer in results for pk in per_reviewer]
    assert len(claimed) == 200
    assert len(set(claimed)) == 200
    assert sum(1 for per_reviewer in results if per_reviewer) > 1  # the work was shared
    assert not Suggestion.objects.exclude(status=SuggestionStatus.APPROVED).exists()
    assert Decision.objects.filter(is_final=True, reviewer__isnull=False).count() == 200
    claims = Counter(
        AuditEvent.objects.filter(action="suggestion.claimed").values_list("subject_id", flat=True)
    )
    assert len(claims) == 200 and set(claims.values()) == {1}
    sequences = list(AuditEvent.objects.order_by("sequence").values_list("sequence", flat=True))
    assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))


def test_two_concurrent_decisions_on_one_item_leave_exactly_one(
    capability, api_client_row, make_reviewer
):
    suggestion = submit(api_client_row, capability)
    rita, sam = make_reviewer(capability), make_reviewer(capability)
    results = run_together(
        [
            lambda: decision_record(user=rita, suggestion_id=suggestion.pk, outcome="approved"),
            lambda: decision_record(
                user=sam, suggestion_id=suggestion.pk, outcome="rejected", reason="Wrong order"
            ),
        ]
    )
    decisions = [r for r in results if isinstance(r, Decision)]
    refusals = [r for r in results if isinstance(r, AlreadyDecided)]
    assert len(decisions) == 1 and len(refusals) == 1, results
    assert Decision.objects.filter(suggestion=suggestion).count() == 1
    suggestion.refresh_from_db()
    assert (
        suggestion.status == {"approved": "approved", "rejected": "rejected"}[decisions[0].outcome]
    )
    assert (
        AuditEvent.objects.filter(subject_id=str(suggestion.pk), action="decision.recorded").count()
        == 1
    )


def test_claim_next_passes_candidates_others_hold_and_scans_on(
    capability, other_capability, api_client_row, make_reviewer, monkeypatch
):
    """Claim-next looks at the first few free items of each capability; when another
    transaction holds every one of them, it scans the whole queue instead of giving up."""
    monkeypatch.setattr("reviews.services.claims._CLAIM_CANDIDATES", 1)
    api_client_row.capabilities.add(other_capability)
    first, second = submit(api_client_row, capability), submit(api_client_row, other_capability)
    third = submit(api_client_row, capability)
    reviewer = make_reviewer(capability, other_capability)
    holding, done = threading.Event(), threading.Event()

    def hold_the_candidates() -> None:
        try:
            with transaction.atomic():
                rows = Suggestion.objects.select_for_update().filter(pk__in=[first.pk, second.pk])
                assert len(rows) == 2
                holding.set()
                done.wait(timeout=30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_candidates)
    holder.start()
    try:
        assert holding.wait(timeout=30)
        claimed = suggestion_claim_next(user=reviewer)
    finally:
        done.set()
        holder.join(timeout=30)
    assert claimed is not None and claimed.pk == third.pk
