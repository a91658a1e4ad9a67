"""The escalation ladder: reviewers, senior reviewers, the owner, then the policy's default.

Time is whatever the test says it is: ``escalation_sweep(now=...)`` takes the clock as an
argument, and every deadline here is read back from the suggestion it belongs to.
"""

import datetime as dt
from collections import Counter
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from guardian.shortcuts import assign_perm

from audit.chain import format_timestamp
from audit.models import AuditEvent
from capabilities.models import Capability
from capabilities.services import policy_active, policy_publish
from reviews import tasks
from reviews.models import (
    Decision,
    DecisionOutcome,
    ExecutionStatus,
    OutboxItem,
    Suggestion,
    SuggestionStatus,
)
from reviews.permissions import can_decide_suggestion
from reviews.selectors import suggestions_decidable_by
from reviews.services import decision_record, escalation_sweep, suggestion_claim
from reviews.services import escalation as escalation_module
from tests.concurrency import run_together
from tests.factories import ApiClientFactory, CapabilityFactory, UserFactory, submit

pytestmark = pytest.mark.django_db

SLA = dt.timedelta(minutes=60)
SECOND = dt.timedelta(seconds=1)


@pytest.fixture
def owner(db: Any) -> Any:
    return UserFactory(username="olivia")


@pytest.fixture
def capability(owner: Any) -> Any:
    """``refunds.issue``, owned by olivia: an hour per rung, then fail closed."""
    return CapabilityFactory(
        key="refunds.issue",
        owner=owner,
        auto_approve_at=Decimal("0.90"),
        auto_reject_below=Decimal("0.30"),
        sla_minutes=60,
    )


@pytest.fixture
def fail_open(capability: Capability, manager: Any) -> Capability:
    policy_publish(
        capability=capability,
        auto_approve_at=Decimal("0.90"),
        auto_reject_below=Decimal("0.30"),
        sla_default="approve",
        note="Small refunds: better paid late than never",
        user=manager,
    )
    return capability


def trail(suggestion: Suggestion) -> list[tuple[str, str]]:
    """The suggestion's audit events, in order, as (action, actor label)."""
    events = AuditEvent.objects.filter(subject_id=str(suggestion.pk)).order_by("sequence")
    return [(event.action, event.actor_label) for event in events]


def last_event(suggestion: Suggestion) -> Any:
    return AuditEvent.objects.filter(subject_id=str(suggestion.pk)).order_by("sequence").last()


def fresh(suggestion: Suggestion) -> Suggestion:
    suggestion.refresh_from_db()
    return suggestion


# --- Deadlines --------------------------------------------------------------------------------


def test_an_item_entering_review_is_due_one_sla_later_on_the_reviewers_rung(
    capability, api_client_row
):
    before = timezone.now()
    suggestion = submit(api_client_row, capability)
    after = timezone.now()

    assert suggestion.status == SuggestionStatus.PENDING_REVIEW
    assert suggestion.escalation_level == 0
    assert before + SLA <= suggestion.due_at <= after + SLA


def test_an_item_routed_automatically_has_no_deadline(capability, api_client_row):
    approved = submit(api_client_row, capability, confidence=0.95)
    rejected = submit(api_client_row, capability, confidence=0.1)

    assert (approved.status, approved.due_at) == (SuggestionStatus.AUTO_APPROVED, None)
    assert (rejected.status, rejected.due_at) == (SuggestionStatus.AUTO_REJECTED, None)


def test_a_reviewers_escalation_starts_the_senior_rung_with_a_fresh_deadline(
    capability, api_client_row, reviewer
):
    suggestion = submit(api_client_row, capability)
    before = timezone.now()

    decision_record(
        user=reviewer, suggestion_id=suggestion.pk, outcome="escalated", reason="Large amount"
    )

    fresh(suggestion)
    assert (suggestion.status, suggestion.escalation_level) == (SuggestionStatus.ESCALATED, 1)
    assert suggestion.due_at >= before + SLA


def test_a_senior_passing_an_escalation_on_does_not_restart_its_clock(
    capability, api_client_row, reviewer, make_reviewer
):
    suggestion = submit(api_client_row, capability)
    decision_record(user=reviewer, suggestion_id=suggestion.pk, outcome="escalated", reason="?")
    due = fresh(suggestion).due_at
    senior = make_reviewer(capability, senior=True)

    decision_record(user=senior, suggestion_id=suggestion.pk, outcome="escalated", reason="??")

    fresh(suggestion)
    assert (suggestion.escalation_level, suggestion.due_at) == (1, due)


