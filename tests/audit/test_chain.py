import datetime as dt
from decimal import Decimal

import pytest

from audit import chain

FIELDS = {
    "sequence": 7,
    "occurred_at": dt.datetime(2026, 11, 27, 8, 0, 0, 123, tzinfo=dt.UTC),
    "actor_type": "user",
    "actor_id": "3",
    "actor_label": "rita",
    "action": "decision.recorded",
    "subject_type": "suggestion",
    "subject_id": "0d9c",
    "capability": "refunds.issue",
    "data": {"outcome": "approved", "amount": "12.50"},
}


def test_canonical_json_sorts_keys_and_drops_whitespace():
    assert chain.canonical_json({"b": 1, "a": [1, {"d": 2, "c": "é"}]}) == (
        '{"a":[1,{"c":"é","d":2}],"b":1}'
    )


def test_canonical_json_refuses_nan():
    with pytest.raises(ValueError):
        chain.canonical_json({"x": float("nan")})


def test_normalize_data_turns_decimals_and_datetimes_into_strings():
    moment = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert chain.normalize_data({"cost": Decimal("0.0042"), "at": moment}) == {
        "cost": "0.0042",
        "at": "2026-01-02T01:04:05.000000Z",
    }


def test_hash_changes_with_any_field_and_with_the_predecessor():
    base = chain.event_hash(FIELDS, chain.GENESIS_HASH)
    assert len(base) == 64
    assert chain.event_hash(FIELDS, "1" * 64) != base
    for name, other in [("sequence", 8), ("actor_label", "sam"), ("data", {"outcome": "rejected"})]:
        assert chain.event_hash({**FIELDS, name: other}, chain.GENESIS_HASH) != base


def test_naive_timestamps_are_refused():
    with pytest.raises(ValueError):
        chain.format_timestamp(dt.datetime(2026, 1, 1))
