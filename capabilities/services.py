"""Every change to capabilities, policies and API clients, each audited in its transaction."""

import hashlib
import secrets
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from guardian.shortcuts import assign_perm, get_user_perms

from audit.models import AuditAction
from audit.services import Actor, Subject, audit_event_record
from capabilities.models import ApiClient, ApiToken, Capability, Policy
from capabilities.permissions import can_manage_capability

TOKEN_PREFIX = "sgf_"  # noqa: S105 - a marker that makes leaked tokens easy to scan for


def capability_create(
    *,
    key: str,
    name: str,
    owner: Any,
    auto_approve_at: Decimal,
    auto_reject_below: Decimal,
    description: str = "",
    actor: Actor,
    created_by: Any | None = None,
) -> Capability:
    """Create a capability with its first policy version (published by ``created_by``, if any)."""
    with transaction.atomic():
        capability = Capability(key=key, name=name, owner=owner, description=description)
        capability.full_clean()
        capability.save()
        audit_event_record(
            actor=actor,
            action=AuditAction.CAPABILITY_CREATED,
            subject=Subject.of(capability),
            capability=capability.key,
            data={"key": key, "name": name, "owner": owner.get_username()},
        )
        _policy_insert(
            capability=capability,
            auto_approve_at=auto_approve_at,
            auto_reject_below=auto_reject_below,
            note="Initial policy",
            created_by=created_by,
            actor=actor,
        )
    return capability


def policy_active(capability: Capability) -> Policy:
    """The version in force: the newest one."""
    return capability.policies.order_by("-version").first() or _no_policy(capability)


def policy_publish(
    *,
    capability: Capability,
    auto_approve_at: Decimal,
    auto_reject_below: Decimal,
    note: str = "",
    user: Any,
) -> Policy:
    """Publish new thresholds for ``capability`` as its next policy version.

    The previous versions stay as they were; suggestions keep pointing at the version that
    routed them. Raises ``PermissionDenied`` unless ``user`` manages the capability, and
    ``ValidationError`` (naming the field) for thresholds out of order or outside [0, 1].
    """
    if not can_manage_capability(user, capability):
        raise PermissionDenied(f"{user} may not change the policy of {capability.key}")
    with transaction.atomic():
        return _policy_insert(
            capability=capability,
            auto_approve_at=auto_approve_at,
            auto_reject_below=auto_reject_below,
            note=note,
            created_by=user,
            actor=Actor.user(user),
        )


def _policy_insert(
    *,
    capability: Capability,
    auto_approve_at: Decimal,
    auto_reject_below: Decimal,
    note: str,
    created_by: Any,
    actor: Actor,
) -> Policy:
    # Lock the capability so two publishers cannot both take the same next version number.
    Capability.objects.select_for_update().filter(pk=capability.pk).first()
    previous = capability.policies.aggregate(latest=Max("version"))["latest"] or 0
    policy = Policy(
        capability=capability,
        version=previous + 1,
        auto_approve_at=auto_approve_at,
        auto_reject_below=auto_reject_below,
        note=note,
        created_by=created_by,
    )
    # Field checks first, then the ordering check, so each error names its field; the database
    # constraint stays as the backstop.
    policy.full_clean(exclude=["capability", "version"], validate_constraints=False)
    _check_thresholds_ordered(policy)
    policy.save()
    audit_event_record(
        actor=actor,
        action=AuditAction.POLICY_PUBLISHED,
        subject=Subject.of(policy),
        capability=capability.key,
        data={
            "version": policy.version,
            "previous_version": previous or None,
            "auto_approve_at": policy.auto_approve_at,
            "auto_reject_below": policy.auto_reject_below,
            "note": note,
        },
    )
    return policy


def _check_thresholds_ordered(policy: Policy) -> None:
    if Decimal(policy.auto_reject_below) > Decimal(policy.auto_approve_at):
        raise ValidationError(
            {"auto_reject_below": "Must not be above the auto-approve threshold."}
        )


def _no_policy(capability: Capability) -> Policy:
    raise Policy.DoesNotExist(f"{capability.key} has no policy")


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


def api_token_issue(*, client: ApiClient, actor: Actor) -> IssuedToken:
    """Issue a new bearer token for ``client``; only its hash is stored."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(
            client=client, prefix=secret[: len(TOKEN_PREFIX) + 6], token_hash=token_hash(secret)
        )
        audit_event_record(
            actor=actor,
            action=AuditAction.API_TOKEN_ISSUED,
            subject=Subject.of(token),
            data={"client": client.name, "prefix": token.prefix},
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


def permission_grant(
    *, user: Any, permission: str, capability: Capability | None = None, actor: Actor
) -> bool:
    """Grant ``user`` a permission (``app_label.codename``), on one capability or globally.

    Audited as ``permission.granted`` (who, whom, what, where). Returns False, and records
    nothing, when the user already held it directly.
    """
    app_label, codename = permission.split(".", 1)
    with transaction.atomic():
        if capability is None:
            held = user.user_permissions.filter(
                content_type__app_label=app_label, codename=codename
            ).exists()
        else:
            held = codename in get_user_perms(user, capability)
        if held:
            return False
        assign_perm(permission, user, capability)
        audit_event_record(
            actor=actor,
            action=AuditAction.PERMISSION_GRANTED,
            subject=Subject("user", str(user.pk)),
            capability=capability.key if capability else "",
            data={"user": user.get_username(), "permission": permission},
        )
    return True


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
