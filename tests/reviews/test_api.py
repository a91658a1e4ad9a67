import io
import json
import re
import types
from base64 import b64encode
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.http import Http404
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

from audit.services import Actor
from capabilities.models import ApiToken
from capabilities.services import api_client_update, api_token_issue
from reviews.api_support import LimitedJSONParser, PayloadTooLarge, api_exception_handler
from reviews.models import DecisionOutcome, Suggestion, SuggestionStatus
from reviews.services import decision_record
from tests.factories import ApiClientFactory, UserFactory, submit

pytestmark = pytest.mark.django_db

URL = "/api/v1/suggestions/"
TESTS = Actor.system("tests")
MAX_BODY = 256 * 1024
_ABSENT = object()


def detail_url(suggestion_id: Any) -> str:
    return f"{URL}{suggestion_id}/"


def valid_body(**changes: Any) -> dict[str, Any]:
    """A complete, valid submission; a change to ``_ABSENT`` removes the field."""
    body: dict[str, Any] = {
        "capability": "refunds.issue",
        "external_id": "ticket-8812",
        "payload": {"amount": "120.00", "currency": "EUR", "order": "A-1"},
        "confidence": 0.5,
        "model": {"name": "gpt-4o", "version": "2024-08-06", "provider": "openai"},
        "prompt": "Customer asks for a refund.",
        "context": {"channel": "email"},
        "usage": {"input_tokens": 1200, "output_tokens": 300, "cost": "0.0042"},
        "attempt": 1,
        "callback_url": "https://example.invalid/hooks/signoff",
    }
    for name, value in changes.items():
        if value is _ABSENT:
            body.pop(name)
        else:
            body[name] = value
    return body


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.fixture
def api(issued) -> APIClient:
    """Calls the API with the token of the client scoped to ``refunds.issue``."""
    return bearer(issued.secret)


def post_raw(client: APIClient, body: bytes | str, **extra: Any) -> Any:
    return client.generic("POST", URL, body, content_type="application/json", **extra)


def assert_error(response: Any, status: int, code: str, field: str | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    error = response.json()
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    if field is not None:
        assert field in error["fields"], error
        assert all(isinstance(m, str) for m in error["fields"][field])
    return error


# --- Submitting: refused input stores nothing ------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"confidence": _ABSENT}, "confidence", id="confidence-missing"),
        pytest.param({"confidence": "high"}, "confidence", id="confidence-not-a-number"),
        pytest.param({"confidence": "0.5"}, "confidence", id="confidence-numeric-string"),
        pytest.param({"confidence": "NaN"}, "confidence", id="confidence-NaN-string"),
        pytest.param({"confidence": "Infinity"}, "confidence", id="confidence-Infinity-string"),
        pytest.param({"confidence": 1.5}, "confidence", id="confidence-above-one"),
        pytest.param({"confidence": -0.1}, "confidence", id="confidence-below-zero"),
        pytest.param({"confidence": True}, "confidence", id="confidence-boolean"),
        pytest.param({"confidence": None}, "confidence", id="confidence-null"),
        pytest.param({"confidence": 10**400}, "confidence", id="confidence-huge-integer"),
        pytest.param({"capability": "nothing.here"}, "capability", id="capability-unknown"),
        pytest.param({"capability": _ABSENT}, "capability", id="capability-missing"),
        pytest.param({"capability": ["refunds.issue"]}, "capability", id="capability-list"),
        pytest.param({"payload": [1, 2]}, "payload", id="payload-list"),
        pytest.param({"payload": "refund it"}, "payload", id="payload-string"),
        pytest.param({"payload": _ABSENT}, "payload", id="payload-missing"),
        pytest.param({"payload": {"note": "a\x00b"}}, "payload", id="payload-NUL-character"),
        pytest.param({"context": ["a"]}, "context", id="context-list"),
        pytest.param({"context": "a"}, "context", id="context-string"),
        pytest.param({"model": _ABSENT}, "model", id="model-missing"),
        pytest.param({"model": "gpt-4o"}, "model", id="model-not-an-object"),
        pytest.param({"model": {"version": "1"}}, "model.name", id="model-name-missing"),
        pytest.param({"model": {"name": "x" * 201}}, "model.name", id="model-name-too-long"),
        pytest.param({"usage": {"cost": "-1"}}, "usage.cost", id="usage-cost-negative"),
        pytest.param({"usage": {"cost": "NaN"}}, "usage.cost", id="usage-cost-NaN"),
        pytest.param({"usage": {"input_tokens": -1}}, "usage.input_tokens", id="tokens-negative"),
        pytest.param({"usage": {"input_tokens": "12"}}, "usage.input_tokens", id="tokens-string"),
        pytest.param({"usage": {"output_tokens": 2**40}}, "usage.output_tokens", id="tokens-huge"),
        pytest.param({"attempt": 0}, "attempt", id="attempt-zero"),
        pytest.param({"attempt": 1.5}, "attempt", id="attempt-fraction"),
        pytest.param({"callback_url": "ftp://example.invalid/x"}, "callback_url", id="url-ftp"),
        pytest.param({"callback_url": "javascript:alert(1)"}, "callback_url", id="url-js"),
        pytest.param({"external_id": "x" * 201}, "external_id", id="external-id-too-long"),
        pytest.param({"prompt": "\ud800"}, "prompt", id="prompt-lone-surrogate"),
    ],
)
def test_invalid_field_is_refused_with_its_name_and_nothing_is_stored(api, changes, field):
    response = post_raw(api, json.dumps(valid_body(**changes)))

    error = assert_error(response, 400, "invalid", field)
    assert field in error["message"]
    assert Suggestion.objects.count() == 0


