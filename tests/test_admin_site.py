"""The admin site as a whole: every registered model can be searched and filtered, the
delivery machinery is read-only and keeps stored answers out of sight, and every page wears
Signoff's theme."""

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.contrib.staticfiles import finders
from django.templatetags.static import static
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from capabilities.models import ApiClient, Capability
from capabilities.roles import ADMINISTRATOR, AUDITOR, MANAGER
from reviews.models import (
    IdempotencyKey,
    OutboxItem,
    WebhookAttempt,
    WebhookDelivery,
)
from reviews.services import ModelInfo
from tests.factories import ApiClientFactory, UserFactory, submit

pytestmark = pytest.mark.django_db

THEME = static("signoff/admin-theme.css")
MACHINERY = (OutboxItem, WebhookDelivery, IdempotencyKey)
STORED_ANSWER = b'{"id": "kept-out-of-sight-0123456789"}'


@pytest.fixture
def superuser() -> Any:
    return UserFactory(username="root", is_staff=True, is_superuser=True)


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def with_role(role: str, username: str) -> Any:
    user = UserFactory(username=username, is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def rows(
    api_client_row: ApiClient, capability: Capability, other_capability: Capability
) -> dict[str, Any]:
    """A row or two of every model, so that each list filter has choices to apply."""
    other_client = ApiClientFactory.create(capabilities=[other_capability], name="other")
    pending = submit(api_client_row, capability, confidence=0.5, external_id="admin-1")
    submit(api_client_row, capability, confidence=0.95, external_id="admin-2")
    submit(
        other_client,
        other_capability,
        confidence=0.1,
        external_id="admin-3",
        model=ModelInfo("claude", "4", "anthropic"),
    )
    now = timezone.now()
    OutboxItem.objects.create(kind="webhook", ref=str(pending.pk), available_at=now)
    OutboxItem.objects.create(kind="execute", ref="done-1", available_at=now, done_at=now)
    delivery = WebhookDelivery.objects.create(
        suggestion=pending,
        message_id="msg_admin_1",
        event_type="suggestion.decided",
        url="https://example.test/hook",
        payload={"id": str(pending.pk)},
        state="failed",
        attempts=1,
        last_status_code=500,
    )
    WebhookAttempt.objects.create(delivery=delivery, status_code=500, error="Server error")
    key = IdempotencyKey.objects.create(
        client=api_client_row,
        key="idem-admin-1",
        request_hash="0" * 64,
        state="completed",
        capability_key=capability.key,
        response_status=201,
        response_body=STORED_ANSWER,
        completed_at=now,
    )
    return {"delivery": delivery, "key": key}


def changelist_url(model: type) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def test_every_model_has_list_filters_and_search_fields() -> None:
    for model, model_admin in admin.site._registry.items():
        # Django's group admin: the groups are the five roles, with nothing to filter by.
        if model is not Group:
            assert model_admin.list_filter, f"{model.__name__} has no list_filter"
        assert model_admin.search_fields, f"{model.__name__} has no search_fields"


def test_every_changelist_loads_searched_and_with_each_filter_applied(
    superuser: Any, rows: dict[str, Any]
) -> None:
    client = logged_in(superuser)
    for model in admin.site._registry:
        url = changelist_url(model)
        response = client.get(url, {"q": "admin-1"})
        assert response.status_code == 200, f"{model.__name__} search: {response.status_code}"

        response = client.get(url)
        assert response.status_code == 200, url
        changelist = response.context["cl"]
        applied = 0
        for spec in changelist.filter_specs:
            for choice in spec.choices(changelist):
                query = choice["query_string"]
                # A refused lookup would redirect to ?e=1 instead.
                status = client.get(url + query).status_code
                assert status == 200, f"{model.__name__} {query}: {status}"
                applied += 1
        if model is not Group:
            assert changelist.filter_specs, f"{model.__name__} shows no filter"
        assert applied >= len(changelist.filter_specs), model.__name__

        # And a filter together with a search term.
        if changelist.filter_specs:
            choice = list(changelist.filter_specs[0].choices(changelist))[-1]
            query = choice["query_string"]
            combined = f"{url}{query}{'&' if '?' in query else '?'}{urlencode({'q': 'x'})}"
            assert client.get(combined).status_code == 200, combined


def test_admin_pages_carry_the_theme_and_the_way_back_to_the_queue(
    superuser: Any, rows: dict[str, Any]
) -> None:
    client = logged_in(superuser)
    pages = [
        reverse("admin:index"),
        *(changelist_url(model) for model in admin.site._registry),
        reverse("admin:reviews_webhookdelivery_change", args=[rows["delivery"].pk]),
    ]
    for page in pages:
        html = client.get(page).content.decode()
        assert f'href="{THEME}"' in html, page
        assert "Signoff admin" in html, page
        assert f'href="{reverse("reviews:queue")}"' in html, page

    # The login page too, before anyone is signed in.
    html = Client().get(reverse("admin:login")).content.decode()
    assert f'href="{THEME}"' in html
    assert "Signoff admin" in html


def test_the_theme_sets_the_admin_palette() -> None:
    path = finders.find("signoff/admin-theme.css")
    assert path is not None
    css = Path(path).read_text(encoding="utf-8")
    for name in ("--primary", "--secondary", "--header-bg", "--link-fg", "--button-bg"):
        assert f"{name}:" in css, name


def test_machinery_is_read_only_for_everyone(superuser: Any, rows: dict[str, Any]) -> None:
    client = logged_in(superuser)
    for model in MACHINERY:
        opts = model._meta
        add = reverse(f"admin:{opts.app_label}_{opts.model_name}_add")
        assert client.get(add).status_code == 403, add
        obj = model.objects.first()
        assert obj is not None
        change = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
        page = client.get(change)
        assert page.status_code == 200
        assert page.context["has_change_permission"] is False
        assert page.context["has_delete_permission"] is False
        assert client.post(change, {}).status_code == 403, change
        delete = reverse(f"admin:{opts.app_label}_{opts.model_name}_delete", args=[obj.pk])
        assert client.post(delete, {"post": "yes"}).status_code == 403, delete
        assert model.objects.filter(pk=obj.pk).exists()
        actions = client.get(changelist_url(model)).context["action_form"]
        assert actions is None or "delete_selected" not in dict(actions.fields["action"].choices)


def test_webhook_delivery_shows_its_attempts(superuser: Any, rows: dict[str, Any]) -> None:
    delivery = rows["delivery"]
    url = reverse("admin:reviews_webhookdelivery_change", args=[delivery.pk])
    html = logged_in(superuser).get(url).content.decode()
    assert "Server error" in html
    assert "msg_admin_1" in html


def test_idempotency_key_shows_the_length_of_the_stored_answer_never_the_answer(
    superuser: Any, rows: dict[str, Any]
) -> None:
    client = logged_in(superuser)
    key = rows["key"]
    pages = [
        changelist_url(IdempotencyKey),
        reverse("admin:reviews_idempotencykey_change", args=[key.pk]),
    ]
    for page in pages:
        html = client.get(page).content.decode()
        assert "idem-admin-1" in html
        assert "kept-out-of-sight" not in html, page
        assert str(len(STORED_ANSWER)) in html, page


@pytest.mark.parametrize(("role", "sees"), [(ADMINISTRATOR, 200), (AUDITOR, 200), (MANAGER, 403)])
def test_administrators_and_auditors_look_into_the_machinery(
    role: str, sees: int, rows: dict[str, Any]
) -> None:
    client = logged_in(with_role(role, f"{role.replace(' ', '-')}-1"))
    for model in MACHINERY:
        assert client.get(changelist_url(model)).status_code == sees, (role, model.__name__)
    index = client.get(reverse("admin:index")).content.decode()
    assert (changelist_url(OutboxItem) in index) == (sees == 200)
