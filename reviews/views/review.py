"""One suggestion: the review page, its timeline, claiming, deciding, and edit-then-approve.

Each view loads what it shows through a selector, which answers 404 for what the user may not
see; a change is one service call. The services check permission and state again under a row
lock, so what a page showed may be stale by the time a button is pressed: a conflict (decided
meanwhile, claimed by someone else) becomes a message on the review page, never an error page.
"""

import datetime as dt
import hashlib
import math
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.formats import time_format
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from audit.permissions import can_read_audit_trail
from audit.selectors import audit_events_for
from capabilities.schemas import schema_errors
from reviews.diffing import payload_changes, payload_line_diff, pretty_json
from reviews.forms import ApproveForm, EscalateForm, PayloadEditForm, RejectForm
from reviews.models import (
    DecisionOutcome,
    Suggestion,
    SuggestionStatus,
)
from reviews.permissions import (
    OWNER_LEVEL,
    REVIEWERS_LEVEL,
    SENIOR_LEVEL,
    approvals_of,
    approvers_of,
    can_decide_suggestion,
    escalated_by,
    submitted_by,
)
from reviews.selectors import (
    access_suggestion,
    similar_decisions,
    suggestion_with_history,
)
from reviews.services import (
    ReviewConflict,
    decision_record,
    suggestion_claim,
    suggestion_claim_next,
    suggestion_release,
)
from reviews.timeline import suggestion_timeline

_DONE = {
    DecisionOutcome.APPROVED: "Approved",
    DecisionOutcome.REJECTED: "Rejected",
    DecisionOutcome.ESCALATED: "Escalated",
}


# --- One suggestion ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewState:
    """What the current user may do with a suggestion right now, and why not.

    ``may_decide`` follows the same rules as the services (status, permission, not one's own
    escalation); the claim is separate, because someone else's claim only blocks for a while.
    """

    may_decide: bool
    holder: Any | None
    held_by_me: bool
    explanation: str
    # A decision rule (own submission, a second approval by the same person) says no: the
    # service refuses it and audits the refusal, so the pages let such a request through.
    refused_by_rule: bool = False

    @property
    def held_by_other(self) -> bool:
        return self.holder is not None and not self.held_by_me

    @property
    def can_act(self) -> bool:
        return self.may_decide and not self.held_by_other


def _review_state(user: Any, suggestion: Suggestion, now: dt.datetime) -> ReviewState:
    live = suggestion.claim_expires_at is not None and suggestion.claim_expires_at > now
    holder = suggestion.claimed_by if suggestion.claimed_by_id is not None and live else None
    held_by_me = holder is not None and holder.pk == user.pk
    explanation = ""
    refused_by_rule = False
    may_decide = can_decide_suggestion(user, suggestion)
    if may_decide:
        pass
    elif suggestion.is_open and submitted_by(user, suggestion):
        refused_by_rule = True
        explanation = "You submitted this suggestion: someone else must decide it."
    elif suggestion.is_open and user.pk in approvers_of(suggestion, suggestion.proposal):
        refused_by_rule = True
        explanation = (
            "You approved this suggestion; its policy needs a second, different person to "
            "approve it too."
        )
    elif not suggestion.is_open:
        explanation = (
            f"This suggestion was {suggestion.get_status_display().lower()}; "
            "it can no longer be changed."
        )
    elif suggestion.status == SuggestionStatus.PENDING_REVIEW:
        explanation = "You may read this suggestion but not decide it."
    elif user.pk in escalated_by(suggestion):
        explanation = "You escalated this suggestion: another senior reviewer decides it."
    else:
        explanation = (
            "This suggestion was escalated: only reviewers who resolve escalations for "
            f"{suggestion.capability.key} can decide it."
        )
    if may_decide and holder is not None and not held_by_me:
        explanation = (
            f"{holder.get_username()} is reviewing this suggestion (claim held until "
            f"{_clock(suggestion.claim_expires_at)}). You can decide it once they release it "
            "or their claim expires."
        )
    return ReviewState(
        may_decide=may_decide,
        holder=holder,
        held_by_me=held_by_me,
        explanation=explanation,
        refused_by_rule=refused_by_rule,
    )


