from decimal import Decimal

import pytest

from capabilities.policies import RouteOutcome, route_by_confidence

THRESHOLDS = {"auto_approve_at": Decimal("0.9000"), "auto_reject_below": Decimal("0.3000")}


@pytest.mark.parametrize(
    ("confidence", "outcome"),
    [
        (1.0, RouteOutcome.AUTO_APPROVE),
        (0.9, RouteOutcome.AUTO_APPROVE),
        (0.8999, RouteOutcome.REVIEW),
        (0.3, RouteOutcome.REVIEW),
        (0.2999, RouteOutcome.AUTO_REJECT),
        (0.0, RouteOutcome.AUTO_REJECT),
    ],
)
def test_confidence_routes_at_the_threshold_boundaries(confidence, outcome):
    assert route_by_confidence(confidence=confidence, **THRESHOLDS).outcome == outcome


def test_equal_thresholds_leave_nothing_for_review():
    same = {"auto_approve_at": Decimal("0.5"), "auto_reject_below": Decimal("0.5")}
    assert route_by_confidence(confidence=0.5, **same).outcome == RouteOutcome.AUTO_APPROVE
    assert route_by_confidence(confidence=0.49, **same).outcome == RouteOutcome.AUTO_REJECT


@pytest.mark.parametrize("confidence", [float("nan"), float("inf"), -0.01, 1.01])
def test_impossible_confidences_are_refused(confidence):
    with pytest.raises(ValueError):
        route_by_confidence(confidence=confidence, **THRESHOLDS)
