"""The queue page: filters, sort, keyset pages, the counts on top and their live fragment."""

import datetime as dt
import html as html_lib
import re
from collections.abc import Callable
from typing import Any, cast

import pytest
from django.db import connection
from django.db.models import F
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from capabilities.models import ApiClient, Capability
from reviews.models import Suggestion, SuggestionStatus
from reviews.selectors import QueueCursor
from reviews.services import ModelInfo, suggestion_claim
from tests.factories import ApiClientFactory, CapabilityFactory, submit

pytestmark = pytest.mark.django_db

QUEUE = reverse("reviews:queue")
COUNTS = reverse("reviews:queue_counts")


# --- Helpers ----------------------------------------------------------------------------------


@pytest.fixture
def timed(db: Any) -> Capability:
    """A capability whose policy gives each rung of the ladder 60 minutes."""
    return cast(Capability, CapabilityFactory(key="invoices.pay", sla_minutes=60))


@pytest.fixture
def timed_client(timed: Capability) -> ApiClient:
    return ApiClientFactory.create(capabilities=[timed])


def login(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


def listed(response: Any) -> list[Suggestion]:
    assert response.status_code == 200
    page = response.context["page"]
    assert page is not None, response.context["form"].errors
    return list(page.object_list)


def ids(suggestions: list[Suggestion]) -> list[str]:
    return [s.external_id for s in suggestions]


def set_fields(suggestion: Suggestion, **fields: Any) -> Suggestion:
    Suggestion.objects.filter(pk=suggestion.pk).update(**fields)
    suggestion.refresh_from_db()
    return suggestion


def next_link(response: Any) -> str | None:
    match = re.search(r'<a href="([^"]*)" rel="next">', response.content.decode())
    return html_lib.unescape(match.group(1)) if match else None


# --- Filters ----------------------------------------------------------------------------------


def test_capability_filter_keeps_that_capability_only(
    client: Client,
    make_reviewer: Callable[..., Any],
    capability: Capability,
    other_capability: Capability,
    api_client_row: ApiClient,
):
    both = make_reviewer(capability, other_capability)
    submit(api_client_row, capability, external_id="refund")
    other_client = ApiClientFactory.create(capabilities=[other_capability])
    submit(other_client, other_capability, external_id="post")
    login(client, both)

    assert set(ids(listed(client.get(QUEUE)))) == {"refund", "post"}
    assert ids(listed(client.get(QUEUE, {"capability": "content.moderate"}))) == ["post"]
    assert ids(listed(client.get(QUEUE, {"capability": "refunds.issue"}))) == ["refund"]


def test_status_filter_separates_pending_from_escalated(
    client: Client, senior: Any, api_client_row: ApiClient, capability: Capability
):
    submit(api_client_row, capability, external_id="pending")
    escalated = submit(api_client_row, capability, external_id="escalated")
    set_fields(escalated, status=SuggestionStatus.ESCALATED, escalation_level=1)
    login(client, senior)

    assert ids(listed(client.get(QUEUE, {"status": "pending_review"}))) == ["pending"]
    assert ids(listed(client.get(QUEUE, {"status": "escalated"}))) == ["escalated"]
    assert len(listed(client.get(QUEUE, {"status": ""}))) == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gpt-4o", ["gpt"]),
        ("gpt-4o 2024-08-06", ["gpt"]),
        ("claude 3 opus", ["claude"]),
        ("claude 3", ["claude"]),
        ("gpt-4o 2024", []),
        ("gpt", []),
    ],
)
def test_model_filter_matches_a_name_or_name_and_version_exactly(
    client: Client,
    reviewer: Any,
    api_client_row: ApiClient,
    capability: Capability,
    text: str,
    expected: list[str],
):
    submit(api_client_row, capability, external_id="gpt")
    submit(
        api_client_row,
        capability,
        external_id="claude",
        model=ModelInfo("claude 3", "opus", "anthropic"),
    )

    assert ids(listed(login(client, reviewer).get(QUEUE, {"model": text}))) == expected