@login_required
@require_safe
def review(request: HttpRequest, pk: UUID) -> HttpResponse:
    """Everything a reviewer needs to decide one suggestion, and the controls to do it."""
    suggestion = access_suggestion(request.user, pk)
    return _render_review(request, suggestion)


@login_required
@require_safe
def timeline(request: HttpRequest, pk: UUID) -> HttpResponse:
    """Every recorded step of one suggestion, in chain order. Read-only: anyone who may read
    the suggestion (its reviewers, and auditors) sees it; nothing on it decides anything."""
    suggestion = access_suggestion(request.user, pk)
    return render(
        request,
        "reviews/timeline.html",
        {
            "suggestion": suggestion,
            "capability": suggestion.capability,
            "entries": suggestion_timeline(suggestion),
            "reads_audit_trail": can_read_audit_trail(request.user),
        },
    )


@login_required
@require_POST
def claim(request: HttpRequest, pk: UUID) -> HttpResponse:
    suggestion = access_suggestion(request.user, pk)
    try:
        suggestion = suggestion_claim(user=request.user, suggestion_id=suggestion.pk)
    except PermissionDenied:
        raise Http404("No such suggestion.") from None
    except ReviewConflict as exc:
        return _conflict(request, suggestion, "Not claimed", exc)
    messages.success(
        request, f"You hold this suggestion until {_clock(suggestion.claim_expires_at)}."
    )
    return redirect("reviews:review", pk=suggestion.pk)


@login_required
@require_POST
def release(request: HttpRequest, pk: UUID) -> HttpResponse:
    suggestion = access_suggestion(request.user, pk)
    if suggestion.claimed_by_id != request.user.pk:
        messages.info(request, "You do not hold this suggestion; nothing to release.")
        return redirect("reviews:review", pk=suggestion.pk)
    suggestion_release(user=request.user, suggestion_id=suggestion.pk)
    messages.info(request, "Released: the suggestion is back in the queue.")
    return redirect("reviews:queue")


@login_required
@require_POST
def approve(request: HttpRequest, pk: UUID) -> HttpResponse:
    return _decide(request, pk, DecisionOutcome.APPROVED, ApproveForm, "approve_form")


@login_required
@require_POST
def reject(request: HttpRequest, pk: UUID) -> HttpResponse:
    return _decide(request, pk, DecisionOutcome.REJECTED, RejectForm, "reject_form")


@login_required
@require_POST
def escalate(request: HttpRequest, pk: UUID) -> HttpResponse:
    return _decide(request, pk, DecisionOutcome.ESCALATED, EscalateForm, "escalate_form")


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def edit(request: HttpRequest, pk: UUID) -> HttpResponse:
    """Edit the payload as JSON, preview the diff, then approve it as a human override.

    ``action=preview`` (the default) only validates and shows the diff; ``action=confirm``
    records the approval. An edit that changes nothing is recorded as a plain approval.
    """
    suggestion = access_suggestion(request.user, pk)
    state, refusal = _precheck(request, suggestion)
    if refusal is not None:
        return refusal
    if request.method != "POST":
        form = PayloadEditForm(initial={"payload": pretty_json(suggestion.proposal)})
        return _render_edit(request, suggestion, state, form)
    form = PayloadEditForm(request.POST)
    if not form.is_valid():
        return _render_edit(request, suggestion, state, form)
    edited = form.cleaned_data["payload"]
    # Checked at preview too, so the reviewer sees what the schema refuses before confirming.
    for error in schema_errors(suggestion.capability.payload_schema, edited):
        form.add_error("payload", error)
    if not form.is_valid():
        return _render_edit(request, suggestion, state, form)
    changed = bool(payload_changes(suggestion.proposal, edited))
    if request.POST.get("action") != "confirm":
        return _render_edit(request, suggestion, state, form, preview=edited, changed=changed)
    previewed = request.POST.get("previewed", "")
    if previewed and previewed != _digest(edited):
        # The text was changed after the preview: the diff on screen is not what would be
        # approved, so show the real one and ask again.
        messages.warning(request, "The payload changed since the preview: check the changes again.")
        return _render_edit(request, suggestion, state, form, preview=edited, changed=changed)
    try:
        decision_record(
            user=request.user,
            suggestion_id=suggestion.pk,
            outcome=DecisionOutcome.APPROVED,
            reason=form.cleaned_data["reason"],
            final_payload=edited if changed else None,
        )
    except PermissionDenied:
        raise Http404("No such suggestion.") from None
    except ReviewConflict as exc:
        return _conflict(request, suggestion, "Your decision was not recorded", exc)
    except ValidationError as exc:
        _add_service_errors(form, exc, {"final_payload": "payload"})
        return _render_edit(request, suggestion, state, form)
    done = "Approved with your changes" if changed else "Approved (no changes)"
    messages.success(request, f"{done}: {suggestion}.")
    return _open_next(request)