def test_payload_nested_too_deeply_is_refused(api):
    payload: dict[str, Any] = {}
    innermost = payload
    for _ in range(40):
        innermost["next"] = {}
        innermost = innermost["next"]

    response = api.post(URL, valid_body(payload=payload), format="json")

    assert_error(response, 400, "invalid", "payload")
    assert Suggestion.objects.count() == 0


def test_payload_with_a_number_too_large_for_a_float_is_refused(api):
    body = json.dumps(valid_body()).replace('"amount": "120.00"', '"amount": 1e400')

    response = post_raw(api, body)

    assert_error(response, 400, "invalid", "payload")
    assert Suggestion.objects.count() == 0


def test_several_invalid_fields_are_all_named(api):
    response = api.post(
        URL, valid_body(confidence=2, model={"provider": "x"}, payload=[]), format="json"
    )

    error = assert_error(response, 400, "invalid")
    assert set(error["fields"]) == {"confidence", "model.name", "payload"}


def test_body_that_is_not_an_object_is_refused(api):
    response = post_raw(api, "[1, 2, 3]")

    assert_error(response, 400, "invalid", "non_field_errors")
    assert Suggestion.objects.count() == 0


def test_body_that_is_not_json_is_a_parse_error(api):
    response = post_raw(api, '{"capability": "refunds.issue",')

    error = assert_error(response, 400, "parse_error")
    assert "fields" not in error
    assert Suggestion.objects.count() == 0


def test_nan_literal_is_not_json(api):
    body = json.dumps(valid_body(confidence=0.5)).replace("0.5", "NaN")

    response = post_raw(api, body)

    assert_error(response, 400, "parse_error")
    assert Suggestion.objects.count() == 0


def test_deeply_nested_json_is_a_parse_error_not_a_crash(api):
    response = post_raw(api, "[" * 100_000 + "]" * 100_000)

    assert_error(response, 400, "parse_error")


def test_body_over_the_limit_is_refused_with_413(api):
    body = json.dumps(valid_body(prompt="x" * MAX_BODY))
    assert len(body) > MAX_BODY

    response = post_raw(api, body)

    assert_error(response, 413, "payload_too_large")
    assert Suggestion.objects.count() == 0


