"""``manage.py quickstart``: an idempotent demo with a login per role and a working token."""

import json
import shlex
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from capabilities.models import ApiClient, ApiToken, Capability, Policy
from capabilities.permissions import (
    can_manage_capability,
    can_resolve_escalations,
    can_review_capability,
)
from capabilities.services import api_token_authenticate, policy_active
from reviews.management.commands.quickstart import DEMO_PASSWORD
from reviews.models import Decision, Suggestion, SuggestionStatus

pytestmark = pytest.mark.django_db

KEYS = {"refunds.issue", "content.moderate", "invoice.extract"}


@pytest.fixture(autouse=True)
def demo_settings(settings: Any) -> None:
    settings.DEBUG = True


def quickstart(*args: str) -> str:
    out = StringIO()
    call_command("quickstart", *args, stdout=out)
    return out.getvalue()


def printed_token(output: str) -> str:
    lines = output.splitlines()
    return lines[
        lines.index(next(line for line in lines if "token, shown only now" in line)) + 1
    ].strip()


def curl_line(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("curl "))


def counts() -> dict[str, int]:
    return {
        "users": get_user_model().objects.count(),
        "capabilities": Capability.objects.count(),
        "policies": Policy.objects.count(),
        "clients": ApiClient.objects.count(),
        "suggestions": Suggestion.objects.count(),
    }


def test_running_twice_creates_no_duplicates():
    quickstart()
    first = counts()
    tokens = ApiToken.objects.count()

    output = quickstart()

    assert counts() == first
    assert first == {
        "users": 5,
        "capabilities": 3,
        "policies": 3,
        "clients": 1,
        "suggestions": 36,
    }
    # Secrets are never stored, so each run issues one new token for the printed curl line.
    assert ApiToken.objects.count() == tokens + 1
    assert "Kept the 36 existing suggestions" in output


def test_capabilities_get_their_thresholds_and_the_manager_owns_them():
    quickstart()

    thresholds = {
        c.key: (str(policy_active(c).auto_approve_at), str(policy_active(c).auto_reject_below))
        for c in Capability.objects.select_related("owner")
    }
    assert thresholds == {
        "refunds.issue": ("0.9500", "0.4000"),
        "content.moderate": ("0.9000", "0.2000"),
        "invoice.extract": ("0.8500", "0.3000"),
    }
    assert set(Capability.objects.values_list("owner__username", flat=True)) == {"manager"}
    assert AuditEvent.objects.filter(action="capability.created").count() == 3


def test_each_role_gets_its_permissions():
    quickstart()
    users = {u.username: u for u in get_user_model().objects.all()}
    capabilities = list(Capability.objects.all())
    reviewer, senior, manager = users["reviewer"], users["senior"], users["manager"]
    auditor, admin = users["auditor"], users["admin"]

    for capability in capabilities:
        assert can_review_capability(reviewer, capability)
        assert not can_resolve_escalations(reviewer, capability)
        assert can_review_capability(senior, capability)
        assert can_resolve_escalations(senior, capability)
        assert can_manage_capability(manager, capability)
        assert not can_manage_capability(reviewer, capability)
        assert not can_manage_capability(auditor, capability)
    assert not reviewer.is_staff and not senior.is_staff
    assert manager.is_staff and not manager.is_superuser
    assert manager.has_perms(
        [
            "capabilities.view_capability",
            "capabilities.change_capability",
            "capabilities.view_policy",
            "capabilities.view_apiclient",
        ]
    )
    assert auditor.is_staff
    assert auditor.has_perms(
        ["audit.view_auditevent", "reviews.view_suggestion", "reviews.view_decision"]
    )
    assert not auditor.has_perm("capabilities.change_capability")
    assert admin.is_superuser
    assert all(user.check_password(DEMO_PASSWORD) for user in users.values())


def test_the_printed_token_authenticates_and_the_curl_line_submits(client):
    output = quickstart()
    token = printed_token(output)

    authenticated = api_token_authenticate(token)
    assert authenticated is not None
    assert authenticated.client.name == "demo-agent"
    assert set(authenticated.client.capabilities.values_list("key", flat=True)) == KEYS

    argv = shlex.split(curl_line(output))
    url = next(arg for arg in argv if arg.startswith("http"))
    headers = dict(argv[i + 1].split(": ", 1) for i, arg in enumerate(argv) if arg == "-H")
    body = argv[argv.index("-d") + 1]
    assert url == "http://127.0.0.1:8000/api/v1/suggestions/"
    assert headers["Authorization"] == f"Bearer {token}"
    assert json.loads(body)["capability"] == "refunds.issue"

    response = client.post(
        "/api/v1/suggestions/",
        body,
        content_type="application/json",
        headers={"Authorization": headers["Authorization"]},
    )
    assert response.status_code == 201, response.content


def test_a_rerun_prints_a_new_token_and_revokes_the_old_one():
    first = printed_token(quickstart())
    second = printed_token(quickstart())

    assert first != second
    assert api_token_authenticate(first) is None
    assert api_token_authenticate(second) is not None
    revoked = AuditEvent.objects.get(action="api_token.revoked")
    assert revoked.actor_label == "quickstart"
    assert first.startswith(revoked.data["prefix"])


def test_permission_grants_are_audited_once():
    quickstart()
    grants = AuditEvent.objects.filter(action="permission.granted")
    assert grants.filter(data__user="reviewer", capability="refunds.issue").exists()
    count = grants.count()
    quickstart()
    assert AuditEvent.objects.filter(action="permission.granted").count() == count


