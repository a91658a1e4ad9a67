"""Who holds which permission: grants and revocations, each audited (who, whom, what)."""

from typing import Any

from django.db import transaction
from guardian.shortcuts import assign_perm, get_user_perms

from audit.models import AuditAction
from audit.services import Actor, Subject, audit_event_record
from capabilities.models import Capability


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