def test_body_of_exactly_the_limit_is_accepted(api):
    # Padded in the payload, which is stored as sent (the prompt would go through redaction).
    padding = MAX_BODY - len(json.dumps(valid_body(payload={"note": ""})))
    body = json.dumps(valid_body(payload={"note": "x" * padding}))
    assert len(body.encode()) == MAX_BODY

    response = post_raw(api, body)

    assert response.status_code == 201, response.content


class _CountingStream(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk


@pytest.mark.parametrize("declared", [None, "10"], ids=["no-content-length", "understated"])
def test_parser_reads_at_most_one_byte_past_the_limit_whatever_is_declared(declared):
    stream = _CountingStream(b'{"a": "' + b"x" * (2 * MAX_BODY) + b'"}')
    request = types.SimpleNamespace(META={} if declared is None else {"CONTENT_LENGTH": declared})

    with pytest.raises(PayloadTooLarge):
        LimitedJSONParser().parse(stream, "application/json", {"request": request})
    assert stream.bytes_read == MAX_BODY + 1


def test_parser_refuses_a_declared_length_over_the_limit_before_reading():
    stream = _CountingStream(b"{}")
    request = types.SimpleNamespace(META={"CONTENT_LENGTH": str(MAX_BODY + 1)})

    with pytest.raises(PayloadTooLarge):
        LimitedJSONParser().parse(stream, "application/json", {"request": request})
    assert stream.bytes_read == 0


def test_body_that_is_not_json_media_type_is_415(api):
    response = api.generic("POST", URL, "confidence=0.5", content_type="text/plain")

    assert_error(response, 415, "unsupported_media_type")
    assert Suggestion.objects.count() == 0


def test_unsupported_method_is_405(api):
    assert_error(api.delete(URL), 405, "method_not_allowed")


def test_head_and_options_answer_without_error(api):
    assert api.head(URL).status_code == 200
    assert api.options(URL).status_code == 200


# --- Submitting: who may ---------------------------------------------------------------------


def test_submission_without_a_token_is_401_with_a_bearer_challenge(capability):
    response = APIClient().post(URL, valid_body(), format="json")

    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == 'Bearer realm="signoff"'
    assert Suggestion.objects.count() == 0


def test_submission_with_a_wrong_token_is_401(capability):
    response = bearer("sgf_not-a-real-token").post(URL, valid_body(), format="json")

    assert_error(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"] == 'Bearer realm="signoff"'
    assert Suggestion.objects.count() == 0


def test_submission_with_a_revoked_token_is_401(issued):
    ApiToken.objects.filter(pk=issued.token.pk).update(revoked_at=timezone.now())

    response = bearer(issued.secret).post(URL, valid_body(), format="json")

    error = assert_error(response, 401, "authentication_failed")
    assert "revoked" in error["message"]
    assert Suggestion.objects.count() == 0


def test_submission_with_an_expired_token_is_401_saying_it_expired(issued):
    ApiToken.objects.filter(pk=issued.token.pk).update(expires_at=timezone.now())

    response = bearer(issued.secret).post(URL, valid_body(), format="json")

    error = assert_error(response, 401, "authentication_failed")
    assert "expired" in error["message"]
    assert Suggestion.objects.count() == 0


def test_submission_with_a_malformed_authorization_header_is_401(capability):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer two parts")

    response = client.post(URL, valid_body(), format="json")

    assert_error(response, 401, "authentication_failed")


def test_submission_to_a_capability_outside_the_token_scope_is_403(capability, other_capability):
    outsider = ApiClientFactory.issue(capabilities=[other_capability])

    response = bearer(outsider.secret).post(URL, valid_body(), format="json")

    error = assert_error(response, 403, "capability_not_in_scope")
    assert "refunds.issue" in error["message"]
    assert Suggestion.objects.count() == 0


def test_signed_in_person_may_not_submit(reviewer):
    client = APIClient()
    client.force_login(reviewer)

    response = client.post(URL, valid_body(), format="json")

    assert_error(response, 403, "permission_denied")
    assert Suggestion.objects.count() == 0


# --- Submitting: accepted ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("confidence", "status", "reason"),
    [
        (0.95, "auto_approved", "confidence_at_or_above_auto_approve"),
        (0.5, "pending_review", "confidence_between_thresholds"),
        (0.1, "auto_rejected", "confidence_below_auto_reject"),
    ],
)
def test_submission_is_routed_by_confidence_and_says_why(
    api, api_client_row, confidence, status, reason
):
    response = api.post(URL, valid_body(confidence=confidence), format="json")

    assert response.status_code == 201, response.content
    answer = response.json()
    assert answer["status"] == status
    assert answer["route"] == {"reason": reason, "policy_version": 1}
    assert answer["confidence"] == confidence
    assert answer["capability"] == "refunds.issue"
    assert answer["external_id"] == "ticket-8812"
    assert answer["model"] == {"name": "gpt-4o", "version": "2024-08-06", "provider": "openai"}
    assert answer["usage"] == {"input_tokens": 1200, "output_tokens": 300, "cost": "0.004200"}
    assert answer["execution"]["status"] == "not_started"
    assert response["Location"] == detail_url(answer["id"])
    suggestion = Suggestion.objects.get()
    assert str(suggestion.pk) == answer["id"]
    assert suggestion.api_client == api_client_row
    assert suggestion.status == status
    if status == "pending_review":
        assert answer["decisions"] == []
        assert answer["decided_at"] is None
    else:
        [decision] = answer["decisions"]
        assert decision["reviewer"] is None
        assert decision["reason"] == reason
        assert decision["outcome"] == ("approved" if status == "auto_approved" else "rejected")


@pytest.mark.parametrize("confidence", [0.95, 0.5, 0.1])
def test_the_answer_is_what_reading_the_suggestion_shows_without_reading_it_back(api, confidence):
    with CaptureQueriesContext(connection) as submitted:
        response = api.post(URL, valid_body(confidence=confidence), format="json")

    assert response.status_code == 201, response.content
    # The answer's decisions are the ones just written, not read back.
    assert not [q for q in submitted.captured_queries if 'FROM "reviews_decision"' in q["sql"]]
    read = api.get(response["Location"])
    assert response.json() == read.json()


def test_minimal_submission_takes_the_defaults(api):
    body = {
        "capability": "refunds.issue",
        "payload": {"amount": "1.00"},
        "confidence": 1,
        "model": {"name": "gpt-4o"},
    }

    response = api.post(URL, body, format="json")

    assert response.status_code == 201, response.content
    suggestion = Suggestion.objects.get()
    assert suggestion.status == SuggestionStatus.AUTO_APPROVED
    assert suggestion.attempt == 1
    assert suggestion.external_id == "" and suggestion.prompt == "" and suggestion.context == {}
    assert suggestion.cost is None and suggestion.callback_url == ""


def test_cost_may_be_sent_as_a_number(api):
    response = api.post(URL, valid_body(usage={"cost": 0.0042}), format="json")

    assert response.status_code == 201, response.content
    assert str(Suggestion.objects.get().cost) == "0.004200"


def test_prompt_and_context_are_redacted_before_they_are_stored(api):
    body = valid_body(
        prompt="Refund for alice@example.com please",
        context={"customer": "bob@example.com", "password": "hunter2"},
        payload={"notify": "alice@example.com"},
    )

    response = api.post(URL, body, format="json")

    assert response.status_code == 201, response.content
    suggestion = Suggestion.objects.get()
    assert "alice@example.com" not in suggestion.prompt
    assert "[REDACTED:email]" in suggestion.prompt
    assert suggestion.context == {"customer": "[REDACTED:email]", "password": "[REDACTED:key]"}
    # The payload is the action a reviewer approves: kept as sent.
    assert suggestion.payload == {"notify": "alice@example.com"}


# --- Reading one ------------------------------------------------------------------------------


def test_client_reads_its_own_suggestion_with_decisions_and_execution(
    api, api_client_row, capability, reviewer
):
    suggestion = submit(api_client_row, capability, confidence=0.5, external_id="ticket-1")
    decision_record(
        user=reviewer,
        suggestion_id=suggestion.pk,
        outcome=DecisionOutcome.APPROVED,
        final_payload={"amount": "100.00", "currency": "EUR"},
    )

    response = api.get(detail_url(suggestion.pk))

    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["id"] == str(suggestion.pk)
    assert answer["status"] == "approved"
    assert answer["external_id"] == "ticket-1"
    assert answer["payload"] == {"amount": "120.00", "currency": "EUR"}
    assert answer["final_payload"] == {"amount": "100.00", "currency": "EUR"}
    assert answer["route"] == {"reason": "confidence_between_thresholds", "policy_version": 1}
    [decision] = answer["decisions"]
    assert decision["outcome"] == "approved"
    assert decision["reviewer"] == "rita"
    assert decision["is_override"] is True
    assert set(decision) == {"outcome", "reviewer", "reason", "is_override", "created_at"}
    assert set(answer["execution"]) == {"status", "attempts", "error", "executed_at"}
    assert answer["decided_at"] is not None
    # Reviewers appear by username only: no e-mail address, no user id.
    assert reviewer.email not in response.content.decode()
    assert "reviewer_id" not in response.content.decode()


def test_client_gets_404_for_another_clients_suggestion(api, capability):
    other = ApiClientFactory.create(capabilities=[capability])
    suggestion = submit(other, capability)

    assert_error(api.get(detail_url(suggestion.pk)), 404, "not_found")


@pytest.mark.parametrize("suggestion_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_unknown_or_malformed_id_is_404(api, suggestion_id):
    assert_error(api.get(detail_url(suggestion_id)), 404, "not_found")


def test_anonymous_read_is_401(api_client_row, capability):
    suggestion = submit(api_client_row, capability)

    response = APIClient().get(detail_url(suggestion.pk))

    assert_error(response, 401, "not_authenticated")


def test_reviewer_signed_in_reads_a_suggestion_of_a_capability_they_review(
    api_client_row, capability, reviewer
):
    suggestion = submit(api_client_row, capability)
    client = APIClient()
    client.force_login(reviewer)

    response = client.get(detail_url(suggestion.pk))

    assert response.status_code == 200, response.content
    assert response.json()["id"] == str(suggestion.pk)


def test_reviewer_signed_in_gets_404_for_a_capability_they_do_not_review(
    capability, other_capability, reviewer
):
    other_client = ApiClientFactory.create(capabilities=[other_capability])
    suggestion = submit(other_client, other_capability)
    client = APIClient()
    client.force_login(reviewer)

    assert_error(client.get(detail_url(suggestion.pk)), 404, "not_found")


def test_signed_in_user_without_permissions_gets_404(api_client_row, capability):
    suggestion = submit(api_client_row, capability)
    client = APIClient()
    client.force_login(UserFactory())

    assert_error(client.get(detail_url(suggestion.pk)), 404, "not_found")


# --- Listing ----------------------------------------------------------------------------------


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_client_lists_only_its_own_suggestions_newest_first(api, api_client_row, capability):
    first = submit(api_client_row, capability)
    second = submit(api_client_row, capability)
    submit(ApiClientFactory.create(capabilities=[capability]), capability)

    assert ids(api.get(URL)) == [str(second.pk), str(first.pk)]


def test_list_filters_by_status_capability_and_external_id(
    api_client_row, capability, other_capability
):
    api_client_update(
        client=api_client_row, capabilities=[capability, other_capability], actor=TESTS
    )
    api = bearer(api_token_issue(client=api_client_row, actor=TESTS).secret)
    pending = submit(api_client_row, capability, confidence=0.5, external_id="t-1")
    approved = submit(api_client_row, capability, confidence=0.95, external_id="t-2")
    moderated = submit(api_client_row, other_capability, confidence=0.5, external_id="t-1")

    assert ids(api.get(URL, {"status": "pending_review"})) == [str(moderated.pk), str(pending.pk)]
    assert ids(api.get(URL, {"status": "auto_approved"})) == [str(approved.pk)]
    assert ids(api.get(URL, {"capability": "content.moderate"})) == [str(moderated.pk)]
    assert ids(api.get(URL, {"external_id": "t-1"})) == [str(moderated.pk), str(pending.pk)]
    assert ids(api.get(URL, {"capability": "refunds.issue", "external_id": "t-1"})) == [
        str(pending.pk)
    ]
    assert ids(api.get(URL, {"status": ""})) == [
        str(moderated.pk),
        str(approved.pk),
        str(pending.pk),
    ]


def test_invalid_status_filter_is_400_naming_status(api):
    assert_error(api.get(URL, {"status": "done"}), 400, "invalid", "status")


def test_cursor_pagination_walks_every_page_once(api, api_client_row, capability):
    submitted = [submit(api_client_row, capability) for _ in range(7)]
    newest_first = [str(s.pk) for s in reversed(submitted)]

    seen: list[str] = []
    pages = 0
    response = api.get(URL, {"page_size": 3})
    while True:
        pages += 1
        seen += ids(response)
        next_url = response.json()["next"]
        if next_url is None:
            break
        response = api.get(next_url)

    assert pages == 3
    assert seen == newest_first


def test_cursor_pagination_walks_back_with_previous(api, api_client_row, capability):
    submitted = [submit(api_client_row, capability) for _ in range(5)]
    first_page = api.get(URL, {"page_size": 2})
    second_page = api.get(first_page.json()["next"])

    back = api.get(second_page.json()["previous"])

    assert ids(back) == ids(first_page) == [str(s.pk) for s in reversed(submitted)][:2]


def test_page_size_defaults_to_50_and_is_capped_at_200(api, api_client_row, capability):
    for _ in range(201):
        submit(api_client_row, capability)

    default = api.get(URL)
    capped = api.get(URL, {"page_size": 1000})

    assert len(ids(default)) == 50
    assert len(ids(capped)) == 200
    assert capped.json()["next"] is not None


@pytest.mark.parametrize("name", ["status", "capability", "external_id"])
def test_filter_with_a_nul_character_is_400_naming_it(api, name):
    assert_error(api.get(URL, {name: "a\x00b"}), 400, "invalid", name)


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 at all!",
        b64encode(b"p=yesterday").decode(),
        b64encode(b"p=2024-13-45 25:00:00").decode(),
        b64encode(b"p=2024-01-01 10:00:00").decode(),  # no time zone
        b64encode(b"o=-5").decode(),
    ],
)
def test_forged_cursor_is_400_naming_cursor(api, cursor):
    assert_error(api.get(URL, {"cursor": cursor}), 400, "invalid", "cursor")


