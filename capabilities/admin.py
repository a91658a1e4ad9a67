"""The admin for managers: capabilities and their thresholds, policy history, API clients.

Every write goes through ``capabilities.services``, so it is permission-checked and audited
like any other path. What has no audited service yet is shown read-only: capability fields
after creation, API clients, and policies, which are immutable by design.
"""

from decimal import Decimal
from typing import Any

from django.contrib import admin, messages
from django.db.models import OuterRef, QuerySet, Subquery
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse

from audit.services import Actor
from capabilities.forms import THRESHOLD_FIELDS, CapabilityAdminForm
from capabilities.models import ApiClient, ApiToken, Capability, Policy
from capabilities.permissions import can_manage_capability, visible_capabilities
from capabilities.services import capability_create, policy_active, policy_publish

CAPABILITY_FIELDS = ("key", "name", "description", "owner")


def _active_policy_field(name: str) -> Subquery:
    newest = Policy.objects.filter(capability=OuterRef("pk")).order_by("-version")
    return Subquery(newest.values(name)[:1])


class PolicyInline(admin.TabularInline):
    """The capability's policy versions, newest first. History is never edited."""

    model = Policy
    fields = ("version", "auto_approve_at", "auto_reject_below", "note", "created_by", "created_at")
    readonly_fields = fields
    ordering = ("-version",)
    extra = 0
    can_delete = False
    verbose_name = "policy version"
    verbose_name_plural = "policy versions"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Policy]:
        return super().get_queryset(request).select_related("capability", "created_by")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Capability)
class CapabilityAdmin(admin.ModelAdmin):
    """Capabilities and their thresholds.

    Changing a threshold publishes a new policy version with ``policy_publish``; creating a
    capability goes through ``capability_create``, which publishes version 1. Only users who
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
        "created_at",
    )
    list_select_related = ("owner",)
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
                (
                    "Initial policy",
                    {
                        "fields": THRESHOLD_FIELDS,
                        "description": "Published as version 1 when the capability is created.",
                    },
                ),
            ]
        policy_fields: tuple[str, ...] = ("active_version", *THRESHOLD_FIELDS)
        description = "The thresholds in force."
        if self.has_change_permission(request, obj):
            policy_fields = (*policy_fields, "policy_note")
            description = (
                "Changing a threshold publishes a new policy version; earlier versions stay "
                "as they were, and suggestions keep the version that routed them."
            )
        return [
            (None, {"fields": (*CAPABILITY_FIELDS, "created_at")}),
            ("Active policy", {"fields": policy_fields, "description": description}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Capability | None = None) -> Any:
        if obj is None:
            return ()
        # Capability fields have no audited update service yet: only thresholds change here.
        readonly: tuple[str, ...] = (*CAPABILITY_FIELDS, "created_at", "active_version")
        if not self.has_change_permission(request, obj):
            readonly = (*readonly, *THRESHOLD_FIELDS)
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
        # back everything the request wrote; the form has validated the thresholds already.
        data = form.cleaned_data
        if not change:
            created = capability_create(
                key=obj.key,
                name=obj.name,
                description=obj.description,
                owner=obj.owner,
                auto_approve_at=data["auto_approve_at"],
                auto_reject_below=data["auto_reject_below"],
                actor=Actor.user(request.user),
                created_by=request.user,
            )
            # The admin goes on with the instance it passed in (to log and redirect).
            obj.pk = created.pk
            obj.created_at = created.created_at
            obj._state.adding = False
            obj._state.db = created._state.db
            return
        # The capability's own fields are read-only after creation (see get_readonly_fields):
        # a change only ever publishes a policy version.
        assert isinstance(form, CapabilityAdminForm)
        if not form.thresholds_changed():
            self.message_user(request, "Thresholds unchanged: no new policy version was published.")
            return
        policy = policy_publish(
            capability=obj,
            auto_approve_at=data["auto_approve_at"],
            auto_reject_below=data["auto_reject_below"],
            note=data.get("policy_note", ""),
            user=request.user,
        )
        self.message_user(
            request,
            f"Published policy version {policy.version} of {obj.key}: auto-approve at "
            f"{policy.auto_approve_at}, auto-reject below {policy.auto_reject_below}.",
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


@admin.register(Policy)
class PolicyAdmin(admin.ModelAdmin):
    """Every policy version, read-only: publishing happens on the capability's page."""

    list_display = (
        "capability",
        "version",
        "auto_approve_at",
        "auto_reject_below",
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

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Policy | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Policy | None = None) -> bool:
        return False


class ApiTokenInline(admin.TabularInline):
    """A client's tokens: only a prefix is ever shown; the secret was shown once, at issue."""

    model = ApiToken
    fields = ("prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Tokens are part of the client: whoever may view the client sees their prefixes.
        return request.user.has_perm("capabilities.view_apiclient")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    """API clients, read-only.

    Clients are created with ``manage.py create_api_client``, which shows the token once.
    Activation and scope changes need an audited service before they can be edited here.
    """

    list_display = ("name", "scope", "is_active", "created_at")
    list_filter = ("is_active",)
    search_fields = ("name", "description", "capabilities__key")
    fields = ("name", "description", "capabilities", "is_active", "created_at")
    readonly_fields = fields
    inlines = (ApiTokenInline,)

    changelist_note = (
        "API clients are created with `python manage.py create_api_client NAME --capability "
        "KEY`, which shows the new token once (only its hash is stored)."
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiClient]:
        queryset = super().get_queryset(request).prefetch_related("capabilities")
        if request.user.is_superuser:
            return queryset
        visible = visible_capabilities(request.user).values("pk")
        return queryset.filter(capabilities__in=visible).distinct()

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        return super().changelist_view(
            request, extra_context={"subtitle": self.changelist_note, **(extra_context or {})}
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ApiClient | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ApiClient | None = None) -> bool:
        return False

    @admin.display(description="Capabilities")
    def scope(self, obj: ApiClient) -> str:
        return ", ".join(sorted(capability.key for capability in obj.capabilities.all()))
