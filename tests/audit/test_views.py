"""The auditor's pages: the audit log, its filters and keyset pages, and the streamed export.

Both pages are exercised as anonymous (login), as a reviewer without the audit permission
(404, as if they did not exist) and as an auditor. Exports are read back and verified the way
an outside auditor would, and a one-character change to them must be caught.
"""

import datetime as dt
import io
import re
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit import views as audit_views
from audit.export import FORMATS, ExportError, read_export
from audit.models import AuditAction, AuditEvent
from audit.permissions import can_read_audit_trail
from audit.services import Actor, Subject, audit_checkpoint_write, audit_event_record
from audit.verification import Report, verify_events
from capabilities.models import ApiClient, Capability
from reviews.models import DecisionOutcome, Suggestion
from reviews.services import decision_record
from tests.audit.factories import append_recorded_at
from tests.factories import ApiClientFactory, UserFactory, submit

pytestmark = pytest.mark.django_db

LOG = reverse("audit:log")
EXPORT = reverse("audit:export")
XSS = "<script>alert(1)</script>"


# --- Helpers ----------------------------------------------------------------------------------


def make_auditor(**fields: Any) -> Any:
    user = UserFactory(**fields)
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="audit", codename="view_auditevent")
    )
    return user


@pytest.fixture
def auditor(db: Any) -> Any:
    return make_auditor(username="audrey")


@pytest.fixture
def browser(client: Client, auditor: Any) -> Client:
    client.force_login(auditor)
    return client


@pytest.fixture
def pending(api_client_row: ApiClient, capability: Capability) -> Suggestion:
    return submit(api_client_row, capability, external_id="ticket-8812")


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC)


