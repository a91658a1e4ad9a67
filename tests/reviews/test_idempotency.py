"""Idempotent submission: an ``Idempotency-Key`` makes a retried POST safe."""

import datetime as dt
import json
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.test import APIClient

from audit.models import AuditEvent
from audit.services import Actor
from capabilities.services import api_token_issue, role_grant
from reviews import api as reviews_api
from reviews.models import IdempotencyKey, IdempotencyState, Suggestion
from reviews.selectors import RetryCount, submission_retry_counts
from reviews.services import idempotency_key_purge, idempotency_request_hash
from reviews.tasks import purge_idempotency_keys
from tests.factories import ApiClientFactory, UserFactory, submit

pytestmark = pytest.mark.django_db

URL = "/api/v1/suggestions/"
KEY = "3f1c9a52-7d4e-4b8a-9f0e-5a1b2c3d4e5f"
TESTS = Actor.system("tests")
SUGGESTION_EVENTS = ["suggestion.received", "suggestion.routed"]


def body(**changes: Any) -> dict[str, Any]:
    """A valid submission that waits for review (no handler runs)."""
    return {
        "capability": "refunds.issue",
        "external_id": "ticket-8812",
        "payload": {"amount": "120.00", "currency": "EUR", "order": "A-1"},
        "confidence": 0.5,
        "model": {"name": "gpt-4o", "version": "2024-08-06", "provider": "openai"},
        "prompt": "Customer asks for a refund.",
        "attempt": 1,
        **changes,
    }


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.fixture
def api(issued) -> APIClient:
    return bearer(issued.secret)


def post(client: APIClient, raw: str | bytes, key: str | None = KEY) -> Any:
    headers = {} if key is None else {"Idempotency-Key": key}
    return client.generic("POST", URL, raw, content_type="application/json", headers=headers)


def post_json(client: APIClient, data: dict[str, Any], key: str | None = KEY) -> Any:
    return post(client, json.dumps(data), key)


def suggestion_events() -> list[str]:
    return sorted(
        AuditEvent.objects.filter(action__startswith="suggestion.").values_list("action", flat=True)
    )


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    error = response.json()
    assert error["code"] == code, error
    return error


# --- Replays ----------------------------------------------------------------------------------


