"""Idempotent submission: an ``Idempotency-Key`` makes retrying a request safe.

A client that sends a key with a request may send the same request again (after a timeout, a
dropped connection, a crash on its side) and be sure it is done once:

* the first request with a key records the key *in flight*, in a transaction of its own that
  commits before the work starts, so a concurrent request with the same key finds it;
* the work then runs, and its answer (status and body bytes) is stored in the same transaction
  as the work's own writes: a key is never completed without its work, nor the work committed
  with its key still in flight;
* the same key with the same request then replays the stored answer; with another request it
  is refused; while the first is still in flight, the second is told to try again shortly.

The database's unique constraint on (client, key) decides which of several concurrent first
requests does the work. Keys are kept at least ``SIGNOFF_IDEMPOTENCY_TTL_SECONDS``;
``idempotency_key_purge`` deletes them after that.
"""

import datetime as dt
import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from capabilities.models import ApiClient, ApiToken, Capability
from capabilities.permissions import can_submit_to_capability
from reviews.models import IdempotencyKey, IdempotencyState
from reviews.services.common import storable_text

logger = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY_MAX_LENGTH = 255
# Printable ASCII, space included: what every HTTP stack carries unchanged in a header.
_VALID_KEY = re.compile(rf"[\x20-\x7e]{{1,{IDEMPOTENCY_KEY_MAX_LENGTH}}}")
# A key still in flight after this long belongs to a request whose process died before it
# could release the key (an orderly failure releases it at once). No request runs this long,
# and its work, committed only together with the key's answer, never happened: a new request
# may take the key over, and the purge deletes it.
ABANDONED_AFTER = dt.timedelta(hours=1)
# Answers that ask the client to try again later are not kept: the retry must do the work.
_TRY_AGAIN_STATUSES = frozenset({408, 409, 425, 429})
# Claiming a key races with requests that release or purge it; this many tries settle it.
_CLAIM_ATTEMPTS = 3
_CAPABILITY_KEY_MAX_LENGTH = IdempotencyKey._meta.get_field("capability_key").max_length or 100


class IdempotencyKeyReused(Exception):
    """The key was first used with another request; nothing was done."""


class IdempotencyKeyInFlight(Exception):
    """The first request with this key is still being worked on; nothing was done."""


class Answer(Protocol):
    """What a request answered: an HTTP response, rendered."""

    @property
    def status_code(self) -> int: ...

    @property
    def content(self) -> bytes: ...


@dataclass(frozen=True)
class IdempotentReplay:
    """The answer stored for a key, given again: the same status and body bytes."""

    status_code: int
    content: bytes


@dataclass(frozen=True)
class IdempotencyPurge:
    """What ``idempotency_key_purge`` deleted."""

    expired: int
    abandoned: int

    @property
    def total(self) -> int:
        return self.expired + self.abandoned


def idempotency_key_check(value: str) -> str:
    """``value`` if it is a valid key (1 to 255 printable ASCII characters); else
    ``ValidationError`` naming the ``Idempotency-Key`` header."""
    if not _VALID_KEY.fullmatch(value):
        raise ValidationError(
            {
                IDEMPOTENCY_HEADER: (
                    f"Must be 1 to {IDEMPOTENCY_KEY_MAX_LENGTH} printable ASCII characters."
                )
            }
        )
    return value


def idempotency_request_hash(*, method: str, path: str, body: Any) -> str:
    """The SHA-256 (hex) of a request: its method, path and JSON body in canonical form (keys
    sorted, no whitespace), so that the same body formatted differently is the same request."""
    # ASCII, non-ASCII characters as \u escapes: any string the JSON parser accepts (lone
    # surrogates included) encodes, and only one way.
    canonical_body = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    canonical = "\n".join([method.upper(), path, canonical_body])
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def idempotency_key_use[AnswerT: Answer](
    *,
    client: ApiClient,
    key: str,
    method: str,
    path: str,
    body: Any,
    run: Callable[[], AnswerT],
    token: ApiToken | None = None,
) -> AnswerT | IdempotentReplay:
    """Answer a request of ``client`` that carries ``key``: do the work once, replay after.

    The first request with the key records it in flight (committed at once), calls ``run``
    inside a transaction, and stores the answer ``run`` returns in that same transaction, then
    returns it. A later request with the same method, path and body gets the stored answer as
    an ``IdempotentReplay`` (and the key's ``replays`` grows by one). Answers are stored
    whatever they say, errors included, except those that ask to try again later (408, 409,
    425, 429 and every 5xx): for those, and when ``run`` raises, the key is released so that a
    retry does the work.

    Raises ``ValidationError`` for an invalid key, ``IdempotencyKeyReused`` when the key was
    first used with another request, ``IdempotencyKeyInFlight`` while the first request is
    still being worked on, and ``PermissionDenied`` when a replay would show the answer about
    a capability outside the scope of ``token`` (or of ``client``, for internal callers).

    Call it outside any transaction: inside one, concurrent requests cannot see the key in
    flight until that transaction commits.
    """
    idempotency_key_check(key)
    request_hash = idempotency_request_hash(method=method, path=path, body=body)
    capability_key = _capability_key(body)
    row, claimed = _claim(
        client=client, key=key, request_hash=request_hash, capability_key=capability_key
    )
    if not claimed:
        return _replay(row, request_hash=request_hash, principal=token or client)
    try:
        with transaction.atomic():
            answer = run()
            if _is_kept(answer.status_code):
                stored = _mine(row).update(
                    state=IdempotencyState.COMPLETED,
                    response_status=answer.status_code,
                    response_body=bytes(answer.content),
                    completed_at=timezone.now(),
                )
                if not stored:  # taken over or purged as abandoned: this request ran too long
                    logger.warning("Idempotency key %s was no longer held; answer not kept", row.pk)
            else:
                _mine(row).delete()
    except BaseException:
        _release(row)
        raise
    return answer


