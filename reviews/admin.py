"""Suggestions and decisions in the admin, read-only: decisions are made on the review pages,
through ``reviews.services``, never by editing rows."""

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.db.models.functions import Length
from django.http import HttpRequest
from django.utils.safestring import SafeString

from audit.admin import ReadOnlyMixin, pretty_json_html
from audit.permissions import can_read_audit_trail
from capabilities.permissions import can_administer_capabilities
from reviews.models import (
    Decision,
    IdempotencyKey,
    OutboxItem,
    Suggestion,
    WebhookAttempt,
    WebhookDelivery,
)


class ReadOnlyAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """No add, change or delete, whatever the user's model permissions say."""

    class Media:
        css = {"all": ("signoff/admin.css",)}


class DecisionInline(ReadOnlyMixin, admin.TabularInline):
    model = Decision
    fields = ("created_at", "outcome", "reviewer", "is_final", "is_override", "reason")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def get_queryset(self, request: HttpRequest) -> QuerySet[Decision]:
        return super().get_queryset(request).select_related("reviewer", "suggestion")


@admin.register(Suggestion)
class SuggestionAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "capability",
        "external_id",
        "status",
        "confidence",
        "policy_version",
        "model_name",
        "model_version",
        "execution_status",
        "created_at",
    )
    list_select_related = ("capability", "policy", "api_client")
    list_filter = ("status", "capability", "execution_status", "model_name")
    # ``id__exact`` skips terms that are not UUIDs instead of failing the search.
    search_fields = ("external_id", "id__exact")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    show_full_result_count = False
    inlines = (DecisionInline,)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "capability",
                    "policy",
                    "api_client",
                    "external_id",
                    "status",
                    "route_reason",
                    "confidence",
                    "created_at",
                    "decided_at",
                )
            },
        ),
        ("Proposal", {"fields": ("pretty_payload", "pretty_final_payload")}),
        ("Model", {"fields": ("model_name", "model_version", "model_provider", "attempt")}),
        ("Input", {"fields": ("prompt", "pretty_context")}),
        ("Usage", {"fields": ("input_tokens", "output_tokens", "cost")}),
        ("Claim", {"fields": ("claimed_by", "claim_expires_at")}),
        (
            "Execution",
            {
                "fields": (
                    "execution_status",
                    "execution_attempts",
                    "executed_at",
                    "execution_error",
                    "pretty_execution_result",
                    "callback_url",
                )
            },
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Suggestion]:
        return (
            super()
            .get_queryset(request)
            .select_related("capability", "policy", "api_client", "claimed_by")
        )

    @admin.display(description="Policy", ordering="policy__version")
    def policy_version(self, obj: Suggestion) -> str:
        return f"v{obj.policy.version}"

    @admin.display(description="Payload")
    def pretty_payload(self, obj: Suggestion) -> SafeString:
        return pretty_json_html(obj.payload)

    @admin.display(description="Final payload")
    def pretty_final_payload(self, obj: Suggestion) -> SafeString:
        return pretty_json_html(obj.final_payload)

    @admin.display(description="Context")
    def pretty_context(self, obj: Suggestion) -> SafeString:
        return pretty_json_html(obj.context)

    @admin.display(description="Execution result")
    def pretty_execution_result(self, obj: Suggestion) -> SafeString:
        return pretty_json_html(obj.execution_result)


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "suggestion",
        "outcome",
        "reviewer",
        "is_final",
        "is_override",
        "policy",
    )
    list_select_related = ("suggestion__capability", "reviewer", "policy__capability")
    list_filter = ("outcome", "is_final", "is_override", "suggestion__capability")
    search_fields = ("suggestion__external_id", "suggestion__id__exact")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-id")
    show_full_result_count = False
    fields = (
        "suggestion",
        "outcome",
        "reviewer",
        "is_final",
        "is_override",
        "reason",
        "pretty_final_payload",
        "policy",
        "created_at",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Decision]:
        return (
            super()
            .get_queryset(request)
            .select_related("suggestion__capability", "reviewer", "policy__capability")
        )

    @admin.display(description="Final payload")
    def pretty_final_payload(self, obj: Decision) -> SafeString:
        return pretty_json_html(obj.final_payload)


