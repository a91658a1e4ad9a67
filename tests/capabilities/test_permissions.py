"""The capability predicates give exactly django-guardian's answers, and a token reaches
what its scope and its client's both hold."""

import itertools

import pytest
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from guardian.shortcuts import assign_perm, get_objects_for_user

from capabilities.models import Capability
from capabilities.permissions import (
    MANAGE,
    RESOLVE_ESCALATIONS,
    REVIEW,
    can_manage_capability,
    can_resolve_escalations,
    can_review_capability,
    can_submit_to_capability,
    capability_ids_with,
    managed_capabilities,
)
from reviews.templatetags.signoff_roles import manages_capabilities
from tests.factories import ApiClientFactory, UserFactory

pytestmark = pytest.mark.django_db

PREDICATES = {
    REVIEW: can_review_capability,
    RESOLVE_ESCALATIONS: can_resolve_escalations,
    MANAGE: can_manage_capability,
}


def users_of_every_kind(capability):
    """A user for each kind of grant: direct, through a group, model-wide only, inactive,
    superuser, none."""
    direct = UserFactory(username="direct")
    assign_perm(REVIEW, direct, capability)
    through_group = UserFactory(username="grouped")
    seniors = Group.objects.create(name="seniors")
    assign_perm(RESOLVE_ESCALATIONS, seniors, capability)
    through_group.groups.add(seniors)
    global_only = UserFactory(username="global")
    assign_perm(REVIEW, global_only)  # a model-wide grant is not an object grant
    inactive = UserFactory(username="inactive", is_active=False)
    assign_perm(REVIEW, inactive, capability)
    superuser = UserFactory(username="root", is_superuser=True)
    nobody = UserFactory(username="nobody")
    return [direct, through_group, global_only, inactive, superuser, nobody]


def test_predicates_agree_with_guardian_for_every_kind_of_grant(capability, other_capability):
    users = users_of_every_kind(capability)
    answers = {}
    for user, (perm, predicate), cap in itertools.product(
        users, PREDICATES.items(), [capability, other_capability]
    ):
        expected = user.has_perm(perm, cap)
        assert predicate(user, cap) is expected, (user.username, perm, cap.key)
        answers[user.username, perm, cap.key] = expected

    assert answers["direct", REVIEW, "refunds.issue"] is True
    assert answers["direct", REVIEW, "content.moderate"] is False
    assert answers["grouped", RESOLVE_ESCALATIONS, "refunds.issue"] is True
    assert answers["grouped", REVIEW, "refunds.issue"] is False
    assert answers["global", REVIEW, "refunds.issue"] is False
    assert answers["inactive", REVIEW, "refunds.issue"] is False
    assert answers["root", MANAGE, "content.moderate"] is True


def test_capability_ids_with_agrees_with_guardian_in_one_query(
    capability, other_capability, django_assert_max_num_queries
):
    perms = [REVIEW, RESOLVE_ESCALATIONS, MANAGE]
    ContentType.objects.get_for_model(Capability)  # cached per process, as in production
    for user in users_of_every_kind(capability):
        with django_assert_max_num_queries(1):
            granted = capability_ids_with(user, perms)
        for perm in perms:
            expected = get_objects_for_user(user, perm, klass=Capability, accept_global_perms=False)
            if not user.is_active:
                expected = Capability.objects.none()
            assert granted[perm] == {c.pk for c in expected}, (user.username, perm)


def test_the_navigation_asks_whether_a_user_manages_any_capability_as_guardian_answers(
    capability, other_capability, django_assert_max_num_queries
):
    manager = UserFactory(username="maya")
    assign_perm(MANAGE, manager, other_capability)
    ContentType.objects.get_for_model(Capability)  # cached per process, as in production
    for user in [*users_of_every_kind(capability), manager]:
        with django_assert_max_num_queries(1):
            answer = manages_capabilities(user)
        assert answer is managed_capabilities(user).exists(), user.username


def test_a_token_reaches_a_capability_only_within_its_scope_and_its_clients(
    capability, other_capability
):
    token = ApiClientFactory.issue(capabilities=[capability, other_capability]).token
    token.capabilities.set([capability])

    assert can_submit_to_capability(token, capability)
    assert not can_submit_to_capability(token, other_capability)  # outside the token's scope
    # Past the services, which narrow a token with its client: both scopes are asked.
    token.client.capabilities.remove(capability)
    assert not can_submit_to_capability(token, capability)


def test_a_token_that_is_not_live_reaches_nothing(capability):
    token = ApiClientFactory.issue(capabilities=[capability]).token
    token.client.is_active = False

    assert not can_submit_to_capability(token, capability)