def test_age_filter_keeps_items_older_than_the_choice(
    client: Client, reviewer: Any, api_client_row: ApiClient, capability: Capability
):
    old = submit(api_client_row, capability, external_id="old")
    set_fields(old, created_at=timezone.now() - dt.timedelta(hours=2))
    submit(api_client_row, capability, external_id="new")
    login(client, reviewer)

    assert ids(listed(client.get(QUEUE, {"age": "1h"}))) == ["old"]
    assert ids(listed(client.get(QUEUE, {"age": "4h"}))) == []
    assert len(listed(client.get(QUEUE, {"age": ""}))) == 2


def test_confidence_range_is_inclusive(
    client: Client, reviewer: Any, api_client_row: ApiClient, capability: Capability
):
    for confidence in (0.35, 0.5, 0.6, 0.8):
        submit(api_client_row, capability, confidence=confidence, external_id=str(confidence))
    login(client, reviewer)

    assert ids(listed(client.get(QUEUE, {"confidence_min": "0.5", "confidence_max": "0.6"}))) == [
        "0.5",
        "0.6",
    ]
    assert ids(listed(client.get(QUEUE, {"confidence_min": "0.7"}))) == ["0.8"]
    assert ids(listed(client.get(QUEUE, {"confidence_max": "0.4"}))) == ["0.35"]


def test_assigned_to_me_keeps_my_live_claims_only(
    client: Client, reviewer: Any, senior: Any, api_client_row: ApiClient, capability: Capability
):
    mine = submit(api_client_row, capability, external_id="mine")
    suggestion_claim(user=reviewer, suggestion_id=mine.pk)
    lapsed = submit(api_client_row, capability, external_id="lapsed")
    suggestion_claim(user=reviewer, suggestion_id=lapsed.pk)
    set_fields(lapsed, claim_expires_at=timezone.now() - dt.timedelta(minutes=1))
    theirs = submit(api_client_row, capability, external_id="theirs")
    suggestion_claim(user=senior, suggestion_id=theirs.pk)
    submit(api_client_row, capability, external_id="nobody's")
    login(client, reviewer)

    assert ids(listed(client.get(QUEUE, {"mine": "on"}))) == ["mine"]
    assert len(listed(client.get(QUEUE))) == 4


def test_filters_combine(
    client: Client,
    make_reviewer: Callable[..., Any],
    capability: Capability,
    other_capability: Capability,
    api_client_row: ApiClient,
):
    both = make_reviewer(capability, other_capability)
    other_client = ApiClientFactory.create(capabilities=[other_capability])
    wanted = submit(api_client_row, capability, confidence=0.7, external_id="wanted")
    suggestion_claim(user=both, suggestion_id=wanted.pk)
    low = submit(api_client_row, capability, confidence=0.4, external_id="low")
    suggestion_claim(user=both, suggestion_id=low.pk)
    elsewhere = submit(other_client, other_capability, confidence=0.7, external_id="elsewhere")
    suggestion_claim(user=both, suggestion_id=elsewhere.pk)
    submit(api_client_row, capability, confidence=0.7, external_id="unclaimed")

    response = login(client, both).get(
        QUEUE,
        {
            "capability": "refunds.issue",
            "confidence_min": "0.5",
            "mine": "on",
            "model": "gpt-4o 2024-08-06",
            "status": "pending_review",
        },
    )

    assert ids(listed(response)) == ["wanted"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"capability": "content.moderate"}, "capability"),  # not one of the user's
        ({"status": "approved"}, "status"),
        ({"age": "3d"}, "age"),
        ({"confidence_min": "1.5"}, "confidence_min"),
        ({"confidence_max": "-0.1"}, "confidence_max"),
        ({"confidence_min": "abc"}, "confidence_min"),
        ({"confidence_min": "nan"}, "confidence_min"),
        ({"confidence_min": "0.8", "confidence_max": "0.2"}, "confidence_max"),
        ({"sort": "random"}, "sort"),
        ({"model": "x" * 500}, "model"),
    ],
)
def test_invalid_filters_are_shown_as_errors_with_200(
    client: Client,
    reviewer: Any,
    other_capability: Capability,
    api_client_row: ApiClient,
    capability: Capability,
    query: dict[str, str],
    field: str,
):
    submit(api_client_row, capability, external_id="ticket-1")

    response = login(client, reviewer).get(QUEUE, query)

    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert response.context["page"] is None
    html = response.content.decode()
    assert "cannot be shown with these filters" in html
    assert "ticket-1" not in html
    assert 'id="queue-counts"' in html  # the counts stay on top


