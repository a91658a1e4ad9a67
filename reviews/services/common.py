"""What every review service shares: its errors, the row lock, and the work a decision or an
execution starts."""

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

from reviews.models import OutboxKind, Suggestion
from reviews.services.outbox import outbox_add, outbox_add_many
from reviews.services.webhooks import (
    EVENT_DECIDED,
    EVENT_EXECUTED,
    webhook_schedule,
    webhooks_schedule,
)

# What PostgreSQL cannot store in a text or JSON value: NUL, and surrogates with no pair.
_UNSTORABLE_CHARACTERS = re.compile("[\x00\ud800-\udfff]")


def storable_text(text: str) -> bool:
    """Can ``text`` be stored as it is? A value that cannot would fail its insert."""
    return not _UNSTORABLE_CHARACTERS.search(text)


class ReviewConflict(Exception):
    """The suggestion is no longer in a state that allows this action; nothing was changed."""


class AlreadyDecided(ReviewConflict):
    pass


class ClaimedByOther(ReviewConflict):
    pass


class DecisionRefused(ReviewConflict):
    """A decision rule forbids it (four eyes, one's own submission); the refusal is audited."""


def claim_live(suggestion: Suggestion, now: dt.datetime) -> bool:
    """Does someone hold ``suggestion`` at ``now``?"""
    return suggestion.claim_expires_at is not None and suggestion.claim_expires_at > now


def lock_suggestion(suggestion_id: Any) -> Suggestion:
    """The suggestion, locked until the transaction ends (with what the services read of it)."""
    return (
        Suggestion.objects.select_for_update(of=("self",))
        .select_related("capability", "policy", "api_client")
        .get(pk=suggestion_id)
    )


def after_approval(suggestion: Suggestion) -> None:
    """Start what an approval sets off, in the approving transaction: the capability's handler
    runs once, through the outbox, so a crash after the commit cannot lose it."""
    outbox_add(kind=OutboxKind.EXECUTE, ref=str(suggestion.pk))


def after_final_decision(suggestion: Suggestion) -> None:
    """Tell the submitter that ``suggestion`` is decided for good (approved, rejected, or so
    routed by its policy), in the deciding transaction: a ``suggestion.decided`` webhook to its
    ``callback_url``, if it has one, carried by the outbox."""
    webhook_schedule(suggestion=suggestion, event_type=EVENT_DECIDED)


def after_approvals(suggestions: Sequence[Suggestion]) -> None:
    """``after_approval`` for many suggestions, written together (a batch's)."""
    outbox_add_many(kind=OutboxKind.EXECUTE, refs=[str(s.pk) for s in suggestions])


def after_final_decisions(suggestions: Sequence[Suggestion]) -> None:
    """``after_final_decision`` for many suggestions, written together (a batch's)."""
    webhooks_schedule(suggestions=suggestions, event_type=EVENT_DECIDED)


def after_execution(suggestion: Suggestion) -> None:
    """Tell the submitter that the execution of ``suggestion`` has finished (succeeded, or
    failed with no retry left), in the transaction that records it: a ``suggestion.executed``
    webhook, as ``after_final_decision`` does."""
    webhook_schedule(suggestion=suggestion, event_type=EVENT_EXECUTED)
