"""API tokens as the credentials of service accounts: their own scope, expiry, rotation and
revocation, over HTTP where systems meet them, in the services that change them (each with its
exact audit events), and in the admin."""

import datetime as dt
from typing import Any

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import ValidationError
from django.db.models import Max
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent
from audit.services import Actor
from capabilities.models import ApiClient, ApiToken, Capability
from capabilities.services import (
    UNCHANGED,
    IssuedToken,
    TokenRefusal,
    api_client_update,
    api_token_authenticate,
    api_token_check,
    api_token_issue,
    api_token_revoke,
    api_token_rotate,
    role_grant,
)
from reviews.models import Suggestion
from tests.factories import ApiClientFactory, UserFactory, submit

pytestmark = pytest.mark.django_db

URL = "/api/v1/suggestions/"
TESTS = Actor.system("tests")
HOUR = dt.timedelta(hours=1)


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def body(capability: str = "refunds.issue", **changes: Any) -> dict[str, Any]:
    return {
        "capability": capability,
        "payload": {"amount": "120.00", "currency": "EUR"},
        "confidence": 0.5,
        "model": {"name": "gpt-4o"},
        **changes,
    }


def post(secret: str, capability: str = "refunds.issue") -> Any:
    return bearer(secret).post(URL, body(capability), format="json")


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def assert_401(response: Any, *words: str) -> None:
    assert response.status_code == 401, response.content
    error = response.json()
    assert error["code"] == "authentication_failed"
    assert response["WWW-Authenticate"] == 'Bearer realm="signoff"'
    for word in words:
        assert word in error["message"], error["message"]


def last_sequence() -> int:
    return AuditEvent.objects.aggregate(last=Max("sequence"))["last"] or 0


class Trail:
    """The audit events appended since it was opened."""

    def __init__(self) -> None:
        self.start = last_sequence()

    def events(self) -> list[AuditEvent]:
        return list(AuditEvent.objects.filter(sequence__gt=self.start).order_by("sequence"))

    def actions(self) -> list[str]:
        return [event.action for event in self.events()]