# --- Helpers ----------------------------------------------------------------------------------


def _decide(
    request: HttpRequest,
    pk: UUID,
    outcome: DecisionOutcome,
    form_class: type[Form],
    form_name: str,
) -> HttpResponse:
    suggestion = access_suggestion(request.user, pk)
    _state, refusal = _precheck(request, suggestion)
    if refusal is not None:
        return refusal
    form = form_class(request.POST)
    if not form.is_valid():
        return _render_review(request, suggestion, {form_name: form})
    try:
        decision_record(
            user=request.user,
            suggestion_id=suggestion.pk,
            outcome=outcome,
            reason=form.cleaned_data["reason"],
        )
    except PermissionDenied:
        raise Http404("No such suggestion.") from None
    except ReviewConflict as exc:
        return _conflict(request, suggestion, "Your decision was not recorded", exc)
    except ValidationError as exc:
        _add_service_errors(form, exc, {})
        return _render_review(request, suggestion, {form_name: form})
    messages.success(request, f"{_DONE[outcome]}: {suggestion}.")
    return _open_next(request)


def _precheck(
    request: HttpRequest, suggestion: Suggestion
) -> tuple[ReviewState, HttpResponse | None]:
    """Refuse early what the service would refuse, before validating a form for nothing.

    The service checks again under its lock; this only spares the reviewer a form error on an
    item that is decided or held by someone else. A user who may read but not decide gets 404.
    """
    state = _review_state(request.user, suggestion, timezone.now())
    if not suggestion.is_open:
        status = suggestion.get_status_display().lower()
        messages.error(request, f"Nothing was changed: this suggestion was already {status}.")
        return state, redirect("reviews:review", pk=suggestion.pk)
    if not state.may_decide and not state.refused_by_rule:
        raise Http404("No such suggestion.")
    if state.held_by_other:
        messages.error(request, f"Nothing was changed: {state.explanation}")
        return state, redirect("reviews:review", pk=suggestion.pk)
    return state, None


def _open_next(request: HttpRequest) -> HttpResponse:
    """After a decision, go straight on to the next item, or back to the queue if none waits."""
    following = suggestion_claim_next(user=request.user)
    if following is None:
        messages.info(request, "Nothing else is waiting for you.")
        return redirect("reviews:queue")
    return redirect("reviews:review", pk=following.pk)


def _conflict(
    request: HttpRequest, suggestion: Suggestion, what: str, exc: ReviewConflict
) -> HttpResponse:
    messages.error(request, f"{what}: {exc}")
    return redirect("reviews:review", pk=suggestion.pk)


