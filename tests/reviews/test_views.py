"""The reviewer's pages: queue, review, claim, decide, edit-then-approve, and the login page.

Every page and POST is exercised as anonymous, as a user without permission on the capability,
as a reviewer, and against another capability's item. Decisions assert the audit events they
write; conflicts assert that nothing changed.
"""

import datetime as dt
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from capabilities.models import ApiClient, Capability
from reviews.models import Decision, DecisionOutcome, Suggestion, SuggestionStatus
from reviews.services import decision_record, suggestion_claim
from tests.factories import ApiClientFactory, submit

pytestmark = pytest.mark.django_db

XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMG = "<img src=x onerror=alert(1)>"

DECISION_POSTS = [
    ("reviews:approve", {}),
    ("reviews:reject", {"reason": "Wrong amount"}),
    ("reviews:escalate", {"reason": "Unsure"}),
    ("reviews:claim", {}),
    ("reviews:release", {}),
    ("reviews:edit", {"payload": '{"amount": "1.00"}', "action": "confirm"}),
]


# --- Helpers ----------------------------------------------------------------------------------


@pytest.fixture
def pending(api_client_row: ApiClient, capability: Capability) -> Suggestion:
    return submit(
        api_client_row,
        capability,
        payload={"amount": "120.00", "currency": "EUR", "order": "A-1"},
        external_id="ticket-8812",
        prompt="Refund the customer for the broken kettle.",
        context={"ticket": {"subject": "Broken kettle"}},
    )


@pytest.fixture
def foreign(other_capability: Capability) -> Suggestion:
    """A pending suggestion of another capability than the one ``reviewer`` reviews."""
    client = ApiClientFactory.create(capabilities=[other_capability])
    return submit(client, other_capability, payload={"post": 42}, external_id="post-42")


@pytest.fixture
def outsider(make_reviewer: Callable[..., Any], other_capability: Capability) -> Any:
    """A reviewer of another capability only."""
    return make_reviewer(other_capability, username="otto")


def login(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


def url(name: str, suggestion: Suggestion | None = None) -> str:
    return reverse(name, args=[suggestion.pk]) if suggestion is not None else reverse(name)


def events(suggestion: Suggestion, after: int = 0) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(
            subject_type="suggestion", subject_id=str(suggestion.pk), sequence__gt=after
        )
    )


def last_sequence() -> int:
    event = AuditEvent.objects.order_by("-sequence").first()
    return event.sequence if event else 0


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def snapshot(suggestion: Suggestion) -> tuple[Any, ...]:
    """What a refused request must leave exactly as it was."""
    suggestion.refresh_from_db()
    return (
        suggestion.status,
        suggestion.final_payload,
        suggestion.claimed_by_id,
        suggestion.claim_expires_at,
        suggestion.decisions.count(),
        AuditEvent.objects.count(),
    )


def assert_login_redirect(response: Any, path: str) -> None:
    assert response.status_code == 302
    assert response.url == f"{reverse('login')}?next={path}"


# --- Anonymous --------------------------------------------------------------------------------


def test_anonymous_user_is_sent_to_login_from_every_page(client: Client, pending: Suggestion):
    for name in ("reviews:review", "reviews:edit"):
        path = url(name, pending)
        assert_login_redirect(client.get(path), path)
    assert_login_redirect(client.get(url("reviews:queue")), "/")


def test_anonymous_posts_are_sent_to_login_and_change_nothing(client: Client, pending: Suggestion):
    before = snapshot(pending)
    assert_login_redirect(client.post(url("reviews:claim_next")), "/claim-next/")
    for name, data in DECISION_POSTS:
        path = url(name, pending)
        assert_login_redirect(client.post(path, data), path)
    assert snapshot(pending) == before


# --- Queue ------------------------------------------------------------------------------------


