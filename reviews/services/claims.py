"""Claiming: which reviewer holds an open suggestion, and until when."""

import datetime as dt
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit.models import AuditAction
from audit.services import Actor, Subject, audit_event_record
from reviews.models import Suggestion, sla_order_key
from reviews.selectors import suggestions_decidable_by
from reviews.services.common import lock_suggestion
from reviews.services.decisions import check_may_decide, claim_live


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
    with transaction.atomic():
        held = (
            suggestions_decidable_by(user=user)
            .filter(claimed_by=user, claim_expires_at__gt=now)
            .order_by("created_at")
            .first()
        )
        if held is not None:
            return held
        candidate = (
            suggestions_decidable_by(user=user)
            .filter(Q(claimed_by__isnull=True) | Q(claim_expires_at__lte=now))
            # The queue's order, so the scan follows its partial index over open items and
            # stops at the first free one, however many decided rows the table holds.
            .order_by(sla_order_key(), "created_at", "id")
            .select_for_update(skip_locked=True, of=("self",))
            .first()
        )
        if candidate is None:
            return None
        _claim(candidate, user, now)
        return candidate


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
