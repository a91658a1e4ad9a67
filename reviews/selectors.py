"""Reads of suggestions for the pages and the API, permission-filtered at the source."""

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.postgres.expressions import ArraySubquery
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import (
    BooleanField,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    Func,
    Min,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Sum,
    Value,
    prefetch_related_objects,
)
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan
from django.http import Http404
from django.utils import timezone

from capabilities.models import ApiClient, ApiToken, Capability
from capabilities.permissions import (
    RESOLVE_ESCALATIONS,
    REVIEW,
    can_manage_capability,
    can_view_suggestion,
    capability_ids_with,
    escalation_capabilities,
    managed_capabilities,
    reviewable_capabilities,
    token_is_live,
)
from reviews.models import (
    APPROVED_STATUSES,
    NO_DEADLINE,
    Decision,
    DecisionOutcome,
    ExecutionStatus,
    IdempotencyKey,
    Suggestion,
    SuggestionStatus,
    WebhookDelivery,
    sla_order_key,
)
from reviews.permissions import OWNER_LEVEL, decides_as_owner


@dataclass(frozen=True)
class QueueScope:
    """The capabilities whose queue a user works, by the right that puts them there, as ids.

    Read once (``queue_scope``) and given to the queue's queries as plain values: they then
    read only these capabilities' open rows through their indexes, and are planned without
    the permission subqueries, which a query per capability would otherwise repeat.
    """

    keys: dict[int, str]  # every one of them: id -> key
    reviews: frozenset[int]  # their pending items
    resolves: frozenset[int]  # their escalated items
    owns: frozenset[int]  # their escalated items, once at the owner's rung

    @property
    def capability_ids(self) -> list[int]:
        return sorted(self.keys)

    @property
    def capability_keys(self) -> list[str]:
        return sorted(self.keys.values())

    def narrowed(self, capability: str) -> "QueueScope":
        """Only the capability with the key ``capability`` (nothing, if it is not here);
        all of it when ``capability`` is empty."""
        if not capability:
            return self
        kept = {pk for pk, key in self.keys.items() if key == capability}
        return QueueScope(
            keys={pk: capability for pk in kept},
            reviews=self.reviews & kept,
            resolves=self.resolves & kept,
            owns=self.owns & kept,
        )


def queue_scope(*, user: Any) -> QueueScope:
    """``user``'s ``QueueScope``: the capabilities they review, resolve escalations for, or
    own. Two queries: the permissions granted, then the capabilities and which they own."""
    granted = capability_ids_with(user, [REVIEW, RESOLVE_ESCALATIONS])
    owned = _owned_by(user) if user.is_active else Q(pk__in=[])
    rows = (
        Capability.objects.filter(Q(pk__in=granted[REVIEW] | granted[RESOLVE_ESCALATIONS]) | owned)
        .annotate(owns=ExpressionWrapper(owned, output_field=BooleanField()))
        .values_list("pk", "key", "owns")
        .distinct()
    )
    keys, owns = {}, set()
    for pk, key, is_owned in rows:
        keys[pk] = key
        if is_owned:
            owns.add(pk)
    return QueueScope(
        keys=keys,
        reviews=frozenset(granted[REVIEW] & keys.keys()),
        resolves=frozenset(granted[RESOLVE_ESCALATIONS] & keys.keys()),
        owns=frozenset(owns),
    )