# --- Sort -------------------------------------------------------------------------------------


def test_default_sort_is_by_deadline_then_age_with_no_deadline_last(
    client: Client,
    make_reviewer: Callable[..., Any],
    capability: Capability,
    timed: Capability,
    api_client_row: ApiClient,
    timed_client: ApiClient,
):
    both = make_reviewer(capability, timed)
    now = timezone.now()
    no_deadline_old = submit(api_client_row, capability, external_id="no-deadline-old")
    set_fields(no_deadline_old, created_at=now - dt.timedelta(hours=5))
    submit(api_client_row, capability, external_id="no-deadline-new")
    later = submit(timed_client, timed, external_id="due-later")
    set_fields(later, due_at=now + dt.timedelta(minutes=50))
    sooner_new = submit(timed_client, timed, external_id="due-sooner-new")
    set_fields(sooner_new, due_at=now + dt.timedelta(minutes=10))
    sooner_old = submit(timed_client, timed, external_id="due-sooner-old")
    set_fields(
        sooner_old,
        due_at=now + dt.timedelta(minutes=10),
        created_at=now - dt.timedelta(minutes=30),
    )
    login(client, both)

    assert ids(listed(client.get(QUEUE))) == [
        "due-sooner-old",
        "due-sooner-new",
        "due-later",
        "no-deadline-old",
        "no-deadline-new",
    ]
    assert ids(listed(client.get(QUEUE, {"sort": "oldest"}))) == [
        "no-deadline-old",
        "due-sooner-old",
        "no-deadline-new",
        "due-later",
        "due-sooner-new",
    ]


# --- Keyset pages -----------------------------------------------------------------------------


@pytest.mark.parametrize("sort", ["due", "oldest"])
def test_pages_walk_every_row_once_in_order(
    client: Client,
    make_reviewer: Callable[..., Any],
    capability: Capability,
    timed: Capability,
    api_client_row: ApiClient,
    timed_client: ApiClient,
    sort: str,
):
    both = make_reviewer(capability, timed)
    now = timezone.now()
    for number in range(120):
        if number % 3:
            suggestion = submit(timed_client, timed, external_id=f"item-{number}")
            # Ties on the deadline and on the age, so the id must break them.
            set_fields(
                suggestion,
                due_at=now + dt.timedelta(minutes=number % 4),
                created_at=now - dt.timedelta(minutes=number % 5),
            )
        else:
            suggestion = submit(api_client_row, capability, external_id=f"item-{number}")
            set_fields(suggestion, created_at=now - dt.timedelta(minutes=number % 2))
    login(client, both)
    expected = ids(listed(client.get(QUEUE, {"sort": sort, "model": "gpt-4o"})))[:50]

    seen: list[str] = []
    pages = 0
    link: str | None = f"{QUEUE}?sort={sort}&model=gpt-4o"
    while link is not None:
        response = client.get(link)
        rows = listed(response)
        pages += 1
        assert len(rows) == (50 if pages < 3 else 20)
        seen += ids(rows)
        link = next_link(response)
        if link is not None:
            assert "model=gpt-4o" in link and f"sort={sort}" in link

    assert pages == 3
    assert len(seen) == 120
    assert len(set(seen)) == 120
    assert seen[:50] == expected
    ordering: list[Any] = ["created_at", "id"]
    if sort == "due":
        ordering = [F("due_at").asc(nulls_last=True), *ordering]
    in_order = Suggestion.objects.order_by(*ordering)
    assert seen == [s.external_id for s in in_order]


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "",  # empty is the first page, not an error: checked below
        "WyJkdWUiLG51bGwsIjIwMjYtMDEtMDFUMDA6MDA6MDArMDA6MDAiLCJ4Il0:forged:signature",
    ],
)
def test_a_forged_cursor_is_a_form_error_not_a_500(
    client: Client, reviewer: Any, api_client_row: ApiClient, capability: Capability, cursor: str
):
    submit(api_client_row, capability, external_id="ticket-1")

    response = login(client, reviewer).get(QUEUE, {"cursor": cursor})

    assert response.status_code == 200
    if not cursor:
        assert ids(listed(response)) == ["ticket-1"]
        return
    assert "cursor" in response.context["form"].errors
    assert "page link is not valid" in response.content.decode()


