"""Payload schemas: the pure checks, and where they hold (API, edit page, admin, quickstart)."""

import json
from io import StringIO
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from audit.models import AuditAction, AuditEvent
from capabilities.models import Capability
from capabilities.schemas import check_schema, schema_errors
from capabilities.services import capability_schema_set
from reviews.management.commands.quickstart import CURL_BODY, REFUND_SCHEMA
from reviews.models import Suggestion, SuggestionStatus
from tests.capabilities.test_admin import form_data
from tests.factories import UserFactory, submit

REFUND = {
    "type": "object",
    "required": ["order"],
    "properties": {
        "order": {"type": "string"},
        "amount": {"type": "string", "pattern": "^[0-9]+\\.[0-9]{2}$"},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "lines": {"type": "array", "items": {"type": "integer"}},
    },
}
VALID = {"amount": "120.00", "currency": "EUR", "order": "A-1"}


def with_schema(capability: Capability, schema: dict[str, Any] | None) -> Capability:
    Capability.objects.filter(pk=capability.pk).update(payload_schema=schema)
    capability.refresh_from_db()
    return capability


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- The pure functions ----------------------------------------------------------------------


def test_a_valid_payload_or_no_schema_has_no_errors():
    assert schema_errors(REFUND, VALID) == []
    assert schema_errors(None, {"anything": [1, 2]}) == []


def test_each_error_names_its_path_and_comes_in_a_stable_order():
    payload = {"amount": "12,00", "currency": "eur", "lines": [1, "two"]}

    assert schema_errors(REFUND, payload) == [
        "/: 'order' is a required property",
        "/amount: '12,00' does not match '^[0-9]+\\\\.[0-9]{2}$'",
        "/currency: 'eur' does not match '^[A-Z]{3}$'",
        "/lines/1: 'two' is not of type 'integer'",
    ]


def test_a_key_with_a_slash_is_escaped_in_the_path():
    schema = {"properties": {"a/b": {"type": "integer"}}}

    assert schema_errors(schema, {"a/b": "x"}) == ["/a~1b: 'x' is not of type 'integer'"]


def test_a_valid_schema_or_none_passes_the_check():
    check_schema(REFUND)
    check_schema(REFUND_SCHEMA)
    check_schema(None)


@pytest.mark.parametrize(
    "schema",
    [
        pytest.param({"type": "money"}, id="unknown-type"),
        pytest.param({"required": "order"}, id="required-not-a-list"),
        pytest.param({"properties": {"amount": {"pattern": "(["}}}, id="bad-regex"),
        pytest.param(["not", "an", "object"], id="not-an-object"),
    ],
)
def test_an_invalid_schema_is_refused_naming_payload_schema(schema):
    with pytest.raises(ValidationError) as refused:
        check_schema(schema)

    assert list(refused.value.message_dict) == ["payload_schema"]


# --- Submitting through the API --------------------------------------------------------------


@pytest.mark.django_db
def test_api_refuses_a_payload_that_breaks_the_schema_naming_payload_and_storing_nothing(
    issued, capability
):
    with_schema(capability, REFUND)
    events = AuditEvent.objects.count()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    body = {
        "capability": capability.key,
        "payload": {"amount": "12,00", "currency": "EUR"},
        "confidence": 0.5,
        "model": {"name": "gpt-4o"},
    }

    response = api.post("/api/v1/suggestions/", body, format="json")

    assert response.status_code == 400, response.content
    error = response.json()
    assert error["code"] == "invalid"
    assert error["fields"]["payload"] == [
        "/: 'order' is a required property",
        "/amount: '12,00' does not match '^[0-9]+\\\\.[0-9]{2}$'",
    ]
    assert Suggestion.objects.count() == 0
    assert AuditEvent.objects.count() == events

    body["payload"] = VALID
    accepted = api.post("/api/v1/suggestions/", body, format="json")
    assert accepted.status_code == 201, accepted.content


# --- Editing on the review page --------------------------------------------------------------


@pytest.mark.django_db
def test_edit_page_refuses_an_edit_that_breaks_the_schema_and_changes_nothing(
    client, reviewer, api_client_row, capability
):
    pending = submit(api_client_row, with_schema(capability, REFUND), payload=VALID)
    events = AuditEvent.objects.count()
    edited = {**VALID, "currency": "euro"}

    response = logged_in(reviewer).post(
        reverse("reviews:edit", args=[pending.pk]),
        {"payload": json.dumps(edited), "action": "confirm"},
    )

    assert response.status_code == 200
    message = "/currency: &#x27;euro&#x27; does not match"
    assert message in response.content.decode()
    assert response.context["form"].errors["payload"] == [
        "/currency: 'euro' does not match '^[A-Z]{3}$'"
    ]
    pending.refresh_from_db()
    assert pending.status == SuggestionStatus.PENDING_REVIEW
    assert pending.final_payload is None
    assert pending.decisions.count() == 0
    assert AuditEvent.objects.count() == events