# --- Delivery machinery: outbox, webhooks, idempotency keys ---------------------------------------


def _administrator_or_auditor(request: HttpRequest) -> bool:
    user = request.user
    return can_administer_capabilities(user) or can_read_audit_trail(user)


class MachineryAdmin(ReadOnlyAdmin):
    """Read-only views of how work leaves Signoff, for administrators and auditors (as the
    submission retries page is); the roles hold no model permission on these tables."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return super().has_module_permission(request) or _administrator_or_auditor(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_view_permission(request, obj) or _administrator_or_auditor(request)

    def get_actions(
        self,
        request: HttpRequest,
        action_location: admin.ActionLocation = admin.ActionLocation.CHANGE_LIST,
    ) -> dict[str, Any]:
        actions = super().get_actions(request, action_location=action_location)
        actions.pop("delete_selected", None)
        return actions


@admin.register(OutboxItem)
class OutboxItemAdmin(MachineryAdmin):
    list_display = (
        "id",
        "kind",
        "ref",
        "created_at",
        "available_at",
        "enqueued_at",
        "enqueue_count",
        "done_at",
    )
    list_filter = ("kind", ("done_at", admin.EmptyFieldListFilter), "available_at")
    search_fields = ("ref",)
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-id")
    show_full_result_count = False
    fields = list_display
    readonly_fields = fields


class WebhookAttemptInline(ReadOnlyMixin, admin.TabularInline):
    model = WebhookAttempt
    fields = ("attempted_at", "status_code", "duration_ms", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The attempts are part of the delivery: whoever may view it sees them.
        return super().has_view_permission(request, obj) or _administrator_or_auditor(request)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(MachineryAdmin):
    list_display = (
        "created_at",
        "event_type",
        "suggestion",
        "state",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "delivered_at",
    )
    list_select_related = ("suggestion__capability",)
    list_filter = ("state", "event_type", "suggestion__capability", "created_at")
    # ``suggestion__id__exact`` skips terms that are not UUIDs instead of failing the search.
    search_fields = ("message_id", "url", "suggestion__external_id", "suggestion__id__exact")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-id")
    show_full_result_count = False
    inlines = (WebhookAttemptInline,)
    fields = (
        "message_id",
        "event_type",
        "suggestion",
        "url",
        "state",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "created_at",
        "delivered_at",
        "pretty_payload",
    )
    readonly_fields = fields

    @admin.display(description="Payload")
    def pretty_payload(self, obj: WebhookDelivery) -> SafeString:
        return pretty_json_html(obj.payload)


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(MachineryAdmin):
    """The keys clients sent and what was stored for replay. The stored answer itself is never
    shown (it may carry the client's data): only its length."""

    list_display = (
        "key",
        "client",
        "capability_key",
        "state",
        "response_status",
        "response_size",
        "replays",
        "created_at",
        "completed_at",
    )
    list_select_related = ("client",)
    list_filter = (
        "state",
        ("client", admin.RelatedOnlyFieldListFilter),
        "capability_key",
        "response_status",
        "created_at",
    )
    search_fields = ("key", "capability_key", "client__name")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-id")
    show_full_result_count = False
    fields = (
        "key",
        "client",
        "capability_key",
        "state",
        "request_hash",
        "response_status",
        "response_size",
        "replays",
        "created_at",
        "completed_at",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[IdempotencyKey]:
        return (
            super()
            .get_queryset(request)
            .defer("response_body")
            .annotate(response_body_length=Length("response_body"))
        )

    @admin.display(description="Stored response (bytes)", ordering="response_body_length")
    def response_size(self, obj: IdempotencyKey) -> int | str:
        length = getattr(obj, "response_body_length", None)
        return "-" if length is None else length
