"""Forms of the reviewer pages. They validate input; the services decide what it may change."""

import json
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

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
