"""What every review service shares: its errors, the row lock, and the work an approval starts."""

from typing import Any

from reviews.models import OutboxKind, Suggestion
from reviews.services.outbox import outbox_add


class ReviewConflict(Exception):
    """The suggestion is no longer in a state that allows this action; nothing was changed."""


class AlreadyDecided(ReviewConflict):
    pass


class ClaimedByOther(ReviewConflict):
    pass


class DecisionRefused(ReviewConflict):
    """A decision rule forbids it (four eyes, one's own submission); the refusal is audited."""


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
