"""Suggestions and decisions in the admin, read-only: decisions are made on the review pages,
through ``reviews.services``, never by editing rows."""

import json
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from reviews.models import Decision, Suggestion


def _pretty_json(value: Any) -> SafeString:
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    # Styled by signoff/admin.css: the CSP allows no style attribute.
    return format_html('<pre class="signoff-json">{}</pre>', text)


class ReadOnlyAdmin(admin.ModelAdmin):
    """No add, change or delete, whatever the user's model permissions say."""

    class Media:
        css = {"all": ("signoff/admin.css",)}

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DecisionInline(admin.TabularInline):
    model = Decision
    fields = ("created_at", "outcome", "reviewer", "is_final", "is_override", "reason")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def get_queryset(self, request: HttpRequest) -> QuerySet[Decision]:
        return super().get_queryset(request).select_related("reviewer", "suggestion")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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
        return _pretty_json(obj.payload)

    @admin.display(description="Final payload")
    def pretty_final_payload(self, obj: Suggestion) -> SafeString:
        return _pretty_json(obj.final_payload)

    @admin.display(description="Context")
    def pretty_context(self, obj: Suggestion) -> SafeString:
        return _pretty_json(obj.context)

    @admin.display(description="Execution result")
    def pretty_execution_result(self, obj: Suggestion) -> SafeString:
        return _pretty_json(obj.execution_result)


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
        return _pretty_json(obj.final_payload)
