"""The capability, policy and API client admin, driven through real admin HTTP requests."""

from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from guardian.shortcuts import assign_perm

from audit.models import AuditAction, AuditEvent
from capabilities.models import ApiToken, Capability, Policy
from capabilities.services import policy_active, policy_publish
from reviews.models import SuggestionStatus
from tests.factories import ApiClientFactory, UserFactory, submit

pytestmark = pytest.mark.django_db


def change_url(capability: Capability) -> str:
    return reverse("admin:capabilities_capability_change", args=[capability.pk])


def form_data(response: Any) -> dict[str, Any]:
    """What a browser posts back from an admin form page: every field of the form and of each
    inline formset, management forms included, with its current value."""
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
    return data


def versions(capability: Capability) -> list[tuple[int, Decimal, Decimal]]:
    return [
        (p.version, p.auto_approve_at, p.auto_reject_below)
        for p in Policy.objects.filter(capability=capability).order_by("version")
    ]


def published_events() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=AuditAction.POLICY_PUBLISHED))


@pytest.fixture
def superuser() -> Any:
    return UserFactory(username="root", is_staff=True, is_superuser=True)


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- Changing thresholds ----------------------------------------------------------------------


def test_change_page_prefills_the_active_thresholds(manager, capability):
    response = logged_in(manager).get(change_url(capability))

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form["auto_approve_at"].value() == Decimal("0.9")
    assert form["auto_reject_below"].value() == Decimal("0.3")
    assert "policy_note" in form.fields