def test_same_key_and_body_replays_the_first_answer_byte_for_byte_and_submits_once(api):
    first = post_json(api, body())
    second = post_json(api, body())

    assert first.status_code == second.status_code == 201
    assert second.content == first.content
    assert second["Content-Type"] == first["Content-Type"] == "application/json"
    assert second["Location"] == first["Location"]
    assert second["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Suggestion.objects.count() == 1
    assert suggestion_events() == SUGGESTION_EVENTS
    key = IdempotencyKey.objects.get()
    assert key.state == IdempotencyState.COMPLETED
    assert key.response_status == 201
    assert bytes(key.response_body) == first.content
    assert key.replays == 1
    assert key.capability_key == "refunds.issue"


def test_the_same_body_formatted_differently_is_the_same_request(api):
    first = post(api, json.dumps(body()))
    reordered = dict(reversed(list(body().items())))
    second = post(api, json.dumps(reordered, indent=4, ensure_ascii=True).encode())

    assert second.status_code == 201
    assert second.content == first.content
    assert second["Idempotent-Replayed"] == "true"
    assert Suggestion.objects.count() == 1


def test_request_hash_ignores_key_order_and_whitespace_but_not_values():
    one = idempotency_request_hash(method="POST", path=URL, body={"a": 1, "b": {"c": "é"}})
    same = idempotency_request_hash(method="post", path=URL, body={"b": {"c": "é"}, "a": 1})
    other = idempotency_request_hash(method="POST", path=URL, body={"a": 2, "b": {"c": "é"}})
    elsewhere = idempotency_request_hash(method="POST", path="/x/", body={"a": 1, "b": {"c": "é"}})

    assert one == same
    assert len({one, other, elsewhere}) == 3


def test_same_key_with_another_body_is_422_and_stores_nothing(api):
    post_json(api, body())
    events = suggestion_events()

    response = post_json(api, body(confidence=0.6))

    error = assert_error(response, 422, "idempotency_key_reused")
    assert "Idempotency-Key" in error["message"]
    assert "Idempotent-Replayed" not in response
    assert Suggestion.objects.count() == 1
    assert suggestion_events() == events
    assert IdempotencyKey.objects.get().replays == 0


def test_a_request_while_the_first_is_in_flight_is_409_with_retry_after(api, monkeypatch):
    """The second request arrives while the first is inside the submission."""
    submit_for_real = reviews_api.suggestion_submit
    during: dict[str, Any] = {}

    def submit_with_a_retry_arriving(**kwargs: Any) -> Any:
        during["same"] = post_json(api, body())
        during["other"] = post_json(api, body(confidence=0.6))
        return submit_for_real(**kwargs)

    monkeypatch.setattr(reviews_api, "suggestion_submit", submit_with_a_retry_arriving)

    first = post_json(api, body())

    assert first.status_code == 201
    error = assert_error(during["same"], 409, "idempotency_key_in_flight")
    assert "Idempotency-Key" in error["message"]
    assert during["same"]["Retry-After"] == "1"
    assert_error(during["other"], 422, "idempotency_key_reused")
    assert Suggestion.objects.count() == 1
    assert suggestion_events() == SUGGESTION_EVENTS
    monkeypatch.undo()
    assert post_json(api, body()).content == first.content


def test_keys_belong_to_their_client(capability):
    one = bearer(ApiClientFactory.issue(capabilities=[capability]).secret)
    two = bearer(ApiClientFactory.issue(capabilities=[capability]).secret)

    first = post_json(one, body())
    second = post_json(two, body())

    assert first.status_code == second.status_code == 201
    assert "Idempotent-Replayed" not in second
    assert first.json()["id"] != second.json()["id"]
    assert Suggestion.objects.count() == 2
    assert IdempotencyKey.objects.filter(key=KEY).count() == 2


def test_without_a_key_every_request_is_a_new_submission(api):
    post_json(api, body(), key=None)
    post_json(api, body(), key=None)

    assert Suggestion.objects.count() == 2
    assert not IdempotencyKey.objects.exists()


def test_a_refused_request_is_replayed_with_the_same_error(api):
    first = post_json(api, body(confidence=1.5))
    second = post_json(api, body(confidence=1.5))

    assert_error(first, 400, "invalid")
    assert second.status_code == 400
    assert second.content == first.content
    assert second["Idempotent-Replayed"] == "true"
    assert not Suggestion.objects.exists()
    assert suggestion_events() == []
    key = IdempotencyKey.objects.get()
    assert (key.state, key.response_status, key.replays) == (IdempotencyState.COMPLETED, 400, 1)


def test_a_replay_to_a_token_without_the_capability_in_scope_is_refused(
    capability, other_capability
):
    client = ApiClientFactory.create(capabilities=[capability, other_capability])
    wide = bearer(api_token_issue(client=client, actor=TESTS).secret)
    narrow = bearer(
        api_token_issue(client=client, actor=TESTS, capabilities=[other_capability]).secret
    )
    post_json(wide, body())

    response = post_json(narrow, body())

    assert_error(response, 403, "capability_not_in_scope")
    assert IdempotencyKey.objects.get().replays == 0


# --- Failures leave the key free to retry -----------------------------------------------------


def test_a_crash_releases_the_key_and_a_retry_submits(api, monkeypatch):
    def crash(**kwargs: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(reviews_api, "suggestion_submit", crash)
    with pytest.raises(RuntimeError):
        post_json(api, body())
    assert not IdempotencyKey.objects.exists()
    assert not Suggestion.objects.exists()

    monkeypatch.undo()
    retry = post_json(api, body())

    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry
    assert Suggestion.objects.count() == 1
    assert IdempotencyKey.objects.get().state == IdempotencyState.COMPLETED


class Unavailable(exceptions.APIException):
    status_code = 503
    default_code = "unavailable"


@pytest.mark.parametrize(
    ("refusal", "status"),
    [
        pytest.param(exceptions.Throttled(wait=3), 429, id="429"),
        pytest.param(Unavailable("Busy."), 503, id="503"),
    ],
)
def test_an_answer_that_says_try_again_later_is_not_kept(api, monkeypatch, refusal, status):
    def refuse(**kwargs: Any) -> Any:
        raise refusal

    monkeypatch.setattr(reviews_api, "suggestion_submit", refuse)
    response = post_json(api, body())
    assert response.status_code == status
    assert not IdempotencyKey.objects.exists()

    monkeypatch.undo()
    assert post_json(api, body()).status_code == 201


def test_a_key_abandoned_in_flight_is_taken_over(api, api_client_row):
    IdempotencyKey.objects.create(
        client=api_client_row,
        key=KEY,
        request_hash="0" * 64,
        state=IdempotencyState.IN_FLIGHT,
    )
    IdempotencyKey.objects.update(created_at=timezone.now() - dt.timedelta(hours=2))

    response = post_json(api, body())

    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response
    key = IdempotencyKey.objects.get()
    assert key.state == IdempotencyState.COMPLETED
    assert key.created_at > timezone.now() - dt.timedelta(minutes=1)


# --- The header -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("", id="empty"),
        pytest.param("k" * 256, id="too-long"),
        pytest.param("clé", id="not-ascii"),
        pytest.param("a\x01b", id="control-character"),
    ],
)
def test_an_invalid_key_is_400_naming_the_header_and_stores_nothing(api, key):
    response = post_json(api, body(), key=key)

    error = assert_error(response, 400, "invalid")
    assert "Idempotency-Key" in error["fields"]
    assert "Idempotency-Key" in error["message"]
    assert not Suggestion.objects.exists()
    assert not IdempotencyKey.objects.exists()