# --- The ladder -------------------------------------------------------------------------------


def test_an_item_past_its_deadline_is_escalated_to_senior_reviewers_and_audited(
    capability, api_client_row, reviewer, senior, settings
):
    settings.SIGNOFF_CLAIM_TTL_SECONDS = 2 * 60 * 60  # rita still holds it at the deadline
    suggestion = submit(api_client_row, capability)
    suggestion_claim(user=reviewer, suggestion_id=suggestion.pk)
    missed = suggestion.due_at
    now = missed + SECOND

    assert escalation_sweep(now=now) == 1

    fresh(suggestion)
    assert suggestion.status == SuggestionStatus.ESCALATED
    assert suggestion.escalation_level == 1
    assert suggestion.due_at == now + SLA
    assert suggestion.claimed_by is None  # the item changed hands
    assert trail(suggestion) == [
        ("suggestion.received", api_client_row.name),
        ("suggestion.routed", "policy"),
        ("suggestion.claimed", reviewer.username),
        ("suggestion.escalated", "sla"),
    ]
    event = last_event(suggestion)
    assert event.actor_type == "system"
    assert event.data == {
        "from_level": 0,
        "to_level": 1,
        "from_status": "pending_review",
        "to_status": "escalated",
        "deadline_missed": format_timestamp(missed),
        "due_at": format_timestamp(now + SLA),
        "sla_minutes": 60,
        "policy_version": 1,
        "released_claim_of": reviewer.username,
    }
    assert not can_decide_suggestion(reviewer, suggestion)
    assert can_decide_suggestion(senior, suggestion)
    assert Decision.objects.filter(suggestion=suggestion).count() == 0


def test_an_item_is_not_touched_before_its_deadline_and_is_at_it(capability, api_client_row):
    suggestion = submit(api_client_row, capability)

    assert escalation_sweep(now=suggestion.due_at - SECOND) == 0
    assert fresh(suggestion).escalation_level == 0
    assert escalation_sweep(now=suggestion.due_at) == 1
    assert fresh(suggestion).escalation_level == 1


def test_a_sweep_long_overdue_climbs_one_rung_and_gives_it_a_full_deadline(
    capability, api_client_row
):
    suggestion = submit(api_client_row, capability)
    now = suggestion.due_at + 10 * SLA  # the scheduler was down for ten hours

    assert escalation_sweep(now=now) == 1

    fresh(suggestion)
    assert (suggestion.escalation_level, suggestion.due_at) == (1, now + SLA)
    assert escalation_sweep(now=now) == 0


def test_an_escalated_item_past_its_deadline_goes_to_the_owner_who_may_then_decide_it(
    capability, api_client_row, reviewer, senior, owner
):
    suggestion = submit(api_client_row, capability)
    escalation_sweep(now=suggestion.due_at)
    # On the senior rung the owner, who neither reviews nor resolves escalations, may not.
    assert not can_decide_suggestion(owner, fresh(suggestion))
    assert suggestion not in suggestions_decidable_by(user=owner)
    missed = suggestion.due_at

    assert escalation_sweep(now=missed) == 1

    fresh(suggestion)
    assert (suggestion.status, suggestion.escalation_level) == (SuggestionStatus.ESCALATED, 2)
    assert suggestion.due_at == missed + SLA
    assert [action for action, _ in trail(suggestion)][-2:] == [
        "suggestion.escalated",
        "suggestion.escalated",
    ]
    event = last_event(suggestion)
    assert (event.actor_label, event.data["from_level"], event.data["to_level"]) == ("sla", 1, 2)
    assert event.data["deadline_missed"] == format_timestamp(missed)
    for user, may in [(owner, True), (senior, True), (reviewer, False)]:
        assert can_decide_suggestion(user, suggestion) is may, user
        assert (suggestion in suggestions_decidable_by(user=user)) is may, user
    with pytest.raises(PermissionDenied):
        decision_record(user=reviewer, suggestion_id=suggestion.pk, outcome="approved")

    decision = decision_record(user=owner, suggestion_id=suggestion.pk, outcome="approved")

    assert decision.is_final and decision.reviewer == owner
    assert fresh(suggestion).status == SuggestionStatus.APPROVED
    assert escalation_sweep(now=suggestion.due_at + SLA) == 0


