"""The decision timeline of one suggestion: its audit events in chain order, told in words.

Each entry is built from one audit event, with the suggestion and its decisions for what the
event refers to but does not repeat (the stored prompt and context, an edit's final payload).
An action this module does not know, such as one added later, still gets an entry: its label
and its data as JSON. Everything here is plain text for the template to escape; AI-supplied
values (payload, prompt, context, model names, reasons) are never marked safe.
"""

import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.utils.dateparse import parse_datetime

from audit.models import AuditAction, AuditEvent
from audit.selectors import audit_events_for
from capabilities.policies import describe_route_reason
from reviews.diffing import payload_line_diff, pretty_json
from reviews.models import Decision, DecisionOutcome, Suggestion, SuggestionStatus

HASH_PREFIX = 12


@dataclass(frozen=True)
class Fact:
    """A labelled value, shown as text."""

    label: str
    value: str


@dataclass(frozen=True)
class Passage:
    """A block shown preformatted: a prompt, a context or payload as JSON, an error."""

    label: str
    text: str
    code: bool = True


@dataclass(frozen=True)
class Change:
    """One field an edit changed, as ``reviews.diffing.payload_changes`` recorded it."""

    path: str
    before: str
    after: str


@dataclass(frozen=True)
class TimelineEntry:
    """One audit event of the suggestion, ready to show."""

    sequence: int
    hash: str
    occurred_at: dt.datetime
    action: str
    kind: str
    headline: str
    actor_label: str
    actor_type: str
    facts: list[Fact] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    diff: list[tuple[str, str]] = field(default_factory=list)
    data_json: str = ""
    known: bool = True

    @property
    def hash_prefix(self) -> str:
        return self.hash[:HASH_PREFIX]


@dataclass
class _Draft:
    kind: str
    headline: str
    facts: list[Fact] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    diff: list[tuple[str, str]] = field(default_factory=list)


def suggestion_timeline(suggestion: Suggestion) -> list[TimelineEntry]:
    """Every audit event about ``suggestion``, oldest first, one entry each.

    Two queries whatever the number of events: the events, and the suggestion's decisions
    (for the final payload of an edit).
    """
    events = list(audit_events_for(subject_type="suggestion", subject_id=str(suggestion.pk)))
    decisions = {decision.pk: decision for decision in suggestion.decisions.all()}
    return [_entry(event, suggestion, decisions) for event in events]


def _entry(
    event: AuditEvent, suggestion: Suggestion, decisions: Mapping[int, Decision]
) -> TimelineEntry:
    data = event.data if isinstance(event.data, dict) else {"value": event.data}
    builder = _BUILDERS.get(event.action)
    if builder is not None:
        draft = builder(event, data, suggestion, decisions)
    else:
        draft = _Draft("other", _action_label(event.action))
    return TimelineEntry(
        sequence=event.sequence,
        hash=event.hash,
        occurred_at=event.occurred_at,
        action=event.action,
        kind=draft.kind,
        headline=draft.headline,
        actor_label=event.actor_label or event.get_actor_type_display(),
        actor_type=event.get_actor_type_display(),
        facts=draft.facts,
        passages=draft.passages,
        changes=draft.changes,
        diff=draft.diff,
        data_json=pretty_json(event.data),
        known=builder is not None,
    )


# --- One builder per action -------------------------------------------------------------------


def _received(
    event: AuditEvent, data: dict[str, Any], suggestion: Suggestion, _: Mapping[int, Decision]
) -> _Draft:
    model = _mapping(data.get("model"))
    usage = _mapping(data.get("usage"))
    model_text = (
        " ".join(str(part) for part in (model.get("name"), model.get("version")) if part)
        or suggestion.model_name
    )
    provider = model.get("provider") or suggestion.model_provider
    if provider:
        model_text += f" ({provider})"
    facts = [
        Fact("Client", event.actor_label or _text(None)),
        Fact("Model", model_text),
        Fact("Confidence", _text(data.get("confidence", suggestion.confidence))),
        Fact("External id", _text(data.get("external_id", suggestion.external_id))),
        Fact("Attempt", _text(data.get("attempt", suggestion.attempt))),
        Fact("Usage", _usage(usage)),
        Fact("Redactions", _redactions(data.get("redactions"))),
    ]
    passages = [
        Passage("Proposed payload", pretty_json(suggestion.payload)),
        Passage("Prompt (as stored, redacted)", suggestion.prompt or "(none)", code=False),
        Passage("Context (as stored, redacted)", pretty_json(suggestion.context)),
    ]
    return _Draft("received", f"Received from {event.actor_label}", facts, passages)


def _routed(
    event: AuditEvent, data: dict[str, Any], suggestion: Suggestion, _: Mapping[int, Decision]
) -> _Draft:
    status = str(data.get("status", ""))
    headline = {
        SuggestionStatus.PENDING_REVIEW: "Routed to a person for review",
        SuggestionStatus.AUTO_APPROVED: "Approved automatically by the policy",
        SuggestionStatus.AUTO_REJECTED: "Rejected automatically by the policy",
    }.get(status, f"Routed: {_status_label(status)}")  # type: ignore[call-overload]
    facts = [
        Fact("Status", _status_label(status)),
        Fact("Why", describe_route_reason(str(data.get("reason", suggestion.route_reason)))),
        Fact("Policy version", _text(data.get("policy_version"))),
        Fact("Auto-approve at", _text(data.get("auto_approve_at"))),
        Fact("Auto-reject below", _text(data.get("auto_reject_below"))),
        Fact("Confidence", _text(data.get("confidence", suggestion.confidence))),
    ]
    return _Draft("routed", headline, facts)