def test_reviewer_signed_in_lists_suggestions_of_capabilities_they_review(
    api_client_row, capability, other_capability, reviewer
):
    reviewed = submit(api_client_row, capability)
    other_client = ApiClientFactory.create(capabilities=[other_capability])
    submit(other_client, other_capability)
    client = APIClient()
    client.force_login(reviewer)

    assert ids(client.get(URL)) == [str(reviewed.pk)]


def test_anonymous_list_is_401(capability):
    assert_error(APIClient().get(URL), 401, "not_authenticated")


def _decided(client, capability, reviewers, count):
    for index in range(count):
        suggestion = submit(client, capability, confidence=0.5)
        decision_record(
            user=reviewers[index % len(reviewers)],
            suggestion_id=suggestion.pk,
            outcome=DecisionOutcome.REJECTED,
            reason="Not this time.",
        )
        submit(client, capability, confidence=0.95)


def test_list_query_count_does_not_grow_with_rows(
    api, api_client_row, capability, make_reviewer, django_assert_num_queries
):
    reviewers = [make_reviewer(capability) for _ in range(3)]
    _decided(api_client_row, capability, reviewers, 2)
    api.get(URL)  # the first call records the token's use; later ones within a minute do not
    with CaptureQueriesContext(connection) as few:
        assert len(ids(api.get(URL))) == 4

    _decided(api_client_row, capability, reviewers, 10)

    with django_assert_num_queries(len(few.captured_queries)):
        response = api.get(URL)
    assert len(ids(response)) == 24
    reviewers_named = {
        d["reviewer"] for row in response.json()["results"] for d in row["decisions"]
    }
    assert reviewers_named == {None} | {r.username for r in reviewers}