def test_queue_lists_open_suggestions_oldest_first_with_their_details(
    client: Client, reviewer: Any, api_client_row: ApiClient, capability: Capability
):
    first = submit(api_client_row, capability, confidence=0.456, external_id="first-one")
    second = submit(api_client_row, capability, external_id="second-one")
    submit(api_client_row, capability, confidence=0.95, external_id="auto-approved-one")

    response = login(client, reviewer).get(url("reviews:queue"))

    assert response.status_code == 200
    html = response.content.decode()
    assert list(response.context["page"].object_list) == [first, second]
    assert html.index("first-one") < html.index("second-one")
    assert "auto-approved-one" not in html
    assert "0.46" in html
    assert "gpt-4o" in html and "2024-08-06" in html
    assert "refunds.issue" in html
    assert "Pending review" in html
    assert reverse("reviews:review", args=[first.pk]) in html
    assert reverse("reviews:claim_next") in html


def test_queue_shows_waiting_counts_per_capability_and_age_of_oldest(
    client: Client, reviewer: Any, api_client_row: ApiClient, capability: Capability
):
    oldest = submit(api_client_row, capability)
    submit(api_client_row, capability)
    Suggestion.objects.filter(pk=oldest.pk).update(
        created_at=timezone.now() - dt.timedelta(hours=3, minutes=5)
    )

    response = login(client, reviewer).get(url("reviews:queue"))

    counts = response.context["counts"]
    assert [(c.capability_key, c.waiting) for c in counts] == [("refunds.issue", 2)]
    assert response.context["waiting"] == 2
    assert "3 h" in response.content.decode()


def test_queue_names_who_holds_a_claim(
    client: Client, reviewer: Any, senior: Any, pending: Suggestion
):
    suggestion_claim(user=senior, suggestion_id=pending.pk)

    html = login(client, reviewer).get(url("reviews:queue")).content.decode()

    assert "sam" in html


def test_queue_does_not_list_capabilities_the_user_may_not_review(
    client: Client, outsider: Any, reviewer: Any, pending: Suggestion, foreign: Suggestion
):
    html = login(client, reviewer).get(url("reviews:queue")).content.decode()
    assert "ticket-8812" in html
    assert "post-42" not in html

    html = login(client, outsider).get(url("reviews:queue")).content.decode()
    assert "post-42" in html
    assert "ticket-8812" not in html


def test_empty_queue_says_what_to_do(client: Client, make_reviewer: Callable[..., Any]):
    nobody = make_reviewer()

    response = login(client, nobody).get(url("reviews:queue"))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Nothing is waiting for you" in html
    assert "ask a capability" in html


def test_queue_is_paginated_by_fifty(
    client: Client, reviewer: Any, api_client_row: ApiClient, capability: Capability
):
    for number in range(51):
        submit(api_client_row, capability, external_id=f"item-{number}")

    first = login(client, reviewer).get(url("reviews:queue"))
    cursor = first.context["page"].next_cursor.encode()
    second = client.get(url("reviews:queue"), {"cursor": cursor})

    assert len(first.context["page"].object_list) == 50
    assert [s.external_id for s in second.context["page"].object_list] == ["item-50"]
    assert "Next page" in first.content.decode()
    assert second.context["page"].next_cursor is None


def test_queue_query_count_does_not_grow_with_rows(
    client: Client,
    reviewer: Any,
    senior: Any,
    api_client_row: ApiClient,
    capability: Capability,
):
    def queries_for_queue() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url("reviews:queue"))
        assert response.status_code == 200
        return len(queries)

    login(client, reviewer)
    few = [submit(api_client_row, capability) for _ in range(5)]
    suggestion_claim(user=senior, suggestion_id=few[0].pk)
    with_five = queries_for_queue()

    more = [submit(api_client_row, capability) for _ in range(25)]
    suggestion_claim(user=senior, suggestion_id=more[0].pk)
    with_thirty = queries_for_queue()

    assert len(client.get(url("reviews:queue")).context["page"].object_list) == 30
    assert with_thirty == with_five


# --- Claim next -------------------------------------------------------------------------------


def test_claim_next_claims_the_oldest_item_and_opens_it(
    client: Client, reviewer: Any, api_client_row: ApiClient, capability: Capability
):
    oldest = submit(api_client_row, capability)
    newer = submit(api_client_row, capability)
    mark = last_sequence()

    response = login(client, reviewer).post(url("reviews:claim_next"))

    assert response.status_code == 302
    assert response.url == url("reviews:review", oldest)
    oldest.refresh_from_db()
    newer.refresh_from_db()
    assert oldest.claimed_by == reviewer
    assert newer.claimed_by is None
    assert [e.action for e in events(oldest, mark)] == ["suggestion.claimed"]
    assert events(newer, mark) == []


