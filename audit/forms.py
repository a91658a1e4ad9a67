"""The audit log's filters. Every field is optional; a value that cannot be read is a form
error shown on the page, never a server error and never silently ignored."""

import datetime as dt
from typing import Any

from django import forms
from django.utils import timezone

from audit.models import AuditAction

DATETIME_INPUT_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"]


class UtcDateTimeField(forms.DateTimeField):
    """A date or a date and time, read as UTC (the page shows every time in UTC) unless the
    value names its own offset. A plain date means midnight at its start."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"})

    def to_python(self, value: Any) -> dt.datetime | None:
        with timezone.override(dt.UTC):
            return super().to_python(value)


class AuditFilterForm(forms.Form):
    """Narrows the audit log and its export. ``cleaned_filters()`` feeds
    ``audit.selectors.audit_event_list`` directly."""

    since = UtcDateTimeField(
        label="Since (UTC)", required=False, input_formats=DATETIME_INPUT_FORMATS
    )
    until = UtcDateTimeField(
        label="Until (UTC, exclusive)", required=False, input_formats=DATETIME_INPUT_FORMATS
    )
    actor = forms.CharField(
        label="Actor",
        required=False,
        max_length=150,
        help_text="A username, API client name or system label, exactly.",
    )
    capability = forms.CharField(
        label="Capability", required=False, max_length=100, help_text="A key, e.g. refunds.issue."
    )
    action = forms.ChoiceField(
        label="Action", required=False, choices=[("", "Any action"), *AuditAction.choices]
    )
    suggestion = forms.UUIDField(
        label="Suggestion", required=False, help_text="A suggestion's id (UUID)."
    )

    field_order = ["since", "until", "action", "actor", "capability", "suggestion"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "filter-%s")
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        for name in ("actor", "capability", "suggestion"):
            self.fields[name].widget.attrs.update({"spellcheck": "false", "autocapitalize": "off"})

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        since, until = cleaned.get("since"), cleaned.get("until")
        if since is not None and until is not None and since >= until:
            self.add_error("until", "Until must be after since.")
        return cleaned

    @property
    def is_filtered(self) -> bool:
        return self.is_valid() and any(
            value not in (None, "") for value in self.cleaned_data.values()
        )

    def cleaned_filters(self) -> dict[str, Any]:
        """The valid filters as keyword arguments of ``audit_event_list``."""
        data = self.cleaned_data
        suggestion = data.get("suggestion")
        return {
            "since": data.get("since"),
            "until": data.get("until"),
            "actor": data.get("actor", ""),
            "capability": data.get("capability", ""),
            "action": data.get("action", ""),
            "subject_type": "suggestion" if suggestion else "",
            "subject_id": str(suggestion) if suggestion else "",
        }

    def query_items(self) -> list[tuple[str, str]]:
        """The filters as submitted (non-empty ones only), to carry into links."""
        return [
            (name, str(self.data[name]))
            for name in self.fields
            if self.data.get(name) not in (None, "")
        ]