def test_suggestions_take_every_route_with_varied_models_and_redacted_prompts():
    quickstart()

    statuses = set(Suggestion.objects.values_list("status", flat=True))
    assert {
        SuggestionStatus.AUTO_APPROVED,
        SuggestionStatus.AUTO_REJECTED,
        SuggestionStatus.PENDING_REVIEW,
    } <= statuses
    pending = Suggestion.objects.filter(status=SuggestionStatus.PENDING_REVIEW).count()
    assert pending > Suggestion.objects.count() / 2
    assert set(Suggestion.objects.values_list("model_name", flat=True)) == {
        "gpt-4o",
        "claude-sonnet-4",
        "llama-3.1-70b",
    }
    assert set(Suggestion.objects.values_list("capability__key", flat=True)) == KEYS
    assert Suggestion.objects.filter(external_id="ticket-8812").exists()
    assert not Suggestion.objects.filter(prompt__contains="@example.com").exists()
    assert Suggestion.objects.filter(prompt__contains="[REDACTED:email]").count() == 1
    assert not Suggestion.objects.filter(cost__isnull=True).exists()


def test_the_seed_is_repeatable():
    quickstart()
    first = sorted(Suggestion.objects.values_list("external_id", "confidence", "model_name"))
    Decision.objects.all().delete()
    Suggestion.objects.all().delete()

    quickstart()

    assert (
        sorted(Suggestion.objects.values_list("external_id", "confidence", "model_name")) == first
    )


def test_no_suggestions_flag_skips_them_and_base_url_is_printed():
    output = quickstart("--no-suggestions", "--base-url", "http://localhost:9000/")

    assert not Suggestion.objects.exists()
    assert "Open http://localhost:9000/" in output
    assert "http://localhost:9000/api/v1/suggestions/" in curl_line(output)


def test_refuses_to_run_with_debug_off_unless_forced(settings):
    settings.DEBUG = False

    with pytest.raises(CommandError, match="DEBUG"):
        quickstart()
    assert not get_user_model().objects.exists()

    quickstart("--force", "--no-suggestions")
    assert get_user_model().objects.filter(username="admin", is_superuser=True).exists()


# --- The demo roles in the admin --------------------------------------------------------------


def logged_in(username: str) -> Client:
    browser = Client()
    browser.force_login(get_user_model().objects.get(username=username))
    return browser


def test_demo_manager_may_change_thresholds_in_the_admin():
    quickstart("--no-suggestions")
    capability = Capability.objects.get(key="refunds.issue")

    page = logged_in("manager").get(
        reverse("admin:capabilities_capability_change", args=[capability.pk])
    )

    assert page.status_code == 200
    assert "auto_approve_at" in page.context["adminform"].form.fields


def test_demo_auditor_reads_trail_suggestions_and_decisions_but_changes_nothing(
    django_assert_max_num_queries,
):
    quickstart()
    browser = logged_in("auditor")
    suggestion = Suggestion.objects.filter(status=SuggestionStatus.AUTO_APPROVED).first()
    decision = suggestion.decisions.get()

    for name in ("audit_auditevent", "reviews_suggestion", "reviews_decision"):
        # One page of rows in a bounded number of queries, however many rows there are.
        with django_assert_max_num_queries(15):
            listing = browser.get(reverse(f"admin:{name}_changelist"))
        assert listing.status_code == 200, name
        assert not listing.context["has_add_permission"], name
    suggestion_url = reverse("admin:reviews_suggestion_change", args=[suggestion.pk])
    page = browser.get(suggestion_url)
    assert page.context["title"] == "View suggestion"
    assert suggestion.external_id in page.content.decode()
    assert browser.post(suggestion_url, {"status": "rejected"}).status_code == 403
    decision_url = reverse("admin:reviews_decision_change", args=[decision.pk])
    assert browser.get(decision_url).context["title"] == "View decision"
    assert browser.post(decision_url, {"outcome": "rejected"}).status_code == 403
    delete_url = reverse("admin:reviews_suggestion_delete", args=[suggestion.pk])
    assert browser.post(delete_url, {"post": "yes"}).status_code == 403
    suggestion.refresh_from_db()
    assert suggestion.status == SuggestionStatus.AUTO_APPROVED
    # Auditors read capabilities and their policy versions, and change none of them.
    capabilities = browser.get(reverse("admin:capabilities_capability_changelist"))
    assert capabilities.status_code == 200
    assert not capabilities.context["has_add_permission"]
    refunds = Capability.objects.get(key="refunds.issue")
    change_url = reverse("admin:capabilities_capability_change", args=[refunds.pk])
    assert browser.post(change_url, {"auto_approve_at": "0.1"}).status_code == 403


def test_suggestion_admin_filters_and_searches(django_assert_max_num_queries):
    quickstart()
    browser = logged_in("auditor")
    url = reverse("admin:reviews_suggestion_changelist")
    suggestion = Suggestion.objects.get(external_id="ticket-8812")

    by_status = browser.get(url, {"status__exact": "auto_rejected"})
    assert {s.status for s in by_status.context["cl"].result_list} == {"auto_rejected"}
    by_external_id = browser.get(url, {"q": "ticket-8812"})
    assert list(by_external_id.context["cl"].result_list) == [suggestion]
    by_id = browser.get(url, {"q": str(suggestion.pk)})
    assert list(by_id.context["cl"].result_list) == [suggestion]
    by_model = browser.get(url, {"model_name": "llama-3.1-70b"})
    assert {s.model_name for s in by_model.context["cl"].result_list} == {"llama-3.1-70b"}
