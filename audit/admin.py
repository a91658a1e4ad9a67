"""The audit trail in the admin, for auditors: read-only, for everyone, superusers included."""

import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from audit.models import AuditEvent


class ReadOnlyMixin:
    """No add, change or delete in the admin, whatever the user's model permissions say: for the
    trail, and for every row that only services write. Mixed into model admins and inlines."""

    def has_add_permission(self, request: HttpRequest, *args: Any, **kwargs: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def pretty_json_html(value: Any) -> SafeString:
    """``value`` as indented JSON in a <pre>, escaped; styled by signoff/admin.css (the CSP
    allows no style attribute)."""
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    return format_html('<pre class="signoff-json">{}</pre>', text)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Lists and shows audit events. Nothing can be added, changed or deleted here: the trail
    is append-only (the ORM and the database refuse changes too)."""

    list_display = (
        "sequence",
        "occurred_at",
        "actor_label",
        "actor_type",
        "action",
        "subject_type",
        "subject_id",
        "capability",
    )
    list_filter = ("action", "actor_type", "capability", "subject_type")
    search_fields = ("subject_id", "actor_label", "actor_id", "capability")
    date_hierarchy = "occurred_at"
    ordering = ("-sequence",)
    # Counting a long trail on every page is slow; the filtered count is enough.
    show_full_result_count = False
    fieldsets = (
        (None, {"fields": ("sequence", "occurred_at", "action")}),
        ("Who", {"fields": ("actor_type", "actor_id", "actor_label")}),
        ("What", {"fields": ("subject_type", "subject_id", "capability", "pretty_data")}),
        ("Chain", {"fields": ("prev_hash", "hash")}),
    )
    readonly_fields = (
        "sequence",
        "occurred_at",
        "action",
        "actor_type",
        "actor_id",
        "actor_label",
        "subject_type",
        "subject_id",
        "capability",
        "pretty_data",
        "prev_hash",
        "hash",
    )

    class Media:
        css = {"all": ("signoff/admin.css",)}

    def get_actions(
        self,
        request: HttpRequest,
        action_location: admin.ActionLocation = admin.ActionLocation.CHANGE_LIST,
    ) -> dict[str, Any]:
        actions = super().get_actions(request, action_location=action_location)
        actions.pop("delete_selected", None)
        return actions

    @admin.display(description="Data")
    def pretty_data(self, obj: AuditEvent) -> SafeString:
        return pretty_json_html(obj.data)
