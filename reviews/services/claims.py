"""Claiming: which reviewer holds an open suggestion, and until when."""

import datetime as dt
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from audit.models import AuditAction
from audit.services import Actor, Subject, audit_event_record
from reviews.models import OPEN_STATUSES, Suggestion, sla_order_key
from reviews.selectors import (
    first_ids_by_capability,
    queue_scope,
    suggestions_decidable_by,
)
from reviews.services.common import claim_live, lock_suggestion
from reviews.services.decisions import check_may_decide

# How many free items of each capability claim-next considers before scanning the queue.
_CLAIM_CANDIDATES = 8


def suggestion_claim_next(*, user: Any) -> Suggestion | None:
    """Give ``user`` the open suggestion they may decide that the queue shows first (the
    soonest deadline, then the oldest) and nobody else holds.

    A reviewer who already holds a live claim gets that item back. Two reviewers calling at
    the same moment never get the same item: on PostgreSQL the candidate row is locked with
    ``FOR UPDATE SKIP LOCKED``, so the second caller skips it instead of waiting for it; on
    SQLite every write transaction is serialised (``BEGIN IMMEDIATE``). Returns None when
    nothing is waiting.
    """
    now = timezone.now()
    scope = queue_scope(user=user)
    decidable = suggestions_decidable_by(user=user, scope=scope)
    with transaction.atomic():
        live_claims = Suggestion.objects.filter(
            claimed_by=user, claim_expires_at__gt=now, status__in=OPEN_STATUSES
        )
        # Usually there is none (the reviewer has just decided theirs): the cheap question
        # first, through the claimer's index, before the full one.
        if live_claims.exists():
            held = decidable.filter(pk__in=live_claims.values("pk")).order_by("created_at").first()
            if held is not None:
                return held
        # The queue's order, so each scan follows a partial index over open items and stops
        # at the first free one, however many decided rows the table holds.
        free = decidable.filter(Q(claimed_by__isnull=True) | Q(claim_expires_at__lte=now))
        free = free.order_by(sla_order_key(), "created_at", "id")
        # The first few free ones of each capability are found without locking (see
        # first_ids_by_capability), and the first of them nobody else holds is taken. Should
        # others have taken every one meanwhile, the whole queue is scanned.
        candidates = first_ids_by_capability(free, scope.capability_ids, _CLAIM_CANDIDATES)
        if candidates is None:
            candidate = _lock_first(free)
        else:
            candidate = _lock_first(free.filter(pk__in=candidates))
            if candidate is None and candidates:
                candidate = _lock_first(free)
        if candidate is None:
            return None
        _claim(candidate, user, now)
        return candidate


def _lock_first(suggestions: QuerySet[Suggestion]) -> Suggestion | None:
    # SKIP LOCKED: a row another reviewer is claiming right now is passed over, not waited for.
    # Its capability comes along (unlocked), for the audit event's key.
    locked = suggestions.select_related("capability").select_for_update(
        skip_locked=True, of=("self",)
    )
    return locked.first()


def suggestion_claim(*, user: Any, suggestion_id: Any) -> Suggestion:
    """Claim one particular open suggestion for ``user``.

    Raises ``AlreadyDecided`` if it was decided meanwhile, ``ClaimedByOther`` while another
    reviewer's claim is live, and ``PermissionDenied`` if ``user`` may not decide it.
    """
    now = timezone.now()
    with transaction.atomic():
        suggestion = lock_suggestion(suggestion_id)
        check_may_decide(user, suggestion, now)
        if suggestion.claimed_by_id != user.pk or not claim_live(suggestion, now):
            _claim(suggestion, user, now)
        return suggestion


def suggestion_release(*, user: Any, suggestion_id: Any) -> Suggestion:
    """Give up ``user``'s claim so the item returns to the queue. A no-op without a claim."""
    with transaction.atomic():
        suggestion = lock_suggestion(suggestion_id)
        if suggestion.claimed_by_id == user.pk:
            suggestion.claimed_by = None
            suggestion.claim_expires_at = None
            suggestion.save(update_fields=["claimed_by", "claim_expires_at"])
            audit_event_record(
                actor=Actor.user(user),
                action=AuditAction.SUGGESTION_RELEASED,
                subject=Subject.of(suggestion),
                capability=suggestion.capability.key,
            )
        return suggestion


def _claim(suggestion: Suggestion, user: Any, now: dt.datetime) -> None:
    suggestion.claimed_by = user
    suggestion.claim_expires_at = now + dt.timedelta(seconds=settings.SIGNOFF_CLAIM_TTL_SECONDS)
    suggestion.save(update_fields=["claimed_by", "claim_expires_at"])
    audit_event_record(
        actor=Actor.user(user),
        action=AuditAction.SUGGESTION_CLAIMED,
        subject=Subject.of(suggestion),
        capability=suggestion.capability.key,
        data={"claim_expires_at": suggestion.claim_expires_at},
    )