def moment(value: dt.datetime | None) -> str | None:
    """A datetime as the audit trail stores it."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def keys(token: ApiToken) -> set[str]:
    return set(token.capabilities.values_list("key", flat=True))


@pytest.fixture
def two_capability_client(capability: Capability, other_capability: Capability) -> ApiClient:
    """A client that may reach ``refunds.issue`` and ``content.moderate``."""
    return ApiClientFactory.create(capabilities=[capability, other_capability], name="helpdesk")


@pytest.fixture
def refunds_only(two_capability_client: ApiClient, capability: Capability) -> IssuedToken:
    """A token of that client scoped to ``refunds.issue`` alone."""
    return api_token_issue(client=two_capability_client, capabilities=[capability], actor=TESTS)


# --- Scope: a token reaches only its own capabilities ------------------------------------------


def test_token_scoped_to_one_of_its_clients_capabilities_gets_403_on_the_other(
    refunds_only, two_capability_client
):
    assert post(refunds_only.secret, "refunds.issue").status_code == 201

    response = post(refunds_only.secret, "content.moderate")

    assert response.status_code == 403, response.content
    error = response.json()
    assert error["code"] == "capability_not_in_scope"
    assert "content.moderate" in error["message"]
    assert Suggestion.objects.filter(capability__key="content.moderate").count() == 0


def test_token_cannot_read_its_clients_suggestion_of_a_capability_outside_its_scope(
    refunds_only, two_capability_client, capability, other_capability
):
    refund = submit(two_capability_client, capability)
    moderation = submit(two_capability_client, other_capability)
    api = bearer(refunds_only.secret)

    assert api.get(f"{URL}{refund.pk}/").status_code == 200
    response = api.get(f"{URL}{moderation.pk}/")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_token_lists_only_its_clients_suggestions_of_capabilities_in_its_scope(
    refunds_only, two_capability_client, capability, other_capability
):
    refund = submit(two_capability_client, capability)
    submit(two_capability_client, other_capability)
    submit(ApiClientFactory.create(capabilities=[capability]), capability)
    api = bearer(refunds_only.secret)

    assert ids(api.get(URL)) == [str(refund.pk)]
    assert ids(api.get(URL, {"capability": "content.moderate"})) == []


def test_token_with_its_clients_whole_scope_reads_and_lists_both_capabilities(
    two_capability_client, capability, other_capability
):
    whole = api_token_issue(client=two_capability_client, actor=TESTS)
    refund = submit(two_capability_client, capability)
    moderation = submit(two_capability_client, other_capability)
    api = bearer(whole.secret)

    assert ids(api.get(URL)) == [str(moderation.pk), str(refund.pk)]
    assert api.get(f"{URL}{moderation.pk}/").status_code == 200
    assert post(whole.secret, "content.moderate").status_code == 201


def test_a_token_cannot_be_scoped_beyond_its_client(api_client_row, other_capability):
    trail = Trail()

    with pytest.raises(ValidationError) as raised:
        api_token_issue(client=api_client_row, capabilities=[other_capability], actor=TESTS)

    assert "content.moderate" in str(raised.value.message_dict["capabilities"])
    assert ApiToken.objects.filter(client=api_client_row).count() == 1
    assert trail.events() == []


def test_issuing_a_scoped_expiring_token_is_audited_with_its_scope_and_expiry(
    two_capability_client, capability
):
    expires_at = timezone.now() + dt.timedelta(days=30)
    trail = Trail()

    issued = api_token_issue(
        client=two_capability_client,
        capabilities=[capability],
        expires_at=expires_at,
        actor=TESTS,
    )

    [event] = trail.events()
    assert (event.action, event.actor_label) == ("api_token.issued", "tests")
    assert (event.subject_type, event.subject_id) == ("apitoken", str(issued.token.pk))
    assert event.data == {
        "client": "helpdesk",
        "prefix": issued.token.prefix,
        "capabilities": ["refunds.issue"],
        "expires_at": moment(expires_at),
    }


def test_a_token_cannot_be_issued_already_expired(api_client_row):
    trail = Trail()

    with pytest.raises(ValidationError, match="future"):
        api_token_issue(client=api_client_row, expires_at=timezone.now() - HOUR, actor=TESTS)

    assert ApiToken.objects.filter(client=api_client_row).count() == 1
    assert trail.events() == []


# --- Expiry -------------------------------------------------------------------------------------


def test_token_works_until_its_expiry(api_client_row):
    issued = api_token_issue(client=api_client_row, expires_at=timezone.now() + HOUR, actor=TESTS)

    assert post(issued.secret).status_code == 201


def test_expired_token_is_401_saying_so_on_post_and_get_and_stores_nothing(
    issued, api_client_row, capability
):
    suggestion = submit(api_client_row, capability)
    ApiToken.objects.filter(pk=issued.token.pk).update(expires_at=timezone.now() - HOUR)
    api = bearer(issued.secret)
    events_before = last_sequence()

    assert_401(api.post(URL, body(), format="json"), "expired", issued.token.prefix)
    assert_401(api.get(URL), "expired")
    assert_401(api.get(f"{URL}{suggestion.pk}/"), "expired")

    assert Suggestion.objects.count() == 1
    assert last_sequence() == events_before
    assert api_token_authenticate(issued.secret) is None
    assert api_token_check(issued.secret).refusal is TokenRefusal.EXPIRED


def test_a_token_at_the_very_moment_of_its_expiry_no_longer_works(issued):
    now = timezone.now()
    ApiToken.objects.filter(pk=issued.token.pk).update(expires_at=now)

    assert_401(post(issued.secret), "expired")


# --- Revocation ---------------------------------------------------------------------------------


def test_revoked_token_is_401_at_once_over_http(issued, api_client_row, capability):
    suggestion = submit(api_client_row, capability)
    api = bearer(issued.secret)
    assert api.get(f"{URL}{suggestion.pk}/").status_code == 200

    api_token_revoke(token=issued.token, actor=TESTS)

    assert_401(api.post(URL, body(), format="json"), "revoked")
    assert_401(api.get(URL), "revoked")
    assert_401(api.get(f"{URL}{suggestion.pk}/"), "revoked")
    assert Suggestion.objects.count() == 1


def test_revocation_is_audited_once_even_when_repeated(issued):
    trail = Trail()

    api_token_revoke(token=issued.token, actor=TESTS)
    api_token_revoke(token=issued.token, actor=TESTS)

    [event] = trail.events()
    assert event.action == "api_token.revoked"
    assert (event.subject_type, event.subject_id) == ("apitoken", str(issued.token.pk))
    assert event.data == {"client": issued.token.client.name, "prefix": issued.token.prefix}


def test_unknown_token_is_401_without_naming_anything(capability):
    response = post("sgf_nothing-like-this")

    assert_401(response, "unknown")


# --- Rotation -----------------------------------------------------------------------------------


def test_during_the_overlap_both_the_old_and_the_new_token_work_over_http(refunds_only, capability):
    rotated = api_token_rotate(token=refunds_only.token, overlap=HOUR, actor=TESTS)

    assert post(refunds_only.secret).status_code == 201
    assert post(rotated.secret).status_code == 201
    assert ids(bearer(refunds_only.secret).get(URL)) == ids(bearer(rotated.secret).get(URL))
    assert len(ids(bearer(rotated.secret).get(URL))) == 2


def test_after_the_overlap_only_the_new_token_works(refunds_only):
    rotated = api_token_rotate(token=refunds_only.token, overlap=HOUR, actor=TESTS)
    # An hour later: the old token's expiry has passed.
    ApiToken.objects.filter(pk=refunds_only.token.pk).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )

    assert_401(post(refunds_only.secret), "expired")
    assert post(rotated.secret).status_code == 201


def test_rotation_without_overlap_stops_the_old_token_at_once(refunds_only):
    rotated = api_token_rotate(token=refunds_only.token, overlap=dt.timedelta(0), actor=TESTS)

    assert_401(post(refunds_only.secret), "expired")
    assert post(rotated.secret).status_code == 201


def test_rotation_gives_the_new_token_the_same_client_and_scope_and_is_audited(
    refunds_only, two_capability_client
):
    old = refunds_only.token
    trail = Trail()
    before = timezone.now()

    rotated = api_token_rotate(token=old, overlap=2 * HOUR, actor=TESTS)

    new = rotated.token
    old.refresh_from_db()
    assert new.client == two_capability_client
    assert keys(new) == keys(old) == {"refunds.issue"}
    assert new.expires_at is None
    assert old.revoked_at is None
    assert old.expires_at is not None
    assert before + 2 * HOUR <= old.expires_at <= timezone.now() + 2 * HOUR
    issued_event, rotated_event = trail.events()
    assert issued_event.action == "api_token.issued"
    assert (issued_event.subject_type, issued_event.subject_id) == ("apitoken", str(new.pk))
    assert issued_event.data == {
        "client": "helpdesk",
        "prefix": new.prefix,
        "capabilities": ["refunds.issue"],
        "expires_at": None,
    }
    assert rotated_event.action == "api_token.rotated"
    assert rotated_event.actor_label == "tests"
    assert (rotated_event.subject_type, rotated_event.subject_id) == ("apitoken", str(old.pk))
    assert rotated_event.data == {
        "client": "helpdesk",
        "prefix": old.prefix,
        "new_prefix": new.prefix,
        "expires_at": moment(old.expires_at),
    }


@override_settings(SIGNOFF_TOKEN_ROTATION_OVERLAP_SECONDS=600)
def test_rotation_overlap_defaults_to_the_setting(issued):
    before = timezone.now()

    api_token_rotate(token=issued.token, actor=TESTS)

    issued.token.refresh_from_db()
    assert issued.token.expires_at is not None
    window = issued.token.expires_at - before
    assert dt.timedelta(seconds=600) <= window <= dt.timedelta(seconds=601)


def test_the_overlap_default_is_a_day():
    from django.conf import settings

    assert settings.SIGNOFF_TOKEN_ROTATION_OVERLAP_SECONDS == 24 * 60 * 60


def test_rotating_an_expiring_token_keeps_its_lifetime_for_the_successor(api_client_row):
    old = api_token_issue(
        client=api_client_row, expires_at=timezone.now() + dt.timedelta(days=90), actor=TESTS
    ).token
    lifetime = old.expires_at - old.created_at  # type: ignore[operator]

    new = api_token_rotate(token=old, overlap=HOUR, actor=TESTS).token

    assert new.expires_at is not None
    assert abs((new.expires_at - new.created_at) - lifetime) < dt.timedelta(seconds=1)


def test_rotation_never_lengthens_the_life_of_an_old_token_expiring_sooner(api_client_row):
    soon = timezone.now() + dt.timedelta(minutes=5)
    old = api_token_issue(client=api_client_row, expires_at=soon, actor=TESTS).token

    api_token_rotate(token=old, overlap=HOUR, actor=TESTS)

    old.refresh_from_db()
    assert old.expires_at == soon


@pytest.mark.parametrize("state", ["revoked", "expired"])
def test_a_token_that_no_longer_works_cannot_be_rotated(issued, state):
    if state == "revoked":
        api_token_revoke(token=issued.token, actor=TESTS)
    else:
        ApiToken.objects.filter(pk=issued.token.pk).update(expires_at=timezone.now() - HOUR)
    tokens_before = ApiToken.objects.count()
    trail = Trail()

    with pytest.raises(ValidationError, match=state):
        api_token_rotate(token=issued.token, actor=TESTS)

    assert ApiToken.objects.count() == tokens_before
    assert trail.events() == []


def test_a_negative_overlap_is_refused(issued):
    with pytest.raises(ValidationError, match="negative"):
        api_token_rotate(token=issued.token, overlap=-HOUR, actor=TESTS)

    assert ApiToken.objects.count() == 1


# --- Last use -----------------------------------------------------------------------------------


def test_last_use_is_recorded_at_most_once_a_minute(issued):
    assert issued.token.last_used_at is None
    api = bearer(issued.secret)

    api.get(URL)
    first = ApiToken.objects.get(pk=issued.token.pk).last_used_at
    api.get(URL)
    again = ApiToken.objects.get(pk=issued.token.pk).last_used_at

    assert first is not None
    assert again == first
    two_minutes_ago = timezone.now() - dt.timedelta(minutes=2)
    ApiToken.objects.filter(pk=issued.token.pk).update(last_used_at=two_minutes_ago)
    api.get(URL)
    later = ApiToken.objects.get(pk=issued.token.pk).last_used_at
    assert later is not None and later > two_minutes_ago


def test_a_refused_token_records_no_use(issued):
    api_token_revoke(token=issued.token, actor=TESTS)

    assert_401(bearer(issued.secret).get(URL))

    assert ApiToken.objects.get(pk=issued.token.pk).last_used_at is None


# --- Updating a client --------------------------------------------------------------------------


def test_client_update_records_exactly_what_changed(two_capability_client, capability):
    person = UserFactory(username="olga")
    trail = Trail()

    api_client_update(
        client=two_capability_client,
        is_active=False,
        capabilities=[capability],
        user=person,
        actor=TESTS,
    )

    two_capability_client.refresh_from_db()
    assert not two_capability_client.is_active
    assert two_capability_client.user == person
    assert set(two_capability_client.capabilities.values_list("key", flat=True)) == {
        "refunds.issue"
    }
    [event] = trail.events()
    assert (event.action, event.actor_label) == ("api_client.updated", "tests")
    assert (event.subject_type, event.subject_id) == ("apiclient", str(two_capability_client.pk))
    assert event.data == {
        "client": "helpdesk",
        "is_active": {"from": True, "to": False},
        "user": {"from": None, "to": "olga"},
        "capabilities": {"added": [], "removed": ["content.moderate"]},
        "tokens_narrowed": [two_capability_client.tokens.get().prefix],
    }


def test_client_update_names_only_the_fields_that_changed(api_client_row, other_capability):
    person = UserFactory(username="olga")
    api_client_update(client=api_client_row, user=person, actor=TESTS)
    trail = Trail()

    api_client_update(
        client=api_client_row,
        is_active=True,
        capabilities=[*api_client_row.capabilities.all(), other_capability],
        user=UNCHANGED,
        actor=TESTS,
    )
    api_client_update(client=api_client_row, user=None, actor=TESTS)

    first, second = trail.events()
    assert first.data == {
        "client": api_client_row.name,
        "capabilities": {"added": ["content.moderate"], "removed": []},
    }
    assert second.data == {"client": api_client_row.name, "user": {"from": "olga", "to": None}}
    api_client_row.refresh_from_db()
    assert api_client_row.user is None


def test_client_update_that_changes_nothing_records_nothing(api_client_row, capability):
    trail = Trail()

    api_client_update(client=api_client_row, is_active=True, capabilities=[capability], actor=TESTS)
    api_client_update(client=api_client_row, actor=TESTS)

    assert trail.events() == []


def test_narrowing_a_client_narrows_its_tokens_at_once_over_http(two_capability_client, capability):
    whole = api_token_issue(client=two_capability_client, actor=TESTS)
    assert post(whole.secret, "content.moderate").status_code == 201

    api_client_update(client=two_capability_client, capabilities=[capability], actor=TESTS)

    assert keys(whole.token) == {"refunds.issue"}
    response = post(whole.secret, "content.moderate")
    assert response.status_code == 403
    assert response.json()["code"] == "capability_not_in_scope"
    assert ids(bearer(whole.secret).get(URL)) == []
    assert post(whole.secret, "refunds.issue").status_code == 201


def test_widening_a_client_widens_no_existing_token(issued, api_client_row, other_capability):
    api_client_update(
        client=api_client_row,
        capabilities=[*api_client_row.capabilities.all(), other_capability],
        actor=TESTS,
    )

    assert keys(issued.token) == {"refunds.issue"}
    assert post(issued.secret, "content.moderate").status_code == 403


def test_a_deactivated_clients_tokens_are_401_until_it_is_reactivated(issued, api_client_row):
    api_client_update(client=api_client_row, is_active=False, actor=TESTS)

    assert_401(post(issued.secret), "deactivated")

    api_client_update(client=api_client_row, is_active=True, actor=TESTS)
    assert post(issued.secret).status_code == 201


# --- Admin --------------------------------------------------------------------------------------


def logged_in(user: Any) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


def change_url(client: ApiClient) -> str:
    return reverse("admin:capabilities_apiclient_change", args=[client.pk])


def form_data(response: Any, **changes: Any) -> dict[str, Any]:
    """What a browser posts back from the change page, with ``changes`` applied (``None``
    leaves a field out, as an unticked box or an empty selection)."""
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        forms.append(inline.formset.management_form)
        forms.extend(inline.formset.forms)
    data: dict[str, Any] = {"_save": "Save"}
    for form in forms:
        for name in form.fields:
            value = form[name].value()
            if value is None or value is False:
                continue
            data[form.add_prefix(name)] = value if isinstance(value, list) else str(value)
    for name, value in changes.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    return data


@pytest.fixture
def administrator() -> Any:
    """An administrator by role (not a superuser)."""
    user = UserFactory(username="ada")
    role_grant(user=user, role="administrator", actor=TESTS)
    return user


def test_administrator_updates_a_client_in_the_admin_through_the_audited_service(
    administrator, two_capability_client, capability
):
    person = UserFactory(username="olga")
    token = two_capability_client.tokens.get()
    browser = logged_in(administrator)
    page = browser.get(change_url(two_capability_client))
    assert page.status_code == 200
    trail = Trail()

    response = browser.post(
        change_url(two_capability_client),
        form_data(page, is_active=None, capabilities=[str(capability.pk)], user=str(person.pk)),
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    two_capability_client.refresh_from_db()
    assert not two_capability_client.is_active
    assert two_capability_client.user == person
    assert keys(token) == {"refunds.issue"}
    [event] = trail.events()
    assert event.action == "api_client.updated"
    assert (event.actor_type, event.actor_id, event.actor_label) == (
        "user",
        str(administrator.pk),
        "ada",
    )
    assert event.data == {
        "client": "helpdesk",
        "is_active": {"from": True, "to": False},
        "user": {"from": None, "to": "olga"},
        "capabilities": {"added": [], "removed": ["content.moderate"]},
        "tokens_narrowed": [token.prefix],
    }


def test_saving_the_client_page_unchanged_records_nothing(administrator, api_client_row):
    browser = logged_in(administrator)
    page = browser.get(change_url(api_client_row))
    trail = Trail()

    response = browser.post(change_url(api_client_row), form_data(page))

    assert response.status_code == 302
    assert trail.events() == []


def test_name_and_description_cannot_be_changed_in_the_admin(administrator, api_client_row):
    browser = logged_in(administrator)
    page = browser.get(change_url(api_client_row))
    name = api_client_row.name

    browser.post(change_url(api_client_row), form_data(page, name="renamed", description="x"))

    api_client_row.refresh_from_db()
    assert (api_client_row.name, api_client_row.description) == (name, "")


def test_manager_who_may_only_view_clients_cannot_update_one(manager, issued, capability):
    client_row = issued.token.client
    role_grant(user=manager, role="manager", capabilities=[capability], actor=TESTS)
    browser = logged_in(manager)
    page = browser.get(change_url(client_row))
    assert page.status_code == 200
    assert page.context["title"] == "View api client"
    trail = Trail()

    response = browser.post(change_url(client_row), {"is_active": "", "capabilities": []})

    assert response.status_code == 403
    client_row.refresh_from_db()
    assert client_row.is_active
    assert client_row.capabilities.count() == 1
    assert trail.events() == []


def test_staff_without_any_client_permission_is_refused(issued):
    staff = UserFactory(username="sid", is_staff=True)
    browser = logged_in(staff)

    assert browser.get(change_url(issued.token.client)).status_code == 403
    assert browser.post(change_url(issued.token.client), {"is_active": ""}).status_code == 403
    assert browser.get(reverse("admin:capabilities_apitoken_changelist")).status_code == 403
    issued.token.client.refresh_from_db()
    assert issued.token.client.is_active


def test_client_page_shows_token_scope_expiry_last_use_and_revocation_never_the_hash(
    administrator, refunds_only, two_capability_client
):
    expiring = api_token_issue(
        client=two_capability_client,
        expires_at=timezone.now() + dt.timedelta(days=3),
        actor=TESTS,
    )
    api_token_revoke(token=expiring.token, actor=TESTS)
    post(refunds_only.secret)

    page = logged_in(administrator).get(change_url(two_capability_client))

    content = page.content.decode()
    [inline] = page.context["inline_admin_formsets"]
    assert [field["name"] for field in inline.fields()] == [
        "prefix",
        "scope",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    for token in ApiToken.objects.filter(client=two_capability_client):
        assert token.prefix in content
        assert token.token_hash not in content
    assert refunds_only.secret not in content and expiring.secret not in content
    assert "content.moderate, refunds.issue" in content  # the first token's whole scope
    assert "Revoke or review this client" in content


def test_revoke_action_revokes_the_selected_tokens_as_the_administrator(
    administrator, refunds_only, two_capability_client
):
    other = api_token_issue(client=two_capability_client, actor=TESTS)
    changelist = reverse("admin:capabilities_apitoken_changelist")
    browser = logged_in(administrator)
    listing = browser.get(changelist)
    assert "revoke_tokens" in dict(listing.context["action_form"].fields["action"].choices)
    assert refunds_only.token.token_hash not in listing.content.decode()
    trail = Trail()

    response = browser.post(
        changelist,
        {"action": "revoke_tokens", "index": 0, ACTION_CHECKBOX_NAME: [refunds_only.token.pk]},
    )

    assert response.status_code == 302
    [event] = trail.events()
    assert event.action == "api_token.revoked"
    assert (event.actor_type, event.actor_label) == ("user", "ada")
    assert event.data == {"client": "helpdesk", "prefix": refunds_only.token.prefix}
    assert_401(post(refunds_only.secret), "revoked")
    assert post(other.secret).status_code == 201


def test_revoke_action_is_refused_to_a_manager_who_may_only_view(manager, issued, capability):
    role_grant(user=manager, role="manager", capabilities=[capability], actor=TESTS)
    changelist = reverse("admin:capabilities_apitoken_changelist")
    browser = logged_in(manager)
    listing = browser.get(changelist)
    assert listing.status_code == 200
    assert [token.prefix for token in listing.context["cl"].result_list] == [issued.token.prefix]
    assert listing.context["action_form"] is None  # no action at all is offered
    trail = Trail()

    browser.post(
        changelist,
        {"action": "revoke_tokens", "index": 0, ACTION_CHECKBOX_NAME: [issued.token.pk]},
    )

    assert post(issued.secret).status_code == 201
    assert "api_token.revoked" not in trail.actions()


def test_token_admin_shows_no_token_of_clients_a_manager_does_not_see(
    manager, issued, capability, other_capability
):
    role_grant(user=manager, role="manager", capabilities=[capability], actor=TESTS)
    elsewhere = ApiClientFactory.issue(capabilities=[other_capability], name="elsewhere")

    listing = logged_in(manager).get(reverse("admin:capabilities_apitoken_changelist"))

    shown = [token.prefix for token in listing.context["cl"].result_list]
    assert shown == [issued.token.prefix]
    assert elsewhere.token.prefix not in shown
