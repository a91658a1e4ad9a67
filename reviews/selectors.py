"""Reads of suggestions for the pages and the API, permission-filtered at the source."""

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Count, Exists, Min, OuterRef, Q, QuerySet, Sum
from django.http import Http404

from capabilities.models import ApiClient, ApiToken, Capability
from capabilities.permissions import (
    can_manage_capability,
    can_view_suggestion,
    escalation_capabilities,
    managed_capabilities,
    reviewable_capabilities,
    token_is_live,
)
from reviews.models import (
    APPROVED_STATUSES,
    Decision,
    DecisionOutcome,
    ExecutionStatus,
    IdempotencyKey,
    Suggestion,
    SuggestionStatus,
)
from reviews.permissions import OWNER_LEVEL, decides_as_owner


def suggestions_decidable_by(*, user: Any) -> QuerySet[Suggestion]:
    """Open suggestions ``user`` may decide, as ``reviews.permissions.can_decide_suggestion``
    says, in one query: pending ones of capabilities they review, and escalated ones of
    capabilities they resolve escalations for or, once at the owner's rung of the ladder,
    own; except those they escalated themselves."""
    escalated_by_user = Decision.objects.filter(
        suggestion=OuterRef("pk"), outcome=DecisionOutcome.ESCALATED, reviewer=user
    )
    # An approval that did not close the suggestion waits for someone else's (four eyes).
    approved_by_user = Decision.objects.filter(
        suggestion=OuterRef("pk"),
        outcome=DecisionOutcome.APPROVED,
        is_final=False,
        reviewer=user,
        final_payload=OuterRef("final_payload"),
    )
    owned = (
        Q(capability__owner=user) | Q(capability__owner_group__in=user.groups.all())
        if user.is_active
        else Q(pk__in=[])
    )
    return (
        Suggestion.objects.filter(
            Q(status=SuggestionStatus.PENDING_REVIEW, capability__in=reviewable_capabilities(user))
            | Q(
                Q(status=SuggestionStatus.ESCALATED)
                & Q(
                    Q(capability__in=escalation_capabilities(user))
                    | Q(owned, escalation_level__gte=OWNER_LEVEL)
                )
                & ~Exists(escalated_by_user)
            )
        )
        .exclude(Exists(approved_by_user))
        .exclude(api_client__user=user)
    )


def suggestion_queue(*, user: Any) -> QuerySet[Suggestion]:
    """The queue page: suggestions ``user`` may decide, oldest first, with what the page shows."""
    return (
        suggestions_decidable_by(user=user)
        .select_related("capability", "policy", "claimed_by")
        .order_by("created_at", "id")
    )


@dataclass(frozen=True)
class QueueCount:
    capability_key: str
    waiting: int
    oldest: dt.datetime


def queue_counts(*, user: Any) -> list[QueueCount]:
    """How many open items wait per capability for ``user``, and since when. One query."""
    rows = (
        suggestion_queue(user=user)
        .order_by()
        .values("capability__key")
        .annotate(waiting=Count("id"), oldest=Min("created_at"))
        .order_by("capability__key")
    )
    return [QueueCount(r["capability__key"], r["waiting"], r["oldest"]) for r in rows]


def suggestion_list_for_client(
    *, client: ApiClient, status: str = "", capability: str = "", external_id: str = ""
) -> QuerySet[Suggestion]:
    """The client's own suggestions, newest first, optionally filtered."""
    return _newest_first(
        Suggestion.objects.filter(api_client=client), status, capability, external_id
    )


def suggestion_list_for_token(
    *, token: ApiToken, status: str = "", capability: str = "", external_id: str = ""
) -> QuerySet[Suggestion]:
    """What ``token`` may read, as ``can_view_suggestion`` says, in one query: its client's
    suggestions of the capabilities within its scope (and its client's), newest first,
    optionally filtered. Nothing for a token that no longer works."""
    if not token_is_live(token):
        return Suggestion.objects.none()
    scope = Capability.objects.filter(api_tokens=token, api_clients=token.client_id)
    suggestions = Suggestion.objects.filter(api_client_id=token.client_id, capability__in=scope)
    return _newest_first(suggestions, status, capability, external_id)