def _add_service_errors(form: Form, exc: ValidationError, field_names: dict[str, str]) -> None:
    """Show a service's ``ValidationError`` on the form, on the field it names if shown."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for name, errors in exc.message_dict.items():
        field = field_names.get(name, name)
        form.add_error(field if field in form.fields else None, errors)


def _render_review(
    request: HttpRequest, suggestion: Suggestion, bound_forms: dict[str, Form] | None = None
) -> HttpResponse:
    # Loaded once for the page: the decision rules, the history and the webhooks all read them.
    suggestion = suggestion_with_history(suggestion)
    decisions = list(suggestion.decisions.all())
    now = timezone.now()
    state = _review_state(request.user, suggestion, now)
    forms: dict[str, Form] = {
        "approve_form": ApproveForm(),
        "reject_form": RejectForm(),
        "escalate_form": EscalateForm(),
        **(bound_forms or {}),
    }
    override_diff = (
        payload_line_diff(suggestion.payload, suggestion.final_payload)
        if suggestion.is_override
        else None
    )
    return render(
        request,
        "reviews/review.html",
        {
            "suggestion": suggestion,
            "capability": suggestion.capability,
            "policy": suggestion.policy,
            "decisions": decisions,
            "events": audit_events_for(subject_type="suggestion", subject_id=str(suggestion.pk)),
            "state": state,
            "override_diff": override_diff,
            "approvals": _approvals(suggestion),
            "similar": similar_decisions(suggestion),
            "sla_clock": _sla_clock(suggestion, now),
            "confidence_meaning": _confidence_meaning(suggestion),
            **forms,
        },
    )


# Who an open suggestion waits for, by its ``escalation_level``.
_RUNGS = {REVIEWERS_LEVEL: "reviewers", SENIOR_LEVEL: "senior reviewers", OWNER_LEVEL: "owner"}


@dataclass(frozen=True)
class SlaClock:
    text: str  # "Due in 12 min", "Overdue by 3 min"
    rung: str
    state: str  # ``Suggestion.sla_state``, for styling


def _sla_clock(suggestion: Suggestion, now: dt.datetime) -> SlaClock | None:
    """The time left on an open suggestion's deadline at its rung; None without a deadline."""
    if suggestion.due_at is None or not suggestion.is_open:
        return None
    seconds = (suggestion.due_at - now).total_seconds()
    # Whole minutes, rounded so the clock never reads "Due in 0 min" or "Overdue by 0 min".
    if seconds > 0:
        text = f"Due in {_duration(math.ceil(seconds / 60))}"
    else:
        text = f"Overdue by {_duration(max(1, math.floor(-seconds / 60)))}"
    rung = _RUNGS.get(suggestion.escalation_level, _RUNGS[OWNER_LEVEL])
    return SlaClock(text=text, rung=rung, state=suggestion.sla_state or "on_time")


def _duration(minutes: int) -> str:
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


def _confidence_meaning(suggestion: Suggestion) -> str:
    """The confidence read against the thresholds of the policy version that routed it."""
    policy = suggestion.policy
    approve_at = f"{policy.auto_approve_at:.2f}"
    reject_below = f"{policy.auto_reject_below:.2f}"
    confidence = f"{suggestion.confidence:.2f}"
    # The same comparisons as ``capabilities.policies.route_by_confidence``.
    if suggestion.confidence >= float(policy.auto_approve_at):
        return f"{confidence} — at or above auto-approve at {approve_at}: approved without review"
    if suggestion.confidence < float(policy.auto_reject_below):
        return f"{confidence} — below auto-reject at {reject_below}: rejected without review"
    return (
        f"{confidence} — between auto-reject below {reject_below} and auto-approve at "
        f"{approve_at}: a person decides"
    )


def _render_edit(
    request: HttpRequest,
    suggestion: Suggestion,
    state: ReviewState,
    form: PayloadEditForm,
    *,
    preview: dict[str, Any] | None = None,
    changed: bool = False,
) -> HttpResponse:
    return render(
        request,
        "reviews/edit.html",
        {
            "suggestion": suggestion,
            "state": state,
            "form": form,
            "preview": preview is not None,
            "changed": changed,
            "diff": payload_line_diff(suggestion.proposal, preview) if preview is not None else [],
            "previewed": _digest(preview) if preview is not None else "",
        },
    )


def _approvals(suggestion: Suggestion) -> dict[str, Any] | None:
    """Four-eyes progress of an open suggestion: who approved its proposal, and how many must
    (the approvals the decision rules count: ``approvals_of``)."""
    required = suggestion.policy.required_approvals
    if required < 2 or not suggestion.is_open:
        return None
    names = [
        d.reviewer.get_username()  # type: ignore[union-attr]  # approvals are by people
        for d in approvals_of(suggestion, suggestion.proposal)
    ]
    return {"given": len(names), "required": required, "by": names}


def _digest(payload: dict[str, Any]) -> str:
    """A fingerprint of a previewed payload, to tell whether the confirmed one is the same."""
    return hashlib.sha256(pretty_json(payload).encode()).hexdigest()


def _clock(moment: dt.datetime | None) -> str:
    if moment is None:
        return ""
    clock = time_format(timezone.localtime(moment), "H:i")
    return f"{clock} {timezone.get_current_timezone_name()}"
