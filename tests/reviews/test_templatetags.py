"""The reviewer pages' tags: the elements they build, in the current time zone, escaped."""

import datetime as dt
import zoneinfo

import pytest
from django.template import Context, Template
from django.utils import timezone

from capabilities.models import Policy
from reviews.models import Suggestion, SuggestionStatus
from reviews.templatetags.signoff import sla_badge, status_badge, time_ago

PARIS = zoneinfo.ZoneInfo("Europe/Paris")


def test_time_ago_shows_the_age_with_the_moment_for_machines_and_in_full_as_title():
    moment = timezone.now() - dt.timedelta(hours=3, minutes=5)

    with timezone.override(PARIS):
        html = time_ago(moment, " ago")
        local = moment.astimezone(PARIS)

    assert html == (
        f'<time datetime="{local.isoformat()}" '
        f'title="{local:%Y-%m-%d %H:%M:%S} {local.tzname()}">3 h ago</time>'
    )


def test_time_ago_gives_what_the_date_filter_gives_for_machines():
    moment = dt.datetime(2026, 7, 1, 12, 30, 15, 250, tzinfo=dt.UTC)
    template = Template("{{ moment|date:'c' }}|{{ moment|date:'Y-m-d H:i:s e' }}")

    with timezone.override(PARIS):
        iso, title = template.render(Context({"moment": moment})).split("|")
        html = time_ago(moment)

    assert f'datetime="{iso}"' in html and f'title="{title}"' in html


def test_time_ago_of_nothing_is_nothing():
    assert time_ago(None) == ""


def test_time_ago_escapes_its_suffix():
    assert "&lt;b&gt;" in time_ago(timezone.now(), "<b>")


def test_the_status_badge_names_the_status():
    suggestion = Suggestion(status=SuggestionStatus.PENDING_REVIEW)

    assert (
        status_badge(suggestion)
        == '<span class="badge badge--pending_review">Pending review</span>'
    )


def test_the_sla_badge_is_a_dash_without_a_deadline():
    assert sla_badge(Suggestion(status=SuggestionStatus.PENDING_REVIEW)) == (
        '<span class="muted">\N{EM DASH}</span>'
    )


@pytest.mark.parametrize(
    ("minutes_left", "css", "label"),
    [
        (40, "badge--approved sla sla--on_time", "On time"),
        (10, "badge--escalated sla sla--due_soon", "Due soon"),
        (-1, "badge--rejected sla sla--overdue", "Overdue"),
    ],
)
def test_the_sla_badge_tells_where_an_open_item_stands_and_when_it_is_due(minutes_left, css, label):
    policy = Policy(sla_minutes=60)  # due soon: under 15 minutes left
    due = timezone.now() + dt.timedelta(minutes=minutes_left)
    suggestion = Suggestion(status=SuggestionStatus.PENDING_REVIEW, policy=policy, due_at=due)

    with timezone.override(PARIS):
        html = sla_badge(suggestion)
        local = due.astimezone(PARIS)

    assert html == (
        f'<span class="badge {css}" title="Due {local:%Y-%m-%d %H:%M} {local.tzname()}">'
        f"{label}</span>"
    )