def suggestions_decidable_by(
    *, user: Any, capability: str = "", scope: QueueScope | None = None
) -> QuerySet[Suggestion]:
    """Open suggestions ``user`` may decide, as ``reviews.permissions.can_decide_suggestion``
    says: pending ones of capabilities they review, and escalated ones of capabilities they
    resolve escalations for or, once at the owner's rung of the ladder, own; except those
    they escalated themselves; only those of the capability with the key ``capability``, if
    given. Two queries to learn their ``QueueScope`` (unless the caller passes it), then one
    for the suggestions."""
    scope = (scope or queue_scope(user=user)).narrowed(capability)
    # The exclusions are looked up once, through the decisions' reviewer index and the
    # clients' user: not once per candidate row, which costs a probe or a join per open item.
    own_clients = ApiClient.objects.filter(user=user).values("pk")
    escalated_by_user = Decision.objects.filter(
        outcome=DecisionOutcome.ESCALATED, reviewer=user
    ).values("suggestion_id")
    # An approval that did not close the suggestion waits for someone else's (four eyes).
    approved_by_user = Decision.objects.filter(
        outcome=DecisionOutcome.APPROVED,
        is_final=False,
        reviewer=user,
        final_payload=F("suggestion__final_payload"),
    ).values("suggestion_id")
    escalated = Q(capability_id__in=scope.resolves) | Q(
        capability_id__in=scope.owns, escalation_level__gte=OWNER_LEVEL
    )
    return (
        Suggestion.objects.filter(capability_id__in=scope.capability_ids)
        .filter(
            Q(status=SuggestionStatus.PENDING_REVIEW, capability_id__in=scope.reviews)
            | Q(Q(status=SuggestionStatus.ESCALATED) & escalated & ~Q(pk__in=escalated_by_user))
        )
        .exclude(pk__in=approved_by_user)
        .exclude(api_client__in=own_clients)
    )


def suggestions_in_queue_scope(*, scope: QueueScope) -> QuerySet[Suggestion]:
    """Every suggestion, open or decided, that a queue of ``scope`` may show: those of the
    capabilities its user reviews or resolves escalations for, and of those they own once at
    the owner's rung; for telling which rows a queue page shows have changed since."""
    return Suggestion.objects.filter(
        Q(capability_id__in=scope.reviews | scope.resolves)
        | Q(capability_id__in=scope.owns, escalation_level__gte=OWNER_LEVEL)
    )


QUEUE_SORTS = ("due", "oldest")
QUEUE_CURSOR_SALT = "reviews.queue.cursor"


@dataclass(frozen=True)
class QueueFilters:
    """What the reviewer narrowed the queue to; every field is optional."""

    capability: str = ""
    status: str = ""
    model: str = ""  # a model name, or "name version"; exact
    older_than: dt.timedelta | None = None
    confidence_min: float | None = None
    confidence_max: float | None = None
    mine: bool = False  # only items whose live claim is the user's
    sort: str = "due"  # "due": soonest deadline first; "oldest": oldest first


@dataclass(frozen=True)
class QueueCursor:
    """The sort key of the last row of a page: the next page starts after it."""

    sort: str
    created_at: dt.datetime
    id: uuid.UUID
    due_at: dt.datetime | None = None

    def encode(self) -> str:
        """An opaque, signed token for a link; ``decode`` refuses anything else."""
        due = self.due_at.isoformat() if self.due_at is not None else None
        return signing.dumps(
            [self.sort, due, self.created_at.isoformat(), str(self.id)], salt=QUEUE_CURSOR_SALT
        )

    @classmethod
    def decode(cls, token: str) -> "QueueCursor":
        """The cursor ``encode`` made; ``ValueError`` for a token it did not make."""
        try:
            sort, due, created, pk = signing.loads(token, salt=QUEUE_CURSOR_SALT)
            cursor = cls(
                sort=sort,
                due_at=dt.datetime.fromisoformat(due) if due is not None else None,
                created_at=dt.datetime.fromisoformat(created),
                id=uuid.UUID(pk),
            )
        except (signing.BadSignature, TypeError, ValueError) as exc:
            raise ValueError("not a queue cursor") from exc
        if cursor.sort not in QUEUE_SORTS or (cursor.sort == "oldest" and due is not None):
            raise ValueError("not a queue cursor")
        return cursor

    @classmethod
    def after(cls, suggestion: Suggestion, sort: str) -> "QueueCursor":
        due_at = suggestion.due_at if sort == "due" else None
        return cls(sort=sort, due_at=due_at, created_at=suggestion.created_at, id=suggestion.pk)