def test_claim_next_with_nothing_waiting_says_so(client: Client, reviewer: Any):
    response = login(client, reviewer).post(url("reviews:claim_next"), follow=True)

    assert response.redirect_chain == [(url("reviews:queue"), 302)]
    assert "Nothing is waiting for you." in messages_of(response)


def test_claim_next_skips_capabilities_the_user_may_not_review(
    client: Client, outsider: Any, pending: Suggestion, foreign: Suggestion
):
    response = login(client, outsider).post(url("reviews:claim_next"))

    assert response.url == url("reviews:review", foreign)
    pending.refresh_from_db()
    assert pending.claimed_by is None


def test_claim_next_refuses_get(client: Client, reviewer: Any, pending: Suggestion):
    response = login(client, reviewer).get(url("reviews:claim_next"))

    assert response.status_code == 405
    pending.refresh_from_db()
    assert pending.claimed_by is None


# --- Review page ------------------------------------------------------------------------------


def test_review_page_shows_everything_needed_to_decide(
    client: Client, reviewer: Any, pending: Suggestion, capability: Capability
):
    response = login(client, reviewer).get(url("reviews:review", pending))

    assert response.status_code == 200
    html = response.content.decode()
    for expected in (
        "refunds.issue",
        capability.name,
        capability.owner.get_username(),
        "Pending review",
        pending.route_reason,
        "version 1",
        "0.90",
        "0.30",
        "0.50",
        "gpt-4o",
        "2024-08-06",
        "openai",
        "ticket-8812",
        pending.api_client.name,
        "Refund the customer for the broken kettle.",
        "Broken kettle",
        "Suggestion received",
        "Suggestion routed",
    ):
        assert expected in html, expected
    # Payload as key/value rows and as pretty JSON.
    assert '<th scope="row" class="wrap">amount</th>' in html
    assert "&quot;currency&quot;: &quot;EUR&quot;" in html
    for action in ("approve", "reject", "escalate", "claim"):
        assert url(f"reviews:{action}", pending) in html
    assert url("reviews:edit", pending) in html
    assert url("reviews:release", pending) not in html


def test_review_page_offers_release_to_the_claim_holder(
    client: Client, reviewer: Any, pending: Suggestion
):
    suggestion_claim(user=reviewer, suggestion_id=pending.pk)

    html = login(client, reviewer).get(url("reviews:review", pending)).content.decode()

    assert "You hold this suggestion" in html
    assert url("reviews:release", pending) in html
    assert url("reviews:claim", pending) not in html


def test_review_page_names_another_claim_holder_and_disables_decisions(
    client: Client, reviewer: Any, senior: Any, pending: Suggestion
):
    suggestion_claim(user=senior, suggestion_id=pending.pk)

    response = login(client, reviewer).get(url("reviews:review", pending))

    html = response.content.decode()
    assert response.context["state"].held_by_other
    assert "sam is reviewing this suggestion" in html
    assert '<fieldset class="decide" disabled' in html


def test_review_page_is_404_for_a_user_without_permission(
    client: Client, outsider: Any, pending: Suggestion
):
    assert login(client, outsider).get(url("reviews:review", pending)).status_code == 404


def test_review_page_is_404_for_another_capabilitys_item(
    client: Client, reviewer: Any, foreign: Suggestion
):
    assert login(client, reviewer).get(url("reviews:review", foreign)).status_code == 404


def test_review_page_is_404_for_an_unknown_id(client: Client, reviewer: Any):
    path = "/suggestions/00000000-0000-0000-0000-000000000000/"
    assert login(client, reviewer).get(path).status_code == 404


