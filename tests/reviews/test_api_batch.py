"""``POST /api/v1/suggestions/batch/``: many suggestions in one request, each treated exactly as
``POST /api/v1/suggestions/`` treats one, written together."""

import json
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

from audit import chain
from audit.models import AuditChainHead, AuditEvent
from audit.selectors import audit_chain_head, audit_event_rows
from audit.services import Actor, NewEvent, Subject, audit_event_record, audit_events_record
from audit.verification import verify_events
from capabilities.models import Capability
from capabilities.services import api_client_update, api_token_issue
from reviews.models import (
    Decision,
    ExecutionStatus,
    IdempotencyKey,
    OutboxItem,
    Suggestion,
    WebhookDelivery,
)
from reviews.services import ModelInfo, Submission, suggestions_submit_many
from tests.concurrency import run_together
from tests.factories import ApiClientFactory
from tests.reviews.test_api import _ABSENT, bearer, valid_body

pytestmark = pytest.mark.django_db

URL = "/api/v1/suggestions/batch/"
SINGLE_URL = "/api/v1/suggestions/"
KEY = "7d0c2b9e-1f4a-4c3e-8b5d-6a9f0e1d2c3b"
TESTS = Actor.system("tests")


def item(**changes: Any) -> dict[str, Any]:
    """A complete, valid item: the single endpoint's test body, with something to redact."""
    redactable = {
        "prompt": "Refund for alice@example.com please.",
        "context": {"channel": "email", "password": "hunter2"},
    }
    return valid_body(**{**redactable, **changes})


def small_item(number: int, confidence: float = 0.5) -> dict[str, Any]:
    return {
        "capability": "refunds.issue",
        "external_id": f"t-{number}",
        "payload": {"amount": "1.00"},
        "confidence": confidence,
        "model": {"name": "gpt-4o"},
    }


def mixed_items(count: int) -> list[dict[str, Any]]:
    """``count`` items that the policy approves, rejects and leaves for review in turn, each
    with a callback (so each auto-decided one has a webhook as well)."""
    confidences = (0.95, 0.1, 0.5)
    return [
        item(external_id=f"t-{n}", confidence=confidences[n % 3], context={"n": n})
        for n in range(count)
    ]


@pytest.fixture
def api(issued) -> APIClient:
    """Calls the API with the token of the client scoped to ``refunds.issue``."""
    return bearer(issued.secret)


def post(client: APIClient, body: Any, *, key: str | None = None, url: str = URL) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body)
    headers = {} if key is None else {"Idempotency-Key": key}
    return client.generic("POST", url, raw, content_type="application/json", headers=headers)