@dataclass(frozen=True)
class QueuePage:
    object_list: list[Suggestion]
    next_cursor: QueueCursor | None  # None on the last page


def suggestion_queue(
    *,
    user: Any,
    filters: QueueFilters | None = None,
    now: dt.datetime | None = None,
    scope: QueueScope | None = None,
) -> QuerySet[Suggestion]:
    """The queue page: suggestions ``user`` may decide, narrowed by ``filters``, in the
    order the page shows them (by default the soonest deadline first, items without one after
    those with one, then the oldest), with what the page shows."""
    filters = filters or QueueFilters()
    now = now or timezone.now()
    queryset = suggestions_decidable_by(user=user, capability=filters.capability, scope=scope)
    if filters.status:
        queryset = queryset.filter(status=filters.status)
    if filters.model:
        queryset = queryset.filter(_model_is(filters.model))
    if filters.older_than is not None:
        queryset = queryset.filter(created_at__lte=now - filters.older_than)
    if filters.confidence_min is not None:
        queryset = queryset.filter(confidence__gte=filters.confidence_min)
    if filters.confidence_max is not None:
        queryset = queryset.filter(confidence__lte=filters.confidence_max)
    if filters.mine:
        queryset = queryset.filter(claimed_by=user, claim_expires_at__gt=now)
    return _as_queue_shows(queryset, filters.sort)


# What a queue row shows and pages by (the template, ``Suggestion.sla_state``, ``QueueCursor``):
# not the payloads, prompt and context, which are large and which the review page shows.
_QUEUE_ROW_FIELDS = (
    "id",
    "status",
    "created_at",
    "due_at",
    "confidence",
    "model_name",
    "model_version",
    "external_id",
    "claim_expires_at",
    "capability__key",
    "policy__sla_minutes",
)


def _as_queue_shows(queryset: QuerySet[Suggestion], sort: str) -> QuerySet[Suggestion]:
    """``queryset`` in the queue's ``sort`` order, with what its rows show and no more."""
    if sort == "oldest":
        ordering: list[Any] = ["created_at", "id"]
    else:
        # The order of suggestion_open_sla_order, and per capability suggestion_open_cap_order.
        ordering = [sla_order_key(), "created_at", "id"]
    return (
        queryset.select_related("capability", "policy", "claimed_by")
        .only(*_QUEUE_ROW_FIELDS, f"claimed_by__{get_user_model().USERNAME_FIELD}")
        .order_by(*ordering)
    )


def suggestion_queue_page(
    *,
    user: Any,
    filters: QueueFilters | None = None,
    after: QueueCursor | None = None,
    size: int = 50,
    scope: QueueScope | None = None,
) -> QueuePage:
    """One page of ``suggestion_queue``: the ``size`` rows after ``after`` in the sort order,
    and the cursor of the next page. Two queries whatever the page (the ids of the rows, the
    rows) after the user's ``QueueScope``, unless the caller passes it; no OFFSET and no
    COUNT, so a deep page costs what the first one does."""
    filters = filters or QueueFilters()
    scope = (scope or queue_scope(user=user)).narrowed(filters.capability)
    queryset = suggestion_queue(user=user, filters=filters, scope=scope)
    if after is not None:
        queryset = _after(queryset, after)
    ids = first_ids_by_capability(queryset, scope.capability_ids, size + 1)
    if ids is not None:
        # Read by key alone: the candidates met every condition a moment ago, and repeating
        # the conditions has PostgreSQL intersect the key's index with every open item of
        # the capabilities. A row decided in that moment shows as taken, as it would a moment
        # later.
        queryset = _as_queue_shows(Suggestion.objects.filter(pk__in=ids), filters.sort)
    rows = list(queryset[: size + 1])
    if len(rows) <= size:
        return QueuePage(object_list=rows, next_cursor=None)
    rows = rows[:size]
    return QueuePage(object_list=rows, next_cursor=QueueCursor.after(rows[-1], filters.sort))