def test_a_tampered_cursor_is_refused(
    client: Client, reviewer: Any, api_client_row: ApiClient, capability: Capability
):
    suggestion = submit(api_client_row, capability)
    token = QueueCursor.after(suggestion, "due").encode()
    tampered = token[:5] + ("A" if token[5] != "A" else "B") + token[6:]

    response = login(client, reviewer).get(QUEUE, {"cursor": tampered})

    assert response.status_code == 200
    assert "cursor" in response.context["form"].errors


def test_a_cursor_of_another_order_is_refused(
    client: Client, reviewer: Any, api_client_row: ApiClient, capability: Capability
):
    suggestion = submit(api_client_row, capability)
    token = QueueCursor.after(suggestion, "oldest").encode()

    response = login(client, reviewer).get(QUEUE, {"cursor": token, "sort": "due"})

    assert response.status_code == 200
    assert "cursor" in response.context["form"].errors
    # With its own order it is a valid link: to the (empty) page after the only item.
    assert listed(client.get(QUEUE, {"cursor": token, "sort": "oldest"})) == []


# --- Counts -----------------------------------------------------------------------------------


def test_counts_show_due_soon_and_overdue(
    client: Client,
    make_reviewer: Callable[..., Any],
    timed: Capability,
    timed_client: ApiClient,
):
    user = make_reviewer(timed)
    now = timezone.now()
    on_time = submit(timed_client, timed)
    set_fields(on_time, due_at=now + dt.timedelta(minutes=40))
    for minutes in (5, 14):  # under a quarter of 60 minutes left
        set_fields(submit(timed_client, timed), due_at=now + dt.timedelta(minutes=minutes))
    overdue = submit(timed_client, timed)
    set_fields(overdue, due_at=now - dt.timedelta(minutes=1))

    response = login(client, user).get(QUEUE)

    [count] = response.context["counts"]
    assert (count.capability_key, count.waiting, count.due_soon, count.overdue) == (
        "invoices.pay",
        4,
        2,
        1,
    )
    assert (response.context["due_soon"], response.context["overdue"]) == (2, 1)
    assert "2 due soon, 1 overdue" in response.content.decode()
    # The counts agree with each row's badge.
    states = sorted(s.sla_state for s in response.context["page"].object_list)
    assert states == ["due_soon", "due_soon", "on_time", "overdue"]


def test_the_page_polls_its_counts_fragment(
    client: Client, reviewer: Any, api_client_row: ApiClient, capability: Capability
):
    submit(api_client_row, capability)

    html = login(client, reviewer).get(QUEUE).content.decode()

    section = re.search(r'<section class="summary" id="queue-counts"[^>]*>', html)
    assert section is not None
    tag = section.group(0)
    assert f'hx-get="{COUNTS}?since=' in tag
    assert 'hx-trigger="every 15s"' in tag
    assert 'hx-swap="outerHTML"' in tag