def answered(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    return response.json()


def assert_refused(response: Any, status: int, code: str, field: str | None = None) -> dict:
    assert response.status_code == status, response.content
    error = response.json()
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    if field is not None:
        assert list(error["fields"]) == [field], error
    return error


def stored_nothing() -> bool:
    return (
        not Suggestion.objects.exists()
        and not Decision.objects.exists()
        and not OutboxItem.objects.exists()
        and not WebhookDelivery.objects.exists()
        and not AuditEvent.objects.filter(action__startswith="suggestion.").exists()
    )


def chain_verifies() -> bool:
    rows = audit_event_rows(AuditEvent.objects.order_by("sequence"))
    report = verify_events(rows, head=audit_chain_head())
    return report.ok


# --- Each item on its own ---------------------------------------------------------------------


def test_valid_items_are_created_and_each_invalid_one_is_named_in_its_place(api):
    items = [
        item(external_id="first"),
        item(confidence=1.5),
        item(model={"version": "1"}),
        item(capability="nothing.here"),
        item(external_id="last"),
    ]

    answer = answered(post(api, {"items": items}))

    assert (answer["created"], answer["failed"]) == (2, 3)
    results = answer["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert [r["status"] for r in results] == [201, 400, 400, 400, 201]
    assert [r["suggestion"]["external_id"] for r in (results[0], results[4])] == ["first", "last"]
    errors = [results[i]["error"] for i in (1, 2, 3)]
    assert [e["code"] for e in errors] == ["invalid"] * 3
    assert [list(e["fields"]) for e in errors] == [["confidence"], ["model.name"], ["capability"]]
    assert all("suggestion" not in r for r in results[1:4])
    assert all("error" not in r for r in (results[0], results[4]))
    assert sorted(Suggestion.objects.values_list("external_id", flat=True)) == ["first", "last"]


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(item(confidence="0.5"), id="confidence-string"),
        pytest.param(item(payload=[1, 2]), id="payload-list"),
        pytest.param(item(model={"name": "x" * 201}), id="model-name-too-long"),
        pytest.param(item(usage={"cost": "-1"}), id="usage-cost-negative"),
        pytest.param(item(callback_url="javascript:alert(1)"), id="callback-not-http"),
        pytest.param(item(capability=_ABSENT), id="capability-missing"),
        pytest.param(item(capability="content.moderate"), id="capability-out-of-scope"),
        pytest.param(item(payload={"amount": 120}), id="payload-against-the-schema"),
        pytest.param("not an object", id="item-a-string"),
        pytest.param(None, id="item-null"),
    ],
)
def test_an_item_is_refused_with_the_status_and_error_the_single_endpoint_answers(
    api, capability, other_capability, bad
):
    Capability.objects.filter(pk=capability.pk).update(
        payload_schema={"type": "object", "properties": {"amount": {"type": "string"}}}
    )
    single = post(api, bad, url=SINGLE_URL)
    assert single.status_code in (400, 403), single.content
    assert not Suggestion.objects.exists()

    answer = answered(post(api, {"items": [item(), bad, item()]}))

    refused = answer["results"][1]
    assert refused["status"] == single.status_code
    if bad is None:  # the single endpoint's word for an empty body differs; the field does not
        assert list(refused["error"]["fields"]) == list(single.json()["fields"])
    else:
        assert refused["error"] == single.json()
    assert (answer["created"], answer["failed"]) == (2, 1)
    assert Suggestion.objects.count() == 2


def test_an_item_outside_the_token_scope_is_403_and_the_others_are_created(api, other_capability):
    answer = answered(post(api, {"items": [item(capability="content.moderate"), item()]}))

    refused, created = answer["results"]
    assert refused["status"] == 403
    assert refused["error"]["code"] == "capability_not_in_scope"
    assert "content.moderate" in refused["error"]["message"]
    assert created["status"] == 201
    assert Suggestion.objects.get().capability.key == "refunds.issue"


def test_a_refused_item_leaves_no_trace_of_its_own(api, capability):
    items = [item(external_id="a", confidence=0.95), item(external_id="b", confidence=2)]
    items += [item(external_id="c", confidence=0.1)]

    answer = answered(post(api, {"items": items}))

    assert [r["status"] for r in answer["results"]] == [201, 400, 201]
    created = {r["suggestion"]["id"] for r in answer["results"] if r["status"] == 201}
    assert set(map(str, Suggestion.objects.values_list("pk", flat=True))) == created
    subjects = AuditEvent.objects.filter(action__startswith="suggestion.")
    assert set(subjects.values_list("subject_id", flat=True)) == created
    assert subjects.count() == 4
    assert Decision.objects.count() == 2
    assert not Suggestion.objects.filter(external_id="b").exists()


def test_when_every_item_is_refused_the_answer_is_still_200(api):
    answer = answered(post(api, {"items": [item(confidence=-1), item(payload="x")]}))

    assert (answer["created"], answer["failed"]) == (0, 2)
    assert [r["status"] for r in answer["results"]] == [400, 400]
    assert stored_nothing()


# --- The batch as a whole ---------------------------------------------------------------------


def test_more_than_1000_items_are_refused_naming_items_and_nothing_is_stored(api):
    items = [small_item(n) for n in range(1001)]

    response = post(api, {"items": items})

    error = assert_refused(response, 400, "invalid", "items")
    assert "1000" in error["fields"]["items"][0]
    assert stored_nothing()


def test_1000_items_are_taken_and_the_chain_verifies(api):
    items = [small_item(n, confidence=(0.95, 0.1, 0.5)[n % 3]) for n in range(1000)]

    answer = answered(post(api, {"items": items}))

    assert (answer["created"], answer["failed"]) == (1000, 0)
    assert Suggestion.objects.count() == 1000
    assert AuditEvent.objects.filter(action__startswith="suggestion.").count() == 2000
    assert chain_verifies()