def first_ids_by_capability(
    queryset: QuerySet[Suggestion], capability_ids: list[int], count: int
) -> list[Any] | None:
    """The ids of the first ``count`` rows of each capability in ``queryset`` (ordered as the
    queue orders): the first ``count`` of the whole are among them. None where the database
    finds the first rows by itself: one capability, or not PostgreSQL.

    PostgreSQL reads an index range in order and stops, but cannot merge the ranges of several
    capabilities in order: for a reviewer of some of the capabilities it walks the open items
    of all of them, in order, until it has passed enough of theirs (53,000 rows at 1,000,000
    suggestions). Read one capability at a time, each part follows the per-capability queue
    index and stops after ``count``: one query, in which each capability's row gathers its
    part as an array. The part is compiled and planned once, not once per capability (as a
    UNION of parts would be), which costs more than reading the rows.
    """
    if len(capability_ids) < 2 or connection.vendor != "postgresql":
        return None
    part = queryset.filter(capability_id=OuterRef("pk")).values("pk")[:count]
    parts = (
        Capability.objects.filter(pk__in=capability_ids)
        .order_by()
        .values_list(ArraySubquery(part), flat=True)
    )
    return [pk for ids in parts for pk in ids]


def _model_is(text: str) -> Q:
    # "name version" may split at any space: model names can hold spaces themselves.
    match = Q(model_name=text)
    for position, character in enumerate(text):
        if character == " ":
            match |= Q(model_name=text[:position], model_version=text[position + 1 :])
    return match


def _after(queryset: QuerySet[Suggestion], cursor: QueueCursor) -> QuerySet[Suggestion]:
    """The rows of ``queryset`` after ``cursor`` in its sort order (see ``suggestion_queue``).

    One row comparison on the whole sort key, which the database reads as where to start its
    index scan: a deep page does not filter every row before it, not even among the many
    items that tie on "no deadline".
    """
    if cursor.sort == "oldest":
        return queryset.filter(
            TupleGreaterThan(Tuple(F("created_at"), F("id")), (cursor.created_at, cursor.id))
        )
    key = Tuple(sla_order_key(), F("created_at"), F("id"))
    return queryset.filter(
        TupleGreaterThan(key, (cursor.due_at or NO_DEADLINE, cursor.created_at, cursor.id))
    )


class _QuarterOfSla(Func):
    """A quarter of a policy's ``sla_minutes``, as a duration: the "due soon" margin of
    ``Suggestion.sla_state``. The ORM cannot multiply a duration by a column."""

    output_field = DurationField()
    # SQLite keeps durations as integer microseconds: 15 s is a quarter of a minute.
    template = "(%(expressions)s * 15000000)"

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler, connection, template="(%(expressions)s * INTERVAL '15 seconds')", **extra
        )


@dataclass(frozen=True)
class QueueCount:
    capability_key: str
    waiting: int
    oldest: dt.datetime
    due_soon: int = 0  # under a quarter of the SLA left, as ``Suggestion.sla_state`` says
    overdue: int = 0
    new: int = 0  # submitted after the ``since`` given to ``queue_counts``


def queue_counts(
    *, user: Any, since: dt.datetime | None = None, scope: QueueScope | None = None
) -> list[QueueCount]:
    """How many open items wait per capability for ``user``, since when, how many are due
    soon or overdue, and how many arrived after ``since``. One query after the user's
    ``QueueScope``, unless the caller passes it."""
    now = timezone.now()
    scope = scope or queue_scope(user=user)
    due_soon = Q(due_at__gt=now, due_at__lt=Value(now) + _QuarterOfSla("policy__sla_minutes"))
    # Grouped by the capability's id, which the scope names: no join to read its key per row.
    rows = (
        suggestions_decidable_by(user=user, scope=scope)
        .order_by()
        .values("capability_id")
        .annotate(
            waiting=Count("id"),
            oldest=Min("created_at"),
            due_soon=Count("id", filter=due_soon & Q(policy__sla_minutes__gt=0)),
            overdue=Count("id", filter=Q(due_at__lte=now)),
            new=Count("id", filter=Q(created_at__gt=since)) if since else Value(0),
        )
    )
    counts = [
        QueueCount(
            scope.keys[r["capability_id"]],
            r["waiting"],
            r["oldest"],
            r["due_soon"],
            r["overdue"],
            r["new"],
        )
        for r in rows
    ]
    return sorted(counts, key=lambda count: count.capability_key)


