"""The benchmarks' own parts that must not rot between runs: ``bench_seed`` fills a database
the product could have written (the chain verifies, every decided item has its decision), and
the ingestion floor endpoints answer as the benchmark expects."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from rest_framework.test import APIClient

from audit.models import AuditEvent
from audit.selectors import audit_chain_head, audit_event_rows
from audit.verification import verify_events
from bench.ingest_bench import Target
from bench.seed import CAPABILITIES, REVIEWER_GROUPS, bench_world
from reviews.models import OPEN_STATUSES, Decision, Suggestion
from reviews.services import suggestion_claim_next
from tests.factories import submit

pytestmark = pytest.mark.django_db


def seed(count: int) -> str:
    out = StringIO()
    call_command("bench_seed", "--suggestions", str(count), stdout=out)
    return out.getvalue()


def test_bench_seed_writes_what_the_product_would_and_the_chain_verifies():
    assert "400 suggestion(s) added" in seed(400)

    suggestions = Suggestion.objects.all()
    assert suggestions.count() == 400
    open_items = suggestions.filter(status__in=OPEN_STATUSES)
    assert open_items.count() == 40  # a tenth
    # Every capability has open items, so every reviewer has work.
    assert open_items.values("capability").distinct().count() == CAPABILITIES
    decided = suggestions.exclude(status__in=OPEN_STATUSES)
    assert Decision.objects.filter(is_final=True).count() == decided.count() == 360
    assert set(decided.values_list("status", flat=True)) == {
        "approved",
        "rejected",
        "auto_approved",
        "auto_rejected",
    }
    received = AuditEvent.objects.filter(action="suggestion.received")
    assert received.count() == 400
    report = verify_events(
        audit_event_rows(AuditEvent.objects.order_by("sequence")), head=audit_chain_head()
    )
    assert report.ok, report.problem


def test_bench_seed_tops_up_and_its_reviewers_can_claim():
    seed(100)
    assert "20 suggestion(s) added" in seed(120)
    assert "0 suggestion(s) added" in seed(50)
    world = bench_world()
    assert len(world.reviewers) == 2 * REVIEWER_GROUPS
    claimed = suggestion_claim_next(user=world.reviewers[1])
    assert claimed is not None
    assert claimed.capability in world.capabilities[1::REVIEWER_GROUPS]


def test_bench_seed_refuses_a_database_with_real_suggestions(capability, api_client_row):
    submit(api_client_row, capability)
    with pytest.raises(CommandError, match="only fills a benchmark database"):
        seed(10)
    assert Suggestion.objects.count() == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--suggestions", "0"], "at least 1"),
        (["--suggestions", "10", "--pending-share", "0.9"], "between 0 and 0.5"),
    ],
)
def test_bench_seed_refuses_bad_arguments(args: list[str], message: str):
    with pytest.raises(CommandError, match=message):
        call_command("bench_seed", *args)
    assert not Suggestion.objects.exists()


@override_settings(ROOT_URLCONF="bench.urls")
def test_the_floor_endpoints_validate_and_insert_as_the_benchmark_expects():
    from bench.seed import BENCH_ACTOR
    from capabilities.services import api_token_issue

    world = bench_world()
    secret = api_token_issue(client=world.client, actor=BENCH_ACTOR).secret
    target = Target(0, secret, [c.key for c in world.capabilities])
    client = APIClient(headers={"Authorization": f"Bearer {secret}"})

    one = client.post("/bench/floor/", target.body(1), format="json")
    assert one.status_code == 201, one.content
    batch = client.post(
        "/bench/floor/batch/", {"items": [target.body(n) for n in range(3)]}, format="json"
    )
    assert batch.json() == {"created": 3}
    assert Suggestion.objects.filter(route_reason="floor").count() == 4
    bad = client.post("/bench/floor/", {**target.body(2), "confidence": 2}, format="json")
    assert bad.status_code == 400
    assert (
        client.post(
            "/bench/floor/", target.body(1), format="json", HTTP_AUTHORIZATION=""
        ).status_code
        == 401
    )