def test_review_page_of_a_decided_item_offers_no_decision(
    client: Client, reviewer: Any, pending: Suggestion
):
    decision_record(
        user=reviewer, suggestion_id=pending.pk, outcome=DecisionOutcome.REJECTED, reason="Dup"
    )

    html = login(client, reviewer).get(url("reviews:review", pending)).content.decode()

    assert "Rejected" in html
    assert "Dup" in html
    assert "it can no longer be changed" in html
    assert url("reviews:approve", pending) not in html


def test_review_page_shows_an_edited_approval_as_a_human_override_diff(
    client: Client, reviewer: Any, pending: Suggestion
):
    decision_record(
        user=reviewer,
        suggestion_id=pending.pk,
        outcome=DecisionOutcome.APPROVED,
        final_payload={"amount": "100.00", "currency": "EUR", "order": "A-1"},
    )

    response = login(client, reviewer).get(url("reviews:review", pending))

    html = response.content.decode()
    assert "human override" in html
    assert ("removed", '-  "amount": "120.00",') in response.context["override_diff"]
    assert ("added", '+  "amount": "100.00",') in response.context["override_diff"]
    assert "diff__line--added" in html


def test_escalated_item_is_not_decidable_by_the_reviewer_who_escalated_it(
    client: Client, senior: Any, pending: Suggestion
):
    decision_record(
        user=senior, suggestion_id=pending.pk, outcome=DecisionOutcome.ESCALATED, reason="Big"
    )

    html = login(client, senior).get(url("reviews:review", pending)).content.decode()

    assert "You escalated this suggestion" in html
    assert url("reviews:approve", pending) not in html


def test_untrusted_content_is_rendered_escaped(
    client: Client, reviewer: Any, api_client_row: ApiClient, capability: Capability
):
    from reviews.services import ModelInfo

    hostile = submit(
        api_client_row,
        capability,
        payload={"note": XSS_SCRIPT, XSS_IMG: XSS_IMG, "nested": {"html": XSS_SCRIPT}},
        external_id=XSS_IMG,
        prompt=XSS_SCRIPT,
        context={"html": XSS_IMG},
        model=ModelInfo(XSS_SCRIPT, XSS_IMG, XSS_IMG),
    )
    login(client, reviewer)

    for path in (
        url("reviews:queue"),
        url("reviews:review", hostile),
        url("reviews:edit", hostile),
    ):
        html = client.get(path).content.decode()
        assert XSS_SCRIPT not in html, path
        assert XSS_IMG not in html, path
        # The only scripts are the project's own files that base.html loads.
        own_scripts = f'<script src="{settings.STATIC_URL}[^"]+" defer></script>'
        assert "<script" not in re.sub(own_scripts, "", html), path
        assert "&lt;img src=x onerror=alert(1)&gt;" in html, path
        if path != url("reviews:edit", hostile):
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, path


# --- Claim and release ------------------------------------------------------------------------


def test_claim_sets_the_claim_and_records_it(client: Client, reviewer: Any, pending: Suggestion):
    mark = last_sequence()

    response = login(client, reviewer).post(url("reviews:claim", pending))

    assert response.url == url("reviews:review", pending)
    pending.refresh_from_db()
    assert pending.claimed_by == reviewer
    assert [e.action for e in events(pending, mark)] == ["suggestion.claimed"]


def test_claim_of_an_item_held_by_another_reviewer_is_refused_naming_them(
    client: Client, reviewer: Any, senior: Any, pending: Suggestion
):
    suggestion_claim(user=senior, suggestion_id=pending.pk)
    before = snapshot(pending)

    response = login(client, reviewer).post(url("reviews:claim", pending), follow=True)

    assert response.redirect_chain == [(url("reviews:review", pending), 302)]
    assert any("sam is reviewing this suggestion" in m for m in messages_of(response))
    assert snapshot(pending) == before


def test_release_puts_the_item_back_in_the_queue(
    client: Client, reviewer: Any, pending: Suggestion
):
    suggestion_claim(user=reviewer, suggestion_id=pending.pk)
    mark = last_sequence()

    response = login(client, reviewer).post(url("reviews:release", pending))

    assert response.url == url("reviews:queue")
    pending.refresh_from_db()
    assert pending.claimed_by is None
    assert [e.action for e in events(pending, mark)] == ["suggestion.released"]