def record(
    *,
    when: dt.datetime | None = None,
    action: str = AuditAction.PERMISSION_GRANTED,
    actor: Actor | None = None,
    subject: Subject | None = None,
    capability: str = "",
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event; at ``when`` if given, as an event recorded back then would be."""
    actor = actor or Actor.system("tests")
    subject = subject or Subject("policy", "1")
    data = data if data is not None else {"note": "test"}
    if when is None:
        with transaction.atomic():
            return audit_event_record(
                actor=actor,
                action=action,  # type: ignore[arg-type]
                subject=subject,
                capability=capability,
                data=data,
            )
    return append_recorded_at(
        when,
        actor_type=str(actor.type),
        actor_id=actor.id,
        actor_label=actor.label,
        action=str(action),
        subject_type=subject.type,
        subject_id=subject.id,
        capability=capability,
        data=data,
    )


def shown(response: Any) -> list[int]:
    """Sequence numbers of the events on a log page, in page order."""
    return [row.event.sequence for row in response.context["page"].rows]


def body(response: Any) -> str:
    assert response.streaming, "exports must stream"
    return b"".join(response.streaming_content).decode()


def verify(text: str) -> Report:
    rows = list(read_export(io.StringIO(text)))
    return verify_events(iter(rows), from_genesis=bool(rows) and rows[0]["sequence"] == 1)


def assert_login_redirect(response: Any, path: str) -> None:
    assert response.status_code == 302
    assert response.url.startswith(f"{reverse('login')}?next=")
    assert path.split("?")[0] in response.url


# --- Who may read -----------------------------------------------------------------------------


def test_anonymous_user_is_sent_to_login_from_the_log_and_the_export(client: Client):
    assert_login_redirect(client.get(LOG), LOG)
    assert_login_redirect(client.get(EXPORT, {"format": "jsonl"}), EXPORT)


def test_reviewer_without_the_audit_permission_gets_404_on_the_log_and_the_export(
    client: Client, reviewer: Any, pending: Suggestion
):
    client.force_login(reviewer)

    assert client.get(LOG).status_code == 404
    assert client.get(EXPORT, {"format": "jsonl"}).status_code == 404
    assert client.get(EXPORT, {"format": "nonsense"}).status_code == 404


def test_staff_without_the_audit_permission_gets_404(client: Client, capability: Capability):
    client.force_login(UserFactory(is_staff=True))

    assert client.get(LOG).status_code == 404


def test_only_active_users_with_the_permission_read_the_trail(db: Any):
    auditor = make_auditor()
    retired = make_auditor(is_active=False)
    superuser = UserFactory(is_superuser=True)

    assert can_read_audit_trail(auditor)
    assert not can_read_audit_trail(retired)
    assert can_read_audit_trail(superuser)
    assert not can_read_audit_trail(UserFactory())


def test_navigation_offers_the_audit_log_only_to_auditors(
    client: Client, auditor: Any, reviewer: Any, pending: Suggestion
):
    client.force_login(reviewer)
    assert f'href="{LOG}"' not in client.get(reverse("reviews:queue")).content.decode()

    client.force_login(auditor)
    assert f'href="{LOG}"' in client.get(reverse("reviews:queue")).content.decode()


# --- The log ----------------------------------------------------------------------------------


def test_auditor_sees_events_newest_first_with_every_column(
    browser: Client, reviewer: Any, pending: Suggestion
):
    decision_record(
        user=reviewer, suggestion_id=pending.pk, outcome=DecisionOutcome.REJECTED, reason="Dup"
    )
    decided = AuditEvent.objects.get(action=AuditAction.DECISION_RECORDED)

    response = browser.get(LOG)

    assert response.status_code == 200
    sequences = shown(response)
    assert sequences == sorted(sequences, reverse=True)
    assert sequences == list(
        AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True)
    )
    html = response.content.decode()
    assert decided.occurred_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S") in html
    assert "rita" in html and "(User)" in html and "(API client)" in html
    assert "Decision recorded" in html
    assert reverse("reviews:timeline", args=[pending.pk]) in html
    assert "refunds.issue" in html
    assert decided.hash[:12] in html
    # The details of a row: the data as JSON, both hashes.
    assert "&quot;outcome&quot;: &quot;rejected&quot;" in html
    assert decided.hash in html and decided.prev_hash in html


def test_log_shows_the_chain_head_and_the_latest_checkpoint(browser: Client, pending: Suggestion):
    checkpoint = audit_checkpoint_write()
    assert checkpoint is not None
    record()
    head = AuditEvent.objects.order_by("-sequence").first()

    response = browser.get(LOG)

    html = response.content.decode()
    assert response.context["head_sequence"] == head.sequence
    assert head.hash in html
    assert f"#{checkpoint.sequence}" in html
    assert checkpoint.algorithm in html and checkpoint.key_id in html
    assert checkpoint.signed_at.strftime("%Y-%m-%d %H:%M:%S") in html
    assert "manage.py audit_verify" in html


def test_log_without_a_checkpoint_says_none_was_signed(browser: Client, capability: Capability):
    html = browser.get(LOG).content.decode()

    assert "No checkpoint signed yet." in html


def test_untrusted_event_data_is_escaped_in_the_log(browser: Client, capability: Capability):
    record(
        actor=Actor.api_client(1, XSS),
        subject=Subject("suggestion", XSS),
        capability=XSS,
        data={"reason": XSS},
    )

    response = browser.get(LOG)

    html = response.content.decode()
    assert response.status_code == 200
    assert XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_page_holds_one_hundred_events_and_links_to_older_ones(browser: Client, db: Any):
    for _ in range(105):
        record()

    response = browser.get(LOG)

    assert shown(response) == list(range(105, 5, -1))
    assert response.context["links"]["older"] == f"{LOG}?before=6"
    assert "newer" not in response.context["links"]


def test_keyset_pages_walk_every_event_once_newest_first(
    browser: Client, db: Any, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(audit_views, "PAGE_SIZE", 7)
    for number in range(30):
        record(capability="refunds.issue" if number % 3 else "content.moderate")
    wanted = list(
        AuditEvent.objects.filter(capability="refunds.issue")
        .order_by("-sequence")
        .values_list("sequence", flat=True)
    )

    seen: list[int] = []
    pages = []
    url: str | None = f"{LOG}?capability=refunds.issue"
    with CaptureQueriesContext(connection) as queries:
        while url:
            response = browser.get(url)
            assert response.status_code == 200
            pages.append(response)
            seen += shown(response)
            url = response.context["links"].get("older")

    assert seen == wanted
    assert len(pages) == -(-len(wanted) // 7)
    assert not any("OFFSET" in query["sql"].upper() for query in queries.captured_queries)
    # And back again through the "Newer" links, to the newest page.
    back: list[int] = []
    url = pages[-1].context["links"].get("newer")
    while url:
        response = browser.get(url)
        back = shown(response) + back
        url = response.context["links"].get("newer")
    assert back + shown(pages[-1]) == wanted


def test_log_filtered_by_time_keeps_since_and_excludes_until(browser: Client, db: Any):
    early = record(when=at(2020, 1, 1, 10))
    middle = record(when=at(2020, 1, 2, 10))
    late = record(when=at(2020, 1, 3, 10))

    exact = browser.get(LOG, {"since": "2020-01-02T10:00", "until": "2020-01-03T10:00"})
    by_day = browser.get(LOG, {"since": "2020-01-01", "until": "2020-01-03"})
    open_ended = browser.get(LOG, {"until": "2020-01-02"})

    assert shown(exact) == [middle.sequence]
    assert shown(by_day) == [middle.sequence, early.sequence]
    assert shown(open_ended) == [early.sequence]
    assert late.sequence not in shown(by_day)


def test_log_filtered_by_actor_matches_the_label_whatever_its_case(
    browser: Client, reviewer: Any, pending: Suggestion
):
    decision_record(user=reviewer, suggestion_id=pending.pk, outcome=DecisionOutcome.APPROVED)

    response = browser.get(LOG, {"actor": "RITA"})

    events = [row.event for row in response.context["page"].rows]
    assert [e.action for e in events] == [AuditAction.DECISION_RECORDED]
    assert {e.actor_label for e in events} == {"rita"}


def test_log_filtered_by_capability_shows_only_its_events(
    browser: Client, pending: Suggestion, other_capability: Capability
):
    client = ApiClientFactory.create(capabilities=[other_capability])
    submit(client, other_capability, payload={"post": 42})

    response = browser.get(LOG, {"capability": "content.moderate"})

    events = [row.event for row in response.context["page"].rows]
    assert events
    assert {e.capability for e in events} == {"content.moderate"}


def test_log_filtered_by_action_shows_only_that_action(browser: Client, pending: Suggestion):
    response = browser.get(LOG, {"action": AuditAction.SUGGESTION_ROUTED})

    events = [row.event for row in response.context["page"].rows]
    assert [(e.action, e.subject_id) for e in events] == [
        (AuditAction.SUGGESTION_ROUTED, str(pending.pk))
    ]


def test_log_filtered_by_suggestion_shows_its_events_only(
    browser: Client, api_client_row: ApiClient, capability: Capability, pending: Suggestion
):
    submit(api_client_row, capability, external_id="another")

    response = browser.get(LOG, {"suggestion": str(pending.pk)})

    events = [row.event for row in response.context["page"].rows]
    assert [e.action for e in events] == [
        AuditAction.SUGGESTION_ROUTED,
        AuditAction.SUGGESTION_RECEIVED,
    ]
    assert {(e.subject_type, e.subject_id) for e in events} == {("suggestion", str(pending.pk))}


def test_filters_carry_into_the_older_link_and_the_export_links(
    browser: Client, db: Any, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(audit_views, "PAGE_SIZE", 2)
    for _ in range(3):
        record(capability="refunds.issue")

    response = browser.get(LOG, {"capability": "refunds.issue", "since": "2000-01-01"})

    older = response.context["links"]["older"]
    assert "capability=refunds.issue" in older and "since=2000-01-01" in older
    hrefs = [href for _label, href in response.context["export_links"]]
    assert all("capability=refunds.issue" in href for href in hrefs)
    assert {re.search(r"format=(\w+)", href).group(1) for href in hrefs} == set(FORMATS)
    assert "Download JSON Lines" in response.content.decode()
    assert "Download CSV" in response.content.decode()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"since": "yesterday"}, "Enter a valid date/time."),
        ({"until": "2024-13-40"}, "Enter a valid date/time."),
        ({"action": "suggestion.teleported"}, "Select a valid choice."),
        ({"suggestion": "not-a-uuid"}, "Enter a valid UUID."),
        ({"since": "2024-02-01", "until": "2024-01-01"}, "Until must be after since."),
        ({"before": "abc"}, "is not an event number"),
    ],
)
def test_unreadable_filters_are_shown_as_errors_not_a_server_error(
    browser: Client, pending: Suggestion, query: dict[str, str], message: str
):
    response = browser.get(LOG, query)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert response.context["page"] is None
    assert response.context["export_links"] == []


def test_an_empty_result_says_nothing_matches(browser: Client, pending: Suggestion):
    response = browser.get(LOG, {"actor": "nobody-at-all"})

    assert response.status_code == 200
    assert "Nothing recorded matches these filters." in response.content.decode()


# --- Export -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_export_streams_the_whole_trail_and_it_verifies(
    browser: Client, reviewer: Any, pending: Suggestion, fmt: str
):
    decision_record(user=reviewer, suggestion_id=pending.pk, outcome=DecisionOutcome.APPROVED)

    response = browser.get(EXPORT, {"format": fmt})

    assert response.status_code == 200
    assert response["Content-Type"].startswith(FORMATS[fmt])
    assert re.fullmatch(
        rf'attachment; filename="signoff-audit-start-\d{{8}}T\d{{6}}Z\.{fmt}"',
        response["Content-Disposition"],
    )
    text = body(response)
    report = verify(text)
    assert report.ok, report.problem
    assert report.first_sequence == 1
    assert report.events == AuditEvent.objects.count()


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_a_one_character_change_to_an_export_fails_verification(
    browser: Client, reviewer: Any, pending: Suggestion, fmt: str
):
    decision_record(
        user=reviewer, suggestion_id=pending.pk, outcome=DecisionOutcome.REJECTED, reason="Dup"
    )
    text = body(browser.get(EXPORT, {"format": fmt}))
    assert verify(text).ok
    assert text.count("rita") == 1

    tampered = text.replace("rita", "ritb")

    try:
        report = verify(tampered)
    except ExportError:  # unreadable counts as failed too, but this change stays readable
        pytest.fail("a changed letter must leave the export readable and fail its hash")
    assert not report.ok
    assert report.problem.kind == "altered"


def test_export_of_a_time_range_holds_only_that_range_and_verifies_as_a_slice(
    browser: Client, db: Any
):
    record(when=at(2020, 1, 1, 10))
    inside = [record(when=at(2020, 1, 2, 10)), record(when=at(2020, 1, 2, 11))]
    record(when=at(2020, 1, 3, 10))

    response = browser.get(
        EXPORT, {"format": "jsonl", "since": "2020-01-02", "until": "2020-01-03"}
    )

    assert response["Content-Disposition"] == (
        'attachment; filename="signoff-audit-20200102T000000Z-20200103T000000Z.jsonl"'
    )
    text = body(response)
    rows = list(read_export(io.StringIO(text)))
    assert [row["sequence"] for row in rows] == [event.sequence for event in inside]
    report = verify_events(iter(rows), from_genesis=False)
    assert report.ok, report.problem


def test_export_with_an_unknown_or_missing_format_is_a_400_with_a_message(
    browser: Client, pending: Suggestion
):
    for query in ({"format": "xml"}, {}):
        response = browser.get(EXPORT, query)
        assert response.status_code == 400
        assert "jsonl" in response.content.decode() and "csv" in response.content.decode()


def test_export_with_unreadable_filters_is_a_400_naming_them(browser: Client, pending: Suggestion):
    response = browser.get(EXPORT, {"format": "csv", "suggestion": "nope"})

    assert response.status_code == 400
    assert "Suggestion" in response.content.decode()


def test_export_reads_the_trail_only_as_the_response_is_sent(browser: Client, pending: Suggestion):
    def reads_events(queries: CaptureQueriesContext) -> bool:
        table = AuditEvent._meta.db_table
        return any(
            f'FROM "{table}"' in query["sql"] and "hash" in query["sql"]
            for query in queries.captured_queries
        )

    with CaptureQueriesContext(connection) as before_streaming:
        response = browser.get(EXPORT, {"format": "jsonl"})
    with CaptureQueriesContext(connection) as while_streaming:
        text = body(response)

    assert not reads_events(before_streaming)
    assert reads_events(while_streaming)
    assert text.count("\n") == AuditEvent.objects.count()
