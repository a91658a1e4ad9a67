"""The admin for managers: capabilities, their payload schema and the rules of their active
policy, and the history of policy versions. Every write goes through ``capabilities.services``
(permission-checked and audited); policies are immutable, and a capability's own fields but its
payload schema are read-only once created."""

from decimal import Decimal
from typing import Any

from django.contrib import admin, messages
from django.db.models import OuterRef, QuerySet, Subquery
from django.forms import ModelForm
from django.http import HttpRequest

from audit.admin import ReadOnlyMixin
from audit.services import Actor
from capabilities.forms import POLICY_FIELDS, CapabilityAdminForm
from capabilities.models import Capability, Policy
from capabilities.permissions import can_manage_capability, visible_capabilities
from capabilities.services import (
    capability_create,
    capability_schema_set,
    policy_active,
    policy_publish,
)

CAPABILITY_FIELDS = ("key", "name", "description", "owner", "owner_group")
SCHEMA_FIELDSET = (
    "Payload schema",
    {
        "fields": ("payload_schema",),
        "description": "Proposed and edited payloads must satisfy it; empty: any JSON object.",
    },
)
_SLA_DEFAULTS = Policy._meta.get_field("sla_default").choices or []


def _active_policy_field(name: str) -> Subquery:
    newest = Policy.objects.filter(capability=OuterRef("pk")).order_by("-version")
    return Subquery(newest.values(name)[:1])


class PolicyInline(ReadOnlyMixin, admin.TabularInline):
    """The capability's policy versions, newest first. History is never edited."""

    model = Policy
    fields = (
        "version",
        "auto_approve_at",
        "auto_reject_below",
        "required_approvals",
        "sla_minutes",
        "sla_default",
        "note",
        "created_by",
        "created_at",
    )
    readonly_fields = fields
    ordering = ("-version",)
    extra = 0
    can_delete = False
    verbose_name = "policy version"
    verbose_name_plural = "policy versions"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Policy]:
        return super().get_queryset(request).select_related("capability", "created_by")