def test_changing_a_threshold_publishes_a_new_version_that_routes_the_next_suggestion(
    manager, capability, api_client_row
):
    browser = logged_in(manager)
    data = form_data(browser.get(change_url(capability)))
    data.update(auto_reject_below="0.6000", policy_note="Too many weak refunds got through")

    response = browser.post(change_url(capability), data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert versions(capability) == [
        (1, Decimal("0.9"), Decimal("0.3")),
        (2, Decimal("0.9"), Decimal("0.6")),
    ]
    new = policy_active(capability)
    assert (new.created_by, new.note) == (manager, "Too many weak refunds got through")
    event = published_events()[-1]
    assert (event.actor_type, event.actor_label) == ("user", manager.username)
    assert event.capability == capability.key
    assert event.data == {
        "version": 2,
        "previous_version": 1,
        "auto_approve_at": "0.9000",
        "auto_reject_below": "0.6000",
        "required_approvals": 1,
        "sla_minutes": None,
        "sla_default": "reject",
        "note": "Too many weak refunds got through",
    }
    suggestion = submit(api_client_row, capability, confidence=0.5)
    assert suggestion.status == SuggestionStatus.AUTO_REJECTED
    assert suggestion.policy.version == 2


def test_saving_unchanged_thresholds_publishes_nothing(manager, capability):
    browser = logged_in(manager)
    data = form_data(browser.get(change_url(capability)))
    data.update(auto_approve_at="0.90", policy_note="Nothing really changed")
    before = len(published_events())

    response = browser.post(change_url(capability), data, follow=True)

    assert response.status_code == 200
    assert versions(capability) == [(1, Decimal("0.9"), Decimal("0.3"))]
    assert len(published_events()) == before
    assert "no new policy version was published" in response.content.decode()


@pytest.mark.parametrize(
    ("approve_at", "reject_below", "field"),
    [
        ("0.5000", "0.7000", "auto_reject_below"),
        ("1.5", "0.3000", "auto_approve_at"),
        ("0.9000", "-0.1", "auto_reject_below"),
        ("0.12345", "0.1000", "auto_approve_at"),
        ("", "0.3000", "auto_approve_at"),
    ],
)
def test_invalid_thresholds_are_form_errors_and_publish_nothing(
    manager, capability, approve_at, reject_below, field
):
    browser = logged_in(manager)
    data = form_data(browser.get(change_url(capability)))
    data.update(auto_approve_at=approve_at, auto_reject_below=reject_below)
    before = len(published_events())

    response = browser.post(change_url(capability), data)

    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert versions(capability) == [(1, Decimal("0.9"), Decimal("0.3"))]
    assert len(published_events()) == before


def test_staff_user_who_does_not_manage_the_capability_sees_it_read_only(capability):
    # Model permissions and review rights make the capability visible, but not manageable.
    user = UserFactory(is_staff=True)
    for codename in ("view_capability", "change_capability", "view_policy"):
        assign_perm(f"capabilities.{codename}", user)
    assign_perm("capabilities.review_capability", user, capability)
    browser = logged_in(user)

    page = browser.get(change_url(capability))
    assert page.status_code == 200
    assert page.context["title"] == "View capability"
    assert "auto_approve_at" not in page.context["adminform"].form.fields
    assert "0.9000" in page.content.decode()  # the thresholds are shown, read-only

    data = {"auto_approve_at": "0.9500", "auto_reject_below": "0.5000", "_save": "Save"}
    refused = browser.post(change_url(capability), data)
    assert refused.status_code == 403
    assert versions(capability) == [(1, Decimal("0.9"), Decimal("0.3"))]


def test_manager_of_another_capability_can_neither_see_nor_change_this_one(
    manager, other_capability
):
    browser = logged_in(manager)

    page = browser.get(change_url(other_capability))
    assert page.status_code == 302  # "does not exist", as for an unknown id
    refused = browser.post(
        change_url(other_capability),
        {"auto_approve_at": "0.9500", "auto_reject_below": "0.5000", "_save": "Save"},
    )
    assert refused.status_code == 302
    assert len(versions(other_capability)) == 1


def test_changelist_shows_only_capabilities_the_user_manages_or_views(
    manager, capability, other_capability, superuser
):
    url = reverse("admin:capabilities_capability_changelist")

    as_manager = logged_in(manager).get(url)
    assert [c.key for c in as_manager.context["cl"].result_list] == [capability.key]
    as_superuser = logged_in(superuser).get(url)
    assert {c.key for c in as_superuser.context["cl"].result_list} == {
        capability.key,
        other_capability.key,
    }


def test_changelist_shows_the_active_version_and_thresholds(manager, capability):
    policy_publish(
        capability=capability,
        auto_approve_at=Decimal("0.97"),
        auto_reject_below=Decimal("0.45"),
        user=manager,
    )

    response = logged_in(manager).get(reverse("admin:capabilities_capability_changelist"))

    (row,) = response.context["cl"].result_list
    assert (row.active_version, row.active_auto_approve_at, row.active_auto_reject_below) == (
        2,
        Decimal("0.97"),
        Decimal("0.45"),
    )
    assert "0.9700" in response.content.decode()


def test_anonymous_user_is_sent_to_the_admin_login(capability):
    response = Client().get(change_url(capability))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_policy_versions_show_newest_first_and_read_only(manager, capability):
    policy_publish(
        capability=capability,
        auto_approve_at=Decimal("0.95"),
        auto_reject_below=Decimal("0.30"),
        user=manager,
    )

    response = logged_in(manager).get(change_url(capability))

    (inline,) = response.context["inline_admin_formsets"]
    assert [form.instance.version for form in inline.formset.forms] == [2, 1]
    assert not inline.has_add_permission
    assert not inline.has_change_permission
    assert not inline.has_delete_permission


# --- Creating and deleting capabilities -------------------------------------------------------


def test_creating_a_capability_publishes_version_one_and_audits_both(superuser):
    browser = logged_in(superuser)
    add_url = reverse("admin:capabilities_capability_add")
    page = browser.get(add_url)
    assert page.status_code == 200
    assert "policy_note" not in {
        name for fieldset in page.context["adminform"] for line in fieldset for name in line.fields
    }
    owner = UserFactory(username="olivia")

    response = browser.post(
        add_url,
        {
            "key": "invoice.extract",
            "name": "Invoice field extraction",
            "description": "Book invoice fields into accounts payable.",
            "owner": owner.pk,
            "auto_approve_at": "0.85",
            "auto_reject_below": "0.30",
            "required_approvals": "2",
            "_save": "Save",
        },
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    capability = Capability.objects.get(key="invoice.extract")
    assert capability.owner == owner
    assert versions(capability) == [(1, Decimal("0.85"), Decimal("0.30"))]
    assert policy_active(capability).required_approvals == 2
    assert policy_active(capability).created_by == superuser
    events = AuditEvent.objects.filter(capability="invoice.extract").order_by("sequence")
    assert [(e.action, e.actor_label) for e in events] == [
        (AuditAction.CAPABILITY_CREATED, superuser.username),
        (AuditAction.POLICY_PUBLISHED, superuser.username),
    ]


@pytest.mark.parametrize(
    ("approve_at", "reject_below", "key", "field"),
    [
        ("0.30", "0.85", "invoice.extract", "auto_reject_below"),
        ("1.5", "0.30", "invoice.extract", "auto_approve_at"),
        ("0.85", "0.30", "Not A Key", "key"),
    ],
)
def test_creating_a_capability_with_invalid_input_saves_nothing(
    superuser, approve_at, reject_below, key, field
):
    events_before = AuditEvent.objects.count()

    response = logged_in(superuser).post(
        reverse("admin:capabilities_capability_add"),
        {
            "key": key,
            "name": "Invoice field extraction",
            "owner": superuser.pk,
            "auto_approve_at": approve_at,
            "auto_reject_below": reject_below,
            "_save": "Save",
        },
    )

    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not Capability.objects.exists()
    assert AuditEvent.objects.count() == events_before


def test_manager_without_add_permission_cannot_create_capabilities(manager):
    response = logged_in(manager).get(reverse("admin:capabilities_capability_add"))
    assert response.status_code == 403


def test_capabilities_cannot_be_deleted_in_the_admin(superuser, capability):
    url = reverse("admin:capabilities_capability_delete", args=[capability.pk])
    response = logged_in(superuser).post(url, {"post": "yes"})
    assert response.status_code == 403
    assert Capability.objects.filter(pk=capability.pk).exists()


# --- Policies and API clients -----------------------------------------------------------------


def test_policy_admin_lists_versions_and_refuses_every_change(superuser, capability):
    policy = policy_active(capability)
    browser = logged_in(superuser)

    listing = browser.get(reverse("admin:capabilities_policy_changelist"))
    assert listing.status_code == 200
    assert list(listing.context["cl"].result_list) == [policy]
    assert browser.get(reverse("admin:capabilities_policy_add")).status_code == 403
    change = reverse("admin:capabilities_policy_change", args=[policy.pk])
    assert browser.get(change).context["title"] == "View policy"
    assert browser.post(change, {"auto_approve_at": "0.1"}).status_code == 403
    delete = reverse("admin:capabilities_policy_delete", args=[policy.pk])
    assert browser.post(delete, {"post": "yes"}).status_code == 403
    assert versions(capability) == [(1, Decimal("0.9"), Decimal("0.3"))]


def test_policy_admin_lists_only_policies_of_visible_capabilities(
    manager, capability, other_capability
):
    response = logged_in(manager).get(reverse("admin:capabilities_policy_changelist"))
    assert {p.capability.key for p in response.context["cl"].result_list} == {capability.key}


def test_api_clients_are_created_by_command_and_never_show_secrets(superuser, issued):
    client_row = issued.token.client
    browser = logged_in(superuser)

    listing = browser.get(reverse("admin:capabilities_apiclient_changelist"))
    assert listing.status_code == 200
    assert "create_api_client" in listing.content.decode()
    assert not listing.context["has_add_permission"]
    assert browser.get(reverse("admin:capabilities_apiclient_add")).status_code == 403

    change = reverse("admin:capabilities_apiclient_change", args=[client_row.pk])
    content = browser.get(change).content.decode()
    assert issued.token.prefix in content
    assert issued.token.token_hash not in content
    assert issued.secret not in content
    delete = reverse("admin:capabilities_apiclient_delete", args=[client_row.pk])
    assert browser.post(delete, {"post": "yes"}).status_code == 403
    assert ApiToken.objects.filter(client=client_row).count() == 1


def test_manager_sees_api_clients_of_their_capabilities_only(
    manager, capability, other_capability, issued
):
    ApiClientFactory.create(capabilities=[other_capability], name="elsewhere")
    assign_perm("capabilities.view_apiclient", manager)

    response = logged_in(manager).get(reverse("admin:capabilities_apiclient_changelist"))

    assert [c.name for c in response.context["cl"].result_list] == [issued.token.client.name]
