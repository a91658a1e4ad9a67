"""API clients and their bearer tokens: created, updated, issued, rotated and revoked, each
audited; and the check of a presented token."""

import base64
import datetime as dt
import enum
import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audit.models import AuditAction
from audit.services import Actor, Subject, audit_event_record
from capabilities.models import ApiClient, ApiToken, Capability
from capabilities.permissions import token_is_live

TOKEN_PREFIX = "sgf_"  # noqa: S105 - a marker that makes leaked tokens easy to scan for
# What is kept of a token to tell it apart: the marker and six random characters (36 bits).
TOKEN_PREFIX_LENGTH = len(TOKEN_PREFIX) + 6

# Standard Webhooks signing secrets: the marker, then the base64 of the key's random bytes (the
# standard asks for 24 to 64).
WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 - a marker, not a secret
WEBHOOK_SECRET_BYTES = 32

# How often a token's last use is written: once a minute is enough to tell a live integration
# from a dead one, and it spares a write on every request.
LAST_USE_RESOLUTION = dt.timedelta(minutes=1)


class _Unchanged(enum.Enum):
    UNCHANGED = "unchanged"


# ``api_client_update(user=UNCHANGED)``, the default, keeps the client's user: ``None`` is a
# value there (the client acts for nobody), so it cannot also mean "leave it".
UNCHANGED: Final = _Unchanged.UNCHANGED


@dataclass(frozen=True)
class IssuedToken:
    """A freshly issued token: ``secret`` exists only here and is never stored."""

    token: ApiToken
    secret: str


class TokenRefusal(enum.StrEnum):
    """Why a presented token does not authenticate."""

    UNKNOWN = "unknown"
    REVOKED = "revoked"
    EXPIRED = "expired"
    CLIENT_INACTIVE = "client_inactive"


@dataclass(frozen=True)
class TokenCheck:
    """What a presented secret is worth: the token it belongs to (if any), and why that token
    is refused (``None`` when it is live)."""

    token: ApiToken | None
    refusal: TokenRefusal | None

    @property
    def live_token(self) -> ApiToken | None:
        return self.token if self.refusal is None else None


def api_client_create(
    *,
    name: str,
    capabilities: list[Capability],
    actor: Actor,
    description: str = "",
    user: Any = None,
    expires_at: dt.datetime | None = None,
) -> IssuedToken:
    """Create an API client scoped to ``capabilities``, acting for ``user`` (if any), and issue
    its first token (scoped to all of them, working until ``expires_at`` if given).

    The client gets its webhook signing secret (``webhook_secret_generate``) at once. Audited
    as ``api_client.created`` then ``api_token.issued``.
    """
    with transaction.atomic():
        client = ApiClient(
            name=name,
            description=description,
            user=user,
            webhook_secret=webhook_secret_generate(),
        )
        client.full_clean()
        client.save()
        client.capabilities.set(capabilities)
        audit_event_record(
            actor=actor,
            action=AuditAction.API_CLIENT_CREATED,
            subject=Subject.of(client),
            data={
                "name": name,
                "capabilities": sorted(c.key for c in capabilities),
                "user": _username(user),
            },
        )
        return api_token_issue(client=client, actor=actor, expires_at=expires_at)