def _owned_by(user: Any) -> Q:
    """Capabilities owned by ``user`` or by one of their groups."""
    return Q(owner=user) | Q(owner_group__in=user.groups.all())


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
    """What ``token`` may read, as ``can_view_suggestion`` says, in one query (and one more
    to look up a ``capability`` filter's key): its client's suggestions of the capabilities
    within its scope (and its client's), newest first, optionally filtered. Nothing for a
    token that no longer works."""
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


def suggestion_with_history(suggestion: Suggestion) -> Suggestion:
    """``suggestion`` with its decisions (their reviewers joined) and its webhook deliveries
    (their attempts too) loaded: three queries whatever their number, and none when they are
    read afterwards (``suggestion.decisions.all()``, ``suggestion.webhooks.all()``)."""
    prefetch_related_objects(
        [suggestion],
        Prefetch("decisions", queryset=Decision.objects.select_related("reviewer")),
        Prefetch("webhooks", queryset=WebhookDelivery.objects.prefetch_related("tries")),
    )
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
        # The key is looked up first (one small query) and the id given as a value: a join
        # would have the database fetch and sort every row of the capability, and a subquery
        # leaves it guessing the capability's size; with the id it reads a small capability
        # through the (capability, created_at) index, in order, and stops at the page's end.
        found = list(Capability.objects.filter(key=capability).values_list("pk", flat=True)[:1])
        queryset = queryset.filter(capability_id=found[0]) if found else queryset.none()
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


# The statuses of a suggestion somebody (or its policy) decided; an expired one was not.
DECIDED_STATUSES = (
    SuggestionStatus.APPROVED,
    SuggestionStatus.REJECTED,
    SuggestionStatus.AUTO_APPROVED,
    SuggestionStatus.AUTO_REJECTED,
)


@dataclass(frozen=True)
class SimilarDecision:
    """How an earlier, identical proposal was decided: its final decision, flattened."""

    suggestion: Suggestion
    outcome: str  # the decision's display label: "Approved", "Rejected"
    reviewer: Any | None  # None: the policy decided
    decided_at: dt.datetime | None
    reason: str
    is_override: bool


def similar_decisions(suggestion: Suggestion, limit: int = 5) -> list[SimilarDecision]:
    """The ``limit`` latest decided suggestions of the same capability, submitted before
    ``suggestion``, whose payload has the same fingerprint, newest decision first, each with
    its final decision. Two queries whatever ``limit`` (one when none matches); none for a
    suggestion without a fingerprint."""
    if not suggestion.fingerprint:
        return []
    finals = Decision.objects.filter(is_final=True).select_related("reviewer")
    rows = (
        Suggestion.objects.filter(
            capability_id=suggestion.capability_id,
            fingerprint=suggestion.fingerprint,
            status__in=DECIDED_STATUSES,
            created_at__lt=suggestion.created_at,
        )
        .exclude(pk=suggestion.pk)
        .order_by("-decided_at", "-created_at", "-id")
        .prefetch_related(Prefetch("decisions", queryset=finals, to_attr="final_decisions"))
    )[:limit]
    similar = []
    for row in rows:
        prefetched: list[Decision] = row.final_decisions  # type: ignore[attr-defined]
        final = prefetched[0] if prefetched else None
        similar.append(
            SimilarDecision(
                suggestion=row,
                outcome=final.get_outcome_display() if final else row.get_status_display(),
                reviewer=final.reviewer if final else None,
                decided_at=final.created_at if final else row.decided_at,
                reason=final.reason if final else "",
                is_override=final.is_override if final else row.is_override,
            )
        )
    return similar