def test_release_without_holding_the_claim_changes_nothing(
    client: Client, reviewer: Any, senior: Any, pending: Suggestion
):
    suggestion_claim(user=senior, suggestion_id=pending.pk)
    before = snapshot(pending)

    response = login(client, reviewer).post(url("reviews:release", pending), follow=True)

    assert response.redirect_chain == [(url("reviews:review", pending), 302)]
    assert "You do not hold this suggestion; nothing to release." in messages_of(response)
    assert snapshot(pending) == before


# --- Decisions: permissions -------------------------------------------------------------------


@pytest.mark.parametrize(("name", "data"), DECISION_POSTS)
def test_posts_are_404_for_a_user_without_permission_and_change_nothing(
    client: Client, outsider: Any, pending: Suggestion, name: str, data: dict[str, str]
):
    before = snapshot(pending)

    response = login(client, outsider).post(url(name, pending), data)

    assert response.status_code == 404
    assert snapshot(pending) == before


@pytest.mark.parametrize(("name", "data"), DECISION_POSTS)
def test_posts_on_another_capabilitys_item_are_404_and_change_nothing(
    client: Client, reviewer: Any, foreign: Suggestion, name: str, data: dict[str, str]
):
    before = snapshot(foreign)

    response = login(client, reviewer).post(url(name, foreign), data)

    assert response.status_code == 404
    assert snapshot(foreign) == before


def test_decision_pages_refuse_get(client: Client, reviewer: Any, pending: Suggestion):
    login(client, reviewer)
    for name in ("reviews:approve", "reviews:reject", "reviews:escalate", "reviews:claim"):
        assert client.get(url(name, pending)).status_code == 405


# --- Decisions: outcomes ----------------------------------------------------------------------


def test_approve_approves_and_records_one_decision_event(
    client: Client, reviewer: Any, pending: Suggestion
):
    mark = last_sequence()

    response = login(client, reviewer).post(url("reviews:approve", pending), follow=True)

    assert response.redirect_chain == [(url("reviews:queue"), 302)]
    assert "Approved: refunds.issue ticket-8812." in messages_of(response)
    pending.refresh_from_db()
    assert pending.status == SuggestionStatus.APPROVED
    assert pending.final_payload == pending.payload
    decision = pending.decisions.get()
    assert (decision.reviewer, decision.is_override) == (reviewer, False)
    recorded = events(pending, mark)
    assert [e.action for e in recorded] == ["decision.recorded"]
    assert recorded[0].data["outcome"] == "approved"
    assert recorded[0].data["is_override"] is False


def test_approve_keeps_the_optional_note(client: Client, reviewer: Any, pending: Suggestion):
    login(client, reviewer).post(url("reviews:approve", pending), {"reason": "Matches policy"})

    assert pending.decisions.get().reason == "Matches policy"


def test_reject_with_a_reason_rejects(client: Client, reviewer: Any, pending: Suggestion):
    mark = last_sequence()

    response = login(client, reviewer).post(
        url("reviews:reject", pending), {"reason": "Order was never paid"}
    )

    assert response.status_code == 302
    pending.refresh_from_db()
    assert pending.status == SuggestionStatus.REJECTED
    assert pending.decisions.get().reason == "Order was never paid"
    recorded = events(pending, mark)
    assert [e.action for e in recorded] == ["decision.recorded"]
    assert recorded[0].data["outcome"] == "rejected"
    assert recorded[0].data["reason"] == "Order was never paid"


@pytest.mark.parametrize(
    ("name", "label"),
    [("reviews:reject", "Reason for rejecting"), ("reviews:escalate", "Reason for escalating")],
)
@pytest.mark.parametrize("reason", ["", "   "])
def test_reject_or_escalate_without_a_reason_shows_the_error_and_changes_nothing(
    client: Client, reviewer: Any, pending: Suggestion, name: str, label: str, reason: str
):
    before = snapshot(pending)

    response = login(client, reviewer).post(url(name, pending), {"reason": reason})

    assert response.status_code == 200
    html = response.content.decode()
    assert f"{label} is required" in html
    assert 'aria-invalid="true"' in html
    assert snapshot(pending) == before