def api_client_update(
    *,
    client: ApiClient,
    actor: Actor,
    is_active: bool | None = None,
    capabilities: Iterable[Capability] | None = None,
    user: Any = UNCHANGED,
) -> ApiClient:
    """Change whether ``client`` works, the most its tokens may reach, and whom it acts for.

    Arguments left out (``None``; ``UNCHANGED`` for ``user``, where ``None`` clears it) stay
    as they are. Narrowing the capabilities narrows every token of the client the same way
    (widening them widens no token: a token's scope is chosen when it is issued). A deactivated
    client's tokens stop working at once; reactivating it brings back those still live.

    Audited as one ``api_client.updated`` naming only what changed, and the prefixes of the
    tokens whose scope was narrowed; nothing changed, nothing recorded.
    """
    with transaction.atomic():
        # Locked so that two concurrent updates cannot both compute their diff from the same
        # "before" and record changes that never happened.
        client = ApiClient.objects.select_for_update().get(pk=client.pk)
        changes: dict[str, Any] = {}
        if is_active is not None and is_active != client.is_active:
            changes["is_active"] = {"from": client.is_active, "to": is_active}
            client.is_active = is_active
        if user is not UNCHANGED and _pk(user) != client.user_id:
            changes["user"] = {"from": _username(client.user), "to": _username(user)}
            client.user = user
        if "is_active" in changes or "user" in changes:
            client.full_clean()
            client.save(update_fields=["is_active", "user"])
        if capabilities is not None:
            wanted = set(capabilities)
            current = set(client.capabilities.all())
            added, removed = wanted - current, current - wanted
            if added or removed:
                changes["capabilities"] = {
                    "added": sorted(c.key for c in added),
                    "removed": sorted(c.key for c in removed),
                }
                client.capabilities.set(wanted)
            if removed:
                changes["tokens_narrowed"] = _narrow_tokens(client, removed)
        if changes:
            audit_event_record(
                actor=actor,
                action=AuditAction.API_CLIENT_UPDATED,
                subject=Subject.of(client),
                data={"client": client.name, **changes},
            )
    return client


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
    beyond the client's, and ``expires_at`` for a moment already past.
    """
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": "A new token must expire in the future."})
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
            prefix=secret[:TOKEN_PREFIX_LENGTH],
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


def api_token_rotate(
    *, token: ApiToken, actor: Actor, overlap: dt.timedelta | None = None
) -> IssuedToken:
    """Replace ``token`` by a new one of the same client and scope, and let the old one work
    only for ``overlap`` more (default ``SIGNOFF_TOKEN_ROTATION_OVERLAP_SECONDS``), so that a
    system can switch without a gap. An old token that expires sooner keeps its expiry.

    The new token lives as long as the old one was meant to (counted from now); an old token
    without expiry gives a new one without expiry. Audited as ``api_token.issued`` (the new
    token) then ``api_token.rotated`` (the old one: both prefixes and the old one's new
    expiry). Raises ``ValidationError`` for a token that no longer works (revoked or expired:
    issue a new one instead) and for a negative overlap.
    """
    if overlap is None:
        overlap = dt.timedelta(seconds=settings.SIGNOFF_TOKEN_ROTATION_OVERLAP_SECONDS)
    if overlap < dt.timedelta(0):
        raise ValidationError({"overlap": "The overlap cannot be negative."})
    with transaction.atomic():
        # Locked so that two concurrent rotations of one token cannot both succeed and leave
        # two successors.
        old = ApiToken.objects.select_for_update().select_related("client").get(pk=token.pk)
        if old.revoked_at is not None:
            raise ValidationError(f"Token {old.prefix} is revoked: issue a new token instead.")
        now = timezone.now()
        if old.expires_at is not None and old.expires_at <= now:
            raise ValidationError(f"Token {old.prefix} has expired: issue a new token instead.")
        lifetime = None if old.expires_at is None else old.expires_at - old.created_at
        issued = api_token_issue(
            client=old.client,
            actor=actor,
            capabilities=old.capabilities.all(),
            expires_at=None if lifetime is None else now + lifetime,
        )
        grace_until = now + overlap
        if old.expires_at is None or grace_until < old.expires_at:
            old.expires_at = grace_until
            old.save(update_fields=["expires_at"])
        audit_event_record(
            actor=actor,
            action=AuditAction.API_TOKEN_ROTATED,
            subject=Subject.of(old),
            data={
                "client": old.client.name,
                "prefix": old.prefix,
                "new_prefix": issued.token.prefix,
                "expires_at": old.expires_at,
            },
        )
    return issued


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


def webhook_secret_generate() -> str:
    """A new Standard Webhooks signing secret: ``whsec_`` and the base64 of 32 random bytes."""
    key = secrets.token_bytes(WEBHOOK_SECRET_BYTES)
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(key).decode("ascii")


def webhook_secret_key(secret: str) -> bytes:
    """The HMAC key of a signing secret: the base64-decoded part after ``whsec_``."""
    return base64.b64decode(secret.removeprefix(WEBHOOK_SECRET_PREFIX), validate=True)


def api_client_webhook_secret(*, client: ApiClient, actor: Actor) -> str:
    """The webhook signing secret of ``client``, made now if it has none yet (a client created
    before clients had secrets). Making one is audited as ``api_client.updated``; the secret
    itself is never written to the trail."""
    if client.webhook_secret:
        return client.webhook_secret
    with transaction.atomic():
        # Locked so that two deliveries for the same client cannot each make a secret and sign
        # with one that is then overwritten.
        locked = ApiClient.objects.select_for_update().get(pk=client.pk)
        if not locked.webhook_secret:
            _set_webhook_secret(locked, actor, change="created")
    client.webhook_secret = locked.webhook_secret
    return client.webhook_secret


def api_client_rotate_webhook_secret(*, client: ApiClient, actor: Actor) -> str:
    """Replace the webhook signing secret of ``client`` by a new one, and return it. Messages
    signed from now on carry the new secret's signature only. Audited as ``api_client.updated``
    (that the secret changed, never the secret)."""
    with transaction.atomic():
        locked = ApiClient.objects.select_for_update().get(pk=client.pk)
        _set_webhook_secret(locked, actor, change="rotated")
    client.webhook_secret = locked.webhook_secret
    return client.webhook_secret


def _set_webhook_secret(client: ApiClient, actor: Actor, *, change: str) -> None:
    client.webhook_secret = webhook_secret_generate()
    client.save(update_fields=["webhook_secret"])
    audit_event_record(
        actor=actor,
        action=AuditAction.API_CLIENT_UPDATED,
        subject=Subject.of(client),
        data={"client": client.name, "webhook_secret": change},
    )


def token_hash(secret: str) -> str:
    """The stored form of a token. Tokens carry 256 random bits, so a fast hash suffices."""
    return hashlib.sha256(secret.encode()).hexdigest()


def api_token_check(secret: str) -> TokenCheck:
    """Which token ``secret`` is, and whether it works: not revoked, not expired, its client
    active (``capabilities.permissions.token_is_live``). One query. A live token's last use
    is recorded, at most once a minute."""
    token = ApiToken.objects.select_related("client").filter(token_hash=token_hash(secret)).first()
    if token is None:
        return TokenCheck(None, TokenRefusal.UNKNOWN)
    if not token_is_live(token):
        return TokenCheck(token, _refusal(token))
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USE_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return TokenCheck(token, None)


def api_token_authenticate(secret: str) -> ApiToken | None:
    """The live token matching ``secret``, or None. Records its last use (at most once a minute)."""
    return api_token_check(secret).live_token


def _refusal(token: ApiToken) -> TokenRefusal:
    if token.revoked_at is not None:
        return TokenRefusal.REVOKED
    if token.expires_at is not None and token.expires_at <= timezone.now():
        return TokenRefusal.EXPIRED
    return TokenRefusal.CLIENT_INACTIVE


def _narrow_tokens(client: ApiClient, removed: set[Capability]) -> list[str]:
    """Take ``removed`` out of the scope of every token of ``client``; their prefixes."""
    scopes = ApiToken.capabilities.through.objects.filter(
        apitoken__client=client, capability__in=removed
    )
    prefixes = sorted(set(scopes.values_list("apitoken__prefix", flat=True)))
    scopes.delete()
    return prefixes


def _pk(user: Any) -> Any:
    return None if user is None else user.pk


def _username(user: Any) -> str | None:
    return None if user is None else user.get_username()
