"""Pages for managers, administrators and auditors: failed executions, clients' retries."""

from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST, require_safe

from audit.permissions import can_read_audit_trail
from capabilities.permissions import can_administer_capabilities, managed_capabilities
from reviews.models import (
    ExecutionStatus,
)
from reviews.selectors import (
    access_managed_suggestion,
    failed_executions_of,
    submission_retry_counts,
)
from reviews.services import (
    ReviewConflict,
    execution_retry,
)
from reviews.views.queue import QUEUE_PAGE_SIZE

# --- Failed executions (managers) ------------------------------------------------------------


@login_required
@require_safe
def failed_executions(request: HttpRequest) -> HttpResponse:
    """Executions of the capabilities the user manages that ran out of attempts, each with a
    button to try it again. A user who manages no capability gets 404."""
    if not managed_capabilities(request.user).exists():
        raise Http404("No such page.")
    paginator = Paginator(failed_executions_of(user=request.user), QUEUE_PAGE_SIZE)
    return render(
        request,
        "reviews/failed_executions.html",
        {
            "page": paginator.get_page(request.GET.get("page")),
            "max_attempts": settings.SIGNOFF_EXECUTION_MAX_ATTEMPTS,
        },
    )


@login_required
@require_POST
def retry_execution(request: HttpRequest, pk: UUID) -> HttpResponse:
    """Try a failed execution again now (audited); back to the list of failed executions."""
    suggestion = access_managed_suggestion(request.user, pk)
    try:
        suggestion = execution_retry(user=request.user, suggestion_id=suggestion.pk)
    except PermissionDenied:
        raise Http404("No such suggestion.") from None
    except ReviewConflict as exc:
        messages.error(request, f"Not retried: {exc}")
        return redirect("reviews:failed_executions")
    # With jobs run in-process the attempt has already been made; with workers it is queued.
    suggestion.refresh_from_db()
    if suggestion.execution_status == ExecutionStatus.SUCCEEDED:
        messages.success(request, f"Retried: {suggestion} succeeded.")
    elif suggestion.execution_next_attempt_at is None:
        messages.error(request, f"Retried: {suggestion} failed again: {suggestion.execution_error}")
    else:
        messages.success(request, f"Retry queued: {suggestion} will be tried again shortly.")
    return redirect("reviews:failed_executions")


# --- Retries by client (administrators, auditors) ----------------------------------------------


@login_required
@require_safe
def submission_retries(request: HttpRequest) -> HttpResponse:
    """Per API client and capability, the retries clients declared and the answers replayed to
    a repeated Idempotency-Key. For administrators and auditors; anyone else gets 404."""
    if not (can_administer_capabilities(request.user) or can_read_audit_trail(request.user)):
        raise Http404("No such page.")
    return render(
        request,
        "reviews/retries.html",
        {
            "counts": submission_retry_counts(),
            "kept_hours": settings.SIGNOFF_IDEMPOTENCY_TTL_SECONDS // 3600,
        },
    )