def test_a_member_of_the_owner_group_may_decide_at_the_owners_rung(db, make_reviewer):
    team = Group.objects.create(name="payments-team")
    member, outsider = UserFactory(username="gus"), UserFactory(username="otto")
    member.groups.add(team)
    capability = CapabilityFactory(key="payouts.send", owner=None, owner_group=team, sla_minutes=30)
    client = ApiClientFactory.create(capabilities=[capability])
    suggestion = submit(client, capability)
    escalation_sweep(now=suggestion.due_at)
    assert not can_decide_suggestion(member, fresh(suggestion))

    escalation_sweep(now=suggestion.due_at)

    fresh(suggestion)
    assert suggestion.escalation_level == 2
    assert can_decide_suggestion(member, suggestion)
    assert suggestion in suggestions_decidable_by(user=member)
    assert not can_decide_suggestion(outsider, suggestion)
    assert suggestion not in suggestions_decidable_by(user=outsider)


def test_an_owner_who_escalated_the_item_still_may_not_decide_it(capability, api_client_row, owner):
    assign_perm("capabilities.review_capability", owner, capability)
    suggestion = submit(api_client_row, capability)
    decision_record(user=owner, suggestion_id=suggestion.pk, outcome="escalated", reason="Mine?")
    escalation_sweep(now=fresh(suggestion).due_at)

    assert fresh(suggestion).escalation_level == 2
    assert not can_decide_suggestion(owner, suggestion)
    assert suggestion not in suggestions_decidable_by(user=owner)


def test_the_owner_reads_the_review_page_only_once_the_item_reaches_their_rung(
    capability, api_client_row, owner
):
    suggestion = submit(api_client_row, capability)
    browser = Client()
    browser.force_login(owner)
    url = reverse("reviews:review", args=[suggestion.pk])
    escalation_sweep(now=suggestion.due_at)
    assert browser.get(url).status_code == 404

    escalation_sweep(now=fresh(suggestion).due_at)

    page = browser.get(url)
    assert page.status_code == 200
    assert page.context["state"].may_decide


def test_past_the_owners_deadline_the_fail_closed_default_rejects_it_as_a_system_decision(
    capability, api_client_row, reviewer, django_capture_on_commit_callbacks
):
    suggestion = submit(api_client_row, capability)
    escalation_sweep(now=suggestion.due_at)
    escalation_sweep(now=fresh(suggestion).due_at)
    missed = fresh(suggestion).due_at

    with django_capture_on_commit_callbacks(execute=True):
        assert escalation_sweep(now=missed) == 1

    fresh(suggestion)
    assert suggestion.status == SuggestionStatus.REJECTED
    assert suggestion.decided_at == missed
    assert suggestion.execution_status == ExecutionStatus.NOT_STARTED
    (decision,) = Decision.objects.filter(suggestion=suggestion)
    assert (decision.reviewer, decision.outcome, decision.is_final, decision.reason) == (
        None,
        DecisionOutcome.REJECTED,
        True,
        "sla_expired",
    )
    assert decision.policy == suggestion.policy
    assert not OutboxItem.objects.filter(kind="execute").exists()
    assert trail(suggestion) == [
        ("suggestion.received", api_client_row.name),
        ("suggestion.routed", "policy"),
        ("suggestion.escalated", "sla"),
        ("suggestion.escalated", "sla"),
        ("decision.recorded", "sla"),
    ]
    event = last_event(suggestion)
    assert event.actor_type == "system"
    assert event.data == {
        "decision_id": decision.pk,
        "outcome": "rejected",
        "from_status": "escalated",
        "to_status": "rejected",
        "reason": "sla_expired",
        "rule": "sla_default_reject",
        "sla_default": "reject",
        "from_level": 2,
        "deadline_missed": format_timestamp(missed),
        "is_override": False,
        "changes": [],
        "policy_version": 1,
        "released_claim_of": None,
    }
    assert escalation_sweep(now=missed + 10 * SLA) == 0
    assert not can_decide_suggestion(reviewer, suggestion)