def test_a_key_of_255_printable_characters_is_accepted(api):
    key = "~ " + "k" * 253

    assert post_json(api, body(), key=key).status_code == 201
    assert post_json(api, body(), key=key)["Idempotent-Replayed"] == "true"


def test_a_body_that_is_not_json_is_refused_without_using_the_key(api):
    response = post(api, b"{not json")

    assert_error(response, 400, "parse_error")
    assert not IdempotencyKey.objects.exists()


def test_a_person_signed_in_may_not_submit_even_with_a_key(reviewer):
    client = APIClient()
    client.force_login(reviewer)

    response = post_json(client, body())

    assert_error(response, 403, "permission_denied")
    assert not IdempotencyKey.objects.exists()


# --- Keeping and purging keys -----------------------------------------------------------------


def _key(client: Any, name: str, state: str, age: dt.timedelta) -> IdempotencyKey:
    row = IdempotencyKey.objects.create(client=client, key=name, request_hash="0" * 64, state=state)
    IdempotencyKey.objects.filter(pk=row.pk).update(created_at=timezone.now() - age)
    return row


def test_purge_deletes_expired_and_abandoned_keys_and_keeps_the_rest(api_client_row, settings):
    settings.SIGNOFF_IDEMPOTENCY_TTL_SECONDS = 86_400
    completed, in_flight = IdempotencyState.COMPLETED, IdempotencyState.IN_FLIGHT
    _key(api_client_row, "expired", completed, dt.timedelta(hours=25))
    _key(api_client_row, "kept", completed, dt.timedelta(hours=23))
    _key(api_client_row, "abandoned", in_flight, dt.timedelta(minutes=61))
    _key(api_client_row, "working", in_flight, dt.timedelta(minutes=5))

    purge = idempotency_key_purge()

    assert (purge.expired, purge.abandoned, purge.total) == (1, 1, 2)
    assert set(IdempotencyKey.objects.values_list("key", flat=True)) == {"kept", "working"}


def test_purge_command_says_how_many_it_deleted(api_client_row, capsys):
    _key(api_client_row, "expired", IdempotencyState.COMPLETED, dt.timedelta(days=2))
    _key(api_client_row, "kept", IdempotencyState.COMPLETED, dt.timedelta(hours=1))

    call_command("idempotency_purge")

    assert "Deleted 1 idempotency key(s): 1 older than 86400 s" in capsys.readouterr().out
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["kept"]


def test_purge_task_deletes_what_is_no_longer_kept(api_client_row):
    _key(api_client_row, "expired", IdempotencyState.COMPLETED, dt.timedelta(days=2))

    assert purge_idempotency_keys.call() == 1
    assert not IdempotencyKey.objects.exists()


def test_a_key_purged_may_be_used_again(api):
    post_json(api, body())
    IdempotencyKey.objects.update(created_at=timezone.now() - dt.timedelta(days=2))
    idempotency_key_purge()

    again = post_json(api, body())

    assert again.status_code == 201
    assert "Idempotent-Replayed" not in again
    assert Suggestion.objects.count() == 2


# --- Retries and replays, per client and capability -------------------------------------------