def test_detail_query_count_is_bounded(
    api, api_client_row, capability, make_reviewer, django_assert_max_num_queries
):
    senior = make_reviewer(capability, senior=True)
    suggestion = submit(api_client_row, capability, confidence=0.5)
    decision_record(
        user=make_reviewer(capability),
        suggestion_id=suggestion.pk,
        outcome=DecisionOutcome.ESCALATED,
        reason="Large amount.",
    )
    decision_record(user=senior, suggestion_id=suggestion.pk, outcome=DecisionOutcome.APPROVED)
    api.get(URL)

    # token, suggestion, whether the token's scope holds its capability, decisions with reviewers
    with django_assert_max_num_queries(4):
        response = api.get(detail_url(suggestion.pk))
    assert [d["outcome"] for d in response.json()["decisions"]] == ["escalated", "approved"]


# --- Errors everywhere have one shape ---------------------------------------------------------


def test_unknown_path_under_the_api_is_a_json_404(api):
    assert_error(api.get("/api/v1/nothing/here/"), 404, "not_found")


def test_missing_trailing_slash_is_a_json_404_that_names_the_right_path(api):
    response = api.post("/api/v1/suggestions", valid_body(), format="json")

    error = assert_error(response, 404, "not_found")
    assert "/api/v1/suggestions/" in error["message"]
    assert Suggestion.objects.count() == 0