@pytest.mark.django_db
def test_the_edit_preview_already_shows_what_the_schema_refuses(
    reviewer, api_client_row, capability
):
    pending = submit(api_client_row, with_schema(capability, REFUND), payload=VALID)
    response = logged_in(reviewer).post(
        reverse("reviews:edit", args=[pending.pk]),
        {"payload": json.dumps({**VALID, "currency": "euro"}), "action": "preview"},
    )
    assert response.status_code == 200
    assert response.context["form"].errors["payload"] == [
        "/currency: 'euro' does not match '^[A-Z]{3}$'"
    ]
    assert not response.context["preview"]


# --- Setting the schema ----------------------------------------------------------------------


@pytest.mark.django_db
def test_manager_sets_the_schema_in_the_admin_and_it_is_audited(manager, capability):
    browser = logged_in(manager)
    change_url = reverse("admin:capabilities_capability_change", args=[capability.pk])
    page = browser.get(change_url)
    assert "payload_schema" in page.context["adminform"].form.fields
    policies = capability.policies.count()

    response = browser.post(change_url, {**form_data(page), "payload_schema": json.dumps(REFUND)})

    assert response.status_code == 302, response.context["adminform"].form.errors
    capability.refresh_from_db()
    assert capability.payload_schema == REFUND
    assert capability.policies.count() == policies
    updated = AuditEvent.objects.get(action=AuditAction.CAPABILITY_UPDATED)
    assert updated.actor_label == manager.username
    assert updated.capability == capability.key
    assert updated.data == {"payload_schema": {"from": None, "to": REFUND}}


@pytest.mark.django_db
def test_admin_refuses_an_invalid_schema_and_changes_nothing(manager, capability):
    browser = logged_in(manager)
    change_url = reverse("admin:capabilities_capability_change", args=[capability.pk])
    page = browser.get(change_url)

    response = browser.post(change_url, {**form_data(page), "payload_schema": '{"type": "money"}'})

    assert response.status_code == 200
    assert "Not a valid JSON Schema" in " ".join(
        response.context["adminform"].form.errors["payload_schema"]
    )
    capability.refresh_from_db()
    assert capability.payload_schema is None
    assert not AuditEvent.objects.filter(action=AuditAction.CAPABILITY_UPDATED).exists()


@pytest.mark.django_db
def test_schema_set_needs_the_manage_permission_and_an_unchanged_schema_records_nothing(
    manager, capability
):
    with pytest.raises(Exception, match="may not change"):
        capability_schema_set(capability=capability, schema=REFUND, user=UserFactory())
    capability_schema_set(capability=capability, schema=REFUND, user=manager)
    capability_schema_set(capability=capability, schema=REFUND, user=manager)

    capability.refresh_from_db()
    assert capability.payload_schema == REFUND
    assert AuditEvent.objects.filter(action=AuditAction.CAPABILITY_UPDATED).count() == 1


# --- The demo --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_quickstart_gives_refunds_a_schema_its_demo_payloads_satisfy(settings):
    settings.DEBUG = True
    call_command("quickstart", stdout=StringIO())

    refunds = Capability.objects.get(key="refunds.issue")
    assert refunds.payload_schema == REFUND_SCHEMA
    payloads = [s.payload for s in Suggestion.objects.filter(capability=refunds)]
    assert payloads
    assert [schema_errors(REFUND_SCHEMA, p) for p in [*payloads, CURL_BODY["payload"]]] == [
        [] for _ in range(len(payloads) + 1)
    ]
    assert schema_errors(REFUND_SCHEMA, {"amount": "1,5", "currency": "eur"}) == [
        "/: 'order' is a required property",
        "/amount: '1,5' does not match '^[0-9]+(\\\\.[0-9]{1,2})?$'",
        "/currency: 'eur' does not match '^[A-Z]{3}$'",
    ]


def test_a_schema_referring_outside_itself_is_refused():
    from django.core.exceptions import ValidationError

    from capabilities.schemas import check_schema

    with pytest.raises(ValidationError, match="Only references inside the schema"):
        check_schema({"properties": {"a": {"$ref": "https://example.invalid/s.json"}}})
    check_schema({"$defs": {"n": {"type": "integer"}}, "properties": {"a": {"$ref": "#/$defs/n"}}})