def test_escalate_with_a_reason_hands_the_item_to_senior_reviewers(
    client: Client, reviewer: Any, senior: Any, pending: Suggestion
):
    mark = last_sequence()

    login(client, reviewer).post(url("reviews:escalate", pending), {"reason": "Over my limit"})

    pending.refresh_from_db()
    assert pending.status == SuggestionStatus.ESCALATED
    assert pending.decided_at is None
    recorded = events(pending, mark)
    assert [e.action for e in recorded] == ["decision.recorded"]
    assert recorded[0].data["outcome"] == "escalated"

    html = login(client, senior).get(url("reviews:queue")).content.decode()
    assert "Escalated" in html and "ticket-8812" in html


def test_senior_decides_an_escalated_item(
    client: Client, reviewer: Any, senior: Any, pending: Suggestion
):
    decision_record(
        user=reviewer, suggestion_id=pending.pk, outcome=DecisionOutcome.ESCALATED, reason="?"
    )

    response = login(client, senior).post(url("reviews:approve", pending))

    assert response.status_code == 302
    pending.refresh_from_db()
    assert pending.status == SuggestionStatus.APPROVED


def test_reviewer_without_escalation_rights_cannot_decide_an_escalated_item(
    client: Client, reviewer: Any, senior: Any, pending: Suggestion
):
    decision_record(
        user=senior, suggestion_id=pending.pk, outcome=DecisionOutcome.ESCALATED, reason="?"
    )
    before = snapshot(pending)
    login(client, reviewer)

    html = client.get(url("reviews:review", pending)).content.decode()
    assert "only reviewers who resolve escalations" in html
    assert client.post(url("reviews:approve", pending)).status_code == 404
    assert snapshot(pending) == before


def test_after_a_decision_the_next_item_is_claimed_and_opened(
    client: Client, reviewer: Any, api_client_row: ApiClient, capability: Capability
):
    first = submit(api_client_row, capability)
    following = submit(api_client_row, capability)
    mark = last_sequence()

    response = login(client, reviewer).post(url("reviews:approve", first))

    assert response.url == url("reviews:review", following)
    following.refresh_from_db()
    assert following.claimed_by == reviewer
    assert [e.action for e in events(first, mark)] == ["decision.recorded"]
    assert [e.action for e in events(following, mark)] == ["suggestion.claimed"]


def test_deciding_an_already_decided_item_says_so_and_changes_nothing(
    client: Client, reviewer: Any, senior: Any, pending: Suggestion
):
    decision_record(user=senior, suggestion_id=pending.pk, outcome=DecisionOutcome.APPROVED)
    before = snapshot(pending)
    login(client, reviewer)

    for name, data in DECISION_POSTS:
        if name == "reviews:release":
            continue
        response = client.post(url(name, pending), data, follow=True)
        assert response.status_code == 200, name
        assert response.redirect_chain == [(url("reviews:review", pending), 302)], name
        assert any("already approved" in m for m in messages_of(response)), name
    assert snapshot(pending) == before
    assert pending.decisions.get().reviewer == senior


def test_deciding_an_item_claimed_by_another_reviewer_is_refused_naming_them(
    client: Client, reviewer: Any, senior: Any, pending: Suggestion
):
    suggestion_claim(user=senior, suggestion_id=pending.pk)
    before = snapshot(pending)
    login(client, reviewer)

    for name, data in DECISION_POSTS:
        if name in ("reviews:claim", "reviews:release"):
            continue
        response = client.post(url(name, pending), data, follow=True)
        assert response.redirect_chain == [(url("reviews:review", pending), 302)], name
        assert any("sam is reviewing this suggestion" in m for m in messages_of(response)), name
    assert snapshot(pending) == before


def test_an_expired_claim_of_another_reviewer_does_not_block(
    client: Client, reviewer: Any, senior: Any, pending: Suggestion
):
    suggestion_claim(user=senior, suggestion_id=pending.pk)
    Suggestion.objects.filter(pk=pending.pk).update(
        claim_expires_at=timezone.now() - dt.timedelta(minutes=1)
    )

    login(client, reviewer).post(url("reviews:reject", pending), {"reason": "Duplicate"})

    pending.refresh_from_db()
    assert pending.status == SuggestionStatus.REJECTED


