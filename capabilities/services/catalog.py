"""Capabilities and their versioned policies: every change audited in its transaction."""

from decimal import Decimal
from typing import Any, Literal

from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max

from audit.models import AuditAction
from audit.services import Actor, Subject, audit_event_record
from capabilities.models import Capability, Policy
from capabilities.permissions import can_manage_capability
from capabilities.schemas import check_schema
from capabilities.services.clients import UNCHANGED, _Unchanged

# The longest deadline a rung of the escalation ladder may have: one week.
SLA_MINUTES_MAX = 7 * 24 * 60


def capability_create(
    *,
    key: str,
    name: str,
    auto_approve_at: Decimal,
    auto_reject_below: Decimal,
    actor: Actor,
    owner: Any | None = None,
    owner_group: Group | None = None,
    description: str = "",
    required_approvals: int = 1,
    sla_minutes: int | None = None,
    sla_default: str = "reject",
    created_by: Any | None = None,
    payload_schema: dict[str, Any] | None = None,
) -> Capability:
    """Create a capability, accountable to ``owner`` and/or ``owner_group``, with its first
    policy version (published by ``created_by``, if any). Without ``sla_minutes`` its items
    have no deadline; without ``payload_schema`` any JSON object is a valid payload. Raises
    ``ValidationError`` naming the field for a bad key, a missing owner, bad thresholds, a bad
    deadline or an invalid schema; nothing is saved then."""
    check_schema(payload_schema)
    with transaction.atomic():
        capability = Capability(
            key=key,
            name=name,
            owner=owner,
            owner_group=owner_group,
            description=description,
            payload_schema=payload_schema,
        )
        capability.full_clean()
        capability.save()
        audit_event_record(
            actor=actor,
            action=AuditAction.CAPABILITY_CREATED,
            subject=Subject.of(capability),
            capability=capability.key,
            data={
                "key": key,
                "name": name,
                "owner": owner.get_username() if owner else None,
                "owner_group": owner_group.name if owner_group else None,
                "payload_schema": payload_schema,
            },
        )
        _policy_insert(
            capability=capability,
            auto_approve_at=auto_approve_at,
            auto_reject_below=auto_reject_below,
            required_approvals=required_approvals,
            sla_minutes=sla_minutes,
            sla_default=sla_default,
            note="Initial policy",
            created_by=created_by,
            actor=actor,
        )
    return capability


def capability_schema_set(
    *, capability: Capability, schema: dict[str, Any] | None, user: Any
) -> Capability:
    """Replace the JSON Schema that payloads of ``capability`` must satisfy (``None``: none).

    Applies to what is submitted or edited from now on; stored suggestions are not checked
    again. Records ``capability.updated`` with the old and the new schema; setting the schema
    it already has changes nothing and records nothing. Raises ``PermissionDenied`` unless
    ``user`` manages the capability, and ``ValidationError`` naming ``payload_schema`` for an
    invalid schema.
    """
    if not can_manage_capability(user, capability):
        raise PermissionDenied(f"{user} may not change {capability.key}")
    check_schema(schema)
    with transaction.atomic():
        # Read the old schema under the lock: the caller's instance may already hold the new
        # one (a bound admin form writes it there), and two editors must not both see the
        # same "old" schema in the trail.
        locked = Capability.objects.select_for_update().get(pk=capability.pk)
        old = locked.payload_schema
        capability.payload_schema = schema
        if old == schema:
            return capability
        locked.payload_schema = schema
        locked.save(update_fields=["payload_schema"])
        audit_event_record(
            actor=Actor.user(user),
            action=AuditAction.CAPABILITY_UPDATED,
            subject=Subject.of(capability),
            capability=capability.key,
            data={"payload_schema": {"from": old, "to": schema}},
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
    required_approvals: int | None = None,
    sla_minutes: int | Literal[_Unchanged.UNCHANGED] | None = UNCHANGED,
    sla_default: str | None = None,
    note: str = "",
    user: Any,
) -> Policy:
    """Publish new thresholds for ``capability`` as its next policy version.

    The previous versions stay as they were; suggestions keep pointing at the version that
    routed them. Raises ``PermissionDenied`` unless ``user`` manages the capability, and
    ``ValidationError`` (naming the field) for thresholds out of order or outside [0, 1].
    ``required_approvals`` (1, or 2 for four eyes), ``sla_minutes`` (the deadline at each
    rung of the escalation ladder; ``None`` for none) and ``sla_default`` (``"reject"`` or
    ``"approve"``: what decides an item past the top of the ladder) stay as they were unless
    given. ``sla_minutes`` defaults to ``UNCHANGED`` because ``None`` is a value there.
    """
    if not can_manage_capability(user, capability):
        raise PermissionDenied(f"{user} may not change the policy of {capability.key}")
    with transaction.atomic():
        # Unchanged unless given.
        active = policy_active(capability)
        if required_approvals is None:
            required_approvals = active.required_approvals
        if sla_minutes is UNCHANGED:
            sla_minutes = active.sla_minutes
        if sla_default is None:
            sla_default = active.sla_default
        return _policy_insert(
            capability=capability,
            auto_approve_at=auto_approve_at,
            auto_reject_below=auto_reject_below,
            required_approvals=required_approvals,
            sla_minutes=sla_minutes,
            sla_default=sla_default,
            note=note,
            created_by=user,
            actor=Actor.user(user),
        )


def _policy_insert(
    *,
    capability: Capability,
    auto_approve_at: Decimal,
    auto_reject_below: Decimal,
    required_approvals: int,
    sla_minutes: int | None,
    sla_default: str,
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
        required_approvals=required_approvals,
        sla_minutes=sla_minutes,
        sla_default=sla_default,
        note=note,
        created_by=created_by,
    )
    # Field checks first, then the ordering check, so each error names its field; the database
    # constraint stays as the backstop.
    policy.full_clean(exclude=["capability", "version"], validate_constraints=False)
    _check_thresholds_ordered(policy)
    _check_sla(policy)
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
            "required_approvals": policy.required_approvals,
            "sla_minutes": policy.sla_minutes,
            "sla_default": policy.sla_default,
            "note": note,
        },
    )
    return policy


def _check_thresholds_ordered(policy: Policy) -> None:
    if Decimal(policy.auto_reject_below) > Decimal(policy.auto_approve_at):
        raise ValidationError(
            {"auto_reject_below": "Must not be above the auto-approve threshold."}
        )


def _check_sla(policy: Policy) -> None:
    # The model field only refuses negatives; the bounds live here, where every path passes.
    if policy.sla_minutes is not None and not 1 <= policy.sla_minutes <= SLA_MINUTES_MAX:
        raise ValidationError(
            {"sla_minutes": f"Must be between 1 and {SLA_MINUTES_MAX} minutes, or empty."}
        )


def _no_policy(capability: Capability) -> Policy:
    raise Policy.DoesNotExist(f"{capability.key} has no policy")
