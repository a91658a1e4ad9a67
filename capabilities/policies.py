"""Routing: which way a suggestion goes under a policy version. Pure functions, no database."""

import enum
import math
from dataclasses import dataclass
from decimal import Decimal


class RouteOutcome(enum.StrEnum):
    AUTO_APPROVE = "auto_approve"
    AUTO_REJECT = "auto_reject"
    REVIEW = "review"


class RouteReason(enum.StrEnum):
    """Machine-readable reasons, returned to the submitter and written to the audit trail."""

    CONFIDENCE_AT_OR_ABOVE_AUTO_APPROVE = "confidence_at_or_above_auto_approve"
    CONFIDENCE_BELOW_AUTO_REJECT = "confidence_below_auto_reject"
    CONFIDENCE_BETWEEN_THRESHOLDS = "confidence_between_thresholds"


ROUTE_REASON_TEXT = {
    RouteReason.CONFIDENCE_AT_OR_ABOVE_AUTO_APPROVE: (
        "Confidence at or above the auto-approve threshold: approved without review."
    ),
    RouteReason.CONFIDENCE_BELOW_AUTO_REJECT: (
        "Confidence below the auto-reject threshold: rejected without review."
    ),
    RouteReason.CONFIDENCE_BETWEEN_THRESHOLDS: (
        "Confidence between the thresholds: a person decides."
    ),
}


def describe_route_reason(reason: str) -> str:
    """A sentence for people; unknown reasons (from later versions) are shown as they are."""
    return ROUTE_REASON_TEXT.get(reason, reason)  # type: ignore[call-overload]


@dataclass(frozen=True)
class Route:
    outcome: RouteOutcome
    reason: RouteReason


def route_by_confidence(
    *, confidence: float, auto_approve_at: Decimal, auto_reject_below: Decimal
) -> Route:
    """Decide a suggestion's way by its confidence.

    ``confidence >= auto_approve_at`` is approved, ``confidence < auto_reject_below`` rejected,
    anything between goes to a person. Thresholds are compared as floats, so a confidence sent
    as ``0.9`` meets a threshold of ``0.9000`` exactly.
    """
    if not math.isfinite(confidence) or not 0 <= confidence <= 1:
        raise ValueError(f"confidence must be within [0, 1], not {confidence!r}")
    if confidence >= float(auto_approve_at):
        return Route(RouteOutcome.AUTO_APPROVE, RouteReason.CONFIDENCE_AT_OR_ABOVE_AUTO_APPROVE)
    if confidence < float(auto_reject_below):
        return Route(RouteOutcome.AUTO_REJECT, RouteReason.CONFIDENCE_BELOW_AUTO_REJECT)
    return Route(RouteOutcome.REVIEW, RouteReason.CONFIDENCE_BETWEEN_THRESHOLDS)
