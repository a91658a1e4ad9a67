"""The queue's live marks: which shown rows someone else decided or claimed meanwhile."""

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from capabilities.models import ApiClient, Capability
from reviews.models import Suggestion, SuggestionStatus
from reviews.permissions import OWNER_LEVEL
from reviews.services import suggestion_claim
from tests.factories import ApiClientFactory, UserFactory, submit

pytestmark = pytest.mark.django_db

TAKEN = reverse("reviews:queue_taken")
QUEUE = reverse("reviews:queue")


def taken(client: Client, *suggestions: Any) -> dict[str, str]:
    ids = ",".join(str(getattr(s, "pk", s)) for s in suggestions)
    response = client.get(TAKEN, {"ids": ids})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    return response.json()["taken"]


def test_anonymous_is_sent_to_log_in(client: Client):
    response = client.get(TAKEN, {"ids": str(uuid.uuid4())})
    assert response.status_code == 302
    assert "login" in response["Location"]


def test_decided_and_claimed_by_other_are_reported_open_and_own_claims_are_not(
    client: Client, reviewer: Any, senior: Any, api_client_row: ApiClient, capability: Capability
):
    decided = submit(api_client_row, capability, external_id="decided")
    Suggestion.objects.filter(pk=decided.pk).update(status=SuggestionStatus.APPROVED)
    theirs = submit(api_client_row, capability, external_id="theirs")
    suggestion_claim(user=senior, suggestion_id=theirs.pk)
    mine = submit(api_client_row, capability, external_id="mine")
    suggestion_claim(user=reviewer, suggestion_id=mine.pk)
    lapsed = submit(api_client_row, capability, external_id="lapsed")
    suggestion_claim(user=senior, suggestion_id=lapsed.pk)
    Suggestion.objects.filter(pk=lapsed.pk).update(
        claim_expires_at=timezone.now() - dt.timedelta(minutes=1)
    )
    free = submit(api_client_row, capability, external_id="free")
    client.force_login(reviewer)

    assert taken(client, decided, theirs, mine, lapsed, free) == {
        str(decided.pk): "decided",
        str(theirs.pk): "claimed by sam",
    }


def test_only_suggestions_the_user_may_read_are_reported(
    client: Client,
    reviewer: Any,
    api_client_row: ApiClient,
    capability: Capability,
    other_capability: Capability,
):
    other_client = ApiClientFactory.create(capabilities=[other_capability])
    hidden = submit(other_client, other_capability, external_id="hidden")
    Suggestion.objects.filter(pk=hidden.pk).update(status=SuggestionStatus.REJECTED)
    seen = submit(api_client_row, capability, external_id="seen")
    Suggestion.objects.filter(pk=seen.pk).update(status=SuggestionStatus.REJECTED)
    client.force_login(reviewer)

    assert taken(client, hidden, seen, uuid.uuid4()) == {str(seen.pk): "decided"}


def test_no_ids_reports_nothing(client: Client, reviewer: Any):
    client.force_login(reviewer)
    assert client.get(TAKEN).json() == {"taken": {}}


@pytest.mark.parametrize(
    "ids",
    ["not-a-uuid", f"{uuid.uuid4()},42", ",".join(str(uuid.uuid4()) for _ in range(101))],
)
def test_bad_ids_are_refused(client: Client, reviewer: Any, ids: str):
    client.force_login(reviewer)
    assert client.get(TAKEN, {"ids": ids}).status_code == 400


def test_queue_rows_carry_their_id_and_the_page_where_to_ask(
    client: Client, make_reviewer: Callable[..., Any], capability: Capability, api_client_row: Any
):
    suggestion = submit(api_client_row, capability, external_id="row")
    client.force_login(make_reviewer(capability))
    content = client.get(QUEUE).content.decode()
    assert f'data-suggestion-id="{suggestion.pk}"' in content
    assert f'data-queue-taken-url="{TAKEN}"' in content


def test_an_owners_escalations_are_reported_too(
    client: Client, senior: Any, api_client_row: ApiClient, capability: Capability
):
    """An owner without any review right sees the escalations that reach the owner's rung in
    their queue: those rows are checked like any other."""
    owner = UserFactory(username="olivia")
    Capability.objects.filter(pk=capability.pk).update(owner=owner)
    escalated = submit(api_client_row, capability, external_id="escalated")
    Suggestion.objects.filter(pk=escalated.pk).update(
        status=SuggestionStatus.ESCALATED, escalation_level=OWNER_LEVEL
    )
    suggestion_claim(user=senior, suggestion_id=escalated.pk)
    below = submit(api_client_row, capability, external_id="below")
    Suggestion.objects.filter(pk=below.pk).update(status=SuggestionStatus.REJECTED)
    client.force_login(owner)

    assert taken(client, escalated, below) == {str(escalated.pk): "claimed by sam"}
