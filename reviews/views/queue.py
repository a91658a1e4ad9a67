"""The queue: what waits for the reviewer, and claiming the next item."""

import datetime as dt
import uuid
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from reviews.forms import QueueCountsForm, QueueFilterForm
from reviews.models import OPEN_STATUSES
from reviews.selectors import (
    QueueScope,
    queue_counts,
    queue_scope,
    suggestion_queue_page,
    suggestions_in_queue_scope,
)
from reviews.services import (
    suggestion_claim_next,
)

QUEUE_PAGE_SIZE = 50
QUEUE_TAKEN_MAX_IDS = 100

# --- The queue --------------------------------------------------------------------------------


@login_required
@require_safe
def queue(request: HttpRequest) -> HttpResponse:
    """Open suggestions the user may decide, filtered and sorted as asked (soonest deadline
    first by default), 50 a page, with the counts on top. Invalid filters are shown as form
    errors, with no rows."""
    now = timezone.now()
    scope = queue_scope(user=request.user)  # read once for the filters, the rows and the counts
    form = QueueFilterForm(request.GET, capability_keys=scope.capability_keys)
    page = None
    if form.is_valid():
        page = suggestion_queue_page(
            user=request.user,
            filters=form.queue_filters(),
            after=form.page_cursor(),
            size=QUEUE_PAGE_SIZE,
            scope=scope,
        )
    counts = _counts_context(request.user, since=now, scope=scope)
    return render(request, "reviews/queue.html", {"form": form, "page": page, "now": now, **counts})


@login_required
@require_safe
def queue_counts_fragment(request: HttpRequest) -> HttpResponse:
    """The counts on top of the queue, alone, for the page to poll; ``since`` (when the page
    was opened) counts the items that arrived after it."""
    form = QueueCountsForm(request.GET)
    since = form.cleaned_data["since"] if form.is_valid() else None
    return render(request, "reviews/queue.html#counts", _counts_context(request.user, since))


@login_required
@require_safe
def queue_taken(request: HttpRequest) -> HttpResponse:
    """Which of the rows the queue page shows (``ids``: comma-separated, at most 100) are no
    longer there for the user: decided, or held by someone else's live claim. Only suggestions
    their queue may show are reported; others are left out, as if they did not exist."""
    raw = [part.strip() for part in request.GET.get("ids", "").split(",") if part.strip()]
    if len(raw) > QUEUE_TAKEN_MAX_IDS:
        return HttpResponseBadRequest(f"At most {QUEUE_TAKEN_MAX_IDS} ids.")
    try:
        ids = {uuid.UUID(part) for part in raw}
    except ValueError:
        return HttpResponseBadRequest("ids must be comma-separated UUIDs.")
    now = timezone.now()
    taken: dict[str, str] = {}
    if ids:
        # The rows a queue page may show, an owner's escalations included.
        scope = queue_scope(user=request.user)
        suggestions = suggestions_in_queue_scope(scope=scope).filter(pk__in=ids)
        for suggestion in suggestions.select_related("claimed_by"):
            if suggestion.status not in OPEN_STATUSES:
                taken[str(suggestion.pk)] = "decided"
            elif (
                (holder := suggestion.claimed_by) is not None
                and holder.pk != request.user.pk
                and suggestion.claim_expires_at is not None
                and suggestion.claim_expires_at > now
            ):
                taken[str(suggestion.pk)] = f"claimed by {holder.get_username()}"
    return JsonResponse({"taken": taken}, headers={"Cache-Control": "no-store"})


@login_required
@require_POST
def claim_next(request: HttpRequest) -> HttpResponse:
    """Claim the item the queue shows first that nobody holds, and open it."""
    suggestion = suggestion_claim_next(user=request.user)
    if suggestion is None:
        messages.info(request, "Nothing is waiting for you.")
        return redirect("reviews:queue")
    return redirect("reviews:review", pk=suggestion.pk)


def _counts_context(
    user: Any, since: dt.datetime | None, scope: QueueScope | None = None
) -> dict[str, Any]:
    counts = queue_counts(user=user, since=since, scope=scope)
    return {
        "counts": counts,
        "waiting": sum(count.waiting for count in counts),
        "oldest": min((count.oldest for count in counts), default=None),
        "due_soon": sum(count.due_soon for count in counts),
        "overdue": sum(count.overdue for count in counts),
        "new_items": sum(count.new for count in counts),
        "since": since,
    }