# --- Edit then approve ------------------------------------------------------------------------


def test_edit_page_prefills_the_pretty_payload(client: Client, reviewer: Any, pending: Suggestion):
    response = login(client, reviewer).get(url("reviews:edit", pending))

    assert response.status_code == 200
    assert response.context["form"].initial["payload"] == json.dumps(
        pending.payload, indent=2, sort_keys=True
    )
    assert "&quot;amount&quot;: &quot;120.00&quot;" in response.content.decode()


def test_edit_page_is_404_for_a_user_without_permission(
    client: Client, outsider: Any, pending: Suggestion
):
    assert login(client, outsider).get(url("reviews:edit", pending)).status_code == 404


def test_edit_page_is_404_for_another_capabilitys_item(
    client: Client, reviewer: Any, foreign: Suggestion
):
    assert login(client, reviewer).get(url("reviews:edit", foreign)).status_code == 404


def test_edit_page_of_a_decided_item_sends_back_with_a_message(
    client: Client, reviewer: Any, pending: Suggestion
):
    decision_record(user=reviewer, suggestion_id=pending.pk, outcome=DecisionOutcome.APPROVED)

    response = login(client, reviewer).get(url("reviews:edit", pending), follow=True)

    assert response.redirect_chain == [(url("reviews:review", pending), 302)]
    assert any("already approved" in m for m in messages_of(response))


def test_edit_preview_shows_the_diff_and_changes_nothing(
    client: Client, reviewer: Any, pending: Suggestion
):
    before = snapshot(pending)
    edited = {"amount": "99.00", "currency": "EUR", "order": "A-1"}

    response = login(client, reviewer).post(
        url("reviews:edit", pending), {"payload": json.dumps(edited), "action": "preview"}
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert ("added", '+  "amount": "99.00",') in response.context["diff"]
    assert ("removed", '-  "amount": "120.00",') in response.context["diff"]
    assert "Approve with these changes" in html
    assert 'name="action" value="confirm"' in html
    assert snapshot(pending) == before


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('{"amount": ', "not valid JSON"),
        ('["a", "list"]', "must be a JSON object"),
        ('"just a string"', "must be a JSON object"),
        ('{"amount": NaN}', "NaN is not allowed"),
        ("", "This field is required"),
    ],
)
@pytest.mark.parametrize("action", ["preview", "confirm"])
def test_edit_with_a_payload_that_is_not_a_json_object_shows_a_field_error(
    client: Client, reviewer: Any, pending: Suggestion, text: str, error: str, action: str
):
    before = snapshot(pending)

    response = login(client, reviewer).post(
        url("reviews:edit", pending), {"payload": text, "action": action}
    )

    assert response.status_code == 200
    assert error in " ".join(response.context["form"].errors["payload"])
    assert error in response.content.decode()
    assert snapshot(pending) == before


def test_edit_confirm_approves_as_a_human_override(
    client: Client, reviewer: Any, pending: Suggestion
):
    edited = {"amount": "99.00", "currency": "EUR", "order": "A-1"}
    mark = last_sequence()

    response = login(client, reviewer).post(
        url("reviews:edit", pending),
        {"payload": json.dumps(edited), "reason": "Partial refund", "action": "confirm"},
        follow=True,
    )

    assert response.redirect_chain == [(url("reviews:queue"), 302)]
    assert any("Approved with your changes" in m for m in messages_of(response))
    pending.refresh_from_db()
    assert pending.status == SuggestionStatus.APPROVED
    assert pending.final_payload == edited
    assert pending.payload == {"amount": "120.00", "currency": "EUR", "order": "A-1"}
    decision = pending.decisions.get()
    assert decision.is_override is True
    assert decision.final_payload == edited
    assert decision.reason == "Partial refund"
    recorded = events(pending, mark)
    assert [e.action for e in recorded] == ["decision.recorded"]
    assert recorded[0].data["outcome"] == "approved"
    assert recorded[0].data["is_override"] is True
    assert recorded[0].data["changes"] == [
        {"path": "/amount", "before": "120.00", "after": "99.00"}
    ]


