"""Forms of the reviewer pages. They validate input; the services decide what it may change."""

import datetime as dt
import json
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from reviews.models import SuggestionStatus
from reviews.selectors import QueueCursor, QueueFilters

REASON_MAX_LENGTH = 4000


class _ReasonForm(forms.Form):
    """A decision's reason. Subclasses set the label, whether it is required, and the HTML ids.

    Several of these forms share the review page, so each renders its fields with its own id
    prefix (``reject-reason``, ``escalate-reason``) while posting the same field name.
    """

    id_prefix = "decision"
    reason_label = "Reason"
    reason_required = True
    required_message = "A reason is required."

    reason = forms.CharField(
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", f"{self.id_prefix}-%s")
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        field = self.fields["reason"]
        field.label = self.reason_label
        field.required = self.reason_required
        field.error_messages["required"] = self.required_message


class ApproveForm(_ReasonForm):
    id_prefix = "approve"
    reason_label = "Note (optional)"
    reason_required = False


class RejectForm(_ReasonForm):
    id_prefix = "reject"
    reason_label = "Reason for rejecting"
    required_message = "Reason for rejecting is required: say why, it is kept in the audit trail."


class EscalateForm(_ReasonForm):
    id_prefix = "escalate"
    reason_label = "Reason for escalating"
    required_message = (
        "Reason for escalating is required: tell the senior reviewer what to look at."
    )


class PayloadEditForm(forms.Form):
    """An edited payload, typed as JSON text. ``cleaned_data["payload"]`` is the parsed object."""

    payload = forms.CharField(
        label="Payload (a JSON object)",
        max_length=settings.SIGNOFF_MAX_BODY_BYTES,
        strip=False,
        widget=forms.Textarea(
            attrs={"rows": 18, "spellcheck": "false", "autocapitalize": "off", "class": "code"}
        ),
    )
    reason = forms.CharField(
        label="Why you changed it (optional)",
        required=False,
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)

    def clean_payload(self) -> dict[str, Any]:
        text = self.cleaned_data["payload"]
        try:
            value = json.loads(text, parse_constant=_refuse_constant)
        except json.JSONDecodeError as exc:
            raise ValidationError(
                "The payload is not valid JSON: %(problem)s (line %(line)s, column %(column)s).",
                code="invalid_json",
                params={"problem": exc.msg, "line": exc.lineno, "column": exc.colno},
            ) from None
        except ValueError as exc:
            raise ValidationError(
                "The payload is not valid JSON: %(problem)s.",
                code="invalid_json",
                params={"problem": exc},
            ) from None
        if not isinstance(value, dict):
            raise ValidationError(
                'The payload must be a JSON object, such as {"amount": "120.00"}.',
                code="not_an_object",
            )
        return value


def _refuse_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity, which are not JSON and which PostgreSQL's jsonb
    # refuses: catch them here so the reviewer sees a field error, not a failed save.
    raise ValueError(f"{name} is not allowed in JSON")


class QueueFilterForm(forms.Form):
    """The queue's filters, sort and page, from the query string; all optional.

    Once it is valid, ``queue_filters()`` and ``page_cursor()`` give what
    ``reviews.selectors.suggestion_queue_page`` takes. The capability choices are the user's
    own capabilities.
    """

    AGES = {
        "15m": dt.timedelta(minutes=15),
        "1h": dt.timedelta(hours=1),
        "4h": dt.timedelta(hours=4),
        "24h": dt.timedelta(hours=24),
    }

    capability = forms.ChoiceField(required=False)
    status = forms.ChoiceField(
        required=False,
        choices=[
            ("", "Pending and escalated"),
            (SuggestionStatus.PENDING_REVIEW, "Pending"),
            (SuggestionStatus.ESCALATED, "Escalated"),
        ],
    )
    model = forms.CharField(
        label="Model",
        required=False,
        max_length=401,
        help_text='A model name, or name and version: "gpt-4o 2024-08-06".',
    )
    age = forms.ChoiceField(
        label="Waiting for",
        required=False,
        choices=[
            ("", "Any time"),
            ("15m", "Over 15 minutes"),
            ("1h", "Over 1 hour"),
            ("4h", "Over 4 hours"),
            ("24h", "Over 1 day"),
        ],
    )
    confidence_min = forms.FloatField(
        label="Confidence from",
        required=False,
        min_value=0,
        max_value=1,
        widget=forms.NumberInput(attrs={"step": "0.01"}),
    )
    confidence_max = forms.FloatField(
        label="Confidence up to",
        required=False,
        min_value=0,
        max_value=1,
        widget=forms.NumberInput(attrs={"step": "0.01"}),
    )
    mine = forms.BooleanField(label="Assigned to me", required=False)
    sort = forms.ChoiceField(
        label="Order",
        required=False,
        choices=[("due", "Deadline, soonest first"), ("oldest", "Oldest first")],
    )
    cursor = forms.CharField(required=False, widget=forms.HiddenInput, max_length=1000)

    def __init__(self, *args: Any, capability_keys: list[str], **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "queue-%s")
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        field = self.fields["capability"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [("", "All my capabilities"), *((key, key) for key in capability_keys)]

    def clean_cursor(self) -> QueueCursor | None:
        token = self.cleaned_data["cursor"]
        if not token:
            return None
        try:
            return QueueCursor.decode(token)
        except ValueError:
            raise ValidationError(
                "This page link is not valid (it may be incomplete): start from the first page.",
                code="invalid_cursor",
            ) from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        low, high = cleaned.get("confidence_min"), cleaned.get("confidence_max")
        if low is not None and high is not None and low > high:
            self.add_error("confidence_max", "Confidence up to must not be below confidence from.")
        cursor = cleaned.get("cursor")
        if cursor is not None and cursor.sort != (cleaned.get("sort") or "due"):
            self.add_error("cursor", "This page link belongs to another order: start again.")
        return cleaned

    def queue_filters(self) -> QueueFilters:
        data = self.cleaned_data
        return QueueFilters(
            capability=data["capability"],
            status=data["status"],
            model=data["model"],
            older_than=self.AGES.get(data["age"]),
            confidence_min=data["confidence_min"],
            confidence_max=data["confidence_max"],
            mine=data["mine"],
            sort=data["sort"] or "due",
        )

    def page_cursor(self) -> QueueCursor | None:
        cursor: QueueCursor | None = self.cleaned_data["cursor"]
        return cursor


class QueueCountsForm(forms.Form):
    """The counts fragment's query string: when the page was opened, to count what is new."""

    since = forms.DateTimeField(required=False)
