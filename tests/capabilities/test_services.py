from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import Actor
from capabilities.models import ApiToken, Policy
from capabilities.services import (
    api_token_authenticate,
    api_token_issue,
    api_token_revoke,
    permission_grant,
    policy_active,
    policy_publish,
    token_hash,
)
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_publishing_adds_a_version_and_keeps_the_old_one(capability, manager):
    first = policy_active(capability)
    second = policy_publish(
        capability=capability,
        auto_approve_at=Decimal("0.95"),
        auto_reject_below=Decimal("0.40"),
        note="Fewer auto-approvals after the March incident",
        user=manager,
    )
    assert (first.version, second.version) == (1, 2)
    assert policy_active(capability) == second
    first.refresh_from_db()
    assert (first.auto_approve_at, first.auto_reject_below) == (Decimal("0.9"), Decimal("0.3"))
    event = AuditEvent.objects.filter(action="policy.published").last()
    assert event.actor_label == manager.username
    assert event.data == {
        "version": 2,
        "previous_version": 1,
        "auto_approve_at": "0.95",
        "auto_reject_below": "0.40",
        "required_approvals": 1,
        "sla_minutes": None,
        "sla_default": "reject",
        "note": "Fewer auto-approvals after the March incident",
    }


def test_a_policy_version_cannot_be_edited_in_place(capability):
    policy = policy_active(capability)
    policy.auto_approve_at = Decimal("0.1")
    with pytest.raises(TypeError):
        policy.save()


def test_only_a_manager_of_the_capability_may_publish(capability):
    with pytest.raises(PermissionDenied):
        policy_publish(
            capability=capability,
            auto_approve_at=Decimal("0.5"),
            auto_reject_below=Decimal("0.1"),
            user=UserFactory(is_staff=True),
        )
    assert Policy.objects.filter(capability=capability).count() == 1


@pytest.mark.parametrize(
    ("approve", "reject", "field"),
    [
        ("0.40", "0.50", "auto_reject_below"),
        ("1.5", "0.1", "auto_approve_at"),
        ("0.5", "-0.1", "auto_reject_below"),
    ],
)
def test_invalid_thresholds_are_refused_naming_the_field(
    capability, manager, approve, reject, field
):
    events = AuditEvent.objects.count()
    with pytest.raises(ValidationError) as error:
        policy_publish(
            capability=capability,
            auto_approve_at=Decimal(approve),
            auto_reject_below=Decimal(reject),
            user=manager,
        )
    assert field in error.value.message_dict
    assert Policy.objects.filter(capability=capability).count() == 1
    assert AuditEvent.objects.count() == events


def test_the_database_refuses_thresholds_out_of_order(capability):
    with pytest.raises(IntegrityError), transaction.atomic():
        Policy.objects.create(
            capability=capability,
            version=9,
            auto_approve_at=Decimal("0.2"),
            auto_reject_below=Decimal("0.8"),
        )


def test_tokens_are_stored_hashed_and_authenticate(api_client_row, issued):
    stored = ApiToken.objects.get(client=api_client_row)
    assert issued.secret.startswith("sgf_")
    assert stored.token_hash == token_hash(issued.secret) != issued.secret
    assert issued.secret not in str(list(AuditEvent.objects.values_list("data", flat=True)))
    assert api_token_authenticate(issued.secret) == stored
    stored.refresh_from_db()
    assert stored.last_used_at is not None


def test_revoked_tokens_and_inactive_clients_do_not_authenticate(api_client_row, issued):
    ApiToken.objects.filter(client=api_client_row).update(revoked_at=timezone.now())
    assert api_token_authenticate(issued.secret) is None
    fresh = api_token_issue(client=api_client_row, actor=Actor.system("tests"))
    assert api_token_authenticate(fresh.secret) is not None
    api_client_row.is_active = False
    api_client_row.save()
    assert api_token_authenticate(fresh.secret) is None
    assert api_token_authenticate("sgf_unknown") is None


def test_revoking_a_token_is_audited_once_and_stops_it_at_once(issued):
    api_token_revoke(token=issued.token, actor=Actor.system("tests"))
    api_token_revoke(token=issued.token, actor=Actor.system("tests"))
    assert api_token_authenticate(issued.secret) is None
    (event,) = AuditEvent.objects.filter(action="api_token.revoked")
    assert event.data == {"client": issued.token.client.name, "prefix": issued.token.prefix}


def test_granting_a_capability_permission_is_audited_with_who_whom_and_what(capability):
    user = UserFactory(username="rita")
    granted = permission_grant(
        user=user,
        permission="capabilities.review_capability",
        capability=capability,
        actor=Actor.system("tests"),
    )
    assert granted
    assert user.has_perm("capabilities.review_capability", capability)
    event = AuditEvent.objects.get(action="permission.granted")
    assert (event.actor_label, event.subject_id, event.capability) == (
        "tests",
        str(user.pk),
        "refunds.issue",
    )
    assert event.data == {"user": "rita", "permission": "capabilities.review_capability"}
    again = permission_grant(
        user=user,
        permission="capabilities.review_capability",
        capability=capability,
        actor=Actor.system("tests"),
    )
    assert not again
    assert AuditEvent.objects.filter(action="permission.granted").count() == 1
