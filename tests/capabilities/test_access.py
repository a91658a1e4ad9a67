"""Roles and capability permissions change only through audited services, from any path."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from audit.services import Actor
from capabilities.permissions import (
    can_manage_capability,
    can_resolve_escalations,
    can_review_capability,
)
from capabilities.services import role_grant, role_revoke
from tests.factories import UserFactory

User = get_user_model()

pytestmark = pytest.mark.django_db

TESTS = Actor.system("tests")


def events(action):
    return list(AuditEvent.objects.filter(action=action).order_by("sequence"))


def test_granting_a_role_on_a_capability_is_audited_who_whom_what(capability):
    rita = UserFactory(username="rita")
    role_grant(user=rita, role="senior reviewer", capabilities=[capability], actor=TESTS)
    assert rita.groups.filter(name="senior reviewer").exists()
    assert can_review_capability(rita, capability)
    assert can_resolve_escalations(rita, capability)
    assert not can_manage_capability(rita, capability)
    (role,) = events("role.granted")
    assert (role.actor_label, role.data) == ("tests", {"user": "rita", "role": "senior reviewer"})
    granted = events("permission.granted")
    assert {(e.capability, e.data["permission"]) for e in granted} == {
        ("refunds.issue", "capabilities.review_capability"),
        ("refunds.issue", "capabilities.resolve_escalations"),
    }
    role_grant(user=rita, role="senior reviewer", capabilities=[capability], actor=TESTS)
    assert len(events("role.granted")) == 1  # nothing changed, nothing recorded


def test_staff_roles_open_the_admin_site(capability):
    maya = UserFactory(username="maya")
    role_grant(user=maya, role="manager", capabilities=[capability], actor=TESTS)
    maya.refresh_from_db()
    assert maya.is_staff and can_manage_capability(maya, capability)
    assert not can_review_capability(maya, capability)


def test_leaving_the_last_staff_role_closes_the_admin_site(capability):
    maya = UserFactory(username="maya")
    role_grant(user=maya, role="manager", capabilities=[capability], actor=TESTS)
    role_grant(user=maya, role="auditor", actor=TESTS)
    role_revoke(user=maya, role="manager", actor=TESTS)
    maya.refresh_from_db()
    assert maya.is_staff  # still an auditor
    role_revoke(user=maya, role="auditor", actor=TESTS)
    maya.refresh_from_db()
    assert not maya.is_staff


def test_revoking_on_one_capability_keeps_the_others(capability, other_capability):
    rita = UserFactory(username="rita")
    role_grant(user=rita, role="reviewer", capabilities=[capability, other_capability], actor=TESTS)
    role_revoke(user=rita, role="reviewer", capabilities=[other_capability], actor=TESTS)
    assert can_review_capability(rita, capability)
    assert not can_review_capability(rita, other_capability)
    assert rita.groups.filter(name="reviewer").exists()
    (revoked,) = events("permission.revoked")
    assert revoked.capability == "content.moderate"


def test_revoking_a_role_altogether_keeps_what_another_role_grants(capability):
    rita = UserFactory(username="rita")
    role_grant(user=rita, role="reviewer", capabilities=[capability], actor=TESTS)
    role_grant(user=rita, role="senior reviewer", capabilities=[capability], actor=TESTS)
    role_revoke(user=rita, role="senior reviewer", actor=TESTS)
    assert not rita.groups.filter(name="senior reviewer").exists()
    assert can_review_capability(rita, capability)  # still a reviewer
    assert not can_resolve_escalations(rita, capability)
    assert [e.data["role"] for e in events("role.revoked")] == ["senior reviewer"]


def test_an_unknown_role_is_refused_naming_it():
    with pytest.raises(Exception, match="Unknown role 'boss'"):
        role_grant(user=UserFactory(), role="boss", actor=TESTS)
    assert not AuditEvent.objects.filter(action="role.granted").exists()


def test_the_access_command_grants_revokes_and_shows_audited(capability):
    UserFactory(username="rita")
    out = StringIO()
    call_command("access", "grant", "rita", "reviewer", "--capability", capability.key, stdout=out)
    assert "rita: reviewer" in out.getvalue()
    assert "review_capability: refunds.issue" in out.getvalue()
    (granted,) = events("role.granted")
    assert granted.actor_label.startswith("manage.py access (")
    call_command("access", "revoke", "rita", "reviewer", stdout=StringIO())
    assert events("role.revoked")
    shown = StringIO()
    call_command("access", "show", "rita", stdout=shown)
    assert shown.getvalue().strip() == "rita: no role"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["grant", "nobody", "reviewer"], "There is no user 'nobody'"),
        (["grant", "rita", "boss"], "Unknown role 'boss'"),
        (["grant", "rita", "reviewer", "--capability", "no.such"], "Unknown capability"),
    ],
)
def test_the_access_command_refuses_clearly_and_changes_nothing(args, message):
    UserFactory(username="rita")
    with pytest.raises(CommandError, match=message):
        call_command("access", *args, stdout=StringIO())
    assert not AuditEvent.objects.filter(action__in=["role.granted", "permission.granted"]).exists()


def test_roles_changed_in_the_user_admin_are_audited_as_the_administrator(
    client, capability, other_capability
):
    admin_user = UserFactory(username="ada")
    role_grant(user=admin_user, role="administrator", actor=TESTS)
    rita = UserFactory(username="rita")
    client.force_login(admin_user)
    url = f"/admin/auth/user/{rita.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200
    form = {
        "username": "rita",
        "first_name": "",
        "last_name": "",
        "email": "rita@example.com",
        "is_active": "on",
        "roles": ["reviewer"],
        "capabilities": [capability.pk],
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "_save": "Save",
    }
    response = client.post(url, form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert can_review_capability(rita, capability)
    assert not can_review_capability(rita, other_capability)
    granted = events("role.granted")[-1]
    assert (granted.actor_label, granted.data["user"]) == ("ada", "rita")

    form.update(roles=[], capabilities=[])
    client.post(url, form)
    assert not can_review_capability(rita, capability)
    assert events("role.revoked")[-1].actor_label == "ada"
    assert events("permission.revoked")[-1].capability == "refunds.issue"


def test_saving_a_user_without_touching_access_grants_nothing(client, capability, other_capability):
    admin_user = UserFactory(username="ada")
    role_grant(user=admin_user, role="administrator", actor=TESTS)
    rita = UserFactory(username="rita")
    role_grant(user=rita, role="reviewer", capabilities=[capability], actor=TESTS)
    role_grant(user=rita, role="manager", capabilities=[other_capability], actor=TESTS)
    client.force_login(admin_user)
    url = f"/admin/auth/user/{rita.pk}/change/"
    form = client.get(url).context["adminform"].form
    posted = {
        "username": "rita",
        "first_name": "",
        "last_name": "",
        "email": "rita@example.com",  # the only change
        "is_active": "on",
        "roles": form["roles"].initial,
        "capabilities": [c.pk for c in form["capabilities"].initial],
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "_save": "Save",
    }
    grants_before = AuditEvent.objects.filter(action__in=["role.granted", "permission.granted"])
    count = grants_before.count()

    response = client.post(url, posted)

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert not can_review_capability(rita, other_capability)
    assert not can_manage_capability(rita, capability)
    assert grants_before.count() == count


def test_the_user_admin_cannot_edit_groups_or_permissions_directly(client):
    admin_user = UserFactory(username="ada")
    role_grant(user=admin_user, role="administrator", actor=TESTS)
    rita = UserFactory(username="rita")
    client.force_login(admin_user)
    fields = client.get(f"/admin/auth/user/{rita.pk}/change/").context["adminform"].form.fields
    assert "groups" not in fields and "user_permissions" not in fields
    assert "is_superuser" not in fields and "is_staff" not in fields


def test_creating_and_deactivating_a_user_in_the_admin_are_audited(client):
    admin_user = UserFactory(username="ada")
    role_grant(user=admin_user, role="administrator", actor=TESTS)
    client.force_login(admin_user)
    response = client.post(
        "/admin/auth/user/add/",
        {
            "username": "newton",
            "password1": "a-long-enough-pass-7",
            "password2": "a-long-enough-pass-7",
            "usable_password": "true",
            "_save": "Save",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    created = events("user.created")[-1]
    assert (created.actor_label, created.data) == ("ada", {"user": "newton", "via": "admin"})

    newton = User.objects.get(username="newton")
    url = f"/admin/auth/user/{newton.pk}/change/"
    posted = {
        "username": "newton",
        "first_name": "",
        "last_name": "",
        "email": "",
        "roles": [],
        "capabilities": [],
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "_save": "Save",
    }  # is_active left out: unticked
    response = client.post(url, posted)
    assert response.status_code == 302, response.context["adminform"].form.errors
    newton.refresh_from_db()
    assert not newton.is_active
    updated = events("user.updated")[-1]
    assert (updated.actor_label, updated.data) == ("ada", {"user": "newton", "is_active": False})
    client.post(url, posted)  # saved again, unchanged: nothing more to record
    assert len(events("user.updated")) == 1
