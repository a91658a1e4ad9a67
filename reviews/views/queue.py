"""The queue: what waits for the reviewer, and claiming the next item."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from reviews.selectors import (
    queue_counts,
    suggestion_queue,
)
from reviews.services import (
    suggestion_claim_next,
)

QUEUE_PAGE_SIZE = 50

# --- The queue --------------------------------------------------------------------------------


@login_required
@require_safe
def queue(request: HttpRequest) -> HttpResponse:
    """Open suggestions the user may work on, oldest first, 50 a page, with counts on top."""
    paginator = Paginator(suggestion_queue(user=request.user), QUEUE_PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    counts = queue_counts(user=request.user)
    return render(
        request,
        "reviews/queue.html",
        {
            "page": page,
            "counts": counts,
            "waiting": sum(count.waiting for count in counts),
            "oldest": min((count.oldest for count in counts), default=None),
            "now": timezone.now(),
        },
    )


@login_required
@require_POST
def claim_next(request: HttpRequest) -> HttpResponse:
    """Claim the oldest item nobody holds and open it."""
    suggestion = suggestion_claim_next(user=request.user)
    if suggestion is None:
        messages.info(request, "Nothing is waiting for you.")
        return redirect("reviews:queue")
    return redirect("reviews:review", pk=suggestion.pk)