def idempotency_key_purge(*, now: dt.datetime | None = None) -> IdempotencyPurge:
    """Delete the keys no longer kept: completed ones first used more than
    ``SIGNOFF_IDEMPOTENCY_TTL_SECONDS`` ago, and abandoned ones (in flight for over an hour, a
    request whose process died). Returns how many of each."""
    now = now or timezone.now()
    ttl = dt.timedelta(seconds=settings.SIGNOFF_IDEMPOTENCY_TTL_SECONDS)
    expired, _ = IdempotencyKey.objects.filter(
        state=IdempotencyState.COMPLETED, created_at__lt=now - ttl
    ).delete()
    abandoned, _ = IdempotencyKey.objects.filter(
        state=IdempotencyState.IN_FLIGHT, created_at__lt=now - ABANDONED_AFTER
    ).delete()
    return IdempotencyPurge(expired=expired, abandoned=abandoned)


def _claim(
    *, client: ApiClient, key: str, request_hash: str, capability_key: str
) -> tuple[IdempotencyKey, bool]:
    """The key's row, and whether this request claimed it (and must do the work)."""
    for _attempt in range(_CLAIM_ATTEMPTS):
        try:
            # Its own transaction (a savepoint when the caller is inside one): committed before
            # the work starts, so that a concurrent request with the key runs into it.
            with transaction.atomic():
                row = IdempotencyKey.objects.create(
                    client=client,
                    key=key,
                    request_hash=request_hash,
                    state=IdempotencyState.IN_FLIGHT,
                    capability_key=capability_key,
                )
            return row, True
        except IntegrityError:
            # The unique constraint on (client, key): another request has the key.
            pass
        existing = IdempotencyKey.objects.filter(client=client, key=key).first()
        if existing is None:
            continue  # released or purged since: claim it again
        if _is_abandoned(existing):
            now = timezone.now()
            taken = _mine(existing).update(
                created_at=now, request_hash=request_hash, capability_key=capability_key
            )
            if taken:
                existing.created_at = now
                existing.request_hash = request_hash
                existing.capability_key = capability_key
                return existing, True
            continue  # another request took it over, or it completed, meanwhile
        return existing, False
    raise IdempotencyKeyInFlight(f"A request with this {IDEMPOTENCY_HEADER} is in progress.")


def _replay(row: IdempotencyKey, *, request_hash: str, principal: Any) -> IdempotentReplay:
    if row.request_hash != request_hash:
        raise IdempotencyKeyReused(
            f"This {IDEMPOTENCY_HEADER} was already used with a different request; use a new "
            "key for a new request."
        )
    if row.state != IdempotencyState.COMPLETED or row.response_status is None:
        raise IdempotencyKeyInFlight(
            f"The first request with this {IDEMPOTENCY_HEADER} is still in progress; retry "
            "shortly to get its answer."
        )
    capability = (
        Capability.objects.filter(key=row.capability_key).first() if row.capability_key else None
    )
    if capability is not None and not can_submit_to_capability(principal, capability):
        # The key belongs to the client; its tokens may differ in scope.
        raise PermissionDenied(f"This token may not submit to {capability.key}.")
    IdempotencyKey.objects.filter(pk=row.pk).update(replays=F("replays") + 1)
    return IdempotentReplay(
        status_code=row.response_status, content=bytes(row.response_body or b"")
    )


def _release(row: IdempotencyKey) -> None:
    """Let a retry with the key do the work: the first attempt failed without an answer."""
    try:
        _mine(row).delete()
    except DatabaseError:
        # The original error matters more; an unreleased key is taken over once abandoned.
        logger.exception("Could not release idempotency key %s", row.pk)


def _mine(row: IdempotencyKey) -> QuerySet[IdempotencyKey]:
    """The row, while still in flight for the request that claimed it (a request that took an
    abandoned key over changed ``created_at``)."""
    return IdempotencyKey.objects.filter(
        pk=row.pk, state=IdempotencyState.IN_FLIGHT, created_at=row.created_at
    )


def _is_kept(status_code: int) -> bool:
    return status_code < 500 and status_code not in _TRY_AGAIN_STATUSES


def _is_abandoned(row: IdempotencyKey) -> bool:
    return (
        row.state == IdempotencyState.IN_FLIGHT
        and row.created_at <= timezone.now() - ABANDONED_AFTER
    )


def _capability_key(body: Any) -> str:
    """The capability the body names, for the retries page; "" when it names none that could
    be stored (the body is not checked yet: a NUL character would fail the insert)."""
    capability = body.get("capability") if isinstance(body, dict) else None
    if not isinstance(capability, str) or not storable_text(capability):
        return ""
    return capability[:_CAPABILITY_KEY_MAX_LENGTH]