def test_a_batch_may_be_larger_than_a_single_body_up_to_its_own_limit(api, settings):
    items = [item(external_id=f"big-{n}", prompt="p" * 900) for n in range(300)]
    body = json.dumps({"items": items}).encode()
    assert settings.SIGNOFF_MAX_BODY_BYTES < len(body) < settings.SIGNOFF_MAX_BATCH_BODY_BYTES

    assert answered(post(api, body))["created"] == 300

    settings.SIGNOFF_MAX_BATCH_BODY_BYTES = len(body) - 1
    before = Suggestion.objects.count()
    error = assert_refused(post(api, body), 413, "payload_too_large")
    assert str(len(body) - 1) in error["message"]
    assert Suggestion.objects.count() == before


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"items": []}, id="empty-list"),
        pytest.param({}, id="no-items"),
        pytest.param({"item": [small_item(1)]}, id="misspelt"),
        pytest.param({"items": small_item(1)}, id="items-an-object"),
        pytest.param({"items": "all of them"}, id="items-a-string"),
        pytest.param({"items": None}, id="items-null"),
        pytest.param([small_item(1)], id="body-a-list"),
        pytest.param("items", id="body-a-string"),
        pytest.param(None, id="body-null"),
    ],
)
def test_a_body_that_is_not_an_object_with_a_list_of_items_is_refused_naming_items(api, body):
    assert_refused(post(api, body), 400, "invalid", "items")
    assert stored_nothing()


def test_a_body_that_is_not_json_is_a_parse_error(api):
    assert_refused(post(api, b'{"items": ['), 400, "parse_error")
    assert stored_nothing()


def test_a_crash_while_writing_leaves_none_of_the_batch(api, monkeypatch):
    def crash(events: Any) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr("reviews.services.submission.audit_events_record", crash)

    with pytest.raises(RuntimeError):
        post(api, {"items": mixed_items(6)})

    assert stored_nothing()


# --- Routed, recorded and followed up exactly as single submissions ----------------------------


@pytest.mark.parametrize(
    ("confidence", "status", "reason", "outcome"),
    [
        (0.95, "auto_approved", "confidence_at_or_above_auto_approve", "approved"),
        (0.5, "pending_review", "confidence_between_thresholds", None),
        (0.1, "auto_rejected", "confidence_below_auto_reject", "rejected"),
    ],
)
def test_each_item_is_routed_by_the_active_policy(
    api, api_client_row, confidence, status, reason, outcome
):
    answer = answered(post(api, {"items": [item(confidence=confidence)]}))

    [result] = answer["results"]
    created = result["suggestion"]
    assert created["status"] == status
    assert created["route"] == {"reason": reason, "policy_version": 1}
    suggestion = Suggestion.objects.get()
    assert str(suggestion.pk) == created["id"]
    assert (suggestion.api_client, suggestion.status) == (api_client_row, status)
    if outcome is None:
        assert created["decisions"] == [] and not Decision.objects.exists()
        assert suggestion.due_at is None and suggestion.decided_at is None
    else:
        [decision] = created["decisions"]
        assert (decision["outcome"], decision["reviewer"], decision["reason"]) == (
            outcome,
            None,
            reason,
        )
        assert Decision.objects.get().is_final
    executions = OutboxItem.objects.filter(kind="execute", ref=str(suggestion.pk))
    assert executions.exists() == (status == "auto_approved")


def _recorded(suggestion: Suggestion) -> dict[str, Any]:
    """What a submission left, without what differs between any two submissions (ids, times)."""
    events = AuditEvent.objects.filter(subject_id=str(suggestion.pk)).order_by("sequence")
    webhooks = WebhookDelivery.objects.filter(suggestion=suggestion)
    return {
        "suggestion": {
            field: getattr(suggestion, field)
            for field in (
                "status",
                "route_reason",
                "payload",
                "final_payload",
                "fingerprint",
                "confidence",
                "model_name",
                "prompt",
                "context",
                "cost",
                "callback_url",
                "policy_id",
                "api_client_id",
            )
        },
        "has_deadline": suggestion.due_at is not None,
        "decided": suggestion.decided_at is not None,
        "decisions": list(
            Decision.objects.filter(suggestion=suggestion).values(
                "reviewer", "outcome", "is_final", "reason", "final_payload", "policy"
            )
        ),
        "events": list(
            events.values(
                "actor_type",
                "actor_id",
                "actor_label",
                "action",
                "subject_type",
                "capability",
                "data",
            )
        ),
        "webhooks": [
            (w.event_type, w.url, {**w.payload["data"], "id": None}, w.state) for w in webhooks
        ],
        "outbox": sorted(
            OutboxItem.objects.filter(
                ref__in=[str(suggestion.pk), *map(str, webhooks.values_list("pk", flat=True))]
            ).values_list("kind", flat=True)
        ),
    }