@admin.register(Capability)
class CapabilityAdmin(admin.ModelAdmin):
    """Capabilities and the rules of their active policy: thresholds, approvers, deadline.

    Changing a rule publishes a new policy version with ``policy_publish``; changing the payload
    schema goes through ``capability_schema_set``; creating a capability goes through
    ``capability_create``, which publishes version 1. Only users who
    manage a capability (object permission) may change it, on top of the model permission.
    """

    form = CapabilityAdminForm
    list_display = (
        "key",
        "name",
        "owner",
        "active_version",
        "auto_approve_at",
        "auto_reject_below",
        "required_approvals",
        "sla_minutes",
        "created_at",
    )
    list_select_related = ("owner", "owner_group")
    search_fields = ("key", "name", "description", "owner__username")
    list_filter = (("owner", admin.RelatedOnlyFieldListFilter), "created_at")
    ordering = ("key",)

    # --- Queryset and permissions -------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[Capability]:
        queryset = (
            super()
            .get_queryset(request)
            .annotate(
                active_version=_active_policy_field("version"),
                active_auto_approve_at=_active_policy_field("auto_approve_at"),
                active_auto_reject_below=_active_policy_field("auto_reject_below"),
                active_required_approvals=_active_policy_field("required_approvals"),
                active_sla_minutes=_active_policy_field("sla_minutes"),
                active_sla_default=_active_policy_field("sla_default"),
            )
        )
        if request.user.is_superuser:
            return queryset
        return queryset.filter(pk__in=visible_capabilities(request.user).values("pk"))

    def has_change_permission(self, request: HttpRequest, obj: Capability | None = None) -> bool:
        if not super().has_change_permission(request, obj):
            return False
        return obj is None or can_manage_capability(request.user, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Capability | None = None) -> bool:
        # Suggestions and policies refer to capabilities and deletion is not audited.
        return False

    # --- Form layout --------------------------------------------------------------------------

    def get_fieldsets(self, request: HttpRequest, obj: Capability | None = None) -> Any:
        if obj is None:
            return [
                (None, {"fields": CAPABILITY_FIELDS}),
                SCHEMA_FIELDSET,
                (
                    "Initial policy",
                    {
                        "fields": POLICY_FIELDS,
                        "description": "Published as version 1 when the capability is created.",
                    },
                ),
            ]
        policy_fields: tuple[str, ...] = ("active_version", *POLICY_FIELDS)
        description = "The rules in force."
        if self.has_change_permission(request, obj):
            policy_fields = (*policy_fields, "policy_note")
            description = (
                "Changing a rule publishes a new policy version; earlier versions stay "
                "as they were, and suggestions keep the version that routed them."
            )
        return [
            (None, {"fields": (*CAPABILITY_FIELDS, "created_at")}),
            SCHEMA_FIELDSET,
            ("Active policy", {"fields": policy_fields, "description": description}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Capability | None = None) -> Any:
        if obj is None:
            return ()
        # Capability fields have no audited update service yet: only the payload schema (with
        # capability_schema_set) and the policy rules change here.
        readonly: tuple[str, ...] = (*CAPABILITY_FIELDS, "created_at", "active_version")
        if not self.has_change_permission(request, obj):
            readonly = (*readonly, "payload_schema", *POLICY_FIELDS)
        return readonly

    def get_inlines(self, request: HttpRequest, obj: Capability | None) -> Any:
        return [PolicyInline] if obj is not None else []

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {"owner": request.user.pk, **super().get_changeform_initial_data(request)}

    # --- Saving -------------------------------------------------------------------------------

    def save_model(
        self, request: HttpRequest, obj: Capability, form: ModelForm, change: bool
    ) -> None:
        # The admin wraps this in the change view's transaction, so a failing publish rolls
        # back everything the request wrote; the form has validated the policy fields already.
        data = form.cleaned_data
        if not change:
            created = capability_create(
                key=obj.key,
                name=obj.name,
                description=obj.description,
                owner=obj.owner,
                owner_group=obj.owner_group,
                auto_approve_at=data["auto_approve_at"],
                auto_reject_below=data["auto_reject_below"],
                required_approvals=int(data["required_approvals"]),
                sla_minutes=data["sla_minutes"],
                sla_default=data["sla_default"],
                actor=Actor.user(request.user),
                created_by=request.user,
                payload_schema=data.get("payload_schema"),
            )
            # The admin goes on with the instance it passed in (to log and redirect).
            obj.pk = created.pk
            obj.created_at = created.created_at
            obj._state.adding = False
            obj._state.db = created._state.db
            return
        # The capability's own fields but the schema are read-only after creation (see
        # get_readonly_fields): a change sets the schema and/or publishes a policy version.
        assert isinstance(form, CapabilityAdminForm)
        if "payload_schema" in form.changed_data:
            capability_schema_set(capability=obj, schema=data["payload_schema"], user=request.user)
            self.message_user(request, f"Payload schema of {obj.key} updated.", messages.SUCCESS)
        if not form.policy_changed():
            self.message_user(request, "Policy unchanged: no new policy version was published.")
            return
        policy = policy_publish(
            capability=obj,
            auto_approve_at=data["auto_approve_at"],
            auto_reject_below=data["auto_reject_below"],
            required_approvals=int(data["required_approvals"]),
            sla_minutes=data["sla_minutes"],
            sla_default=data["sla_default"],
            note=data.get("policy_note", ""),
            user=request.user,
        )
        deadline = (
            f"a {policy.sla_minutes}-minute deadline per rung, then "
            f"{policy.get_sla_default_display().lower()}"
            if policy.sla_minutes is not None
            else "no deadline"
        )
        self.message_user(
            request,
            f"Published policy version {policy.version} of {obj.key}: auto-approve at "
            f"{policy.auto_approve_at}, auto-reject below {policy.auto_reject_below}, "
            f"{policy.required_approvals} approver(s), {deadline}.",
            messages.SUCCESS,
        )

    # --- Columns ------------------------------------------------------------------------------

    @admin.display(description="Policy version", ordering="active_version")
    def active_version(self, obj: Capability) -> int:
        version = getattr(obj, "active_version", None)
        return version if version is not None else policy_active(obj).version

    @admin.display(description="Auto-approve at", ordering="active_auto_approve_at")
    def auto_approve_at(self, obj: Capability) -> Decimal:
        value = getattr(obj, "active_auto_approve_at", None)
        return value if value is not None else policy_active(obj).auto_approve_at

    @admin.display(description="Auto-reject below", ordering="active_auto_reject_below")
    def auto_reject_below(self, obj: Capability) -> Decimal:
        value = getattr(obj, "active_auto_reject_below", None)
        return value if value is not None else policy_active(obj).auto_reject_below

    @admin.display(description="Approvers needed", ordering="active_required_approvals")
    def required_approvals(self, obj: Capability) -> int:
        value = getattr(obj, "active_required_approvals", None)
        return value if value is not None else policy_active(obj).required_approvals

    @admin.display(description="Deadline per rung (minutes)", ordering="active_sla_minutes")
    def sla_minutes(self, obj: Capability) -> int | str:
        # Unlike the others, an empty value means something here (no deadline), so the
        # fallback asks whether the annotation exists rather than whether it is empty.
        if hasattr(obj, "active_sla_minutes"):
            value = obj.active_sla_minutes
        else:
            value = policy_active(obj).sla_minutes
        return value if value is not None else "No deadline"

    @admin.display(description="Past the owner's deadline", ordering="active_sla_default")
    def sla_default(self, obj: Capability) -> str:
        value = getattr(obj, "active_sla_default", None)
        if value is None:
            value = policy_active(obj).sla_default
        return str(dict(_SLA_DEFAULTS).get(value, value))


@admin.register(Policy)
class PolicyAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Every policy version, read-only: publishing happens on the capability's page."""

    list_display = (
        "capability",
        "version",
        "auto_approve_at",
        "auto_reject_below",
        "sla_minutes",
        "sla_default",
        "note",
        "created_by",
        "created_at",
    )
    list_select_related = ("capability", "created_by")
    list_filter = (("capability", admin.RelatedOnlyFieldListFilter),)
    search_fields = ("capability__key", "note")
    ordering = ("capability__key", "-version")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Policy]:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(capability__in=visible_capabilities(request.user).values("pk"))