def test_retry_counts_per_client_and_capability(capability, other_capability, api):
    crm = ApiClientFactory.create(capabilities=[capability, other_capability], name="crm")
    submit(crm, capability, attempt=2)
    submit(crm, capability, attempt=3)
    submit(crm, capability, attempt=1)
    submit(crm, other_capability, attempt=2)
    post_json(api, body())
    post_json(api, body())
    post_json(api, body())
    api_client_name = IdempotencyKey.objects.get().client.name

    assert submission_retry_counts() == sorted(
        [
            RetryCount("crm", "content.moderate", retried=1, replays=0),
            RetryCount("crm", "refunds.issue", retried=2, replays=0),
            RetryCount(api_client_name, "refunds.issue", retried=0, replays=2),
        ],
        key=lambda count: (count.client_name, count.capability_key),
    )


@pytest.fixture
def role_user() -> Callable[[str], Any]:
    def make(role: str) -> Any:
        user = UserFactory(username=role.replace(" ", "-"))
        role_grant(user=user, role=role, capabilities=[], actor=TESTS)
        return user

    return make


@pytest.mark.parametrize("role", ["auditor", "administrator"])
def test_retries_page_shows_the_counts_to_auditors_and_administrators(api, role_user, role):
    post_json(api, body())
    post_json(api, body())
    client = Client()
    client.force_login(role_user(role))

    response = client.get(reverse("reviews:submission_retries"))

    assert response.status_code == 200
    assert [(c.capability_key, c.replays) for c in response.context["counts"]] == [
        ("refunds.issue", 1)
    ]
    assert b"refunds.issue" in response.content


def test_retries_page_is_404_for_a_reviewer(reviewer):
    client = Client()
    client.force_login(reviewer)

    assert client.get(reverse("reviews:submission_retries")).status_code == 404


# --- OpenAPI ----------------------------------------------------------------------------------


def test_schema_documents_the_header_and_its_answers(client):
    schema = json.loads(client.get("/api/v1/schema/", {"format": "json"}).content)
    create = schema["paths"]["/api/v1/suggestions/"]["post"]

    header = next(p for p in create["parameters"] if p["name"] == "Idempotency-Key")
    assert header["in"] == "header" and not header.get("required")
    assert header["schema"]["maxLength"] == 255
    assert {"409", "422"} <= set(create["responses"])
    assert "Idempotent-Replayed" in create["responses"]["201"]["headers"]
    assert "Idempotent-Replayed" in create["responses"]["201"]["description"]
    assert "Retry-After" in create["responses"]["409"]["headers"]


# --- Concurrency ------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_requests_with_one_key_submit_once(issued):
    workers = 50
    barrier = threading.Barrier(workers)
    responses: list[Any] = [None] * workers
    raw = json.dumps(body())

    def send(index: int) -> None:
        try:
            api = bearer(issued.secret)
            barrier.wait()
            responses[index] = post(api, raw)
        except Exception as exc:
            responses[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    failures = [r for r in responses if isinstance(r, Exception) or r is None]
    assert not failures, failures
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, statuses
    created = [r for r in responses if r.status_code == 201]
    firsts = [r for r in created if "Idempotent-Replayed" not in r]
    assert len(firsts) == 1
    assert all(r.content == firsts[0].content for r in created)
    assert all(r["Retry-After"] == "1" for r in responses if r.status_code == 409)
    suggestion = Suggestion.objects.get()
    assert str(suggestion.pk) == firsts[0].json()["id"]
    assert (
        sorted(
            AuditEvent.objects.filter(subject_id=str(suggestion.pk)).values_list(
                "action", flat=True
            )
        )
        == SUGGESTION_EVENTS
    )
    key = IdempotencyKey.objects.get()
    assert key.state == IdempotencyState.COMPLETED
    assert key.replays == len(created) - 1


@pytest.mark.parametrize("key", ["refunds\x00issue", "refunds\ud800issue"])
def test_an_unstorable_capability_with_a_key_is_400_not_a_server_error(api, key):
    """The key is claimed before the body is checked: what it records of the body must be
    storable whatever the body holds."""
    raw = json.dumps(body(capability=key))
    response = post(api, raw)
    error = assert_error(response, 400, "invalid")
    assert "capability" in error["fields"]
    assert not Suggestion.objects.exists()
    assert post(api, raw).status_code == 400  # replayed, still not a server error