def test_edit_preview_then_confirm_approves_what_was_previewed(
    client: Client, reviewer: Any, pending: Suggestion
):
    edited = json.dumps({"amount": "99.00", "currency": "EUR", "order": "A-1"})
    login(client, reviewer)
    preview = client.post(url("reviews:edit", pending), {"payload": edited, "action": "preview"})
    previewed = preview.context["previewed"]
    assert f'name="previewed" value="{previewed}"' in preview.content.decode()

    response = client.post(
        url("reviews:edit", pending),
        {"payload": edited, "previewed": previewed, "action": "confirm"},
    )

    assert response.status_code == 302
    pending.refresh_from_db()
    assert pending.final_payload == json.loads(edited)


def test_edit_confirm_of_text_changed_after_the_preview_shows_the_new_diff_instead(
    client: Client, reviewer: Any, pending: Suggestion
):
    login(client, reviewer)
    preview = client.post(
        url("reviews:edit", pending),
        {"payload": '{"amount": "99.00", "currency": "EUR", "order": "A-1"}'},
    )
    before = snapshot(pending)

    response = client.post(
        url("reviews:edit", pending),
        {
            "payload": '{"amount": "9999.00", "currency": "EUR", "order": "A-1"}',
            "previewed": preview.context["previewed"],
            "action": "confirm",
        },
    )

    assert response.status_code == 200
    assert ("added", '+  "amount": "9999.00",') in response.context["diff"]
    assert any("changed since the preview" in m for m in messages_of(response))
    assert snapshot(pending) == before


def test_edit_confirm_of_an_unchanged_payload_is_a_plain_approval(
    client: Client, reviewer: Any, pending: Suggestion
):
    response = login(client, reviewer).post(
        url("reviews:edit", pending),
        {"payload": json.dumps(pending.payload, indent=4), "action": "confirm"},
    )

    assert response.status_code == 302
    pending.refresh_from_db()
    decision = pending.decisions.get()
    assert pending.status == SuggestionStatus.APPROVED
    assert decision.is_override is False
    assert pending.final_payload == pending.payload


def test_edit_preview_of_an_unchanged_payload_says_there_are_no_changes(
    client: Client, reviewer: Any, pending: Suggestion
):
    response = login(client, reviewer).post(
        url("reviews:edit", pending), {"payload": json.dumps(pending.payload)}
    )

    assert response.status_code == 200
    assert response.context["changed"] is False
    assert "No changes" in response.content.decode()
    assert not Decision.objects.filter(suggestion=pending).exists()


# --- Layout and login -------------------------------------------------------------------------


def test_layout_has_navigation_and_a_logout_form(
    client: Client, reviewer: Any, make_reviewer: Callable[..., Any]
):
    html = login(client, reviewer).get(url("reviews:queue")).content.decode()
    assert "Signoff" in html
    assert "rita" in html
    assert "/api/v1/docs/" in html
    assert f'<form method="post" action="{reverse("logout")}">' in html
    assert reverse("admin:index") not in html

    staff = make_reviewer(is_staff=True)
    html = login(client, staff).get(url("reviews:queue")).content.decode()
    assert reverse("admin:index") in html


def test_login_page_logs_in_and_lands_on_the_queue(client: Client, reviewer: Any):
    from tests.factories import PASSWORD

    page = client.get(reverse("login"))
    assert page.status_code == 200
    html = page.content.decode()
    assert '<label for="id_username">' in html
    assert '<label for="id_password">' in html

    response = client.post(reverse("login"), {"username": "rita", "password": PASSWORD})

    assert response.status_code == 302
    assert response.url == reverse("reviews:queue")


def test_login_with_a_wrong_password_shows_an_error(client: Client, reviewer: Any):
    response = client.post(reverse("login"), {"username": "rita", "password": "nope"})

    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()


def test_logout_is_a_post(client: Client, reviewer: Any):
    login(client, reviewer)

    response = client.post(reverse("logout"))

    assert response.status_code == 302
    assert_login_redirect(client.get(url("reviews:queue")), "/")
