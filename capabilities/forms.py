"""Forms for managing capabilities: the admin's capability form with its policy thresholds."""

from decimal import Decimal
from typing import Any

from django import forms

from capabilities.models import APPROVAL_CHOICES, Capability
from capabilities.services import policy_active

# The active policy's fields the form edits; a change publishes a new policy version.
THRESHOLD_FIELDS = ("auto_approve_at", "auto_reject_below", "required_approvals")


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
    """A capability and the thresholds of its active policy.

    The thresholds are not capability fields: they are prefilled from the active policy, and
    the admin publishes a new policy version when they change. ``clean`` checks them as fully
    as ``policy_publish`` does, so a form that validates never fails half-way through saving.
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
    policy_note = forms.CharField(
        label="Why this change",
        max_length=300,
        required=False,
        help_text="Kept with the new policy version and in the audit trail.",
    )

    class Meta:
        model = Capability
        fields = ["key", "name", "description", "owner", "owner_group"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            active = policy_active(self.instance)
            for name in THRESHOLD_FIELDS:
                if name in self.fields:
                    self.fields[name].initial = getattr(active, name)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        approve_at = cleaned.get("auto_approve_at")
        reject_below = cleaned.get("auto_reject_below")
        if approve_at is not None and reject_below is not None and reject_below > approve_at:
            self.add_error("auto_reject_below", "Must not be above the auto-approve threshold.")
        return cleaned

    def thresholds_changed(self) -> bool:
        """Do the submitted thresholds differ from the active policy's? (After validation.)"""
        if self.instance.pk is None:
            return True
        active = policy_active(self.instance)
        return any(
            Decimal(self.cleaned_data[name]) != Decimal(getattr(active, name))
            for name in THRESHOLD_FIELDS
        )  # required_approvals is an int: Decimal compares it the same way