def test_rows_events_and_follow_up_work_are_those_of_single_submissions(api, capability):
    items = mixed_items(3)
    singles = [
        Suggestion.objects.get(pk=post(api, body, url=SINGLE_URL).json()["id"]) for body in items
    ]

    answer = answered(post(api, {"items": items}))

    batched = [Suggestion.objects.get(pk=r["suggestion"]["id"]) for r in answer["results"]]
    for single, batch in zip(singles, batched, strict=True):
        assert _recorded(batch) == _recorded(single)
    assert [s.status for s in batched] == ["auto_approved", "auto_rejected", "pending_review"]
    assert batched[0].context == {"n": 0}
    assert "[REDACTED:email]" in batched[0].prompt
    assert chain_verifies()


def test_each_suggestion_is_answered_as_the_single_endpoint_answers_it(api):
    body = item(confidence=0.95)
    single = post(api, body, url=SINGLE_URL).json()

    [result] = answered(post(api, {"items": [body]}))["results"]

    def comparable(answer: dict[str, Any]) -> dict[str, Any]:
        decisions = [{**d, "created_at": None} for d in answer["decisions"]]
        return {
            **answer,
            "id": None,
            "created_at": None,
            "decided_at": None,
            "decisions": decisions,
        }

    assert comparable(result["suggestion"]) == comparable(single)
    assert set(result["suggestion"]) == set(single)


def test_audit_events_come_in_item_order_received_then_routed(api):
    answer = answered(post(api, {"items": mixed_items(4)}))

    ids = [r["suggestion"]["id"] for r in answer["results"]]
    events = AuditEvent.objects.filter(action__startswith="suggestion.").order_by("sequence")
    assert list(events.values_list("subject_id", "action")) == [
        (pk, action) for pk in ids for action in ("suggestion.received", "suggestion.routed")
    ]
    assert len({e.occurred_at for e in events}) == 1
    assert chain_verifies()


def test_the_follow_up_work_is_relayed_after_the_commit(api, django_capture_on_commit_callbacks):
    items = [item(confidence=c, callback_url="") for c in (0.95, 0.1, 0.95, 0.5)]
    with django_capture_on_commit_callbacks(execute=True):
        answer = answered(post(api, {"items": items}))

    # Jobs run in-process in the tests: the approved ones' handlers have run.
    approved = [
        r["suggestion"]["id"]
        for r in answer["results"]
        if r["suggestion"]["status"] == "auto_approved"
    ]
    work = OutboxItem.objects.all()
    assert sorted(work.values_list("ref", flat=True)) == sorted(approved)
    assert {(w.kind, w.enqueue_count, w.done_at is not None) for w in work} == {
        ("execute", 1, True)
    }
    executed = Suggestion.objects.filter(execution_status=ExecutionStatus.SUCCEEDED)
    assert sorted(str(pk) for pk in executed.values_list("pk", flat=True)) == sorted(approved)


def test_query_count_does_not_grow_with_the_batch(api, django_assert_num_queries):
    answered(post(api, {"items": mixed_items(3)}))  # records the token's use, once a minute

    with CaptureQueriesContext(connection) as ten:
        answered(post(api, {"items": mixed_items(10)}))
    with django_assert_num_queries(len(ten.captured_queries)):
        answer = answered(post(api, {"items": mixed_items(50)}))

    assert answer["created"] == 50
    assert len(ten.captured_queries) < 25


