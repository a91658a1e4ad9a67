"""Who holds which role and permission: grants and revocations, each audited (who, whom, what).

Every path that changes access (the admin, the ``access`` command, single sign-on, the demo
seed) goes through these functions, so every change leaves its audit event.
"""

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction
from guardian.shortcuts import assign_perm, get_user_perms, remove_perm

from audit.models import AuditAction
from audit.services import Actor, Subject, audit_event_record
from capabilities.models import Capability
from capabilities.roles import ROLES, Role


def role_grant(
    *, user: Any, role: str, capabilities: Iterable[Capability] = (), actor: Actor
) -> None:
    """Give ``user`` the ``role`` (its group, and the admin site if the role needs it), and the
    role's permissions on each of ``capabilities``.

    Audited as ``role.granted`` when the user was not in the role yet, and one
    ``permission.granted`` per new capability permission. Granting again changes nothing.
    Raises ``ValidationError`` naming ``role`` for an unknown role.
    """
    definition = _role(role)
    with transaction.atomic():
        group = Group.objects.get(name=definition.name)
        if not user.groups.filter(pk=group.pk).exists():
            user.groups.add(group)
            if definition.staff and not user.is_staff:
                user.is_staff = True
                user.save(update_fields=["is_staff"])
            audit_event_record(
                actor=actor,
                action=AuditAction.ROLE_GRANTED,
                subject=_subject(user),
                data={"user": user.get_username(), "role": definition.name},
            )
        for capability in capabilities:
            for permission in definition.capability_permissions:
                permission_grant(
                    user=user, permission=permission, capability=capability, actor=actor
                )


def role_revoke(
    *,
    user: Any,
    role: str,
    capabilities: Iterable[Capability] | None = None,
    actor: Actor,
) -> None:
    """Take the role's permissions on ``capabilities`` away from ``user``; without
    ``capabilities``, take the whole role: the group and the role's permissions everywhere.

    Audited as ``permission.revoked`` per permission removed and ``role.revoked`` when the
    user leaves the role. Permissions another role of the user also grants are kept; the admin
    site is closed to them when no remaining role opens it.
    """
    definition = _role(role)
    with transaction.atomic():
        kept = {
            permission
            for other in user.groups.exclude(name=definition.name).values_list("name", flat=True)
            if other in ROLES
            for permission in ROLES[other].capability_permissions
        }
        if capabilities is None:
            targets: Iterable[Capability] = Capability.objects.all()
        else:
            targets = capabilities
        for capability in targets:
            for permission in definition.capability_permissions:
                if permission not in kept:
                    permission_revoke(
                        user=user, permission=permission, capability=capability, actor=actor
                    )
        if capabilities is None and user.groups.filter(name=definition.name).exists():
            user.groups.remove(Group.objects.get(name=definition.name))
            still_staff = any(
                ROLES[name].staff
                for name in user.groups.values_list("name", flat=True)
                if name in ROLES
            )
            if user.is_staff and not still_staff and not user.is_superuser:
                user.is_staff = False  # the admin site was part of the role, not of the person
                user.save(update_fields=["is_staff"])
            audit_event_record(
                actor=actor,
                action=AuditAction.ROLE_REVOKED,
                subject=_subject(user),
                data={"user": user.get_username(), "role": definition.name},
            )


def permission_grant(
    *, user: Any, permission: str, capability: Capability | None = None, actor: Actor
) -> bool:
    """Grant ``user`` a permission (``app_label.codename``), on one capability or globally.

    Audited as ``permission.granted`` (who, whom, what, where). Returns False, and records
    nothing, when the user already held it directly.
    """
    with transaction.atomic():
        if _holds(user, permission, capability):
            return False
        assign_perm(permission, user, capability)
        audit_event_record(
            actor=actor,
            action=AuditAction.PERMISSION_GRANTED,
            subject=_subject(user),
            capability=capability.key if capability else "",
            data={"user": user.get_username(), "permission": permission},
        )
    return True


def permission_revoke(
    *, user: Any, permission: str, capability: Capability | None = None, actor: Actor
) -> bool:
    """Take a directly held permission away from ``user``, on one capability or globally.

    Audited as ``permission.revoked``. Returns False, and records nothing, when the user did
    not hold it directly.
    """
    with transaction.atomic():
        if not _holds(user, permission, capability):
            return False
        remove_perm(permission, user, capability)
        audit_event_record(
            actor=actor,
            action=AuditAction.PERMISSION_REVOKED,
            subject=_subject(user),
            capability=capability.key if capability else "",
            data={"user": user.get_username(), "permission": permission},
        )
    return True


def _holds(user: Any, permission: str, capability: Capability | None) -> bool:
    app_label, codename = permission.split(".", 1)
    if capability is None:
        return bool(
            user.user_permissions.filter(
                content_type__app_label=app_label, codename=codename
            ).exists()
        )
    return codename in get_user_perms(user, capability)


def _role(name: str) -> Role:
    try:
        return ROLES[name]
    except KeyError:
        known = ", ".join(sorted(ROLES))
        raise ValidationError({"role": f"Unknown role {name!r}; the roles are {known}."}) from None


def _subject(user: Any) -> Subject:
    return Subject("user", str(user.pk))
