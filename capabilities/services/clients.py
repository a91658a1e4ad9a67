"""API clients and their bearer tokens: created, issued and revoked, each audited."""

import datetime as dt
import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audit.models import AuditAction
from audit.services import Actor, Subject, audit_event_record
from capabilities.models import ApiClient, ApiToken, Capability

TOKEN_PREFIX = "sgf_"  # noqa: S105 - a marker that makes leaked tokens easy to scan for


@dataclass(frozen=True)
class IssuedToken:
    """A freshly issued token: ``secret`` exists only here and is never stored."""

    token: ApiToken
    secret: str


def api_client_create(
    *, name: str, capabilities: list[Capability], actor: Actor, description: str = ""
) -> IssuedToken:
    """Create an API client scoped to ``capabilities`` and issue its first token."""
    with transaction.atomic():
        client = ApiClient(name=name, description=description)
        client.full_clean()
        client.save()
        client.capabilities.set(capabilities)
        audit_event_record(
            actor=actor,
            action=AuditAction.API_CLIENT_CREATED,
            subject=Subject.of(client),
            data={"name": name, "capabilities": sorted(c.key for c in capabilities)},
        )
        return api_token_issue(client=client, actor=actor)


def api_token_issue(
    *,
    client: ApiClient,
    actor: Actor,
    capabilities: Iterable[Capability] | None = None,
    expires_at: dt.datetime | None = None,
) -> IssuedToken:
    """Issue a new bearer token for ``client``; only its hash is stored.

    Its scope is ``capabilities`` (by default all of the client's); it works until
    ``expires_at``, if given. Raises ``ValidationError`` naming ``capabilities`` for a scope
    beyond the client's.
    """
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        allowed = set(client.capabilities.all())
        scope = allowed if capabilities is None else set(capabilities)
        beyond = sorted(c.key for c in scope - allowed)
        if beyond:
            raise ValidationError(
                {"capabilities": f"Outside the client's capabilities: {', '.join(beyond)}."}
            )
        token = ApiToken.objects.create(
            client=client,
            prefix=secret[: len(TOKEN_PREFIX) + 6],
            token_hash=token_hash(secret),
            expires_at=expires_at,
        )
        token.capabilities.set(scope)
        audit_event_record(
            actor=actor,
            action=AuditAction.API_TOKEN_ISSUED,
            subject=Subject.of(token),
            data={
                "client": client.name,
                "prefix": token.prefix,
                "capabilities": sorted(c.key for c in scope),
                "expires_at": expires_at,
            },
        )
    return IssuedToken(token=token, secret=secret)


def api_token_revoke(*, token: ApiToken, actor: Actor) -> ApiToken:
    """Revoke ``token`` now; it stops authenticating at once. Revoking twice changes nothing."""
    with transaction.atomic():
        token = ApiToken.objects.select_for_update().select_related("client").get(pk=token.pk)
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
            audit_event_record(
                actor=actor,
                action=AuditAction.API_TOKEN_REVOKED,
                subject=Subject.of(token),
                data={"client": token.client.name, "prefix": token.prefix},
            )
    return token


def token_hash(secret: str) -> str:
    """The stored form of a token. Tokens carry 256 random bits, so a fast hash suffices."""
    return hashlib.sha256(secret.encode()).hexdigest()


def api_token_authenticate(secret: str) -> ApiToken | None:
    """The live token matching ``secret``, or None. Records its last use (at most once a minute)."""
    token = (
        ApiToken.objects.select_related("client")
        .filter(token_hash=token_hash(secret), revoked_at__isnull=True, client__is_active=True)
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token