def test_the_fail_open_default_approves_and_runs_the_handler_through_the_outbox(
    fail_open, api_client_row, django_capture_on_commit_callbacks
):
    suggestion = submit(api_client_row, fail_open)
    assert suggestion.policy.sla_default == "approve"
    escalation_sweep(now=suggestion.due_at)
    escalation_sweep(now=fresh(suggestion).due_at)

    with django_capture_on_commit_callbacks(execute=True):
        assert escalation_sweep(now=fresh(suggestion).due_at) == 1

    fresh(suggestion)
    assert suggestion.status == SuggestionStatus.APPROVED
    assert suggestion.final_payload == suggestion.payload
    assert suggestion.execution_status == ExecutionStatus.SUCCEEDED
    (decision,) = Decision.objects.filter(suggestion=suggestion)
    assert (decision.reviewer, decision.outcome, decision.is_final, decision.reason) == (
        None,
        DecisionOutcome.APPROVED,
        True,
        "sla_expired",
    )
    item = OutboxItem.objects.get(kind="execute")
    assert (item.ref, item.done_at is not None) == (str(suggestion.pk), True)
    actions = [action for action, _ in trail(suggestion)]
    assert actions[:5] == [
        "suggestion.received",
        "suggestion.routed",
        "suggestion.escalated",
        "suggestion.escalated",
        "decision.recorded",
    ]
    assert actions[5:] == ["execution.succeeded"]
    decided = AuditEvent.objects.get(subject_id=str(suggestion.pk), action="decision.recorded")
    assert (decided.actor_label, decided.data["rule"], decided.data["outcome"]) == (
        "sla",
        "sla_default_approve",
        "approved",
    )


def test_an_item_decided_before_its_deadline_is_untouched(capability, api_client_row, reviewer):
    suggestion = submit(api_client_row, capability)
    decision_record(user=reviewer, suggestion_id=suggestion.pk, outcome="approved")
    events_before = AuditEvent.objects.count()

    assert escalation_sweep(now=suggestion.due_at + 5 * SLA) == 0

    fresh(suggestion)
    assert (suggestion.status, suggestion.escalation_level) == (SuggestionStatus.APPROVED, 0)
    assert AuditEvent.objects.count() == events_before
    assert Decision.objects.filter(suggestion=suggestion).count() == 1


def test_items_without_a_deadline_are_never_touched(db, make_reviewer):
    no_sla = CapabilityFactory(key="content.moderate")
    assert policy_active(no_sla).sla_minutes is None
    client = ApiClientFactory.create(capabilities=[no_sla])
    pending = submit(client, no_sla)
    escalated = submit(client, no_sla)
    reviewer = make_reviewer(no_sla)
    decision_record(user=reviewer, suggestion_id=escalated.pk, outcome="escalated", reason="?")
    events_before = AuditEvent.objects.count()

    assert escalation_sweep(now=timezone.now() + dt.timedelta(days=365)) == 0

    assert (fresh(pending).due_at, pending.escalation_level) == (None, 0)
    assert (fresh(escalated).due_at, escalated.escalation_level) == (None, 1)
    assert escalated.status == SuggestionStatus.ESCALATED
    assert AuditEvent.objects.count() == events_before


def test_a_failing_step_is_left_for_the_next_sweep_and_does_not_stop_the_others(
    capability, api_client_row, monkeypatch
):
    broken, fine = submit(api_client_row, capability), submit(api_client_row, capability)
    climb = escalation_module._climb

    def climb_except_broken(suggestion: Suggestion, now: dt.datetime) -> Any:
        if suggestion.pk == broken.pk:
            raise RuntimeError("handler of the step exploded")
        return climb(suggestion, now)

    monkeypatch.setattr(escalation_module, "_climb", climb_except_broken)
    now = max(broken.due_at, fine.due_at)

    assert escalation_sweep(now=now) == 1

    assert (fresh(broken).escalation_level, fresh(fine).escalation_level) == (0, 1)
    assert [a for a, _ in trail(broken)] == ["suggestion.received", "suggestion.routed"]
    monkeypatch.setattr(escalation_module, "_climb", climb)
    assert escalation_sweep(now=now) == 1
    assert fresh(broken).escalation_level == 1


# --- Running the sweep ------------------------------------------------------------------------


def test_the_command_sweeps_at_the_given_time_and_prints_each_step(capability, api_client_row):
    suggestion = submit(api_client_row, capability)
    out = StringIO()

    call_command("escalation_sweep", "--now", suggestion.due_at.isoformat(), stdout=out)

    assert fresh(suggestion).escalation_level == 1
    assert out.getvalue().splitlines() == [
        f"refunds.issue {suggestion.pk}: escalated from rung 0 to rung 1",
        "1 escalation step(s) taken.",
    ]


def test_the_command_refuses_a_time_it_cannot_read(db):
    with pytest.raises(CommandError, match="not an ISO 8601"):
        call_command("escalation_sweep", "--now", "tomorrow-ish")