def test_counts_fragment_is_only_the_counts(
    client: Client, reviewer: Any, api_client_row: ApiClient, capability: Capability
):
    submit(api_client_row, capability, external_id="ticket-1")

    response = login(client, reviewer).get(COUNTS)

    assert response.status_code == 200
    html = response.content.decode().strip()
    assert html.startswith('<section class="summary" id="queue-counts"')
    assert html.endswith("</section>")
    assert "refunds.issue" in html
    assert "ticket-1" not in html  # no rows
    assert "<html" not in html


def test_counts_fragment_sends_anonymous_users_to_log_in(client: Client):
    response = client.get(COUNTS)

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={COUNTS}"


def test_counts_fragment_lists_only_the_users_capabilities(
    client: Client,
    reviewer: Any,
    api_client_row: ApiClient,
    capability: Capability,
    other_capability: Capability,
):
    submit(api_client_row, capability)
    other_client = ApiClientFactory.create(capabilities=[other_capability])
    submit(other_client, other_capability)

    response = login(client, reviewer).get(COUNTS)

    assert [c.capability_key for c in response.context["counts"]] == ["refunds.issue"]
    assert "content.moderate" not in response.content.decode()


def test_counts_fragment_announces_items_that_arrived_since_the_page_was_opened(
    client: Client, reviewer: Any, api_client_row: ApiClient, capability: Capability
):
    submit(api_client_row, capability)
    page = login(client, reviewer).get(QUEUE)
    poll = re.search(r'hx-get="([^"]+)"', page.content.decode())
    assert poll is not None
    poll_url = html_lib.unescape(poll.group(1))

    assert "new item" not in client.get(poll_url).content.decode()

    submit(api_client_row, capability)
    submit(api_client_row, capability)
    response = client.get(poll_url)

    assert response.context["new_items"] == 2
    html = response.content.decode()
    assert "2 new items" in html
    # The refreshed fragment keeps polling from the same moment.
    assert f'hx-get="{poll.group(1)}"' in html


def test_counts_fragment_ignores_a_malformed_since(client: Client, reviewer: Any):
    response = login(client, reviewer).get(COUNTS, {"since": "yesterday"})

    assert response.status_code == 200
    assert response.context["new_items"] == 0


# --- Rows -------------------------------------------------------------------------------------


def test_rows_link_to_the_review_page_and_name_who_holds_them(
    client: Client, reviewer: Any, senior: Any, api_client_row: ApiClient, capability: Capability
):
    held = submit(api_client_row, capability)
    suggestion_claim(user=senior, suggestion_id=held.pk)

    html = login(client, reviewer).get(QUEUE).content.decode()

    row = re.search(r'<tr class="queue-row queue-row--held"[^>]*>.*?</tr>', html, re.S)
    assert row is not None
    assert reverse("reviews:review", args=[held.pk]) in row.group(0)
    assert "sam" in row.group(0)


def test_query_count_is_the_same_for_5_and_60_rows(
    client: Client,
    reviewer: Any,
    senior: Any,
    api_client_row: ApiClient,
    capability: Capability,
    django_assert_num_queries: Any,
):
    login(client, reviewer)
    few = [submit(api_client_row, capability) for _ in range(5)]
    suggestion_claim(user=senior, suggestion_id=few[0].pk)
    with CaptureQueriesContext(connection) as queries:
        assert len(listed(client.get(QUEUE))) == 5
    with_five = len(queries)

    more = [submit(api_client_row, capability) for _ in range(55)]
    suggestion_claim(user=senior, suggestion_id=more[-1].pk)

    with django_assert_num_queries(with_five):
        response = client.get(QUEUE)
    assert len(listed(response)) == 50
    with django_assert_num_queries(with_five):
        assert len(listed(client.get(next_link(response) or ""))) == 10