@pytest.mark.parametrize(
    ("exc", "status", "code", "fields"),
    [
        (Http404("No such suggestion."), 404, "not_found", None),
        (PermissionDenied("Not yours."), 403, "permission_denied", None),
        (ValidationError({"reason": ["A reason is required."]}), 400, "invalid", {"reason"}),
        (ValidationError("Plain message."), 400, "invalid", {"non_field_errors"}),
    ],
)
def test_django_exceptions_become_api_errors(exc, status, code, fields):
    response = api_exception_handler(exc, {})

    assert response is not None
    assert response.status_code == status
    assert response.data["code"] == code
    assert response.data["message"]
    if fields is None:
        assert "fields" not in response.data
    else:
        assert set(response.data["fields"]) == fields


def test_unexpected_exceptions_are_left_to_django():
    assert api_exception_handler(RuntimeError("bug"), {}) is None


# --- OpenAPI schema and docs ------------------------------------------------------------------


def test_schema_is_valid_openapi_describing_the_endpoints(client):
    response = client.get("/api/v1/schema/", {"format": "json"})

    assert response.status_code == 200
    schema = json.loads(response.content)
    validate_schema(schema)
    assert {"/api/v1/suggestions/", "/api/v1/suggestions/{suggestion_id}/"} <= set(schema["paths"])
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
    }
    create = schema["paths"]["/api/v1/suggestions/"]["post"]
    assert {"201", "400", "401", "403", "413"} <= set(create["responses"])
    assert create["requestBody"]["content"]["application/json"]["examples"]


def test_docs_page_loads_only_local_scripts_and_styles(client):
    response = client.get("/api/v1/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    sources = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert any(source.startswith("/static/drf_spectacular_sidecar/") for source in sources)
    assert not [source for source in sources if re.match(r"(https?:)?//", source)]
