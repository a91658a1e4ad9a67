"""Forms for managing capabilities: the admin's capability form with its active policy."""

from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from capabilities.models import APPROVAL_CHOICES, Capability, Policy
from capabilities.schemas import check_schema
from capabilities.services import policy_active
from capabilities.services.catalog import SLA_MINUTES_MAX

# The active policy's fields the form edits; a change publishes a new policy version.
POLICY_FIELDS = (
    "auto_approve_at",
    "auto_reject_below",
    "required_approvals",
    "sla_minutes",
    "sla_default",
)
SLA_DEFAULT_CHOICES = Policy._meta.get_field("sla_default").choices or []


def _threshold_field(label: str, help_text: str) -> forms.DecimalField:
    return forms.DecimalField(
        label=label,
        max_digits=5,
        decimal_places=4,
        min_value=Decimal(0),
        max_value=Decimal(1),
        help_text=help_text,
    )


class CapabilityAdminForm(forms.ModelForm):
    """A capability and the rules of its active policy: thresholds, approvers, deadline.

    ``payload_schema`` is JSON text, checked as a JSON Schema (draft 2020-12). The policy
    fields are not capability fields: they are prefilled from the active policy, and the admin
    publishes a new policy version when they change. ``clean`` checks them as fully as
    ``policy_publish`` does, so a form that validates never fails half-way through saving.
    """

    auto_approve_at = _threshold_field(
        "Auto-approve at",
        "Confidence at or above this is approved without review (0 to 1, up to 4 decimals).",
    )
    auto_reject_below = _threshold_field(
        "Auto-reject below",
        "Confidence below this is rejected without review; must not be above auto-approve.",
    )
    required_approvals = forms.TypedChoiceField(
        label="Approvers needed",
        choices=APPROVAL_CHOICES,
        coerce=int,
        initial=1,
        help_text="Two for four eyes: two distinct people must approve what goes to review.",
    )
    sla_minutes = forms.IntegerField(
        label="Deadline per rung (minutes)",
        required=False,
        min_value=1,
        max_value=SLA_MINUTES_MAX,
        help_text=(
            "How long an item may wait for reviewers, then senior reviewers, then the owner, "
            f"before it climbs (1 to {SLA_MINUTES_MAX}, a week). Empty: no deadline."
        ),
    )
    sla_default = forms.ChoiceField(
        label="Past the owner's deadline",
        choices=SLA_DEFAULT_CHOICES,
        required=False,
        initial="reject",
        help_text="What decides an item nobody decided: rejecting it is the safe choice.",
    )
    policy_note = forms.CharField(
        label="Why this change",
        max_length=300,
        required=False,
        help_text="Kept with the new policy version and in the audit trail.",
    )

    class Meta:
        model = Capability
        fields = ["key", "name", "description", "owner", "owner_group", "payload_schema"]
        widgets = {
            "payload_schema": forms.Textarea(
                attrs={"rows": 12, "spellcheck": "false", "autocapitalize": "off", "class": "code"}
            ),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            active = policy_active(self.instance)
            for name in POLICY_FIELDS:
                if name in self.fields:
                    self.fields[name].initial = getattr(active, name)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        approve_at = cleaned.get("auto_approve_at")
        reject_below = cleaned.get("auto_reject_below")
        if approve_at is not None and reject_below is not None and reject_below > approve_at:
            self.add_error("auto_reject_below", "Must not be above the auto-approve threshold.")
        if "payload_schema" in self.fields and cleaned.get("payload_schema") is not None:
            try:
                check_schema(cleaned["payload_schema"])
            except ValidationError as exc:
                self.add_error(None, exc)
        if "sla_default" in self.fields and not cleaned.get("sla_default"):
            # A select always posts a choice; a request without one keeps what is in force.
            cleaned["sla_default"] = self.fields["sla_default"].initial
        return cleaned

    def policy_changed(self) -> bool:
        """Do the submitted policy fields differ from the active policy's? (After validation.)"""
        if self.instance.pk is None:
            return True
        active = policy_active(self.instance)
        return any(
            _comparable(self.cleaned_data[name]) != _comparable(getattr(active, name))
            for name in POLICY_FIELDS
        )


def _comparable(value: Any) -> Any:
    # "0.9" posted and 0.9000 stored are the same threshold; an int compares the same way.
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return Decimal(value)
    return value