def test_the_scheduled_task_runs_the_sweep_at_the_current_time(capability, api_client_row):
    suggestion = submit(api_client_row, capability)
    Suggestion.objects.filter(pk=suggestion.pk).update(due_at=timezone.now() - SECOND)

    assert tasks.sweep_escalations.call() == 1

    assert fresh(suggestion).escalation_level == 1


# --- Managing the deadline --------------------------------------------------------------------


def test_publishing_keeps_the_deadline_and_default_unless_given(fail_open, manager):
    kept = policy_publish(
        capability=fail_open,
        auto_approve_at=Decimal("0.95"),
        auto_reject_below=Decimal("0.30"),
        user=manager,
    )
    assert (kept.sla_minutes, kept.sla_default) == (60, "approve")

    cleared = policy_publish(
        capability=fail_open,
        auto_approve_at=Decimal("0.95"),
        auto_reject_below=Decimal("0.30"),
        sla_minutes=None,
        sla_default="reject",
        user=manager,
    )
    assert (cleared.sla_minutes, cleared.sla_default) == (None, "reject")
    event = AuditEvent.objects.filter(action="policy.published").last()
    assert (event.data["sla_minutes"], event.data["sla_default"]) == (None, "reject")


@pytest.mark.parametrize(
    ("sla_minutes", "sla_default", "field"),
    [(0, "reject", "sla_minutes"), (10081, "reject", "sla_minutes"), (60, "maybe", "sla_default")],
)
def test_a_bad_deadline_or_default_is_refused_naming_the_field(
    capability, manager, sla_minutes, sla_default, field
):
    with pytest.raises(ValidationError) as refused:
        policy_publish(
            capability=capability,
            auto_approve_at=Decimal("0.90"),
            auto_reject_below=Decimal("0.30"),
            sla_minutes=sla_minutes,
            sla_default=sla_default,
            user=manager,
        )
    assert field in refused.value.message_dict
    assert policy_active(capability).version == 1


def admin_form_data(response: Any) -> dict[str, Any]:
    """The capability change form as a browser posts it back (no inline changes)."""
    form = response.context["adminform"].form
    data: dict[str, Any] = {"_save": "Save"}
    for name in form.fields:
        value = form[name].value()
        if value is not None:
            data[name] = str(value)
    for inline in response.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        for name in management.fields:
            data[management.add_prefix(name)] = str(management[name].value())
    return data


