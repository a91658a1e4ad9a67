"""A reviewer's day in a real browser: the keyboard, two reviewers at once, hostile payloads,
and screenshots of the main pages for the README."""

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from audit.models import AuditAction, AuditEvent
from audit.services import Actor
from capabilities.models import Capability
from capabilities.services import role_grant
from reviews.models import Decision, DecisionOutcome, Suggestion, SuggestionStatus
from reviews.services import ModelInfo, decision_record, suggestion_claim
from tests.browser.pages import (
    QUEUE_URL,
    REVIEW_URL,
    Pages,
    fits_viewport,
    log_in,
    review_pk,
    settled,
    tab_to,
)
from tests.factories import PASSWORD, ApiClientFactory, CapabilityFactory, UserFactory, submit

# Transactional: the live server's threads must see what the test writes.
pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parent.parent / "screenshots"


def _submit_five(capability: Capability) -> list[Suggestion]:
    client = ApiClientFactory.create(capabilities=[capability])
    return [
        submit(
            client,
            capability,
            confidence=0.5 + index / 100,
            payload={"amount": f"{100 + index}.00", "currency": "EUR", "order": f"A-{index}"},
            external_id=f"ticket-{index}",
        )
        for index in range(1, 6)
    ]


def _wait_for_next_item(page: Page, previous_pk: str) -> str:
    """Wait until ``page`` shows the review page of another item, held by the reviewer."""
    expect(page).not_to_have_url(re.compile(rf"/suggestions/{previous_pk}/$"))
    expect(page).to_have_url(REVIEW_URL)
    expect(page.locator(".claim-state")).to_contain_text("You hold this suggestion")
    settled(page)
    return review_pk(page)


def _decision_events(pk: str) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(
            action=AuditAction.DECISION_RECORDED, subject_type="suggestion", subject_id=pk
        )
    )