def _claimed(
    event: AuditEvent, data: dict[str, Any], _s: Suggestion, _d: Mapping[int, Decision]
) -> _Draft:
    until = data.get("claim_expires_at")
    return _Draft(
        "claimed",
        f"Claimed by {event.actor_label}",
        [Fact("Held until", _utc(until) if until else _text(None))],
    )


def _released(
    event: AuditEvent, _data: dict[str, Any], _s: Suggestion, _d: Mapping[int, Decision]
) -> _Draft:
    return _Draft("released", f"Released by {event.actor_label}: back in the queue")


def _decided(
    event: AuditEvent,
    data: dict[str, Any],
    suggestion: Suggestion,
    decisions: Mapping[int, Decision],
) -> _Draft:
    outcome = str(data.get("outcome", ""))
    override = data.get("is_override") is True
    outcome_label = _choice_label(DecisionOutcome, outcome)
    headline = f"{outcome_label} by {event.actor_label}"
    if override:
        headline += " with changes"
    facts = [
        Fact("Outcome", outcome_label),
        Fact(
            "Status",
            f"{_status_label(str(data.get('from_status', '')))} → "
            f"{_status_label(str(data.get('to_status', '')))}",
        ),
        Fact("Reason", str(data.get("reason") or "(none given)")),
        Fact("Human override", "yes: the payload was edited" if override else "no"),
        Fact("Policy version", _text(data.get("policy_version"))),
    ]
    raw_changes = data.get("changes")
    changes = [
        Change(
            path=str(change.get("path", "")),
            before=_json_value(change["before"]) if "before" in change else "(absent)",
            after=_json_value(change["after"]) if "after" in change else "(absent)",
        )
        for change in (raw_changes if isinstance(raw_changes, list) else [])
        if isinstance(change, dict)
    ]
    decision = decisions.get(data.get("decision_id"))  # type: ignore[arg-type]
    diff = (
        payload_line_diff(suggestion.payload, decision.final_payload)
        if override and decision is not None and decision.final_payload is not None
        else []
    )
    kind = f"decided-{outcome}" if outcome in DecisionOutcome.values else "decided"
    return _Draft(kind, headline, facts, changes=changes, diff=diff)


def _executed(
    event: AuditEvent, data: dict[str, Any], _s: Suggestion, _d: Mapping[int, Decision]
) -> _Draft:
    failed = event.action == AuditAction.EXECUTION_FAILED
    facts = [
        Fact("Attempt", _text(data.get("attempt"))),
        Fact("Duration", f"{data['duration_ms']} ms" if "duration_ms" in data else _text(None)),
    ]
    error = str(data.get("error") or "")
    passages = [Passage("Error", error, code=False)] if error else []
    headline = "Execution failed" if failed else "Executed: the approved action ran"
    return _Draft("execution-failed" if failed else "executed", headline, facts, passages)


_BUILDERS: dict[
    str,
    Callable[[AuditEvent, dict[str, Any], Suggestion, Mapping[int, Decision]], _Draft],
] = {
    AuditAction.SUGGESTION_RECEIVED: _received,
    AuditAction.SUGGESTION_ROUTED: _routed,
    AuditAction.SUGGESTION_CLAIMED: _claimed,
    AuditAction.SUGGESTION_RELEASED: _released,
    AuditAction.DECISION_RECORDED: _decided,
    AuditAction.EXECUTION_SUCCEEDED: _executed,
    AuditAction.EXECUTION_FAILED: _executed,
}


# --- Formatting -------------------------------------------------------------------------------


def _text(value: Any) -> str:
    """A recorded value as text: strings as they are, absent as a dash, the rest as JSON."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _json_value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _usage(usage: Mapping[str, Any]) -> str:
    parts = []
    if usage.get("input_tokens") is not None:
        parts.append(f"{usage['input_tokens']} input tokens")
    if usage.get("output_tokens") is not None:
        parts.append(f"{usage['output_tokens']} output tokens")
    if usage.get("cost") is not None:
        parts.append(f"cost {usage['cost']}")
    return ", ".join(parts) or "not reported"


def _redactions(counts: Any) -> str:
    if not isinstance(counts, dict) or not counts:
        return "none"
    return ", ".join(f"{kind}: {count}" for kind, count in sorted(counts.items()))


def _utc(value: Any) -> str:
    moment = parse_datetime(value) if isinstance(value, str) else None
    if moment is None:
        return _text(value)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _status_label(value: str) -> str:
    return _choice_label(SuggestionStatus, value)


def _choice_label(choices: Any, value: str) -> str:
    try:
        return str(choices(value).label)
    except ValueError:
        return value or "—"


def _action_label(action: str) -> str:
    """A readable label for an action this module does not know: ``webhook.delivered`` →
    ``Webhook delivered``."""
    try:
        return str(AuditAction(action).label)
    except ValueError:
        words = action.replace(".", " ").replace("_", " ").strip()
        return words[:1].upper() + words[1:] if words else "Event"