def test_the_admin_form_publishes_a_version_with_the_deadline_and_default(manager, capability):
    browser = Client()
    browser.force_login(manager)
    url = reverse("admin:capabilities_capability_change", args=[capability.pk])
    page = browser.get(url)
    form = page.context["adminform"].form
    assert (form["sla_minutes"].value(), form["sla_default"].value()) == (60, "reject")
    data = admin_form_data(page)
    data.update(sla_minutes="240", sla_default="approve", policy_note="Nights are slow")

    response = browser.post(url, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    policy = policy_active(capability)
    assert (policy.version, policy.sla_minutes, policy.sla_default) == (2, 240, "approve")
    event = AuditEvent.objects.filter(action="policy.published").last()
    assert (event.actor_label, event.data["sla_minutes"], event.data["sla_default"]) == (
        manager.username,
        240,
        "approve",
    )


@pytest.mark.parametrize("sla_minutes", ["0", "10081", "soon"])
def test_the_admin_form_refuses_a_deadline_outside_a_minute_to_a_week(
    manager, capability, sla_minutes
):
    browser = Client()
    browser.force_login(manager)
    url = reverse("admin:capabilities_capability_change", args=[capability.pk])
    data = admin_form_data(browser.get(url))
    data["sla_minutes"] = sla_minutes

    response = browser.post(url, data)

    assert response.status_code == 200
    assert "sla_minutes" in response.context["adminform"].form.errors
    assert policy_active(capability).version == 1


def test_clearing_the_deadline_in_the_admin_publishes_a_version_without_one(manager, capability):
    browser = Client()
    browser.force_login(manager)
    url = reverse("admin:capabilities_capability_change", args=[capability.pk])
    data = admin_form_data(browser.get(url))
    data["sla_minutes"] = ""

    assert browser.post(url, data).status_code == 302

    policy = policy_active(capability)
    assert (policy.version, policy.sla_minutes) == (2, None)


def test_a_manager_without_the_right_sees_the_deadline_read_only(capability):
    viewer = UserFactory(username="vera", is_staff=True)
    for codename in ("view_capability", "change_capability", "view_policy"):
        assign_perm(f"capabilities.{codename}", viewer)
    assign_perm("capabilities.review_capability", viewer, capability)
    browser = Client()
    browser.force_login(viewer)

    page = browser.get(reverse("admin:capabilities_capability_change", args=[capability.pk]))

    assert page.status_code == 200
    assert "sla_minutes" not in page.context["adminform"].form.fields
    body = page.content.decode()
    assert "Deadline per rung (minutes)" in body and "Fail closed: reject" in body


def test_creating_a_capability_in_the_admin_sets_its_first_deadline(db):
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    browser = Client()
    browser.force_login(root)

    response = browser.post(
        reverse("admin:capabilities_capability_add"),
        {
            "key": "invoice.extract",
            "name": "Invoice field extraction",
            "owner": root.pk,
            "auto_approve_at": "0.85",
            "auto_reject_below": "0.30",
            "required_approvals": "1",
            "sla_minutes": "30",
            "sla_default": "reject",
            "_save": "Save",
        },
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    policy = policy_active(Capability.objects.get(key="invoice.extract"))
    assert (policy.version, policy.sla_minutes, policy.sla_default) == (1, 30, "reject")


# --- The queue badge --------------------------------------------------------------------------


def test_the_queue_marks_each_item_on_time_due_soon_or_overdue(
    capability, api_client_row, reviewer
):
    no_sla = CapabilityFactory(key="content.moderate")
    assign_perm("capabilities.review_capability", reviewer, no_sla)
    now = timezone.now()
    due = {
        "on-time": now + dt.timedelta(minutes=40),
        "due-soon": now + dt.timedelta(minutes=10),  # under a quarter of the hour left
        "overdue": now - dt.timedelta(minutes=1),
    }
    for external_id, due_at in due.items():
        suggestion = submit(api_client_row, capability, external_id=external_id)
        Suggestion.objects.filter(pk=suggestion.pk).update(due_at=due_at)
    undated = submit(ApiClientFactory.create(capabilities=[no_sla]), no_sla, external_id="none")
    assert undated.sla_state == ""
    browser = Client()
    browser.force_login(reviewer)

    page = browser.get(reverse("reviews:queue"))

    assert page.status_code == 200
    rows = {s.external_id: s.sla_state for s in page.context["page"].object_list}
    assert rows == {"on-time": "on_time", "due-soon": "due_soon", "overdue": "overdue", "none": ""}
    body = page.content.decode()
    for label, css in [("On time", "on_time"), ("Due soon", "due_soon"), ("Overdue", "overdue")]:
        assert f"sla--{css}" in body and label in body


def test_a_decided_item_has_no_deadline_state(capability, api_client_row, reviewer):
    suggestion = submit(api_client_row, capability)
    decision_record(user=reviewer, suggestion_id=suggestion.pk, outcome="rejected", reason="No")

    assert fresh(suggestion).sla_state == ""


# --- Two sweeps at once -----------------------------------------------------------------------


def sweeps_at(now: dt.datetime) -> list[Any]:
    """Two sweeps at the same moment of the clock, each on its own connection."""
    return run_together([lambda: escalation_sweep(now=now)] * 2)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_sweeps_take_each_step_once(capability, api_client_row):
    items = [submit(api_client_row, capability, external_id=f"t-{n}") for n in range(40)]
    ids = {str(item.pk) for item in items}
    now = max(item.due_at for item in items)

    for rung in (1, 2):
        results = sweeps_at(now)
        assert not [r for r in results if isinstance(r, Exception)], results
        assert sum(results) == 40, results
        levels = Counter(Suggestion.objects.values_list("escalation_level", flat=True))
        assert levels == {rung: 40}
        escalations = Counter(
            AuditEvent.objects.filter(action="suggestion.escalated").values_list(
                "subject_id", flat=True
            )
        )
        assert set(escalations) == ids and set(escalations.values()) == {rung}
        now += SLA

    results = sweeps_at(now)
    assert sum(results) == 40, results
    assert Decision.objects.filter(reviewer__isnull=True, is_final=True).count() == 40
    decided = Counter(
        AuditEvent.objects.filter(action="decision.recorded").values_list("subject_id", flat=True)
    )
    assert set(decided) == ids and set(decided.values()) == {1}
    assert not Suggestion.objects.exclude(status=SuggestionStatus.REJECTED).exists()