def test_a_reviewer_works_five_items_with_the_keyboard_alone(
    pages: Pages, capability: Capability, reviewer: Any
) -> None:
    items = _submit_five(capability)
    page = pages.new()

    # Log in through the form, with the keyboard.
    page.goto("/accounts/login/")
    tab_to(page, "input[name='username']")
    page.keyboard.type(reviewer.username)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page).to_have_url(QUEUE_URL)
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()

    # ? shows the list of keys; Escape closes it.
    help_dialog = page.locator("#keys-help")
    page.keyboard.press("?")
    expect(help_dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(help_dialog).to_be_hidden()

    # j / k move the selection; Enter opens the selected row (the first, after j j k).
    first_row_link = page.locator("main tbody tr").first.get_by_role("link")
    first_href = first_row_link.get_attribute("href")
    for key in ("j", "j", "k"):
        page.keyboard.press(key)
    page.keyboard.press("Enter")
    expect(page).to_have_url(REVIEW_URL)
    assert page.url.endswith(first_href or "?")
    expect(page.locator(".claim-state")).to_contain_text("Nobody holds this suggestion")

    # n claims the next item: the reviewer now holds one.
    page.keyboard.press("n")
    expect(page.locator(".claim-state")).to_contain_text("You hold this suggestion")
    approved_pk = review_pk(page)

    # a approves and opens the next item, already claimed.
    page.keyboard.press("a")
    edited_pk = _wait_for_next_item(page, approved_pk)
    expect(page.get_by_role("status").filter(has_text="Approved:")).to_be_visible()

    # e opens the editor; Tab, typing and Enter change a value, preview, then confirm.
    page.keyboard.press("e")
    expect(page).to_have_url(f"{pages.base_url}/suggestions/{edited_pk}/edit/")
    expect(page.get_by_role("heading", name="Edit then approve")).to_be_visible()
    original = Suggestion.objects.get(pk=edited_pk).payload
    edited = {**original, "amount": "42.00"}
    tab_to(page, "textarea[name='payload']")
    page.keyboard.press("Control+A")
    page.keyboard.type(json.dumps(edited))
    tab_to(page, "textarea[name='reason']")
    page.keyboard.type("The customer asked for a partial refund")
    tab_to(page, "button[value='preview']")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Changes from the proposal")).to_be_visible()
    settled(page)
    tab_to(page, "button[value='confirm']")
    page.keyboard.press("Enter")
    rejected_pk = _wait_for_next_item(page, edited_pk)
    expect(page.get_by_role("status").filter(has_text="Approved with your changes")).to_be_visible()

    # r opens the reject form at its reason; Ctrl+Enter sends it. The letters typed in the
    # reason (a, e, n, r, x...) are text, not shortcuts.
    page.keyboard.press("r")
    expect(page.locator("#reject-details")).to_have_attribute("open", "")
    expect(page.locator("#reject-reason")).to_be_focused()
    reject_reason = "Duplicate: the order was already paid back in an earlier refund"
    page.keyboard.type(reject_reason)
    page.keyboard.press("Control+Enter")
    escalated_pk = _wait_for_next_item(page, rejected_pk)
    expect(page.get_by_role("status").filter(has_text="Rejected:")).to_be_visible()

    # x opens the escalate form at its reason; Ctrl+Enter sends it.
    page.keyboard.press("x")
    expect(page.locator("#escalate-details")).to_have_attribute("open", "")
    expect(page.locator("#escalate-reason")).to_be_focused()
    escalate_reason = "Amount exceeds what a reviewer may approve; needs a senior look"
    page.keyboard.type(escalate_reason)
    page.keyboard.press("Control+Enter")
    last_pk = _wait_for_next_item(page, escalated_pk)
    expect(page.get_by_role("status").filter(has_text="Escalated:")).to_be_visible()

    # a approves the last one; nothing else waits, so the queue comes back, empty.
    page.keyboard.press("a")
    expect(page).to_have_url(QUEUE_URL)
    expect(page.get_by_text("Nothing else is waiting for you.")).to_be_visible()
    expect(page.get_by_role("heading", name="Nothing is waiting for you")).to_be_visible()

    # The database holds exactly those decisions.
    worked = [approved_pk, edited_pk, rejected_pk, escalated_pk, last_pk]
    assert sorted(worked) == sorted(str(item.pk) for item in items)
    expected = {
        approved_pk: (SuggestionStatus.APPROVED, DecisionOutcome.APPROVED, False, ""),
        edited_pk: (
            SuggestionStatus.APPROVED,
            DecisionOutcome.APPROVED,
            True,
            "The customer asked for a partial refund",
        ),
        rejected_pk: (SuggestionStatus.REJECTED, DecisionOutcome.REJECTED, False, reject_reason),
        escalated_pk: (
            SuggestionStatus.ESCALATED,
            DecisionOutcome.ESCALATED,
            False,
            escalate_reason,
        ),
        last_pk: (SuggestionStatus.APPROVED, DecisionOutcome.APPROVED, False, ""),
    }
    assert Decision.objects.count() == 5
    for pk, (status, outcome, is_override, reason) in expected.items():
        suggestion = Suggestion.objects.get(pk=pk)
        assert suggestion.status == status, pk
        assert suggestion.claimed_by_id is None
        (decision,) = suggestion.decisions.all()
        assert decision.reviewer_id == reviewer.pk
        assert decision.outcome == outcome
        assert decision.is_override is is_override
        assert decision.reason == reason
        if outcome == DecisionOutcome.APPROVED:
            final = edited if is_override else suggestion.payload
            assert decision.final_payload == final
            assert suggestion.final_payload == final

        # ...and the audit trail says the same, as the reviewer.
        (event,) = _decision_events(pk)
        assert (event.actor_type, event.actor_id, event.actor_label) == (
            "user",
            str(reviewer.pk),
            reviewer.username,
        )
        assert event.data["outcome"] == outcome
        assert event.data["to_status"] == status
        assert event.data["is_override"] is is_override
        assert event.data["reason"] == reason
    assert AuditEvent.objects.filter(action=AuditAction.DECISION_RECORDED).count() == 5
    assert not AuditEvent.objects.filter(action=AuditAction.DECISION_REFUSED).exists()


def test_two_reviewers_claim_at_once_and_cannot_decide_each_others_item(
    pages: Pages, capability: Capability, make_reviewer: Callable[..., Any]
) -> None:
    _submit_five(capability)
    rita = make_reviewer(capability, username="rita")
    ray = make_reviewer(capability, username="ray")
    page_rita, page_ray = pages.new(), pages.new()
    log_in(page_rita, "rita")
    log_in(page_ray, "ray")

    # Both press Claim next before either answer comes back.
    page_rita.get_by_role("button", name="Claim next").click()
    page_ray.get_by_role("button", name="Claim next").click()
    for page in (page_rita, page_ray):
        expect(page).to_have_url(REVIEW_URL)
        expect(page.locator(".claim-state")).to_contain_text("You hold this suggestion")
    rita_pk, ray_pk = review_pk(page_rita), review_pk(page_ray)
    assert rita_pk != ray_pk
    assert Suggestion.objects.get(pk=rita_pk).claimed_by_id == rita.pk
    assert Suggestion.objects.get(pk=ray_pk).claimed_by_id == ray.pk
    claims = AuditEvent.objects.filter(action=AuditAction.SUGGESTION_CLAIMED)
    assert sorted((e.subject_id, e.actor_label) for e in claims) == sorted(
        [(rita_pk, "rita"), (ray_pk, "ray")]
    )

    def snapshot() -> tuple[Any, ...]:
        return (
            sorted(
                Suggestion.objects.values_list("pk", "status", "claimed_by", "claim_expires_at")
            ),
            list(Decision.objects.values_list("pk", flat=True)),
            AuditEvent.objects.count(),
        )

    before = snapshot()

    # Ray opens Rita's item: the page says who holds it, and its decision buttons are off.
    page_ray.goto(f"/suggestions/{rita_pk}/")
    expect(page_ray.locator(".claim-state")).to_contain_text("Claimed by rita")
    expect(page_ray.locator("#decide-explanation")).to_contain_text(
        "rita is reviewing this suggestion"
    )
    approve_button = page_ray.locator("#approve-form").get_by_role(
        "button", name="Approve", exact=True
    )
    expect(approve_button).to_be_disabled()

    # A page that was loaded before Rita's claim still has live buttons: approving from it is
    # refused by the server, with the reason on the page.
    page_ray.evaluate(
        "document.querySelectorAll('fieldset[disabled]').forEach(f => { f.disabled = false; })"
    )
    approve_button.click()
    alert = page_ray.get_by_role("alert").filter(has_text="Nothing was changed")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("rita is reviewing this suggestion")
    expect(page_ray).to_have_url(f"{pages.base_url}/suggestions/{rita_pk}/")

    assert snapshot() == before
    assert Suggestion.objects.get(pk=rita_pk).status == SuggestionStatus.PENDING_REVIEW
    assert not Decision.objects.exists()


HOSTILE_SCRIPT = "<script>alert(1)</script>"
HOSTILE_IMAGE = "<img src=x onerror=alert(1)>"
HOSTILE_URL = "javascript:alert(1)"
UNBROKEN = "W" * 5000


def _assert_inert(page: Page, pages: Pages, texts: list[str]) -> None:
    """The hostile strings are on the page as text: visible, not markup, not run."""
    for text in texts:
        expect(page.get_by_text(text).first).to_be_visible()
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("a[href^='javascript:' i]").count() == 0
    assert not page.evaluate("[...document.scripts].some(s => s.textContent.includes('alert(1)'))")
    assert pages.dialogs == []
    assert fits_viewport(page), (
        f"{page.url} is wider than the window: "
        f"{page.evaluate('document.documentElement.scrollWidth')}px"
    )


def test_a_hostile_payload_renders_as_inert_text(
    pages: Pages, capability: Capability, reviewer: Any
) -> None:
    client = ApiClientFactory.create(capabilities=[capability])
    # The queue shows the external id and the model, not the payload: they carry the markup
    # there, the external id as one unbroken string as long as the field allows.
    queue_external_id = HOSTILE_SCRIPT + "W" * (200 - len(HOSTILE_SCRIPT))
    suggestion = submit(
        client,
        capability,
        external_id=queue_external_id,
        model=ModelInfo(HOSTILE_IMAGE, HOSTILE_URL, "openai"),
        payload={
            "note": HOSTILE_SCRIPT,
            "image": HOSTILE_IMAGE,
            "link": HOSTILE_URL,
            "blob": UNBROKEN,
        },
    )
    page = pages.new()
    log_in(page, reviewer.username)

    page.goto("/")
    _assert_inert(page, pages, [queue_external_id, HOSTILE_IMAGE, HOSTILE_URL])

    page.goto(f"/suggestions/{suggestion.pk}/")
    _assert_inert(page, pages, [HOSTILE_SCRIPT, HOSTILE_IMAGE, HOSTILE_URL, UNBROKEN])

    page.goto(f"/suggestions/{suggestion.pk}/edit/")
    expect(page.get_by_role("heading", name="Edit then approve")).to_be_visible()
    payload_text = page.locator("textarea[name='payload']").input_value()
    assert json.loads(payload_text)["note"] == HOSTILE_SCRIPT
    _assert_inert(page, pages, [HOSTILE_SCRIPT, HOSTILE_IMAGE, HOSTILE_URL, UNBROKEN])


def test_screenshots_of_the_main_pages(pages: Pages, make_reviewer: Callable[..., Any]) -> None:
    """Writes tests/screenshots/*.png (shown in the README) from a small, realistic queue."""
    manager = UserFactory(username="maya")
    capability = CapabilityFactory(key="refunds.issue", name="Issue a refund", owner=manager)
    moderation = CapabilityFactory(key="content.moderate", name="Moderate a comment", owner=manager)
    reviewer = make_reviewer(capability, moderation, username="rita")
    colleague = make_reviewer(capability, moderation, username="ray")
    client = ApiClientFactory.create(capabilities=[capability, moderation], name="support-bot")
    refunds = [
        submit(
            client,
            capability,
            confidence=confidence,
            external_id=f"ticket-88{index}",
            payload={"amount": amount, "currency": "EUR", "order": f"A-10{index}"},
            prompt="Refund the customer if the parcel never arrived.",
        )
        for index, (confidence, amount) in enumerate(
            [(0.71, "120.00"), (0.64, "35.50"), (0.58, "310.00"), (0.83, "12.99")], start=1
        )
    ]
    for index, confidence in enumerate([0.55, 0.47], start=1):
        submit(
            client,
            moderation,
            confidence=confidence,
            external_id=f"comment-40{index}",
            payload={"comment": f"c-40{index}", "action": "hide", "rule": "spam"},
            model=ModelInfo("claude-sonnet", "2025-05", "anthropic"),
        )
    suggestion_claim(user=colleague, suggestion_id=refunds[1].pk)
    decision_record(
        user=colleague,
        suggestion_id=refunds[1].pk,
        outcome=DecisionOutcome.REJECTED,
        reason="Already refunded on ticket-870.",
    )
    role_grant(user=manager, role="manager", capabilities=[capability], actor=Actor.system("seed"))
    auditor = UserFactory(username="ada")
    role_grant(user=auditor, role="auditor", actor=Actor.system("seed"))
    SCREENSHOTS.mkdir(exist_ok=True)

    page = pages.new()
    log_in(page, reviewer.username)
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
    page.screenshot(path=SCREENSHOTS / "queue.png")
    page.get_by_role("button", name="Claim next").click()
    expect(page.locator(".claim-state")).to_contain_text("You hold this suggestion")
    page.screenshot(path=SCREENSHOTS / "review.png")

    page = pages.new()
    log_in(page, manager.username)
    page.goto(f"/admin/capabilities/capability/{capability.pk}/change/")
    expect(page.get_by_text(capability.key).first).to_be_visible()
    page.screenshot(path=SCREENSHOTS / "capability-admin.png")

    page = pages.new()
    log_in(page, auditor.username)
    page.goto("/audit/")
    expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    expect(page.locator("main tbody").get_by_text("Decision recorded").first).to_be_visible()
    page.screenshot(path=SCREENSHOTS / "audit.png")

    for name in ("queue", "review", "capability-admin", "audit"):
        assert (SCREENSHOTS / f"{name}.png").stat().st_size > 10_000