def suggestion_list_for_user(
    *, user: Any, status: str = "", capability: str = "", external_id: str = ""
) -> QuerySet[Suggestion]:
    """Suggestions of the capabilities ``user`` may read, newest first, optionally filtered."""
    visible = Q(capability__in=reviewable_capabilities(user)) | Q(
        capability__in=escalation_capabilities(user)
    )
    return _newest_first(Suggestion.objects.filter(visible), status, capability, external_id)


def access_suggestion(principal: Any, suggestion_id: Any) -> Suggestion:
    """The suggestion if ``principal`` may read it; else ``Http404``, as if it did not exist."""
    try:
        suggestion = (
            Suggestion.objects.select_related(
                "capability",
                "capability__owner",
                "capability__owner_group",
                "policy",
                "api_client",
                "claimed_by",
            )
            .filter(pk=suggestion_id)
            .first()
        )
    except (ValidationError, ValueError):  # not a UUID: no such suggestion either
        suggestion = None
    if suggestion is None or not (
        can_view_suggestion(principal, suggestion) or _decides_as_owner(principal, suggestion)
    ):
        raise Http404("No such suggestion.")
    return suggestion


def failed_executions_of(*, user: Any) -> QuerySet[Suggestion]:
    """Approved suggestions of the capabilities ``user`` manages whose execution failed and
    will not be tried again by itself (its attempts ran out), latest failure first."""
    return (
        Suggestion.objects.filter(
            status__in=APPROVED_STATUSES,
            execution_status=ExecutionStatus.FAILED,
            execution_next_attempt_at__isnull=True,
            capability__in=managed_capabilities(user),
        )
        .select_related("capability", "api_client")
        .order_by("-executed_at", "-id")
    )


def access_managed_suggestion(user: Any, suggestion_id: Any) -> Suggestion:
    """The suggestion, if ``user`` manages its capability; 404 otherwise, as if it did not
    exist."""
    suggestion = Suggestion.objects.select_related("capability").filter(pk=suggestion_id).first()
    if suggestion is None or not can_manage_capability(user, suggestion.capability):
        raise Http404("No such suggestion.")
    return suggestion


def _decides_as_owner(principal: Any, suggestion: Suggestion) -> bool:
    # An owner who neither reviews nor resolves escalations still reads what they may decide.
    if isinstance(principal, ApiClient | ApiToken):
        return False
    return decides_as_owner(principal, suggestion)


def _newest_first(
    queryset: QuerySet[Suggestion], status: str, capability: str, external_id: str
) -> QuerySet[Suggestion]:
    if status:
        queryset = queryset.filter(status=status)
    if capability:
        queryset = queryset.filter(capability__key=capability)
    if external_id:
        queryset = queryset.filter(external_id=external_id)
    return queryset.select_related("capability", "policy").order_by("-created_at", "-id")


@dataclass(frozen=True)
class RetryCount:
    """How often one client retried submissions to one capability."""

    client_name: str
    capability_key: str
    retried: int  # submissions the client declared as a retry (``attempt`` > 1)
    replays: int  # answers replayed to a repeated ``Idempotency-Key``


def submission_retry_counts() -> list[RetryCount]:
    """Per API client and capability, the submissions with ``attempt`` > 1 and the replayed
    answers, by client name and capability key; pairs with neither are left out. Two queries.

    Replays are counted on the idempotency keys still kept (``SIGNOFF_IDEMPOTENCY_TTL_SECONDS``
    at least): purged keys take their replays with them.
    """
    retried: dict[tuple[str, str], int] = {
        (row["api_client__name"], row["capability__key"]): row["retried"]
        for row in Suggestion.objects.filter(api_client__isnull=False, attempt__gt=1)
        .order_by()
        .values("api_client__name", "capability__key")
        .annotate(retried=Count("id"))
    }
    replays: dict[tuple[str, str], int] = {
        (row["client__name"], row["capability_key"]): row["replays"]
        for row in IdempotencyKey.objects.filter(replays__gt=0)
        .order_by()
        .values("client__name", "capability_key")
        .annotate(replays=Sum("replays"))
    }
    return [
        RetryCount(*pair, retried=retried.get(pair, 0), replays=replays.get(pair, 0))
        for pair in sorted(retried.keys() | replays.keys())
    ]