def test_each_created_item_is_what_reading_its_suggestion_shows(api):
    with CaptureQueriesContext(connection) as submitted:
        answer = answered(post(api, {"items": mixed_items(6)}))

    # The answer's decisions are the ones just written, not read back.
    assert not [q for q in submitted.captured_queries if 'FROM "reviews_decision"' in q["sql"]]
    for result in answer["results"]:
        read = api.get(f"{SINGLE_URL}{result['suggestion']['id']}/")
        assert result["suggestion"] == read.json()


# --- Idempotency --------------------------------------------------------------------------------


def test_a_retried_batch_with_its_key_is_replayed_and_stored_once(api):
    body = {"items": [*mixed_items(3), item(confidence=7)]}
    first = post(api, body, key=KEY)
    retry = post(api, json.dumps(body, indent=2).encode(), key=KEY)

    assert first.status_code == retry.status_code == 200
    assert retry.content == first.content
    assert retry["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Suggestion.objects.count() == 3
    assert AuditEvent.objects.filter(action__startswith="suggestion.").count() == 6
    key = IdempotencyKey.objects.get()
    assert (key.response_status, key.replays) == (200, 1)


def test_the_same_key_with_another_batch_is_422(api):
    post(api, {"items": [item()]}, key=KEY)

    response = post(api, {"items": [item(), item()]}, key=KEY)

    assert_refused(response, 422, "idempotency_key_reused")
    assert Suggestion.objects.count() == 1


def test_a_refused_batch_is_replayed_with_the_same_error(api):
    first = post(api, {"items": []}, key=KEY)
    retry = post(api, {"items": []}, key=KEY)

    assert_refused(retry, 400, "invalid", "items")
    assert retry.content == first.content
    assert retry["Idempotent-Replayed"] == "true"


def test_a_replay_to_a_token_without_a_created_capability_in_scope_is_refused(
    api_client_row, capability, other_capability
):
    api_client_update(
        client=api_client_row, capabilities=[capability, other_capability], actor=TESTS
    )
    both = api_token_issue(client=api_client_row, actor=TESTS)
    narrow = api_token_issue(client=api_client_row, capabilities=[other_capability], actor=TESTS)
    body = {"items": [item(capability="content.moderate"), item()]}
    assert answered(post(bearer(both.secret), body, key=KEY))["created"] == 2

    response = post(bearer(narrow.secret), body, key=KEY)

    assert_refused(response, 403, "capability_not_in_scope")
    assert "refunds.issue" in response.json()["message"]
    assert Suggestion.objects.count() == 2


# --- Who may -----------------------------------------------------------------------------------


def test_a_person_signed_in_may_not_submit_a_batch(reviewer):
    client = APIClient()
    client.force_login(reviewer)

    assert_refused(post(client, {"items": [item()]}), 403, "permission_denied")
    assert stored_nothing()


def test_a_batch_without_a_token_is_401(capability):
    assert_refused(post(APIClient(), {"items": [item()]}), 401, "not_authenticated")
    assert stored_nothing()


def test_a_batch_is_only_posted(api):
    assert_refused(api.get(URL), 405, "method_not_allowed")


def test_a_token_of_another_client_is_refused_by_the_service(capability, api_client_row):
    other = ApiClientFactory.issue(capabilities=[capability])
    submission = Submission(
        capability=capability,
        payload={"amount": "1.00"},
        confidence=0.5,
        model=ModelInfo("gpt-4o"),
    )

    with pytest.raises(PermissionDenied):
        suggestions_submit_many(client=api_client_row, token=other.token, submissions=[submission])
    assert stored_nothing()


# --- Appending many audit events at once ------------------------------------------------------


def _events(count: int) -> list[NewEvent]:
    return [
        NewEvent(
            actor=Actor("user", "7", "maya"),
            action="policy.published",  # type: ignore[arg-type]
            subject=Subject("policy", str(n)),
            capability="refunds.issue",
            data={"version": n, "threshold": 0.9, "note": 'Ünïcode \u2028 and "quotes"'},
        )
        for n in range(count)
    ]


# On PostgreSQL, up to 4 events are appended in one statement that hashes in SQL, more are
# hashed in Python and inserted together: both must give what single appends would.
@pytest.mark.parametrize("count", [1, 2, 4, 5])
def test_events_appended_together_continue_the_chain_as_single_appends_would(db, count):
    with transaction.atomic():
        before = audit_event_record(
            actor=TESTS,
            action="policy.published",
            subject=Subject("policy", "0"),  # type: ignore[arg-type]
        )
        appended = audit_events_record(_events(count))
        after = audit_event_record(
            actor=TESTS,
            action="policy.published",
            subject=Subject("policy", "9"),  # type: ignore[arg-type]
        )

    expected = list(range(before.sequence + 1, before.sequence + count + 1))
    assert [e.sequence for e in appended] == expected
    assert appended[0].prev_hash == before.hash
    assert [e.prev_hash for e in appended[1:]] == [e.hash for e in appended[:-1]]
    assert after.prev_hash == appended[-1].hash
    assert AuditChainHead.objects.get().sequence == after.sequence
    for event in appended:
        stored = AuditEvent.objects.get(pk=event.pk)
        fields = {name: getattr(stored, name) for name in chain.EVENT_FIELDS}
        assert chain.event_hash(fields, stored.prev_hash) == stored.hash == event.hash
    stored = AuditEvent.objects.get(pk=appended[-1].pk)
    n = count - 1
    assert stored.data == {"version": n, "threshold": "0.9", "note": 'Ünïcode \u2028 and "quotes"'}
    assert chain_verifies()


def test_appending_no_events_does_nothing(db, django_assert_num_queries):
    with transaction.atomic(), django_assert_num_queries(0):
        assert audit_events_record([]) == []


@pytest.mark.django_db(transaction=True)
def test_appending_events_outside_a_transaction_is_refused():
    with pytest.raises(transaction.TransactionManagementError):
        audit_events_record(_events(1))
    assert not AuditEvent.objects.filter(action="policy.published").exists()


def test_a_checkpoint_is_requested_once_however_many_events_cross_the_line(
    db, settings, django_capture_on_commit_callbacks
):
    settings.SIGNOFF_AUDIT_CHECKPOINT_EVERY = 10
    with transaction.atomic():
        audit_events_record(_events(1))  # starts the clock on a new chain
    start = AuditChainHead.objects.get().checkpoint_requested_sequence

    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        audit_events_record(_events(25))

    assert len(callbacks) == 1
    assert AuditChainHead.objects.get().checkpoint_requested_sequence == start + 25


# --- Concurrency and the documentation -----------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_interleave_into_one_verifiable_chain(issued):
    def batch(number: int) -> Any:
        def send() -> int:
            items = [small_item(number * 100 + n, (0.95, 0.1, 0.5)[n % 3]) for n in range(60)]
            return post(bearer(issued.secret), {"items": items}).status_code

        return send

    results = run_together([batch(n) for n in range(4)])

    assert results == [200] * 4
    assert Suggestion.objects.count() == 240
    assert chain_verifies()


def test_the_schema_documents_the_batch_endpoint(client):
    response = client.get("/api/v1/schema/", {"format": "json"})

    schema = json.loads(response.content)
    validate_schema(schema)
    batch = schema["paths"][URL]["post"]
    assert batch["summary"] == "Submit suggestions in a batch"
    assert {"200", "400", "401", "403", "409", "413", "422"} <= set(batch["responses"])
    request = batch["requestBody"]["content"]["application/json"]
    assert request["examples"]
    items = schema["components"]["schemas"]["SuggestionBatchRequest"]["properties"]["items"]
    assert (items["minItems"], items["maxItems"]) == (1, 1000)
    assert items["items"] == {"$ref": "#/components/schemas/SuggestionSubmitRequest"}
    assert "Idempotency-Key" in {p["name"] for p in batch["parameters"]}


def test_the_docs_page_loads(client):
    assert client.get("/api/v1/docs/").status_code == 200


@pytest.mark.parametrize("key", ["refunds\x00issue", "refunds\ud800issue"])
def test_an_unstorable_capability_is_refused_in_its_place(api, key):
    answer = answered(post(api, {"items": [small_item(1), {**small_item(2), "capability": key}]}))
    assert (answer["created"], answer["failed"]) == (1, 1)
    refused = answer["results"][1]
    assert refused["status"] == 400
    assert list(refused["error"]["fields"]) == ["capability"]
