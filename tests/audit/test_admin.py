"""The audit trail in the admin is read-only for everyone, superusers included."""

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from guardian.shortcuts import assign_perm

from audit.models import AuditAction, AuditEvent
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:audit_auditevent_changelist"


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def superuser() -> Any:
    return UserFactory(username="root", is_staff=True, is_superuser=True)


@pytest.fixture
def auditor() -> Any:
    user = UserFactory(username="audrey", is_staff=True)
    assign_perm("audit.view_auditevent", user)
    return user


@pytest.fixture
def event(capability: Any) -> AuditEvent:
    """The ``policy.published`` event of the capability's first policy."""
    return AuditEvent.objects.get(action=AuditAction.POLICY_PUBLISHED, capability=capability.key)


def trail() -> list[tuple[int, str]]:
    return list(AuditEvent.objects.order_by("sequence").values_list("sequence", "hash"))


def test_auditor_lists_events_newest_first(auditor, capability):
    response = logged_in(auditor).get(reverse(CHANGELIST))

    assert response.status_code == 200
    sequences = [e.sequence for e in response.context["cl"].result_list]
    assert sequences == sorted(sequences, reverse=True)
    assert len(sequences) == AuditEvent.objects.count()


def test_events_can_be_filtered_and_searched(auditor, capability, other_capability):
    browser = logged_in(auditor)

    by_capability = browser.get(reverse(CHANGELIST), {"capability": capability.key})
    assert {e.capability for e in by_capability.context["cl"].result_list} == {capability.key}
    by_action = browser.get(reverse(CHANGELIST), {"action": AuditAction.CAPABILITY_CREATED})
    assert {e.action for e in by_action.context["cl"].result_list} == {"capability.created"}
    searched = browser.get(reverse(CHANGELIST), {"q": other_capability.key})
    assert {e.capability for e in searched.context["cl"].result_list} == {other_capability.key}


def test_staff_user_without_the_view_permission_is_refused(capability):
    response = logged_in(UserFactory(is_staff=True)).get(reverse(CHANGELIST))
    assert response.status_code == 403


def test_detail_page_is_read_only_and_shows_data_and_both_hashes(superuser, event):
    response = logged_in(superuser).get(reverse("admin:audit_auditevent_change", args=[event.pk]))

    assert response.status_code == 200
    assert response.context["title"] == "View audit event"
    content = response.content.decode()
    assert event.hash in content
    assert event.prev_hash in content
    assert "<pre" in content
    assert "&quot;auto_approve_at&quot;: &quot;0.90&quot;" in content
    assert 'name="_save"' not in content


def test_superuser_can_neither_add_change_nor_delete_events(superuser, event):
    browser = logged_in(superuser)
    before = trail()

    assert browser.get(reverse("admin:audit_auditevent_add")).status_code == 403
    assert browser.post(reverse("admin:audit_auditevent_add"), {}).status_code == 403
    change = reverse("admin:audit_auditevent_change", args=[event.pk])
    assert browser.post(change, {"actor_label": "someone else"}).status_code == 403
    delete = reverse("admin:audit_auditevent_delete", args=[event.pk])
    assert browser.get(delete).status_code == 403
    assert browser.post(delete, {"post": "yes"}).status_code == 403

    assert trail() == before


def test_changelist_offers_no_delete_action(superuser, event):
    browser = logged_in(superuser)
    before = trail()

    listing = browser.get(reverse(CHANGELIST))
    assert listing.context["action_form"] is None
    browser.post(
        reverse(CHANGELIST),
        {"action": "delete_selected", "_selected_action": [event.pk], "index": 0, "post": "yes"},
    )

    assert trail() == before
